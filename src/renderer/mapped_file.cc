#include "renderer/mapped_file.h"

#include <sys/sysmacros.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace vgpu {

namespace {

// Parses one number at the front of `s` in `base`, then skips `sep` if given. False on anything else.
template <class T>
bool take_number(std::string_view& s, T& out, int base, char sep) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (ec != std::errc() || end == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(end - s.data()));
  if (sep == '\0') return true;
  if (s.empty() || s.front() != sep) return false;
  s.remove_prefix(1);
  return true;
}

bool take_field(std::string_view& s) {  // skips one space-separated field and the spaces after it
  const size_t space = s.find(' ');
  if (space == std::string_view::npos) return false;
  s.remove_prefix(s.find_first_not_of(' ', space) == std::string_view::npos ? s.size()
                                                                            : s.find_first_not_of(' ', space));
  return true;
}

}  // namespace

std::optional<uint64_t> file_offset_of(std::string_view maps, uintptr_t address, dev_t dev, ino_t inode) {
  while (!maps.empty()) {
    const size_t eol = maps.find('\n');
    std::string_view line = maps.substr(0, eol);
    maps.remove_prefix(eol == std::string_view::npos ? maps.size() : eol + 1);
    uint64_t start = 0;
    uint64_t end = 0;
    std::string_view rest = line;
    if (!take_number(rest, start, 16, '-') || !take_number(rest, end, 16, ' ')) continue;
    if (address < start || address >= end) continue;
    // This line covers the address: it must name the file.
    uint64_t offset = 0;
    unsigned major_no = 0;
    unsigned minor_no = 0;
    uint64_t line_inode = 0;
    if (!take_field(rest) || !take_number(rest, offset, 16, ' ') || !take_number(rest, major_no, 16, ':') ||
        !take_number(rest, minor_no, 16, ' ') || !take_number(rest, line_inode, 10, '\0')) {
      return std::nullopt;
    }
    if (line_inode != inode || makedev(major_no, minor_no) != dev) return std::nullopt;
    const uint64_t delta = address - start;
    if (offset > UINT64_MAX - delta) return std::nullopt;
    return offset + delta;
  }
  return std::nullopt;
}

std::string read_proc_maps() {
  std::ifstream in("/proc/self/maps");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace vgpu

// Backend discovery for vgpu_bench (backends.h): popen of --version and dpkg-query, and the cache paths of
// tests/e2e/lib.sh where bench/fetch-qemu72-backend.sh puts QEMU 7.2's backend.
#include "backends.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace vgpu::bench {
namespace {

bool executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0;
}

// tests/e2e/lib.sh's cache root: $VGPU_CACHE, /var/cache/vhost-gpu when writable, else ~/.cache/vhost-gpu.
std::string cache_dir() {
  if (const char* c = std::getenv("VGPU_CACHE"); c != nullptr && *c != '\0') return c;
  if (::access("/var/cache/vhost-gpu", W_OK) == 0) return "/var/cache/vhost-gpu";
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  return std::string(xdg != nullptr ? xdg : (home != nullptr ? std::string(home) + "/.cache" : "/tmp")) + "/vhost-gpu";
}

}  // namespace

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), f) != nullptr) out += buf.data();
  ::pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

BackendSpec ours_spec(const std::string& path) {
  BackendSpec b{.name = "ours", .path = path, .version = "", .args = {"--socket-path"}, .unavailable = ""};
  b.version = run_command("'" + path + "' --version 2>&1 | head -n 1");
  if (!executable(path)) b.unavailable = "not built: " + path;
  return b;
}

BackendSpec baseline_spec(const std::string& path) {
  BackendSpec b = ours_spec(path);
  b.name = "baseline";
  if (path.empty()) b.unavailable = "no --baseline PATH given";
  return b;
}

BackendSpec qemu10_spec(const std::string& path) {
  BackendSpec b{.name = "qemu-10.0", .path = path, .version = "", .args = {"-s"}, .unavailable = ""};
  if (!executable(path)) {
    b.unavailable = path + " is not installed (package qemu-system-gui from bookworm-backports)";
    return b;
  }
  b.version = run_command("dpkg-query -W -f='${Version}' qemu-system-gui 2>/dev/null");
  if (b.version.find(":10.0") == std::string::npos) {
    b.unavailable = path + " is QEMU " + (b.version.empty() ? "of unknown version" : b.version) + ", not 10.0";
  }
  return b;
}

BackendSpec qemu72_spec(std::string path) {
  const std::string cached = cache_dir() + "/qemu72-backend/current/vhost-user-gpu";
  if (path.empty()) path = cached;
  BackendSpec b{.name = "qemu-7.2", .path = path, .version = "", .args = {"-s"}, .unavailable = ""};
  if (!executable(path)) {
    b.unavailable = "not found at " + path + " (run bench/fetch-qemu72-backend.sh, or pass --qemu72 PATH)";
    return b;
  }
  b.version = read_first_line(std::filesystem::path(path).parent_path() / "VERSION");
  return b;
}

}  // namespace vgpu::bench

// What the libFuzzer targets in fuzz/ share: reading operands off the input, counting open fds (a target
// aborts when one leaks), and the VGPU_FUZZ_LOG switch.
//
// Usage:
//   FuzzInput in(data, size);
//   while (!in.empty()) { const auto op = in.take<uint8_t>(); auto payload = in.bytes_upto(in.byte()); ... }
//   const size_t before = open_fd_count(); ...; if (open_fd_count() != before) std::abort();
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "support/fd_passing.h"

namespace vgpu::test {

// Reads the input front to back; past the end every value is zero.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return pos_ >= size_; }
  template <class T>
  T take() {
    T out{};
    const size_t at = std::min(pos_, size_);
    if (at < size_) std::memcpy(&out, data_ + at, std::min(sizeof(T), size_ - at));
    pos_ += sizeof(T);
    return out;
  }
  uint8_t byte() { return take<uint8_t>(); }
  // The next `n` bytes, fewer where the input ends.
  std::vector<std::byte> bytes_upto(size_t n) { return bytes(std::min(n, size_ - std::min(pos_, size_))); }
  // The next `n` bytes, zeros past the end.
  std::vector<std::byte> bytes(size_t n) {
    std::vector<std::byte> out(n);
    const size_t at = std::min(pos_, size_);
    if (n != 0 && at < size_) std::memcpy(out.data(), data_ + at, std::min(n, size_ - at));
    pos_ += n;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// True when VGPU_FUZZ_LOG is set (to replay one input with the code's logs); logging is off otherwise. The
// first call sets the level.
inline bool fuzz_verbose() {
  static const bool on = [] {
    const bool set = std::getenv("VGPU_FUZZ_LOG") != nullptr;
    spdlog::set_level(set ? spdlog::level::trace : spdlog::level::off);
    return set;
  }();
  return on;
}

}  // namespace vgpu::test

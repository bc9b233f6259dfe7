// Byte copies of wire structs: a reply or response built on the host goes out as bytes, and a request's
// payload is read into a struct by copy (CONTRIBUTING.md practice 4), never through a cast pointer.
//
//   std::vector<std::byte> reply = bytes_of(VringState{index, base});
//   auto region = copy_from<MemoryRegion>(payload, sizeof(MemoryTableHeader));   // the caller checked the size
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace vgpu {

// A wire struct's bytes.
template <class T>
std::vector<std::byte> bytes_of(const T& value) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::vector<std::byte> out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

// A struct copied out of `bytes` at `offset`; the caller checked that sizeof(T) bytes are there.
template <class T>
T copy_from(std::span<const std::byte> bytes, size_t offset = 0) {
  static_assert(std::is_trivially_copyable_v<T>);
  T out{};
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return out;
}

}  // namespace vgpu

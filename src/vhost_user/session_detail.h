// Helpers the Session's translation units share (session.cc, session_pipeline.cc, session_rings.cc,
// session_device_state.cc): byte copies of wire structs, the region and fd checks. Private to vhost_user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"
#include "vhost_user/message.h"

namespace vgpu::vhost_user::session_detail {

// A wire struct's bytes (a reply payload).
template <class T>
std::vector<std::byte> bytes_of(const T& value) {
  std::vector<std::byte> out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

// A struct copied out of a payload at `offset` (the caller checked the size).
template <class T>
T copy_from(std::span<const std::byte> bytes, size_t offset) {
  T out{};
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return out;
}

std::string_view protocol_feature_name(ProtocolFeature f);
std::string request_name(uint32_t request);
RegionDesc region_desc(const MemoryRegion& r);
// A region is acceptable when it is not empty and none of its ranges wraps; what is wrong otherwise.
std::optional<std::string> region_problem(const MemoryRegion& r);
// Maps one frontend region (a regular file must cover [0, mmap_offset + size)).
Result<MappedRegion, std::string> map_region(const MemoryRegion& r, int fd);
// Kick, call and err fds must be eventfds: what the fd is instead (per /proc), or nullopt.
std::optional<std::string> not_an_eventfd(int fd);
bool is_socket(int fd);

}  // namespace vgpu::vhost_user::session_detail

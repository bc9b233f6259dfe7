// Helpers the Session's translation units share (session.cc, session_pipeline.cc, session_rings.cc,
// session_device_state.cc): the region and fd checks (byte copies of wire structs: common/bytes.h). Private to
// vhost_user.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"  // bytes_of, copy_from: the Session's byte copies of wire structs
#include "common/result.h"
#include "memory/guest_memory.h"
#include "vhost_user/message.h"

namespace vgpu::vhost_user::session_detail {

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

// Names of virtio-gpu command and response types (<linux/virtio_gpu.h>), for logs, tests and fuzzers.
//
//   VGPU_LOG_DEBUG("command {}", command_name(hdr.type));   // "GET_DISPLAY_INFO"
#pragma once

#include <cstdint>
#include <string_view>

namespace vgpu {

// The name without the VIRTIO_GPU_CMD_ / VIRTIO_GPU_RESP_ prefix, or "UNKNOWN".
std::string_view command_name(uint32_t type);

}  // namespace vgpu

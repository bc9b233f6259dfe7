// A closed set of guest-visible command failures, one per VIRTIO_GPU_RESP_ERR_* (CONTRIBUTING.md practice 6).
// Handlers pick the most specific one; the dispatcher writes it as the response type.
//
//   if (!resources_.contains(id)) return fail(GpuError::InvalidResourceId);
#pragma once

#include <linux/virtio_gpu.h>

#include <cstdint>
#include <string_view>

namespace vgpu {

enum class GpuError : uint32_t {
  Unspec = VIRTIO_GPU_RESP_ERR_UNSPEC,                          // none of the others fits
  OutOfMemory = VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,              // the host cannot (or may not) allocate it
  InvalidScanoutId = VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID,    // no such scanout
  InvalidResourceId = VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,  // no such resource, or not one this command takes
  InvalidContextId = VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID,    // no such 3D context
  InvalidParameter = VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,     // a size, rectangle, offset or flag out of range
};

constexpr uint32_t to_wire(GpuError e) {
  return static_cast<uint32_t>(e);
}
std::string_view to_string(GpuError e);

}  // namespace vgpu

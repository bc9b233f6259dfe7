#include "gpu/gpu_error.h"

namespace vgpu {

std::string_view to_string(GpuError e) {
  switch (e) {
    case GpuError::Unspec: return "ERR_UNSPEC";
    case GpuError::OutOfMemory: return "ERR_OUT_OF_MEMORY";
    case GpuError::InvalidScanoutId: return "ERR_INVALID_SCANOUT_ID";
    case GpuError::InvalidResourceId: return "ERR_INVALID_RESOURCE_ID";
    case GpuError::InvalidContextId: return "ERR_INVALID_CONTEXT_ID";
    case GpuError::InvalidParameter: return "ERR_INVALID_PARAMETER";
  }
  return "ERR_UNKNOWN";
}

}  // namespace vgpu

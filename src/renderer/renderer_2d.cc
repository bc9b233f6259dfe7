#include "renderer/renderer_2d.h"

namespace vgpu {

std::string_view to_string(RendererError e) {
  switch (e) {
    case RendererError::OutOfMemory: return "host allocation failed";
    case RendererError::InvalidResource: return "no such resource";
    case RendererError::InvalidArgument: return "rectangle, offset or size out of range";
    case RendererError::GuestMemory: return "backing read from guest memory failed";
    case RendererError::Unsupported: return "not supported by this renderer";
  }
  return "unknown renderer error";
}

}  // namespace vgpu

// Helpers shared by the virgl renderer's translation units (virgl_renderer.cc, virgl_backings.cc,
// virgl_fences.cc), in one place so none is duplicated. Private to src/renderer/virgl.
#pragma once

#include <sys/uio.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "common/result.h"
#include "renderer/image.h"
#include "renderer/renderer_3d.h"
#include "renderer/virgl/virgl_compat.h"

namespace vgpu::virgl_internal {

inline Renderer3DError from_errno(int ret, Renderer3DError otherwise) {
  const int e = ret < 0 ? -ret : ret;
  return e == ENOMEM ? Renderer3DError::OutOfMemory : otherwise;
}

// A 2D rectangle as a one-deep box (callers check fits_int, or sizes already below 2^31).
inline virgl_box box_of(const Rect& r) {
  return virgl_box{.x = static_cast<int32_t>(r.x),
                   .y = static_cast<int32_t>(r.y),
                   .z = 0,
                   .w = static_cast<int32_t>(r.width),
                   .h = static_cast<int32_t>(r.height),
                   .d = 1};
}

// Host views of bytes [offset, offset + len) of `list`, resolved now. Adjacent views are merged. Defined in
// virgl_backings.cc.
// `pins` receives the regions the views lie in: keep them while the library may use the iovecs.
Result<void, Renderer3DError> resolve_iovs(const GuestMemory& mem, const GuestScatterList& list, uint64_t offset,
                                           uint64_t len, std::vector<iovec>& out, std::vector<RegionPin>& pins);

}  // namespace vgpu::virgl_internal

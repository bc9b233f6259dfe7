// The device's view of a 2D renderer (CONTRIBUTING.md practice 8: narrow interfaces split by concern). soft2d
// (pixman) is always built; virgl implements the same interface for 2D commands on 3D-capable builds.
// The device has validated every id, rectangle, offset and size before calling; the renderer still reads
// guest memory only through GuestScatterList, which bounds-checks every access.
//
//   Soft2DRenderer r;
//   r.create_resource(1, PixelFormat::B8G8R8X8, 1280, 800);
//   r.transfer_to_host_2d(1, {0, 0, 64, 64}, /*offset=*/0, backing);
//   ImageView v = *r.image(1);
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"
#include "memory/scatter_list.h"
#include "renderer/image.h"

namespace vgpu {

enum class RendererError {
  OutOfMemory,      // the host allocation failed
  InvalidResource,  // no resource with that id (a device bug if it happens: the device checks ids first)
  InvalidArgument,  // a rectangle or offset the renderer cannot honour
  GuestMemory,      // a backing read failed (memory changed under us)
  Unsupported,      // this renderer cannot do that (export_shared on a renderer whose images are not memory)
};

std::string_view to_string(RendererError e);

class Renderer2D {
 public:
  virtual ~Renderer2D() = default;

  // Allocates a zero-filled width x height image (both >= 1, validated by the device).
  virtual Result<void, RendererError> create_resource(uint32_t id, PixelFormat format, uint32_t width,
                                                      uint32_t height) = 0;
  virtual void destroy_resource(uint32_t id) = 0;

  // virtio spec 5.7.6.9 (TRANSFER_TO_HOST_2D): copies `rect` of the guest's backing into the resource. The
  // backing holds the image with the resource's own stride (width * 4) and its first byte of `rect` at
  // `offset`; row y of the rect starts at offset + (y - rect.y) * stride. Only the rectangle is copied.
  virtual Result<void, RendererError> transfer_to_host_2d(uint32_t id, const Rect& rect, uint64_t offset,
                                                          const GuestScatterList& backing) = 0;

  // The resource's current host image; nullopt for an unknown id. Valid until the next call that changes it.
  [[nodiscard]] virtual std::optional<ImageView> image(uint32_t id) const = 0;

  // Another device imports the resource (vhost-user SHARED_OBJECT): an fd of memory holding its host image
  // (rows `width * 4` bytes apart from offset 0, the image's format), which stays that resource's image from
  // now on, so what the guest transfers later is seen there too. The same file each time it is asked (a new
  // fd for it). Unsupported: the renderer's images are not in memory a file can hand out (textures); the
  // device then asks the 3D renderer for a dma-buf. The image may move: views taken before are invalid.
  virtual Result<UniqueFd, RendererError> export_shared(uint32_t id) {
    (void)id;
    return fail(RendererError::Unsupported);
  }
  // Device state load: the whole image from `pixels` (rows width * 4 bytes apart, the image's format).
  // InvalidArgument: not exactly height rows of width * 4 bytes. Unsupported: images the renderer keeps
  // elsewhere (textures).
  virtual Result<void, RendererError> restore_pixels(uint32_t id, std::span<const std::byte> pixels) {
    (void)id;
    (void)pixels;
    return fail(RendererError::Unsupported);
  }
  // Drops every resource (device reset).
  virtual void reset() = 0;
};

}  // namespace vgpu

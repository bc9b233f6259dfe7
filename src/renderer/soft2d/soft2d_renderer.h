// The software 2D renderer: each resource is a zero-filled host buffer (stride = width * 4) wrapped in a
// pixman image of the matching format. Always built; needs no GPU (docs/ARCHITECTURE.md, "Renderers").
//
//   Soft2DRenderer r;                                        // or Soft2DRenderer r(/*max_total_bytes=*/256 << 20);
//   if (auto c = r.create_resource(1, PixelFormat::B8G8R8X8, 1280, 800); !c) ...;   // RendererError
//   r.transfer_to_host_2d(1, Rect{0, 0, 1280, 800}, /*offset=*/0, backing);
//   ImageView v = *r.image(1);
//   pixman_image_t* img = r.pixman_image(1);                 // for pixman compositing (display, tests)
#pragma once

#include <pixman.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <unordered_map>

#include "renderer/renderer_2d.h"

namespace vgpu {

// The pixman format with the same memory layout as `f` on this (little-endian) host. pixman names bits of a
// 32-bit word, virtio names bytes in memory: virtio B8G8R8A8 is PIXMAN_a8r8g8b8. Matches QEMU's
// virtio_gpu_get_pixman_format (include/hw/virtio/virtio-gpu-pixman.h with ui/qemu-pixman.h's PIXMAN_BE_*).
pixman_format_code_t to_pixman_format(PixelFormat f);

class Soft2DRenderer final : public Renderer2D {
 public:
  // `max_total_bytes` caps the pixel bytes of all live resources together; create_resource beyond it gives
  // OutOfMemory. The device applies the configured guest limit; this is the renderer's own backstop.
  explicit Soft2DRenderer(uint64_t max_total_bytes = std::numeric_limits<uint64_t>::max());
  ~Soft2DRenderer() override;
  Soft2DRenderer(const Soft2DRenderer&) = delete;
  Soft2DRenderer& operator=(const Soft2DRenderer&) = delete;

  // OutOfMemory: the allocation failed, the cap is reached, or the image is too large for pixman (stride or
  // height above INT32_MAX). InvalidArgument: a zero dimension or an id already in use (that resource is kept).
  Result<void, RendererError> create_resource(uint32_t id, PixelFormat format, uint32_t width,
                                              uint32_t height) override;
  void destroy_resource(uint32_t id) override;  // unknown ids are ignored

  // InvalidResource: unknown id. InvalidArgument: `rect` does not fit the resource, or the backing does not
  // hold every byte the rect needs (offset + (height - 1) * stride + width * 4 > backing.size(), checked
  // without wrapping); nothing is copied then. GuestMemory: a read failed after those checks (a region went
  // away): rows before the failing one are copied and the failing row may be partly copied; the resource
  // stays valid (same size, format and buffer). An empty rect copies nothing and succeeds.
  Result<void, RendererError> transfer_to_host_2d(uint32_t id, const Rect& rect, uint64_t offset,
                                                  const GuestScatterList& backing) override;

  [[nodiscard]] std::optional<ImageView> image(uint32_t id) const override;
  // The resource's pixman image (a borrowed reference), or nullptr for an unknown id. Same lifetime as image().
  [[nodiscard]] pixman_image_t* pixman_image(uint32_t id) const;
  // Moves the image into a sealed memfd (F_SEAL_SHRINK | F_SEAL_GROW: an importer cannot cut the pages from
  // under us) the first time, then hands out duplicates of that fd. OutOfMemory: memfd_create, ftruncate or
  // mmap failed (the image stays where it was). InvalidResource: unknown id.
  Result<UniqueFd, RendererError> export_shared(uint32_t id) override;
  Result<void, RendererError> restore_pixels(uint32_t id, std::span<const std::byte> pixels) override;
  void reset() override;

  // Pixel bytes held by all live resources.
  [[nodiscard]] uint64_t total_bytes() const { return total_bytes_; }

 private:
  // Pixels from calloc, or (mapped_bytes != 0) a shared mapping of a memfd.
  struct PixelsDeleter {
    size_t mapped_bytes = 0;
    void operator()(std::byte* p) const;
  };
  struct ImageUnref {
    void operator()(pixman_image_t* i) const { pixman_image_unref(i); }
  };
  struct Resource {
    PixelFormat format;
    uint32_t width;
    uint32_t height;
    uint32_t stride;
    uint64_t bytes;
    // Shared with the ImageView leases image() hands out (a display still sending them keeps them), so
    // declared before `image` and destroyed after it, or later.
    std::shared_ptr<std::byte> pixels;
    std::unique_ptr<pixman_image_t, ImageUnref> image;
    UniqueFd memfd;  // export_shared's file, once asked; `pixels` then maps it
  };

  uint64_t max_total_bytes_;
  uint64_t total_bytes_ = 0;
  std::unordered_map<uint32_t, Resource> resources_;
};

}  // namespace vgpu

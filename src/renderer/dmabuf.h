// A dma-buf holding an image, as a renderer exports it and a GL display imports it (vhost-user-gpu's
// DMABUF_SCANOUT / DMABUF_SCANOUT2 fields). The DRM fourccs of the virtio-gpu formats are a column of
// pixel_format.h's table (drm_fourcc_of).
//
// DRM names a format by its packed 32-bit word, virtio-gpu by its bytes in memory (little endian): virtio's
// B8G8R8A8 (bytes B, G, R, A) is the word 0xAARRGGBB, DRM_FORMAT_ARGB8888. The fourcc values are those of
// <drm/drm_fourcc.h> (fourcc_code); tests/unit/pixel_format_test.cc checks them against libdrm's copy.
//
//   auto fourcc = drm_fourcc_of(PixelFormat::B8G8R8X8);     // DRM_FORMAT_XRGB8888
//   ExportedDmabuf e = *renderer.export_image(id);           // e.image.fd is e.fd.get()
//   display.set_scanout_dmabuf(0, e.image, shown_rect);
#pragma once

#include <cstdint>

#include "common/unique_fd.h"
#include "renderer/image.h"

namespace vgpu {

// DRM_FORMAT_MOD_LINEAR and DRM_FORMAT_MOD_INVALID ("no explicit modifier": the exporter's implicit layout).
constexpr uint64_t kDrmModLinear = 0;
constexpr uint64_t kDrmModInvalid = 0x00ffffffffffffffULL;

// An image in a dma-buf. `fd` is borrowed: whoever keeps or queues it duplicates it.
struct DmabufImage {
  int fd = -1;
  uint32_t width = 0;  // of the whole buffer
  uint32_t height = 0;
  uint32_t stride = 0;  // bytes per row
  uint32_t offset = 0;  // byte of pixel (0, 0)
  uint32_t fourcc = 0;  // DRM_FORMAT_*
  uint64_t modifier = kDrmModInvalid;
  bool y0_top = false;  // rows stored bottom-up (GL's origin): VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP
};

// A dma-buf a renderer exported: the fd it owns and the image in it (image.fd == fd.get()).
struct ExportedDmabuf {
  UniqueFd fd;
  DmabufImage image;
};

}  // namespace vgpu

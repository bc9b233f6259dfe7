// A dma-buf holding an image, as a renderer exports it and a GL display imports it (vhost-user-gpu's
// DMABUF_SCANOUT / DMABUF_SCANOUT2 fields), and the DRM fourccs of the virtio-gpu formats.
//
// DRM names a format by its packed 32-bit word, virtio-gpu by its bytes in memory (little endian): virtio's
// B8G8R8A8 (bytes B, G, R, A) is the word 0xAARRGGBB, DRM_FORMAT_ARGB8888. The fourcc values are those of
// <drm/drm_fourcc.h> (fourcc_code); tests/unit/dmabuf_test.cc checks them against libdrm's copy.
//
//   auto fourcc = drm_fourcc_of(PixelFormat::B8G8R8X8);     // DRM_FORMAT_XRGB8888
//   ExportedDmabuf e = *renderer.export_image(id);           // e.image.fd is e.fd.get()
//   display.set_scanout_dmabuf(0, e.image, shown_rect);
#pragma once

#include <cstdint>

#include "common/unique_fd.h"
#include "renderer/image.h"

namespace vgpu {

constexpr uint32_t drm_fourcc_code(char a, char b, char c, char d) {
  return static_cast<uint32_t>(static_cast<uint8_t>(a)) | static_cast<uint32_t>(static_cast<uint8_t>(b)) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(c)) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(d)) << 24;
}

constexpr uint32_t kDrmFormatArgb8888 = drm_fourcc_code('A', 'R', '2', '4');
constexpr uint32_t kDrmFormatXrgb8888 = drm_fourcc_code('X', 'R', '2', '4');
constexpr uint32_t kDrmFormatBgra8888 = drm_fourcc_code('B', 'A', '2', '4');
constexpr uint32_t kDrmFormatBgrx8888 = drm_fourcc_code('B', 'X', '2', '4');
constexpr uint32_t kDrmFormatAbgr8888 = drm_fourcc_code('A', 'B', '2', '4');
constexpr uint32_t kDrmFormatXbgr8888 = drm_fourcc_code('X', 'B', '2', '4');
constexpr uint32_t kDrmFormatRgba8888 = drm_fourcc_code('R', 'A', '2', '4');
constexpr uint32_t kDrmFormatRgbx8888 = drm_fourcc_code('R', 'X', '2', '4');

// DRM_FORMAT_MOD_LINEAR and DRM_FORMAT_MOD_INVALID ("no explicit modifier": the exporter's implicit layout).
constexpr uint64_t kDrmModLinear = 0;
constexpr uint64_t kDrmModInvalid = 0x00ffffffffffffffULL;

constexpr uint32_t drm_fourcc_of(PixelFormat f) {
  switch (f) {
    case PixelFormat::B8G8R8A8: return kDrmFormatArgb8888;
    case PixelFormat::B8G8R8X8: return kDrmFormatXrgb8888;
    case PixelFormat::A8R8G8B8: return kDrmFormatBgra8888;
    case PixelFormat::X8R8G8B8: return kDrmFormatBgrx8888;
    case PixelFormat::R8G8B8A8: return kDrmFormatAbgr8888;
    case PixelFormat::X8B8G8R8: return kDrmFormatRgbx8888;
    case PixelFormat::A8B8G8R8: return kDrmFormatRgba8888;
    case PixelFormat::R8G8B8X8: return kDrmFormatXbgr8888;
  }
  return 0;
}

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

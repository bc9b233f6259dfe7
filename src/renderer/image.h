// What the device, the renderers and the display share about pixels: rectangles, the virtio-gpu 2D pixel
// formats (pixel_format.h, the one table of them), and a read-only view of a resource's host image.
//
//   auto fmt = pixel_format_from_virtio(VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);   // std::optional<PixelFormat>
//   ImageView v = renderer.image(id).value();
//   const std::byte* row = v.data + size_t{y} * v.stride;
//   CursorArgb argb = cursor_argb(v);                        // 64x64 0xAARRGGBB words for CURSOR_UPDATE
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "renderer/pixel_format.h"

namespace vgpu {

struct Rect {
  uint32_t x = 0;
  uint32_t y = 0;
  uint32_t width = 0;
  uint32_t height = 0;
  bool operator==(const Rect&) const = default;
  [[nodiscard]] bool empty() const { return width == 0 || height == 0; }
};

// True when `r` lies inside a width x height area (no wrap: each operand is compared before summing).
constexpr bool rect_fits(const Rect& r, uint32_t width, uint32_t height) {
  return r.x <= width && r.width <= width - r.x && r.y <= height && r.height <= height - r.y;
}

// The intersection of two rectangles that both fit in the 32-bit plane (callers validate first).
constexpr Rect intersect(const Rect& a, const Rect& b) {
  const uint64_t x0 = a.x > b.x ? a.x : b.x;
  const uint64_t y0 = a.y > b.y ? a.y : b.y;
  const uint64_t ax1 = uint64_t{a.x} + a.width, bx1 = uint64_t{b.x} + b.width;
  const uint64_t ay1 = uint64_t{a.y} + a.height, by1 = uint64_t{b.y} + b.height;
  const uint64_t x1 = ax1 < bx1 ? ax1 : bx1;
  const uint64_t y1 = ay1 < by1 ? ay1 : by1;
  if (x1 <= x0 || y1 <= y0) return Rect{};
  return Rect{static_cast<uint32_t>(x0), static_cast<uint32_t>(y0), static_cast<uint32_t>(x1 - x0),
              static_cast<uint32_t>(y1 - y0)};
}

// A read-only view of a host image: `height` rows of `stride` bytes, `width` pixels each.
// `lease` is the image's storage, shared: a holder of the lease keeps the bytes allocated even after the
// renderer destroyed the resource, reset, or replaced the storage (the display sending straight from the rows
// holds it until the bytes are out). A view without a lease is valid only until the next call into whatever
// made it; a display must copy its rows before returning.
struct ImageView {
  const std::byte* data = nullptr;
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t stride = 0;
  PixelFormat format = PixelFormat::B8G8R8X8;
  std::shared_ptr<const void> lease{};
};

// A cursor image as the vhost-user-gpu CURSOR_UPDATE message carries it: 64 x 64 host-endian 0xAARRGGBB
// words (pixman's a8r8g8b8, QEMU's QEMUCursor layout), row-major.
constexpr uint32_t kCursorArgbSide = 64;
using CursorArgb = std::array<uint32_t, size_t{kCursorArgbSide} * kCursorArgbSide>;

// The top-left 64 x 64 pixels of `image` converted to CursorArgb. Pixels outside the image are 0
// (transparent); X formats become opaque (alpha 0xff). A view with a null `data` gives all zeros.
CursorArgb cursor_argb(const ImageView& image);

}  // namespace vgpu

// What the device, the renderers and the display share about pixels: rectangles, the virtio-gpu 2D pixel
// formats (spec 5.7.6.8 "enum virtio_gpu_formats"), and a read-only view of a resource's host image.
//
//   auto fmt = pixel_format_from_virtio(VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);   // std::optional<PixelFormat>
//   ImageView v = renderer.image(id).value();
//   const std::byte* row = v.data + size_t{y} * v.stride;
//   CursorArgb argb = cursor_argb(v);                        // 64x64 0xAARRGGBB words for CURSOR_UPDATE
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

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

// The eight 32-bit formats virtio-gpu defines; the value is the wire value. Names give the byte order in
// memory (B8G8R8A8: byte 0 is blue), as the spec does.
enum class PixelFormat : uint32_t {
  B8G8R8A8 = 1,
  B8G8R8X8 = 2,
  A8R8G8B8 = 3,
  X8R8G8B8 = 4,
  R8G8B8A8 = 67,
  X8B8G8R8 = 68,
  A8B8G8R8 = 121,
  R8G8B8X8 = 134,
};

constexpr uint32_t kBytesPerPixel = 4;  // every virtio-gpu 2D format is 32 bits per pixel

std::optional<PixelFormat> pixel_format_from_virtio(uint32_t wire);
std::string_view to_string(PixelFormat f);

// A read-only view of a host image: `height` rows of `stride` bytes, `width` pixels each.
struct ImageView {
  const std::byte* data = nullptr;
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t stride = 0;
  PixelFormat format = PixelFormat::B8G8R8X8;
};

// A cursor image as the vhost-user-gpu CURSOR_UPDATE message carries it: 64 x 64 host-endian 0xAARRGGBB
// words (pixman's a8r8g8b8, QEMU's QEMUCursor layout), row-major.
constexpr uint32_t kCursorArgbSide = 64;
using CursorArgb = std::array<uint32_t, size_t{kCursorArgbSide} * kCursorArgbSide>;

// The top-left 64 x 64 pixels of `image` converted to CursorArgb. Pixels outside the image are 0
// (transparent); X formats become opaque (alpha 0xff). A view with a null `data` gives all zeros.
CursorArgb cursor_argb(const ImageView& image);

}  // namespace vgpu

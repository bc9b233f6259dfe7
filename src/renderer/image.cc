#include "renderer/image.h"

#include <algorithm>

namespace vgpu {

namespace {

// Where each channel sits in a pixel's four bytes, in memory order (the virtio name read left to right).
// kNone: the format has no alpha channel (X), so the pixel is opaque.
constexpr uint8_t kNone = 0xff;
struct ChannelBytes {
  uint8_t a, r, g, b;
};

constexpr ChannelBytes channel_bytes(PixelFormat f) {
  switch (f) {
    case PixelFormat::B8G8R8A8: return {3, 2, 1, 0};
    case PixelFormat::B8G8R8X8: return {kNone, 2, 1, 0};
    case PixelFormat::A8R8G8B8: return {0, 1, 2, 3};
    case PixelFormat::X8R8G8B8: return {kNone, 1, 2, 3};
    case PixelFormat::R8G8B8A8: return {3, 0, 1, 2};
    case PixelFormat::X8B8G8R8: return {kNone, 3, 2, 1};
    case PixelFormat::A8B8G8R8: return {0, 3, 2, 1};
    case PixelFormat::R8G8B8X8: return {kNone, 0, 1, 2};
  }
  return {kNone, 2, 1, 0};  // unreachable: PixelFormat values come from pixel_format_from_virtio
}

uint32_t to_argb(const std::byte* px, ChannelBytes c) {
  const auto at = [px](uint8_t i) { return std::to_integer<uint32_t>(px[i]); };
  const uint32_t a = c.a == kNone ? 0xffu : at(c.a);
  return a << 24 | at(c.r) << 16 | at(c.g) << 8 | at(c.b);
}

}  // namespace

std::optional<PixelFormat> pixel_format_from_virtio(uint32_t wire) {
  switch (static_cast<PixelFormat>(wire)) {
    case PixelFormat::B8G8R8A8:
    case PixelFormat::B8G8R8X8:
    case PixelFormat::A8R8G8B8:
    case PixelFormat::X8R8G8B8:
    case PixelFormat::R8G8B8A8:
    case PixelFormat::X8B8G8R8:
    case PixelFormat::A8B8G8R8:
    case PixelFormat::R8G8B8X8: return static_cast<PixelFormat>(wire);
  }
  return std::nullopt;
}

std::string_view to_string(PixelFormat f) {
  switch (f) {
    case PixelFormat::B8G8R8A8: return "B8G8R8A8_UNORM";
    case PixelFormat::B8G8R8X8: return "B8G8R8X8_UNORM";
    case PixelFormat::A8R8G8B8: return "A8R8G8B8_UNORM";
    case PixelFormat::X8R8G8B8: return "X8R8G8B8_UNORM";
    case PixelFormat::R8G8B8A8: return "R8G8B8A8_UNORM";
    case PixelFormat::X8B8G8R8: return "X8B8G8R8_UNORM";
    case PixelFormat::A8B8G8R8: return "A8B8G8R8_UNORM";
    case PixelFormat::R8G8B8X8: return "R8G8B8X8_UNORM";
  }
  return "unknown format";
}

CursorArgb cursor_argb(const ImageView& image) {
  CursorArgb out{};
  if (image.data == nullptr) return out;
  const ChannelBytes c = channel_bytes(image.format);
  const uint32_t width = std::min(image.width, kCursorArgbSide);
  const uint32_t height = std::min(image.height, kCursorArgbSide);
  for (uint32_t y = 0; y < height; ++y) {
    const std::byte* row = image.data + size_t{y} * image.stride;
    for (uint32_t x = 0; x < width; ++x)
      out[size_t{y} * kCursorArgbSide + x] = to_argb(row + size_t{x} * kBytesPerPixel, c);
  }
  return out;
}

}  // namespace vgpu

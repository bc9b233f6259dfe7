#include "renderer/image.h"

#include <algorithm>

namespace vgpu {

namespace {

uint32_t to_argb(const std::byte* px, ChannelBytes c) {
  const auto at = [px](uint8_t i) { return std::to_integer<uint32_t>(px[i]); };
  const uint32_t a = c.a == kNoAlpha ? 0xffu : at(c.a);
  return a << 24 | at(c.r) << 16 | at(c.g) << 8 | at(c.b);
}

}  // namespace

CursorArgb cursor_argb(const ImageView& image) {
  CursorArgb out{};
  if (image.data == nullptr) return out;
  const ChannelBytes c = pixel_format_info(image.format).bytes;
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

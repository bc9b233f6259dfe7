#include "display/update_rect.h"

#include <algorithm>

#include "common/checked.h"
#include "common/log.h"

namespace vgpu {

bool image_ok(const ImageView& image) {
  const auto row = checked_mul(image.width, kBytesPerPixel);
  return image.data != nullptr && is_known_format(image.format) && row && image.stride >= *row;
}

std::optional<Rect> clip_update(const Rect& damage, uint32_t width, uint32_t height, const ImageView& image,
                                uint32_t src_x, uint32_t src_y) {
  Rect rect = intersect(damage, Rect{0, 0, width, height});
  if (rect.empty()) return rect;
  if (!image_ok(image) || src_x >= image.width || src_y >= image.height) return std::nullopt;
  rect.width = std::min(rect.width, image.width - src_x);
  rect.height = std::min(rect.height, image.height - src_y);
  return rect;
}

std::optional<Rect> rect_to_copy(std::string_view who, uint32_t scanout, const Rect& damage, uint32_t width,
                                 uint32_t height, const ImageView& image, uint32_t src_x, uint32_t src_y) {
  std::optional<Rect> clipped = clip_update(damage, width, height, image, src_x, src_y);
  if (!clipped) {
    VGPU_LOG_DEBUG("{}: update of scanout {} outside its image, dropped", who, scanout);
    return std::nullopt;
  }
  if (clipped->empty()) return std::nullopt;
  return clipped;
}

}  // namespace vgpu

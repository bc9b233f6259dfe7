// What every Display::update() does before it touches pixels: check the image it is handed and clip the damage
// to the scanout and to the part of the image that exists from the source position.
//
//   std::optional<Rect> rect = clip_update(damage, scanout_width, scanout_height, image, src_x, src_y);
//   if (!rect) { VGPU_LOG_DEBUG("...outside its image, dropped"); return; }
//   if (rect->empty()) return;   // nothing of the damage is on the scanout
#pragma once

#include <cstdint>
#include <optional>

#include "renderer/image.h"

namespace vgpu {

// A usable ImageView: known format, data, and rows at least width * 4 bytes apart.
bool image_ok(const ImageView& image);

// `damage` clipped to a width x height scanout and to the pixels `image` holds from (src_x, src_y). Empty when
// none of the damage is on the scanout (whatever the image); nullopt when the image is unusable or the source
// position lies outside it.
std::optional<Rect> clip_update(const Rect& damage, uint32_t width, uint32_t height, const ImageView& image,
                                uint32_t src_x, uint32_t src_y);

}  // namespace vgpu

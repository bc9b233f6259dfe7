// What every Display::update() does before it touches pixels: check the image it is handed and clip the damage
// to the scanout and to the part of the image that exists from the source position.
//
//   std::optional<Rect> rect = clip_update(damage, scanout_width, scanout_height, image, src_x, src_y);
//   if (!rect) ...;   // unusable image or source position; rect->empty(): nothing of the damage is on the scanout
//   auto to_copy = rect_to_copy("headless display", scanout, damage, width, height, image, src_x, src_y);
//   if (!to_copy) return;   // nothing to copy (logged when the image could not serve the damage)
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "renderer/image.h"

namespace vgpu {

// A usable ImageView: known format, data, and rows at least width * 4 bytes apart.
bool image_ok(const ImageView& image);

// `damage` clipped to a width x height scanout and to the pixels `image` holds from (src_x, src_y). Empty when
// none of the damage is on the scanout (whatever the image); nullopt when the image is unusable or the source
// position lies outside it.
std::optional<Rect> clip_update(const Rect& damage, uint32_t width, uint32_t height, const ImageView& image,
                                uint32_t src_x, uint32_t src_y);

// clip_update() for Display::update(): nullopt when there is nothing to copy, that is when the damage is not on
// the scanout, or when clip_update() refuses the image or source position (logged at debug level as
// "<who>: update of scanout <scanout> outside its image, dropped"). Otherwise a non-empty rect.
std::optional<Rect> rect_to_copy(std::string_view who, uint32_t scanout, const Rect& damage, uint32_t width,
                                 uint32_t height, const ImageView& image, uint32_t src_x, uint32_t src_y);

}  // namespace vgpu

#include "display/headless_display.h"

#include <png.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/log.h"
#include "display/edid.h"
#include "display/protocol.h"
#include "display/update_rect.h"

namespace vgpu {
namespace {

constexpr uint32_t kBlack = 0xff000000u;  // x8r8g8b8 black, X as 0xff (what converted formats carry)

}  // namespace

HeadlessDisplay::HeadlessDisplay(uint32_t num_scanouts, uint32_t width, uint32_t height)
    : num_scanouts_(std::clamp<uint32_t>(num_scanouts, 1, kMaxScanouts)) {
  const uint32_t w = std::clamp<uint32_t>(width, 1, kMaxScanoutDimension);
  const uint32_t h = std::clamp<uint32_t>(height, 1, kMaxScanoutDimension);
  modes_.resize(num_scanouts_);
  frames_.resize(num_scanouts_);
  cursors_.resize(num_scanouts_);
  for (uint32_t i = 0; i < num_scanouts_; ++i) {
    modes_[i] = ScanoutMode{true, Rect{i * w, 0, w, h}};  // at most 16 * 16384: no overflow
    const auto blob = generate_edid({.width = w, .height = h, .serial = i});
    edids_.emplace_back(blob.begin(), blob.end());
  }
}

std::optional<std::vector<uint8_t>> HeadlessDisplay::edid(uint32_t scanout) const {
  if (scanout >= num_scanouts_) return std::nullopt;
  return edids_[scanout];
}

void HeadlessDisplay::set_scanout(uint32_t scanout, uint32_t width, uint32_t height) {
  if (scanout >= num_scanouts_ || width > kMaxScanoutDimension || height > kMaxScanoutDimension) return;
  Frame& f = frames_[scanout];
  if (width == 0 || height == 0) {
    f = Frame{};
    return;
  }
  f.width = width;
  f.height = height;
  f.pixels.assign(size_t{width} * height, kBlack);
}

void HeadlessDisplay::update(uint32_t scanout, const Rect& damage, const ImageView& image, uint32_t src_x,
                             uint32_t src_y) {
  if (scanout >= num_scanouts_) return;
  Frame& f = frames_[scanout];
  const std::optional<Rect> clipped =
      rect_to_copy("headless display", scanout, damage, f.width, f.height, image, src_x, src_y);
  if (!clipped) return;
  const Rect& rect = *clipped;
  const std::byte* in = image.data + size_t{src_y} * image.stride + size_t{src_x} * kBytesPerPixel;
  for (uint32_t row = 0; row < rect.height; ++row) {
    uint32_t* out = f.pixels.data() + size_t{rect.y + row} * f.width + rect.x;
    // SAFETY: the frame's uint32_t storage is written as bytes; every pixel is 4 of them.
    display::convert_row_to_x8r8g8b8(image.format, in + size_t{row} * image.stride, reinterpret_cast<std::byte*>(out),
                                     rect.width);
  }
}

void HeadlessDisplay::cursor_update(uint32_t scanout, uint32_t x, uint32_t y, uint32_t hot_x, uint32_t hot_y,
                                    std::span<const uint32_t> pixels) {
  if (scanout >= num_scanouts_ || pixels.size() != size_t{kCursorSize} * kCursorSize) return;
  CursorState& c = cursors_[scanout];
  c = CursorState{true, x, y, hot_x, hot_y, std::vector<uint32_t>(pixels.begin(), pixels.end())};
}

void HeadlessDisplay::cursor_move(uint32_t scanout, uint32_t x, uint32_t y) {
  if (scanout >= num_scanouts_) return;
  CursorState& c = cursors_[scanout];
  c.visible = true;
  c.x = x;
  c.y = y;
}

void HeadlessDisplay::cursor_hide(uint32_t scanout) {
  if (scanout >= num_scanouts_) return;
  cursors_[scanout].visible = false;
}

ImageView HeadlessDisplay::frame(uint32_t scanout) const {
  if (scanout >= num_scanouts_ || frames_[scanout].width == 0) return ImageView{};
  const Frame& f = frames_[scanout];
  // SAFETY: a read-only byte view of the frame's uint32_t storage.
  return ImageView{reinterpret_cast<const std::byte*>(f.pixels.data()), f.width, f.height, f.width * kBytesPerPixel,
                   PixelFormat::B8G8R8X8};
}

const HeadlessDisplay::CursorState* HeadlessDisplay::cursor(uint32_t scanout) const {
  return scanout < num_scanouts_ ? &cursors_[scanout] : nullptr;
}

Result<void, std::string> HeadlessDisplay::write_png(uint32_t scanout, const std::string& path) const {
  if (scanout >= num_scanouts_) return fail("no scanout " + std::to_string(scanout));
  const Frame& f = frames_[scanout];
  if (f.width == 0) return fail("scanout " + std::to_string(scanout) + " shows nothing");
  std::vector<uint8_t> rgb(size_t{f.width} * f.height * 3);
  for (size_t i = 0; i < f.pixels.size(); ++i) {
    const uint32_t p = f.pixels[i];
    rgb[i * 3 + 0] = (p >> 16) & 0xff;
    rgb[i * 3 + 1] = (p >> 8) & 0xff;
    rgb[i * 3 + 2] = p & 0xff;
  }
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = f.width;
  image.height = f.height;
  image.format = PNG_FORMAT_RGB;
  // The simplified API reports errors through image.message instead of longjmp: safe from C++.
  const int ok =
      png_image_write_to_file(&image, path.c_str(), 0, rgb.data(), static_cast<png_int_32>(f.width * 3), nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  if (ok == 0) return fail("writing " + path + ": " + message);
  return {};
}

Result<std::vector<std::string>, std::string> HeadlessDisplay::write_all_png(
    const std::string& directory_or_prefix) const {
  std::error_code ec;
  const bool directory = std::filesystem::is_directory(directory_or_prefix, ec);
  const std::string base = directory ? directory_or_prefix + "/scanout-" : directory_or_prefix;
  std::vector<std::string> written;
  for (uint32_t i = 0; i < num_scanouts_; ++i) {
    if (frames_[i].width == 0) continue;
    std::string path = base + std::to_string(i) + ".png";
    if (auto r = write_png(i, path); !r) return fail(r.error());
    written.push_back(std::move(path));
  }
  return written;
}

}  // namespace vgpu

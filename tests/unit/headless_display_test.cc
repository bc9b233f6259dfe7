// HeadlessDisplay: the configured layout and EDIDs, updates landing in the kept frame (every pixel format,
// clipping), cursor state, and PNGs written with libpng and read back with it.
#include "display/headless_display.h"

#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "display/edid.h"

namespace vgpu {
namespace {

struct Png {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t format = 0;
  std::vector<uint8_t> rgb;
};

// Reads a PNG back as 8-bit RGB with libpng's simplified API; width 0 on failure.
Png read_png(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  Png out;
  const bool begun = png_image_begin_read_from_file(&image, path.c_str()) != 0;
  out.format = image.format;
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> buf(PNG_IMAGE_SIZE(image));
  const bool read = begun && png_image_finish_read(&image, nullptr, buf.data(), 0, nullptr) != 0;
  png_image_free(&image);
  out.width = read ? image.width : 0;
  out.height = read ? image.height : 0;
  out.rgb = std::move(buf);
  return out;
}

std::array<uint8_t, 3> rgb_at(const Png& png, uint32_t x, uint32_t y) {
  const size_t i = (size_t{y} * png.width + x) * 3;
  return {png.rgb[i], png.rgb[i + 1], png.rgb[i + 2]};
}

uint32_t frame_pixel(const HeadlessDisplay& d, uint32_t scanout, uint32_t x, uint32_t y) {
  const ImageView v = d.frame(scanout);
  uint32_t p = 0;
  std::memcpy(&p, v.data + size_t{y} * v.stride + size_t{x} * 4, 4);
  return p;
}

ImageView view_of(const std::vector<uint32_t>& pixels, uint32_t w, uint32_t h, PixelFormat f = PixelFormat::B8G8R8X8) {
  return ImageView{reinterpret_cast<const std::byte*>(pixels.data()), w, h, w * 4, f};
}

class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "vgpu-headless-XXXXXX").string();
    path_ = ::mkdtemp(templ.data()) != nullptr ? templ : std::string();
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(HeadlessDisplay, Constructed_ReportsConfiguredLayoutSideBySide) {
  HeadlessDisplay d(2, 800, 600);

  EXPECT_EQ(d.display_info(), (std::vector<ScanoutMode>{{true, {0, 0, 800, 600}}, {true, {800, 0, 800, 600}}}));
  EXPECT_FALSE(d.pending());
  EXPECT_TRUE(d.alive());
  EXPECT_EQ(d.fd(), -1);
}

TEST(HeadlessDisplay, DefaultSize_Is1280x800) {
  HeadlessDisplay d(1);

  EXPECT_EQ(d.display_info()->at(0).rect, (Rect{0, 0, 1280, 800}));
}

TEST(HeadlessDisplay, Edid_ValidAndPrefersConfiguredSize) {
  HeadlessDisplay d(2, 1920, 1080);

  const auto blob = d.edid(1).value();
  const auto mode = edid_preferred_mode(blob).value();

  EXPECT_TRUE(d.edid_supported());
  EXPECT_TRUE(edid_valid(blob));
  EXPECT_EQ((std::array<uint32_t, 2>{mode.width, mode.height}), (std::array<uint32_t, 2>{1920, 1080}));
  EXPECT_FALSE(d.edid(2).has_value());
}

TEST(HeadlessDisplay, SetScanout_FrameIsBlackOfThatSize) {
  HeadlessDisplay d(1);

  d.set_scanout(0, 16, 8);

  EXPECT_EQ((std::array<uint32_t, 3>{d.frame(0).width, d.frame(0).height, d.frame(0).stride}),
            (std::array<uint32_t, 3>{16, 8, 64}));
  EXPECT_EQ(frame_pixel(d, 0, 15, 7), 0xff000000u);
}

TEST(HeadlessDisplay, DisabledScanout_HasNoFrame) {
  HeadlessDisplay d(1);
  d.set_scanout(0, 16, 8);

  d.set_scanout(0, 0, 0);

  EXPECT_EQ(d.frame(0).width, 0u);
  EXPECT_EQ(d.frame(5).width, 0u);
}

TEST(HeadlessDisplay, Update_LandsAtDamageFromSourceOffset) {
  HeadlessDisplay d(1);
  d.set_scanout(0, 8, 8);
  std::vector<uint32_t> src(16 * 16);
  for (uint32_t i = 0; i < src.size(); ++i) src[i] = i;

  d.update(0, Rect{2, 3, 2, 2}, view_of(src, 16, 16), 5, 6);

  EXPECT_EQ(frame_pixel(d, 0, 2, 3), 0xff000000u | (6 * 16 + 5));
  EXPECT_EQ(frame_pixel(d, 0, 3, 4), 0xff000000u | (7 * 16 + 6));
  EXPECT_EQ(frame_pixel(d, 0, 4, 3), 0xff000000u);
  EXPECT_EQ(frame_pixel(d, 0, 1, 3), 0xff000000u);
}

TEST(HeadlessDisplay, UpdateBeyondScanout_Clipped) {
  HeadlessDisplay d(1);
  d.set_scanout(0, 4, 4);
  std::vector<uint32_t> src(64 * 64, 0x00abcdef);

  d.update(0, Rect{2, 2, 1000, 1000}, view_of(src, 64, 64), 0, 0);

  EXPECT_EQ(frame_pixel(d, 0, 3, 3), 0xffabcdefu);
  EXPECT_EQ(frame_pixel(d, 0, 1, 1), 0xff000000u);
}

TEST(HeadlessDisplay, UpdateWithSourceOutsideImage_Ignored) {
  HeadlessDisplay d(1);
  d.set_scanout(0, 4, 4);
  std::vector<uint32_t> src(4, 0x00abcdef);

  d.update(0, Rect{0, 0, 2, 2}, view_of(src, 2, 2), 2, 0);

  EXPECT_EQ(frame_pixel(d, 0, 0, 0), 0xff000000u);
}

TEST(HeadlessDisplay, UpdateR8G8B8A8_StoredAsX8R8G8B8) {
  HeadlessDisplay d(1);
  d.set_scanout(0, 1, 1);
  const std::array<uint8_t, 4> rgba = {0x10, 0x20, 0x30, 0x00};  // R, G, B, A

  d.update(0, Rect{0, 0, 1, 1},
           ImageView{reinterpret_cast<const std::byte*>(rgba.data()), 1, 1, 4, PixelFormat::R8G8B8A8}, 0, 0);

  EXPECT_EQ(frame_pixel(d, 0, 0, 0), 0xff102030u);
}

TEST(HeadlessDisplay, WritePng_RereadPixelsMatch) {
  TempDir dir;
  HeadlessDisplay d(1);
  d.set_scanout(0, 3, 2);
  const std::vector<uint32_t> src = {0x00ff0000, 0x0000ff00, 0x000000ff, 0x00123456, 0x00ffffff, 0x00000000};
  d.update(0, Rect{0, 0, 3, 2}, view_of(src, 3, 2), 0, 0);
  const std::string path = dir.path() + "/out.png";

  const auto written = d.write_png(0, path);
  const Png png = read_png(path);

  ASSERT_TRUE(written.has_value()) << written.error();
  EXPECT_EQ(png.format, static_cast<uint32_t>(PNG_FORMAT_RGB));  // 8-bit RGB, no alpha
  ASSERT_EQ((std::array<uint32_t, 2>{png.width, png.height}), (std::array<uint32_t, 2>{3, 2}));
  EXPECT_EQ(rgb_at(png, 0, 0), (std::array<uint8_t, 3>{0xff, 0x00, 0x00}));
  EXPECT_EQ(rgb_at(png, 1, 0), (std::array<uint8_t, 3>{0x00, 0xff, 0x00}));
  EXPECT_EQ(rgb_at(png, 2, 0), (std::array<uint8_t, 3>{0x00, 0x00, 0xff}));
  EXPECT_EQ(rgb_at(png, 0, 1), (std::array<uint8_t, 3>{0x12, 0x34, 0x56}));
  EXPECT_EQ(rgb_at(png, 1, 1), (std::array<uint8_t, 3>{0xff, 0xff, 0xff}));
  EXPECT_EQ(rgb_at(png, 2, 1), (std::array<uint8_t, 3>{0x00, 0x00, 0x00}));
}

TEST(HeadlessDisplay, WritePngOfDisabledScanout_Fails) {
  TempDir dir;
  HeadlessDisplay d(1);

  const auto r = d.write_png(0, dir.path() + "/none.png");

  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/none.png"));
}

TEST(HeadlessDisplay, WritePngToMissingDirectory_FailsWithMessage) {
  HeadlessDisplay d(1);
  d.set_scanout(0, 2, 2);

  const auto r = d.write_png(0, "/nonexistent-dir-vgpu/x.png");

  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("/nonexistent-dir-vgpu/x.png"), std::string::npos);
}

TEST(HeadlessDisplay, WriteAllPngIntoDirectory_WritesEachEnabledScanout) {
  TempDir dir;
  HeadlessDisplay d(3);
  d.set_scanout(0, 4, 4);
  d.set_scanout(2, 8, 2);

  const auto r = d.write_all_png(dir.path());

  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*r, (std::vector<std::string>{dir.path() + "/scanout-0.png", dir.path() + "/scanout-2.png"}));
  EXPECT_EQ(read_png(dir.path() + "/scanout-2.png").width, 8u);
}

TEST(HeadlessDisplay, WriteAllPngWithPrefix_AppendsIndex) {
  TempDir dir;
  HeadlessDisplay d(1);
  d.set_scanout(0, 4, 4);

  const auto r = d.write_all_png(dir.path() + "/shot-");

  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*r, (std::vector<std::string>{dir.path() + "/shot-0.png"}));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/shot-0.png"));
}

TEST(HeadlessDisplay, CursorUpdateMoveHide_StateKept) {
  HeadlessDisplay d(1);
  const std::vector<uint32_t> image(64 * 64, 0x80ff0000);

  d.cursor_update(0, 10, 20, 1, 2, image);
  d.cursor_move(0, 30, 40);
  const bool visible_after_move = d.cursor(0)->visible;
  d.cursor_hide(0);

  const auto* c = d.cursor(0);
  EXPECT_TRUE(visible_after_move);
  EXPECT_FALSE(c->visible);
  EXPECT_EQ((std::array<uint32_t, 4>{c->x, c->y, c->hot_x, c->hot_y}), (std::array<uint32_t, 4>{30, 40, 1, 2}));
  EXPECT_EQ(c->image, image);
  EXPECT_EQ(d.cursor(1), nullptr);
}

TEST(HeadlessDisplay, CursorWrongSize_Ignored) {
  HeadlessDisplay d(1);
  const std::vector<uint32_t> image(10, 1);

  d.cursor_update(0, 10, 20, 1, 2, image);

  EXPECT_TRUE(d.cursor(0)->image.empty());
  EXPECT_FALSE(d.cursor(0)->visible);
}

}  // namespace
}  // namespace vgpu

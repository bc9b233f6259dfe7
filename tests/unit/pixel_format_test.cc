// pixel_format.h's table, each column checked against the source it restates: the spec's wire values,
// libdrm's fourccs, pixman's reading of the bytes, and the UPDATE conversion.
#include "renderer/pixel_format.h"

#include <gtest/gtest.h>
#include <libdrm/drm_fourcc.h>
#include <linux/virtio_gpu.h>
#include <pixman.h>

#include <array>
#include <cstring>
#include <set>

#include "display/protocol.h"

namespace vgpu {
namespace {

// The wire values themselves: soft2d_renderer_test.cc (PixelFormat.FromVirtio_*).
TEST(PixelFormatTable, UnnamedValue_HasNoNameAndNoFourcc) {
  EXPECT_EQ(drm_fourcc_of(static_cast<PixelFormat>(5)), 0u);
  EXPECT_EQ(to_string(static_cast<PixelFormat>(5)), "unknown format");
  EXPECT_FALSE(is_known_format(static_cast<PixelFormat>(5)));
}

TEST(PixelFormatTable, DrmFourccs_AreLibdrms) {
  EXPECT_EQ(drm_fourcc_of(PixelFormat::B8G8R8A8), uint32_t{DRM_FORMAT_ARGB8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::B8G8R8X8), uint32_t{DRM_FORMAT_XRGB8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::A8R8G8B8), uint32_t{DRM_FORMAT_BGRA8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::X8R8G8B8), uint32_t{DRM_FORMAT_BGRX8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::R8G8B8A8), uint32_t{DRM_FORMAT_ABGR8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::X8B8G8R8), uint32_t{DRM_FORMAT_RGBX8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::A8B8G8R8), uint32_t{DRM_FORMAT_RGBA8888});
  EXPECT_EQ(drm_fourcc_of(PixelFormat::R8G8B8X8), uint32_t{DRM_FORMAT_XBGR8888});
}

// One pixel (R 0x11, G 0x22, B 0x33, A 0x44) laid out as a row's `bytes` say.
std::array<std::byte, 4> sample_pixel(const PixelFormatInfo& info) {
  std::array<std::byte, 4> px{std::byte{0x99}, std::byte{0x99}, std::byte{0x99}, std::byte{0x99}};
  px[info.bytes.r] = std::byte{0x11};
  px[info.bytes.g] = std::byte{0x22};
  px[info.bytes.b] = std::byte{0x33};
  if (info.bytes.a != kNoAlpha) px[info.bytes.a] = std::byte{0x44};
  return px;
}

TEST(PixelFormatTable, EveryRow_PixmanAndUpdateConversionReadTheSameChannels) {
  std::set<uint32_t> wires;
  for (const PixelFormatInfo& info : kPixelFormats) {
    SCOPED_TRACE(std::string(info.name));
    EXPECT_TRUE(wires.insert(static_cast<uint32_t>(info.format)).second);
    EXPECT_EQ(PIXMAN_FORMAT_BPP(info.pixman), 32);
    EXPECT_EQ(PIXMAN_FORMAT_A(info.pixman) == 0, info.bytes.a == kNoAlpha);
    auto px = sample_pixel(info);

    // pixman composites the pixel into a8r8g8b8: the channels must come out where the row says they are.
    uint32_t src_word = 0;
    std::memcpy(&src_word, px.data(), 4);
    uint32_t dst_word = 0;
    pixman_image_t* src = pixman_image_create_bits(info.pixman, 1, 1, &src_word, 4);
    pixman_image_t* dst = pixman_image_create_bits(PIXMAN_a8r8g8b8, 1, 1, &dst_word, 4);
    pixman_image_composite32(PIXMAN_OP_SRC, src, nullptr, dst, 0, 0, 0, 0, 0, 0, 1, 1);
    pixman_image_unref(src);
    pixman_image_unref(dst);
    EXPECT_EQ(dst_word & 0x00ffffffu, 0x00112233u);
    EXPECT_EQ(dst_word >> 24, info.bytes.a == kNoAlpha ? 0xffu : 0x44u);

    // The UPDATE conversion gives the same colour (byte 3 is not looked at: X, or the alpha QEMU ignores).
    std::array<std::byte, 4> out{};
    display::convert_row_to_x8r8g8b8(info.format, px.data(), out.data(), 1);
    uint32_t out_word = 0;
    std::memcpy(&out_word, out.data(), 4);
    EXPECT_EQ(out_word & 0x00ffffffu, 0x00112233u);
  }
  EXPECT_EQ(wires.size(), 8u);
}

}  // namespace
}  // namespace vgpu

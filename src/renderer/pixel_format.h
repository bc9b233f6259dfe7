// The one table of pixel formats: for each of the eight 32-bit formats virtio-gpu defines (spec 5.7.6.8
// "enum virtio_gpu_formats"), its wire value, name, where its channels sit in memory, the pixman format that
// reads it (soft2d), the DRM fourcc of its packed word (dma-buf scanouts) and how a row becomes the
// x8r8g8b8 of vhost-user-gpu's UPDATE. Every other place asks this table; adding a format is one row.
//
// virtio names a format by its bytes in memory (B8G8R8A8: byte 0 is blue); pixman and DRM name the packed
// little-endian 32-bit word (the same format is PIXMAN_a8r8g8b8 / DRM_FORMAT_ARGB8888). This build is for
// little-endian hosts only (x86-64, arm64): see the static_assert.
//
//   const PixelFormatInfo& i = pixel_format_info(PixelFormat::B8G8R8X8);   // i.pixman == PIXMAN_x8r8g8b8
//   std::optional<PixelFormat> f = pixel_format_from_virtio(wire_value);     // nullopt: not a 2D format
#pragma once

#include <linux/virtio_gpu.h>
#include <pixman.h>

#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string_view>

namespace vgpu {

static_assert(std::endian::native == std::endian::little, "the pixman and DRM columns assume a little-endian host");

// The wire values of the eight formats, as the kernel's virtio-gpu uapi header names them.
enum class PixelFormat : uint32_t {
  B8G8R8A8 = VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM,
  B8G8R8X8 = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
  A8R8G8B8 = VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM,
  X8R8G8B8 = VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM,
  R8G8B8A8 = VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM,
  X8B8G8R8 = VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM,
  A8B8G8R8 = VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM,
  R8G8B8X8 = VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM,
};

constexpr uint32_t kBytesPerPixel = 4;  // every virtio-gpu 2D format is 32 bits per pixel

constexpr uint32_t drm_fourcc_code(char a, char b, char c, char d) {
  return static_cast<uint32_t>(static_cast<uint8_t>(a)) | static_cast<uint32_t>(static_cast<uint8_t>(b)) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(c)) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(d)) << 24;
}
// The values of <drm/drm_fourcc.h> (tests/unit/pixel_format_test.cc checks them against libdrm's copy).
constexpr uint32_t kDrmFormatArgb8888 = drm_fourcc_code('A', 'R', '2', '4');
constexpr uint32_t kDrmFormatXrgb8888 = drm_fourcc_code('X', 'R', '2', '4');
constexpr uint32_t kDrmFormatBgra8888 = drm_fourcc_code('B', 'A', '2', '4');
constexpr uint32_t kDrmFormatBgrx8888 = drm_fourcc_code('B', 'X', '2', '4');
constexpr uint32_t kDrmFormatAbgr8888 = drm_fourcc_code('A', 'B', '2', '4');
constexpr uint32_t kDrmFormatXbgr8888 = drm_fourcc_code('X', 'B', '2', '4');
constexpr uint32_t kDrmFormatRgba8888 = drm_fourcc_code('R', 'A', '2', '4');
constexpr uint32_t kDrmFormatRgbx8888 = drm_fourcc_code('R', 'X', '2', '4');

// Where each channel sits in a pixel's four bytes, in memory order. kNoAlpha: an X format, opaque.
constexpr uint8_t kNoAlpha = 0xff;
struct ChannelBytes {
  uint8_t a, r, g, b;
};

// How a pixel read as a little-endian word w becomes 0x??RRGGBB (x8r8g8b8): the four byte orders.
enum class ToXrgb : uint8_t {
  Same,       // bytes B G R A/X: w = 0xAARRGGBB already
  ByteSwap,   // bytes A/X R G B: w = 0xBBGGRRAA
  SwapRB,     // bytes R G B A/X: w = 0xAABBGGRR
  ShiftDown,  // bytes A/X B G R: w = 0xRRGGBBAA
};

struct PixelFormatInfo {
  PixelFormat format;
  std::string_view name;  // the spec's, VIRTIO_GPU_FORMAT_<name>
  ChannelBytes bytes;
  pixman_format_code_t pixman;
  uint32_t drm_fourcc;
  ToXrgb to_xrgb;
};

// One row a format, one column a field: kept aligned so that a column reads down the table.
// clang-format off
inline constexpr std::array<PixelFormatInfo, 8> kPixelFormats{{
    {PixelFormat::B8G8R8A8, "B8G8R8A8_UNORM", {3, 2, 1, 0},        PIXMAN_a8r8g8b8, kDrmFormatArgb8888, ToXrgb::Same},
    {PixelFormat::B8G8R8X8, "B8G8R8X8_UNORM", {kNoAlpha, 2, 1, 0}, PIXMAN_x8r8g8b8, kDrmFormatXrgb8888, ToXrgb::Same},
    {PixelFormat::A8R8G8B8, "A8R8G8B8_UNORM", {0, 1, 2, 3},        PIXMAN_b8g8r8a8, kDrmFormatBgra8888, ToXrgb::ByteSwap},
    {PixelFormat::X8R8G8B8, "X8R8G8B8_UNORM", {kNoAlpha, 1, 2, 3}, PIXMAN_b8g8r8x8, kDrmFormatBgrx8888, ToXrgb::ByteSwap},
    {PixelFormat::R8G8B8A8, "R8G8B8A8_UNORM", {3, 0, 1, 2},        PIXMAN_a8b8g8r8, kDrmFormatAbgr8888, ToXrgb::SwapRB},
    {PixelFormat::X8B8G8R8, "X8B8G8R8_UNORM", {kNoAlpha, 3, 2, 1}, PIXMAN_r8g8b8x8, kDrmFormatRgbx8888, ToXrgb::ShiftDown},
    {PixelFormat::A8B8G8R8, "A8B8G8R8_UNORM", {0, 3, 2, 1},        PIXMAN_r8g8b8a8, kDrmFormatRgba8888, ToXrgb::ShiftDown},
    {PixelFormat::R8G8B8X8, "R8G8B8X8_UNORM", {kNoAlpha, 0, 1, 2}, PIXMAN_x8b8g8r8, kDrmFormatXbgr8888, ToXrgb::SwapRB},
}};
// clang-format on

// The row of a format, or null for a value PixelFormat does not name (a view built from an unchecked wire
// value may hold one).
constexpr const PixelFormatInfo* find_pixel_format(PixelFormat f) {
  for (const PixelFormatInfo& i : kPixelFormats) {
    if (i.format == f) return &i;
  }
  return nullptr;
}

// The row of a named format (PixelFormat values come from pixel_format_from_virtio); B8G8R8X8's for others.
constexpr const PixelFormatInfo& pixel_format_info(PixelFormat f) {
  const PixelFormatInfo* i = find_pixel_format(f);
  return i != nullptr ? *i : kPixelFormats[1];
}

constexpr std::optional<PixelFormat> pixel_format_from_virtio(uint32_t wire) {
  const auto f = static_cast<PixelFormat>(wire);
  if (find_pixel_format(f) == nullptr) return std::nullopt;
  return f;
}

constexpr bool is_known_format(PixelFormat f) {
  return find_pixel_format(f) != nullptr;
}

constexpr std::string_view to_string(PixelFormat f) {
  const PixelFormatInfo* i = find_pixel_format(f);
  return i != nullptr ? i->name : std::string_view("unknown format");
}

constexpr uint32_t drm_fourcc_of(PixelFormat f) {
  const PixelFormatInfo* i = find_pixel_format(f);
  return i != nullptr ? i->drm_fourcc : 0;
}

}  // namespace vgpu

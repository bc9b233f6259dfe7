// Soft2DRenderer (pixman): resource lifetime, the virtio → pixman format table, TRANSFER_TO_HOST_2D copying
// exactly its rectangle from hostile backings, size limits; plus the pixel-format and cursor helpers of image.h.
#include "renderer/soft2d/soft2d_renderer.h"

#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "support/cases.h"
#include "support/fake_guest.h"
#include "support/result_check.h"

namespace vgpu {
namespace {

using test::CaseName;
using test::CaseTest;
using test::error_of;
using test::FakeGuestMemory;

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();
constexpr PixelFormat kAllFormats[] = {PixelFormat::B8G8R8A8, PixelFormat::B8G8R8X8, PixelFormat::A8R8G8B8,
                                       PixelFormat::X8R8G8B8, PixelFormat::R8G8B8A8, PixelFormat::X8B8G8R8,
                                       PixelFormat::A8B8G8R8, PixelFormat::R8G8B8X8};

// A backing pattern with no zero byte, so copied bytes are told apart from the zeroed image.
std::vector<std::byte> pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + 7) % 251 + 1);
  return out;
}

// Every byte of the image, row by row (stride included).
std::vector<std::byte> pixels_of(const ImageView& v) {
  return std::vector<std::byte>(v.data, v.data + size_t{v.height} * v.stride);
}

// What a width x height resource must hold after transferring `rect` from `backing` at `offset` into a zeroed
// image: the spec's rule (row r of the rect at offset + r * stride), written independently of the renderer.
std::vector<std::byte> expected_image(uint32_t width, uint32_t height, const Rect& rect, uint64_t offset,
                                      const std::vector<std::byte>& backing) {
  const size_t stride = size_t{width} * 4;
  std::vector<std::byte> out(stride * height);
  for (uint32_t r = 0; r < rect.height; ++r) {
    const size_t src = offset + r * stride;
    const size_t dst = (rect.y + r) * stride + size_t{rect.x} * 4;
    std::memcpy(out.data() + dst, backing.data() + src, size_t{rect.width} * 4);
  }
  return out;
}

// The offset a Linux guest sends for `rect` (drivers/gpu/drm/virtio: offset = y * pitch + x * cpp).
uint64_t linux_offset(uint32_t width, const Rect& rect) {
  return uint64_t{rect.y} * width * 4 + uint64_t{rect.x} * 4;
}

// How a backing's bytes are placed in guest memory.
enum class Layout { Contiguous, OneByteEntries, SevenByteEntries, AcrossRegions };

class Soft2DRendererTest : public ::testing::Test {
 protected:
  // Two adjacent 1 MiB regions, so a backing can straddle their boundary at 0x110000.
  FakeGuestMemory guest{{{GuestAddress{0x10000}, 0x100000}, {GuestAddress{0x110000}, 0x100000}}};
  Soft2DRenderer renderer;

  GuestScatterList make_list(std::vector<ScatterEntry> entries) const {
    return GuestScatterList::create(guest.memory(), std::move(entries)).value();
  }
  // `data` in one entry.
  GuestScatterList contiguous(const std::vector<std::byte>& data) {
    const GuestAddress a = guest.alloc(data.size());
    guest.write(a, data);
    return make_list({{a, static_cast<uint32_t>(data.size())}});
  }
  // `data` in entries of `piece` bytes (the last may be shorter), each at its own 64-byte-aligned address, so
  // no two entries are contiguous in guest memory.
  GuestScatterList scattered(const std::vector<std::byte>& data, size_t piece) {
    std::vector<ScatterEntry> entries;
    for (size_t at = 0; at < data.size(); at += piece) {
      const size_t n = std::min(piece, data.size() - at);
      const GuestAddress a = guest.alloc(n, 64);
      guest.write(a, std::span(data).subspan(at, n));
      entries.push_back({a, static_cast<uint32_t>(n)});
    }
    return make_list(std::move(entries));
  }
  // `data` in one entry that straddles the boundary between the two regions.
  GuestScatterList across_regions(const std::vector<std::byte>& data) {
    const GuestAddress a = guest.alloc_across_regions(data.size());
    guest.write(a, data);
    return make_list({{a, static_cast<uint32_t>(data.size())}});
  }
  GuestScatterList lay_out(const std::vector<std::byte>& data, Layout layout) {
    switch (layout) {
      case Layout::OneByteEntries: return scattered(data, 1);
      case Layout::SevenByteEntries: return scattered(data, 7);
      case Layout::AcrossRegions: return across_regions(data);
      case Layout::Contiguous: break;
    }
    return contiguous(data);
  }
};

// ---- create / destroy / image ----

TEST_F(Soft2DRendererTest, Create_Valid_ImageZeroedWithStrideWidthTimes4) {
  auto r = renderer.create_resource(1, PixelFormat::B8G8R8X8, 13, 7);

  ASSERT_TRUE(r.has_value());
  const ImageView v = renderer.image(1).value();
  EXPECT_EQ(v.width, 13u);
  EXPECT_EQ(v.height, 7u);
  EXPECT_EQ(v.stride, 52u);
  EXPECT_EQ(v.format, PixelFormat::B8G8R8X8);
  EXPECT_EQ(pixels_of(v), std::vector<std::byte>(52 * 7));
  EXPECT_EQ(renderer.total_bytes(), 52u * 7);
}

TEST_F(Soft2DRendererTest, Create_PixmanImageWrapsSameBuffer) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::R8G8B8A8, 10, 3));

  pixman_image_t* img = renderer.pixman_image(1);

  ASSERT_NE(img, nullptr);
  EXPECT_EQ(static_cast<const void*>(pixman_image_get_data(img)), static_cast<const void*>(renderer.image(1)->data));
  EXPECT_EQ(pixman_image_get_stride(img), 40);
  EXPECT_EQ(pixman_image_get_width(img), 10);
  EXPECT_EQ(pixman_image_get_height(img), 3);
  EXPECT_EQ(pixman_image_get_format(img), PIXMAN_a8b8g8r8);
}

TEST_F(Soft2DRendererTest, Create_DuplicateId_ReturnsInvalidArgumentAndKeepsFirst) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));

  auto r = renderer.create_resource(1, PixelFormat::R8G8B8A8, 8, 8);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), RendererError::InvalidArgument);
  EXPECT_EQ(renderer.image(1)->width, 4u);
  EXPECT_EQ(renderer.image(1)->format, PixelFormat::B8G8R8X8);
  EXPECT_EQ(renderer.total_bytes(), 64u);
}

// A size create_resource refuses, and how.
struct RefusedSizeCase {
  const char* name;
  uint32_t width, height;
  RendererError error;
};
using Soft2DRefusedSize = CaseTest<Soft2DRendererTest, RefusedSizeCase>;

TEST_P(Soft2DRefusedSize, Create_ReturnsErrorAndAllocatesNothing) {
  const RefusedSizeCase& c = GetParam();

  auto r = renderer.create_resource(1, PixelFormat::B8G8R8X8, c.width, c.height);

  EXPECT_EQ(error_of(r), c.error);
  EXPECT_FALSE(renderer.image(1).has_value());
  EXPECT_EQ(renderer.total_bytes(), 0u);
}

// width * 4 wraps to 0 in 32 bits: a naive uint32_t stride would pass every check and allocate nothing.
static_assert(uint32_t{0x40000000} * 4u == 0);

INSTANTIATE_TEST_SUITE_P(
    Sizes, Soft2DRefusedSize,
    testing::Values(RefusedSizeCase{"ZeroWidth_InvalidArgument", 0, 4, RendererError::InvalidArgument},
                    RefusedSizeCase{"ZeroHeight_InvalidArgument", 4, 0, RendererError::InvalidArgument},
                    RefusedSizeCase{"WidthTimes4Wraps32Bits_OutOfMemory", 0x40000000, 1, RendererError::OutOfMemory},
                    RefusedSizeCase{"StrideAboveInt32Max_OutOfMemory", 0x20000000, 1, RendererError::OutOfMemory},
                    RefusedSizeCase{"HeightAboveInt32Max_OutOfMemory", 1, 0x80000000, RendererError::OutOfMemory},
                    RefusedSizeCase{"MaxWidthAndHeight_OutOfMemory", 0xffffffff, 0xffffffff,
                                    RendererError::OutOfMemory}),
    CaseName{});

TEST_F(Soft2DRendererTest, Create_16384Square_SucceedsLazilyZeroed) {
  // 1 GiB of address space; calloc hands out untouched zero pages, so only the pages read here are committed.
  auto r = renderer.create_resource(1, PixelFormat::B8G8R8A8, 16384, 16384);

  ASSERT_TRUE(r.has_value());
  const ImageView v = renderer.image(1).value();
  EXPECT_EQ(v.stride, 65536u);
  EXPECT_EQ(v.data[size_t{16383} * 65536 + 65535], std::byte{0});
  EXPECT_EQ(renderer.total_bytes(), uint64_t{1} << 30);
}

TEST(Soft2DRendererCap, Create_BeyondCap_ReturnsOutOfMemory) {
  Soft2DRenderer renderer(/*max_total_bytes=*/64 * 1024);
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 128, 128));  // exactly 64 KiB

  auto r = renderer.create_resource(2, PixelFormat::B8G8R8X8, 1, 1);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), RendererError::OutOfMemory);
  EXPECT_FALSE(renderer.image(2).has_value());
  EXPECT_EQ(renderer.total_bytes(), 64u * 1024);
}

TEST(Soft2DRendererCap, Destroy_FreesItsBytesFromTheCap) {
  Soft2DRenderer renderer(/*max_total_bytes=*/64 * 1024);
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 128, 128));
  renderer.destroy_resource(1);

  auto r = renderer.create_resource(2, PixelFormat::B8G8R8X8, 128, 128);

  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(renderer.total_bytes(), 64u * 1024);
}

TEST(Soft2DRendererCap, Reset_FreesEverythingFromTheCap) {
  Soft2DRenderer renderer(/*max_total_bytes=*/64 * 1024);
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 64, 128));
  ASSERT_TRUE(renderer.create_resource(2, PixelFormat::B8G8R8X8, 64, 128));
  renderer.reset();

  auto r = renderer.create_resource(3, PixelFormat::B8G8R8X8, 128, 128);

  EXPECT_TRUE(r.has_value());
}

TEST_F(Soft2DRendererTest, Destroy_Existing_ImageGone) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));

  renderer.destroy_resource(1);

  EXPECT_FALSE(renderer.image(1).has_value());
  EXPECT_EQ(renderer.pixman_image(1), nullptr);
  EXPECT_EQ(renderer.total_bytes(), 0u);
}

TEST_F(Soft2DRendererTest, Destroy_UnknownId_OthersKept) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));

  renderer.destroy_resource(2);

  EXPECT_TRUE(renderer.image(1).has_value());
}

TEST_F(Soft2DRendererTest, Destroy_ThenCreateSameId_FreshZeroedImage) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));
  ASSERT_TRUE(renderer.transfer_to_host_2d(1, {0, 0, 4, 4}, 0, contiguous(pattern(64))));
  renderer.destroy_resource(1);

  auto r = renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4);

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(pixels_of(*renderer.image(1)), std::vector<std::byte>(64));
}

TEST_F(Soft2DRendererTest, Image_UnknownId_Nullopt) {
  EXPECT_FALSE(renderer.image(7).has_value());
  EXPECT_EQ(renderer.pixman_image(7), nullptr);
}

TEST_F(Soft2DRendererTest, Reset_DropsEveryResource) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));
  ASSERT_TRUE(renderer.create_resource(2, PixelFormat::R8G8B8A8, 4, 4));

  renderer.reset();

  EXPECT_FALSE(renderer.image(1).has_value());
  EXPECT_FALSE(renderer.image(2).has_value());
  EXPECT_EQ(renderer.total_bytes(), 0u);
}

// ---- transfer_to_host_2d ----

// A transfer that must succeed and leave exactly what the spec's rule says (expected_image), from a backing of
// width * height * 4 pattern bytes laid out as `layout`.
struct TransferCase {
  const char* name;
  uint32_t width, height;
  Rect rect;
  uint64_t offset;
  Layout layout;
};
using Soft2DTransfer = CaseTest<Soft2DRendererTest, TransferCase>;

TEST_P(Soft2DTransfer, Transfer_CopiesExactlyTheRect) {
  const TransferCase& c = GetParam();
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, c.width, c.height));
  const auto src = pattern(size_t{c.width} * c.height * 4);

  auto r = renderer.transfer_to_host_2d(1, c.rect, c.offset, lay_out(src, c.layout));

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(pixels_of(*renderer.image(1)), expected_image(c.width, c.height, c.rect, c.offset, src));
}

// The full images equal the backing itself. FullWidthBand is the contiguous fast path with y > 0. The offset
// locates the rect's first byte in the backing; it is not derived from rect.x / rect.y (AtOffsetZero), nor
// need it be pixel aligned (OddOffset). 7-byte entries split pixels and rows at every possible place; the fast
// path reads across all of them.
INSTANTIATE_TEST_SUITE_P(
    Cases, Soft2DTransfer,
    testing::Values(
        TransferCase{"FullImage_CopiesWholeBacking", 16, 8, {0, 0, 16, 8}, 0, Layout::Contiguous},
        TransferCase{
            "SubRect_CopiesExactlyTheRect", 16, 8, {3, 2, 5, 4}, linux_offset(16, {3, 2, 5, 4}), Layout::Contiguous},
        TransferCase{"FullWidthBand_CopiesOnlyThoseRows",
                     16,
                     8,
                     {0, 3, 16, 2},
                     linux_offset(16, {0, 3, 16, 2}),
                     Layout::Contiguous},
        TransferCase{"SubRectAtOffsetZero_ReadsRowsFromBackingStart", 16, 8, {3, 2, 5, 4}, 0, Layout::Contiguous},
        TransferCase{"OddOffset_UsedAsGiven", 16, 8, {1, 1, 6, 3}, 7, Layout::Contiguous},
        TransferCase{"OneByteEntries_SameAsContiguous",
                     8,
                     4,
                     {1, 1, 5, 2},
                     linux_offset(8, {1, 1, 5, 2}),
                     Layout::OneByteEntries},
        TransferCase{"FullImageFromOddSizedEntries_SameAsContiguous", 9, 5, {0, 0, 9, 5}, 0, Layout::SevenByteEntries},
        TransferCase{"BackingAcrossRegionBoundary_CopiesBothParts",
                     16,
                     8,
                     {2, 1, 12, 6},
                     linux_offset(16, {2, 1, 12, 6}),
                     Layout::AcrossRegions}),
    CaseName{});

TEST_F(Soft2DRendererTest, Transfer_TwoRects_SecondKeepsFirst) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 16, 8));
  const auto src = pattern(16 * 8 * 4);
  const GuestScatterList backing = contiguous(src);
  const Rect a{0, 0, 4, 4};
  const Rect b{8, 4, 8, 4};
  ASSERT_TRUE(renderer.transfer_to_host_2d(1, a, linux_offset(16, a), backing));

  auto r = renderer.transfer_to_host_2d(1, b, linux_offset(16, b), backing);

  ASSERT_TRUE(r.has_value());
  auto expected = expected_image(16, 8, a, 0, src);
  const auto second = expected_image(16, 8, b, linux_offset(16, b), src);
  std::transform(expected.begin(), expected.end(), second.begin(), expected.begin(),
                 [](std::byte x, std::byte y) { return x | y; });
  EXPECT_EQ(pixels_of(*renderer.image(1)), expected);
}

TEST_F(Soft2DRendererTest, Transfer_BackingEndsAtLastRowOfRect_Succeeds) {
  // The backing must hold offset + (h - 1) * stride + w * 4 bytes, not h * stride.
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 16, 8));
  const Rect rect{3, 2, 5, 4};
  const auto src = pattern(linux_offset(16, rect) + 3 * 64 + 5 * 4);

  auto r = renderer.transfer_to_host_2d(1, rect, linux_offset(16, rect), contiguous(src));

  EXPECT_TRUE(r.has_value());
}

// A transfer refused with InvalidArgument, from a contiguous backing of `backing_bytes` pattern bytes.
struct RefusedTransferCase {
  const char* name;
  size_t backing_bytes;
  uint32_t width, height;
  Rect rect;
  uint64_t offset;
};
using Soft2DRefusedTransfer = CaseTest<Soft2DRendererTest, RefusedTransferCase>;

TEST_P(Soft2DRefusedTransfer, Transfer_ReturnsInvalidArgumentAndCopiesNothing) {
  const auto& [name, backing_bytes, width, height, rect, offset] = GetParam();
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, width, height));

  auto r = renderer.transfer_to_host_2d(1, rect, offset, contiguous(pattern(backing_bytes)));

  EXPECT_EQ(error_of(r), RendererError::InvalidArgument);
  EXPECT_EQ(pixels_of(*renderer.image(1)), std::vector<std::byte>(size_t{width} * height * 4));
}

// offset + extent wraps to a small number that a naive `offset + extent <= size` would accept.
static_assert(kMax64 - 3 + uint64_t{16} == 12);
// x + width wraps to 1 in 32 bits, which a naive `x + width <= resource width` would accept.
static_assert(uint32_t{0xffffffff} + uint32_t{2} == 1);

// The backing must hold offset + (h - 1) * stride + w * 4 bytes: the OneByteShort cases have one less.
INSTANTIATE_TEST_SUITE_P(
    Cases, Soft2DRefusedTransfer,
    testing::Values(RefusedTransferCase{"SubRectBackingOneByteShort",
                                        linux_offset(16, {3, 2, 5, 4}) + 3 * 64 + 5 * 4 - 1,
                                        16,
                                        8,
                                        {3, 2, 5, 4},
                                        linux_offset(16, {3, 2, 5, 4})},
                    RefusedTransferCase{"FullImageBackingOneByteShort", 16 * 8 * 4 - 1, 16, 8, {0, 0, 16, 8}, 0},
                    RefusedTransferCase{"OffsetNearTwoToThe64", 64, 4, 4, {0, 0, 4, 1}, kMax64 - 3},
                    RefusedTransferCase{"RectPastRightEdge", 16 * 8 * 4, 16, 8, {12, 0, 5, 1}, 0},
                    RefusedTransferCase{"RectXPlusWidthWraps", 16 * 8 * 4, 16, 8, {0xffffffff, 0, 2, 1}, 0},
                    RefusedTransferCase{"RectYPlusHeightWraps", 16 * 8 * 4, 16, 8, {0, 0xffffffff, 1, 2}, 0}),
    CaseName{});

TEST_F(Soft2DRendererTest, Transfer_EmptyBacking_ReturnsInvalidArgument) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));

  auto r = renderer.transfer_to_host_2d(1, {0, 0, 1, 1}, 0, make_list({}));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), RendererError::InvalidArgument);
}

TEST_F(Soft2DRendererTest, Transfer_EmptyRect_SucceedsAndCopiesNothing) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 4, 4));

  auto r = renderer.transfer_to_host_2d(1, {1, 1, 0, 3}, 0, make_list({}));

  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(pixels_of(*renderer.image(1)), std::vector<std::byte>(64));
}

TEST_F(Soft2DRendererTest, Transfer_UnknownId_ReturnsInvalidResource) {
  auto r = renderer.transfer_to_host_2d(9, {0, 0, 1, 1}, 0, contiguous(pattern(4)));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), RendererError::InvalidResource);
}

TEST_F(Soft2DRendererTest, Transfer_RegionRemovedUnderBacking_ReturnsGuestMemoryAndResourceStaysValid) {
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, 16, 8));
  const GuestScatterList backing = across_regions(pattern(16 * 8 * 4));
  ASSERT_TRUE(guest.memory().remove_region(guest.regions()[1]));

  auto r = renderer.transfer_to_host_2d(1, {1, 0, 15, 8}, 4, backing);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), RendererError::GuestMemory);
  const ImageView v = renderer.image(1).value();
  EXPECT_EQ(v.width, 16u);
  EXPECT_EQ(v.height, 8u);
  EXPECT_EQ(v.stride, 64u);
}

// ---- formats: virtio (bytes in memory) → pixman (bits of a native 32-bit word) ----

// One pixel in each format, spelled byte by byte from the virtio name (red 0x11, green 0x22, blue 0x33, alpha
// 0x44, X padding 0x99), and the 0xAARRGGBB word it must read as (X formats are opaque).
struct FormatCase {
  PixelFormat format;
  std::array<uint8_t, 4> memory;
  uint32_t argb;
};

constexpr FormatCase kFormatCases[] = {
    {PixelFormat::B8G8R8A8, {0x33, 0x22, 0x11, 0x44}, 0x44112233},
    {PixelFormat::B8G8R8X8, {0x33, 0x22, 0x11, 0x99}, 0xff112233},
    {PixelFormat::A8R8G8B8, {0x44, 0x11, 0x22, 0x33}, 0x44112233},
    {PixelFormat::X8R8G8B8, {0x99, 0x11, 0x22, 0x33}, 0xff112233},
    {PixelFormat::R8G8B8A8, {0x11, 0x22, 0x33, 0x44}, 0x44112233},
    {PixelFormat::X8B8G8R8, {0x99, 0x33, 0x22, 0x11}, 0xff112233},
    {PixelFormat::A8B8G8R8, {0x44, 0x33, 0x22, 0x11}, 0x44112233},
    {PixelFormat::R8G8B8X8, {0x11, 0x22, 0x33, 0x99}, 0xff112233},
};

std::vector<std::byte> as_bytes(const std::array<uint8_t, 4>& a) {
  return {std::byte{a[0]}, std::byte{a[1]}, std::byte{a[2]}, std::byte{a[3]}};
}

// The pixel of a 1x1 pixman image, converted by pixman itself to a8r8g8b8.
uint32_t pixman_argb(pixman_image_t* src) {
  uint32_t out = 0;
  pixman_image_t* dst = pixman_image_create_bits(PIXMAN_a8r8g8b8, 1, 1, &out, 4);
  pixman_image_composite32(PIXMAN_OP_SRC, src, nullptr, dst, 0, 0, 0, 0, 0, 0, 1, 1);
  pixman_image_unref(dst);
  return out;
}

class Soft2DFormatTest : public Soft2DRendererTest, public ::testing::WithParamInterface<FormatCase> {};

TEST_P(Soft2DFormatTest, ToPixmanFormat_Any_Is32BitsPerPixel) {
  const pixman_format_code_t f = to_pixman_format(GetParam().format);

  EXPECT_EQ(PIXMAN_FORMAT_BPP(f), 32);
  EXPECT_TRUE(pixman_format_supported_source(f));
  EXPECT_TRUE(pixman_format_supported_destination(f));
}

TEST_P(Soft2DFormatTest, Create_Any_PixmanImageHasMappedFormat) {
  ASSERT_TRUE(renderer.create_resource(1, GetParam().format, 2, 2));

  EXPECT_EQ(pixman_image_get_format(renderer.pixman_image(1)), to_pixman_format(GetParam().format));
}

TEST_P(Soft2DFormatTest, Transfer_PixelBytesInVirtioOrder_PixmanReadsSameColour) {
  ASSERT_TRUE(renderer.create_resource(1, GetParam().format, 1, 1));
  ASSERT_TRUE(renderer.transfer_to_host_2d(1, {0, 0, 1, 1}, 0, contiguous(as_bytes(GetParam().memory))));

  const uint32_t argb = pixman_argb(renderer.pixman_image(1));

  EXPECT_EQ(argb, GetParam().argb);
}

TEST_P(Soft2DFormatTest, CursorArgb_PixelBytesInVirtioOrder_SameColourAsPixman) {
  ASSERT_TRUE(renderer.create_resource(1, GetParam().format, 1, 1));
  ASSERT_TRUE(renderer.transfer_to_host_2d(1, {0, 0, 1, 1}, 0, contiguous(as_bytes(GetParam().memory))));

  const CursorArgb c = cursor_argb(*renderer.image(1));

  EXPECT_EQ(c[0], GetParam().argb);
  EXPECT_EQ(c[1], 0u);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, Soft2DFormatTest, ::testing::ValuesIn(kFormatCases),
                         [](const ::testing::TestParamInfo<FormatCase>& param_info) {
                           return std::string(to_string(param_info.param.format));
                         });

TEST(Soft2DFormatTable, ToPixmanFormat_AllFormats_Distinct) {
  std::vector<pixman_format_code_t> codes;
  for (PixelFormat f : kAllFormats) codes.push_back(to_pixman_format(f));

  std::sort(codes.begin(), codes.end());

  EXPECT_EQ(std::unique(codes.begin(), codes.end()), codes.end());
}

// ---- image.h: pixel formats, cursor conversion; renderer_2d.h: errors ----

TEST(PixelFormat, FromVirtio_EveryWireValue_RoundTrips) {
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM), PixelFormat::B8G8R8A8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM), PixelFormat::B8G8R8X8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM), PixelFormat::A8R8G8B8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM), PixelFormat::X8R8G8B8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM), PixelFormat::R8G8B8A8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM), PixelFormat::X8B8G8R8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM), PixelFormat::A8B8G8R8);
  EXPECT_EQ(pixel_format_from_virtio(VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM), PixelFormat::R8G8B8X8);
}

TEST(PixelFormat, FromVirtio_UnknownValues_Nullopt) {
  EXPECT_FALSE(pixel_format_from_virtio(0).has_value());
  EXPECT_FALSE(pixel_format_from_virtio(5).has_value());
  EXPECT_FALSE(pixel_format_from_virtio(66).has_value());
  EXPECT_FALSE(pixel_format_from_virtio(0xffffffff).has_value());
}

TEST(PixelFormat, ToString_Any_NamesTheFormat) {
  EXPECT_EQ(to_string(PixelFormat::B8G8R8X8), "B8G8R8X8_UNORM");
  EXPECT_EQ(to_string(PixelFormat::R8G8B8A8), "R8G8B8A8_UNORM");
}

TEST(CursorArgb, SmallImage_OutsideIsTransparent) {
  std::vector<std::byte> data(32 * 4 * 16, std::byte{0x80});
  const ImageView v{.data = data.data(), .width = 32, .height = 16, .stride = 128, .format = PixelFormat::B8G8R8A8};

  const CursorArgb c = cursor_argb(v);

  EXPECT_EQ(c[0], 0x80808080u);
  EXPECT_EQ(c[15 * 64 + 31], 0x80808080u);
  EXPECT_EQ(c[15 * 64 + 32], 0u);
  EXPECT_EQ(c[16 * 64], 0u);
  EXPECT_EQ(c[63 * 64 + 63], 0u);
}

TEST(CursorArgb, LargerImageWithPaddedStride_ClippedTo64AndRowsFollowStride) {
  // 100x70 pixels with 16 bytes of padding per row; each row's first byte holds its row number.
  std::vector<std::byte> data(416 * 70);
  for (size_t y = 0; y < 70; ++y) data[y * 416] = static_cast<std::byte>(y);
  const ImageView v{.data = data.data(), .width = 100, .height = 70, .stride = 416, .format = PixelFormat::B8G8R8X8};

  const CursorArgb c = cursor_argb(v);

  EXPECT_EQ(c[0], 0xff000000u);
  EXPECT_EQ(c[63 * 64], 0xff00003fu);
  EXPECT_EQ(c[63 * 64 + 63], 0xff000000u);
}

TEST(CursorArgb, NullData_AllTransparent) {
  const CursorArgb c = cursor_argb(ImageView{});

  EXPECT_EQ(c, CursorArgb{});
}

TEST(RendererErrorText, EveryError_DistinctText) {
  std::vector<std::string_view> texts = {
      to_string(RendererError::OutOfMemory), to_string(RendererError::InvalidResource),
      to_string(RendererError::InvalidArgument), to_string(RendererError::GuestMemory)};

  std::sort(texts.begin(), texts.end());

  EXPECT_EQ(std::unique(texts.begin(), texts.end()), texts.end());
}

}  // namespace
}  // namespace vgpu

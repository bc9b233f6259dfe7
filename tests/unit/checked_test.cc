// Overflow-safe arithmetic (common/checked.h), with the traps it exists for pinned down.
#include "common/checked.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace vgpu {
namespace {

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMax32 = std::numeric_limits<uint32_t>::max();

// The check every overflow bug starts with.
constexpr bool naive_fits(uint64_t offset, uint64_t len, uint64_t size) {
  return offset + len <= size;
}

// Trap: an offset near 2^64 plus a small length wraps to a small number and passes the naive check.
static_assert(naive_fits(kMax64 - 7, 16, 4096), "the naive check is fooled by a wrapped sum");
static_assert(!range_fits<uint64_t>(kMax64 - 7, 16, 4096));
// Trap: 32-bit guest fields (descriptor lengths, rectangle sizes) wrap just as easily.
static_assert(static_cast<uint32_t>(kMax32 + uint32_t{2}) <= 4096u, "32-bit sums wrap too");
static_assert(!checked_add<uint32_t>(kMax32, 2).has_value());
// Trap: a stride times a height that wraps to a small buffer size.
static_assert(static_cast<uint32_t>(0x10000u * 0x10001u) == 0x10000u, "the product wraps to 64 KiB");
static_assert(!checked_mul<uint32_t>(0x10000u, 0x10001u).has_value());

TEST(CheckedAdd, NoOverflow_ReturnsSum) {
  // Arrange
  const uint64_t a = 40;
  const uint64_t b = 2;

  // Act
  auto sum = checked_add(a, b);

  // Assert
  EXPECT_EQ(sum, std::optional<uint64_t>(42));
}

TEST(CheckedAdd, ExactlyMax_ReturnsMax) {
  auto sum = checked_add<uint64_t>(kMax64 - 1, 1);

  EXPECT_EQ(sum, std::optional<uint64_t>(kMax64));
}

TEST(CheckedAdd, OnePastMax_ReturnsNullopt) {
  auto sum = checked_add<uint64_t>(kMax64, 1);

  EXPECT_FALSE(sum.has_value());
}

TEST(CheckedAdd, Uint16Wrap_ReturnsNullopt) {
  auto sum = checked_add<uint16_t>(0xffff, 1);

  EXPECT_FALSE(sum.has_value());
}

TEST(CheckedSub, BLargerThanA_ReturnsNullopt) {
  auto diff = checked_sub<uint64_t>(1, 2);

  EXPECT_FALSE(diff.has_value());
}

TEST(CheckedSub, Equal_ReturnsZero) {
  auto diff = checked_sub<uint32_t>(7, 7);

  EXPECT_EQ(diff, std::optional<uint32_t>(0));
}

TEST(CheckedMul, NoOverflow_ReturnsProduct) {
  auto product = checked_mul<uint64_t>(1920 * 4, 1080);

  EXPECT_EQ(product, std::optional<uint64_t>(1920ULL * 4 * 1080));
}

TEST(CheckedMul, Overflow_ReturnsNullopt) {
  auto product = checked_mul<uint64_t>(uint64_t{1} << 32, uint64_t{1} << 32);

  EXPECT_FALSE(product.has_value());
}

TEST(CheckedMul, ByZero_ReturnsZero) {
  auto product = checked_mul<uint64_t>(kMax64, 0);

  EXPECT_EQ(product, std::optional<uint64_t>(0));
}

TEST(RangeFits, InsideEndingAtSize_ReturnsTrue) {
  EXPECT_TRUE(range_fits<uint64_t>(4000, 96, 4096));
}

TEST(RangeFits, OneBytePastSize_ReturnsFalse) {
  EXPECT_FALSE(range_fits<uint64_t>(4000, 97, 4096));
}

TEST(RangeFits, OffsetPastSize_ReturnsFalse) {
  EXPECT_FALSE(range_fits<uint64_t>(4097, 0, 4096));
}

TEST(RangeFits, EmptyAtEnd_ReturnsTrue) {
  EXPECT_TRUE(range_fits<uint64_t>(4096, 0, 4096));
}

TEST(RangeFits, SumWrapsPastTwoToThe64_ReturnsFalse) {
  // Arrange: the trap from the static_asserts above, at run time.
  const uint64_t offset = kMax64 - 7;
  const uint64_t len = 16;

  // Act
  const bool naive = naive_fits(offset, len, 4096);
  const bool fits = range_fits<uint64_t>(offset, len, 4096);

  // Assert
  EXPECT_TRUE(naive);
  EXPECT_FALSE(fits);
}

}  // namespace
}  // namespace vgpu

// GuestScatterList: creation checks, reads and writes split across entries and regions, zero-length entries,
// and the offset traps near 2^64.
#include "memory/scatter_list.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "support/fake_guest.h"
#include "support/result_check.h"

namespace vgpu {
namespace {

using test::FakeGuestMemory;

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

// Regions 0 and 1 are adjacent ([0x10000, 0x30000)); region 2 sits after a gap.
constexpr uint64_t kRegion0 = 0x10000;
constexpr uint64_t kRegion1 = 0x20000;
constexpr uint64_t kRegion2 = 0x100000;
constexpr uint64_t kRegionSize = 0x10000;

std::vector<std::byte> pattern(size_t n, int seed) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 7 + static_cast<size_t>(seed)) % 251 + 1);
  return out;
}

std::vector<std::byte> concat(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
  std::vector<std::byte> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

class ScatterListTest : public ::testing::Test {
 protected:
  FakeGuestMemory guest{{{GuestAddress{kRegion0}, kRegionSize},
                         {GuestAddress{kRegion1}, kRegionSize},
                         {GuestAddress{kRegion2}, kRegionSize}}};

  // Writes `data` at `addr` and returns the entry for it.
  ScatterEntry place(uint64_t addr, const std::vector<std::byte>& data) const {
    guest.write(GuestAddress{addr}, data);
    return ScatterEntry{GuestAddress{addr}, static_cast<uint32_t>(data.size())};
  }
  GuestScatterList list(std::vector<ScatterEntry> entries) const {
    return GuestScatterList::create(guest.memory(), std::move(entries)).value();
  }
  // `n` bytes of `l` from `offset`; nullopt when the read fails.
  static std::optional<std::vector<std::byte>> read_at(const GuestScatterList& l, uint64_t offset, size_t n) {
    std::vector<std::byte> out(n);
    if (!l.read(offset, out)) return std::nullopt;
    return out;
  }
};

// ---- create ----

TEST_F(ScatterListTest, Create_EntriesInThreeRegions_SizeIsSumAndEntriesKept) {
  std::vector<ScatterEntry> entries = {
      {GuestAddress{kRegion2}, 0x100}, {GuestAddress{kRegion0}, 0x20}, {GuestAddress{kRegion1 + 0x10}, 0x3}};

  auto l = GuestScatterList::create(guest.memory(), entries);

  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->size(), 0x123u);
  ASSERT_EQ(l->entries().size(), 3u);
  EXPECT_EQ(l->entries()[0].addr, GuestAddress{kRegion2});
  EXPECT_EQ(l->entries()[2].length, 3u);
}

TEST_F(ScatterListTest, Create_EntryAcrossAdjacentRegions_Succeeds) {
  auto l = GuestScatterList::create(guest.memory(), {{GuestAddress{kRegion1 - 0x10}, 0x20}});

  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->size(), 0x20u);
}

TEST_F(ScatterListTest, Create_EntryOutsideMemory_ReturnsOutOfRange) {
  auto l = GuestScatterList::create(guest.memory(), {{GuestAddress{0x50000}, 0x10}});

  EXPECT_EQ(test::error_of(l), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Create_EntryRunningIntoGap_ReturnsOutOfRange) {
  // Starts in region 1 and ends one byte past its end, where nothing is mapped.
  auto l = GuestScatterList::create(guest.memory(), {{GuestAddress{kRegion1 + kRegionSize - 0x10}, 0x11}});

  EXPECT_EQ(test::error_of(l), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Create_EntryWrappingPastTwoToThe64_ReturnsOutOfRange) {
  auto l = GuestScatterList::create(guest.memory(), {{GuestAddress{kMax64 - 1}, 4}});

  EXPECT_EQ(test::error_of(l), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Create_OneBadEntryAfterGoodOnes_ReturnsOutOfRange) {
  auto l = GuestScatterList::create(
      guest.memory(), {{GuestAddress{kRegion0}, 0x10}, {GuestAddress{kRegion2}, 0x10}, {GuestAddress{0}, 1}});

  EXPECT_EQ(test::error_of(l), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Create_NoEntries_SizeZero) {
  auto l = GuestScatterList::create(guest.memory(), {});

  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->size(), 0u);
}

TEST_F(ScatterListTest, Create_ZeroLengthEntryOutsideMemory_AcceptedAsEmpty) {
  // A zero-length entry names no byte, so it cannot be outside memory (GuestMemory::is_valid_range(a, 0)).
  auto l = GuestScatterList::create(guest.memory(), {{GuestAddress{kMax64}, 0}, {GuestAddress{kRegion0}, 4}});

  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->size(), 4u);
}

// The total is a uint64_t sum of uint32_t lengths: even 2^32 maximal entries (64 GiB of entry vector) sum to
// 2^64 - 2^32 without wrapping, so create()'s Overflow branch is a backstop no real list can reach. What can go
// wrong is a 32-bit total or offset; two maximal entries (aliasing the same guest bytes, which is allowed) pin
// 64-bit sums.
static_assert((uint64_t{1} << 32) * uint64_t{0xffffffff} == kMax64 - 0xffffffff);

TEST(ScatterListLarge, Create_TotalAbove4GiB_SizeAndOffsetsAre64Bit) {
  // Arrange: one sparse 4 GiB region; only the touched pages cost memory.
  FakeGuestMemory big({{GuestAddress{0}, 0x1'0000'0000}});
  const auto marker = pattern(8, 3);
  big.write(GuestAddress{0x10}, marker);
  std::vector<ScatterEntry> entries = {{GuestAddress{0}, 0xffffffff}, {GuestAddress{0}, 0xffffffff}};
  auto l = GuestScatterList::create(big.memory(), entries);
  ASSERT_TRUE(l.has_value());
  std::vector<std::byte> out(8);

  // Act: offset 0x10 of the second entry.
  auto r = l->read(0xffffffffull + 0x10, out);

  // Assert
  EXPECT_EQ(l->size(), 0x1'ffff'fffeull);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out, marker);
}

// ---- read / write ----

TEST_F(ScatterListTest, Read_WithinOneEntry_ReturnsThoseBytes) {
  const auto data = pattern(0x40, 1);
  const GuestScatterList l = list({place(kRegion0 + 0x100, data)});

  const auto out = read_at(l, 0x8, 0x10);

  EXPECT_EQ(out, std::vector<std::byte>(data.begin() + 0x8, data.begin() + 0x18));
}

TEST_F(ScatterListTest, Read_AcrossEntryBoundary_JoinsEntriesInListOrder) {
  // The first entry is at the higher guest address: list order, not address order, counts.
  const auto a = pattern(0x30, 1);
  const auto b = pattern(0x50, 2);
  const GuestScatterList l = list({place(kRegion2 + 0x800, a), place(kRegion0 + 0x40, b)});

  const auto out = read_at(l, 0, 0x80);

  EXPECT_EQ(out, concat(a, b));
}

TEST_F(ScatterListTest, Read_StartingInsideSecondEntry_SkipsFirst) {
  const auto a = pattern(0x30, 1);
  const auto b = pattern(0x50, 2);
  const GuestScatterList l = list({place(kRegion2, a), place(kRegion0, b)});

  const auto out = read_at(l, 0x35, 0x10);

  EXPECT_EQ(out, std::vector<std::byte>(b.begin() + 0x5, b.begin() + 0x15));
}

TEST_F(ScatterListTest, Write_AcrossEntryBoundary_SplitsIntoEntries) {
  const GuestScatterList l = list({{GuestAddress{kRegion2 + 0x10}, 3}, {GuestAddress{kRegion0 + 0x20}, 5}});
  const auto data = pattern(8, 4);

  auto r = l.write(0, data);

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(guest.read(GuestAddress{kRegion2 + 0x10}, 3), std::vector<std::byte>(data.begin(), data.begin() + 3));
  EXPECT_EQ(guest.read(GuestAddress{kRegion0 + 0x20}, 5), std::vector<std::byte>(data.begin() + 3, data.end()));
}

TEST_F(ScatterListTest, Read_OneByteEntriesInDescendingAddresses_JoinsThem) {
  const auto data = pattern(16, 5);
  std::vector<ScatterEntry> entries;
  for (size_t i = 0; i < data.size(); ++i) entries.push_back(place(kRegion1 + 0x1000 - 2 * i, {data[i]}));
  const GuestScatterList l = list(entries);

  const auto out = read_at(l, 0, 16);

  EXPECT_EQ(out, data);
}

TEST_F(ScatterListTest, Read_EntryAcrossRegionBoundary_ReadsBothRegions) {
  const auto data = pattern(0x40, 6);
  const GuestScatterList l = list({place(kRegion0 + 0x10, pattern(4, 9)), place(kRegion1 - 0x20, data)});

  const auto out = read_at(l, 4, 0x40);

  EXPECT_EQ(out, data);
}

TEST_F(ScatterListTest, Write_EntryAcrossRegionBoundary_WritesBothRegions) {
  const GuestScatterList l = list({{GuestAddress{kRegion1 - 3}, 6}});
  const auto data = pattern(6, 7);

  auto r = l.write(0, data);

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(guest.read(GuestAddress{kRegion1 - 3}, 6), data);
}

TEST_F(ScatterListTest, Read_ZeroLengthEntriesInterleaved_ContributeNothing) {
  const auto a = pattern(3, 1);
  const auto b = pattern(5, 2);
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0},
                                   place(kRegion0 + 0x100, a),
                                   {GuestAddress{kRegion2}, 0},
                                   {GuestAddress{0x50000}, 0},
                                   place(kRegion2 + 0x100, b),
                                   {GuestAddress{kRegion1}, 0}});
  std::vector<std::byte> out(8);

  auto r = l.read(0, out);

  EXPECT_EQ(l.size(), 8u);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out, concat(a, b));
}

TEST_F(ScatterListTest, Read_AtStartOfEntryAfterZeroLengthEntries_ReadsThatEntry) {
  // Offset 3 is where the zero-length entries and the 5-byte one all start; the read must land in the latter.
  const auto a = pattern(3, 1);
  const auto b = pattern(5, 2);
  const GuestScatterList l =
      list({place(kRegion0, a), {GuestAddress{kRegion2}, 0}, {GuestAddress{kRegion2 + 1}, 0}, place(kRegion1, b)});

  const auto out = read_at(l, 3, 5);

  EXPECT_EQ(out, b);
}

TEST_F(ScatterListTest, Read_LastByteBeforeTrailingZeroLengthEntries_Succeeds) {
  const auto a = pattern(4, 1);
  const GuestScatterList l = list({place(kRegion0, a), {GuestAddress{kRegion1}, 0}, {GuestAddress{kRegion2}, 0}});
  std::vector<std::byte> out(1);

  auto r = l.read(3, out);

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(out[0], a[3]);
}

TEST_F(ScatterListTest, Read_EndingExactlyAtSize_Succeeds) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}, {GuestAddress{kRegion2}, 0x10}});
  std::vector<std::byte> out(0x8);

  auto r = l.read(0x18, out);

  EXPECT_TRUE(r.has_value());
}

TEST_F(ScatterListTest, Read_OneBytePastSize_ReturnsOutOfRange) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}, {GuestAddress{kRegion2}, 0x10}});
  std::vector<std::byte> out(0x9);

  auto r = l.read(0x18, out);

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Read_ZeroBytesAtSize_Succeeds) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}});

  auto r = l.read(0x10, {});

  EXPECT_TRUE(r.has_value());
}

TEST_F(ScatterListTest, Read_ZeroBytesPastSize_ReturnsOutOfRange) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}});

  auto r = l.read(0x11, {});

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Read_OneByteFromEmptyList_ReturnsOutOfRange) {
  const GuestScatterList l = list({});
  std::vector<std::byte> out(1);

  auto r = l.read(0, out);

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
}

// The trap: offset + len wraps to 2, which a naive `offset + len <= size()` would accept.
static_assert(kMax64 - 1 + uint64_t{4} == 2);

TEST_F(ScatterListTest, Read_OffsetNearTwoToThe64_ReturnsOutOfRange) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}});
  std::vector<std::byte> out(4);

  auto r = l.read(kMax64 - 1, out);

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Read_OffsetMax64ZeroBytes_ReturnsOutOfRange) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}});

  auto r = l.read(kMax64, {});

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
}

TEST_F(ScatterListTest, Write_OffsetNearTwoToThe64_ReturnsOutOfRangeAndWritesNothing) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}});
  const auto data = pattern(4, 1);

  auto r = l.write(kMax64 - 1, data);

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
  EXPECT_EQ(guest.read(GuestAddress{kRegion0}, 0x10), std::vector<std::byte>(0x10));
}

TEST_F(ScatterListTest, Write_PastSize_ReturnsOutOfRangeAndWritesNothing) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}, {GuestAddress{kRegion2}, 0x10}});
  const auto data = pattern(0x11, 1);

  auto r = l.write(0x10, data);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(guest.read(GuestAddress{kRegion2}, 0x10), std::vector<std::byte>(0x10));
}

TEST_F(ScatterListTest, Read_RegionRemovedAfterCreate_ReturnsOutOfRange) {
  const GuestScatterList l = list({{GuestAddress{kRegion0}, 0x10}, {GuestAddress{kRegion2}, 0x10}});
  ASSERT_TRUE(guest.memory().remove_region(guest.regions()[2]));
  std::vector<std::byte> out(0x20);

  auto r = l.read(0, out);

  EXPECT_EQ(test::error_of(r), MemoryError::OutOfRange);
}

}  // namespace
}  // namespace vgpu

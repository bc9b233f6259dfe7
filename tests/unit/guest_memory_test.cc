// GuestMemory: regions, bounds, splits across regions, overflow traps, translation, atomic ring accesses.
#include "memory/guest_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "common/unique_fd.h"
#include "support/fake_guest.h"
#include "support/result_check.h"

namespace vgpu {
namespace {

using test::error_of;
using test::FakeGuestMemory;

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

RegionDesc region(uint64_t guest, uint64_t size, uint64_t frontend) {
  return RegionDesc{
      .guest_phys = GuestAddress{guest}, .size = size, .frontend_virt = FrontendVirtAddr{frontend}, .mmap_offset = 0};
}

// `region` with another mmap_offset.
RegionDesc at_offset(RegionDesc d, uint64_t mmap_offset) {
  d.mmap_offset = mmap_offset;
  return d;
}

// A memfd of `size` bytes standing in for the frontend's RAM; invalid when it could not be made that size.
UniqueFd memfd_of(off_t size, const char* name = "guest-memory-test") {
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
  if (fd.valid() && ::ftruncate(fd.get(), size) != 0) fd.reset();
  return fd;
}

// Maps `d` from `fd` and adds it to `mem`.
testing::AssertionResult map_into(GuestMemory& mem, const RegionDesc& d, int fd) {
  auto mapped = MappedRegion::map(d, fd);
  if (!mapped) return testing::AssertionFailure() << "map failed";
  if (!mem.add_region(std::move(*mapped))) return testing::AssertionFailure() << "add_region failed";
  return testing::AssertionSuccess();
}

// Host memory for borrowed regions; big enough for every test below.
struct Backing {
  std::vector<std::byte> data = std::vector<std::byte>(0x4000);
  MappedRegion borrow(const RegionDesc& d, size_t at = 0) { return MappedRegion::borrow(d, data.data() + at); }
};

// An empty GuestMemory and host bytes to borrow regions from.
class GuestMemoryRegions : public ::testing::Test {
 protected:
  Result<void, MemoryError> add(const RegionDesc& d, size_t at = 0) { return mem.add_region(backing.borrow(d, at)); }

  Backing backing;
  GuestMemory mem;
};

// ---- regions ----

TEST_F(GuestMemoryRegions, AddValid_CountsOne) {
  auto r = add(region(0x1000, 0x1000, 0x7000));

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(mem.region_count(), 1u);
}

// A region refused by add_region, with the regions already there.
struct RefusedRegionCase {
  const char* name;
  std::vector<RegionDesc> existing;  // borrowed from the backing's start
  RegionDesc added;                  // borrowed from `at`
  size_t at;
  MemoryError error;
};

class GuestMemoryRegionsRefused : public GuestMemoryRegions, public testing::WithParamInterface<RefusedRegionCase> {};

TEST_P(GuestMemoryRegionsRefused, Add_ReturnsError) {
  const RefusedRegionCase& c = GetParam();
  for (const RegionDesc& d : c.existing) ASSERT_TRUE(add(d));

  auto r = add(c.added, c.at);

  EXPECT_EQ(error_of(r), c.error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GuestMemoryRegionsRefused,
    testing::Values(
        RefusedRegionCase{"ZeroSize", {}, region(0x1000, 0, 0x7000), 0, MemoryError::BadRegion},
        RefusedRegionCase{"GuestRangeWrapping", {}, region(kMax64 - 0xff, 0x200, 0x7000), 0, MemoryError::BadRegion},
        RefusedRegionCase{"FrontendRangeWrapping", {}, region(0x1000, 0x200, kMax64 - 0xff), 0, MemoryError::BadRegion},
        RefusedRegionCase{"OverlappingGuestRange",
                          {region(0x1000, 0x1000, 0x10000)},
                          region(0x1fff, 0x1000, 0x20000),
                          0x1000,
                          MemoryError::Overlap},
        RefusedRegionCase{"OverlappingFrontendRange",
                          {region(0x1000, 0x1000, 0x10000)},
                          region(0x8000, 0x1000, 0x10800),
                          0x1000,
                          MemoryError::Overlap}),
    [](const testing::TestParamInfo<RefusedRegionCase>& param) { return param.param.name; });

TEST_F(GuestMemoryRegions, AddEndingExactlyAtTwoToThe64_Succeeds) {
  auto r = add(region(kMax64 - 0xfff, 0x1000, 0x7000));

  EXPECT_TRUE(r.has_value());
}

TEST_F(GuestMemoryRegions, AddAdjacent_Succeeds) {
  ASSERT_TRUE(add(region(0x1000, 0x1000, 0x10000)));

  auto r = add(region(0x2000, 0x1000, 0x11000), 0x1000);

  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(mem.region_count(), 2u);
}

TEST_F(GuestMemoryRegions, AddBeyondMax_ReturnsTooManyRegions) {
  // Arrange: kMaxRegions one-byte regions, at even addresses so none touch.
  for (uint64_t i = 0; i < GuestMemory::kMaxRegions; ++i) ASSERT_TRUE(add(region(2 * i, 1, 0x10000 + 2 * i), i));

  // Act
  auto r = add(region(0x100000, 1, 0x200000));

  // Assert
  EXPECT_EQ(error_of(r), MemoryError::TooManyRegions);
}

TEST_F(GuestMemoryRegions, AddOutOfOrder_ListedSortedByGuestAddress) {
  ASSERT_TRUE(add(region(0x3000, 0x100, 0x30000)));
  ASSERT_TRUE(add(region(0x1000, 0x100, 0x10000), 0x100));

  auto list = mem.regions();

  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].guest_phys, GuestAddress{0x1000});
  EXPECT_EQ(list[1].guest_phys, GuestAddress{0x3000});
}

TEST_F(GuestMemoryRegions, RemoveExisting_AccessThenFails) {
  ASSERT_TRUE(add(region(0x1000, 0x100, 0x10000)));

  auto removed = mem.remove_region(region(0x1000, 0x100, 0x10000));
  auto read = mem.read<uint32_t>(GuestAddress{0x1000});

  EXPECT_TRUE(removed.has_value());
  EXPECT_EQ(mem.region_count(), 0u);
  EXPECT_EQ(error_of(read), MemoryError::OutOfRange);
}

TEST_F(GuestMemoryRegions, RemoveWithOtherMmapOffset_StillMatches) {
  ASSERT_TRUE(add(region(0x1000, 0x100, 0x10000)));

  auto removed = mem.remove_region(at_offset(region(0x1000, 0x100, 0x10000), 0x5000));

  EXPECT_TRUE(removed.has_value());
}

TEST_F(GuestMemoryRegions, RemoveUnknown_ReturnsNotFound) {
  ASSERT_TRUE(add(region(0x1000, 0x100, 0x10000)));

  auto removed = mem.remove_region(region(0x1000, 0x200, 0x10000));

  EXPECT_EQ(error_of(removed), MemoryError::NotFound);
  EXPECT_EQ(mem.region_count(), 1u);
}

// ---- mapping ----

TEST(MappedRegionMap, MmapOffset_ReadsBytesAtThatFileOffset) {
  // Arrange: a file whose bytes at 0x1233 are distinct; map a region starting there (not page aligned).
  const UniqueFd fd = memfd_of(0x3000);
  ASSERT_TRUE(fd.valid());
  const auto pattern = bytes({0xde, 0xad, 0xbe, 0xef});
  ASSERT_EQ(::pwrite(fd.get(), pattern.data(), pattern.size(), 0x1233), 4);
  GuestMemory mem;
  ASSERT_TRUE(map_into(mem, at_offset(region(0x10000, 0x1000, 0x70000), 0x1233), fd.get()));

  // Act
  std::array<std::byte, 4> out{};
  auto r = mem.read_bytes(GuestAddress{0x10000}, out);

  // Assert
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::vector<std::byte>(out.begin(), out.end()), pattern);
}

TEST(MappedRegionMap, WriteThroughMapping_LandsInFileAtOffset) {
  const UniqueFd fd = memfd_of(0x2000);
  ASSERT_TRUE(fd.valid());
  GuestMemory mem;
  ASSERT_TRUE(map_into(mem, at_offset(region(0, 0x1000, 0x70000), 0x801), fd.get()));

  auto w = mem.write<uint32_t>(GuestAddress{0x10}, 0x11223344);
  uint32_t in_file = 0;
  ASSERT_EQ(::pread(fd.get(), &in_file, sizeof(in_file), 0x811), 4);

  EXPECT_TRUE(w.has_value());
  EXPECT_EQ(in_file, 0x11223344u);
}

TEST(MappedRegionMap, BadFd_ReturnsMapFailed) {
  auto mapped = MappedRegion::map(region(0, 0x1000, 0x70000), -1);

  EXPECT_EQ(error_of(mapped), MemoryError::MapFailed);
}

TEST(MappedRegionMap, MmapOffsetWrapping_ReturnsBadRegion) {
  auto mapped = MappedRegion::map(at_offset(region(0, 0x1000, 0x70000), kMax64 - 0x10), -1);

  EXPECT_EQ(error_of(mapped), MemoryError::BadRegion);
}

TEST(MappedRegionMap, RegionLargerThanFd_Refused) {
  const UniqueFd fd = memfd_of(4096, "short");
  ASSERT_TRUE(fd);

  auto r = MappedRegion::map(RegionDesc{GuestAddress{0}, 8192, FrontendVirtAddr{0x1000}, 0}, fd.get());

  EXPECT_EQ(error_of(r), MemoryError::BadRegion);
}

TEST(MappedRegionMap, MmapOffsetPastEndOfFd_Refused) {
  const UniqueFd fd = memfd_of(8192, "short");
  ASSERT_TRUE(fd);
  RegionDesc desc{GuestAddress{0}, 8192, FrontendVirtAddr{0x1000}, 4096};
  EXPECT_FALSE(MappedRegion::map(desc, fd.get()));
}

// ---- reads and writes across regions ----

// Two adjacent regions [0x10000, 0x11000) and [0x11000, 0x12000), then a gap, then [0x20000, 0x21000).
class GuestMemorySplit : public ::testing::Test {
 protected:
  FakeGuestMemory guest{
      {{GuestAddress{0x10000}, 0x1000}, {GuestAddress{0x11000}, 0x1000}, {GuestAddress{0x20000}, 0x1000}}};
  GuestMemory& mem = guest.memory();
};

TEST_F(GuestMemorySplit, WriteAcrossAdjacentRegions_BothRegionsHoldTheirPart) {
  const auto data = bytes({1, 2, 3, 4, 5, 6});

  auto w = mem.write_bytes(GuestAddress{0x10ffd}, data);
  auto low = guest.read(GuestAddress{0x10ffd}, 3);
  auto high = guest.read(GuestAddress{0x11000}, 3);

  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(low, bytes({1, 2, 3}));
  EXPECT_EQ(high, bytes({4, 5, 6}));
}

TEST_F(GuestMemorySplit, ReadAcrossAdjacentRegions_JoinsBothParts) {
  guest.write(GuestAddress{0x10ffe}, bytes({9, 8}));
  guest.write(GuestAddress{0x11000}, bytes({7, 6}));
  std::array<std::byte, 4> out{};

  auto r = mem.read_bytes(GuestAddress{0x10ffe}, out);

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::vector<std::byte>(out.begin(), out.end()), bytes({9, 8, 7, 6}));
}

TEST_F(GuestMemorySplit, ReadIntoGap_ReturnsOutOfRange) {
  std::array<std::byte, 4> out{};

  EXPECT_EQ(error_of(mem.read_bytes(GuestAddress{0x11ffe}, out)), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, WriteIntoGap_WritesNothing) {
  guest.write(GuestAddress{0x11ffe}, bytes({0x55, 0x55}));

  auto w = mem.write_bytes(GuestAddress{0x11ffe}, bytes({1, 2, 3, 4}));
  auto kept = guest.read(GuestAddress{0x11ffe}, 2);

  EXPECT_EQ(error_of(w), MemoryError::OutOfRange);
  EXPECT_EQ(kept, bytes({0x55, 0x55}));
}

TEST_F(GuestMemorySplit, ReadStartingInGap_ReturnsOutOfRange) {
  EXPECT_EQ(error_of(mem.read<uint64_t>(GuestAddress{0x1fffc})), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, ReadPastLastRegion_ReturnsOutOfRange) {
  EXPECT_EQ(error_of(mem.read<uint32_t>(GuestAddress{0x20ffe})), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, ZeroLengthAnywhere_Succeeds) {
  EXPECT_TRUE(mem.read_bytes(GuestAddress{0x5}, {}).has_value());
}

TEST_F(GuestMemorySplit, IsValidRangeAcrossAdjacent_True) {
  EXPECT_TRUE(mem.is_valid_range(GuestAddress{0x10000}, 0x2000));
}

TEST_F(GuestMemorySplit, IsValidRangeOneByteIntoGap_False) {
  EXPECT_FALSE(mem.is_valid_range(GuestAddress{0x10000}, 0x2001));
}

TEST_F(GuestMemorySplit, SlicesAcrossAdjacent_TwoPiecesWithRegionSizes) {
  auto s = mem.slices(GuestAddress{0x10f00}, 0x200);

  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].size, 0x100u);
  EXPECT_EQ((*s)[1].size, 0x100u);
}

TEST_F(GuestMemorySplit, SlicesAcrossAdjacent_EachPinsItsOwnRegion) {
  auto s = mem.slices(GuestAddress{0x10f00}, 0x200);

  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->size(), 2u);
  EXPECT_NE((*s)[0].region, nullptr);
  EXPECT_NE((*s)[0].region, (*s)[1].region);
  EXPECT_EQ((*s)[0].region->desc().guest_phys, GuestAddress{0x10000});
}

TEST_F(GuestMemorySplit, SlicesIntoGap_ReturnsOutOfRange) {
  EXPECT_EQ(error_of(mem.slices(GuestAddress{0x11f00}, 0x200)), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, ReadValueRoundTrip_SameValue) {
  ASSERT_TRUE(mem.write<uint64_t>(GuestAddress{0x10ffc}, 0x0102030405060708));

  auto r = mem.read<uint64_t>(GuestAddress{0x10ffc});

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 0x0102030405060708u);
}

// ---- the 2^64 boundary ----

// A region covering the last 4 KiB of the guest-physical address space.
class GuestMemoryTop : public GuestMemoryRegions {
 protected:
  void SetUp() override { ASSERT_TRUE(add(region(kMax64 - 0xfff, 0x1000, 0x7000))); }
};

TEST_F(GuestMemoryTop, ReadLastByte_Succeeds) {
  EXPECT_TRUE(mem.read<uint8_t>(GuestAddress{kMax64}).has_value());
}

TEST_F(GuestMemoryTop, ReadWrappingPastTwoToThe64_ReturnsOverflow) {
  EXPECT_EQ(error_of(mem.read<uint64_t>(GuestAddress{kMax64 - 3})), MemoryError::Overflow);
}

TEST_F(GuestMemoryTop, IsValidRangeWrapping_False) {
  EXPECT_FALSE(mem.is_valid_range(GuestAddress{kMax64 - 0xfff}, 0x1001));
}

// Trap: a length that wraps the address back into a low, backed region passes a naive end check.
constexpr uint64_t kLowRegion = 0x1000;
constexpr uint64_t kLowSize = 0x1000;
constexpr bool naive_in_low_region(uint64_t addr, uint64_t len) {
  return addr + len <= kLowRegion + kLowSize;
}
static_assert(naive_in_low_region(kMax64 - 7, 0x1008), "addr + len wraps to 0x1000 and passes");

using GuestMemoryTrap = GuestMemoryRegions;

TEST_F(GuestMemoryTrap, AddressPlusLengthWrapsIntoBackedRegion_ReturnsOverflow) {
  // Arrange: backed memory at [0x1000, 0x2000) and an access from 2^64 - 8 of 0x1008 bytes.
  ASSERT_TRUE(add(region(kLowRegion, kLowSize, 0x7000)));
  std::vector<std::byte> out(0x1008);

  // Act
  auto r = mem.read_bytes(GuestAddress{kMax64 - 7}, out);

  // Assert
  EXPECT_EQ(error_of(r), MemoryError::Overflow);
}

// ---- translation ----

class GuestMemoryTranslate : public GuestMemoryRegions {
 protected:
  void SetUp() override {
    ASSERT_TRUE(add(region(0x1000, 0x1000, 0x7f0000)));
    ASSERT_TRUE(add(region(0x8000, 0x100, 0x100000), 0x1000));
  }
};

TEST_F(GuestMemoryTranslate, FrontendAddressInsideRegion_GuestAddressAtSameOffset) {
  EXPECT_EQ(mem.to_guest(FrontendVirtAddr{0x7f0123}), GuestAddress{0x1123});
}

TEST_F(GuestMemoryTranslate, FrontendAddressInSecondRegion_Translates) {
  EXPECT_EQ(mem.to_guest(FrontendVirtAddr{0x1000ff}), GuestAddress{0x80ff});
}

TEST_F(GuestMemoryTranslate, OneFrontendByteAfterRegion_ReturnsOutOfRange) {
  EXPECT_EQ(error_of(mem.to_guest(FrontendVirtAddr{0x7f1000})), MemoryError::OutOfRange);
}

TEST_F(GuestMemoryTranslate, FrontendAddressBelowAllRegions_ReturnsOutOfRange) {
  EXPECT_EQ(error_of(mem.to_guest(FrontendVirtAddr{0x10})), MemoryError::OutOfRange);
}

// ---- atomic 16-bit ring accesses ----

class GuestMemoryAtomic : public ::testing::Test {
 protected:
  FakeGuestMemory guest{{{GuestAddress{0x1000}, 0x1000}}};
  GuestMemory& mem = guest.memory();
};

TEST_F(GuestMemoryAtomic, StoreThenLoad_SameValue) {
  ASSERT_TRUE(mem.store_u16(GuestAddress{0x1002}, 0xbeef, std::memory_order_release));

  auto v = mem.load_u16(GuestAddress{0x1002}, std::memory_order_acquire);

  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, 0xbeef);
}

TEST_F(GuestMemoryAtomic, LoadOddAddress_ReturnsMisaligned) {
  EXPECT_EQ(error_of(mem.load_u16(GuestAddress{0x1003}, std::memory_order_acquire)), MemoryError::Misaligned);
}

TEST_F(GuestMemoryAtomic, StoreOddAddress_ReturnsMisalignedAndWritesNothing) {
  guest.write(GuestAddress{0x1002}, bytes({0, 0, 0, 0}));

  auto r = mem.store_u16(GuestAddress{0x1003}, 0xffff, std::memory_order_release);
  auto kept = guest.read(GuestAddress{0x1002}, 4);

  EXPECT_EQ(error_of(r), MemoryError::Misaligned);
  EXPECT_EQ(kept, bytes({0, 0, 0, 0}));
}

TEST_F(GuestMemoryAtomic, LoadUnbacked_ReturnsOutOfRange) {
  EXPECT_EQ(error_of(mem.load_u16(GuestAddress{0x3000}, std::memory_order_acquire)), MemoryError::OutOfRange);
}

using GuestMemoryAtomicEdges = GuestMemoryRegions;

TEST_F(GuestMemoryAtomicEdges, LoadStraddlingOddSizedRegionEnd_ReturnsOutOfRange) {
  // Arrange: an odd-sized region, so its last even address has only one byte left.
  ASSERT_TRUE(add(region(0x1000, 0x101, 0x7000)));
  ASSERT_TRUE(add(region(0x1101, 0x100, 0x8000), 0x200));

  // Act
  auto v = mem.load_u16(GuestAddress{0x1100}, std::memory_order_acquire);

  // Assert
  EXPECT_EQ(error_of(v), MemoryError::OutOfRange);
}

TEST_F(GuestMemoryAtomicEdges, HostMappingOddBecauseOfMmapOffset_ReturnsMisaligned) {
  // Arrange: an even guest address whose host byte is odd (the frontend sent an odd mmap_offset). An atomic
  // on it would be undefined behaviour; it must be refused instead.
  const UniqueFd fd = memfd_of(0x2000);
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(map_into(mem, at_offset(region(0x1000, 0x1000, 0x70000), 1), fd.get()));

  // Act
  auto v = mem.load_u16(GuestAddress{0x1000}, std::memory_order_acquire);
  auto s = mem.store_u16(GuestAddress{0x1000}, 1, std::memory_order_release);

  // Assert
  EXPECT_EQ(error_of(v), MemoryError::Misaligned);
  EXPECT_EQ(error_of(s), MemoryError::Misaligned);
}

// A view pins its mapping: the table dropping the region (SET_MEM_TABLE, REM_MEM_REG) leaves the bytes mapped
// until the last view goes; then they are unmapped. Without the pin, reading after clear() faults.
TEST(GuestMemoryPin, SliceOutlivesTheTable_BytesStayMappedUntilTheSliceGoes) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const UniqueFd fd = memfd_of(static_cast<off_t>(page), "guest-memory-pin");
  ASSERT_TRUE(fd);
  GuestMemory mem;
  ASSERT_TRUE(map_into(mem, region(0x1000, page, 0x7000), fd.get()));
  ASSERT_TRUE(mem.write<uint32_t>(GuestAddress{0x1000}, 0x5eedf00d));
  auto views = mem.slices(GuestAddress{0x1000}, 4);
  ASSERT_TRUE(views);
  std::byte* data = (*views)[0].data;
  auto* page_start = reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(data) & ~(uintptr_t{page} - 1));
  unsigned char resident = 0;

  mem.clear();  // the frontend's new table has no such region

  EXPECT_EQ(::mincore(page_start, page, &resident), 0) << "the region was unmapped under a live view";
  uint32_t value = 0;
  std::memcpy(&value, data, sizeof(value));
  EXPECT_EQ(value, 0x5eedf00du);
  views->clear();
  errno = 0;
  EXPECT_EQ(::mincore(page_start, page, &resident), -1);
  EXPECT_EQ(errno, ENOMEM) << "the last view is gone: the mapping must be too";
}

}  // namespace
}  // namespace vgpu

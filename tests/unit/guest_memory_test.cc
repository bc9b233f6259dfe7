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
#include <vector>

#include "common/unique_fd.h"
#include "support/fake_guest.h"

namespace vgpu {
namespace {

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

// Host memory for borrowed regions; big enough for every test below.
struct Backing {
  std::vector<std::byte> data = std::vector<std::byte>(0x4000);
  MappedRegion borrow(const RegionDesc& d, size_t at = 0) { return MappedRegion::borrow(d, data.data() + at); }
};

// ---- regions ----

TEST(GuestMemoryRegions, AddValid_CountsOne) {
  Backing backing;
  GuestMemory mem;

  auto r = mem.add_region(backing.borrow(region(0x1000, 0x1000, 0x7000)));

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(mem.region_count(), 1u);
}

TEST(GuestMemoryRegions, AddZeroSize_ReturnsBadRegion) {
  Backing backing;
  GuestMemory mem;

  auto r = mem.add_region(backing.borrow(region(0x1000, 0, 0x7000)));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::BadRegion);
}

TEST(GuestMemoryRegions, AddGuestRangeWrapping_ReturnsBadRegion) {
  Backing backing;
  GuestMemory mem;

  auto r = mem.add_region(backing.borrow(region(kMax64 - 0xff, 0x200, 0x7000)));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::BadRegion);
}

TEST(GuestMemoryRegions, AddFrontendRangeWrapping_ReturnsBadRegion) {
  Backing backing;
  GuestMemory mem;

  auto r = mem.add_region(backing.borrow(region(0x1000, 0x200, kMax64 - 0xff)));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::BadRegion);
}

TEST(GuestMemoryRegions, AddEndingExactlyAtTwoToThe64_Succeeds) {
  Backing backing;
  GuestMemory mem;

  auto r = mem.add_region(backing.borrow(region(kMax64 - 0xfff, 0x1000, 0x7000)));

  EXPECT_TRUE(r.has_value());
}

TEST(GuestMemoryRegions, AddOverlappingGuestRange_ReturnsOverlap) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x1000, 0x10000))));

  auto r = mem.add_region(backing.borrow(region(0x1fff, 0x1000, 0x20000), 0x1000));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::Overlap);
}

TEST(GuestMemoryRegions, AddOverlappingFrontendRange_ReturnsOverlap) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x1000, 0x10000))));

  auto r = mem.add_region(backing.borrow(region(0x8000, 0x1000, 0x10800), 0x1000));

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::Overlap);
}

TEST(GuestMemoryRegions, AddAdjacent_Succeeds) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x1000, 0x10000))));

  auto r = mem.add_region(backing.borrow(region(0x2000, 0x1000, 0x11000), 0x1000));

  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(mem.region_count(), 2u);
}

TEST(GuestMemoryRegions, AddBeyondMax_ReturnsTooManyRegions) {
  // Arrange: kMaxRegions one-byte regions, at even addresses so none touch.
  Backing backing;
  GuestMemory mem;
  for (uint64_t i = 0; i < GuestMemory::kMaxRegions; ++i) {
    ASSERT_TRUE(mem.add_region(backing.borrow(region(2 * i, 1, 0x10000 + 2 * i), i)));
  }

  // Act
  auto r = mem.add_region(backing.borrow(region(0x100000, 1, 0x200000)));

  // Assert
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::TooManyRegions);
}

TEST(GuestMemoryRegions, AddOutOfOrder_ListedSortedByGuestAddress) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x3000, 0x100, 0x30000))));
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x100, 0x10000), 0x100)));

  auto list = mem.regions();

  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].guest_phys, GuestAddress{0x1000});
  EXPECT_EQ(list[1].guest_phys, GuestAddress{0x3000});
}

TEST(GuestMemoryRegions, RemoveExisting_AccessThenFails) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x100, 0x10000))));

  auto removed = mem.remove_region(region(0x1000, 0x100, 0x10000));
  auto read = mem.read<uint32_t>(GuestAddress{0x1000});

  EXPECT_TRUE(removed.has_value());
  EXPECT_EQ(mem.region_count(), 0u);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error(), MemoryError::OutOfRange);
}

TEST(GuestMemoryRegions, RemoveWithOtherMmapOffset_StillMatches) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x100, 0x10000))));
  RegionDesc other = region(0x1000, 0x100, 0x10000);
  other.mmap_offset = 0x5000;

  auto removed = mem.remove_region(other);

  EXPECT_TRUE(removed.has_value());
}

TEST(GuestMemoryRegions, RemoveUnknown_ReturnsNotFound) {
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x100, 0x10000))));

  auto removed = mem.remove_region(region(0x1000, 0x200, 0x10000));

  ASSERT_FALSE(removed.has_value());
  EXPECT_EQ(removed.error(), MemoryError::NotFound);
  EXPECT_EQ(mem.region_count(), 1u);
}

// ---- mapping ----

TEST(MappedRegionMap, MmapOffset_ReadsBytesAtThatFileOffset) {
  // Arrange: a file whose bytes at 0x1233 are distinct; map a region starting there (not page aligned).
  UniqueFd fd(::memfd_create("guest-memory-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 0x3000), 0);
  const auto pattern = bytes({0xde, 0xad, 0xbe, 0xef});
  ASSERT_EQ(::pwrite(fd.get(), pattern.data(), pattern.size(), 0x1233), 4);
  RegionDesc d = region(0x10000, 0x1000, 0x70000);
  d.mmap_offset = 0x1233;
  auto mapped = MappedRegion::map(d, fd.get());
  ASSERT_TRUE(mapped.has_value());
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(std::move(*mapped)));

  // Act
  std::array<std::byte, 4> out{};
  auto r = mem.read_bytes(GuestAddress{0x10000}, out);

  // Assert
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::vector<std::byte>(out.begin(), out.end()), pattern);
}

TEST(MappedRegionMap, WriteThroughMapping_LandsInFileAtOffset) {
  UniqueFd fd(::memfd_create("guest-memory-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 0x2000), 0);
  RegionDesc d = region(0, 0x1000, 0x70000);
  d.mmap_offset = 0x801;
  auto mapped = MappedRegion::map(d, fd.get());
  ASSERT_TRUE(mapped.has_value());
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(std::move(*mapped)));

  auto w = mem.write<uint32_t>(GuestAddress{0x10}, 0x11223344);
  uint32_t in_file = 0;
  ASSERT_EQ(::pread(fd.get(), &in_file, sizeof(in_file), 0x811), 4);

  EXPECT_TRUE(w.has_value());
  EXPECT_EQ(in_file, 0x11223344u);
}

TEST(MappedRegionMap, BadFd_ReturnsMapFailed) {
  auto mapped = MappedRegion::map(region(0, 0x1000, 0x70000), -1);

  ASSERT_FALSE(mapped.has_value());
  EXPECT_EQ(mapped.error(), MemoryError::MapFailed);
}

TEST(MappedRegionMap, MmapOffsetWrapping_ReturnsBadRegion) {
  RegionDesc d = region(0, 0x1000, 0x70000);
  d.mmap_offset = kMax64 - 0x10;

  auto mapped = MappedRegion::map(d, -1);

  ASSERT_FALSE(mapped.has_value());
  EXPECT_EQ(mapped.error(), MemoryError::BadRegion);
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

  auto r = mem.read_bytes(GuestAddress{0x11ffe}, out);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, WriteIntoGap_WritesNothing) {
  guest.write(GuestAddress{0x11ffe}, bytes({0x55, 0x55}));

  auto w = mem.write_bytes(GuestAddress{0x11ffe}, bytes({1, 2, 3, 4}));
  auto kept = guest.read(GuestAddress{0x11ffe}, 2);

  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error(), MemoryError::OutOfRange);
  EXPECT_EQ(kept, bytes({0x55, 0x55}));
}

TEST_F(GuestMemorySplit, ReadStartingInGap_ReturnsOutOfRange) {
  auto r = mem.read<uint64_t>(GuestAddress{0x1fffc});

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, ReadPastLastRegion_ReturnsOutOfRange) {
  auto r = mem.read<uint32_t>(GuestAddress{0x20ffe});

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, ZeroLengthAnywhere_Succeeds) {
  auto r = mem.read_bytes(GuestAddress{0x5}, {});

  EXPECT_TRUE(r.has_value());
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
  auto s = mem.slices(GuestAddress{0x11f00}, 0x200);

  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), MemoryError::OutOfRange);
}

TEST_F(GuestMemorySplit, ReadValueRoundTrip_SameValue) {
  ASSERT_TRUE(mem.write<uint64_t>(GuestAddress{0x10ffc}, 0x0102030405060708));

  auto r = mem.read<uint64_t>(GuestAddress{0x10ffc});

  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 0x0102030405060708u);
}

// ---- the 2^64 boundary ----

// A region covering the last 4 KiB of the guest-physical address space.
class GuestMemoryTop : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(mem.add_region(backing.borrow(region(kMax64 - 0xfff, 0x1000, 0x7000)))); }
  Backing backing;
  GuestMemory mem;
};

TEST_F(GuestMemoryTop, ReadLastByte_Succeeds) {
  auto r = mem.read<uint8_t>(GuestAddress{kMax64});

  EXPECT_TRUE(r.has_value());
}

TEST_F(GuestMemoryTop, ReadWrappingPastTwoToThe64_ReturnsOverflow) {
  auto r = mem.read<uint64_t>(GuestAddress{kMax64 - 3});

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::Overflow);
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

TEST(GuestMemoryTrap, AddressPlusLengthWrapsIntoBackedRegion_ReturnsOverflow) {
  // Arrange: backed memory at [0x1000, 0x2000) and an access from 2^64 - 8 of 0x1008 bytes.
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(kLowRegion, kLowSize, 0x7000))));
  std::vector<std::byte> out(0x1008);

  // Act
  auto r = mem.read_bytes(GuestAddress{kMax64 - 7}, out);

  // Assert
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::Overflow);
}

// ---- translation ----

class GuestMemoryTranslate : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x1000, 0x7f0000))));
    ASSERT_TRUE(mem.add_region(backing.borrow(region(0x8000, 0x100, 0x100000), 0x1000)));
  }
  Backing backing;
  GuestMemory mem;
};

TEST_F(GuestMemoryTranslate, FrontendAddressInsideRegion_GuestAddressAtSameOffset) {
  auto g = mem.to_guest(FrontendVirtAddr{0x7f0123});

  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(*g, GuestAddress{0x1123});
}

TEST_F(GuestMemoryTranslate, FrontendAddressInSecondRegion_Translates) {
  auto g = mem.to_guest(FrontendVirtAddr{0x1000ff});

  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(*g, GuestAddress{0x80ff});
}

TEST_F(GuestMemoryTranslate, OneFrontendByteAfterRegion_ReturnsOutOfRange) {
  auto g = mem.to_guest(FrontendVirtAddr{0x7f1000});

  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error(), MemoryError::OutOfRange);
}

TEST_F(GuestMemoryTranslate, FrontendAddressBelowAllRegions_ReturnsOutOfRange) {
  auto g = mem.to_guest(FrontendVirtAddr{0x10});

  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error(), MemoryError::OutOfRange);
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
  auto v = mem.load_u16(GuestAddress{0x1003}, std::memory_order_acquire);

  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), MemoryError::Misaligned);
}

TEST_F(GuestMemoryAtomic, StoreOddAddress_ReturnsMisalignedAndWritesNothing) {
  guest.write(GuestAddress{0x1002}, bytes({0, 0, 0, 0}));

  auto r = mem.store_u16(GuestAddress{0x1003}, 0xffff, std::memory_order_release);
  auto kept = guest.read(GuestAddress{0x1002}, 4);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), MemoryError::Misaligned);
  EXPECT_EQ(kept, bytes({0, 0, 0, 0}));
}

TEST_F(GuestMemoryAtomic, LoadUnbacked_ReturnsOutOfRange) {
  auto v = mem.load_u16(GuestAddress{0x3000}, std::memory_order_acquire);

  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), MemoryError::OutOfRange);
}

TEST(GuestMemoryAtomicEdges, LoadStraddlingOddSizedRegionEnd_ReturnsOutOfRange) {
  // Arrange: an odd-sized region, so its last even address has only one byte left.
  Backing backing;
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1000, 0x101, 0x7000))));
  ASSERT_TRUE(mem.add_region(backing.borrow(region(0x1101, 0x100, 0x8000), 0x200)));

  // Act
  auto v = mem.load_u16(GuestAddress{0x1100}, std::memory_order_acquire);

  // Assert
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), MemoryError::OutOfRange);
}

TEST(GuestMemoryAtomicEdges, HostMappingOddBecauseOfMmapOffset_ReturnsMisaligned) {
  // Arrange: an even guest address whose host byte is odd (the frontend sent an odd mmap_offset). An atomic
  // on it would be undefined behaviour; it must be refused instead.
  UniqueFd fd(::memfd_create("guest-memory-test", MFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::ftruncate(fd.get(), 0x2000), 0);
  RegionDesc d = region(0x1000, 0x1000, 0x70000);
  d.mmap_offset = 1;
  auto mapped = MappedRegion::map(d, fd.get());
  ASSERT_TRUE(mapped.has_value());
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(std::move(*mapped)));

  // Act
  auto v = mem.load_u16(GuestAddress{0x1000}, std::memory_order_acquire);
  auto s = mem.store_u16(GuestAddress{0x1000}, 1, std::memory_order_release);

  // Assert
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), MemoryError::Misaligned);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error(), MemoryError::Misaligned);
}

}  // namespace
}  // namespace vgpu

namespace vgpu {
namespace {

TEST(MappedRegionMap, RegionLargerThanFd_Refused) {
  UniqueFd fd(::memfd_create("short", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), 4096), 0);
  RegionDesc desc{GuestAddress{0}, 8192, FrontendVirtAddr{0x1000}, 0};
  auto r = MappedRegion::map(desc, fd.get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), MemoryError::BadRegion);
}

TEST(MappedRegionMap, MmapOffsetPastEndOfFd_Refused) {
  UniqueFd fd(::memfd_create("short", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), 8192), 0);
  RegionDesc desc{GuestAddress{0}, 8192, FrontendVirtAddr{0x1000}, 4096};
  EXPECT_FALSE(MappedRegion::map(desc, fd.get()));
}

// A view pins its mapping: the table dropping the region (SET_MEM_TABLE, REM_MEM_REG) leaves the bytes mapped
// until the last view goes; then they are unmapped. Without the pin, reading after clear() faults.
TEST(GuestMemoryPin, SliceOutlivesTheTable_BytesStayMappedUntilTheSliceGoes) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  UniqueFd fd(::memfd_create("guest-memory-pin", MFD_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(page)), 0);
  auto mapped = MappedRegion::map(region(0x1000, page, 0x7000), fd.get());
  ASSERT_TRUE(mapped);
  GuestMemory mem;
  ASSERT_TRUE(mem.add_region(std::move(*mapped)));
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

// HostVisibleRegion, the device's book of the host-visible window: every range a guest can name is either
// booked or refused with the reason, and a range held only by mappings on their way out says so (Leaving), so
// that the device can make such a map wait instead of failing it.
#include <gtest/gtest.h>

#include <cstdint>

#include "gpu/host_visible.h"

namespace vgpu {
namespace {

using RangeError = HostVisibleRegion::RangeError;
using State = HostVisibleRegion::State;
constexpr uint64_t kPage = 4096;

RangeError error_of(HostVisibleRegion& r, uint32_t id, uint64_t offset, uint64_t len) {
  auto res = r.reserve(id, offset, len);
  EXPECT_FALSE(res) << "offset 0x" << std::hex << offset << " len 0x" << len << " was booked";
  return res ? RangeError::Overlap : res.error();
}

TEST(HostVisibleRegion, HostileRanges_RefusedWithTheirReason) {
  HostVisibleRegion r(16 * kPage, kPage);
  EXPECT_EQ(error_of(r, 1, 0, 0), RangeError::OutsideRegion);
  EXPECT_EQ(error_of(r, 1, 16 * kPage, kPage), RangeError::OutsideRegion);
  EXPECT_EQ(error_of(r, 1, 15 * kPage, 2 * kPage), RangeError::OutsideRegion);
  EXPECT_EQ(error_of(r, 1, UINT64_MAX - kPage + 1, kPage), RangeError::OutsideRegion);  // would wrap
  EXPECT_EQ(error_of(r, 1, kPage, UINT64_MAX - kPage + 1), RangeError::OutsideRegion);
  EXPECT_EQ(error_of(r, 1, 0x800, kPage), RangeError::Unaligned);
  EXPECT_EQ(error_of(r, 1, 0, kPage + 1), RangeError::Unaligned);
  ASSERT_TRUE(r.reserve(1, 4 * kPage, 2 * kPage));
  EXPECT_EQ(error_of(r, 1, 8 * kPage, kPage), RangeError::AlreadyMapped);
  EXPECT_EQ(error_of(r, 2, 5 * kPage, kPage), RangeError::Overlap);      // inside
  EXPECT_EQ(error_of(r, 2, 3 * kPage, 2 * kPage), RangeError::Overlap);  // over its start
  EXPECT_EQ(error_of(r, 2, 0, 16 * kPage), RangeError::Overlap);         // around it
  EXPECT_TRUE(r.reserve(2, 6 * kPage, kPage));                           // right after it
  EXPECT_TRUE(r.reserve(3, 3 * kPage, kPage));                           // right before it
  EXPECT_EQ(r.count(), 3u);
}

TEST(HostVisibleRegion, RangeHeldOnlyByMappingsOnTheirWayOut_Leaving) {
  HostVisibleRegion r(16 * kPage, kPage);
  ASSERT_TRUE(r.reserve(1, 0, 2 * kPage));
  ASSERT_TRUE(r.reserve(2, 2 * kPage, 2 * kPage));
  r.at(0)->state = State::Unmapping;  // the guest's UNMAP_BLOB, with the frontend
  EXPECT_EQ(error_of(r, 3, kPage, kPage), RangeError::Leaving);
  EXPECT_EQ(error_of(r, 3, kPage, 2 * kPage), RangeError::Overlap);  // 2's range too, and 2 stays
  r.at(2 * kPage)->orphaned = true;                                  // RESOURCE_UNREF while its map is in flight
  EXPECT_EQ(error_of(r, 3, 0, 4 * kPage), RangeError::Leaving);
  EXPECT_EQ(r.of_resource(2), nullptr);  // an orphan is nobody's
  r.release(0);
  r.release(2 * kPage);
  EXPECT_TRUE(r.reserve(3, 0, 4 * kPage));
}

}  // namespace
}  // namespace vgpu

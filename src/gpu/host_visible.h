// The device's book of the host-visible memory region (virtio spec 5.7.6.8 "VIRTIO_GPU_SHM_ID_HOST_VISIBLE",
// shmid 1): which byte ranges of it hold which blob, and where each mapping is in its life. The frontend does
// the mapping (SHMEM_MAP on the backend channel); this book decides what may be asked of it, so that a guest
// can never have us ask for a range outside the region, misaligned, or over another mapping.
//
//   HostVisibleRegion region(256 << 20, 4096);
//   if (auto r = region.reserve(res_id, offset, len); !r) return error(r.error());   // state Mapping
//   ... frontend says yes:  region.find(offset)->state = HostVisibleRegion::State::Mapped;
//   ... unmapped:           region.release(offset);
//
// A mapping's range stays reserved until the frontend has confirmed its unmapping (or the channel is gone): a
// resource destroyed meanwhile leaves an orphan, whose range no other blob can take until then (reserve says
// Leaving, and the device makes such a map wait rather than fail: the guest may reuse the range as soon as it
// has freed the resource).
#pragma once

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace vgpu {

class HostVisibleRegion {
 public:
  enum class State : uint8_t {
    Mapping,    // SHMEM_MAP sent, no answer yet
    Mapped,     // the frontend mapped it
    Unmapping,  // SHMEM_UNMAP sent, no answer yet
  };
  struct Mapping {
    uint32_t resource_id = 0;
    uint64_t offset = 0;
    uint64_t len = 0;
    State state = State::Mapping;
    // The guest no longer owns it (its resource was destroyed, or its MAP_BLOB was answered without waiting):
    // unmap it as soon as it is mapped; never report it to the guest.
    bool orphaned = false;
  };
  enum class RangeError : uint8_t {
    Unaligned,      // offset or length not a multiple of the alignment
    OutsideRegion,  // [offset, offset + len) leaves the region (or wraps), or len is 0
    Overlap,        // another mapping the guest still owns holds part of the range
    Leaving,        // only mappings on their way out (orphans, unmaps in flight) hold part of it: try again later
    AlreadyMapped,  // the resource has a mapping (in any state) already
  };

  // `size` and `alignment` are powers of two, alignment <= size.
  HostVisibleRegion(uint64_t size, uint64_t alignment) : size_(size), alignment_(alignment) {}

  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] uint64_t alignment() const { return alignment_; }

  // Books [offset, offset + len) for `resource_id`, in state Mapping.
  Result<void, RangeError> reserve(uint32_t resource_id, uint64_t offset, uint64_t len);
  // The mapping that starts at `offset`, or null.
  [[nodiscard]] Mapping* at(uint64_t offset);
  // The resource's mapping the guest still owns (not orphaned), or null.
  [[nodiscard]] Mapping* of_resource(uint32_t resource_id);
  // Frees the range (unmapped, or never mapped).
  void release(uint64_t offset);
  // Every mapping, by offset (for teardown).
  [[nodiscard]] std::vector<Mapping> all() const;
  void clear() { mappings_.clear(); }
  [[nodiscard]] size_t count() const { return mappings_.size(); }

 private:
  uint64_t size_;
  uint64_t alignment_;
  std::map<uint64_t, Mapping> mappings_;  // by offset
};

constexpr std::string_view to_string(HostVisibleRegion::RangeError e) {
  switch (e) {
    case HostVisibleRegion::RangeError::Unaligned: return "not aligned to the blob alignment";
    case HostVisibleRegion::RangeError::OutsideRegion: return "outside the host-visible region";
    case HostVisibleRegion::RangeError::Overlap: return "overlaps another mapping";
    case HostVisibleRegion::RangeError::Leaving: return "overlaps a mapping still being taken out";
    case HostVisibleRegion::RangeError::AlreadyMapped: return "the resource is mapped already";
  }
  return "unknown";
}

}  // namespace vgpu

// A guest scatter-gather list (virtio-gpu resource backing: RESOURCE_ATTACH_BACKING's entries) seen as one
// contiguous byte range. Every access is bounds-checked against the list and goes through GuestMemory, so a
// region removed after attach makes reads fail cleanly instead of touching unmapped host memory.
//
//   auto list = GuestScatterList::create(mem, {{GuestAddress{0x1000}, 4096}, {GuestAddress{0x9000}, 4096}});
//   if (!list) ...;                                     // an entry outside guest memory, or sizes that wrap
//   list->read(6000, std::span(buf, 100));              // crosses from the first entry into the second
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"

namespace vgpu {

struct ScatterEntry {
  GuestAddress addr;
  uint32_t length;
};

class GuestScatterList {
 public:
  // Checks that every entry lies in guest memory now and that the total size does not wrap.
  static Result<GuestScatterList, MemoryError> create(const GuestMemory& mem, std::vector<ScatterEntry> entries);

  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] const std::vector<ScatterEntry>& entries() const { return entries_; }

  // Copies [offset, offset + out.size()) of the list into `out`. Fails (and may have written part of `out`)
  // when the range is outside the list or guest memory changed.
  Result<void, MemoryError> read(uint64_t offset, std::span<std::byte> out) const;
  Result<void, MemoryError> write(uint64_t offset, std::span<const std::byte> in) const;

 private:
  GuestScatterList(const GuestMemory& mem, std::vector<ScatterEntry> entries, std::vector<uint64_t> starts,
                   uint64_t size)
      : mem_(&mem), entries_(std::move(entries)), starts_(std::move(starts)), size_(size) {}
  template <class Fn>
  Result<void, MemoryError> for_each_piece(uint64_t offset, uint64_t len, Fn&& fn) const;

  const GuestMemory* mem_;
  std::vector<ScatterEntry> entries_;
  std::vector<uint64_t> starts_;  // starts_[i] = offset of entries_[i] in the list (prefix sums)
  uint64_t size_ = 0;
};

}  // namespace vgpu

#include "memory/scatter_list.h"

#include <algorithm>

#include "common/checked.h"

namespace vgpu {

Result<GuestScatterList, MemoryError> GuestScatterList::create(const GuestMemory& mem,
                                                               std::vector<ScatterEntry> entries) {
  std::vector<uint64_t> starts;
  starts.reserve(entries.size());
  uint64_t total = 0;
  for (const auto& e : entries) {
    if (!mem.is_valid_range(e.addr, e.length)) return fail(MemoryError::OutOfRange);
    starts.push_back(total);
    auto next = checked_add<uint64_t>(total, e.length);
    if (!next) return fail(MemoryError::Overflow);
    total = *next;
  }
  return GuestScatterList(mem, std::move(entries), std::move(starts), total);
}

// Calls fn(GuestAddress, uint64_t n, uint64_t done) for each entry-contiguous piece of [offset, offset + len).
template <class Fn>
Result<void, MemoryError> GuestScatterList::for_each_piece(uint64_t offset, uint64_t len, Fn&& fn) const {
  if (!range_fits(offset, len, size_)) return fail(MemoryError::OutOfRange);
  if (len == 0) return {};
  // The entry holding `offset`: the last one starting at or before it (zero-length entries are skipped by
  // the min() below, which then yields n == 0 for them).
  size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin()) - 1;
  uint64_t done = 0;
  while (done < len) {
    const uint64_t in_entry = offset + done - starts_[i];
    const uint64_t n = std::min<uint64_t>(len - done, entries_[i].length - in_entry);
    if (n > 0) {
      if (auto r = fn(GuestAddress{raw(entries_[i].addr) + in_entry}, n, done); !r) return r;
      done += n;
    }
    ++i;
  }
  return {};
}

Result<void, MemoryError> GuestScatterList::read(uint64_t offset, std::span<std::byte> out) const {
  return for_each_piece(offset, out.size(), [&](GuestAddress a, uint64_t n, uint64_t done) {
    return mem_->read_bytes(a, out.subspan(static_cast<size_t>(done), static_cast<size_t>(n)));
  });
}

Result<void, MemoryError> GuestScatterList::write(uint64_t offset, std::span<const std::byte> in) const {
  return for_each_piece(offset, in.size(), [&](GuestAddress a, uint64_t n, uint64_t done) {
    return mem_->write_bytes(a, in.subspan(static_cast<size_t>(done), static_cast<size_t>(n)));
  });
}

}  // namespace vgpu

#include "gpu/host_visible.h"

#include <iterator>

namespace vgpu {

Result<void, HostVisibleRegion::RangeError> HostVisibleRegion::reserve(uint32_t resource_id, uint64_t offset,
                                                                       uint64_t len) {
  if (len == 0 || offset >= size_ || len > size_ - offset) return fail(RangeError::OutsideRegion);
  if ((offset & (alignment_ - 1)) != 0 || (len & (alignment_ - 1)) != 0) return fail(RangeError::Unaligned);
  if (of_resource(resource_id) != nullptr) return fail(RangeError::AlreadyMapped);
  // The first mapping at or after `offset` must start at or after the end; the one before must end by `offset`.
  auto next = mappings_.lower_bound(offset);
  if (next != mappings_.end() && next->first < offset + len) return fail(RangeError::Overlap);
  if (next != mappings_.begin()) {
    const Mapping& prev = std::prev(next)->second;
    if (prev.offset + prev.len > offset) return fail(RangeError::Overlap);
  }
  mappings_.emplace(offset, Mapping{.resource_id = resource_id, .offset = offset, .len = len});
  return {};
}

HostVisibleRegion::Mapping* HostVisibleRegion::at(uint64_t offset) {
  auto it = mappings_.find(offset);
  return it == mappings_.end() ? nullptr : &it->second;
}

HostVisibleRegion::Mapping* HostVisibleRegion::of_resource(uint32_t resource_id) {
  for (auto& [offset, m] : mappings_) {
    if (m.resource_id == resource_id && !m.orphaned) return &m;
  }
  return nullptr;
}

void HostVisibleRegion::release(uint64_t offset) {
  mappings_.erase(offset);
}

std::vector<HostVisibleRegion::Mapping> HostVisibleRegion::all() const {
  std::vector<Mapping> out;
  out.reserve(mappings_.size());
  for (const auto& [offset, m] : mappings_) out.push_back(m);
  return out;
}

}  // namespace vgpu

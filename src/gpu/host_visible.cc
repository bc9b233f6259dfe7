#include "gpu/host_visible.h"

#include <iterator>

namespace vgpu {

Result<void, HostVisibleRegion::RangeError> HostVisibleRegion::reserve(uint32_t resource_id, uint64_t offset,
                                                                       uint64_t len) {
  if (len == 0 || offset >= size_ || len > size_ - offset) return fail(RangeError::OutsideRegion);
  if ((offset & (alignment_ - 1)) != 0 || (len & (alignment_ - 1)) != 0) return fail(RangeError::Unaligned);
  if (of_resource(resource_id) != nullptr) return fail(RangeError::AlreadyMapped);
  // Mappings never overlap each other, so those overlapping the range are consecutive: the one before `offset`
  // if it reaches past it, then those starting inside the range.
  auto it = mappings_.lower_bound(offset);
  if (it != mappings_.begin() && std::prev(it)->second.offset + std::prev(it)->second.len > offset) --it;
  bool overlaps = false;
  for (; it != mappings_.end() && it->first < offset + len; ++it) {
    const Mapping& m = it->second;
    if (!m.orphaned && m.state != State::Unmapping) return fail(RangeError::Overlap);
    overlaps = true;
  }
  if (overlaps) return fail(RangeError::Leaving);
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

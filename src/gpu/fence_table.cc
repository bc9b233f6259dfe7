#include "gpu/fence_table.h"

#include <algorithm>
#include <utility>

namespace vgpu {

FenceTable::Signalled* FenceTable::last_signalled(const FenceRing& ring) {
  auto it = std::find_if(signalled_.begin(), signalled_.end(), [&](const Signalled& s) { return s.ring == ring; });
  return it == signalled_.end() ? nullptr : &*it;
}

std::optional<FenceTable::Response> FenceTable::hold(Response response) {
  // Linux numbers fences from one counter for the driver's life, so ids only grow on a ring: an id at or below
  // the last signalled one has signalled. (A device reset clears the records before a new driver counts again.)
  const Signalled* s = last_signalled(response.ring);
  if (s != nullptr && response.fence_id <= s->fence_id) {
    // Still in order: a held response of this ring with a lower id is covered by the same signal and was
    // released by it, so nothing of this ring is left in held_ below this one.
    return response;
  }
  held_.push_back(std::move(response));
  return std::nullopt;
}

std::vector<FenceTable::Response> FenceTable::signal(FenceRing ring, uint64_t fence_id) {
  if (Signalled* s = last_signalled(ring); s != nullptr) {
    s->fence_id = std::max(s->fence_id, fence_id);
  } else {
    signalled_.push_back({ring, fence_id});
  }
  return release_if([&](const Response& r) { return r.ring == ring && r.fence_id <= fence_id; });
}

std::vector<FenceTable::Response> FenceTable::release_if(const std::function<bool(const Response&)>& which) {
  std::vector<Response> out;
  for (auto it = held_.begin(); it != held_.end();) {
    if (which(*it)) {
      out.push_back(std::move(*it));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<FenceTable::Response> FenceTable::forget_context(uint32_t ctx_id) {
  auto of_context = [ctx_id](const FenceRing& ring) {
    return ring.kind == FenceRing::Kind::Context && ring.ctx_id == ctx_id;
  };
  std::erase_if(signalled_, [&](const Signalled& s) { return of_context(s.ring); });
  return release_if([&](const Response& r) { return of_context(r.ring); });
}

void FenceTable::clear() {
  held_.clear();
  signalled_.clear();
}

}  // namespace vgpu

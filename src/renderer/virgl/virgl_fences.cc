// Fences: creating them on the library's timelines, polling, and turning what the C callbacks recorded into
// FenceCallback calls. Separate because it is the one part that runs our callback, which may re-enter us.
#include <algorithm>
#include <new>

#include "renderer/virgl/virgl_compat.h"
#include "renderer/virgl/virgl_internal.h"
#include "renderer/virgl/virgl_renderer.h"

namespace vgpu {

using virgl_internal::from_errno;

size_t VirglRenderer::pending_fences() const {
  size_t n = global_fences_.size();
  for (const auto& [key, ids] : context_fences_) n += ids.size();
  return n;
}

Result<void, Renderer3DError> VirglRenderer::create_fence(FenceRing ring, uint64_t fence_id) {
  if (ring.kind == FenceRing::Kind::Context && !contexts_.contains(ring.ctx_id)) {
    return fail(Renderer3DError::InvalidContext);
  }
  const bool on_global = ring.kind == FenceRing::Kind::Global || !virgl_compat::kHasContextFences;
  // virgl (OpenGL) contexts have one timeline in the library: every ring of theirs maps onto it.
  uint32_t library_ring = ring.ring_idx;
  if (!on_global) {
    const uint32_t capset = contexts_.at(ring.ctx_id);
    if (capset == kCapsetVirgl || capset == kCapsetVirgl2) {
      if (ring.ring_idx >= kMaxVirglRings) return fail(Renderer3DError::InvalidArgument);
      library_ring = 0;
    }
  }
  try {
    // Room for every completion the library may report, so the C callbacks never allocate.
    retired_.reserve(retired_.size() + pending_fences() + 1);
    if (on_global) {
      global_fences_.push_back(PendingFence{.ring = ring, .fence_id = fence_id});
    } else {
      context_fences_[{ring.ctx_id, library_ring}].push_back(PendingFence{.ring = ring, .fence_id = fence_id});
    }
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }

  int ret = 0;
  if (on_global) {
    // The library's ctx0 timeline has 32-bit ids and merges fences: a retired id also retires every
    // earlier one, and deliver() maps it back to the 64-bit ids on record.
    ret = virgl_renderer_create_fence(static_cast<int>(static_cast<uint32_t>(fence_id)), ring.ctx_id);
    if (ret != 0) global_fences_.pop_back();
  } else {
    // Not MERGEABLE: the library reports each fence.
    ret = virgl_compat::context_create_fence(ring.ctx_id, 0, library_ring, fence_id);
    if (ret != 0) {
      auto it = context_fences_.find({ring.ctx_id, library_ring});
      it->second.pop_back();
      if (it->second.empty()) context_fences_.erase(it);
    }
  }
  if (ret != 0) return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  dirty_ = true;
  deliver();  // in case the library retired something inside that call
  return {};
}

int VirglRenderer::poll_fd() const {
  return virgl_renderer_get_poll_fd();
}

int VirglRenderer::context_poll_fd(uint32_t ctx_id) const {
  if (!contexts_.contains(ctx_id)) return -1;
  return virgl_compat::context_poll_fd(ctx_id);
}

void VirglRenderer::poll() {
  virgl_renderer_poll();
  deliver();
}

// Turns what the library reported into one callback per fence on record, in creation order per ring. The
// callback may call back into us (create fences, destroy contexts, reset, poll): every queue is looked up
// again after each callback, and completions recorded meanwhile are handled in the same loop.
void VirglRenderer::deliver() {
  if (delivering_) return;
  delivering_ = true;
  struct Done {
    VirglRenderer* self;
    ~Done() {
      self->retired_.clear();
      self->delivering_ = false;
    }
  } done{this};
  auto notify = [&](FenceRing ring, uint64_t id) {
    if (fence_callback_) fence_callback_(ring, id);
  };
  for (size_t i = 0; i < retired_.size(); ++i) {
    const Retired r = retired_[i];
    if (r.global) {
      const auto target = static_cast<uint32_t>(r.fence_id);
      const bool known = std::any_of(global_fences_.begin(), global_fences_.end(), [&](const PendingFence& f) {
        return static_cast<uint32_t>(f.fence_id) == target;
      });
      while (known && !global_fences_.empty()) {
        const PendingFence f = global_fences_.front();
        global_fences_.pop_front();
        notify(f.ring, f.fence_id);
        if (static_cast<uint32_t>(f.fence_id) == target) break;
      }
      continue;
    }
    const std::pair<uint32_t, uint32_t> key{r.ctx_id, r.ring_idx};
    auto it = context_fences_.find(key);
    // Ids of different guest rings sharing the library's ring may repeat; the library reports in creation
    // order, so the first match is the one it means.
    const bool known =
        it != context_fences_.end() && std::any_of(it->second.begin(), it->second.end(),
                                                   [&](const PendingFence& f) { return f.fence_id == r.fence_id; });
    while (known) {
      it = context_fences_.find(key);
      if (it == context_fences_.end() || it->second.empty()) break;
      const PendingFence f = it->second.front();
      it->second.pop_front();
      if (it->second.empty()) context_fences_.erase(it);
      notify(f.ring, f.fence_id);
      if (f.fence_id == r.fence_id) break;
    }
  }
}

}  // namespace vgpu

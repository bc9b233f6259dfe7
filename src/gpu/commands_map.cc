// Host-visible memory (virtio spec 5.7.6.8, VIRTIO_GPU_SHM_ID_HOST_VISIBLE): RESOURCE_MAP_BLOB puts a mappable
// host blob into the region the guest sees as a PCI BAR, RESOURCE_UNMAP_BLOB takes it out. The frontend owns
// the region and does the mmap (vhost-user SHMEM_MAP / SHMEM_UNMAP on the backend channel), so both commands
// are answered only when it has: the chain is held (hold() / complete_held()) while later commands go on.
//
// Everything a guest controls is checked before the frontend is asked: the resource is a HOST3D blob created
// USE_MAPPABLE and not mapped yet; the offset is aligned to blob_alignment (the host page size); the blob's
// page-rounded length fits in the region and in the renderer's fd; no other mapping (an orphan included)
// overlaps it. The book (HostVisibleRegion) keeps a range reserved from the request until the frontend has
// confirmed its unmapping, so no two mappings ever overlap in the frontend either. A guest that frees a blob and
// maps another over its range before that confirmation (Linux may: it frees the range when RESOURCE_UNREF is
// answered, which does not wait for the frontend) has its MAP_BLOB wait (deferred_maps_, at most
// kMaxDeferredMaps) until the range is free, instead of an error the guest could not explain.
//
// Lifetimes: RESOURCE_UNREF and CTX_DESTROY unmap the blobs they end (drop_mapping_of, before the renderer
// frees them); a held command answered early (its queue stopped) leaves an orphan that is unmapped as soon as
// the frontend confirms the map; reset() unmaps everything (GpuDevice::reset). A lost channel frees every
// range: the frontend that could be told is gone.
#include <linux/virtio_gpu.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/bytes.h"
#include "common/log.h"
#include "gpu/device.h"

namespace vgpu {

namespace {

uint64_t round_up(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) & ~(alignment - 1);
}

ResponseBytes map_info_response(uint32_t map_info) {
  virtio_gpu_resp_map_info resp{};
  resp.hdr.type = VIRTIO_GPU_RESP_OK_MAP_INFO;
  resp.map_info = map_info;
  return bytes_of(resp);
}

}  // namespace

ShmemRange GpuDevice::shm_range(uint64_t offset, uint64_t len) const {
  return ShmemRange{.shmid = VIRTIO_GPU_SHM_ID_HOST_VISIBLE, .shm_offset = offset, .len = len};
}

uint64_t GpuDevice::hold() {
  hold_token_ = next_hold_token_++;
  return hold_token_;
}

void GpuDevice::complete_held(uint64_t token, ResponseBytes response) {
  auto it = std::find_if(held_.begin(), held_.end(), [token](const HeldCommand& h) { return h.token == token; });
  if (it == held_.end()) return;  // answered already (its queue stopped)
  HeldCommand held = std::move(*it);
  held_.erase(it);
  Queue* queue = queues_[kControlQueue];
  if (queue == nullptr) return;
  uint32_t written = 0;
  (void)write_response(held.chain, held.hdr, std::move(response), written);
  queue->add_used(std::move(held.chain), written);
  queue->notify_if_needed();
}

void GpuDevice::complete_held(uint64_t token, GpuError error) {
  complete_held(token, header_response(to_wire(error)));
}

void GpuDevice::answer_held_now() {
  deferred_maps_.clear();  // their commands are held: answered below
  if (held_.empty()) return;
  // Whatever the frontend answers later, the guest has been told "no": a mapping it makes is an orphan.
  if (host_visible_) {
    for (const HostVisibleRegion::Mapping& m : host_visible_->all()) {
      if (m.state == HostVisibleRegion::State::Mapping) host_visible_->at(m.offset)->orphaned = true;
    }
  }
  std::vector<uint64_t> tokens;
  for (const HeldCommand& h : held_) tokens.push_back(h.token);
  for (const uint64_t t : tokens) complete_held(t, GpuError::Unspec);
}

CommandResult GpuDevice::on_resource_map_blob(const virtio_gpu_resource_map_blob& req, Reader& /*rest*/) {
  const auto asked = std::chrono::steady_clock::now();  // the command's round trip starts here
  const Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  if (!host_visible_ || mapper_ == nullptr) {
    // No host-visible region (not configured, or the frontend never negotiated SHMEM): the guest has no BAR to
    // map into, so nothing can be mapped.
    VGPU_LOG_DEBUG("RESOURCE_MAP_BLOB {}: no host-visible memory region", req.resource_id);
    return fail(GpuError::Unspec);
  }
  const bool host_blob =
      res->blob_mem == VIRTIO_GPU_BLOB_MEM_HOST3D || res->blob_mem == VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST;
  if (!host_blob || (res->blob_flags & VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE) == 0) {
    return fail(GpuError::InvalidParameter);
  }
  if (round_up(res->blob_size, host_visible_->alignment()) < res->blob_size) {
    return fail(GpuError::InvalidParameter);  // its page-rounded length wraps
  }
  const uint64_t token = hold();
  if (const auto error =
          start_map({.token = token, .resource_id = req.resource_id, .offset = req.offset, .asked = asked})) {
    hold_token_ = 0;
    return fail(*error);
  }
  return ResponseBytes{};  // held: on_map_reply (or, for a map that waits for its range, retry_deferred_maps) answers
}

std::optional<GpuError> GpuDevice::start_map(const DeferredMap& m) {
  const Resource* res = resources_.find(m.resource_id);
  if (res == nullptr) return GpuError::InvalidResourceId;  // unreferenced while its map waited
  if (!host_visible_ || mapper_ == nullptr) return GpuError::Unspec;
  const uint64_t len = round_up(res->blob_size, host_visible_->alignment());
  // Check the range before asking the renderer for an fd (an export may cost the library real work).
  if (auto r = host_visible_->reserve(m.resource_id, m.offset, len); !r) {
    if (r.error() == HostVisibleRegion::RangeError::Leaving && deferred_maps_.size() < kMaxDeferredMaps) {
      // The guest freed what held the range and reuses it before the frontend has confirmed the unmap.
      deferred_maps_.push_back(m);
      VGPU_LOG_DEBUG("RESOURCE_MAP_BLOB {} at 0x{:x}: waits for an unmap of that range", m.resource_id, m.offset);
      return std::nullopt;
    }
    VGPU_LOG_DEBUG("RESOURCE_MAP_BLOB {} at 0x{:x} (+0x{:x}): {}", m.resource_id, m.offset, len, to_string(r.error()));
    return GpuError::InvalidParameter;
  }
  auto mapping = r3d_->blob_mapping(m.resource_id);
  if (!mapping || mapping->size < res->blob_size || (mapping->fd_offset & (host_visible_->alignment() - 1)) != 0) {
    host_visible_->release(m.offset);
    VGPU_LOG_WARN_LIMITED(
        "RESOURCE_MAP_BLOB {}: {}", m.resource_id,
        !mapping ? std::string("the renderer has no fd that maps it: ") + std::string(to_string(mapping.error()))
                 : "the renderer's fd does not hold the blob at a page boundary");
    return mapping && mapping.error() == Renderer3DError::InvalidArgument ? GpuError::InvalidParameter
                                                                          : GpuError::Unspec;
  }
  const uint32_t map_info = mapping->map_info;
  auto sent = mapper_->map(
      shm_range(m.offset, len), mapping->fd.get(), mapping->fd_offset, /*writable=*/true,
      [this, m, map_info](BackendReply reply) {
        if (reply == BackendReply::Done) {
          // The guest learns the cache type only once the memory is there.
          HostVisibleRegion::Mapping* mapped = host_visible_ ? host_visible_->at(m.offset) : nullptr;
          if (mapped != nullptr && !mapped->orphaned) {
            mapped->state = HostVisibleRegion::State::Mapped;
            complete_held(m.token, map_info_response(map_info));
            // Command to response, the frontend's reply included, for bench/venus.sh (debug: a line per map).
            VGPU_LOG_DEBUG(
                "RESOURCE_MAP_BLOB {}: mapped at 0x{:x} (+0x{:x}), round trip {} us", m.resource_id, m.offset,
                mapped->len,
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - m.asked)
                    .count());
            return;
          }
        }
        on_map_reply(m.token, m.offset, reply);
      });
  if (!sent) {
    host_visible_->release(m.offset);
    VGPU_LOG_WARN_LIMITED("RESOURCE_MAP_BLOB {}: cannot ask the frontend: {}", m.resource_id, to_string(sent.error()));
    return GpuError::Unspec;
  }
  return std::nullopt;
}

void GpuDevice::retry_deferred_maps() {
  if (deferred_maps_.empty()) return;
  std::deque<DeferredMap> waiting;
  waiting.swap(deferred_maps_);
  for (const DeferredMap& d : waiting) {
    if (const auto error = start_map(d)) complete_held(d.token, *error);  // or sent, or waiting again
  }
}

void GpuDevice::on_map_reply(uint64_t token, uint64_t offset, BackendReply reply) {
  HostVisibleRegion::Mapping* m = host_visible_ ? host_visible_->at(offset) : nullptr;
  if (m == nullptr) return;  // reset meanwhile
  if (reply == BackendReply::Done) {
    // Mapped, but nobody wants it any more (unref, or the guest was answered already): take it out again.
    (void)start_unmap(offset, 0);
    complete_held(token, GpuError::Unspec);
    return;
  }
  VGPU_LOG_WARN_LIMITED("RESOURCE_MAP_BLOB {} at 0x{:x}: {}", m->resource_id, offset, to_string(reply));
  host_visible_->release(offset);
  complete_held(token, GpuError::Unspec);
  retry_deferred_maps();
}

CommandResult GpuDevice::on_resource_unmap_blob(const virtio_gpu_resource_unmap_blob& req, Reader& /*rest*/) {
  Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  HostVisibleRegion::Mapping* m = host_visible_ ? host_visible_->of_resource(req.resource_id) : nullptr;
  if (m == nullptr && res->unmapped_by_device) {
    res->unmapped_by_device = false;  // CTX_DESTROY took it out already: what the guest asks for is done
    return ResponseBytes{};
  }
  // Never mapped, or its map or unmap is still with the frontend: nothing this command can take out.
  if (m == nullptr || m->state != HostVisibleRegion::State::Mapped) return fail(GpuError::InvalidParameter);
  if (!start_unmap(m->offset, hold())) {
    hold_token_ = 0;
    return fail(GpuError::Unspec);
  }
  return ResponseBytes{};  // held: on_unmap_reply answers
}

bool GpuDevice::start_unmap(uint64_t offset, uint64_t token) {
  HostVisibleRegion::Mapping* m = host_visible_ ? host_visible_->at(offset) : nullptr;
  if (m == nullptr) return false;
  m->state = HostVisibleRegion::State::Unmapping;
  if (mapper_ != nullptr) {
    auto sent = mapper_->unmap(shm_range(offset, m->len),
                               [this, token, offset](BackendReply r) { on_unmap_reply(token, offset, r); });
    if (sent) return true;
    VGPU_LOG_WARN_LIMITED("SHMEM_UNMAP at 0x{:x}: cannot ask the frontend: {}", offset, to_string(sent.error()));
  }
  // The frontend cannot be told any more (its channel is gone): the range is free for this device.
  host_visible_->release(offset);
  retry_deferred_maps();
  return false;
}

void GpuDevice::on_unmap_reply(uint64_t token, uint64_t offset, BackendReply reply) {
  if (host_visible_ && host_visible_->at(offset) != nullptr) host_visible_->release(offset);
  if (reply != BackendReply::Done) {
    VGPU_LOG_WARN_LIMITED("SHMEM_UNMAP at 0x{:x}: {}", offset, to_string(reply));
  }
  if (token != 0 && reply == BackendReply::Done) complete_held(token, header_response(VIRTIO_GPU_RESP_OK_NODATA));
  if (token != 0 && reply != BackendReply::Done) complete_held(token, GpuError::Unspec);
  retry_deferred_maps();  // after the UNMAP_BLOB's answer: a map waiting for its range is the guest's next step
}

void GpuDevice::drop_mapping_of(uint32_t resource_id) {
  HostVisibleRegion::Mapping* m = host_visible_ ? host_visible_->of_resource(resource_id) : nullptr;
  if (m == nullptr) return;
  const bool mapped = m->state == HostVisibleRegion::State::Mapped;
  m->orphaned = true;  // a map in flight is unmapped when confirmed; an unmap in flight finishes as it is
  if (mapped) (void)start_unmap(m->offset, 0);
}

void GpuDevice::drop_mappings_of_context(uint32_t ctx_id) {
  if (!host_visible_) return;
  for (const HostVisibleRegion::Mapping& m : host_visible_->all()) {
    Resource* res = m.orphaned ? nullptr : resources_.find(m.resource_id);
    if (res == nullptr || res->blob_ctx_id != ctx_id) continue;
    drop_mapping_of(m.resource_id);
    res->unmapped_by_device = true;
  }
}

}  // namespace vgpu

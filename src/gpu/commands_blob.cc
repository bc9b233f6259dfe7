// Blob resources (virtio spec 5.7.6.8, feature VIRTIO_GPU_F_RESOURCE_BLOB): RESOURCE_CREATE_BLOB for guest
// memory (BLOB_MEM_GUEST, with or without a 3D renderer) and for a 3D context's objects (BLOB_MEM_HOST3D,
// BLOB_MEM_HOST3D_GUEST, with the 3D renderer) and SET_SCANOUT_BLOB. RESOURCE_MAP_BLOB / UNMAP_BLOB are in
// commands_map.cc.
//
// A blob scanout is copied into a host shadow of the scanout rectangle on RESOURCE_FLUSH (from guest memory,
// or read back from the renderer), and sent to the display like any other frame. With --dmabuf-scanout a host
// blob the renderer can export goes as a dma-buf instead (scanout_dmabuf.cc); guest blobs are always copied.
#include <algorithm>
#include <cstring>
#include <limits>

#include "common/checked.h"
#include "common/log.h"
#include "gpu/device.h"
#include "gpu/host_costs.h"

namespace vgpu {

namespace {

constexpr uint32_t kKnownBlobFlags =
    VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE | VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE | VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE;

GpuError blob_error(Renderer3DError e) {
  switch (e) {
    case Renderer3DError::OutOfMemory: return GpuError::OutOfMemory;
    case Renderer3DError::InvalidContext: return GpuError::InvalidContextId;
    case Renderer3DError::InvalidResource: return GpuError::InvalidResourceId;
    case Renderer3DError::InvalidArgument: return GpuError::InvalidParameter;
    case Renderer3DError::GuestMemory:
    case Renderer3DError::Failed: return GpuError::Unspec;
  }
  return GpuError::Unspec;
}

}  // namespace

CommandResult GpuDevice::on_resource_create_blob(const virtio_gpu_resource_create_blob& req, Reader& rest) {
  if (req.resource_id == 0 || resources_.contains(req.resource_id)) return fail(GpuError::InvalidResourceId);
  if (req.size == 0 || (req.blob_flags & ~kKnownBlobFlags) != 0) return fail(GpuError::InvalidParameter);
  // virtio 1.4, VIRTIO_GPU_F_BLOB_ALIGNMENT: the driver MUST align the size to blob_alignment.
  if (has_feature(kFeatureBlobAlignment) && blob_alignment_ != 0 && req.size % blob_alignment_ != 0) {
    return fail(GpuError::InvalidParameter);
  }
  // USE_CROSS_DEVICE asks for a blob other devices can use by its UUID (RESOURCE_ASSIGN_UUID): honoured when
  // the driver negotiated VIRTIO_GPU_F_RESOURCE_UUID (commands_uuid.cc says which blobs are then announced to
  // the frontend); without it the driver must not set the flag (virtio spec 5.7.6.8).
  if ((req.blob_flags & VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE) != 0 && !has_feature(VIRTIO_GPU_F_RESOURCE_UUID)) {
    return fail(GpuError::InvalidParameter);
  }
  const bool guest_memory =
      req.blob_mem == VIRTIO_GPU_BLOB_MEM_GUEST || req.blob_mem == VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST;
  const bool host3d = req.blob_mem == VIRTIO_GPU_BLOB_MEM_HOST3D || req.blob_mem == VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST;
  if (!guest_memory && !host3d) return fail(GpuError::InvalidParameter);
  if (host3d) {
    // A host blob is an object a 3D context made (blob_id names it): it needs that context.
    if (r3d_ == nullptr) return fail(GpuError::InvalidParameter);
    if (!contexts_.contains(req.hdr.ctx_id)) return fail(GpuError::InvalidContextId);
  }
  // HOST3D blobs have no guest memory: "nr_entries" must be 0 for them; the others need their pages.
  if (!guest_memory && req.nr_entries != 0) return fail(GpuError::InvalidParameter);

  uint64_t entry_bytes = 0;
  std::optional<GuestScatterList> backing;
  if (guest_memory) {
    auto list = read_backing(req.nr_entries, rest, entry_bytes);
    if (!list) return fail(list.error());
    if (list->size() < req.size) {
      resources_.release(entry_bytes);
      VGPU_LOG_DEBUG("RESOURCE_CREATE_BLOB {}: {} bytes of entries for a {}-byte blob", req.resource_id, list->size(),
                     req.size);
      return fail(GpuError::InvalidParameter);
    }
    backing.emplace(std::move(*list));
  }
  // Host blobs are memory the renderer allocates for the guest: charged like 3D resources; every blob also
  // costs its bookkeeping (audit F5).
  const uint64_t host_bytes = (host3d ? req.size : 0) + host_costs::kPerResource;
  if (!resources_.reserve(host_bytes)) {
    resources_.release(entry_bytes);
    return fail(GpuError::OutOfMemory);
  }
  if (r3d_ != nullptr) {
    const BlobArgs args{.ctx_id = host3d ? req.hdr.ctx_id : 0,
                        .blob_mem = req.blob_mem,
                        .blob_flags = req.blob_flags,
                        .blob_id = req.blob_id,
                        .size = req.size};
    auto created = r3d_->create_blob(req.resource_id, args, backing ? mem_ : nullptr, backing ? &*backing : nullptr);
    if (!created) {
      resources_.release(entry_bytes + host_bytes);
      VGPU_LOG_DEBUG("RESOURCE_CREATE_BLOB {} (mem {}, blob id {}): {}", req.resource_id, req.blob_mem, req.blob_id,
                     to_string(created.error()));
      return fail(blob_error(created.error()));
    }
  }
  Resource res{};
  res.host_bytes = entry_bytes + host_bytes;
  res.backing = std::move(backing);
  res.blob_mem = req.blob_mem;
  res.blob_size = req.size;
  res.blob_flags = req.blob_flags;
  res.blob_ctx_id = host3d ? req.hdr.ctx_id : 0;
  resources_.insert(req.resource_id, std::move(res));
  return ResponseBytes{};
}

CommandResult GpuDevice::on_set_scanout_blob(const virtio_gpu_set_scanout_blob& req, Reader& /*rest*/) {
  if (req.scanout_id >= cfg_.num_scanouts) return fail(GpuError::InvalidScanoutId);
  if (req.resource_id == 0) {
    clear_scanout(req.scanout_id);
    return ResponseBytes{};
  }
  const Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  if (!res->is_blob()) return fail(GpuError::InvalidParameter);
  const auto format = pixel_format_from_virtio(req.format);
  if (!format || req.width == 0 || req.height == 0 || req.width > kMaxScanoutDimension ||
      req.height > kMaxScanoutDimension) {
    return fail(GpuError::InvalidParameter);
  }
  const Rect rect{req.r.x, req.r.y, req.r.width, req.r.height};
  if (rect.empty() || !rect_fits(rect, req.width, req.height)) return fail(GpuError::InvalidParameter);
  // Plane 0 must hold every row: offset + (height - 1) * stride + width * 4 <= the blob's size.
  const uint64_t row_bytes = uint64_t{req.width} * kBytesPerPixel;
  const uint64_t extent = uint64_t{req.offsets[0]} + uint64_t{req.height - 1} * req.strides[0] + row_bytes;
  if (req.strides[0] < row_bytes || extent > res->blob_size) {
    VGPU_LOG_DEBUG("SET_SCANOUT_BLOB: {}x{} stride {} offset {} does not fit blob {} of {} bytes", req.width,
                   req.height, req.strides[0], req.offsets[0], req.resource_id, res->blob_size);
    return fail(GpuError::InvalidParameter);
  }
  if (res->blob_mem != VIRTIO_GPU_BLOB_MEM_GUEST && r3d_ == nullptr) return fail(GpuError::InvalidParameter);

  Scanout& scanout = scanouts_[req.scanout_id];
  const uint64_t shadow_bytes = uint64_t{rect.width} * rect.height * kBytesPerPixel;
  const uint64_t old_bytes = scanout.shadow.size();
  // Page flips alternate between same-sized blobs: keep the shadow, charge only a change of size.
  if (shadow_bytes != old_bytes) {
    if (shadow_bytes > old_bytes && !resources_.reserve(shadow_bytes - old_bytes)) return fail(GpuError::OutOfMemory);
    if (shadow_bytes < old_bytes) resources_.release(old_bytes - shadow_bytes);
    try {
      scanout.shadow.assign(static_cast<size_t>(shadow_bytes));
    } catch (const std::bad_alloc&) {
      clear_scanout(req.scanout_id);
      return fail(GpuError::OutOfMemory);
    }
  }
  const bool same_size =
      scanout.resource_id != 0 && scanout.rect.width == rect.width && scanout.rect.height == rect.height;
  scanout.resource_id = req.resource_id;
  scanout.rect = rect;
  scanout.blob = BlobLayout{*format, req.width, req.height, req.strides[0], req.offsets[0]};
  show_scanout(req.scanout_id, /*resized=*/!same_size);
  return ResponseBytes{};
}

bool GpuDevice::refresh_blob_shadow(uint32_t scanout_id, const Rect& visible) {
  Scanout& scanout = scanouts_[scanout_id];
  const Resource* res = resources_.find(scanout.resource_id);
  if (res == nullptr || !scanout.blob) return false;
  const BlobLayout& layout = *scanout.blob;
  const uint64_t shadow_stride = uint64_t{scanout.rect.width} * kBytesPerPixel;
  const uint64_t row_bytes = uint64_t{visible.width} * kBytesPerPixel;
  // `visible` lies inside scanout.rect, which lies inside the layout's width x height (checked when set).
  const uint64_t first =
      (uint64_t{visible.y} - scanout.rect.y) * shadow_stride + (uint64_t{visible.x} - scanout.rect.x) * kBytesPerPixel;
  std::span<std::byte> all;
  try {
    all = scanout.shadow.writable();
  } catch (const std::bad_alloc&) {
    return false;
  }
  auto dst = all.subspan(static_cast<size_t>(first));
  if (res->blob_mem == VIRTIO_GPU_BLOB_MEM_GUEST) {
    if (!res->backing) return false;
    for (uint32_t r = 0; r < visible.height; ++r) {
      const uint64_t src =
          layout.offset + (uint64_t{visible.y} + r) * layout.stride + uint64_t{visible.x} * kBytesPerPixel;
      const auto row = dst.subspan(static_cast<size_t>(r * shadow_stride), static_cast<size_t>(row_bytes));
      if (!res->backing->read(src, row)) {
        VGPU_LOG_WARN_LIMITED("scanout {}: blob {} no longer reads from guest memory", scanout_id, scanout.resource_id);
        return false;
      }
    }
    return true;
  }
  if (r3d_ == nullptr) return false;
  auto read = r3d_->read_blob(scanout.resource_id, layout.offset, layout.stride, visible, dst,
                              static_cast<uint32_t>(shadow_stride));
  if (!read) {
    VGPU_LOG_DEBUG("scanout {}: blob {} readback: {}", scanout_id, scanout.resource_id, to_string(read.error()));
    return false;
  }
  return true;
}

}  // namespace vgpu

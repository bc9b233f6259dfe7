// The 2D command handlers (virtio spec 5.7.6.8). Each sees a host copy of its request; every id, rectangle,
// offset and size is checked here, with overflow-safe arithmetic, before the renderer or display is called.
#include <algorithm>
#include <limits>

#include "common/bytes.h"
#include "common/checked.h"
#include "common/log.h"
#include "display/edid.h"
#include "gpu/device.h"
#include "gpu/host_costs.h"

namespace vgpu {

namespace {

Rect to_rect(const virtio_gpu_rect& r) {
  return Rect{r.x, r.y, r.width, r.height};
}

}  // namespace

CommandResult GpuDevice::on_get_display_info(const virtio_gpu_ctrl_hdr& /*req*/, Reader& /*rest*/) {
  virtio_gpu_resp_display_info resp{};
  resp.hdr.type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
  const auto layout = display_->display_info();  // present: the dispatcher waited for it
  for (uint32_t s = 0; s < cfg_.num_scanouts && layout && s < layout->size(); ++s) {
    const ScanoutMode& mode = (*layout)[s];
    resp.pmodes[s].r = {mode.rect.x, mode.rect.y, mode.rect.width, mode.rect.height};
    resp.pmodes[s].enabled = mode.enabled ? 1 : 0;
  }
  return bytes_of(resp);
}

CommandResult GpuDevice::on_get_edid(const virtio_gpu_cmd_get_edid& req, Reader& /*rest*/) {
  if (req.scanout >= cfg_.num_scanouts) return fail(GpuError::InvalidScanoutId);
  std::vector<uint8_t> blob;
  if (auto from_display = display_->edid_supported() ? display_->edid(req.scanout) : std::nullopt) {
    blob = std::move(*from_display);
  } else {
    // The display has no EDID of its own: describe the scanout's preferred mode.
    const auto layout = display_->display_info();
    const bool known = layout && req.scanout < layout->size() && !(*layout)[req.scanout].rect.empty();
    const Rect r = known ? (*layout)[req.scanout].rect : Rect{0, 0, cfg_.headless_width, cfg_.headless_height};
    const auto generated = generate_edid({.width = r.width, .height = r.height});
    blob.assign(generated.begin(), generated.end());
  }
  virtio_gpu_resp_edid resp{};
  if (blob.size() > sizeof(resp.edid)) return fail(GpuError::Unspec);
  resp.hdr.type = VIRTIO_GPU_RESP_OK_EDID;
  resp.size = static_cast<uint32_t>(blob.size());
  std::copy(blob.begin(), blob.end(), resp.edid);
  return bytes_of(resp);
}

CommandResult GpuDevice::on_resource_create_2d(const virtio_gpu_resource_create_2d& req, Reader& /*rest*/) {
  // Spec 5.7.6.8: resource id 0 is reserved (it means "no resource" in SET_SCANOUT).
  if (req.resource_id == 0 || resources_.contains(req.resource_id)) return fail(GpuError::InvalidResourceId);
  const auto format = pixel_format_from_virtio(req.format);
  if (!format || req.width == 0 || req.height == 0) return fail(GpuError::InvalidParameter);
  const auto stride = checked_mul<uint64_t>(req.width, kBytesPerPixel);
  auto bytes = stride ? checked_mul<uint64_t>(*stride, req.height) : std::nullopt;
  if (bytes) bytes = checked_add<uint64_t>(*bytes, host_costs::kPerResource);  // its bookkeeping (audit F5)
  if (!bytes || !resources_.reserve(*bytes)) {
    VGPU_LOG_WARN_LIMITED("RESOURCE_CREATE_2D {}x{}: over the resource memory limit ({} of {} bytes used)", req.width,
                          req.height, resources_.used_bytes(), resources_.max_bytes());
    return fail(GpuError::OutOfMemory);
  }
  if (auto r = renderer_->create_resource(req.resource_id, *format, req.width, req.height); !r) {
    resources_.release(*bytes);
    return fail(r.error() == RendererError::OutOfMemory ? GpuError::OutOfMemory : GpuError::Unspec);
  }
  Resource res;
  res.format = *format;
  res.width = req.width;
  res.height = req.height;
  res.host_bytes = *bytes;
  resources_.insert(req.resource_id, std::move(res));
  return ResponseBytes{};
}

void GpuDevice::clear_scanout(uint32_t s) {
  resources_.release(scanouts_[s].shadow.size());
  scanouts_[s] = Scanout{};
  display_->set_scanout(s, 0, 0);
}

void GpuDevice::disable_scanouts_of(uint32_t resource_id) {
  for (uint32_t s = 0; s < cfg_.num_scanouts; ++s) {
    if (scanouts_[s].resource_id == resource_id) clear_scanout(s);
  }
}

CommandResult GpuDevice::on_resource_unref(const virtio_gpu_resource_unref& req, Reader& /*rest*/) {
  if (!resources_.contains(req.resource_id)) return fail(GpuError::InvalidResourceId);
  // A resource still on a scanout stops being shown (as QEMU does) rather than dangling; a mapped blob leaves
  // the host-visible region before the renderer frees it.
  disable_scanouts_of(req.resource_id);
  drop_mapping_of(req.resource_id);
  withdraw_shared(*resources_.find(req.resource_id));
  renderer_->destroy_resource(req.resource_id);
  resources_.erase(req.resource_id);
  return ResponseBytes{};
}

CommandResult GpuDevice::on_set_scanout(const virtio_gpu_set_scanout& req, Reader& /*rest*/) {
  if (req.scanout_id >= cfg_.num_scanouts) return fail(GpuError::InvalidScanoutId);
  Scanout& scanout = scanouts_[req.scanout_id];
  // Spec 5.7.6.8: "The driver can use resource_id = 0 to disable a scanout."
  if (req.resource_id == 0) {
    clear_scanout(req.scanout_id);
    return ResponseBytes{};
  }
  const Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  // A blob has no image layout of its own: it is shown with SET_SCANOUT_BLOB.
  if (res->is_blob()) return fail(GpuError::InvalidParameter);
  const Rect rect = to_rect(req.r);
  if (rect.empty() || !rect_fits(rect, res->width, res->height)) return fail(GpuError::InvalidParameter);
  if (scanout.resource_id == req.resource_id && scanout.rect == rect && !scanout.blob) return ResponseBytes{};
  resources_.release(scanout.shadow.size());
  scanout = Scanout{req.resource_id, rect};
  show_scanout(req.scanout_id, /*resized=*/true);
  return ResponseBytes{};
}

void GpuDevice::send_flush(uint32_t scanout_id, const Rect& damage_in_resource) {
  const Scanout& scanout = scanouts_[scanout_id];
  const Rect visible = intersect(damage_in_resource, scanout.rect);
  if (visible.empty()) return;
  const Rect damage{visible.x - scanout.rect.x, visible.y - scanout.rect.y, visible.width, visible.height};
  if (scanout.dmabuf_shown) {
    r3d_->flush_for_display();
    display_->update_dmabuf(scanout_id, damage);
    return;
  }
  if (scanout.blob) {
    if (!refresh_blob_shadow(scanout_id, visible)) return;
    const ImageView shadow{.data = scanout.shadow.data(),
                           .width = scanout.rect.width,
                           .height = scanout.rect.height,
                           .stride = scanout.rect.width * kBytesPerPixel,
                           .format = scanout.blob->format,
                           .lease = scanout.shadow.lease()};
    display_->update(scanout_id, damage, shadow, damage.x, damage.y);
    return;
  }
  auto image = renderer_->image(scanout.resource_id);
  if (!image) return;
  display_->update(scanout_id, damage, *image, visible.x, visible.y);
}

CommandResult GpuDevice::on_resource_flush(const virtio_gpu_resource_flush& req, Reader& /*rest*/) {
  const Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  const Rect rect = to_rect(req.r);
  // A blob's extent is its scanout layout's: the damage is clipped to each scanout showing it.
  const uint32_t max = std::numeric_limits<uint32_t>::max();
  if (!rect_fits(rect, res->is_blob() ? max : res->width, res->is_blob() ? max : res->height)) {
    return fail(GpuError::InvalidParameter);
  }
  for (uint32_t s = 0; s < cfg_.num_scanouts; ++s) {
    if (scanouts_[s].resource_id == req.resource_id) send_flush(s, rect);
  }
  return ResponseBytes{};
}

CommandResult GpuDevice::on_transfer_to_host_2d(const virtio_gpu_transfer_to_host_2d& req, Reader& /*rest*/) {
  const Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  // Blob memory is shared with the device, which reads it when flushing: Linux still transfers its dumb
  // buffers when they are blobs, and like QEMU we answer OK without copying anything.
  if (res->is_blob()) return ResponseBytes{};
  const Rect rect = to_rect(req.r);
  if (!rect_fits(rect, res->width, res->height)) return fail(GpuError::InvalidParameter);
  if (!res->backing) {
    VGPU_LOG_DEBUG("TRANSFER_TO_HOST_2D: resource {} has no backing", req.resource_id);
    return fail(GpuError::InvalidParameter);
  }
  if (rect.empty()) return ResponseBytes{};
  // The last byte read is at offset + (height - 1) * stride + width * 4: it must lie inside the backing.
  const uint64_t stride = res->stride();
  const auto rows = checked_mul<uint64_t>(rect.height - 1, stride);
  const auto span_bytes = rows ? checked_add<uint64_t>(*rows, uint64_t{rect.width} * kBytesPerPixel) : std::nullopt;
  if (!span_bytes || !range_fits<uint64_t>(req.offset, *span_bytes, res->backing->size())) {
    return fail(GpuError::InvalidParameter);
  }
  if (auto r = renderer_->transfer_to_host_2d(req.resource_id, rect, req.offset, *res->backing); !r) {
    VGPU_LOG_WARN_LIMITED("TRANSFER_TO_HOST_2D resource {}: {}", req.resource_id, to_string(r.error()));
    return fail(GpuError::Unspec);
  }
  return ResponseBytes{};
}

Result<GuestScatterList, GpuError> GpuDevice::read_backing(uint32_t nr_entries, Reader& rest, uint64_t& host_bytes) {
  if (nr_entries == 0 || nr_entries > kMaxBackingEntries) return fail(GpuError::InvalidParameter);
  const uint64_t entries_bytes = uint64_t{nr_entries} * sizeof(virtio_gpu_mem_entry);
  if (rest.remaining() < entries_bytes) return fail(GpuError::InvalidParameter);
  host_bytes = host_costs::backing_bytes(nr_entries);
  if (!resources_.reserve(host_bytes)) return fail(GpuError::OutOfMemory);
  // One bulk copy out of the guest (a 1080p framebuffer has ~2000 page entries), then convert the host copy.
  std::vector<virtio_gpu_mem_entry> wire(nr_entries);
  if (!rest.read_bytes(std::as_writable_bytes(std::span(wire)))) {
    resources_.release(host_bytes);
    return fail(GpuError::InvalidParameter);
  }
  std::vector<ScatterEntry> entries;
  entries.reserve(wire.size());
  for (const auto& e : wire) entries.push_back({GuestAddress{e.addr}, e.length});
  auto list = mem_ != nullptr ? GuestScatterList::create(*mem_, std::move(entries))
                              : Result<GuestScatterList, MemoryError>(fail(MemoryError::OutOfRange));
  if (!list) {
    resources_.release(host_bytes);
    VGPU_LOG_DEBUG("backing of {} entries: {}", nr_entries, to_string(list.error()));
    return fail(GpuError::InvalidParameter);
  }
  return std::move(*list);
}

CommandResult GpuDevice::on_resource_attach_backing(const virtio_gpu_resource_attach_backing& req, Reader& rest) {
  Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  // A blob's memory is fixed at creation (RESOURCE_CREATE_BLOB carries its entries); detach first otherwise.
  if (res->backing || res->is_blob()) return fail(GpuError::InvalidParameter);
  uint64_t host_bytes = 0;
  auto list = read_backing(req.nr_entries, rest, host_bytes);
  if (!list) return fail(list.error());
  if (r3d_ != nullptr) {
    // virglrenderer keeps its own view of the backing (iovecs) for 2D and 3D transfers.
    if (auto r = r3d_->attach_backing(req.resource_id, *mem_, *list); !r) {
      resources_.release(host_bytes);
      return fail(r.error() == Renderer3DError::OutOfMemory ? GpuError::OutOfMemory : GpuError::InvalidParameter);
    }
  }
  res->backing.emplace(std::move(*list));
  res->host_bytes += host_bytes;
  return ResponseBytes{};
}

CommandResult GpuDevice::on_resource_detach_backing(const virtio_gpu_resource_detach_backing& req, Reader& /*rest*/) {
  Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  if (!res->backing || res->is_blob()) return fail(GpuError::InvalidParameter);
  const uint64_t host_bytes = host_costs::backing_bytes(res->backing->entries().size());
  if (r3d_ != nullptr) r3d_->detach_backing(req.resource_id);
  res->backing.reset();
  res->host_bytes -= host_bytes;
  resources_.release(host_bytes);
  return ResponseBytes{};
}

}  // namespace vgpu

// Dma-buf scanouts (GpuDeviceConfig::dmabuf_scanout): a scanout of a 3D resource or a host blob is exported by
// the renderer and shown by the display importing it, so frames cost no readback and no pixels on the display
// socket. Anything the renderer cannot export (drivers without EGL_MESA_image_dma_buf_export, guest blobs,
// plane offsets QEMU's message cannot express) and any display that cannot take it go by readback + UPDATE.
#include "common/log.h"
#include "gpu/device.h"

namespace vgpu {

std::optional<ExportedDmabuf> GpuDevice::export_scanout(uint32_t s) {
  const Scanout& sc = scanouts_[s];
  if (!cfg_.dmabuf_scanout || r3d_ == nullptr || sc.resource_id == 0) return std::nullopt;
  const Resource* res = resources_.find(sc.resource_id);
  if (res == nullptr) return std::nullopt;
  const auto fall_back = [&](std::string_view why) -> std::optional<ExportedDmabuf> {
    if (!logged_export_failure_) {
      VGPU_LOG_INFO("scanout {}: resource {} is shown by copy: {} (logged once)", s, sc.resource_id, why);
      logged_export_failure_ = true;
    } else {
      VGPU_LOG_DEBUG("scanout {}: resource {} is shown by copy: {}", s, sc.resource_id, why);
    }
    return std::nullopt;
  };
  if (!sc.blob) {
    auto exported = r3d_->export_image(sc.resource_id);
    if (!exported) return fall_back("the renderer cannot export it as a dma-buf");
    return std::move(*exported);
  }
  // Guest blobs live in guest RAM: exporting them needs udmabuf, which this device does not use.
  if (res->blob_mem == VIRTIO_GPU_BLOB_MEM_GUEST) return fall_back("a guest-memory blob");
  if (sc.blob->offset != 0) return fall_back("a plane offset DMABUF_SCANOUT cannot carry");
  auto fd = r3d_->export_blob(sc.resource_id);
  if (!fd) return fall_back("the renderer cannot export the blob as a dma-buf");
  ExportedDmabuf out{std::move(*fd), {}};
  // The guest's layout (SET_SCANOUT_BLOB): rows `stride` apart from byte 0, no tiling.
  out.image = DmabufImage{.fd = out.fd.get(),
                          .width = sc.blob->width,
                          .height = sc.blob->height,
                          .stride = sc.blob->stride,
                          .offset = 0,
                          .fourcc = drm_fourcc_of(sc.blob->format),
                          .modifier = kDrmModLinear,
                          .y0_top = false};
  return out;
}

bool GpuDevice::offer_dmabuf(uint32_t s) {
  Scanout& sc = scanouts_[s];
  sc.dmabuf_shown = sc.dmabuf && display_->accepts_dmabuf(sc.dmabuf->image) &&
                    display_->set_scanout_dmabuf(s, sc.dmabuf->image, sc.rect);
  return sc.dmabuf_shown;
}

void GpuDevice::show_scanout(uint32_t s, bool resized) {
  Scanout& sc = scanouts_[s];
  const bool was_shown = sc.dmabuf_shown;
  sc.dmabuf = export_scanout(s);
  if (offer_dmabuf(s)) return;
  // Back to pixels: a display that showed a dma-buf needs a SCANOUT even at the same size.
  if (resized || was_shown) display_->set_scanout(s, sc.rect.width, sc.rect.height);
}

}  // namespace vgpu

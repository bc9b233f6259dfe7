// The cursor queue's commands (virtio spec 5.7.6.10). The cursor queue has no responses, so failures are
// only logged (at debug level: a guest can send them at any rate).
#include "common/log.h"
#include "gpu/device.h"

namespace vgpu {

namespace {

// Linux creates every dumb buffer, cursor ones included, as XRGB8888 (a B8G8R8X8 resource), yet the cursor
// plane's pixels are ARGB8888 with real alpha; QEMU's backend passes the bytes through. So a cursor image's
// fourth byte is alpha whatever the resource's format says.
PixelFormat with_alpha(PixelFormat f) {
  switch (f) {
    case PixelFormat::B8G8R8X8: return PixelFormat::B8G8R8A8;
    case PixelFormat::X8R8G8B8: return PixelFormat::A8R8G8B8;
    case PixelFormat::X8B8G8R8: return PixelFormat::A8B8G8R8;
    case PixelFormat::R8G8B8X8: return PixelFormat::R8G8B8A8;
    default: return f;
  }
}

}  // namespace

CommandResult GpuDevice::on_update_cursor(const virtio_gpu_update_cursor& req, Reader& /*rest*/) {
  if (req.pos.scanout_id >= cfg_.num_scanouts) return fail(GpuError::InvalidScanoutId);
  // Spec 5.7.6.10: resource_id 0 hides the cursor.
  if (req.resource_id == 0) {
    cursors_[req.pos.scanout_id].visible = false;
    display_->cursor_hide(req.pos.scanout_id);
    return ResponseBytes{};
  }
  const Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  if (res->width > kCursorSize || res->height > kCursorSize || req.hot_x >= kCursorSize || req.hot_y >= kCursorSize) {
    return fail(GpuError::InvalidParameter);
  }
  if (!renderer_->image(req.resource_id)) return fail(GpuError::InvalidResourceId);
  cursors_[req.pos.scanout_id] = CursorState{true, req.resource_id, req.hot_x, req.hot_y, req.pos.x, req.pos.y};
  show_cursor(req.pos.scanout_id);
  VGPU_LOG_DEBUG("cursor update: resource {} on scanout {} at ({}, {})", req.resource_id, req.pos.scanout_id, req.pos.x,
                 req.pos.y);
  return ResponseBytes{};
}

void GpuDevice::show_cursor(uint32_t s) {
  const CursorState& c = cursors_[s];
  auto image = renderer_->image(c.resource_id);
  if (!image) return;
  image->format = with_alpha(image->format);
  display_->cursor_update(s, c.x, c.y, c.hot_x, c.hot_y, cursor_argb(*image));
}

CommandResult GpuDevice::on_move_cursor(const virtio_gpu_update_cursor& req, Reader& /*rest*/) {
  if (req.pos.scanout_id >= cfg_.num_scanouts) return fail(GpuError::InvalidScanoutId);
  cursors_[req.pos.scanout_id].x = req.pos.x;
  cursors_[req.pos.scanout_id].y = req.pos.y;
  display_->cursor_move(req.pos.scanout_id, req.pos.x, req.pos.y);
  VGPU_LOG_TRACE("cursor move: scanout {} to ({}, {})", req.pos.scanout_id, req.pos.x, req.pos.y);
  return ResponseBytes{};
}

}  // namespace vgpu

#include "gpu/device.h"

#include <linux/virtio_config.h>
// The legacy part of <linux/virtio_ring.h> (vring_init) is C, not C++; only the feature bit numbers are used.
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

#include <cstring>

#include "common/checked.h"
#include "common/log.h"
#include "gpu/command_names.h"

namespace vgpu {

namespace {

constexpr uint64_t feature_bit(unsigned bit) {
  return uint64_t{1} << bit;
}

}  // namespace

GpuDevice::GpuDevice(GpuDeviceConfig config) {
  config_.num_scanouts = config.num_scanouts;
}

uint64_t GpuDevice::features() const {
  // Transport features only: no VIRTIO_GPU_F_* bit is offered until the commands behind it work.
  return feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_RING_F_INDIRECT_DESC) |
         feature_bit(VIRTIO_RING_F_EVENT_IDX);
}

bool GpuDevice::read_config(uint32_t offset, std::span<std::byte> out) const {
  if (!range_fits<size_t>(offset, out.size(), sizeof(config_))) return false;
  std::memcpy(out.data(), reinterpret_cast<const std::byte*>(&config_) + offset, out.size());
  return true;
}

bool GpuDevice::write_config(uint32_t offset, std::span<const std::byte> in) {
  // Only events_clear is writable (virtio spec 5.7.4: "events_clear: clears pending events in the device.
  // Writing a '1' into a bit will clear the corresponding bit in events_read").
  if (offset != offsetof(virtio_gpu_config, events_clear) || in.size() != sizeof(uint32_t)) return false;
  uint32_t clear = 0;
  std::memcpy(&clear, in.data(), sizeof(clear));
  config_.events_read &= ~clear;
  return true;
}

void GpuDevice::on_queue_kick(size_t index, Queue& queue, const GuestMemory& /*mem*/) {
  // Drain with notifications disabled, then re-enable and drain again if buffers arrived in between
  // (virtio spec 2.7.10: the driver may add buffers after our last check and before re-enabling).
  do {
    queue.disable_notifications();
    while (true) {
      auto chain = queue.pop();
      if (!chain) {
        VGPU_LOG_WARN("queue {}: rejected a malformed descriptor chain: {}", index, to_string(chain.error()));
        continue;
      }
      if (!*chain) break;
      const uint32_t written = handle(index, **chain);
      queue.add_used(std::move(**chain), written);
    }
  } while (queue.enable_notifications() && !queue.broken());
  if (queue.broken()) VGPU_LOG_WARN("queue {} is broken: {}", index, to_string(*queue.broken_reason()));
  queue.notify_if_needed();
}

uint32_t GpuDevice::handle(size_t queue_index, const DescriptorChain& chain) {
  Reader reader = chain.reader();
  Writer writer = chain.writer();
  const char* queue_name = queue_index == kControlQueue ? "controlq" : "cursorq";
  auto hdr = reader.read<virtio_gpu_ctrl_hdr>();
  if (!hdr) {
    VGPU_LOG_WARN("{}: request shorter than a virtio_gpu_ctrl_hdr ({} bytes)", queue_name, reader.remaining());
    virtio_gpu_ctrl_hdr resp{};
    resp.type = VIRTIO_GPU_RESP_ERR_UNSPEC;
    return writer.write(resp) ? static_cast<uint32_t>(writer.written()) : 0;
  }
  const uint32_t type = hdr->type;
  VGPU_LOG_DEBUG("{}: command {} (0x{:04x})", queue_name, command_name(type), type);
  if (type < logged_types_.size() && !logged_types_.test(type)) {
    logged_types_.set(type);
    VGPU_LOG_INFO("{}: command {} (0x{:04x}) is not implemented yet: answering ERR_UNSPEC", queue_name,
                  command_name(type), type);
  }
  // Cursor commands have no response (spec 5.7.6.10: the device writes nothing back on the cursor queue).
  if (queue_index == kCursorQueue) return 0;
  virtio_gpu_ctrl_hdr resp{};
  resp.type = VIRTIO_GPU_RESP_ERR_UNSPEC;
  // Spec 5.7.6.7: a fenced request's response carries the same fence flag and fence_id.
  resp.flags = hdr->flags & VIRTIO_GPU_FLAG_FENCE;
  resp.fence_id = resp.flags != 0 ? hdr->fence_id : 0;
  resp.ctx_id = hdr->ctx_id;
  if (!writer.write(resp)) {
    VGPU_LOG_WARN("{}: no room for a response to {}", queue_name, command_name(type));
    return 0;
  }
  return static_cast<uint32_t>(writer.written());
}

void GpuDevice::on_display_socket(UniqueFd fd) {
  VGPU_LOG_INFO("display socket received (fd {})", fd.get());
  display_socket_ = std::move(fd);
}

void GpuDevice::reset() {
  config_.events_read = 0;
  acked_features_ = 0;
  logged_types_.reset();
  display_socket_.reset();
}

}  // namespace vgpu

// The virtio-gpu device as the vhost-user transport sees it: two queues (control, cursor), feature bits and
// the virtio_gpu_config space. This is the foundation stage: negotiation, config space and queue draining
// are real; the GPU commands themselves are not implemented yet, so every command is answered with
// VIRTIO_GPU_RESP_ERR_UNSPEC (logged once per command type) and no device feature bit is offered.
//
//   GpuDevice device(GpuDeviceConfig{.num_scanouts = 1});
//   Server server(device, ...);
#pragma once

#include <linux/virtio_gpu.h>

#include <bitset>
#include <cstdint>

#include "vhost_user/backend.h"

namespace vgpu {

struct GpuDeviceConfig {
  uint32_t num_scanouts = 1;  // 1..VIRTIO_GPU_MAX_SCANOUTS
};

class GpuDevice final : public Backend {
 public:
  static constexpr size_t kControlQueue = 0;
  static constexpr size_t kCursorQueue = 1;

  explicit GpuDevice(GpuDeviceConfig config);

  [[nodiscard]] size_t num_queues() const override { return 2; }
  [[nodiscard]] uint16_t max_queue_size() const override { return 1024; }
  [[nodiscard]] uint64_t features() const override;
  void set_acked_features(uint64_t acked) override { acked_features_ = acked; }

  [[nodiscard]] size_t config_size() const override { return sizeof(virtio_gpu_config); }
  bool read_config(uint32_t offset, std::span<std::byte> out) const override;
  bool write_config(uint32_t offset, std::span<const std::byte> in) override;

  void on_queue_kick(size_t index, Queue& queue, const GuestMemory& mem) override;
  void on_display_socket(UniqueFd fd) override;
  void reset() override;

  [[nodiscard]] const virtio_gpu_config& config() const { return config_; }

 private:
  // Answers one chain; returns the number of bytes written to the driver.
  uint32_t handle(size_t queue_index, const DescriptorChain& chain);

  virtio_gpu_config config_{};
  uint64_t acked_features_ = 0;
  std::bitset<0x400> logged_types_;  // command types already reported as unimplemented
  UniqueFd display_socket_;
};

}  // namespace vgpu

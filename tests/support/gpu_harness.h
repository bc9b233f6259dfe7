// The GPU device in-process with a fake driver: fake guest memory, both queues, and helpers that send a
// command and return the device's response. For unit tests and the gpu_command fuzzer.
//
//   GpuHarness h;
//   virtio_gpu_resource_create_2d req{.hdr = {.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D}, .resource_id = 1, ...};
//   EXPECT_EQ(h.command_type(req), VIRTIO_GPU_RESP_OK_NODATA);
// Without `renderers` the device renders with soft2d; displays are the standard ones (device_parts.h).
#pragma once

#include <linux/virtio_gpu.h>

#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "gpu/device.h"
#include "support/device_parts.h"
#include "support/fake_guest.h"

namespace vgpu::test {

class GpuHarness {
 public:
  static constexpr uint64_t kDefaultFeatures = uint64_t{1} << VIRTIO_GPU_F_EDID;
  // What a 3D guest acks: EDID, VIRGL, CONTEXT_INIT and RESOURCE_BLOB.
  static constexpr uint64_t k3dFeatures = kDefaultFeatures | (uint64_t{1} << VIRTIO_GPU_F_VIRGL) |
                                          (uint64_t{1} << VIRTIO_GPU_F_CONTEXT_INIT) |
                                          (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB);

  explicit GpuHarness(GpuDeviceConfig config = {}, uint64_t acked_features = kDefaultFeatures,
                      uint64_t memory_bytes = 64ull << 20, std::optional<Renderers> renderers = std::nullopt,
                      EventLoop* loop = nullptr);
  ~GpuHarness();
  GpuHarness(const GpuHarness&) = delete;
  GpuHarness& operator=(const GpuHarness&) = delete;

  [[nodiscard]] GpuDevice& device() { return *device_; }
  [[nodiscard]] FakeGuestMemory& guest() { return *guest_; }
  [[nodiscard]] FakeVirtqueue& queue(size_t index) { return *vqs_.at(index); }
  // The device's side of the control queue (to stop and restart it).
  [[nodiscard]] Queue& control_queue() { return *queues_.at(GpuDevice::kControlQueue); }

  // Sends `request` (plus `extra` bytes after it, e.g. backing entries) on `queue` with `response_size`
  // writable bytes, kicks the device and returns what it wrote (nullopt: the chain is not back yet, e.g.
  // waiting for the display).
  std::optional<std::vector<std::byte>> send(size_t queue, std::span<const std::byte> request,
                                             uint32_t response_size = sizeof(virtio_gpu_ctrl_hdr),
                                             std::span<const std::byte> extra = {});
  // A command whose answer may come later (held by the device): submit() publishes and kicks it, collect() looks
  // for its completion among the used entries published since (skipping others) and returns its response.
  struct Submitted {
    uint16_t head = 0;
    GuestAddress response{0};
    uint32_t response_size = 0;
  };
  template <class T>
  Submitted submit(const T& request, uint32_t response_size = sizeof(virtio_gpu_ctrl_hdr)) {
    return submit_bytes(GpuDevice::kControlQueue, as_bytes(request), response_size);
  }
  Submitted submit_bytes(size_t queue, std::span<const std::byte> request, uint32_t response_size);
  std::optional<std::vector<std::byte>> collect(const Submitted& s, size_t queue = GpuDevice::kControlQueue);

  // The response type of a control command (0 when no response came back).
  template <class T>
  uint32_t command_type(const T& request, std::span<const std::byte> extra = {}) {
    return response_type(send(GpuDevice::kControlQueue, as_bytes(request), sizeof(virtio_gpu_ctrl_hdr), extra));
  }
  static uint32_t response_type(const std::optional<std::vector<std::byte>>& response);

  // Convenience for 2D set-up; each returns the response type.
  uint32_t create_2d(uint32_t id, uint32_t width, uint32_t height, uint32_t format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
  // Allocates guest memory for `bytes`, fills it with `fill(i)` per byte, attaches it in `pieces` entries.
  uint32_t attach_backing(uint32_t id, uint64_t bytes, uint32_t pieces = 1);
  [[nodiscard]] GuestAddress backing_address(uint32_t id) const;
  uint32_t transfer(uint32_t id, virtio_gpu_rect rect, uint64_t offset);
  uint32_t set_scanout(uint32_t scanout, uint32_t id, virtio_gpu_rect rect);
  uint32_t flush(uint32_t id, virtio_gpu_rect rect);
  // RESOURCE_CREATE_BLOB. GUEST and HOST3D_GUEST blobs get `bytes` of fresh guest memory (backing_address(id))
  // in `pieces` entries; HOST3D blobs none. Needs VIRTIO_GPU_F_RESOURCE_BLOB acked.
  uint32_t create_blob(uint32_t id, uint32_t blob_mem, uint64_t bytes, uint32_t pieces = 1, uint32_t flags = 0,
                       uint64_t blob_id = 0, uint32_t ctx_id = 0);
  // CTX_CREATE with the debug name "test" (needs VIRTIO_GPU_F_VIRGL acked and a 3D renderer).
  uint32_t ctx_create(uint32_t ctx_id, uint32_t context_init = 0);
  // SET_SCANOUT_BLOB of a width x height image (plane 0 at `offset`, `stride` bytes per row) showing `rect`.
  uint32_t set_scanout_blob(uint32_t scanout, uint32_t id, virtio_gpu_rect rect, uint32_t width, uint32_t height,
                            uint32_t stride, uint32_t offset = 0, uint32_t format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);

  template <class T>
  static std::span<const std::byte> as_bytes(const T& v) {
    return std::as_bytes(std::span<const T, 1>(&v, 1));
  }

 private:
  std::unique_ptr<FakeGuestMemory> guest_;
  std::vector<std::unique_ptr<FakeVirtqueue>> vqs_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::unique_ptr<GpuDevice> device_;
  std::vector<std::pair<uint32_t, GuestAddress>> backings_;
};

}  // namespace vgpu::test

// A small stand-in for QEMU's side of vhost-user-gpu: memfd guest memory, both virtqueues driven by a fake
// driver, the negotiation QEMU performs, kicks, and reading the used ring after the call eventfd fires.
// Integration tests drive the real binary with it; later benchmarks drive ours and QEMU's backend with it.
//
//   auto fe = TestFrontend::connect(socket_path);
//   ASSERT_TRUE(fe && fe->negotiate()) << fe->error();
//   virtio_gpu_ctrl_hdr req{.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
//   auto resp = fe->command(TestFrontend::kControlQueue, bytes_of(req), sizeof(virtio_gpu_resp_display_info));
//   ASSERT_TRUE(resp);
#pragma once

#include <linux/virtio_gpu.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "support/fake_guest.h"
#include "support/vhost_user_client.h"

namespace vgpu::test {

struct TestFrontendOptions {
  uint64_t memory_size = 32ull << 20;  // split into two regions with a gap, as QEMU's RAM below/above 4 GiB
  uint16_t queue_size = 256;
  bool event_idx = true;
  bool indirect = true;
  // Send memory as ADD_MEM_REG per region (QEMU does when CONFIGURE_MEM_SLOTS is negotiated) instead of
  // one SET_MEM_TABLE.
  bool add_mem_reg = false;
};

class TestFrontend {
 public:
  static constexpr size_t kControlQueue = 0;
  static constexpr size_t kCursorQueue = 1;
  static constexpr size_t kNumQueues = 2;

  static std::unique_ptr<TestFrontend> connect(const std::string& socket_path, TestFrontendOptions options = {});
  ~TestFrontend();
  TestFrontend(const TestFrontend&) = delete;
  TestFrontend& operator=(const TestFrontend&) = delete;

  // The sequence QEMU 10.0 sends when vhost-user-gpu-pci realizes and the guest driver starts the device:
  // SET_OWNER, GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, GET_CONFIG,
  // SET_FEATURES, memory, and for each queue SET_VRING_NUM/BASE/ADDR/KICK/CALL/ENABLE, then SET_STATUS.
  // Every request that allows it asks for REPLY_ACK. False on the first failure (see error()).
  bool negotiate();

  // GET_CONFIG of the whole virtio_gpu_config.
  std::optional<virtio_gpu_config> get_config();

  // Publishes one chain (request readable, `response_size` bytes writable) on `queue`, kicks, waits for the
  // call eventfd and returns the bytes the device wrote (nullopt on timeout or a chain returned with 0 bytes
  // when a response was expected).
  std::optional<std::vector<std::byte>> command(size_t queue, std::span<const std::byte> request,
                                                uint32_t response_size, int timeout_ms = 5000);

  void kick(size_t queue);
  // Waits for the call eventfd of `queue` and clears it.
  bool wait_call(size_t queue, int timeout_ms = 5000);

  [[nodiscard]] VhostUserClient& client() { return client_; }
  [[nodiscard]] FakeGuestMemory& guest() { return *guest_; }
  [[nodiscard]] FakeVirtqueue& queue(size_t index) { return *queues_.at(index); }
  [[nodiscard]] uint64_t backend_features() const { return backend_features_; }
  [[nodiscard]] uint64_t protocol_features() const { return protocol_features_; }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  TestFrontend(VhostUserClient client, TestFrontendOptions options);
  bool failed(const std::string& what);
  bool request_ack(vhost_user::FrontendRequest request, std::span<const std::byte> payload,
                   std::span<const int> fds = {});
  bool send_memory();
  bool setup_queue(size_t index);

  VhostUserClient client_;
  TestFrontendOptions options_;
  std::unique_ptr<FakeGuestMemory> guest_;
  std::array<std::unique_ptr<FakeVirtqueue>, kNumQueues> queues_;
  std::array<UniqueFd, kNumQueues> kick_fds_;
  std::array<UniqueFd, kNumQueues> call_fds_;
  uint64_t backend_features_ = 0;
  uint64_t protocol_features_ = 0;
  std::string error_;
};

}  // namespace vgpu::test

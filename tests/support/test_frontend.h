// A small stand-in for QEMU's side of vhost-user-gpu: memfd guest memory, both virtqueues driven by a fake
// driver, the negotiation QEMU performs, kicks, and reading the used ring after the call eventfd fires.
// Integration tests drive the real binary with it; later benchmarks drive ours and QEMU's backend with it.
//
//   auto fe = TestFrontend::connect(socket_path);
//   ASSERT_TRUE(fe && fe->negotiate()) << fe->error();
//   virtio_gpu_ctrl_hdr req{.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
//   auto resp = fe->command(TestFrontend::kControlQueue, bytes_of(req), sizeof(virtio_gpu_resp_display_info));
//   ASSERT_TRUE(resp);
//
// With a display (QEMU's side of the display socket, support/display_server.h), negotiate() also sends
// GPU_SET_SOCKET where QEMU does, and guest framebuffers get their backing like a Linux guest's:
//
//   DisplayServer display;
//   auto fe = TestFrontend::connect(socket_path, {.display = &display});
//   GuestBacking fb = fe->alloc_backing(1920 * 1080 * 4, BackingLayout::Pages);    // one entry per 4 KiB page
//   fe->command(kControlQueue, attach_backing_request(1, fb.entries), sizeof(virtio_gpu_ctrl_hdr));
//
// Many commands in flight, one kick (CommandPipeline, below):
//
//   CommandPipeline pipe(*fe, TestFrontend::kControlQueue, 64);
//   for (uint32_t i = 0; i < 64; ++i) pipe.submit(request, sizeof(virtio_gpu_resp_display_info), i);
//   pipe.kick();
//   auto done = pipe.collect(64);   // 64 completions, in used-ring order
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

class DisplayServer;

struct TestFrontendOptions {
  uint64_t memory_size = 32ull << 20;  // split into two regions with a gap, as QEMU's RAM below/above 4 GiB
  uint16_t queue_size = 256;
  bool event_idx = true;
  bool indirect = true;
  // Send memory as ADD_MEM_REG per region (QEMU does when CONFIGURE_MEM_SLOTS is negotiated) instead of
  // one SET_MEM_TABLE.
  bool add_mem_reg = false;
  // Memory regions as QEMU sends them: guest addresses, frontend addresses and mmap offsets page aligned, and
  // guest pages page aligned in the memfd. libvhost-user since QEMU 9 mmaps at mmap_offset, which then must be
  // page aligned; QEMU's backends need this. Off by default: the fake's odd offsets catch a backend that
  // ignores mmap_offset. (The regions start 0x300 bytes into their first page; the wire regions at it.)
  bool page_aligned_regions = false;
  // When set, negotiate() sends GPU_SET_SOCKET with a socket this server serves, as QEMU does when the guest
  // sets DRIVER_OK: after GET_CONFIG, before SET_FEATURES and the memory and vring setup. Not owned.
  DisplayServer* display = nullptr;
  // Device feature bits (VIRTIO_GPU_F_*) acked when the backend offers them. QEMU's vhost-user-gpu-pci acks
  // VIRGL and EDID at most; its generic vhost-user-test-device-pci passes any (e.g. RESOURCE_BLOB).
  uint64_t device_features = 0;
  // Protocol feature bits acked on top of QEMU 10.0's set when the backend offers them (e.g. BACKEND_REQ and
  // SHARED_OBJECT, which QEMU 11.1 acks; the caller then sends SET_BACKEND_REQ_FD itself).
  uint64_t extra_protocol_features = 0;
};

// How alloc_backing() lays a guest buffer out in ATTACH_BACKING entries.
enum class BackingLayout {
  OneEntry,        // one entry for the whole buffer
  Pages,           // one entry per 4 KiB page, pages contiguous and in order (Linux without sg merging)
  ScatteredPages,  // one entry per 4 KiB page, pages permuted (a fragmented guest: no two entries adjacent)
};

// A guest buffer backing a resource: resource byte `o` lives at entries[o / 4096].addr + o % 4096 for the
// page layouts, at base + o for OneEntry.
struct GuestBacking {
  GuestAddress base{0};  // the one guest allocation holding every page
  uint64_t size = 0;     // bytes the entries cover
  std::vector<virtio_gpu_mem_entry> entries;
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
  // The call eventfd of `queue` (non-blocking), for callers that poll it with other fds.
  [[nodiscard]] int call_fd(size_t queue) const { return call_fds_.at(queue).get(); }

  // Sends GPU_SET_SOCKET with a fresh socket `display` serves (no REPLY_ACK asked, as QEMU sends it).
  bool send_display_socket(DisplayServer& display);

  // Guest memory for a resource's backing, `size` bytes (rounded up to 4 KiB for the page layouts). Throws
  // (std::runtime_error) when the fake guest memory has no room.
  GuestBacking alloc_backing(uint64_t size, BackingLayout layout = BackingLayout::Pages);
  void free_backing(const GuestBacking& backing);
  // Writes `data` at resource byte `offset` of the backing (splitting it across entries). Throws when it does
  // not fit.
  void write_backing(const GuestBacking& backing, uint64_t offset, std::span<const std::byte> data);

  [[nodiscard]] VhostUserClient& client() { return client_; }
  [[nodiscard]] FakeGuestMemory& guest() { return *guest_; }
  [[nodiscard]] FakeVirtqueue& queue(size_t index) { return *queues_.at(index); }
  [[nodiscard]] uint64_t backend_features() const { return backend_features_; }
  [[nodiscard]] uint64_t protocol_features() const { return protocol_features_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] const TestFrontendOptions& options() const { return options_; }

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

// Commands in flight without an allocation per command, like a driver's ring of preallocated command
// buffers: `depth` chains (a readable request buffer and a writable response buffer each) are set up once;
// submit() copies a request into a free one and publishes it (no kick), kick() notifies once, and reap() or
// collect() take the completions off the used ring. The chains' descriptors stay taken from the queue for the
// frontend's life. Do not mix with TestFrontend::command() on the same queue while commands are in flight.
class CommandPipeline {
 public:
  struct Completion {
    uint32_t tag = 0;            // what submit() was given
    uint32_t len = 0;            // bytes the device wrote
    uint32_t response_type = 0;  // the response header's type; 0 when fewer than its 24 bytes came back
  };

  CommandPipeline(TestFrontend& frontend, size_t queue, uint16_t depth, uint32_t max_request = 4096,
                  uint32_t max_response = 4096);
  ~CommandPipeline();
  CommandPipeline(const CommandPipeline&) = delete;
  CommandPipeline& operator=(const CommandPipeline&) = delete;

  // Publishes one command on the avail ring. False when `depth` commands are in flight, or the request or
  // response does not fit the preallocated buffers.
  bool submit(std::span<const std::byte> request, uint32_t response_size, uint32_t tag = 0);
  // Asks for a call on the next used entry (EVENT_IDX) and kicks the queue.
  void kick();
  // Appends every completion the device has published to `out`, then re-arms the call for the next one;
  // returns how many were appended. Does not touch the call eventfd.
  size_t reap(std::vector<Completion>& out);
  // Waits on the call eventfd until `count` completions were reaped; nullopt on timeout.
  std::optional<std::vector<Completion>> collect(size_t count, int timeout_ms = 5000);

  [[nodiscard]] size_t in_flight() const { return slots_.size() - free_.size(); }
  [[nodiscard]] uint16_t depth() const { return static_cast<uint16_t>(slots_.size()); }

 private:
  struct Slot {
    uint16_t request_desc = 0;  // the head
    uint16_t response_desc = 0;
    GuestAddress request{0};
    GuestAddress response{0};
    uint32_t response_size = 0;
    uint32_t tag = 0;
  };

  TestFrontend* frontend_;
  size_t queue_;
  uint32_t max_request_;
  uint32_t max_response_;
  std::vector<Slot> slots_;
  std::vector<uint16_t> free_;         // free slot indices
  std::vector<int32_t> slot_of_head_;  // descriptor index -> slot, -1 for descriptors not ours
  uint16_t last_used_ = 0;             // used->idx up to which completions were reaped
};

// Request bytes for the 2D commands (little-endian hosts: the structs are the wire format).
template <class T>
std::vector<std::byte> request_bytes(const T& value) {
  auto bytes = std::as_bytes(std::span<const T, 1>(&value, 1));
  return {bytes.begin(), bytes.end()};
}
std::vector<std::byte> get_display_info_request();
std::vector<std::byte> resource_create_2d_request(uint32_t resource_id, uint32_t format, uint32_t width,
                                                  uint32_t height);
std::vector<std::byte> attach_backing_request(uint32_t resource_id, std::span<const virtio_gpu_mem_entry> entries);
std::vector<std::byte> set_scanout_request(uint32_t scanout_id, uint32_t resource_id, const virtio_gpu_rect& rect);
std::vector<std::byte> transfer_to_host_2d_request(uint32_t resource_id, const virtio_gpu_rect& rect, uint64_t offset);
std::vector<std::byte> resource_flush_request(uint32_t resource_id, const virtio_gpu_rect& rect);
std::vector<std::byte> resource_unref_request(uint32_t resource_id);
// RESOURCE_CREATE_BLOB of guest memory (BLOB_MEM_GUEST), its pages in `entries`.
std::vector<std::byte> create_guest_blob_request(uint32_t resource_id, uint64_t size,
                                                 std::span<const virtio_gpu_mem_entry> entries);
// SET_SCANOUT_BLOB: a width x height B8G8R8X8 image, `stride` bytes per row from byte `offset`, showing `rect`.
std::vector<std::byte> set_scanout_blob_request(uint32_t scanout_id, uint32_t resource_id, const virtio_gpu_rect& rect,
                                                uint32_t width, uint32_t height, uint32_t stride, uint32_t offset);
// The type of a response (0 when it is shorter than a header).
uint32_t response_type(std::span<const std::byte> response);

}  // namespace vgpu::test

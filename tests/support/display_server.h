// QEMU's side of the vhost-user-gpu display socket (docs/interop/vhost-user-gpu.rst; QEMU's
// hw/display/vhost-user-gpu.c), for integration tests and benchmarks. The frontend hands one end of a
// socketpair to the backend with GPU_SET_SOCKET (TestFrontendOptions::display does it); this server serves the
// other end on its own thread, as QEMU's chardev handler does:
//
//   GET_PROTOCOL_FEATURES  -> the offered features (EDID by default; QEMU 10 also offers DMABUF2)
//   SET_PROTOCOL_FEATURES  -> recorded, no reply
//   GET_DISPLAY_INFO       -> the configured outputs, enabled, at (0, 0)
//   GET_EDID               -> generate_edid() of the output, size 1024 zero-padded like QEMU; no reply at all
//                             for a scanout beyond the outputs (QEMU's max_outputs), as QEMU does
//   SCANOUT                -> a fresh zeroed surface (0 x 0: disabled)
//   UPDATE                 -> the x8r8g8b8 pixels copied into the surface, clipped (QEMU composites them)
//   CURSOR_*               -> counted
//   DMABUF_*               -> recorded as errors (no dma-buf here); DMABUF_UPDATE is answered so that a
//                             backend waiting for it does not hang
//
// Each message is read like QEMU reads it: the header, then the whole payload into one buffer, then handled.
// Anything the server cannot parse is recorded in errors() and the connection is closed.
//
//   DisplayServer display({.outputs = {{1920, 1080}}});
//   TestFrontendOptions options{.display = &display};   // negotiate() sends GPU_SET_SOCKET
//   ...
//   ASSERT_TRUE(display.wait_for_updates(1, std::chrono::seconds(5)));
//   EXPECT_EQ(display.pixel(0, 10, 10) & 0xffffff, 0x00ff00u);
//
// For poll loops (benchmarks), update_fd() is an eventfd that counts UPDATE messages as they are handled.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "display/display.h"
#include "display/protocol.h"

namespace vgpu::test {

struct DisplayOutput {
  uint32_t width = 1920;
  uint32_t height = 1080;
};

struct DisplayServerOptions {
  // Enabled outputs, scanout 0 first. Their count is QEMU's max_outputs for GET_EDID.
  std::vector<DisplayOutput> outputs = {DisplayOutput{}};
  // What GET_PROTOCOL_FEATURES offers.
  uint64_t protocol_features = display::kProtocolFeatureEdid;
};

class DisplayServer {
 public:
  // What the server has seen. Counters only grow.
  struct Stats {
    uint64_t messages = 0;
    uint64_t get_protocol_features = 0;
    std::optional<uint64_t> protocol_features_set;  // the last SET_PROTOCOL_FEATURES
    uint64_t get_display_info = 0;
    uint64_t get_edid = 0;
    uint64_t scanouts = 0;       // SCANOUT messages
    uint64_t updates = 0;        // UPDATE messages
    uint64_t update_bytes = 0;   // UPDATE payload bytes (header and pixels)
    uint64_t update_pixels = 0;  // width * height summed over UPDATEs
    uint64_t cursor_messages = 0;
    bool connected = false;  // a socket is being served
    bool closed = false;     // the peer closed it, or the server dropped it after an error
  };

  // x8r8g8b8 words (0xXXRRGGBB), row-major, stride width.
  struct Surface {
    uint32_t width = 0;
    uint32_t height = 0;
    std::vector<uint32_t> pixels;
  };

  explicit DisplayServer(DisplayServerOptions options = {});
  ~DisplayServer();
  DisplayServer(const DisplayServer&) = delete;
  DisplayServer& operator=(const DisplayServer&) = delete;

  // Makes a socketpair, starts serving one end on the server's thread and returns the other end, for the
  // backend (GPU_SET_SOCKET). A connection already served is dropped first (QEMU builds a new socket on
  // every DRIVER_OK). Invalid on failure (see errors()).
  UniqueFd connect();
  // Stops the thread and closes the served socket. Idempotent; the destructor calls it.
  void stop();

  [[nodiscard]] Stats stats() const;
  [[nodiscard]] std::vector<std::string> errors() const;
  // Waits until `done(stats())` holds, up to `timeout`.
  bool wait_until(const std::function<bool(const Stats&)>& done, std::chrono::milliseconds timeout) const;
  // Waits until at least `count` UPDATE messages have been handled in total.
  bool wait_for_updates(uint64_t count, std::chrono::milliseconds timeout) const;
  // UPDATE messages handled so far (lock-free, for hot loops).
  [[nodiscard]] uint64_t updates() const { return updates_.load(std::memory_order_acquire); }
  // An eventfd (non-blocking) incremented once per UPDATE handled, after the pixels are in the surface.
  [[nodiscard]] int update_fd() const { return update_fd_.get(); }

  // A copy of a scanout's surface; nullopt when none was set (or it is disabled).
  [[nodiscard]] std::optional<Surface> surface(uint32_t scanout) const;
  // One pixel of a scanout's surface; nullopt outside it.
  [[nodiscard]] std::optional<uint32_t> pixel(uint32_t scanout, uint32_t x, uint32_t y) const;

 private:
  void run(int socket);
  // Reads and handles every complete message available; false when the connection is over.
  bool read_messages(int socket);
  bool handle(int socket, const display::MessageHeader& header);
  bool reply(int socket, display::Request request, const void* payload, uint32_t size);
  void error(const std::string& what);

  DisplayServerOptions options_;
  UniqueFd update_fd_;
  UniqueFd stop_fd_;  // eventfd: tells the thread to end
  UniqueFd socket_;   // the served end, owned here, used only by the thread while it runs
  std::thread thread_;

  // Thread-side read state (touched only by the thread).
  display::MessageHeader header_{};
  size_t header_got_ = 0;
  std::vector<std::byte> payload_;
  size_t payload_got_ = 0;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  Stats stats_;                       // guarded by mu_
  std::vector<std::string> errors_;   // guarded by mu_
  std::vector<Surface> surfaces_;     // guarded by mu_; one per output slot (kMaxScanouts)
  std::atomic<uint64_t> updates_{0};  // mirrors stats_.updates for lock-free readers
};

}  // namespace vgpu::test

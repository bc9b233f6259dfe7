// The vhost-user-gpu display socket to QEMU (docs/interop/vhost-user-gpu.rst, protocol.h). Built from the
// fd QEMU sends with VHOST_USER_GPU_SET_SOCKET; QEMU re-sends a socket on every DRIVER_OK, and the device
// then simply builds a new SocketDisplay.
//
// Nothing blocks. Requests are queued in order and written as the socket accepts them (write-through while
// the queue is empty, then on EPOLLOUT). A message's header and payload go to the same sendmsg (never one
// call each, which would wake QEMU twice), and queued messages are batched into one call. The writing is a
// FrameWriter's (frame_writer.h); this class decides what to send, and how.
//
// Zero-copy UPDATEs: when nothing is queued and the image already is the wire format (B8G8R8X8, B8G8R8A8:
// display::is_update_layout), the UPDATE is written straight from the caller's rows: one iovec for a
// contiguous rectangle, else one per row when rows are at least kMinZeroCopyRowBytes. What the socket does
// not take at once is sent from the image on EPOLLOUT, and busy() is true until then: the caller keeps the
// image unchanged and alive (the device stalls its control queue), and on_change fires when busy() turns
// false. Messages queued meanwhile go after it, in order. An UPDATE of at most kMaxCopiedUpdateBytes that
// the socket does not take whole is copied into the queue instead, so small updates never stall the device.
// Other formats, narrow rows, and updates behind a queue are converted (or copied) into the queue as before.
//
// QEMU answers only GET_PROTOCOL_FEATURES, GET_DISPLAY_INFO and GET_EDID; their replies are read on EPOLLIN
// and matched against the requests still expected:
//
//   GET_PROTOCOL_FEATURES -> SET_PROTOCOL_FEATURES (EDID and DMABUF2, those offered)
//   -> GET_DISPLAY_INFO -> for each scanout, when EDID was negotiated: GET_EDID + GET_PROTOCOL_FEATURES
//
// Dma-buf scanouts: DMABUF_SCANOUT2 (with the buffer's modifier) once DMABUF2 was negotiated, else
// DMABUF_SCANOUT (QEMU before 8.1: implicit or linear layouts only, see accepts_dmabuf). The fd rides as
// SCM_RIGHTS on the message's first byte, in a sendmsg that starts with that message, so QEMU's reader finds
// it when it handles that message. DMABUF_UPDATE carries only the rectangle; QEMU answers it with an empty
// DMABUF_UPDATE reply once its GL console has shown the frame, and busy() is true until then (QEMU stops
// reading the socket meanwhile). A frontend that never answers keeps the device's control queue stalled,
// as QEMU's own backend (which blocks in vg_wait_ok) would be. Leaving dma-buf mode (set_scanout, any size)
// first sends DMABUF_SCANOUT without an fd, which makes QEMU release the buffer.
//
// QEMU does not answer a GET_EDID for a scanout at or above its own max_outputs, so each GET_EDID is followed
// by a GET_PROTOCOL_FEATURES "fence": when the fence's reply comes first, that scanout has no EDID.
//
// The outgoing queue is bounded: SCANOUT drops the scanout's unsent SCANOUT/UPDATEs (QEMU starts a new
// surface anyway), a cursor message drops the unsent cursor messages it supersedes, and when a scanout's
// unsent UPDATEs pass kMaxQueuedFrames frames they are dropped and the new update grows to their bounding box.
//
// A malformed reply, EOF or a socket error makes the display dead: one log line, alive() false, every call
// ignored from then on. Remove fd() from the loop and drop the object.
//
//   SocketDisplay display(std::move(fd), num_scanouts);
//   loop.add(display.fd(), {Token::DisplaySocket}, display.wanted_events());
//   display.set_listener([&] { if (!display.pending()) answer_guest(); });
//   ... on a DisplaySocket event: display.on_event(ev.events); loop.modify(display.fd(), ..., display.wanted_events());
//   ... before changing or freeing an image passed to update(): wait while display.busy()
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "display/display.h"
#include "display/frame_writer.h"
#include "display/protocol.h"

namespace vgpu {

class SocketDisplay final : public Display {
 public:
  // Unsent UPDATE bytes allowed per scanout, in frames of its current size, before they are coalesced.
  static constexpr uint64_t kMaxQueuedFrames = 3;
  // Replies handled per on_event() call, so a flooding peer cannot starve the loop (epoll is level-triggered).
  static constexpr uint32_t kMaxRepliesPerEvent = 64;
  // A zero-copy UPDATE of at most this many bytes (header included) that the socket does not take whole is
  // copied into the queue: copying a few KiB costs less than stalling the device until the socket drains.
  static constexpr size_t kMaxCopiedUpdateBytes = size_t{64} * 1024;
  // iovecs per sendmsg (Linux's UIO_MAXIOV, IOV_MAX in <limits.h>).
  static constexpr size_t kMaxIov = FrameWriter::kMaxIov;
  // A rectangle whose rows are not contiguous goes zero-copy only with rows of at least this many bytes: each
  // row costs the kernel an iovec segment (a separate copy_from_user), which for short rows costs more than
  // copying them into one buffer. vgpu_bench's partial 64x64 (256-byte rows) was ~10% slower zero-copy and
  // 256x256 (1 KiB rows) even; full-width damage is one span whatever its width.
  static constexpr size_t kMinZeroCopyRowBytes = 2048;

  // Takes the socket and starts the negotiation. `num_scanouts` is the device's (clamped to kMaxScanouts).
  // A socket that cannot be made non-blocking, or is not a stream socket, gives a dead display.
  SocketDisplay(UniqueFd socket, uint32_t num_scanouts);
  ~SocketDisplay() override = default;
  SocketDisplay(const SocketDisplay&) = delete;
  SocketDisplay& operator=(const SocketDisplay&) = delete;

  [[nodiscard]] std::optional<std::vector<ScanoutMode>> display_info() const override;
  [[nodiscard]] bool edid_supported() const override;
  [[nodiscard]] std::optional<std::vector<uint8_t>> edid(uint32_t scanout) const override;
  [[nodiscard]] bool pending() const override;
  void refresh() override;
  [[nodiscard]] bool busy() const override { return writer_.busy() || unblocks_expected_ > 0; }

  void set_scanout(uint32_t scanout, uint32_t width, uint32_t height) override;
  void update(uint32_t scanout, const Rect& damage, const ImageView& image, uint32_t src_x, uint32_t src_y) override;
  // Any dma-buf once the features are known, except one with an explicit non-linear modifier when QEMU did
  // not offer DMABUF2 (DMABUF_SCANOUT has no modifier field: newer QEMU reads it as linear).
  [[nodiscard]] bool accepts_dmabuf(const DmabufImage& image) const override;
  bool set_scanout_dmabuf(uint32_t scanout, const DmabufImage& image, const Rect& shown) override;
  void update_dmabuf(uint32_t scanout, const Rect& damage) override;
  void cursor_update(uint32_t scanout, uint32_t x, uint32_t y, uint32_t hot_x, uint32_t hot_y,
                     std::span<const uint32_t> pixels) override;
  void cursor_move(uint32_t scanout, uint32_t x, uint32_t y) override;
  void cursor_hide(uint32_t scanout) override;

  void set_listener(std::function<void()> on_change) override;
  void on_event(uint32_t events) override;
  [[nodiscard]] int fd() const override { return socket_.get(); }
  [[nodiscard]] uint32_t wanted_events() const override;
  [[nodiscard]] bool alive() const override { return alive_; }

  // The protocol features we set (kProtocolFeatureEdid, kProtocolFeatureDmabuf2: those offered); 0 until QEMU
  // answered.
  [[nodiscard]] uint64_t protocol_features() const { return features_; }
  // Bytes of the messages not yet written whole (a zero-copy UPDATE included), for tests and statistics.
  [[nodiscard]] size_t queued_bytes() const { return writer_.queued_bytes(); }

 private:
  // A message for writer_, tagged {kind: its display::Request, key: its scanout, rect: UPDATE's rectangle}; its
  // fd (DMABUF_SCANOUT*) goes with its first byte.
  using Outgoing = FrameWriter::Frame;
  // What a reply we still wait for means; GET_EDID is optional (QEMU may not answer it, see the fence).
  // Unblock: DMABUF_UPDATE's reply, which says the frame was shown (busy() until then).
  enum class Role : uint8_t { Features, Fence, DisplayInfo, Edid, Unblock };
  struct Expected {
    display::Request request;
    Role role;
    uint32_t scanout = 0;
  };
  // The bytes before an UPDATE's pixels: MessageHeader and UpdateHeaderPayload.
  static constexpr size_t kUpdatePrefixSize = sizeof(display::MessageHeader) + sizeof(display::UpdateHeaderPayload);
  struct ScanoutState {
    uint32_t width = 0;
    uint32_t height = 0;
    uint32_t cursor_x = 0;
    uint32_t cursor_y = 0;
    bool dmabuf = false;  // showing a dma-buf (set_scanout_dmabuf) rather than UPDATE pixels
  };

  // Outgoing side.
  static Outgoing make_message(display::Request request, uint32_t scanout, size_t payload_size);
  template <class Payload>
  void send_struct(display::Request request, uint32_t scanout, const Payload& payload);
  void push(Outgoing message);
  void flush();
  // Drops queued messages whose tag `drop` selects and that have not started to go out; returns the bounding
  // box of the dropped UPDATE rectangles (empty when none).
  template <class Pred>
  Rect drop_unsent(Pred drop);
  // writer_'s on_retired: a message was written whole or dropped.
  void retired(const FrameTag& tag, size_t size);
  void send_update(uint32_t scanout, const Rect& rect, const ImageView& image, uint32_t src_x, uint32_t src_y);
  void send_borrowed(uint32_t scanout, const Rect& rect, const ImageView& image, uint32_t src_x, uint32_t src_y);

  // Incoming side.
  void read_replies();
  void handle_reply(const display::MessageHeader& header, std::span<const std::byte> payload);
  void on_features(std::span<const std::byte> payload);
  void on_display_info(std::span<const std::byte> payload);
  void on_edid(uint32_t scanout, std::span<const std::byte> payload);
  void start_info_cycle();
  void finish_if_settled();
  // Requests whose replies describe the display (everything expected but DMABUF_UPDATE unblocks).
  [[nodiscard]] bool info_outstanding() const { return expected_.size() > unblocks_expected_; }

  void fail(std::string_view reason);
  [[nodiscard]] bool scanout_ok(uint32_t scanout) const { return alive_ && scanout < num_scanouts_; }

  UniqueFd socket_;
  uint32_t num_scanouts_;
  bool alive_ = true;
  bool death_reported_ = false;
  bool changed_ = false;
  std::function<void()> listener_;

  FrameWriter writer_;  // after socket_, which it writes to
  // Bytes of each scanout's UPDATEs that writer_ holds (the zero-copy one included).
  std::array<uint64_t, kMaxScanouts> queued_update_bytes_{};
  std::array<ScanoutState, kMaxScanouts> scanouts_{};

  std::deque<Expected> expected_;
  size_t unblocks_expected_ = 0;  // Role::Unblock entries in expected_
  bool features_known_ = false;
  uint64_t features_ = 0;
  bool refresh_wanted_ = false;
  std::optional<std::vector<ScanoutMode>> info_;
  std::array<std::optional<std::vector<uint8_t>>, kMaxScanouts> edids_{};

  std::array<std::byte, sizeof(display::MessageHeader) + display::kMaxReplySize> rx_{};
  size_t rx_len_ = 0;
};

}  // namespace vgpu

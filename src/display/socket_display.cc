// SocketDisplay: the vhost-user-gpu protocol over the display socket (socket_display.h): negotiation, the
// display info cycle, EDIDs, dma-buf scanouts, the cursor, and how each UPDATE is framed (zero-copy, copied or
// coalesced). The bytes go out through a FrameWriter (frame_writer.h).
#include "display/socket_display.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/bytes.h"
#include "common/checked.h"
#include "common/log.h"
#include "display/edid.h"
#include "display/update_rect.h"

namespace vgpu {

using display::MessageHeader;
using display::Request;

namespace {

constexpr size_t kHeaderSize = sizeof(MessageHeader);

Rect bounding_box(const Rect& a, const Rect& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  const uint64_t x0 = std::min(a.x, b.x), y0 = std::min(a.y, b.y);
  const uint64_t x1 = std::max(uint64_t{a.x} + a.width, uint64_t{b.x} + b.width);
  const uint64_t y1 = std::max(uint64_t{a.y} + a.height, uint64_t{b.y} + b.height);
  return Rect{static_cast<uint32_t>(x0), static_cast<uint32_t>(y0), static_cast<uint32_t>(x1 - x0),
              static_cast<uint32_t>(y1 - y0)};
}

// The request a message's tag carries (make_message).
Request request_of(const FrameTag& tag) {
  return static_cast<Request>(tag.kind);
}

bool is_cursor(Request r) {
  return r == Request::CursorPos || r == Request::CursorPosHide || r == Request::CursorUpdate;
}

// `height` rows of `width` pixels of `image`, from `src`, as UPDATE data at `dst` (stride width * 4).
void write_update_rows(const ImageView& image, const std::byte* src, std::byte* dst, uint32_t width, uint32_t height) {
  const size_t row_bytes = size_t{width} * kBytesPerPixel;
  for (uint32_t row = 0; row < height; ++row) {
    const std::byte* in = src + size_t{row} * image.stride;
    std::byte* out = dst + size_t{row} * row_bytes;
    if (display::is_update_layout(image.format)) {
      std::memcpy(out, in, row_bytes);
    } else {
      display::convert_row_to_x8r8g8b8(image.format, in, out, width);
    }
  }
}

}  // namespace

SocketDisplay::SocketDisplay(UniqueFd socket, uint32_t num_scanouts)
    : socket_(std::move(socket)),
      num_scanouts_(std::min(num_scanouts, kMaxScanouts)),
      writer_(socket_.get(), [this](const FrameTag& tag, size_t size) { retired(tag, size); }) {
  int type = 0;
  socklen_t len = sizeof(type);
  if (!socket_ || ::getsockopt(socket_.get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
    fail("not a stream socket");
    return;
  }
  const int flags = ::fcntl(socket_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
    fail(std::string("cannot make the socket non-blocking: ") + std::strerror(errno));
    return;
  }
  expected_.push_back({Request::GetProtocolFeatures, Role::Features});
  push(make_message(Request::GetProtocolFeatures, 0, 0));
}

// ---- queries ----

std::optional<std::vector<ScanoutMode>> SocketDisplay::display_info() const {
  return info_;
}

bool SocketDisplay::edid_supported() const {
  return (features_ & display::kProtocolFeatureEdid) != 0;
}

std::optional<std::vector<uint8_t>> SocketDisplay::edid(uint32_t scanout) const {
  if (scanout >= num_scanouts_) return std::nullopt;
  return edids_[scanout];
}

bool SocketDisplay::pending() const {
  return alive_ && (info_outstanding() || refresh_wanted_);
}

void SocketDisplay::refresh() {
  if (!alive_) return;
  if (info_outstanding()) {
    refresh_wanted_ = true;  // the answers in flight may predate the change: ask again once they are in
    return;
  }
  start_info_cycle();
}

uint32_t SocketDisplay::wanted_events() const {
  if (!alive_) return 0;
  return EPOLLIN | (writer_.idle() ? 0u : static_cast<uint32_t>(EPOLLOUT));
}

void SocketDisplay::set_listener(std::function<void()> on_change) {
  listener_ = std::move(on_change);
}

// ---- display API ----

void SocketDisplay::set_scanout(uint32_t scanout, uint32_t width, uint32_t height) {
  if (!scanout_ok(scanout)) return;
  if (width > kMaxScanoutDimension || height > kMaxScanoutDimension) {
    VGPU_LOG_DEBUG("display socket: scanout {} size {}x{} too large, ignored", scanout, width, height);
    return;
  }
  if (width == 0 || height == 0) width = height = 0;
  ScanoutState& s = scanouts_[scanout];
  s.width = width;
  s.height = height;
  // QEMU builds a fresh surface on SCANOUT: unsent updates of the old one are moot.
  drop_unsent([&](const FrameTag& t) {
    return t.key == scanout && (request_of(t) == Request::Scanout || request_of(t) == Request::Update);
  });
  if (s.dmabuf) {
    // vhost-user-gpu.rst: "To disable a scanout, the dimensions width/height are set to 0, there is no file
    // descriptor passed." QEMU then drops its copy of the buffer before the 2D surface takes over.
    s.dmabuf = false;
    display::DmabufScanoutPayload disable{};
    disable.scanout_id = scanout;
    send_struct(Request::DmabufScanout, scanout, disable);
  }
  send_struct(Request::Scanout, scanout, display::ScanoutPayload{scanout, width, height});
}

bool SocketDisplay::accepts_dmabuf(const DmabufImage& image) const {
  if (!alive_ || !features_known_) return false;
  if ((features_ & display::kProtocolFeatureDmabuf2) != 0) return true;
  return image.modifier == kDrmModInvalid || image.modifier == kDrmModLinear;
}

bool SocketDisplay::set_scanout_dmabuf(uint32_t scanout, const DmabufImage& image, const Rect& shown) {
  if (!scanout_ok(scanout)) return false;
  // The payload has no offset field: QEMU imports the buffer from byte 0.
  if (image.fd < 0 || image.offset != 0 || !accepts_dmabuf(image) || shown.empty() ||
      shown.width > kMaxScanoutDimension || shown.height > kMaxScanoutDimension ||
      !rect_fits(shown, image.width, image.height) || image.stride < uint64_t{image.width} * kBytesPerPixel) {
    VGPU_LOG_WARN("display socket: dma-buf scanout {} ({}x{}, stride {}, offset {}) not sendable, ignored", scanout,
                  image.width, image.height, image.stride, image.offset);
    return false;
  }
  UniqueFd fd(::fcntl(image.fd, F_DUPFD_CLOEXEC, 0));
  if (!fd) {
    VGPU_LOG_WARN("display socket: cannot duplicate the dma-buf fd: {}", std::strerror(errno));
    return false;
  }
  ScanoutState& s = scanouts_[scanout];
  s.width = shown.width;
  s.height = shown.height;
  s.dmabuf = true;
  drop_unsent([&](const FrameTag& t) {
    return t.key == scanout && (request_of(t) == Request::Scanout || request_of(t) == Request::Update);
  });
  const display::DmabufScanoutPayload base{scanout,
                                           shown.x,
                                           shown.y,
                                           shown.width,
                                           shown.height,
                                           image.width,
                                           image.height,
                                           image.stride,
                                           image.y0_top ? VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP : 0u,
                                           static_cast<int32_t>(image.fourcc)};
  Outgoing m;
  if ((features_ & display::kProtocolFeatureDmabuf2) != 0) {
    const display::DmabufScanout2Payload payload{base, image.modifier};
    m = make_message(Request::DmabufScanout2, scanout, sizeof(payload));
    std::memcpy(m.bytes.get() + kHeaderSize, &payload, sizeof(payload));
  } else {
    m = make_message(Request::DmabufScanout, scanout, sizeof(base));
    std::memcpy(m.bytes.get() + kHeaderSize, &base, sizeof(base));
  }
  m.fd = std::move(fd);
  push(std::move(m));
  return true;
}

void SocketDisplay::update_dmabuf(uint32_t scanout, const Rect& damage) {
  if (!scanout_ok(scanout) || !scanouts_[scanout].dmabuf) return;
  const ScanoutState& s = scanouts_[scanout];
  const Rect rect = intersect(damage, Rect{0, 0, s.width, s.height});
  if (rect.empty()) return;
  expected_.push_back({Request::DmabufUpdate, Role::Unblock, scanout});
  ++unblocks_expected_;
  send_struct(Request::DmabufUpdate, scanout,
              display::UpdateHeaderPayload{scanout, rect.x, rect.y, rect.width, rect.height});
}

void SocketDisplay::update(uint32_t scanout, const Rect& damage, const ImageView& image, uint32_t src_x,
                           uint32_t src_y) {
  if (!scanout_ok(scanout)) return;
  const ScanoutState& s = scanouts_[scanout];
  const std::optional<Rect> clipped =
      rect_to_copy("display socket", scanout, damage, s.width, s.height, image, src_x, src_y);
  if (!clipped) return;
  const Rect& rect = *clipped;

  // Nothing ahead of it and no conversion to do: straight from the image (busy() until the socket took it).
  const size_t row_bytes = size_t{rect.width} * kBytesPerPixel;
  const bool one_span = rect.height == 1 || image.stride == row_bytes;
  if (writer_.idle() && display::is_update_layout(image.format) && (one_span || row_bytes >= kMinZeroCopyRowBytes)) {
    send_borrowed(scanout, rect, image, src_x, src_y);
    return;
  }
  const uint64_t frame_bytes = uint64_t{s.width} * s.height * kBytesPerPixel;
  const uint64_t message_bytes =
      kHeaderSize + sizeof(display::UpdateHeaderPayload) + uint64_t{rect.width} * rect.height * kBytesPerPixel;
  if (queued_update_bytes_[scanout] + message_bytes <= kMaxQueuedFrames * frame_bytes) {
    send_update(scanout, rect, image, src_x, src_y);
    return;
  }
  // Backlog: replace the unsent updates with one covering them all, read from this (newer) image as far as
  // it reaches. Scanout coordinates map to image coordinates by the offset of this update.
  const Rect dropped =
      drop_unsent([&](const FrameTag& t) { return t.key == scanout && request_of(t) == Request::Update; });
  const Rect wanted = bounding_box(dropped, rect);
  const int64_t dx = int64_t{src_x} - rect.x, dy = int64_t{src_y} - rect.y;  // image = scanout + d
  const int64_t x0 = std::max<int64_t>(wanted.x, -dx), y0 = std::max<int64_t>(wanted.y, -dy);
  const int64_t x1 = std::min<int64_t>(int64_t{wanted.x} + wanted.width, int64_t{image.width} - dx);
  const int64_t y1 = std::min<int64_t>(int64_t{wanted.y} + wanted.height, int64_t{image.height} - dy);
  const Rect grown{static_cast<uint32_t>(x0), static_cast<uint32_t>(y0), static_cast<uint32_t>(x1 - x0),
                   static_cast<uint32_t>(y1 - y0)};
  if (grown != wanted) {
    VGPU_LOG_DEBUG("display socket: scanout {} backlog coalesced; part of it is outside this image", scanout);
  }
  send_update(scanout, grown, image, static_cast<uint32_t>(grown.x + dx), static_cast<uint32_t>(grown.y + dy));
}

void SocketDisplay::cursor_update(uint32_t scanout, uint32_t x, uint32_t y, uint32_t hot_x, uint32_t hot_y,
                                  std::span<const uint32_t> pixels) {
  if (!scanout_ok(scanout)) return;
  if (pixels.size() != display::kCursorPixels) {
    VGPU_LOG_DEBUG("display socket: cursor image of {} pixels, want {}", pixels.size(), display::kCursorPixels);
    return;
  }
  scanouts_[scanout].cursor_x = x;
  scanouts_[scanout].cursor_y = y;
  drop_unsent([&](const FrameTag& t) { return t.key == scanout && is_cursor(request_of(t)); });
  Outgoing m = make_message(Request::CursorUpdate, scanout, sizeof(display::CursorUpdatePayload));
  std::byte* p = m.bytes.get() + kHeaderSize;
  const display::CursorPosPayload pos{scanout, x, y};
  std::memcpy(p, &pos, sizeof(pos));
  std::memcpy(p + offsetof(display::CursorUpdatePayload, hot_x), &hot_x, sizeof(hot_x));
  std::memcpy(p + offsetof(display::CursorUpdatePayload, hot_y), &hot_y, sizeof(hot_y));
  std::memcpy(p + offsetof(display::CursorUpdatePayload, data), pixels.data(), pixels.size_bytes());
  push(std::move(m));
}

void SocketDisplay::cursor_move(uint32_t scanout, uint32_t x, uint32_t y) {
  if (!scanout_ok(scanout)) return;
  scanouts_[scanout].cursor_x = x;
  scanouts_[scanout].cursor_y = y;
  drop_unsent([&](const FrameTag& t) {
    return t.key == scanout && (request_of(t) == Request::CursorPos || request_of(t) == Request::CursorPosHide);
  });
  send_struct(Request::CursorPos, scanout, display::CursorPosPayload{scanout, x, y});
}

void SocketDisplay::cursor_hide(uint32_t scanout) {
  if (!scanout_ok(scanout)) return;
  drop_unsent([&](const FrameTag& t) {
    return t.key == scanout && (request_of(t) == Request::CursorPos || request_of(t) == Request::CursorPosHide);
  });
  const ScanoutState& s = scanouts_[scanout];
  send_struct(Request::CursorPosHide, scanout, display::CursorPosPayload{scanout, s.cursor_x, s.cursor_y});
}

void SocketDisplay::on_event(uint32_t events) {
  const bool was_busy = busy();
  if (alive_ && (events & EPOLLOUT) != 0) flush();
  if (alive_ && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) read_replies();
  // The zero-copy UPDATE is out, or the dma-buf frame was shown: the caller may change its image again (the
  // device resumes its queue).
  changed_ = changed_ || (was_busy && !busy());
  const bool death_news = !alive_ && !death_reported_;
  if (!changed_ && !death_news) return;
  changed_ = false;
  death_reported_ = !alive_;
  if (listener_) listener_();
}

// ---- outgoing ----

SocketDisplay::Outgoing SocketDisplay::make_message(Request request, uint32_t scanout, size_t payload_size) {
  Outgoing m;
  m.size = kHeaderSize + payload_size;
  m.bytes = std::make_unique_for_overwrite<std::byte[]>(m.size);
  m.tag.kind = static_cast<uint32_t>(request);
  m.tag.key = scanout;
  const MessageHeader header{static_cast<uint32_t>(request), 0, static_cast<uint32_t>(payload_size)};
  std::memcpy(m.bytes.get(), &header, sizeof(header));
  return m;
}

template <class Payload>
void SocketDisplay::send_struct(Request request, uint32_t scanout, const Payload& payload) {
  Outgoing m = make_message(request, scanout, sizeof(Payload));
  std::memcpy(m.bytes.get() + kHeaderSize, &payload, sizeof(Payload));
  push(std::move(m));
}

void SocketDisplay::send_update(uint32_t scanout, const Rect& rect, const ImageView& image, uint32_t src_x,
                                uint32_t src_y) {
  const size_t row_bytes = size_t{rect.width} * kBytesPerPixel;
  Outgoing m = make_message(Request::Update, scanout, sizeof(display::UpdateHeaderPayload) + row_bytes * rect.height);
  m.tag.rect = rect;
  const display::UpdateHeaderPayload header{scanout, rect.x, rect.y, rect.width, rect.height};
  std::byte* out = m.bytes.get() + kHeaderSize;
  std::memcpy(out, &header, sizeof(header));
  const std::byte* in = image.data + size_t{src_y} * image.stride + size_t{src_x} * kBytesPerPixel;
  write_update_rows(image, in, out + sizeof(header), rect.width, rect.height);
  push(std::move(m));
}

void SocketDisplay::send_borrowed(uint32_t scanout, const Rect& rect, const ImageView& image, uint32_t src_x,
                                  uint32_t src_y) {
  static_assert(kUpdatePrefixSize <= FrameWriter::kMaxPrefix, "an UPDATE's prefix must fit a borrowed frame");
  std::array<std::byte, kUpdatePrefixSize> prefix{};
  const size_t row_bytes = size_t{rect.width} * kBytesPerPixel;
  const size_t payload = sizeof(display::UpdateHeaderPayload) + row_bytes * rect.height;
  const MessageHeader header{static_cast<uint32_t>(Request::Update), 0, static_cast<uint32_t>(payload)};
  const display::UpdateHeaderPayload update{scanout, rect.x, rect.y, rect.width, rect.height};
  std::memcpy(prefix.data(), &header, sizeof(header));
  std::memcpy(prefix.data() + sizeof(header), &update, sizeof(update));
  FrameWriter::Rows rows;
  rows.data = image.data + size_t{src_y} * image.stride + size_t{src_x} * kBytesPerPixel;
  // Full-width damage of an unpadded image (or one row) is one span: one iovec for the whole frame.
  const bool contiguous = rect.height == 1 || image.stride == row_bytes;
  rows.span_bytes = contiguous ? row_bytes * rect.height : row_bytes;
  rows.spans = contiguous ? 1 : rect.height;
  rows.stride = image.stride;
  rows.lease = image.lease;  // held while the socket has not taken the rows
  const size_t size = kHeaderSize + payload;
  queued_update_bytes_[scanout] += size;
  if (!writer_.push_borrowed(prefix, rows, FrameTag{static_cast<uint32_t>(Request::Update), scanout, rect})) {
    fail(writer_.error());
    return;
  }
  // Sent whole (the usual case for small updates), or busy() until EPOLLOUT: a small rest is copied instead.
  if (writer_.busy() && size <= kMaxCopiedUpdateBytes) writer_.copy_borrowed();
}

void SocketDisplay::push(Outgoing message) {
  if (!alive_) return;
  if (request_of(message.tag) == Request::Update) queued_update_bytes_[message.tag.key] += message.size;
  if (!writer_.push(std::move(message))) fail(writer_.error());
}

void SocketDisplay::flush() {
  if (!writer_.flush()) fail(writer_.error());
}

void SocketDisplay::retired(const FrameTag& tag, size_t size) {
  if (request_of(tag) == Request::Update) queued_update_bytes_[tag.key] -= size;
}

template <class Pred>
Rect SocketDisplay::drop_unsent(Pred drop) {
  Rect box;
  writer_.drop_unsent([&](const FrameTag& tag) {
    if (!drop(tag)) return false;
    if (request_of(tag) == Request::Update) box = bounding_box(box, tag.rect);
    return true;
  });
  return box;
}

// ---- incoming ----

void SocketDisplay::read_replies() {
  uint32_t handled = 0;
  while (alive_ && handled < kMaxRepliesPerEvent) {
    MessageHeader header{};
    if (rx_len_ >= kHeaderSize) std::memcpy(&header, rx_.data(), kHeaderSize);
    const size_t want = rx_len_ < kHeaderSize ? kHeaderSize - rx_len_ : kHeaderSize + header.size - rx_len_;
    const ssize_t n = ::recv(socket_.get(), rx_.data() + rx_len_, want, MSG_DONTWAIT);
    if (n == 0) {
      fail("the frontend closed the display socket");
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail(std::string("recv: ") + std::strerror(errno));
      return;
    }
    rx_len_ += static_cast<size_t>(n);
    if (rx_len_ < kHeaderSize) continue;
    std::memcpy(&header, rx_.data(), kHeaderSize);
    if ((header.flags & display::kFlagReply) == 0) {
      fail("a message without the reply flag");
      return;
    }
    if (header.size > display::kMaxReplySize) {
      fail("a reply of " + std::to_string(header.size) + " bytes");
      return;
    }
    if (rx_len_ < kHeaderSize + header.size) continue;
    rx_len_ = 0;
    ++handled;
    handle_reply(header, std::span<const std::byte>(rx_.data() + kHeaderSize, header.size));
  }
}

void SocketDisplay::handle_reply(const MessageHeader& header, std::span<const std::byte> payload) {
  // A GET_EDID that QEMU refused has no reply: the fence's reply arrives in its place.
  while (!expected_.empty() && expected_.front().role == Role::Edid &&
         static_cast<uint32_t>(expected_.front().request) != header.request) {
    const uint32_t scanout = expected_.front().scanout;
    expected_.pop_front();
    changed_ = changed_ || edids_[scanout].has_value();
    edids_[scanout].reset();
  }
  if (expected_.empty() || static_cast<uint32_t>(expected_.front().request) != header.request) {
    fail("an unexpected reply to request " + std::to_string(header.request));
    return;
  }
  const Expected expected = expected_.front();
  expected_.pop_front();
  if (expected.role == Role::Unblock) --unblocks_expected_;
  if (header.size != display::request_info(expected.request).reply_size) {
    fail(std::string("a ") + std::string(display::to_string(expected.request)) + " reply of " +
         std::to_string(header.size) + " bytes");
    return;
  }
  switch (expected.role) {
    case Role::Features: on_features(payload); break;
    case Role::Fence: break;
    case Role::DisplayInfo: on_display_info(payload); break;
    case Role::Edid: on_edid(expected.scanout, payload); break;
    case Role::Unblock: return;  // busy() may have turned false: on_event() reports it
  }
  finish_if_settled();
}

void SocketDisplay::on_features(std::span<const std::byte> payload) {
  const auto offered = copy_from<uint64_t>(payload);
  features_ = offered & (display::kProtocolFeatureEdid | display::kProtocolFeatureDmabuf2);
  features_known_ = true;
  send_struct(Request::SetProtocolFeatures, 0, features_);  // QEMU sends no reply
  start_info_cycle();
}

void SocketDisplay::start_info_cycle() {
  if (!alive_) return;  // a write just above may have found the socket broken
  expected_.push_back({Request::GetDisplayInfo, Role::DisplayInfo});
  push(make_message(Request::GetDisplayInfo, 0, 0));
}

void SocketDisplay::on_display_info(std::span<const std::byte> payload) {
  const auto reply = copy_from<virtio_gpu_resp_display_info>(payload);
  if (reply.hdr.type != VIRTIO_GPU_RESP_OK_DISPLAY_INFO) {
    fail("GET_DISPLAY_INFO answered with type " + std::to_string(reply.hdr.type));
    return;
  }
  std::vector<ScanoutMode> modes(num_scanouts_);
  uint32_t beyond = 0;
  for (uint32_t i = 0; i < VIRTIO_GPU_MAX_SCANOUTS; ++i) {
    const auto& pm = reply.pmodes[i];
    if (pm.enabled > 1) {
      fail("display info: scanout " + std::to_string(i) + " enabled = " + std::to_string(pm.enabled));
      return;
    }
    if (pm.enabled == 0) continue;  // QEMU leaves disabled entries zero; their rect means nothing
    const Rect r{pm.r.x, pm.r.y, pm.r.width, pm.r.height};
    if (r.empty() || r.width > kMaxScanoutDimension || r.height > kMaxScanoutDimension || !checked_add(r.x, r.width) ||
        !checked_add(r.y, r.height)) {
      fail("display info: scanout " + std::to_string(i) + " has a bad rectangle");
      return;
    }
    if (i >= num_scanouts_) {
      ++beyond;  // QEMU's max_outputs exceeds ours: the guest only sees our scanouts' commands anyway
      continue;
    }
    modes[i] = ScanoutMode{true, r};
  }
  if (beyond > 0) VGPU_LOG_DEBUG("display socket: {} enabled outputs beyond our {} scanouts", beyond, num_scanouts_);
  const bool layout_changed = info_ != modes;
  changed_ = changed_ || layout_changed;
  info_ = std::move(modes);
  // EDIDs follow the layout: fetch them again only when it changed (QEMU builds them from the output sizes).
  // A GET_DISPLAY_INFO refresh per guest request then costs one round trip, as with QEMU's own backend.
  if (!edid_supported() || !layout_changed) return;
  for (uint32_t i = 0; i < num_scanouts_ && alive_; ++i) {
    expected_.push_back({Request::GetEdid, Role::Edid, i});
    send_struct(Request::GetEdid, i, display::EdidRequestPayload{i});
    expected_.push_back({Request::GetProtocolFeatures, Role::Fence});
    push(make_message(Request::GetProtocolFeatures, 0, 0));
  }
}

void SocketDisplay::on_edid(uint32_t scanout, std::span<const std::byte> payload) {
  // SAFETY: virtio_gpu_resp_edid is plain data and handle_reply checked the payload's size against it.
  const auto reply = copy_from<virtio_gpu_resp_edid>(payload);
  if (reply.hdr.type != VIRTIO_GPU_RESP_OK_EDID) {
    fail("GET_EDID answered with type " + std::to_string(reply.hdr.type));
    return;
  }
  if (reply.size > display::kMaxEdidSize) {
    fail("an EDID of " + std::to_string(reply.size) + " bytes");
    return;
  }
  std::vector<uint8_t> blob(reply.edid, reply.edid + reply.size);
  // QEMU reports size = sizeof(edid) (1024) and zero-pads after its blocks: keep the blocks that block 0's
  // extension count (byte 126) announces, as the Linux driver does.
  constexpr size_t kBlock = 128;
  if (blob.size() >= kBlock) blob.resize(std::min(blob.size(), kBlock * (1 + size_t{blob[126]})));
  if (!edid_valid(blob)) {
    // Well-framed but unusable: keep the connection, let the device generate an EDID for this scanout.
    VGPU_LOG_WARN("display socket: the frontend's EDID for scanout {} is invalid ({} bytes), ignored", scanout,
                  blob.size());
    changed_ = changed_ || edids_[scanout].has_value();
    edids_[scanout].reset();
    return;
  }
  changed_ = changed_ || edids_[scanout] != blob;
  edids_[scanout] = std::move(blob);
}

void SocketDisplay::finish_if_settled() {
  if (!alive_ || info_outstanding()) return;
  if (refresh_wanted_) {
    refresh_wanted_ = false;
    start_info_cycle();
    return;
  }
  changed_ = true;  // pending() turned false
}

void SocketDisplay::fail(std::string_view reason) {
  if (!alive_) return;
  alive_ = false;
  VGPU_LOG_WARN("display socket: {}; dropping the display", reason);
  writer_.close();
  queued_update_bytes_.fill(0);
  expected_.clear();
  unblocks_expected_ = 0;
  refresh_wanted_ = false;
}

}  // namespace vgpu

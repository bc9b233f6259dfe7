#include "support/display_server.h"

#include <fcntl.h>
#include <linux/virtio_gpu.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "display/edid.h"

namespace vgpu::test {

using display::MessageHeader;
using display::Request;

namespace {

constexpr size_t kHeaderSize = sizeof(MessageHeader);
// The largest payload accepted: an UPDATE of a full 16384 x 16384 surface.
constexpr uint64_t kMaxPayload =
    sizeof(display::UpdateHeaderPayload) + uint64_t{kMaxScanoutDimension} * kMaxScanoutDimension * 4;

bool write_all(int fd, const std::byte* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 5000) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

template <class T>
T load(const std::byte* p) {
  T out{};
  std::memcpy(&out, p, sizeof(T));
  return out;
}

}  // namespace

DisplayServer::DisplayServer(DisplayServerOptions options)
    : options_(std::move(options)), update_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), surfaces_(kMaxScanouts) {
  if (options_.outputs.size() > kMaxScanouts) options_.outputs.resize(kMaxScanouts);
}

DisplayServer::~DisplayServer() {
  stop();
}

UniqueFd DisplayServer::connect() {
  stop();
  std::array<int, 2> sv{-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv.data()) != 0) {
    error(std::string("socketpair: ") + std::strerror(errno));
    return UniqueFd();
  }
  socket_.reset(sv[0]);
  UniqueFd backend_end(sv[1]);
  const int flags = ::fcntl(socket_.get(), F_GETFL);
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (flags < 0 || ::fcntl(socket_.get(), F_SETFL, flags | O_NONBLOCK) != 0 || !stop_fd_) {
    error("cannot set up the display socket");
    socket_.reset();
    return UniqueFd();
  }
  header_got_ = 0;
  payload_got_ = 0;
  {
    std::lock_guard lock(mu_);
    stats_.connected = true;
    stats_.closed = false;
  }
  thread_ = std::thread([this, fd = socket_.get()] { run(fd); });
  return backend_end;
}

void DisplayServer::stop() {
  if (thread_.joinable()) {
    ::eventfd_write(stop_fd_.get(), 1);
    thread_.join();
  }
  socket_.reset();
  std::lock_guard lock(mu_);
  stats_.connected = false;
}

DisplayServer::Stats DisplayServer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::vector<std::string> DisplayServer::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

bool DisplayServer::wait_until(const std::function<bool(const Stats&)>& done, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return done(stats_); });
}

bool DisplayServer::wait_for_updates(uint64_t count, std::chrono::milliseconds timeout) const {
  return wait_until([count](const Stats& s) { return s.updates >= count; }, timeout);
}

std::optional<DisplayServer::Surface> DisplayServer::surface(uint32_t scanout) const {
  std::lock_guard lock(mu_);
  if (scanout >= surfaces_.size() || surfaces_[scanout].width == 0) return std::nullopt;
  return surfaces_[scanout];
}

std::optional<uint32_t> DisplayServer::pixel(uint32_t scanout, uint32_t x, uint32_t y) const {
  std::lock_guard lock(mu_);
  if (scanout >= surfaces_.size()) return std::nullopt;
  const Surface& s = surfaces_[scanout];
  if (x >= s.width || y >= s.height) return std::nullopt;
  return s.pixels[size_t{y} * s.width + x];
}

void DisplayServer::error(const std::string& what) {
  std::lock_guard lock(mu_);
  errors_.push_back(what);
  changed_.notify_all();
}

// ---- the server thread ----

void DisplayServer::run(int socket) {
  for (;;) {
    std::array<pollfd, 2> fds{pollfd{socket, POLLIN, 0}, pollfd{stop_fd_.get(), POLLIN, 0}};
    const int r = ::poll(fds.data(), fds.size(), -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN) != 0) break;
    if (fds[0].revents != 0 && !read_messages(socket)) break;
  }
  ::shutdown(socket, SHUT_RDWR);
  std::lock_guard lock(mu_);
  stats_.closed = true;
  changed_.notify_all();
}

bool DisplayServer::read_messages(int socket) {
  for (;;) {
    std::byte* dst = nullptr;
    size_t want = 0;
    if (header_got_ < kHeaderSize) {
      // SAFETY: MessageHeader is three uint32_t, filled byte-wise from the stream.
      dst = reinterpret_cast<std::byte*>(&header_) + header_got_;
      want = kHeaderSize - header_got_;
    } else {
      dst = payload_.data() + payload_got_;
      want = header_.size - payload_got_;
    }
    ssize_t n = 0;
    if (want > 0) {
      n = ::recv(socket, dst, want, MSG_DONTWAIT);
      if (n == 0) return false;  // the backend closed it
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        error(std::string("recv: ") + std::strerror(errno));
        return false;
      }
    }
    if (header_got_ < kHeaderSize) {
      header_got_ += static_cast<size_t>(n);
      if (header_got_ < kHeaderSize) continue;
      if (header_.size > kMaxPayload) {
        error("a message of " + std::to_string(header_.size) + " payload bytes");
        return false;
      }
      // Grow only: a benchmark's steady stream of same-sized UPDATEs reuses one buffer (QEMU mallocs each).
      if (payload_.size() < header_.size) payload_.resize(header_.size);
      payload_got_ = 0;
      if (header_.size > 0) continue;
    } else {
      payload_got_ += static_cast<size_t>(n);
      if (payload_got_ < header_.size) continue;
    }
    header_got_ = 0;
    if (!handle(socket, header_)) return false;
  }
}

bool DisplayServer::reply(int socket, Request request, const void* payload, uint32_t size) {
  std::vector<std::byte> out(kHeaderSize + size);
  const MessageHeader header{static_cast<uint32_t>(request), display::kFlagReply, size};
  std::memcpy(out.data(), &header, kHeaderSize);
  if (size > 0) std::memcpy(out.data() + kHeaderSize, payload, size);
  if (!write_all(socket, out.data(), out.size())) {
    error(std::string("cannot send the reply to ") + std::string(display::to_string(request)));
    return false;
  }
  return true;
}

bool DisplayServer::handle(int socket, const MessageHeader& header) {
  const auto request = static_cast<Request>(header.request);
  const std::byte* p = payload_.data();
  const bool known = header.request <= display::kMaxRequest && request != Request::None;
  if (!known) {
    error("unknown request " + std::to_string(header.request));
    return false;
  }
  const display::RequestInfo& info = display::request_info(request);
  // Flags are not checked, as QEMU does not: QEMU's C backend leaves them uninitialized in UPDATE (it
  // g_try_malloc()s the message and sets only request and size).
  const bool size_ok = request == Request::Update ? header.size >= info.size : header.size == info.size;
  if (!size_ok) {
    error(std::string(info.name) + " with size " + std::to_string(header.size));
    return false;
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.messages;
  }
  switch (request) {
    case Request::GetProtocolFeatures: {
      {
        std::lock_guard lock(mu_);
        ++stats_.get_protocol_features;
      }
      return reply(socket, request, &options_.protocol_features, sizeof(uint64_t));
    }
    case Request::SetProtocolFeatures: {
      std::lock_guard lock(mu_);
      stats_.protocol_features_set = load<uint64_t>(p);
      changed_.notify_all();
      return true;
    }
    case Request::GetDisplayInfo: {
      virtio_gpu_resp_display_info info_reply{};
      info_reply.hdr.type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
      for (size_t i = 0; i < options_.outputs.size(); ++i) {
        info_reply.pmodes[i].r.width = options_.outputs[i].width;
        info_reply.pmodes[i].r.height = options_.outputs[i].height;
        info_reply.pmodes[i].enabled = 1;
      }
      {
        std::lock_guard lock(mu_);
        ++stats_.get_display_info;
      }
      return reply(socket, request, &info_reply, sizeof(info_reply));
    }
    case Request::GetEdid: {
      const auto req = load<display::EdidRequestPayload>(p);
      {
        std::lock_guard lock(mu_);
        ++stats_.get_edid;
      }
      if (req.scanout_id >= options_.outputs.size()) return true;  // QEMU: error_report, no reply
      virtio_gpu_resp_edid edid{};
      edid.hdr.type = VIRTIO_GPU_RESP_OK_EDID;
      edid.size = sizeof(edid.edid);
      const DisplayOutput& out = options_.outputs[req.scanout_id];
      const auto block = generate_edid({.width = out.width, .height = out.height, .serial = req.scanout_id});
      std::memcpy(edid.edid, block.data(), block.size());
      return reply(socket, request, &edid, sizeof(edid));
    }
    case Request::Scanout: {
      const auto m = load<display::ScanoutPayload>(p);
      std::lock_guard lock(mu_);
      ++stats_.scanouts;
      if (m.scanout_id < options_.outputs.size()) {
        Surface& s = surfaces_[m.scanout_id];
        const bool off =
            m.width == 0 || m.height == 0 || m.width > kMaxScanoutDimension || m.height > kMaxScanoutDimension;
        s.width = off ? 0 : m.width;
        s.height = off ? 0 : m.height;
        s.pixels.assign(size_t{s.width} * s.height, 0);
      }
      changed_.notify_all();
      return true;
    }
    case Request::Update: {
      const auto m = load<display::UpdateHeaderPayload>(p);
      const uint64_t pixel_bytes = header.size - sizeof(display::UpdateHeaderPayload);
      if (pixel_bytes != uint64_t{m.width} * m.height * 4) {
        error("UPDATE " + std::to_string(m.width) + "x" + std::to_string(m.height) + " with " +
              std::to_string(pixel_bytes) + " pixel bytes");
        return false;
      }
      {
        std::lock_guard lock(mu_);
        if (m.scanout_id < options_.outputs.size()) {
          Surface& s = surfaces_[m.scanout_id];
          const std::byte* src = p + sizeof(display::UpdateHeaderPayload);
          // Clipped to the surface, as pixman_image_composite clips for QEMU.
          const uint32_t w = m.x < s.width ? std::min(m.width, s.width - m.x) : 0;
          const uint32_t h = m.y < s.height ? std::min(m.height, s.height - m.y) : 0;
          for (uint32_t row = 0; row < h; ++row) {
            std::memcpy(s.pixels.data() + size_t{m.y + row} * s.width + m.x, src + size_t{row} * m.width * 4,
                        size_t{w} * 4);
          }
        }
        ++stats_.updates;
        stats_.update_bytes += header.size;
        stats_.update_pixels += uint64_t{m.width} * m.height;
        updates_.store(stats_.updates, std::memory_order_release);
        changed_.notify_all();
      }
      ::eventfd_write(update_fd_.get(), 1);
      return true;
    }
    case Request::CursorPos:
    case Request::CursorPosHide:
    case Request::CursorUpdate: {
      std::lock_guard lock(mu_);
      ++stats_.cursor_messages;
      changed_.notify_all();
      return true;
    }
    case Request::DmabufScanout:
    case Request::DmabufScanout2:
      error(std::string(info.name) + ": dma-buf scanouts are not supported here");
      return true;
    case Request::DmabufUpdate:
      error("DMABUF_UPDATE: dma-buf scanouts are not supported here");
      return reply(socket, request, nullptr, 0);  // QEMU's "unblock", so the backend does not hang
    case Request::None: break;
  }
  return false;
}

}  // namespace vgpu::test

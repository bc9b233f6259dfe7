#include "vhost_user/connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/log.h"
#include "common/scm_rights.h"

namespace vgpu::vhost_user {

std::string_view to_string(TransportError e) {
  switch (e) {
    case TransportError::Disconnected: return "connection closed by the frontend";
    case TransportError::Timeout: return "frontend stopped in the middle of a message";
    case TransportError::Io: return "socket I/O error";
    case TransportError::TooManyFds: return "too many file descriptors with one message";
    case TransportError::ControlTruncated: return "ancillary data truncated (MSG_CTRUNC)";
    case TransportError::BadControl: return "unexpected ancillary data (not SCM_RIGHTS)";
    case TransportError::PayloadTooLarge: return "payload larger than the protocol allows";
  }
  return "unknown transport error";
}

namespace {

// Room for kMaxFds fds plus one more, so that a ninth fd shows up as TooManyFds rather than MSG_CTRUNC.
constexpr size_t kControlSpace = CMSG_SPACE(sizeof(int) * (kMaxFds + 1));

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

bool is_disconnect(int err) {
  return err == ECONNRESET || err == EPIPE || err == ENOTCONN;
}

// Takes ownership of every fd in the SCM_RIGHTS messages of `mh` (appending them to `fds`). Returns false when
// some other kind of ancillary data came along.
bool take_fds(msghdr& mh, std::vector<UniqueFd>& fds) {
  bool only_rights = true;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
      only_rights = false;
      continue;
    }
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  return only_rights;
}

}  // namespace

Connection::Connection(UniqueFd socket, int timeout_ms) : socket_(std::move(socket)), timeout_ms_(timeout_ms) {}

TransportError Connection::io_error(int err) {
  if (is_disconnect(err)) return TransportError::Disconnected;
  last_errno_ = err;
  return TransportError::Io;
}

Result<Connection::Chunk, TransportError> Connection::recv_chunk(std::span<std::byte> out, std::vector<UniqueFd>& fds) {
  alignas(cmsghdr) unsigned char control[kControlSpace];
  iovec iov{out.data(), out.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  ssize_t n = 0;
  do {
    n = ::recvmsg(socket_.get(), &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Chunk{0, true};
    return fail(io_error(errno));
  }
  // Own the fds first, so that they are closed whatever happens next.
  const bool only_rights = take_fds(mh, fds);
  if ((mh.msg_flags & MSG_CTRUNC) != 0) return fail(TransportError::ControlTruncated);
  if (!only_rights) return fail(TransportError::BadControl);
  if (fds.size() > kMaxFds) return fail(TransportError::TooManyFds);
  if (n == 0) return fail(TransportError::Disconnected);
  return Chunk{static_cast<size_t>(n), false};
}

Result<void, TransportError> Connection::wait_for(short events, int64_t deadline_ms) {
  while (true) {
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0) return fail(TransportError::Timeout);
    pollfd p{socket_.get(), events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail(io_error(errno));
    if (r == 0) return fail(TransportError::Timeout);
    // POLLHUP / POLLERR: the next recvmsg / sendmsg reports what happened.
    return {};
  }
}

Result<void, TransportError> Connection::recv_rest(std::span<std::byte> out, std::vector<UniqueFd>& fds,
                                                   int64_t deadline_ms) {
  size_t got = 0;
  while (got < out.size()) {
    auto chunk = recv_chunk(out.subspan(got), fds);
    if (!chunk) return fail(chunk.error());
    if (chunk->would_block) {
      if (auto w = wait_for(POLLIN, deadline_ms); !w) return fail(w.error());
      continue;
    }
    got += chunk->bytes;
  }
  return {};
}

Result<std::optional<Message>, TransportError> Connection::receive() {
  Message msg;
  auto header = std::as_writable_bytes(std::span<MessageHeader, 1>(&msg.header, 1));
  // The first read never waits: a level-triggered poll may report a socket whose data another read took.
  auto first = recv_chunk(header, msg.fds);
  if (!first) return fail(first.error());
  if (first->would_block) return std::optional<Message>{};
  const int64_t deadline = now_ms() + timeout_ms_;
  if (auto r = recv_rest(header.subspan(first->bytes), msg.fds, deadline); !r) return fail(r.error());
  if (msg.header.size > kMaxPayloadSize) return fail(TransportError::PayloadTooLarge);
  msg.payload.resize(msg.header.size);
  if (auto r = recv_rest(msg.payload, msg.fds, deadline); !r) return fail(r.error());
  return std::optional<Message>(std::move(msg));
}

Result<void, TransportError> Connection::send(const MessageHeader& header, std::span<const std::byte> payload,
                                              std::span<const int> fds) {
  if (payload.size() > kMaxPayloadSize || fds.size() > kMaxFds) return fail(TransportError::PayloadTooLarge);
  std::vector<std::byte> bytes(sizeof(header) + payload.size());
  std::memcpy(bytes.data(), &header, sizeof(header));
  if (!payload.empty()) std::memcpy(bytes.data() + sizeof(header), payload.data(), payload.size());

  FdControl<kMaxFds> control;
  const int64_t deadline = now_ms() + timeout_ms_;
  size_t sent = 0;
  while (sent < bytes.size()) {
    iovec iov{bytes.data() + sent, bytes.size() - sent};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    // The fds ride on the first byte only (unix(7)); a resend of the rest goes without them.
    if (sent == 0 && !control.attach(mh, fds)) return fail(TransportError::PayloadTooLarge);
    const ssize_t n = ::sendmsg(socket_.get(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto w = wait_for(POLLOUT, deadline); !w) return fail(w.error());
      continue;
    }
    if (n < 0) return fail(io_error(errno));
    sent += static_cast<size_t>(n);
  }
  return {};
}

Result<void, TransportError> Connection::send_reply(uint32_t request, std::span<const std::byte> payload) {
  const MessageHeader header{request, kVersion1 | kFlagReply, static_cast<uint32_t>(payload.size())};
  VGPU_LOG_TRACE("vhost-user: -> reply to {} ({} bytes)", to_string(static_cast<FrontendRequest>(request)),
                 payload.size());
  return send(header, payload);
}

}  // namespace vgpu::vhost_user

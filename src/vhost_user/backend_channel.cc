#include "vhost_user/backend_channel.h"

#include <fmt/format.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "common/log.h"

namespace vgpu::vhost_user {

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

ShmemMapMessage to_message(const ShmemRange& range, uint64_t fd_offset, uint64_t flags) {
  ShmemMapMessage m{};
  m.shmid = range.shmid;
  m.fd_offset = fd_offset;
  m.shm_offset = range.shm_offset;
  m.len = range.len;
  m.flags = flags;
  return m;
}

std::string describe(const ShmemMapMessage& m) {
  return fmt::format("shmid {} offset 0x{:x} len 0x{:x} fd_offset 0x{:x}", m.shmid, m.shm_offset, m.len, m.fd_offset);
}

std::string describe(const ObjectUuid& u) {
  return "uuid " + vgpu::to_string(u);
}

}  // namespace

BackendChannel::BackendChannel(UniqueFd socket, EventLoop& loop, int timeout_ms)
    : conn_(std::move(socket), timeout_ms),
      loop_(loop),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
      timeout_ms_(timeout_ms) {
  if (!timer_) {
    lose(BackendReply::ChannelLost, fmt::format("timerfd_create: {}", std::strerror(errno)));
    return;
  }
  if (auto r = loop_.add(conn_.fd(), {Token::BackendChannel}, EPOLLIN); !r) {
    lose(BackendReply::ChannelLost, fmt::format("cannot poll the socket: {}", std::strerror(r.error())));
    return;
  }
  if (auto r = loop_.add(timer_.get(), {Token::BackendTimer}, EPOLLIN); !r) {
    lose(BackendReply::ChannelLost, fmt::format("cannot poll the timer: {}", std::strerror(r.error())));
  }
}

BackendChannel::~BackendChannel() {
  pending_.clear();  // the owner tears down what the callbacks would touch: they must not run
  close(BackendReply::ChannelLost);
}

Result<void, BackendReply> BackendChannel::map(const ShmemRange& range, int fd, uint64_t fd_offset, bool writable,
                                               BackendCallback done) {
  const ShmemMapMessage m = to_message(range, fd_offset, writable ? kShmemMapFlagWritable : 0);
  return send(BackendRequest::ShmemMap, std::as_bytes(std::span(&m, 1)), fd, describe(m), std::move(done));
}

Result<void, BackendReply> BackendChannel::unmap(const ShmemRange& range, BackendCallback done) {
  const ShmemMapMessage m = to_message(range, 0, 0);
  return send(BackendRequest::ShmemUnmap, std::as_bytes(std::span(&m, 1)), -1, describe(m), std::move(done));
}

// vhost-user.rst "VhostUserShared": the payload of SHARED_OBJECT_ADD / REMOVE is the 16-byte UUID alone.
Result<void, BackendReply> BackendChannel::add(const ObjectUuid& uuid, BackendCallback done) {
  return send(BackendRequest::SharedObjectAdd, std::as_bytes(std::span(uuid)), -1, describe(uuid), std::move(done));
}

Result<void, BackendReply> BackendChannel::remove(const ObjectUuid& uuid, BackendCallback done) {
  return send(BackendRequest::SharedObjectRemove, std::as_bytes(std::span(uuid)), -1, describe(uuid), std::move(done));
}

Result<void, BackendReply> BackendChannel::send(BackendRequest request, std::span<const std::byte> payload, int fd,
                                                const std::string& what, BackendCallback done) {
  if (!open()) return fail(BackendReply::ChannelLost);
  if (pending_.size() >= kMaxPending) {
    VGPU_LOG_WARN("vhost-user: backend channel: {} requests unanswered; refusing {}", pending_.size(),
                  to_string(request));
    return fail(BackendReply::Timeout);
  }
  // vhost-user.rst: the back-end sets NEED_REPLY to have the front-end answer with a u64 (0: success).
  const MessageHeader header{static_cast<uint32_t>(request), kVersion1 | kFlagNeedReply,
                             static_cast<uint32_t>(payload.size())};
  const int fds[1] = {fd};  // NOLINT(*-avoid-c-arrays)
  const std::span<const int> fd_span = fd >= 0 ? std::span<const int>(fds) : std::span<const int>();
  VGPU_LOG_DEBUG("vhost-user: -> {} {}", to_string(request), what);
  if (auto r = conn_.send(header, payload, fd_span); !r) {
    lose(BackendReply::ChannelLost, fmt::format("sending {}: {}", to_string(request), to_string(r.error())));
    return fail(BackendReply::ChannelLost);
  }
  pending_.push_back(Pending{request, std::move(done), now_ms() + timeout_ms_});
  if (pending_.size() == 1) arm_timer();
  return {};
}

void BackendChannel::on_readable(uint32_t events) {
  while (open()) {
    auto msg = conn_.receive();
    if (!msg) {
      lose(BackendReply::ChannelLost, msg.error() == TransportError::Disconnected
                                          ? std::string("the frontend closed it")
                                          : fmt::format("reading a reply: {}", to_string(msg.error())));
      return;
    }
    if (!*msg) break;
    const MessageHeader& h = (*msg)->header;
    if (pending_.empty()) {
      lose(BackendReply::ChannelLost, fmt::format("a message (request {}) nobody asked for", h.request));
      return;
    }
    const BackendRequest expected = pending_.front().request;
    uint64_t value = 0;
    if (h.request != static_cast<uint32_t>(expected) || (h.flags & kFlagReply) == 0 ||
        (h.flags & kVersionMask) != kVersion1 || (*msg)->payload.size() != sizeof(value) || !(*msg)->fds.empty()) {
      lose(BackendReply::ChannelLost,
           fmt::format("malformed reply to {} (request {}, flags 0x{:x}, {} bytes, {} fds)", to_string(expected),
                       h.request, h.flags, (*msg)->payload.size(), (*msg)->fds.size()));
      return;
    }
    std::memcpy(&value, (*msg)->payload.data(), sizeof(value));
    Pending done = std::move(pending_.front());
    pending_.pop_front();
    arm_timer();
    if (value != 0) {
      VGPU_LOG_WARN("vhost-user: the frontend refused {} (reply {}); see its log for why", to_string(done.request),
                    value);
    }
    done.done(value == 0 ? BackendReply::Done : BackendReply::Refused);  // may send the next request
  }
  if (open() && (events & (EPOLLHUP | EPOLLERR)) != 0) lose(BackendReply::ChannelLost, "the frontend closed it");
}

void BackendChannel::on_timer() {
  uint64_t expirations = 0;
  (void)!::read(timer_.get(), &expirations, sizeof(expirations));
  if (pending_.empty()) return;
  if (now_ms() < pending_.front().deadline_ms) {
    arm_timer();
    return;
  }
  lose(BackendReply::Timeout,
       fmt::format("no reply to {} within {} ms", to_string(pending_.front().request), timeout_ms_));
}

void BackendChannel::arm_timer() {
  if (!timer_) return;
  itimerspec spec{};
  if (!pending_.empty()) {
    const int64_t left = std::max<int64_t>(pending_.front().deadline_ms - now_ms(), 1);
    spec.it_value.tv_sec = left / 1000;
    spec.it_value.tv_nsec = (left % 1000) * 1000000;
  }
  ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

void BackendChannel::lose(BackendReply why, const std::string& reason) {
  if (!open()) return;
  VGPU_LOG_WARN(
      "vhost-user: backend channel dropped: {}; {} request(s) fail, host-visible memory and shared objects are "
      "unavailable until the frontend connects again",
      reason, pending_.size());
  close(why);
}

void BackendChannel::close(BackendReply why) {
  if (conn_.fd() >= 0) loop_.remove(conn_.fd());
  if (timer_) loop_.remove(timer_.get());
  conn_.close();
  timer_.reset();
  // Callbacks may call map() / unmap() again: those now fail at once, so this loop ends.
  std::deque<Pending> failed;
  failed.swap(pending_);
  for (Pending& p : failed) p.done(why);
}

}  // namespace vgpu::vhost_user

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

}  // namespace

BackendChannel::BackendChannel(UniqueFd socket, EventLoop& loop, int timeout_ms)
    : conn_(std::move(socket), timeout_ms),
      loop_(loop),
      timer_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
      timeout_ms_(timeout_ms) {
  if (!timer_) {
    lose(ShmemReply::ChannelLost, fmt::format("timerfd_create: {}", std::strerror(errno)));
    return;
  }
  if (auto r = loop_.add(conn_.fd(), {Token::BackendChannel}, EPOLLIN); !r) {
    lose(ShmemReply::ChannelLost, fmt::format("cannot poll the socket: {}", std::strerror(r.error())));
    return;
  }
  if (auto r = loop_.add(timer_.get(), {Token::BackendTimer}, EPOLLIN); !r) {
    lose(ShmemReply::ChannelLost, fmt::format("cannot poll the timer: {}", std::strerror(r.error())));
  }
}

BackendChannel::~BackendChannel() {
  pending_.clear();  // the owner tears down what the callbacks would touch: they must not run
  close(ShmemReply::ChannelLost);
}

Result<void, ShmemReply> BackendChannel::map(const ShmemRange& range, int fd, uint64_t fd_offset, bool writable,
                                             ShmemCallback done) {
  return send(BackendRequest::ShmemMap, to_message(range, fd_offset, writable ? kShmemMapFlagWritable : 0), fd,
              std::move(done));
}

Result<void, ShmemReply> BackendChannel::unmap(const ShmemRange& range, ShmemCallback done) {
  return send(BackendRequest::ShmemUnmap, to_message(range, 0, 0), -1, std::move(done));
}

Result<void, ShmemReply> BackendChannel::send(BackendRequest request, const ShmemMapMessage& payload, int fd,
                                              ShmemCallback done) {
  if (!open()) return fail(ShmemReply::ChannelLost);
  if (pending_.size() >= kMaxPending) {
    VGPU_LOG_WARN("vhost-user: backend channel: {} requests unanswered; refusing {}", pending_.size(),
                  to_string(request));
    return fail(ShmemReply::Timeout);
  }
  // vhost-user.rst: the back-end sets NEED_REPLY to have the front-end answer with a u64 (0: success).
  const MessageHeader header{static_cast<uint32_t>(request), kVersion1 | kFlagNeedReply, sizeof(payload)};
  const int fds[1] = {fd};  // NOLINT(*-avoid-c-arrays)
  const std::span<const int> fd_span = fd >= 0 ? std::span<const int>(fds) : std::span<const int>();
  VGPU_LOG_DEBUG("vhost-user: -> {} shmid {} offset 0x{:x} len 0x{:x} fd_offset 0x{:x}", to_string(request),
                 payload.shmid, payload.shm_offset, payload.len, payload.fd_offset);
  if (auto r = conn_.send(header, std::as_bytes(std::span(&payload, 1)), fd_span); !r) {
    lose(ShmemReply::ChannelLost, fmt::format("sending {}: {}", to_string(request), to_string(r.error())));
    return fail(ShmemReply::ChannelLost);
  }
  pending_.push_back(Pending{request, std::move(done), now_ms() + timeout_ms_});
  if (pending_.size() == 1) arm_timer();
  return {};
}

void BackendChannel::on_readable(uint32_t events) {
  while (open()) {
    auto msg = conn_.receive();
    if (!msg) {
      lose(ShmemReply::ChannelLost, msg.error() == TransportError::Disconnected
                                        ? std::string("the frontend closed it")
                                        : fmt::format("reading a reply: {}", to_string(msg.error())));
      return;
    }
    if (!*msg) break;
    const MessageHeader& h = (*msg)->header;
    if (pending_.empty()) {
      lose(ShmemReply::ChannelLost, fmt::format("a message (request {}) nobody asked for", h.request));
      return;
    }
    const BackendRequest expected = pending_.front().request;
    uint64_t value = 0;
    if (h.request != static_cast<uint32_t>(expected) || (h.flags & kFlagReply) == 0 ||
        (h.flags & kVersionMask) != kVersion1 || (*msg)->payload.size() != sizeof(value) || !(*msg)->fds.empty()) {
      lose(ShmemReply::ChannelLost,
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
    done.done(value == 0 ? ShmemReply::Done : ShmemReply::Refused);  // may send the next request
  }
  if (open() && (events & (EPOLLHUP | EPOLLERR)) != 0) lose(ShmemReply::ChannelLost, "the frontend closed it");
}

void BackendChannel::on_timer() {
  uint64_t expirations = 0;
  (void)!::read(timer_.get(), &expirations, sizeof(expirations));
  if (pending_.empty()) return;
  if (now_ms() < pending_.front().deadline_ms) {
    arm_timer();
    return;
  }
  lose(ShmemReply::Timeout,
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

void BackendChannel::lose(ShmemReply why, const std::string& reason) {
  if (!open()) return;
  VGPU_LOG_WARN(
      "vhost-user: backend channel dropped: {}; {} request(s) fail, host-visible memory is unavailable "
      "until the frontend connects again",
      reason, pending_.size());
  close(why);
}

void BackendChannel::close(ShmemReply why) {
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

#include "common/event_loop.h"

#include <cerrno>

namespace vgpu {

std::string_view to_string(Token t) {
  switch (t) {
    case Token::Listener: return "listener";
    case Token::FrontendSocket: return "frontend";
    case Token::QueueKick: return "queue-kick";
    case Token::DisplaySocket: return "display";
    case Token::RendererPoll: return "renderer-poll";
    case Token::RendererTimer: return "renderer-timer";
    case Token::Signal: return "signal";
    case Token::BackendChannel: return "backend-channel";
    case Token::BackendTimer: return "backend-timer";
  }
  return "unknown";
}

namespace {

uint64_t pack(Source s) {
  return (static_cast<uint64_t>(s.token) << 32) | s.index;
}
Source unpack(uint64_t v) {
  return {static_cast<Token>(v >> 32), static_cast<uint32_t>(v)};
}

}  // namespace

Result<EventLoop, int> EventLoop::create() {
  UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
  if (!fd) return fail(errno);
  return EventLoop(std::move(fd));
}

Result<void, int> EventLoop::add(int fd, Source source, uint32_t events) {
  return control(EPOLL_CTL_ADD, fd, source, events);
}

Result<void, int> EventLoop::modify(int fd, Source source, uint32_t events) {
  return control(EPOLL_CTL_MOD, fd, source, events);
}

Result<void, int> EventLoop::control(int op, int fd, Source source, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(source);
  if (::epoll_ctl(epoll_.get(), op, fd, &ev) != 0) return fail(errno);
  return {};
}

void EventLoop::remove(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

Result<std::vector<Event>, int> EventLoop::wait(int timeout_ms) {
  constexpr int kMaxEvents = 32;
  epoll_event evs[kMaxEvents];
  int n = 0;
  do {
    n = ::epoll_wait(epoll_.get(), evs, kMaxEvents, timeout_ms);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(errno);
  std::vector<Event> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back({unpack(evs[i].data.u64), evs[i].events});
  return out;
}

}  // namespace vgpu

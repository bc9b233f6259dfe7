// One epoll loop with a named token per fd source (CONTRIBUTING.md practice 10). The loop only reports which
// source is ready; the owner dispatches on the token. Remove an fd before closing it.
//
//   EventLoop loop;
//   loop.add(listen_fd, {Token::Listener}, EPOLLIN);
//   loop.add(kick_fd, {Token::QueueKick, 1}, EPOLLIN);
//   for (const auto& ev : *loop.wait(-1)) dispatch(ev.source, ev.events);
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace vgpu {

enum class Token : uint32_t {
  Listener,        // the listening socket (--socket-path)
  FrontendSocket,  // the connected vhost-user frontend
  QueueKick,       // a virtqueue's kick eventfd; index = queue index
  DisplaySocket,   // the vhost-user-gpu display socket (GPU_SET_SOCKET)
  RendererPoll,    // a renderer's poll fd
  RendererTimer,   // timerfd: polls a renderer that has no poll fd while fenced responses wait
  Signal,          // signalfd: SIGINT, SIGTERM, SIGUSR1
  BackendChannel,  // the vhost-user backend request channel (SET_BACKEND_REQ_FD): the frontend's replies
  BackendTimer,    // timerfd: the oldest unanswered backend request's deadline
};

std::string_view to_string(Token t);

struct Source {
  Token token;
  uint32_t index = 0;
  bool operator==(const Source&) const = default;
};

struct Event {
  Source source;
  uint32_t events;
};

class EventLoop {
 public:
  // Returns an error (errno) when epoll_create1 fails.
  static Result<EventLoop, int> create();

  Result<void, int> add(int fd, Source source, uint32_t events);
  Result<void, int> modify(int fd, Source source, uint32_t events);
  // Ignores fds that are not registered (ENOENT), so teardown paths can call it unconditionally.
  void remove(int fd);

  // Waits up to timeout_ms (-1: forever). EINTR is retried; returns the ready sources.
  Result<std::vector<Event>, int> wait(int timeout_ms);

 private:
  explicit EventLoop(UniqueFd epoll) : epoll_(std::move(epoll)) {}
  // add() and modify(): epoll_ctl with `op` (EPOLL_CTL_ADD or EPOLL_CTL_MOD), the source packed into the event.
  Result<void, int> control(int op, int fd, Source source, uint32_t events);
  UniqueFd epoll_;
};

}  // namespace vgpu

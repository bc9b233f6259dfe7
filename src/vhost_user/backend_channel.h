// The backend request channel (vhost-user.rst "Back-end communication"): the socket the frontend hands over with
// SET_BACKEND_REQ_FD, on which we are the one asking. Used for SHMEM_MAP and SHMEM_UNMAP (ShmemMapper), and for
// SHARED_OBJECT_ADD and SHARED_OBJECT_REMOVE (SharedObjects).
//
// Every request goes out with NEED_REPLY, and nothing waits for the answer: the channel's socket and a
// timerfd sit in the event loop, and each reply (in order: the frontend answers one request at a time) runs
// the request's callback. A frontend that answers out of turn or with a malformed reply, closes the socket,
// or leaves the oldest request unanswered for `timeout_ms` loses the channel: one log line, every pending
// callback runs with ChannelLost (or Timeout), and later requests fail at once.
//
//   BackendChannel channel(std::move(fd), loop);
//   channel.map({.shmid = 1, .shm_offset = 0, .len = 4096}, memfd, 0, true, [](BackendReply r) { ... });
//   ... on Token::BackendChannel:  channel.on_readable(events);
//   ... on Token::BackendTimer:    channel.on_timer();
//
// Single-threaded (the event loop's). Destroying the channel drops pending callbacks without running them
// (the owner is tearing down the device state they would touch); call close() first to have them run.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>

#include "common/event_loop.h"
#include "common/unique_fd.h"
#include "vhost_user/connection.h"
#include "vhost_user/message.h"
#include "vhost_user/shared_objects.h"
#include "vhost_user/shmem_mapper.h"

namespace vgpu::vhost_user {

class BackendChannel final : public ShmemMapper, public SharedObjects {
 public:
  // QEMU answers from its main loop within microseconds; a second means it is stuck or not listening.
  static constexpr int kDefaultTimeoutMs = 2000;
  // Requests in flight at most (a guest cannot queue more map requests than this behind a slow frontend).
  static constexpr size_t kMaxPending = 256;

  BackendChannel(UniqueFd socket, EventLoop& loop, int timeout_ms = kDefaultTimeoutMs);
  ~BackendChannel() override;
  BackendChannel(const BackendChannel&) = delete;
  BackendChannel& operator=(const BackendChannel&) = delete;
  BackendChannel(BackendChannel&&) = delete;
  BackendChannel& operator=(BackendChannel&&) = delete;

  Result<void, BackendReply> map(const ShmemRange& range, int fd, uint64_t fd_offset, bool writable,
                                 BackendCallback done) override;
  Result<void, BackendReply> unmap(const ShmemRange& range, BackendCallback done) override;
  Result<void, BackendReply> add(const ObjectUuid& uuid, BackendCallback done) override;
  Result<void, BackendReply> remove(const ObjectUuid& uuid, BackendCallback done) override;

  // The socket is readable (or hung up): reads the replies that are waiting and runs their callbacks.
  void on_readable(uint32_t events);
  // The timerfd fired: drops the channel if the oldest request is overdue.
  void on_timer();
  // Drops the channel (idempotent): pending callbacks run with `why`, the fds leave the loop and close.
  void close(BackendReply why);

  [[nodiscard]] bool open() const { return conn_.fd() >= 0; }
  [[nodiscard]] size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    BackendRequest request;
    BackendCallback done;
    int64_t deadline_ms;
  };
  // `what` describes the request for the debug log.
  Result<void, BackendReply> send(BackendRequest request, std::span<const std::byte> payload, int fd,
                                  const std::string& what, BackendCallback done);
  void arm_timer();
  // Logs why the channel goes, then close(why).
  void lose(BackendReply why, const std::string& reason);

  Connection conn_;
  EventLoop& loop_;
  UniqueFd timer_;
  int timeout_ms_;
  std::deque<Pending> pending_;
};

}  // namespace vgpu::vhost_user

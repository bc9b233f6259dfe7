// vhost-user message framing over a connected AF_UNIX SOCK_STREAM socket: a 12-byte header, the exact
// payload it announces, and the fds that came with it (SCM_RIGHTS). Knows framing only: which requests
// exist, which sizes and fds they need, and what they mean is Session's business.
//
//   Connection conn(std::move(socket));
//   auto msg = conn.receive();            // Result<std::optional<Message>, TransportError>
//   if (!msg) drop(to_string(msg.error()));
//   else if (*msg) handle(**msg);         // std::nullopt: no message is waiting
//   conn.send_reply(request, payload);
//
// Works with blocking and non-blocking sockets alike: the first read of a message never blocks, and a peer
// that stops in the middle of a message is given `timeout_ms` (per message) before TransportError::Timeout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "vhost_user/message.h"

namespace vgpu::vhost_user {

enum class TransportError {
  Disconnected,      // the peer closed the socket (EOF, ECONNRESET, EPIPE), between or in the middle of messages
  Timeout,           // the peer stopped in the middle of a message for longer than the timeout
  Io,                // recvmsg / sendmsg / poll failed otherwise (Connection::last_errno() says why)
  TooManyFds,        // more than kMaxFds fds came with one message
  ControlTruncated,  // MSG_CTRUNC: the kernel had to drop ancillary data (fds)
  BadControl,        // ancillary data that is not SCM_RIGHTS
  PayloadTooLarge,   // the header announces more than kMaxPayloadSize bytes
};

std::string_view to_string(TransportError e);

// One received message. The fds are owned here: whatever a handler does not take is closed with it.
struct Message {
  MessageHeader header{};
  std::vector<std::byte> payload;
  std::vector<UniqueFd> fds;
};

class Connection {
 public:
  static constexpr int kDefaultTimeoutMs = 5000;

  explicit Connection(UniqueFd socket, int timeout_ms = kDefaultTimeoutMs);

  [[nodiscard]] int fd() const { return socket_.get(); }
  // errno of the last TransportError::Io (0 when none).
  [[nodiscard]] int last_errno() const { return last_errno_; }

  // Reads one whole message: the header with any fds, then exactly header.size payload bytes (short reads
  // are continued). Returns std::nullopt when no byte of a new message is waiting. On error, the fds read so
  // far are closed and the stream is out of sync: the caller must drop the connection.
  Result<std::optional<Message>, TransportError> receive();

  // Sends header + payload (+ fds, with the first byte) in full.
  Result<void, TransportError> send(const MessageHeader& header, std::span<const std::byte> payload,
                                    std::span<const int> fds = {});
  // A reply to `request`: header flags kVersion1 | kFlagReply, size = payload size (<= kMaxPayloadSize).
  Result<void, TransportError> send_reply(uint32_t request, std::span<const std::byte> payload);

  // Closes the socket (fd() is -1 afterwards; take it out of any epoll set first).
  void close() { socket_.reset(); }

 private:
  struct Chunk {
    size_t bytes = 0;
    bool would_block = false;
  };
  // One recvmsg (MSG_DONTWAIT); fds that came with it are appended to `fds` even when it then fails.
  Result<Chunk, TransportError> recv_chunk(std::span<std::byte> out, std::vector<UniqueFd>& fds);
  // Fills `out` completely; the message has started, so waits (bounded by the deadline) for the rest.
  Result<void, TransportError> recv_rest(std::span<std::byte> out, std::vector<UniqueFd>& fds, int64_t deadline_ms);
  // Waits until the socket is readable (POLLIN) or writable (POLLOUT), until the deadline.
  Result<void, TransportError> wait_for(short events, int64_t deadline_ms);
  TransportError io_error(int err);

  UniqueFd socket_;
  int timeout_ms_;
  int last_errno_ = 0;
};

}  // namespace vgpu::vhost_user

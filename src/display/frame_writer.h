// FrameWriter: a non-blocking writer of framed messages ("frames") to a stream socket, with zero-copy frames
// read from the caller's rows. It knows nothing of what the frames mean: the caller builds their bytes and
// labels each with a FrameTag, which the writer only hands back (drop_unsent, on_retired). SocketDisplay
// (socket_display.h) writes the vhost-user-gpu protocol through one.
//
// Frames go out in the order pushed, each whole before the next one's first byte. Nothing blocks (sendmsg with
// MSG_DONTWAIT): a push while the writer is idle() is written through at once, and what the socket does not
// take waits until flush(), which the caller runs on EPOLLOUT while !idle(). Queued frames are batched into one
// sendmsg (at most kMaxIov iovecs). A frame with an fd starts its own sendmsg, and the fd rides as SCM_RIGHTS
// on the frame's first byte; the writer closes its copy once that byte went out.
//
// Borrowed rows (zero-copy): push_borrowed() sends a small prefix (copied) followed by rows read straight from
// the caller's memory, without copying them. The writer keeps a pointer to the rows, and busy() is true, from
// push_borrowed() until one of these ends it:
//   - the frame's last byte is written (possibly inside push_borrowed() itself, else in a later flush());
//   - copy_borrowed() copies the frame into the queue (its unsent rest then goes from the copy);
//   - close(), or a write error, which closes the writer: the unsent rest is never written.
// Invariant: while busy(), the caller's rows must stay valid (allocated and mapped) and unchanged. Every flush()
// reads the bytes not yet written as they are then, so a change while busy() reaches the peer torn (part old,
// part new rows) and freeing them is a use-after-free. Once busy() is false the writer never reads the rows
// again: the caller may change or free them. drop_unsent() never drops the borrowed frame, and frames pushed
// while busy() go after it. push_borrowed() copies the frame into the queue instead (busy() stays false) when
// the writer is not idle(), the frame does not fit the borrowed form, or the rows come without a lease.
// The lease makes "valid" a type's guarantee (the writer holds the memory); "unchanged" stays the caller's.
//
// close() drops every frame at once, a partly written one included, and ends busy(); the stream may then stop
// mid-frame, so the caller must give up on the socket. Pushes after it are ignored. A write error (anything
// but EAGAIN and EINTR) closes the writer the same way and makes push/flush return false; error() tells why.
// The writer does not own the fd: close() leaves it open, and the caller must keep it open while the writer
// lives.
//
//   FrameWriter writer(socket.get(), [&](const FrameTag& tag, size_t size) { unsent[tag.key] -= size; });
//   if (!writer.push(std::move(frame))) give_up(writer.error());
//   if (!writer.push_borrowed(prefix, {rows, row_bytes, stride, height}, tag)) give_up(writer.error());
//   ... on EPOLLOUT (wanted while !writer.idle()): if (!writer.flush()) give_up(writer.error());
//   ... before changing or freeing the rows: wait while writer.busy()
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/unique_fd.h"
#include "renderer/image.h"

namespace vgpu {

// The caller's label for a frame. The writer never reads it: it only hands it back.
struct FrameTag {
  uint32_t kind = 0;
  uint32_t key = 0;
  Rect rect;
};

class FrameWriter {
 public:
  // iovecs per sendmsg (Linux's UIO_MAXIOV, IOV_MAX in <limits.h>).
  static constexpr size_t kMaxIov = 1024;
  // The largest prefix of a borrowed frame.
  static constexpr size_t kMaxPrefix = 64;

  struct Frame {
    std::unique_ptr<std::byte[]> bytes;
    size_t size = 0;
    UniqueFd fd;  // passed with the frame's first byte; reset once it went out
    FrameTag tag;
  };
  // `spans` runs of `span_bytes` bytes each, `stride` bytes apart, from `data` on.
  struct Rows {
    const std::byte* data = nullptr;
    size_t span_bytes = 0;
    size_t stride = 0;
    size_t spans = 0;
    // Shared ownership of the memory under `data` (ImageView::lease). Rows are borrowed only with one: the
    // writer holds it while busy(), so the bytes cannot be freed under it. Without a lease they are copied.
    std::shared_ptr<const void> lease{};
  };
  // Called once for each frame as it leaves the writer: written whole, or dropped by drop_unsent(). Not for
  // the frames that close() or a write error drops. It must not call back into the writer.
  using Retired = std::function<void(const FrameTag& tag, size_t size)>;

  // Writes to `fd` (a stream socket, not owned). Reads its send buffer size (SO_SNDBUF) to size the batches of
  // borrowed rows.
  FrameWriter(int fd, Retired on_retired);
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  // Queues `frame` after everything pushed before it, and writes through when the writer was idle(). False on a
  // write error (error(), the writer is closed) or when closed already.
  [[nodiscard]] bool push(Frame frame);
  // Queues a frame of `prefix` (copied) followed by `rows` (borrowed: busy() until written, see above), and
  // writes what the socket takes at once. When the writer is not idle(), `prefix` is over kMaxPrefix bytes or
  // `rows` is empty, the frame is copied into the queue instead (as push). False as push.
  [[nodiscard]] bool push_borrowed(std::span<const std::byte> prefix, const Rows& rows, const FrameTag& tag);
  // Copies the unsent rest of the borrowed frame into the queue, in its place: busy() turns false. Does nothing
  // while not busy().
  void copy_borrowed();
  // Writes what the socket takes. False on a write error (error(), the writer is closed) or when closed already.
  [[nodiscard]] bool flush();
  // Drops the queued frames that `drop` selects and that have not started to go out (a partly written frame
  // and the borrowed frame stay). `drop` sees each such frame's tag once, in queue order.
  void drop_unsent(const std::function<bool(const FrameTag&)>& drop);
  // Drops every frame and ends busy() (see above); pushes are ignored from then on. Leaves the fd open.
  void close();

  // Nothing to write: no frame queued or borrowed (no EPOLLOUT wanted).
  [[nodiscard]] bool idle() const { return queue_.empty() && !borrowed_; }
  // The borrowed frame is not written whole yet: the caller's rows must stay valid and unchanged.
  [[nodiscard]] bool busy() const { return borrowed_.has_value(); }
  // Bytes of the frames not yet written whole (the borrowed one included).
  [[nodiscard]] size_t queued_bytes() const { return queued_bytes_; }
  // Why the writer failed ("send: ..."); empty before any write error.
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  // A borrowed frame in progress. It precedes every frame in queue_.
  struct Borrowed {
    std::array<std::byte, kMaxPrefix> prefix{};
    size_t prefix_size = 0;
    Rows rows;
    size_t size = 0;  // the whole frame
    size_t sent = 0;  // bytes of it already written
    FrameTag tag;
  };

  static Frame copy_frame(std::span<const std::byte> prefix, const Rows& rows, const FrameTag& tag);
  // Adds the unsent part of borrowed_ to iov_ from index n, up to send_window_ bytes of rows; true when all of
  // it is in.
  bool describe_borrowed(size_t& n);
  // Counts `sent` bytes against borrowed_ (dropping it once complete); returns the bytes left over.
  size_t account_borrowed(size_t sent);
  void retire(const FrameTag& tag, size_t size);
  bool fail(std::string reason);

  int fd_;
  Retired on_retired_;
  bool closed_ = false;
  std::string error_;
  std::optional<Borrowed> borrowed_;  // busy() while set; goes out before queue_
  std::deque<Frame> queue_;
  size_t head_sent_ = 0;  // bytes of queue_.front() already written (0 while borrowed_ is set)
  size_t queued_bytes_ = 0;
  // Bytes of rows described per sendmsg: a send takes at most the socket's send buffer, and describing
  // more rows only makes the kernel import iovecs it does not use.
  size_t send_window_ = 0;
  std::array<iovec, kMaxIov> iov_{};
};

}  // namespace vgpu

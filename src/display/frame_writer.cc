// FrameWriter: the queue, the borrowed (zero-copy) frame and the sendmsg calls of the non-blocking framed
// writer (frame_writer.h).
#include "display/frame_writer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "common/scm_rights.h"

namespace vgpu {

namespace {

static_assert(FrameWriter::kMaxIov <= IOV_MAX);
// The least send window (a socket reporting a tiny SO_SNDBUF still gets a useful batch of rows).
constexpr size_t kMinSendWindow = size_t{64} * 1024;

}  // namespace

FrameWriter::FrameWriter(int fd, Retired on_retired) : fd_(fd), on_retired_(std::move(on_retired)) {
  int sndbuf = 0;
  socklen_t len = sizeof(sndbuf);
  const bool known = ::getsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 && sndbuf > 0;
  send_window_ = std::max(known ? static_cast<size_t>(sndbuf) : 0, kMinSendWindow);
}

bool FrameWriter::push(Frame frame) {
  if (closed_) return false;
  const bool was_idle = idle();
  queued_bytes_ += frame.size;
  queue_.push_back(std::move(frame));
  return !was_idle || flush();  // not idle: the socket was full, EPOLLOUT will tell
}

bool FrameWriter::push_borrowed(std::span<const std::byte> prefix, const Rows& rows, const FrameTag& tag) {
  if (closed_) return false;
  if (!idle() || prefix.size() > kMaxPrefix || rows.spans == 0 || rows.span_bytes == 0 || !rows.lease) {
    return push(copy_frame(prefix, rows, tag));
  }
  Borrowed b;
  std::memcpy(b.prefix.data(), prefix.data(), prefix.size());
  b.prefix_size = prefix.size();
  b.rows = rows;
  b.size = prefix.size() + rows.span_bytes * rows.spans;
  b.tag = tag;
  queued_bytes_ += b.size;
  borrowed_ = b;
  return flush();
}

FrameWriter::Frame FrameWriter::copy_frame(std::span<const std::byte> prefix, const Rows& rows, const FrameTag& tag) {
  Frame m;
  m.size = prefix.size() + rows.span_bytes * rows.spans;
  m.bytes = std::make_unique_for_overwrite<std::byte[]>(m.size);
  m.tag = tag;
  std::memcpy(m.bytes.get(), prefix.data(), prefix.size());
  std::byte* out = m.bytes.get() + prefix.size();
  for (size_t span = 0; span < rows.spans; ++span) {
    std::memcpy(out + span * rows.span_bytes, rows.data + span * rows.stride, rows.span_bytes);
  }
  return m;
}

void FrameWriter::copy_borrowed() {
  if (!borrowed_) return;
  const Borrowed& b = *borrowed_;
  // borrowed_ goes ahead of the queue, and head_sent_ is 0 meanwhile: the copy takes its place, already started.
  queue_.push_front(copy_frame(std::span<const std::byte>(b.prefix.data(), b.prefix_size), b.rows, b.tag));
  head_sent_ = b.sent;
  borrowed_.reset();
}

bool FrameWriter::describe_borrowed(size_t& n) {
  const Borrowed& b = *borrowed_;
  size_t described = 0;
  if (b.sent < b.prefix_size) {
    iov_[n++] = iovec{const_cast<std::byte*>(b.prefix.data() + b.sent), b.prefix_size - b.sent};
  }
  const size_t done = b.sent > b.prefix_size ? b.sent - b.prefix_size : 0;
  size_t span = done / b.rows.span_bytes;
  size_t skip = done % b.rows.span_bytes;
  for (; span < b.rows.spans && n < kMaxIov && described < send_window_; ++span, skip = 0) {
    // sendmsg only reads through iov_base; iovec has no const variant.
    iov_[n++] = iovec{const_cast<std::byte*>(b.rows.data + span * b.rows.stride + skip), b.rows.span_bytes - skip};
    described += b.rows.span_bytes - skip;
  }
  return span == b.rows.spans;
}

size_t FrameWriter::account_borrowed(size_t sent) {
  Borrowed& b = *borrowed_;
  const size_t take = std::min(sent, b.size - b.sent);
  b.sent += take;
  if (b.sent == b.size) {
    retire(b.tag, b.size);
    borrowed_.reset();
  }
  return sent - take;
}

bool FrameWriter::flush() {
  if (closed_) return false;
  while (borrowed_ || !queue_.empty()) {
    size_t n = 0;
    // Queued frames follow the borrowed frame in the same sendmsg only once all of it is described: the
    // stream must carry its bytes whole before the next frame's.
    const bool whole = !borrowed_ || describe_borrowed(n);
    int pass_fd = -1;
    for (auto it = queue_.begin(); whole && it != queue_.end() && n < kMaxIov; ++it, ++n) {
      if (it->fd) {
        // A frame with an fd starts its own sendmsg (its fd attaches to the first byte sent).
        if (n > 0) break;
        pass_fd = it->fd.get();
      }
      const size_t skip = it == queue_.begin() ? head_sent_ : 0;
      iov_[n] = iovec{it->bytes.get() + skip, it->size - skip};
    }
    size_t described = 0;
    for (size_t i = 0; i < n; ++i) described += iov_[i].iov_len;
    msghdr mh{};
    mh.msg_iov = iov_.data();
    mh.msg_iovlen = n;
    FdControl<1> control;
    if (pass_fd >= 0) (void)control.attach(mh, std::span<const int>(&pass_fd, 1));  // one fd always fits
    const ssize_t sent = ::sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return fail(std::string("send: ") + std::strerror(errno));
    }
    // The kernel took the fd with the first byte: the rest of that frame goes without it.
    if (pass_fd >= 0 && sent > 0) queue_.front().fd.reset();
    size_t left = borrowed_ ? account_borrowed(static_cast<size_t>(sent)) : static_cast<size_t>(sent);
    while (left > 0) {
      Frame& front = queue_.front();
      const size_t take = std::min(left, front.size - head_sent_);
      head_sent_ += take;
      left -= take;
      if (head_sent_ < front.size) break;
      retire(front.tag, front.size);
      queue_.pop_front();
      head_sent_ = 0;
    }
    // A short write means the send buffer is full: wait for EPOLLOUT rather than try again into EAGAIN.
    if (static_cast<size_t>(sent) < described) return true;
  }
  return true;
}

void FrameWriter::drop_unsent(const std::function<bool(const FrameTag&)>& drop) {
  // The front frame may be partly written: it has to go out whole, or the stream loses its framing.
  const auto first = queue_.begin() + (head_sent_ > 0 ? 1 : 0);
  // One pass, so that `drop` sees each frame once; the frames kept move up, in order.
  auto kept = first;
  for (auto it = first; it != queue_.end(); ++it) {
    if (drop(it->tag)) {
      retire(it->tag, it->size);
      continue;
    }
    if (kept != it) *kept = std::move(*it);
    ++kept;
  }
  queue_.erase(kept, queue_.end());
}

void FrameWriter::close() {
  closed_ = true;
  borrowed_.reset();
  queue_.clear();
  head_sent_ = 0;
  queued_bytes_ = 0;
}

void FrameWriter::retire(const FrameTag& tag, size_t size) {
  queued_bytes_ -= size;
  if (on_retired_) on_retired_(tag, size);
}

bool FrameWriter::fail(std::string reason) {
  error_ = std::move(reason);
  close();
  return false;
}

}  // namespace vgpu

// Device state over vhost-user (SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE): the pipe transfer, with its
// timeouts and size cap, run from the event loop right after the reply.
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <span>
#include <utility>

#include "common/log.h"
#include "vhost_user/session.h"
#include "vhost_user/session_detail.h"

namespace vgpu::vhost_user {

using namespace session_detail;  // NOLINT(google-build-using-namespace): this file's own helpers

// vhost-user.rst, SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE: the front-end hands over one end of a pipe; on save
// the back-end writes its whole state there and closes it, on load it reads until end of file; CHECK then says
// whether that worked. We use the front-end's fd (reply bit 8) and move the bytes right after the reply, from
// the event loop: the front-end reads (or writes) the pipe as soon as it has the reply. A transfer that stalls
// for kDeviceStateTimeoutMs fails; the session goes on either way.
Result<void, Session::Failure> Session::check_device_state_transfer(const DeviceStateTransfer& t,
                                                                    const Message& /*msg*/) const {
  if (t.direction != kTransferSave && t.direction != kTransferLoad) {
    return refused(fmt::format("unknown transfer direction {}", t.direction));
  }
  if (t.phase != 0) return refused(fmt::format("migration phase {} (only 0, stopped, is defined)", t.phase));
  for (size_t i = 0; i < vrings_.size(); ++i) {
    if (ring_running(i)) return refused(fmt::format("ring {} is running: the device must be stopped first", i));
  }
  return {};
}

namespace {

// Waits until `fd` is ready for `events` (POLLIN / POLLOUT); false on timeout, error or hang-up without data.
bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n == 1 && (p.revents & (events | POLLHUP)) != 0;
  }
}

Result<void, std::string> write_state(int fd, std::span<const std::byte> bytes, int timeout_ms) {
  // PIPE_BUF at a time: a pipe that polls writable takes that much without blocking.
  constexpr size_t kChunk = 4096;
  for (size_t done = 0; done < bytes.size();) {
    if (!wait_fd(fd, POLLOUT, timeout_ms))
      return fail(fmt::format("the frontend stopped reading after {} bytes", done));
    const ssize_t n = ::write(fd, bytes.data() + done, std::min(kChunk, bytes.size() - done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(fmt::format("write after {} bytes: {}", done, std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::vector<std::byte>, std::string> read_state(int fd, uint64_t max_bytes, int timeout_ms) {
  std::vector<std::byte> out;
  std::vector<std::byte> chunk(1 << 16);
  for (;;) {
    if (!wait_fd(fd, POLLIN, timeout_ms))
      return fail(fmt::format("the frontend stopped writing after {} bytes", out.size()));
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(fmt::format("read after {} bytes: {}", out.size(), std::strerror(errno)));
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > max_bytes) return fail(fmt::format("more than {} bytes", max_bytes));
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
}

}  // namespace

Session::Outcome Session::on_set_device_state_fd(const DeviceStateTransfer& t, Message& msg) {
  auto fd = std::make_shared<UniqueFd>(std::move(msg.fds[0]));
  transfer_error_ = std::string("the transfer did not finish");
  if (t.direction == kTransferSave) {
    auto state = backend_.save_state();
    if (!state) {
      transfer_error_ = state.error();
      return refused(fmt::format("device state not saved: {}", state.error()));
    }
    after_reply_ = [this, fd, bytes = std::move(*state)] {
      auto written = write_state(fd->get(), bytes, kDeviceStateTimeoutMs);
      fd->reset();  // end of file for the reader
      if (!written) {
        transfer_error_ = written.error();
        VGPU_LOG_WARN("vhost-user: saving device state failed: {}", written.error());
        return;
      }
      transfer_error_.reset();
      VGPU_LOG_INFO("vhost-user: device state saved ({} bytes)", bytes.size());
    };
  } else {
    after_reply_ = [this, fd] {
      auto bytes = read_state(fd->get(), kMaxDeviceStateBytes, kDeviceStateTimeoutMs);
      fd->reset();
      if (!bytes) {
        transfer_error_ = bytes.error();
        VGPU_LOG_WARN("vhost-user: loading device state failed: {}", bytes.error());
        return;
      }
      if (auto loaded = backend_.load_state(*bytes, mem_); !loaded) {
        transfer_error_ = loaded.error();
        VGPU_LOG_WARN("vhost-user: device state refused ({} bytes): {}; the device is as it was", bytes->size(),
                      loaded.error());
        return;
      }
      transfer_error_.reset();
    };
  }
  return Reply(bytes_of(kDeviceStateUseFrontendFd));
}

Session::Outcome Session::on_check_device_state(Message& /*msg*/) {
  if (transfer_error_) {
    VGPU_LOG_WARN("vhost-user: CHECK_DEVICE_STATE: the last transfer failed: {}", *transfer_error_);
    return Reply(bytes_of(uint64_t{1}));
  }
  return Reply(bytes_of(uint64_t{0}));
}

}  // namespace vgpu::vhost_user

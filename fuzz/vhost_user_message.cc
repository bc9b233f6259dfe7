// libFuzzer target for the vhost-user front-end message pipeline: a byte stream, cut into chunks, goes over a
// socketpair into a Session with a null device. Chunks carry fds (eventfds, memfds, a socket) chosen by the
// input, so memory tables, rings, kicks and display sockets are all reachable. Must never crash, hang or
// leak an fd (checked: /proc/self/fd before and after, abort on a difference).
//
// Input format (what the seeds in fuzz/corpus/vhost_user_message/ are written in):
//
//   repeat { u8 control; u16 length (little-endian); length bytes }
//
//   control bits 0-1: number of fds sent with the chunk (0..3); bits 2-5: their kinds, two bits per fd for the
//   first two fds (0: eventfd, 1: 64 KiB memfd, 2: 4 KiB memfd, 3: socket); the third fd is an eventfd;
//   bit 7: a flush point: after sending, the session reads what is waiting and every ring is kicked.
//
// The chunk's bytes go out in one sendmsg, so a chunk can hold half a message, one, or several. At the end
// the frontend shuts down its side and the session reads to EOF; a message cut short there is a disconnect,
// never a wait (the session's mid-message timeout is 0 here).
#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "common/event_loop.h"
#include "common/log.h"
#include "common/scm_rights.h"
#include "common/unique_fd.h"
#include "support/fuzz_input.h"
#include "vhost_user/backend.h"
#include "vhost_user/session.h"

namespace {

using vgpu::Backend;
using vgpu::FdControl;
using vgpu::GuestMemory;
using vgpu::Queue;
using vgpu::UniqueFd;

constexpr size_t kMaxInput = 64 * 1024;
constexpr size_t kNumQueues = 2;

// A device that accepts everything and answers nothing: drains kicked queues, keeps a small config space, and
// has a host-visible region (so SHMEM, GET_SHMEM_CONFIG and the backend channel are reachable): whenever a
// channel arrives it asks for one mapping through it, as a MAP_BLOB would.
class NullBackend final : public Backend {
 public:
  [[nodiscard]] size_t num_queues() const override { return kNumQueues; }
  [[nodiscard]] uint16_t max_queue_size() const override { return 1024; }
  [[nodiscard]] uint64_t features() const override {
    return (uint64_t{1} << 32) | (uint64_t{1} << 29) | (uint64_t{1} << 28);  // VERSION_1, EVENT_IDX, INDIRECT
  }
  [[nodiscard]] size_t config_size() const override { return sizeof(config_); }
  bool read_config(uint32_t offset, std::span<std::byte> out) const override {
    if (offset > sizeof(config_) || out.size() > sizeof(config_) - offset) return false;
    std::memcpy(out.data(), config_ + offset, out.size());
    return true;
  }
  bool write_config(uint32_t offset, std::span<const std::byte> in) override {
    if (offset > sizeof(config_) || in.size() > sizeof(config_) - offset) return false;
    std::memcpy(config_ + offset, in.data(), in.size());
    return true;
  }
  [[nodiscard]] std::vector<uint64_t> shmem_regions() const override { return {0, uint64_t{1} << 20}; }
  void set_shmem_mapper(vgpu::ShmemMapper* mapper) override {
    if (mapper == nullptr) return;
    UniqueFd memfd(::memfd_create("fuzz-blob", MFD_CLOEXEC));
    if (!memfd || ::ftruncate(memfd.get(), 4096) != 0) return;
    (void)mapper->map({.shmid = 1, .shm_offset = 0, .len = 4096}, memfd.get(), 0, true, [](vgpu::BackendReply) {});
  }
  // Shares one object (UUID all 0x42) so that GET_SHARED_OBJECT's fd path runs, and announces it on every
  // channel it gets.
  [[nodiscard]] bool shares_objects() const override { return true; }
  void set_shared_objects(vgpu::SharedObjects* objects) override {
    if (objects != nullptr) (void)objects->add(shared_uuid(), [](vgpu::BackendReply) {});
  }
  vgpu::Result<UniqueFd, std::string> shared_object_fd(const vgpu::ObjectUuid& uuid) override {
    if (uuid != shared_uuid()) return vgpu::fail(std::string("unknown"));
    UniqueFd memfd(::memfd_create("fuzz-shared", MFD_CLOEXEC));
    if (!memfd) return vgpu::fail(std::string("memfd_create"));
    return memfd;
  }
  static vgpu::ObjectUuid shared_uuid() {
    vgpu::ObjectUuid u{};
    u.fill(0x42);
    return u;
  }
  void on_queue_kick(size_t /*index*/, Queue& queue, const GuestMemory& /*mem*/) override {
    for (auto chain = queue.pop(); chain && *chain; chain = queue.pop()) queue.add_used(std::move(**chain), 0);
    queue.notify_if_needed();
  }

 private:
  std::byte config_[24] = {};
};

using vgpu::test::open_fd_count;

UniqueFd make_memfd(size_t size) {
  UniqueFd fd(::memfd_create("fuzz-guest", MFD_CLOEXEC));
  if (fd && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) fd.reset();
  return fd;
}

UniqueFd make_fd(unsigned kind) {
  switch (kind) {
    case 1: return make_memfd(64 * 1024);
    case 2: return make_memfd(4096);
    case 3: {
      int sv[2] = {-1, -1};
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return UniqueFd();
      ::close(sv[1]);
      return UniqueFd(sv[0]);
    }
    default: return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
}

void send_chunk(int fd, std::span<const uint8_t> bytes, const std::vector<UniqueFd>& fds) {
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  std::array<int, 3> raw_fds{};
  size_t count = 0;
  for (const UniqueFd& owned : fds) {
    if (count < raw_fds.size()) raw_fds[count++] = owned.get();
  }
  FdControl<3> control;
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  (void)control.attach(mh, std::span<const int>(raw_fds.data(), count));
  // An empty chunk sends nothing, not even its fds (a stream socket needs a byte to carry them).
  (void)::sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

// True when bytes are waiting on `fd`.
bool pending(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// Replies are read and dropped, so the session never finds the socket full.
void drain_replies(int fd) {
  std::byte buf[4096];
  while (::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

void run(std::span<const uint8_t> input, bool verbose) {
  auto loop = vgpu::EventLoop::create();
  if (!loop) std::abort();
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  UniqueFd frontend(sv[0]);
  NullBackend backend;
  vgpu::vhost_user::Session session(UniqueFd(sv[1]), backend, *loop, /*recv_timeout_ms=*/0);

  size_t pos = 0;
  while (pos + 3 <= input.size()) {
    const uint8_t control = input[pos];
    const size_t length = input[pos + 1] | (size_t{input[pos + 2]} << 8);
    pos += 3;
    const auto bytes = input.subspan(pos, std::min(length, input.size() - pos));
    pos += bytes.size();

    std::vector<UniqueFd> fds;
    const unsigned nfds = control & 0x3;
    for (unsigned i = 0; i < nfds; ++i) fds.push_back(make_fd(i < 2 ? (control >> (2 + 2 * i)) & 0x3 : 0));
    send_chunk(frontend.get(), bytes, fds);
    fds.clear();

    if ((control & 0x80) != 0 && !session.broken()) {
      while (!session.broken() && session.on_readable() && pending(session.socket_fd())) {
      }
      for (uint32_t ring = 0; ring <= kNumQueues; ++ring) session.on_kick(ring);
      drain_replies(frontend.get());
    }
  }
  ::shutdown(frontend.get(), SHUT_WR);
  // Reads to EOF; bounded (each call handles at least one message, or breaks the session).
  for (size_t i = 0; i <= input.size() && !session.broken(); ++i) {
    (void)session.on_readable();
    drain_replies(frontend.get());
  }
  if (verbose && session.broken()) {
    VGPU_LOG_INFO("session ended: {}{}", vgpu::vhost_user::to_string(session.on_readable().error()),
                  session.error_detail());
  }
  session.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return -1;
  const bool verbose = vgpu::test::fuzz_verbose();  // silent unless VGPU_FUZZ_LOG is set
  const size_t before = open_fd_count();
  run(std::span<const uint8_t>(data, size), verbose);
  if (open_fd_count() != before) std::abort();  // an fd leaked
  return 0;
}

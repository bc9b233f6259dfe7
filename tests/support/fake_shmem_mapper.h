// A frontend's shared-memory side for device tests: records SHMEM_MAP / SHMEM_UNMAP requests and lets the test
// answer each one when it chooses (or never), as QEMU would on the backend channel.
//
//   FakeShmemMapper mapper;
//   device.set_shmem_mapper(&mapper);
//   ... MAP_BLOB ...   mapper.answer(0, BackendReply::Done);
#pragma once

#include <sys/stat.h>

#include <optional>
#include <utility>
#include <vector>

#include "vhost_user/shmem_mapper.h"

namespace vgpu::test {

class FakeShmemMapper final : public ShmemMapper {
 public:
  struct Request {
    bool map = false;  // SHMEM_MAP, else SHMEM_UNMAP
    ShmemRange range;
    ino_t inode = 0;  // the fd's, for SHMEM_MAP
    uint64_t fd_offset = 0;
    bool writable = false;
    BackendCallback done;  // empty once answered
  };

  Result<void, BackendReply> map(const ShmemRange& range, int fd, uint64_t fd_offset, bool writable,
                                 BackendCallback done) override {
    if (!connected) return fail(BackendReply::ChannelLost);
    struct stat st {};
    ::fstat(fd, &st);
    requests.push_back(Request{true, range, st.st_ino, fd_offset, writable, std::move(done)});
    return {};
  }
  Result<void, BackendReply> unmap(const ShmemRange& range, BackendCallback done) override {
    if (!connected) return fail(BackendReply::ChannelLost);
    requests.push_back(Request{false, range, 0, 0, false, std::move(done)});
    return {};
  }

  // Answers request `i` (once).
  void answer(size_t i, BackendReply reply) {
    BackendCallback done = std::exchange(requests.at(i).done, nullptr);
    if (done) done(reply);
  }
  // Answers every request not answered yet, oldest first (including ones the answers cause).
  void answer_all(BackendReply reply) {
    for (size_t i = 0; i < requests.size(); ++i) answer(i, reply);
  }
  [[nodiscard]] size_t unanswered() const {
    size_t n = 0;
    for (const Request& r : requests) n += r.done ? 1 : 0;
    return n;
  }

  bool connected = true;
  std::vector<Request> requests;
};

}  // namespace vgpu::test

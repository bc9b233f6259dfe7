// What a device may ask of the frontend's shared-memory regions (vhost-user.rst, VHOST_USER_PROTOCOL_F_SHMEM):
// map part of an fd into region `shmid` at an offset, or unmap one whole mapping. The frontend (QEMU) does the
// mmap in its own address space, inside the region's PCI BAR, so the guest reads and writes the fd's memory
// directly. The transport implements it on the backend request channel (BackendChannel).
//
//   mapper.map({.shmid = 1, .shm_offset = off, .len = len}, fd, fd_offset, /*writable=*/true,
//              [this, token](ShmemReply r) { finish_map(token, r); });
//
// Both calls return at once. The answer comes later, from the event loop: `done` runs exactly once for every
// request that was sent, never from inside map() / unmap(). A request that could not be sent returns its
// reason instead, and `done` never runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "common/result.h"

namespace vgpu {

struct ShmemRange {
  uint8_t shmid = 0;
  uint64_t shm_offset = 0;  // bytes into the region
  uint64_t len = 0;
};

enum class ShmemReply {
  Done,         // the frontend mapped / unmapped it
  Refused,      // the frontend answered "no" (bad fd, range, overlap, unknown region)
  ChannelLost,  // the channel closed or broke before the answer came
  Timeout,      // no answer in time: the channel is dropped (later answers could no longer be matched)
};

constexpr std::string_view to_string(ShmemReply r) {
  switch (r) {
    case ShmemReply::Done: return "done";
    case ShmemReply::Refused: return "refused by the frontend";
    case ShmemReply::ChannelLost: return "backend channel lost";
    case ShmemReply::Timeout: return "no answer from the frontend";
  }
  return "unknown";
}

using ShmemCallback = std::function<void(ShmemReply)>;

class ShmemMapper {
 public:
  virtual ~ShmemMapper() = default;
  // SHMEM_MAP: [fd_offset, fd_offset + range.len) of `fd` (duplicated by the kernel on send; the caller keeps
  // its own) at range.shm_offset of region range.shmid.
  virtual Result<void, ShmemReply> map(const ShmemRange& range, int fd, uint64_t fd_offset, bool writable,
                                       ShmemCallback done) = 0;
  // SHMEM_UNMAP of the mapping that covers exactly `range`.
  virtual Result<void, ShmemReply> unmap(const ShmemRange& range, ShmemCallback done) = 0;
};

}  // namespace vgpu

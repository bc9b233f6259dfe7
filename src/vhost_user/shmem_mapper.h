// What a device may ask of the frontend's shared-memory regions (vhost-user.rst, VHOST_USER_PROTOCOL_F_SHMEM):
// map part of an fd into region `shmid` at an offset, or unmap one whole mapping. The frontend (QEMU) does the
// mmap in its own address space, inside the region's PCI BAR, so the guest reads and writes the fd's memory
// directly. The transport implements it on the backend request channel (BackendChannel).
//
//   mapper.map({.shmid = 1, .shm_offset = off, .len = len}, fd, fd_offset, /*writable=*/true,
//              [this, token](BackendReply r) { finish_map(token, r); });
//
// Both calls return at once. The answer comes later, from the event loop: `done` runs exactly once for every
// request that was sent, never from inside map() / unmap(). A request that could not be sent returns its
// reason instead, and `done` never runs.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "vhost_user/backend_reply.h"

namespace vgpu {

struct ShmemRange {
  uint8_t shmid = 0;
  uint64_t shm_offset = 0;  // bytes into the region
  uint64_t len = 0;
};

class ShmemMapper {
 public:
  virtual ~ShmemMapper() = default;
  // SHMEM_MAP: [fd_offset, fd_offset + range.len) of `fd` (duplicated by the kernel on send; the caller keeps
  // its own) at range.shm_offset of region range.shmid.
  virtual Result<void, BackendReply> map(const ShmemRange& range, int fd, uint64_t fd_offset, bool writable,
                                         BackendCallback done) = 0;
  // SHMEM_UNMAP of the mapping that covers exactly `range`.
  virtual Result<void, BackendReply> unmap(const ShmemRange& range, BackendCallback done) = 0;
};

}  // namespace vgpu

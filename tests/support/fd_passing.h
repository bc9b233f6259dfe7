// Test-side socket helpers: counting the process's open fds (a leak check), eventfds to pass, sending bytes
// with fds (SCM_RIGHTS) attached, and reading one message header together with the fds that came with it.
//
// Usage:
//   const size_t before = open_fd_count(); ...; EXPECT_EQ(open_fd_count(), before);
//   Header h{};
//   std::vector<int> fds;
//   if (!recv_header_with_fds(sock, &h, sizeof(h), fds)) return std::nullopt;   // the caller owns `fds`
//   ASSERT_EQ(send_with_fds(sock, bytes, {fd.get()}), static_cast<ssize_t>(bytes.size()));
#pragma once

#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "common/bytes.h"  // bytes_of, for the files that include this one
#include "common/scm_rights.h"
#include "common/unique_fd.h"

namespace vgpu::test {

// The process's open file descriptors (with the one reading /proc/self/fd).
inline size_t open_fd_count() {
  size_t n = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) std::abort();
  while (::readdir(dir) != nullptr) ++n;
  ::closedir(dir);
  return n;
}

// A non-blocking eventfd (a kick or call fd, or just some fd to pass).
inline UniqueFd make_eventfd() {
  return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

// Sends `bytes` with `fds` attached to the first byte; what sendmsg returned, or -1 when more than 32 fds.
inline ssize_t send_with_fds(int sock, std::span<const std::byte> bytes, std::span<const int> fds) {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  FdControl<32> control;
  if (!control.attach(mh, fds)) return -1;
  return ::sendmsg(sock, &mh, MSG_NOSIGNAL);
}

// Reads exactly `size` header bytes without blocking and appends up to four fds that arrived with them to
// `fds`; false when fewer bytes were waiting.
inline bool recv_header_with_fds(int sock, void* header, size_t size, std::vector<int>& fds) {
  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  iovec iov{header, size};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  if (::recvmsg(sock, &mh, MSG_DONTWAIT) != static_cast<ssize_t>(size)) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  return true;
}

}  // namespace vgpu::test

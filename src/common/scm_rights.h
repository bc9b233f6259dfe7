// Attaching fds to a sendmsg as one SCM_RIGHTS control message: the one place that fills a cmsghdr, for the
// vhost-user connection, the display's frame writer and the test frontends.
//
//   FdControl<kMaxFds> control;
//   msghdr mh{...iov...};
//   if (!control.attach(mh, fds)) ...;   // more fds than kMaxFds
//   sendmsg(fd, &mh, MSG_NOSIGNAL);
//
// unix(7): the fds travel with the first byte of the data sent by that sendmsg, so a sender that must repeat a
// short write sends the rest without them.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstring>
#include <span>

namespace vgpu {

template <size_t MaxFds>
class FdControl {
 public:
  static constexpr size_t kMaxFds = MaxFds;

  // Points `mh` at this buffer holding `fds` (none: leaves `mh` without control data). False, and `mh`
  // untouched, when there are more than kMaxFds. The buffer must outlive the sendmsg.
  [[nodiscard]] bool attach(msghdr& mh, std::span<const int> fds) {
    if (fds.size() > MaxFds) return false;
    if (fds.empty()) return true;
    buffer_.fill(std::byte{0});
    mh.msg_control = buffer_.data();
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    return true;
  }

 private:
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(int) * MaxFds)> buffer_{};
};

}  // namespace vgpu

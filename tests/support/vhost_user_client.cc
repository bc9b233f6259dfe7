#include "support/vhost_user_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "common/scm_rights.h"

namespace vgpu::test {

using vhost_user::FrontendRequest;
using vhost_user::MessageHeader;

namespace {

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  int r = 0;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r == 1;
}

// Reads n bytes; fds that come with them (SCM_RIGHTS) are appended to `fds` when given, closed otherwise.
bool read_exact(int fd, std::byte* out, size_t n, int timeout_ms, std::vector<UniqueFd>* fds = nullptr) {
  size_t done = 0;
  while (done < n) {
    if (!wait_readable(fd, timeout_ms)) return false;
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    iovec iov{out + done, n - done};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    const ssize_t r = ::recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); r > 0 && c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
        int got = -1;
        std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        UniqueFd owned(got);
        if (fds != nullptr) fds->push_back(std::move(owned));
      }
    }
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, std::span<const std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t r = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

std::optional<VhostUserClient> VhostUserClient::connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof(addr.sun_path)) return std::nullopt;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // SAFETY: sockaddr_un is the AF_UNIX member of the sockaddr family.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) return std::nullopt;
  return VhostUserClient(std::move(fd));
}

bool VhostUserClient::send(FrontendRequest request, std::span<const std::byte> payload, std::span<const int> fds,
                           uint32_t flags) {
  MessageHeader hdr{static_cast<uint32_t>(request), vhost_user::kVersion1 | flags,
                    static_cast<uint32_t>(payload.size())};
  std::vector<std::byte> buf(sizeof(hdr) + payload.size());
  std::memcpy(buf.data(), &hdr, sizeof(hdr));
  if (!payload.empty()) std::memcpy(buf.data() + sizeof(hdr), payload.data(), payload.size());

  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  FdControl<32> control;  // room for more than a message may carry: tests send too many on purpose
  if (!control.attach(msg, fds)) return false;
  ssize_t sent = 0;
  do {
    sent = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return false;
  // The fds travel with the first byte; send whatever the kernel did not take in one go.
  return write_all(fd_.get(), std::span<const std::byte>(buf).subspan(static_cast<size_t>(sent)));
}

bool VhostUserClient::send_raw(std::span<const std::byte> bytes) {
  return write_all(fd_.get(), bytes);
}

std::optional<Reply> VhostUserClient::receive(int timeout_ms) {
  Reply reply{};
  // SAFETY: MessageHeader is a plain struct of three u32; read byte-wise from the socket.
  if (!read_exact(fd_.get(), reinterpret_cast<std::byte*>(&reply.header), sizeof(reply.header), timeout_ms,
                  &reply.fds)) {
    return std::nullopt;
  }
  if (reply.header.size > vhost_user::kMaxPayloadSize) return std::nullopt;
  reply.payload.resize(reply.header.size);
  if (!read_exact(fd_.get(), reply.payload.data(), reply.payload.size(), timeout_ms)) return std::nullopt;
  return reply;
}

std::optional<uint64_t> VhostUserClient::get_u64(FrontendRequest request) {
  if (!send(request, {}, {})) return std::nullopt;
  auto reply = receive();
  if (!reply || reply->header.request != static_cast<uint32_t>(request) || reply->payload.size() != 8) {
    return std::nullopt;
  }
  uint64_t v = 0;
  std::memcpy(&v, reply->payload.data(), sizeof(v));
  return v;
}

bool VhostUserClient::set_u64(FrontendRequest request, uint64_t value, bool need_reply) {
  if (!send(request, bytes_of(value), {}, need_reply ? vhost_user::kFlagNeedReply : 0)) return false;
  if (!need_reply) return true;
  auto reply = receive();
  if (!reply || reply->payload.size() != 8) return false;
  uint64_t status = 1;
  std::memcpy(&status, reply->payload.data(), sizeof(status));
  return status == 0;
}

bool VhostUserClient::wait_closed(int timeout_ms) {
  std::byte b{};
  while (wait_readable(fd_.get(), timeout_ms)) {
    const ssize_t r = ::recv(fd_.get(), &b, 1, 0);
    if (r == 0) return true;
    if (r < 0 && errno != EINTR) return errno == ECONNRESET;
  }
  return false;
}

}  // namespace vgpu::test

// The frontend (QEMU) side of the vhost-user socket, for tests and benchmarks: sends requests with fds and
// reads replies. Knows framing only; TestFrontend builds the QEMU-like negotiation on top.
//
//   auto c = VhostUserClient::connect(path);
//   auto features = c->get_u64(FrontendRequest::GetFeatures);
//   c->send(FrontendRequest::SetFeatures, as_bytes(features), {});
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "vhost_user/message.h"

namespace vgpu::test {

struct Reply {
  vhost_user::MessageHeader header;
  std::vector<std::byte> payload;
  std::vector<UniqueFd> fds;  // sent with the header (GET_SHARED_OBJECT's buffer)
};

class VhostUserClient {
 public:
  static std::optional<VhostUserClient> connect(const std::string& path);
  static VhostUserClient adopt(UniqueFd fd) { return VhostUserClient(std::move(fd)); }

  // Sends header + payload (+ fds via SCM_RIGHTS). `flags` is ORed into the header (e.g. kFlagNeedReply).
  bool send(vhost_user::FrontendRequest request, std::span<const std::byte> payload, std::span<const int> fds,
            uint32_t flags = 0);
  // Sends raw bytes as they are (for hostile-frontend tests).
  bool send_raw(std::span<const std::byte> bytes);
  // Reads one reply; nullopt on EOF, error or timeout.
  std::optional<Reply> receive(int timeout_ms = 5000);

  // GET_* requests that answer a u64.
  std::optional<uint64_t> get_u64(vhost_user::FrontendRequest request);
  // A request with a u64 payload; with need_reply, waits for the REPLY_ACK and returns whether it was 0.
  bool set_u64(vhost_user::FrontendRequest request, uint64_t value, bool need_reply = false);

  // True when the backend has closed the connection (a read returns EOF), waiting up to timeout_ms.
  bool wait_closed(int timeout_ms = 5000);
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  explicit VhostUserClient(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span<const T, 1>(&value, 1));
}

}  // namespace vgpu::test

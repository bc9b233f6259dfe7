// What the two sockets of this daemon have in common: vhost-user (QEMU docs/interop/vhost-user.rst) and the
// vhost-user-gpu display protocol (docs/interop/vhost-user-gpu.rst) both frame every message as the same 12-byte
// header and a payload, and both carry multi-byte fields in host byte order between two processes on one host.
// We only build for little-endian hosts.
//
//   using MessageHeader = WireHeader;                                  // vhost_user/message.h, display/protocol.h
#pragma once

#include <bit>
#include <cstdint>

namespace vgpu {

static_assert(std::endian::native == std::endian::little,
              "vhost-user and vhost-user-gpu payloads are host-endian: only little-endian hosts are supported");

// The header before each payload. `flags` holds the reply bit (bit 2 in both protocols) and, in vhost-user
// only, the version and NEED_REPLY bits.
struct WireHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // payload bytes that follow
};
static_assert(sizeof(WireHeader) == 12);

}  // namespace vgpu

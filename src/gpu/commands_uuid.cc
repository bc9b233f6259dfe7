// RESOURCE_ASSIGN_UUID (virtio spec 5.7.6.8, VIRTIO_GPU_F_RESOURCE_UUID): the guest asks for a UUID that names a
// resource across virtio devices; Linux does so when it exports a buffer with PRIME. The spec asks that the
// UUID identify the resource: it is made once per resource (a random RFC 9562 version 4 UUID from the kernel's
// generator, checked against those in use) and the same one is answered however often the guest asks, until
// the resource goes. Announcing it to the frontend (vhost-user SHARED_OBJECT) is not done yet: the UUID is
// known to this device only.
#include <linux/virtio_gpu.h>
#include <sys/random.h>

#include <cstring>
#include <string>
#include <utility>

#include "common/log.h"
#include "gpu/device.h"

namespace vgpu {

namespace {

std::optional<ResourceUuid> random_uuid() {
  ResourceUuid u{};
  size_t got = 0;
  while (got < u.size()) {
    const ssize_t n = ::getrandom(u.data() + got, u.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<size_t>(n);
  }
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);  // variant 10
  return u;
}

}  // namespace

CommandResult GpuDevice::on_resource_assign_uuid(const virtio_gpu_resource_assign_uuid& req, Reader& /*rest*/) {
  Resource* res = resources_.find(req.resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  if (!res->uuid) {
    for (int attempt = 0; attempt < 4 && !res->uuid; ++attempt) {
      auto u = random_uuid();
      if (!u) break;
      if (!resources_.uuid_in_use(*u)) res->uuid = *u;
    }
    if (!res->uuid) {
      VGPU_LOG_WARN("RESOURCE_ASSIGN_UUID {}: no random bytes from the kernel", req.resource_id);
      return fail(GpuError::Unspec);
    }
  }
  const auto& u = *res->uuid;
  const std::string text = fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", u[0],
      u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  if (!std::exchange(logged_uuid_, true)) {
    VGPU_LOG_INFO("RESOURCE_ASSIGN_UUID {}: {} (the guest shares a buffer; later UUIDs are logged at debug)",
                  req.resource_id, text);
  } else {
    VGPU_LOG_DEBUG("RESOURCE_ASSIGN_UUID {}: {}", req.resource_id, text);
  }
  virtio_gpu_resp_resource_uuid resp{};
  resp.hdr.type = VIRTIO_GPU_RESP_OK_RESOURCE_UUID;
  std::memcpy(resp.uuid, res->uuid->data(), sizeof(resp.uuid));
  ResponseBytes out(sizeof(resp));
  std::memcpy(out.data(), &resp, sizeof(resp));
  return out;
}

}  // namespace vgpu

// RESOURCE_ASSIGN_UUID (virtio spec 5.7.6.8, VIRTIO_GPU_F_RESOURCE_UUID): the guest asks for a UUID that names a
// resource across virtio devices; Linux does so when it exports a buffer with PRIME. The spec asks that the
// UUID identify the resource: it is made once per resource (a random RFC 9562 version 4 UUID from the kernel's
// generator, checked against those in use) and the same one is answered however often the guest asks, until
// the resource goes.
//
// Sharing (vhost-user SHARED_OBJECT): when the frontend gave us a backend channel with that protocol feature,
// a resource whose buffer can be handed to another process is announced with SHARED_OBJECT_ADD as soon as it
// has a UUID; another device's backend that looks the UUID up gets, through the frontend's GET_SHARED_OBJECT,
// an fd of that buffer (shared_object_fd). Which buffers: a 2D resource of the software renderer (its image,
// moved into a sealed memfd: rows width * 4 bytes apart from offset 0), a 3D resource the renderer exports as
// a dma-buf, and a host blob exported as a dma-buf or as memory at offset 0. Not shared: guest-memory blobs
// (their pages are guest RAM: handing out a file of it would hand out all of the guest's memory) and what
// the renderer cannot export; they keep their UUID, logged once at info. The UUID is withdrawn with
// SHARED_OBJECT_REMOVE when the resource goes (unref, device reset); the frontend drops the rest itself when
// this device goes.
#include <fcntl.h>
#include <linux/virtio_gpu.h>
#include <sys/random.h>

#include <cstring>
#include <string>
#include <utility>

#include "common/bytes.h"
#include "common/log.h"
#include "gpu/device.h"

namespace vgpu {

namespace {

std::optional<ObjectUuid> random_uuid() {
  ObjectUuid u{};
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

void GpuDevice::set_shared_objects(SharedObjects* objects) {
  // A new channel (or none): what the old one announced is the frontend's to drop; the buffers go, and a
  // resource is announced again when the guest asks for its UUID again.
  if (objects != shared_objects_) resources_.for_each([](uint32_t /*id*/, Resource& r) { r.shared_fd.reset(); });
  shared_objects_ = objects;
}

Result<UniqueFd, std::string> GpuDevice::export_for_sharing(uint32_t id, const Resource& res) {
  if (res.blob_mem == VIRTIO_GPU_BLOB_MEM_GUEST)
    return fail(std::string("a guest-memory blob (its pages are guest RAM)"));
  if (!res.is_blob()) {
    auto memfd = renderer_->export_shared(id);
    if (memfd) return std::move(*memfd);
    if (memfd.error() != RendererError::Unsupported || r3d_ == nullptr) {
      return fail(fmt::format("the renderer cannot export it: {}", to_string(memfd.error())));
    }
    auto exported = r3d_->export_image(id);
    if (!exported) return fail(std::string("the renderer cannot export it as a dma-buf"));
    return std::move(exported->fd);
  }
  if (r3d_ == nullptr) return fail(std::string("a host blob without a 3D renderer"));
  if (auto fd = r3d_->export_blob(id)) return std::move(*fd);
  auto mapping = r3d_->blob_mapping(id);
  if (!mapping) return fail(std::string("the renderer cannot export the blob"));
  // GET_SHARED_OBJECT carries an fd and nothing else: an importer maps it from offset 0.
  if (mapping->fd_offset != 0) {
    return fail(fmt::format("its memory starts {} bytes into the exported file (Vulkan memory behind a header)",
                            mapping->fd_offset));
  }
  return std::move(mapping->fd);
}

void GpuDevice::announce_shared(uint32_t id, Resource& res) {
  if (shared_objects_ == nullptr || res.shared_fd || !res.uuid) return;
  auto fd = export_for_sharing(id, res);
  if (!fd) {
    if (!std::exchange(logged_unshared_, true)) {
      VGPU_LOG_INFO("resource {}: UUID {} is not offered to other devices: {} (logged once)", id, to_string(*res.uuid),
                    fd.error());
    } else {
      VGPU_LOG_DEBUG("resource {}: UUID {} is not offered to other devices: {}", id, to_string(*res.uuid), fd.error());
    }
    return;
  }
  res.shared_fd = std::move(*fd);
  const ObjectUuid uuid = *res.uuid;
  auto sent = shared_objects_->add(uuid, [this, id, uuid](BackendReply r) {
    if (r == BackendReply::Done) return;
    VGPU_LOG_WARN_LIMITED("resource {}: SHARED_OBJECT_ADD {}: {}; other devices cannot import it", id, to_string(uuid),
                          to_string(r));
    Resource* still = resources_.find(id);
    if (still != nullptr && still->uuid == uuid) still->shared_fd.reset();
  });
  if (!sent) {
    VGPU_LOG_WARN_LIMITED("resource {}: SHARED_OBJECT_ADD {} not sent: {}", id, to_string(uuid),
                          to_string(sent.error()));
    res.shared_fd.reset();
    return;
  }
  VGPU_LOG_INFO("resource {}: shared with other devices as {} (SHARED_OBJECT_ADD)", id, to_string(uuid));
}

void GpuDevice::withdraw_shared(Resource& res) {
  if (!res.shared_fd || !res.uuid) return;
  res.shared_fd.reset();
  if (shared_objects_ == nullptr) return;
  // The answer changes nothing here: the buffer is gone either way (a frontend that refuses keeps a UUID whose
  // GET_SHARED_OBJECT we then refuse).
  if (auto r = shared_objects_->remove(*res.uuid, [](BackendReply) {}); !r) {
    VGPU_LOG_DEBUG("SHARED_OBJECT_REMOVE {} not sent: {}", to_string(*res.uuid), to_string(r.error()));
  } else {
    VGPU_LOG_DEBUG("SHARED_OBJECT_REMOVE {}", to_string(*res.uuid));
  }
}

Result<ObjectUuid, std::string> GpuDevice::only_shared_object() const {
  std::optional<ObjectUuid> only;
  size_t shared = 0;
  resources_.for_each([&](uint32_t /*id*/, const Resource& r) {
    if (r.shared_fd && r.uuid) {
      ++shared;
      only = r.uuid;
    }
  });
  if (shared != 1) return fail(fmt::format("{} objects are shared, so which one is meant cannot be told", shared));
  return *only;
}

Result<UniqueFd, std::string> GpuDevice::shared_object_fd(const ObjectUuid& uuid) {
  const Resource* res = resources_.find_by_uuid(uuid);
  if (res == nullptr) return fail(std::string("no resource has this UUID (unknown, or the resource is gone)"));
  if (!res->shared_fd) return fail(std::string("its resource is not shared (see the log line about its UUID)"));
  UniqueFd dup(::fcntl(res->shared_fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!dup) return fail(fmt::format("dup: {}", std::strerror(errno)));
  return dup;
}

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
      VGPU_LOG_WARN_LIMITED("RESOURCE_ASSIGN_UUID {}: no random bytes from the kernel", req.resource_id);
      return fail(GpuError::Unspec);
    }
  }
  const std::string text = to_string(*res->uuid);
  if (!std::exchange(logged_uuid_, true)) {
    VGPU_LOG_INFO("RESOURCE_ASSIGN_UUID {}: {} (the guest shares a buffer; later UUIDs are logged at debug)",
                  req.resource_id, text);
  } else {
    VGPU_LOG_DEBUG("RESOURCE_ASSIGN_UUID {}: {}", req.resource_id, text);
  }
  announce_shared(req.resource_id, *res);
  virtio_gpu_resp_resource_uuid resp{};
  resp.hdr.type = VIRTIO_GPU_RESP_OK_RESOURCE_UUID;
  std::memcpy(resp.uuid, res->uuid->data(), sizeof(resp.uuid));
  return bytes_of(resp);
}

}  // namespace vgpu

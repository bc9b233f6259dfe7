// What a device may tell the frontend about buffers other devices can import (vhost-user.rst,
// VHOST_USER_PROTOCOL_F_SHARED_OBJECT): SHARED_OBJECT_ADD puts a UUID in the frontend's table of shared
// objects with this device as its owner, SHARED_OBJECT_REMOVE takes it out. Another device's backend that
// looks the UUID up (SHARED_OBJECT_LOOKUP) makes the frontend ask the owner for the buffer's fd with
// GET_SHARED_OBJECT (Backend::shared_object_fd). The transport implements it on the backend request channel.
//
//   objects.add(uuid, [](BackendReply r) { if (r != BackendReply::Done) ...; });
//   ... resource gone:  objects.remove(uuid, [](BackendReply) {});
//
// Both calls return at once; `done` runs exactly once for every request that was sent, later, from the event
// loop. A request that could not be sent returns its reason instead, and `done` never runs.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/result.h"
#include "vhost_user/backend_reply.h"

namespace vgpu {

// A virtio object UUID (16 bytes in wire order, as RESOURCE_ASSIGN_UUID answers it).
using ObjectUuid = std::array<uint8_t, 16>;

// The canonical 8-4-4-4-12 text of a UUID, for logs.
std::string to_string(const ObjectUuid& uuid);

class SharedObjects {
 public:
  virtual ~SharedObjects() = default;
  virtual Result<void, BackendReply> add(const ObjectUuid& uuid, BackendCallback done) = 0;
  virtual Result<void, BackendReply> remove(const ObjectUuid& uuid, BackendCallback done) = 0;
};

}  // namespace vgpu

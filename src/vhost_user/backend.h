// The one interface between the vhost-user transport and a device (CONTRIBUTING.md practice 8). The transport owns
// the socket, guest memory and the vrings; the device sees queues, config space and feature bits only.
//
//   class GpuDevice final : public vgpu::Backend { ... };
//   vhost_user::Session session(std::move(socket), device, loop);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "memory/guest_memory.h"
#include "vhost_user/shared_objects.h"
#include "vhost_user/shmem_mapper.h"
#include "virtio/queue.h"

namespace vgpu {

class Backend {
 public:
  virtual ~Backend() = default;

  // Number of virtqueues and the largest size the device accepts for each.
  [[nodiscard]] virtual size_t num_queues() const = 0;
  [[nodiscard]] virtual uint16_t max_queue_size() const = 0;

  // Device-specific and transport virtio feature bits the device offers (VIRTIO_F_VERSION_1, ring features,
  // device bits). The transport adds VHOST_USER_F_PROTOCOL_FEATURES itself.
  [[nodiscard]] virtual uint64_t features() const = 0;
  // The frontend acknowledged `acked` (a subset of features()). Default: nothing to do.
  virtual void set_acked_features(uint64_t acked) { (void)acked; }

  // Config space (GET_CONFIG / SET_CONFIG). The transport has checked that offset + size does not wrap;
  // the device checks that it fits its config struct. Defaults: no config space.
  [[nodiscard]] virtual size_t config_size() const { return 0; }
  virtual bool read_config(uint32_t offset, std::span<std::byte> out) const {
    (void)offset;
    return out.empty();
  }
  virtual bool write_config(uint32_t offset, std::span<const std::byte> in) {
    (void)offset;
    return in.empty();
  }

  // A queue was started (kick fd set and enabled) or is being stopped (GET_VRING_BASE, SET_VRING_ENABLE 0,
  // a memory change that moved or removed its rings, disconnect). `queue` stays valid until
  // on_queue_stopped(index) returns; chains popped from it must be completed (or dropped) by then, because a
  // restarted ring is a new Queue that resumes at the old one's next_avail.
  virtual void on_queue_started(size_t index, Queue& queue) {
    (void)index;
    (void)queue;
  }
  virtual void on_queue_stopped(size_t index) { (void)index; }

  // Guest memory regions were replaced, added or removed (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG). Host
  // views taken before (GuestMemory::slices) may point at unmapped memory now: drop or re-resolve them.
  // Called before rings affected by the change are restarted. Default: nothing cached, nothing to do.
  virtual void on_memory_changed() {}
  // Guest memory regions are about to be unmapped (SET_MEM_TABLE, REM_MEM_REG): the old mappings are still
  // valid during this call and gone after it. Release host views that someone else reads on its own (a 3D
  // library holding iovecs); on_memory_changed() follows. Default: nothing to release.
  virtual void on_memory_changing() {}

  // The driver kicked queue `index`: drain it. `mem` stays valid for the duration of the call.
  virtual void on_queue_kick(size_t index, Queue& queue, const GuestMemory& mem) = 0;

  // An fd the device registered in the event loop itself (Token::DisplaySocket, RendererPoll, RendererTimer)
  // is ready. Default: the device registers nothing.
  virtual void on_event(Source source, uint32_t events) {
    (void)source;
    (void)events;
  }

  // GPU_SET_SOCKET (vhost-user-gpu display socket; the transport has checked that it is a socket). QEMU sends
  // a new one each time it starts the device (boot, resume): it replaces the previous one. Default: not a
  // GPU; the fd is closed.
  virtual void on_display_socket(UniqueFd fd) { (void)fd; }

  // Shared-memory regions the device wants the frontend to create (VHOST_USER_PROTOCOL_F_SHMEM), their sizes
  // indexed by shmid (0: none with that id). Read once per connection. Default: none, and SHMEM is not offered.
  [[nodiscard]] virtual std::vector<uint64_t> shmem_regions() const { return {}; }
  // The frontend negotiated SHMEM and gave a backend channel (SET_BACKEND_REQ_FD): the device may now map
  // into its regions through `mapper`, until it is called again with another mapper or nullptr (the channel
  // was replaced, or the session ends: pending requests are then never answered). Default: no regions, no use.
  virtual void set_shmem_mapper(ShmemMapper* mapper) { (void)mapper; }

  // Shared objects (VHOST_USER_PROTOCOL_F_SHARED_OBJECT): whether the device exports buffers by UUID (the
  // transport offers the protocol bit only then). Default: no.
  [[nodiscard]] virtual bool shares_objects() const { return false; }
  // The frontend negotiated SHARED_OBJECT and gave a backend channel: the device may announce UUIDs through
  // `objects` until it is called again with another one or nullptr (the channel went; the frontend drops what
  // the old channel announced when its device goes). Default: nothing to announce.
  virtual void set_shared_objects(SharedObjects* objects) { (void)objects; }
  // GET_SHARED_OBJECT: an fd of the buffer announced with `uuid` (the transport sends it and closes its copy),
  // or why not (unknown UUID, the buffer is gone). Default: nothing is shared.
  virtual Result<UniqueFd, std::string> shared_object_fd(const ObjectUuid& uuid) {
    (void)uuid;
    return fail(std::string("this device shares no objects"));
  }
  // The UUID of the one object the device shares now, or why there is not exactly one (for a frontend that
  // asks GET_SHARED_OBJECT without saying which). Default: none.
  [[nodiscard]] virtual Result<ObjectUuid, std::string> only_shared_object() const {
    return fail(std::string("this device shares no objects"));
  }

  // Device state (VHOST_USER_PROTOCOL_F_DEVICE_STATE): whether the device saves and loads its state (the
  // transport offers the protocol bit only then); the state as bytes, or why it cannot be saved now; a load
  // of such bytes against the frontend's current guest memory, or why not (then nothing changed). Defaults: no.
  [[nodiscard]] virtual bool saves_state() const { return false; }
  [[nodiscard]] virtual Result<std::vector<std::byte>, std::string> save_state() const {
    return fail(std::string("this device has no state to save"));
  }
  virtual Result<void, std::string> load_state(std::span<const std::byte> bytes, const GuestMemory& mem) {
    (void)bytes;
    (void)mem;
    return fail(std::string("this device loads no state"));
  }

  // The frontend went away, sent RESET_OWNER or RESET_DEVICE (a guest device reset): drop all guest state (the
  // next connection or driver starts fresh).
  // Not called for SET_STATUS 0: QEMU sends that on every stop, VM pause included.
  virtual void reset() {}
};

}  // namespace vgpu

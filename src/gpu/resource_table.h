// The device's bookkeeping of 2D resources: id → format, size, backing. Pixels live in the renderer; this
// table owns the guest-visible state and the host-memory budget a guest can make us spend
// (--max-resource-memory).
//
//   ResourceTable t(512 << 20);
//   if (!t.reserve(bytes)) return fail(GpuError::OutOfMemory);
//   t.insert(id, {...});
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <unordered_map>

#include "common/unique_fd.h"
#include "memory/scatter_list.h"
#include "renderer/image.h"
#include "vhost_user/shared_objects.h"

namespace vgpu {

struct Resource {
  PixelFormat format = PixelFormat::B8G8R8X8;
  uint32_t width = 0;
  uint32_t height = 0;
  uint64_t host_bytes = 0;                  // charged against the budget
  std::optional<GuestScatterList> backing;  // RESOURCE_ATTACH_BACKING, or a blob's guest memory
  // RESOURCE_CREATE_BLOB: VIRTIO_GPU_BLOB_MEM_* and the blob's size in bytes; 0 for 2D and 3D resources. A
  // blob has no format or size of its own (width, height 0): SET_SCANOUT_BLOB gives its layout.
  uint32_t blob_mem = 0;
  uint64_t blob_size = 0;
  uint32_t blob_flags = 0;   // VIRTIO_GPU_BLOB_FLAG_USE_*
  uint32_t blob_ctx_id = 0;  // HOST3D*: the context whose object it is (its CTX_DESTROY unmaps the blob)
  // The device unmapped it for the guest (its context went first): the guest's own UNMAP_BLOB, which Linux
  // sends when it frees the buffer after the context, is answered OK once.
  bool unmapped_by_device = false;
  // RESOURCE_ASSIGN_UUID: made on the first request, the same for every later one while the resource lives.
  std::optional<ObjectUuid> uuid = std::nullopt;
  // The buffer other devices import by that UUID (vhost-user SHARED_OBJECT): set when the UUID was announced
  // to the frontend with SHARED_OBJECT_ADD; GET_SHARED_OBJECT answers a duplicate of it. Invalid otherwise.
  UniqueFd shared_fd;
  [[nodiscard]] bool is_blob() const { return blob_mem != 0; }
  [[nodiscard]] uint32_t stride() const { return width * kBytesPerPixel; }
};

class ResourceTable {
 public:
  explicit ResourceTable(uint64_t max_host_bytes) : max_host_bytes_(max_host_bytes) {}

  [[nodiscard]] Resource* find(uint32_t id);
  [[nodiscard]] const Resource* find(uint32_t id) const;
  [[nodiscard]] bool contains(uint32_t id) const { return resources_.contains(id); }
  [[nodiscard]] size_t size() const { return resources_.size(); }
  // Whether a live resource has this UUID (RESOURCE_ASSIGN_UUID keeps them unique).
  [[nodiscard]] bool uuid_in_use(const ObjectUuid& uuid) const;
  // The live resource with this UUID, or nullptr.
  [[nodiscard]] const Resource* find_by_uuid(const ObjectUuid& uuid) const;
  // Calls `f(id, resource)` for every live resource (in no particular order).
  template <typename F>
  void for_each(F&& f) {
    for (auto& [id, r] : resources_) f(id, r);
  }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [id, r] : resources_) f(id, r);
  }

  // Charges `bytes` against the budget; false (nothing charged) when it would exceed it.
  [[nodiscard]] bool reserve(uint64_t bytes);
  // Refunds bytes charged with reserve() that no resource holds (a failed create, a detached backing).
  void release(uint64_t bytes) { used_bytes_ -= bytes < used_bytes_ ? bytes : used_bytes_; }
  void insert(uint32_t id, Resource resource);
  // Removes the resource and refunds its host bytes.
  void erase(uint32_t id);
  void clear();

  [[nodiscard]] uint64_t used_bytes() const { return used_bytes_; }
  [[nodiscard]] uint64_t max_bytes() const { return max_host_bytes_; }

 private:
  uint64_t max_host_bytes_;
  uint64_t used_bytes_ = 0;
  std::unordered_map<uint32_t, Resource> resources_;
};

}  // namespace vgpu

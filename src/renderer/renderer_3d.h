// The device's view of a 3D renderer (CONTRIBUTING.md practice 8): capsets, 3D contexts, 3D resources and their
// transfers, command submission, and fences on the global timeline or per (context, ring). A 3D renderer also
// implements Renderer2D (2D commands on 3D-capable builds, RESOURCE_UNREF, scanout readback), so the device
// holds one object through both interfaces. Every call comes from the device's event-loop thread.
//
// The device validates ids, sizes and feature bits before calling; a renderer still treats every argument as
// guest-controlled (the library behind it is large and its own checks use 32-bit arithmetic).
//
//   for (const CapsetInfo& c : r.capsets()) ...;                       // GET_CAPSET_INFO, num_capsets
//   auto caps = r.capset(kCapsetVirgl2, 2);                            // GET_CAPSET
//   r.set_fence_callback([&](FenceRing ring, uint64_t id) { complete_chains(ring, id); });
//   r.create_context(1, /*context_init=*/0, "glxgears");               // CTX_CREATE
//   r.create_resource_3d(5, args);  r.attach_resource(1, 5);           // RESOURCE_CREATE_3D, CTX_ATTACH_RESOURCE
//   r.attach_backing(5, mem, backing);                                 // RESOURCE_ATTACH_BACKING
//   r.transfer_to_host_3d(1, 5, transfer, mem, backing);               // TRANSFER_TO_HOST_3D
//   r.submit_3d(1, command_bytes);                                     // SUBMIT_3D
//   r.create_fence(FenceRing::context(1, 0), fence_id);                // any command with VIRTIO_GPU_FLAG_FENCE
//   loop.add(r.poll_fd(), {Token::RendererPoll}, EPOLLIN);  ...  r.poll();   // callbacks fire from poll()
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"
#include "memory/scatter_list.h"
#include "renderer/dmabuf.h"
#include "renderer/image.h"

namespace vgpu {

// Capset ids (virtio spec 5.7.6.8 "VIRTIO_GPU_CAPSET_*"; Debian 12's <linux/virtio_gpu.h> lacks VENUS).
constexpr uint32_t kCapsetVirgl = 1;   // VIRTIO_GPU_CAPSET_VIRGL
constexpr uint32_t kCapsetVirgl2 = 2;  // VIRTIO_GPU_CAPSET_VIRGL2
constexpr uint32_t kCapsetVenus = 4;   // VIRTIO_GPU_CAPSET_VENUS

// One capset the renderer really initialised (VIRTIO_GPU_RESP_OK_CAPSET_INFO's fields).
struct CapsetInfo {
  uint32_t id = 0;
  uint32_t max_version = 0;
  uint32_t max_size = 0;  // bytes GET_CAPSET returns
  bool operator==(const CapsetInfo&) const = default;
};

enum class Renderer3DError {
  OutOfMemory,      // the host (or the GL driver) could not allocate         → ERR_OUT_OF_MEMORY
  InvalidResource,  // no such resource                                       → ERR_INVALID_RESOURCE_ID
  InvalidContext,   // no such context, or the id is taken                    → ERR_INVALID_CONTEXT_ID
  InvalidArgument,  // a box, level, size, capset or command stream rejected  → ERR_INVALID_PARAMETER
  GuestMemory,      // the backing no longer resolves to guest memory         → ERR_UNSPEC
  Failed,           // the library failed without saying why                  → ERR_UNSPEC
};

constexpr std::string_view to_string(Renderer3DError e) {
  switch (e) {
    case Renderer3DError::OutOfMemory: return "out of host memory";
    case Renderer3DError::InvalidResource: return "no such resource";
    case Renderer3DError::InvalidContext: return "no such context (or id in use)";
    case Renderer3DError::InvalidArgument: return "argument rejected";
    case Renderer3DError::GuestMemory: return "backing not in guest memory";
    case Renderer3DError::Failed: return "renderer failed";
  }
  return "unknown renderer error";
}

// virtio_gpu_resource_create_3d's fields after the id (gallium's pipe_resource description).
struct Resource3DArgs {
  uint32_t target = 0;  // PIPE_BUFFER 0, PIPE_TEXTURE_1D 1, PIPE_TEXTURE_2D 2, 3D 3, CUBE 4, RECT 5, arrays 6-8
  uint32_t format = 0;  // virgl format (the 2D virtio formats keep their numbers)
  uint32_t bind = 0;    // VIRGL_BIND_* / VIRGL_RES_BIND_*
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t depth = 0;
  uint32_t array_size = 0;
  uint32_t last_level = 0;
  uint32_t nr_samples = 0;
  uint32_t flags = 0;  // VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP
};

// A 2D texture of one level and one sample (PIPE_TEXTURE_2D): what a 2D resource is on a 3D renderer.
constexpr Resource3DArgs texture_2d_args(uint32_t format, uint32_t bind, uint32_t width, uint32_t height,
                                         uint32_t flags = 0) {
  return Resource3DArgs{.target = 2,  // PIPE_TEXTURE_2D
                        .format = format,
                        .bind = bind,
                        .width = width,
                        .height = height,
                        .depth = 1,
                        .array_size = 1,
                        .last_level = 0,
                        .nr_samples = 0,
                        .flags = flags};
}

struct Box3D {
  uint32_t x = 0, y = 0, z = 0;
  uint32_t w = 0, h = 0, d = 0;
};

// virtio_gpu_transfer_host_3d's fields after the resource id. The backing holds the box's first byte at
// `offset`; stride and layer_stride 0 mean "the resource's own" for that level.
struct Transfer3D {
  Box3D box;
  uint64_t offset = 0;
  uint32_t level = 0;
  uint32_t stride = 0;
  uint32_t layer_stride = 0;
};

// virtio_gpu_resource_create_blob's fields (spec 5.7.6.8 "VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB"), validated by the
// device: blob_mem is VIRTIO_GPU_BLOB_MEM_{GUEST,HOST3D,HOST3D_GUEST}, blob_flags a subset of the USE_* bits.
struct BlobArgs {
  uint32_t ctx_id = 0;  // the creating context (HOST3D*: the one whose blob_id it is; GUEST: 0)
  uint32_t blob_mem = 0;
  uint32_t blob_flags = 0;
  uint64_t blob_id = 0;  // HOST3D*: names the object the context made (virgl: PIPE_RESOURCE_CREATE's blob id)
  uint64_t size = 0;     // bytes
};

// Where a fence signals: the global timeline (a fenced command without VIRTIO_GPU_FLAG_INFO_RING_IDX, whatever
// its ctx_id), or ring `ring_idx` of context `ctx_id` (with INFO_RING_IDX, feature CONTEXT_INIT).
struct FenceRing {
  enum class Kind : uint8_t { Global, Context };
  Kind kind = Kind::Global;
  uint32_t ctx_id = 0;
  uint32_t ring_idx = 0;

  static constexpr FenceRing global() { return FenceRing{}; }
  static constexpr FenceRing context(uint32_t ctx, uint32_t ring) { return FenceRing{Kind::Context, ctx, ring}; }
  bool operator==(const FenceRing&) const = default;
};

// Called once per created fence, in creation order per ring, on the caller's thread: from poll(), or from
// inside create_fence() when the fence is already done (VirglRenderer delivers what the library retired
// during that call). Never from another thread, never from inside the library. The callback may call back
// into the renderer. The device's FenceTable keeps a signal that comes before its response is held.
using FenceCallback = std::function<void(FenceRing ring, uint64_t fence_id)>;

// A mappable blob's memory as another process maps it (RESOURCE_MAP_BLOB, through the frontend): the fd, where
// the blob's first byte is in it, how many bytes from there belong to it, and the cache type the guest must use
// (VIRTIO_GPU_MAP_CACHE_*, from the library's map info).
struct BlobMapping {
  UniqueFd fd;
  uint64_t fd_offset = 0;
  uint64_t size = 0;
  uint32_t map_info = 0;
};

class Renderer3D {
 public:
  virtual ~Renderer3D() = default;

  // The capsets that initialised, in id order: what GET_CAPSET_INFO reports and num_capsets counts.
  [[nodiscard]] virtual const std::vector<CapsetInfo>& capsets() const = 0;
  // GET_CAPSET: max_size bytes. InvalidArgument: a capset not in capsets(), or version > max_version.
  [[nodiscard]] virtual Result<std::vector<std::byte>, Renderer3DError> capset(uint32_t id, uint32_t version) const = 0;

  // CTX_CREATE. `context_init` is the request's context_init field (capset id in its low 8 bits; 0 picks
  // VIRGL2, as for a guest without CONTEXT_INIT). InvalidContext: id 0 or already in use. InvalidArgument: a
  // capset not in capsets() or unknown flag bits.
  virtual Result<void, Renderer3DError> create_context(uint32_t ctx_id, uint32_t context_init,
                                                       std::string_view debug_name) = 0;
  // CTX_DESTROY. Unknown ids are ignored. Fences still pending on the context's rings are dropped without a
  // callback: the device completes the chains it holds for them.
  virtual void destroy_context(uint32_t ctx_id) = 0;
  // CTX_ATTACH_RESOURCE / CTX_DETACH_RESOURCE (detach of unknown ids is ignored).
  virtual Result<void, Renderer3DError> attach_resource(uint32_t ctx_id, uint32_t resource_id) = 0;
  virtual void detach_resource(uint32_t ctx_id, uint32_t resource_id) = 0;

  // RESOURCE_CREATE_3D. InvalidArgument: id 0 or in use, or args the library rejects. Freed by
  // Renderer2D::destroy_resource (RESOURCE_UNREF).
  virtual Result<void, Renderer3DError> create_resource_3d(uint32_t resource_id, const Resource3DArgs& args) = 0;
  // RESOURCE_ATTACH_BACKING / DETACH_BACKING: the renderer keeps host views of `backing` (GuestMemory::slices)
  // for commands that read or write it on their own (queries, COPY_TRANSFER3D staging, memory info), and may
  // read through them when detaching. They are valid only while the memory table keeps its mappings, so around
  // any change to it (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) the device calls release_backings() while the
  // old mappings are still mapped, then refresh_backings() on the new table, before any other renderer call.
  // A second attach replaces the first. `mem` must outlive the attachment (the device's one GuestMemory).
  virtual Result<void, Renderer3DError> attach_backing(uint32_t resource_id, const GuestMemory& mem,
                                                       const GuestScatterList& backing) = 0;
  virtual void detach_backing(uint32_t resource_id) = 0;
  // Lets the renderer's views go, keeping each backing on record.
  virtual void release_backings() = 0;
  // Re-resolves every backing on record against the current memory table (releasing first if needed: then
  // the old mappings must still be mapped during this call). A backing that no longer resolves is dropped
  // (the resource then has none, and commands that need it fail for the guest).
  virtual void refresh_backings() = 0;

  // RESOURCE_CREATE_BLOB. `backing` is the guest memory of GUEST and HOST3D_GUEST blobs (null for HOST3D); the
  // renderer keeps host views of it exactly as for attach_backing (release_backings / refresh_backings apply).
  // InvalidArgument: id 0 or in use, or a blob the context cannot give (unknown blob_id, flags it cannot honour).
  // InvalidContext: a HOST3D* blob of an unknown context. Freed by Renderer2D::destroy_resource.
  virtual Result<void, Renderer3DError> create_blob(uint32_t resource_id, const BlobArgs& args, const GuestMemory* mem,
                                                    const GuestScatterList* backing) = 0;
  // Scanout of a HOST3D blob: copies `rect` of the blob, read as 32-bit pixels laid out from byte `offset` with
  // `stride` bytes per row, to `dst` (dst_stride bytes per row, its first byte is the rect's top-left pixel).
  // InvalidResource: not a blob of this renderer; InvalidArgument: the rect leaves the blob or cannot be read.
  virtual Result<void, Renderer3DError> read_blob(uint32_t resource_id, uint64_t offset, uint32_t stride,
                                                  const Rect& rect, std::span<std::byte> dst, uint32_t dst_stride) = 0;

  // Dma-buf scanout (a GL display imports the buffer; no readback). export_image: a texture resource (3D, or a
  // 2D one this renderer made) with the layout the renderer chose. export_blob: a HOST3D or HOST3D_GUEST blob's
  // memory; its layout is the guest's (SET_SCANOUT_BLOB), so only the fd comes back. Failed: the renderer or
  // its driver cannot export (no EGL_MESA_image_dma_buf_export, llvmpipe without udmabuf, a blob backed by
  // shared memory rather than a dma-buf); the device then reads the pixels back. InvalidResource: unknown id.
  virtual Result<ExportedDmabuf, Renderer3DError> export_image(uint32_t resource_id) = 0;
  virtual Result<UniqueFd, Renderer3DError> export_blob(uint32_t resource_id) = 0;
  // Host-visible memory. maps_blobs: whether blob_mapping can succeed at all here (the device offers a
  // host-visible region only then). blob_mapping: a HOST3D or HOST3D_GUEST blob created USE_MAPPABLE, as an fd
  // another process can mmap (a dma-buf or shared memory at offset 0, or Vulkan memory in a memfd behind a
  // header, at the data's offset). InvalidResource: not a blob of this renderer; InvalidArgument: not mappable;
  // Failed: the library cannot export it as an fd that maps to the blob's bytes (never a guessed offset).
  [[nodiscard]] virtual bool maps_blobs() const = 0;
  virtual Result<BlobMapping, Renderer3DError> blob_mapping(uint32_t resource_id) = 0;

  // Before telling the display an exported buffer changed: the rendering queued so far must be visible to
  // another process's import of it.
  virtual void flush_for_display() = 0;

  // TRANSFER_TO_HOST_3D / TRANSFER_FROM_HOST_3D between `backing` (resolved afresh on every call) and the
  // resource. ctx_id 0 is the host context; otherwise the resource must be attached to that context.
  virtual Result<void, Renderer3DError> transfer_to_host_3d(uint32_t ctx_id, uint32_t resource_id, const Transfer3D& t,
                                                            const GuestMemory& mem,
                                                            const GuestScatterList& backing) = 0;
  virtual Result<void, Renderer3DError> transfer_from_host_3d(uint32_t ctx_id, uint32_t resource_id,
                                                              const Transfer3D& t, const GuestMemory& mem,
                                                              const GuestScatterList& backing) = 0;

  // SUBMIT_3D: a command stream (a host copy) for the context's renderer. InvalidArgument: empty is fine, but
  // a size that is not a multiple of 4 or above the renderer's cap, or a stream the renderer rejects.
  virtual Result<void, Renderer3DError> submit_3d(uint32_t ctx_id, std::span<const std::byte> commands) = 0;

  // Fences. The callback is delivered for each fence, in creation order per ring (see FenceCallback).
  virtual void set_fence_callback(FenceCallback callback) = 0;
  virtual Result<void, Renderer3DError> create_fence(FenceRing ring, uint64_t fence_id) = 0;
  // An fd that becomes readable when poll() has work, or -1: then the device calls poll() from its fence timer
  // (every millisecond while fenced responses wait). It may change across Renderer2D::reset(): re-read it.
  [[nodiscard]] virtual int poll_fd() const = 0;
  // A context's own fd (Venus contexts on a render server signal through it), or -1 (use poll_fd / a timer).
  [[nodiscard]] virtual int context_poll_fd(uint32_t ctx_id) const = 0;
  // Retires finished work and delivers fence callbacks.
  virtual void poll() = 0;
};

}  // namespace vgpu

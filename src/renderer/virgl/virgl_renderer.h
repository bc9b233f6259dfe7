// The virgl renderer: libvirglrenderer called directly (virgl OpenGL contexts, and Venus Vulkan contexts on
// virgl_render_server), behind Renderer2D (2D commands on 3D resources, RESOURCE_UNREF, scanout readback)
// and Renderer3D (renderer_3d.h).
//
//   auto r = VirglRenderer::create({});                 // surfaceless EGL (Mesa llvmpipe, NVIDIA EGL)
//   if (!r) { VGPU_LOG_ERROR("3D: {}", r.error()); return 1; }   // a sentence saying why 3D cannot start
//   (*r)->set_fence_callback([&](FenceRing ring, uint64_t id) { ... });
//   int fd = (*r)->poll_fd();                           // -1: call poll() on a timer while fences are pending
//
// virglrenderer keeps global state (one renderer per process, its callbacks and cookie stored at init), so
// only one VirglRenderer may exist at a time: create() fails while another is alive. Destroying it cleans the
// library up, after which a new one can be created. Every call must come from the thread that created it: the
// library makes that thread's GL context current and never unbinds it.
//
// Threads: with `thread_sync` virglrenderer waits for GL fences in its own thread and makes poll_fd()
// readable; fence callbacks still run only inside poll() on our thread (we never pass ASYNC_FENCE_CB).
//
// Lifetime risk (the one place where the library holds pointers into the guest): attach_backing() gives the
// library host views of guest memory (GuestMemory::slices) that it keeps until detach, and reads through them
// on its own (queries, staging copies, memory info) and when a backing is detached. When the memory table
// changes, call release_backings() while the old mappings are still mapped and refresh_backings() once the
// new table is in place (refresh_backings() alone releases first, so the old mappings must then still be
// alive during that call). Transfers never reuse views: they resolve the backing afresh on every call.
//
// One class, its translation units split by concern:
//   virgl_init.cc      library init, reset and cleanup, EGL checks, capsets, the C callbacks, the host context
//   virgl_backings.cc  guest backings and blobs: where guest pointers reach the library (the risk above)
//   virgl_fences.cc    fence creation, polling and delivery
//   virgl_renderer.cc  resources, 2D transfers and readback, contexts, dma-buf export, 3D transfers, SUBMIT_3D
//   virgl_internal.h   helpers those files share (private)
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "renderer/renderer_2d.h"
#include "renderer/renderer_3d.h"

struct virgl_renderer_callbacks;

namespace vgpu {

struct VirglOptions {
  // A DRM render node (e.g. /dev/dri/renderD128) for EGL on GBM; empty: surfaceless EGL, which is what works
  // without a GPU (Mesa llvmpipe) or without /dev/dri (NVIDIA's EGL on a host with no render node).
  std::string render_node{};
  // Venus (Vulkan) contexts on virgl_render_server (package virgl-server). When the server cannot start, the
  // renderer comes up without Venus and logs why; the VENUS capset is then not reported.
  bool venus = false;
  // GL fence waits in virglrenderer's thread, signalled through poll_fd(); off: poll() must run on a timer.
  bool thread_sync = true;
  // SUBMIT_3D streams above this size are refused (InvalidArgument). Mesa's virgl driver sends far less.
  uint32_t max_submit_bytes = 16u << 20;
};

class VirglRenderer final : public Renderer2D, public Renderer3D {
 public:
  // Starts virglrenderer. The error is a sentence for the operator: why 3D cannot start (no EGL, a render node
  // that cannot be opened, another renderer alive, the library's init failing).
  static Result<std::unique_ptr<VirglRenderer>, std::string> create(const VirglOptions& options);
  ~VirglRenderer() override;
  VirglRenderer(const VirglRenderer&) = delete;
  VirglRenderer& operator=(const VirglRenderer&) = delete;

  // --- Renderer2D: 2D resources are virgl textures (PIPE_TEXTURE_2D, bind RENDER_TARGET, Y_0_TOP), as QEMU
  // makes them, so a guest can mix 2D and 3D commands on them.
  Result<void, RendererError> create_resource(uint32_t id, PixelFormat format, uint32_t width,
                                              uint32_t height) override;
  // Also RESOURCE_UNREF of 3D resources: detaches the backing, then drops the resource from every context.
  void destroy_resource(uint32_t id) override;
  // Reads the rect's rows (resource stride width * 4, as soft2d) into a host buffer, then uploads it.
  Result<void, RendererError> transfer_to_host_2d(uint32_t id, const Rect& rect, uint64_t offset,
                                                  const GuestScatterList& backing) override;
  // Scanout readback: the resource's level 0 read into a host shadow buffer (the path for every display
  // that takes no dma-buf, and where export fails). Only for 2D-shaped resources (PIPE_TEXTURE_2D or RECT, one of the
  // eight 32-bit formats); nullopt otherwise or when the readback fails. Rows come in the order TRANSFER_FROM_HOST_3D
  // gives them (the library flips Y_0_TOP resources for us). Valid until the next call on this resource.
  [[nodiscard]] std::optional<ImageView> image(uint32_t id) const override;
  // Device reset: drops every context, resource and pending fence (no callbacks). Cheap when nothing was
  // created since the last one. With thread_sync it cleans the library up and initialises it again, because
  // virgl_renderer_reset() stops the fence thread for good: re-read poll_fd() afterwards.
  void reset() override;

  // --- Renderer3D (see renderer_3d.h for the contract of each).
  [[nodiscard]] const std::vector<CapsetInfo>& capsets() const override { return capsets_; }
  [[nodiscard]] Result<std::vector<std::byte>, Renderer3DError> capset(uint32_t id, uint32_t version) const override;
  Result<void, Renderer3DError> create_context(uint32_t ctx_id, uint32_t context_init,
                                               std::string_view debug_name) override;
  void destroy_context(uint32_t ctx_id) override;
  Result<void, Renderer3DError> attach_resource(uint32_t ctx_id, uint32_t resource_id) override;
  void detach_resource(uint32_t ctx_id, uint32_t resource_id) override;
  Result<void, Renderer3DError> create_resource_3d(uint32_t resource_id, const Resource3DArgs& args) override;
  Result<void, Renderer3DError> attach_backing(uint32_t resource_id, const GuestMemory& mem,
                                               const GuestScatterList& backing) override;
  void detach_backing(uint32_t resource_id) override;
  // The library reads custom-bind buffers' backings while detaching them: release before unmapping.
  void release_backings() override;
  void refresh_backings() override;
  // Every blob kind goes to virgl_renderer_resource_create_blob (GUEST ones too, so contexts can use them).
  Result<void, Renderer3DError> create_blob(uint32_t resource_id, const BlobArgs& args, const GuestMemory* mem,
                                            const GuestScatterList* backing) override;
  // Mappable blobs are read through virgl_renderer_resource_map (bytes at offset + y * stride); others through
  // the library's transfer path, texel-addressed (the object behind the blob keeps its own layout).
  Result<void, Renderer3DError> read_blob(uint32_t resource_id, uint64_t offset, uint32_t stride, const Rect& rect,
                                          std::span<std::byte> dst, uint32_t dst_stride) override;
  // virgl_renderer_get_fd_for_texture2 (EGL_MESA_image_dma_buf_export) with the layout from
  // virgl_renderer_resource_get_info (and its modifier from get_info_ext on 1.x).
  Result<ExportedDmabuf, Renderer3DError> export_image(uint32_t resource_id) override;
  // virgl_renderer_resource_export_blob; only fds of type DMABUF count.
  Result<UniqueFd, Renderer3DError> export_blob(uint32_t resource_id) override;
  void flush_for_display() override;
  // Only Venus blobs can be mapped by another process: they are Vulkan memory the library exports as an fd.
  // A virgl (GL) context's mappable blob is a GL buffer mapping inside this process, which no fd describes.
  [[nodiscard]] bool maps_blobs() const override { return venus_; }
  // virgl_renderer_resource_export_blob + get_map_info. DMABUF and SHM fds map from offset 0; an OPAQUE fd (a
  // memfd with a header, lavapipe without udmabuf) from where the library's own mapping of it starts, read
  // from /proc/self/maps and checked against the fd's inode.
  Result<BlobMapping, Renderer3DError> blob_mapping(uint32_t resource_id) override;
  Result<void, Renderer3DError> transfer_to_host_3d(uint32_t ctx_id, uint32_t resource_id, const Transfer3D& t,
                                                    const GuestMemory& mem, const GuestScatterList& backing) override;
  Result<void, Renderer3DError> transfer_from_host_3d(uint32_t ctx_id, uint32_t resource_id, const Transfer3D& t,
                                                      const GuestMemory& mem, const GuestScatterList& backing) override;
  Result<void, Renderer3DError> submit_3d(uint32_t ctx_id, std::span<const std::byte> commands) override;
  void set_fence_callback(FenceCallback callback) override { fence_callback_ = std::move(callback); }
  // Global fences go through virgl_renderer_create_fence (32-bit ids on the wire to the library: we keep the
  // full 64-bit id). Context fences use virgl_renderer_context_create_fence where the library has the 1.x ABI
  // (0.10.4 and later); older ones put them on the global timeline and report them on the ring asked for.
  // virgl contexts run every submission in order on the library's one timeline (it refuses rings > 0): a fence
  // on ring N > 0 (N < kMaxVirglRings) goes on that timeline and is reported on ring N, which is exact (it
  // signals once all the context's earlier work is done) and keeps per-ring order. Venus contexts use ring 0
  // and the rings the guest created queues on (the render server refuses others). InvalidContext: unknown
  // context; InvalidArgument: a ring the context cannot have.
  Result<void, Renderer3DError> create_fence(FenceRing ring, uint64_t fence_id) override;
  [[nodiscard]] int poll_fd() const override;
  [[nodiscard]] int context_poll_fd(uint32_t ctx_id) const override;
  void poll() override;

  // True when Venus came up (its capset is in capsets()).
  [[nodiscard]] bool venus() const { return venus_; }
  // The virglrenderer flags init succeeded with (VIRGL_RENDERER_*), for logs.
  [[nodiscard]] int init_flags() const { return flags_; }
  // Fences created and not yet delivered, all rings together.
  [[nodiscard]] size_t pending_fences() const;

 private:
  // The rings a virgl context may name: VIRTGPU_CONTEXT_PARAM_NUM_RINGS is capped at 64 by Linux.
  static constexpr uint32_t kMaxVirglRings = 64;
  struct Callbacks;  // the C callbacks (virgl_init.cc); they only record, never throw
  struct Resource {
    Resource3DArgs args;             // zero for blobs
    std::optional<BlobArgs> blob{};  // RESOURCE_CREATE_BLOB
    // RESOURCE_ATTACH_BACKING, kept to re-resolve after memory changes.
    const GuestMemory* backing_mem = nullptr;
    std::optional<GuestScatterList> backing{};
    // The views the library holds while `attached`: never touched until it has let go of them.
    std::vector<iovec> iovs{};
    std::vector<RegionPin> pins{};  // the regions iovs point into: mapped while the library may read them
    bool attached = false;
    // image() readback. Shared with the leases of the views image() returned: a new readback while a display
    // still sends the old one gets a new buffer.
    mutable std::shared_ptr<std::vector<std::byte>> shadow{};
  };
  // What a library callback reported, delivered after the call returns (the callbacks may run inside any
  // library call; our callback may call back into us).
  struct Retired {
    bool global;
    uint32_t ctx_id;
    uint32_t ring_idx;
    uint64_t fence_id;
  };
  struct PendingFence {
    FenceRing ring;
    uint64_t fence_id;
  };

  explicit VirglRenderer(const VirglOptions& options);
  Result<void, std::string> init();
  [[nodiscard]] bool render_server_answers();
  void probe_capsets();
  Resource* find(uint32_t resource_id);
  [[nodiscard]] const Resource* find(uint32_t resource_id) const;
  void release_backing(uint32_t id, Resource& res);
  Result<void, Renderer3DError> transfer_3d(uint32_t ctx_id, uint32_t resource_id, const Transfer3D& t,
                                            const GuestMemory& mem, const GuestScatterList& backing, bool to_host);
  void deliver();
  // Makes the library's host context (its ctx0) current, in GL and in the library's own record of what is
  // current, before any call into the library but fence creation. Why (each measured, tests "Contexts_*"):
  // virglrenderer runs resource creation and other non-stream work in whatever GL context is current, so a
  // guest context's texture bindings were undone by another program's RESOURCE_CREATE_3D (its next draw
  // sampled nothing: black); and creating a context makes the new GL context current without updating that
  // record, so the previous context's next SUBMIT_3D ran in the new one's GL state and was refused. QEMU's
  // virgl backends force ctx0 before every command for the same reasons. Fences are the exception: the
  // library inserts them into the current GL context, which must stay the one the fenced command ran in.
  void enter_host_context() const;

  VirglOptions options_;
  int flags_ = 0;
  bool initialised_ = false;
  bool venus_ = false;
  std::unique_ptr<virgl_renderer_callbacks> callbacks_;  // the library keeps this pointer until cleanup
  std::vector<CapsetInfo> capsets_;
  std::unordered_map<uint32_t, uint32_t> contexts_;   // ctx_id -> capset id
  std::unordered_map<uint32_t, Resource> resources_;  // nodes never move: iovs' data stays put
  std::deque<PendingFence> global_fences_;            // the library's ctx0 timeline, in creation order
  // (ctx, the library's ring) -> fences in creation order, each with the ring the guest asked for.
  std::map<std::pair<uint32_t, uint32_t>, std::deque<PendingFence>> context_fences_;
  std::vector<Retired> retired_;
  FenceCallback fence_callback_;
  std::vector<uint32_t> submit_words_;  // SUBMIT_3D copy, 4-byte aligned for the library
  bool delivering_ = false;
  bool dirty_ = false;  // something was created since init or the last reset
};

}  // namespace vgpu

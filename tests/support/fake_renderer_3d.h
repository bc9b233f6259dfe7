// A Renderer3D for device tests that need what virglrenderer cannot do without a GPU: export dma-bufs.
// 2D resources are soft2d's (so readback works as with a real renderer); contexts and blobs are bookkeeping;
// "dma-bufs" are memfds of the resource's size, which a test can tell apart by inode. Fences signal at the
// next poll(), or from inside create_fence() (signal_in_create_fence, as a renderer whose work is already
// done may). poll_fd() is -1 unless a test sets `poll_fd_value`. Everything else answers as a renderer that
// has nothing to do.
//
//   FakeRenderer3D r;
//   GpuHarness h(GpuDeviceConfig{.dmabuf_scanout = true}, features, 64 << 20, Renderers::with_3d(borrow(r)));
//   r.exportable = false;   // the driver cannot export: the device must fall back to readback
#pragma once

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "renderer/renderer_2d.h"
#include "renderer/renderer_3d.h"
#include "renderer/soft2d/soft2d_renderer.h"

namespace vgpu::test {

class FakeRenderer3D final : public Renderer2D, public Renderer3D {
 public:
  // What export_image reports about its buffers (a padded stride, a tiled modifier, GL's row order), so that
  // tests see the renderer's layout pass through rather than one the device made up.
  static constexpr uint32_t kStridePadding = 64;
  static constexpr uint64_t kModifier = 0x0100000000000001ULL;  // I915_FORMAT_MOD_X_TILED

  // --- Renderer2D
  Result<void, RendererError> create_resource(uint32_t id, PixelFormat format, uint32_t width,
                                              uint32_t height) override {
    return soft2d_.create_resource(id, format, width, height);
  }
  void destroy_resource(uint32_t id) override {
    soft2d_.destroy_resource(id);
    blobs_.erase(id);
  }
  Result<void, RendererError> transfer_to_host_2d(uint32_t id, const Rect& rect, uint64_t offset,
                                                  const GuestScatterList& backing) override {
    return soft2d_.transfer_to_host_2d(id, rect, offset, backing);
  }
  [[nodiscard]] std::optional<ImageView> image(uint32_t id) const override { return soft2d_.image(id); }
  void reset() override {
    soft2d_.reset();
    blobs_.clear();
    contexts_.clear();
  }

  // --- Renderer3D
  [[nodiscard]] const std::vector<CapsetInfo>& capsets() const override { return capset_infos; }
  [[nodiscard]] Result<std::vector<std::byte>, Renderer3DError> capset(uint32_t, uint32_t) const override {
    return fail(Renderer3DError::InvalidArgument);
  }
  Result<void, Renderer3DError> create_context(uint32_t ctx_id, uint32_t, std::string_view) override {
    if (ctx_id == 0 || !contexts_.insert(ctx_id).second) return fail(Renderer3DError::InvalidContext);
    return {};
  }
  void destroy_context(uint32_t ctx_id) override { contexts_.erase(ctx_id); }
  // Capsets a test can add to (VENUS, to test the per-guest cap on Venus contexts).
  std::vector<CapsetInfo> capset_infos{{kCapsetVirgl2, 2, 1384}};
  Result<void, Renderer3DError> attach_resource(uint32_t, uint32_t) override { return {}; }
  void detach_resource(uint32_t, uint32_t) override {}
  Result<void, Renderer3DError> create_resource_3d(uint32_t, const Resource3DArgs&) override {
    return fail(Renderer3DError::InvalidArgument);
  }
  Result<void, Renderer3DError> attach_backing(uint32_t, const GuestMemory&, const GuestScatterList&) override {
    return {};
  }
  void detach_backing(uint32_t) override {}
  void release_backings() override {}
  void refresh_backings() override {}
  Result<void, Renderer3DError> create_blob(uint32_t resource_id, const BlobArgs& args, const GuestMemory*,
                                            const GuestScatterList*) override {
    if (resource_id == 0 || !blobs_.emplace(resource_id, args).second) return fail(Renderer3DError::InvalidArgument);
    return {};
  }
  // Every byte of a host blob reads as kBlobByte.
  static constexpr std::byte kBlobByte{0xb1};
  Result<void, Renderer3DError> read_blob(uint32_t resource_id, uint64_t, uint32_t, const Rect& rect,
                                          std::span<std::byte> dst, uint32_t dst_stride) override {
    if (!blobs_.contains(resource_id)) return fail(Renderer3DError::InvalidResource);
    ++blob_reads;
    for (uint32_t y = 0; y < rect.height; ++y) {
      std::fill_n(dst.begin() + static_cast<ptrdiff_t>(size_t{y} * dst_stride), size_t{rect.width} * 4, kBlobByte);
    }
    return {};
  }
  Result<ExportedDmabuf, Renderer3DError> export_image(uint32_t resource_id) override {
    ++export_calls;
    const auto view = soft2d_.image(resource_id);
    if (!view) return fail(Renderer3DError::InvalidResource);
    if (!exportable) return fail(Renderer3DError::Failed);
    const uint32_t stride = view->width * 4 + kStridePadding;
    ExportedDmabuf out{memfd(uint64_t{stride} * view->height), {}};
    out.image = DmabufImage{.fd = out.fd.get(),
                            .width = view->width,
                            .height = view->height,
                            .stride = stride,
                            .offset = 0,
                            .fourcc = drm_fourcc_of(view->format),
                            .modifier = kModifier,
                            .y0_top = true};
    exported_inodes[resource_id] = inode_of(out.fd.get());
    return out;
  }
  Result<UniqueFd, Renderer3DError> export_blob(uint32_t resource_id) override {
    ++export_calls;
    const auto it = blobs_.find(resource_id);
    if (it == blobs_.end()) return fail(Renderer3DError::InvalidResource);
    if (!exportable) return fail(Renderer3DError::Failed);
    UniqueFd fd = memfd(it->second.size);
    exported_inodes[resource_id] = inode_of(fd.get());
    return fd;
  }
  [[nodiscard]] bool maps_blobs() const override { return mappable; }
  // A memfd of the blob's size plus kMapHeader bytes in front (as lavapipe's Vulkan memory), at that offset.
  static constexpr uint64_t kMapHeader = 4096;
  static constexpr uint32_t kMapInfo = 0x3;  // VIRTIO_GPU_MAP_CACHE_WC
  Result<BlobMapping, Renderer3DError> blob_mapping(uint32_t resource_id) override {
    const auto it = blobs_.find(resource_id);
    if (it == blobs_.end()) return fail(Renderer3DError::InvalidResource);
    if ((it->second.blob_flags & 1u) == 0) return fail(Renderer3DError::InvalidArgument);  // USE_MAPPABLE
    if (!mappable) return fail(Renderer3DError::Failed);
    BlobMapping out{memfd(kMapHeader + it->second.size), kMapHeader, it->second.size, kMapInfo};
    mapped_inodes[resource_id] = inode_of(out.fd.get());
    return out;
  }
  void flush_for_display() override { ++display_flushes; }
  Result<void, Renderer3DError> transfer_to_host_3d(uint32_t, uint32_t, const Transfer3D&, const GuestMemory&,
                                                    const GuestScatterList&) override {
    return fail(Renderer3DError::Failed);
  }
  Result<void, Renderer3DError> transfer_from_host_3d(uint32_t, uint32_t, const Transfer3D&, const GuestMemory&,
                                                      const GuestScatterList&) override {
    return fail(Renderer3DError::Failed);
  }
  Result<void, Renderer3DError> submit_3d(uint32_t ctx_id, std::span<const std::byte>) override {
    if (!contexts_.contains(ctx_id)) return fail(Renderer3DError::InvalidContext);
    return {};
  }
  void set_fence_callback(FenceCallback callback) override { fence_callback_ = std::move(callback); }
  Result<void, Renderer3DError> create_fence(FenceRing ring, uint64_t fence_id) override {
    fences_.emplace_back(ring, fence_id);
    if (signal_in_create_fence) poll();
    return {};
  }
  [[nodiscard]] int poll_fd() const override { return poll_fd_value; }
  [[nodiscard]] int context_poll_fd(uint32_t) const override { return -1; }
  void poll() override {
    ++polls;
    auto due = std::exchange(fences_, {});
    for (const auto& [ring, id] : due) {
      if (fence_callback_) fence_callback_(ring, id);
    }
  }

  static ino_t inode_of(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
  }

  // Test controls and observations.
  bool exportable = true;
  bool mappable = true;
  bool signal_in_create_fence = false;
  int poll_fd_value = -1;
  int polls = 0;
  std::map<uint32_t, ino_t> mapped_inodes;  // the latest blob_mapping of each resource
  int export_calls = 0;
  int display_flushes = 0;
  int blob_reads = 0;
  std::map<uint32_t, ino_t> exported_inodes;  // the latest export of each resource

 private:
  static UniqueFd memfd(uint64_t size) {
    UniqueFd fd(::memfd_create("fake-dmabuf", MFD_CLOEXEC));
    if (fd && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) fd.reset();
    return fd;
  }

  Soft2DRenderer soft2d_;
  std::set<uint32_t> contexts_;
  std::map<uint32_t, BlobArgs> blobs_;
  FenceCallback fence_callback_;
  std::vector<std::pair<FenceRing, uint64_t>> fences_;
};

}  // namespace vgpu::test

// Resources (2D and 3D) and their 2D transfers and readback, contexts, dma-buf export, 3D transfers and
// submission. Library init and reset, backings and blobs, and fences are in their own files (listed in
// virgl_renderer.h).
#include "renderer/virgl/virgl_renderer.h"

// GL through libepoxy (as virglrenderer itself).
#include <epoxy/gl.h>
#include <linux/virtio_gpu.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>

#include "common/checked.h"
#include "common/log.h"
#include "renderer/virgl/virgl_compat.h"
#include "renderer/virgl/virgl_internal.h"

namespace vgpu {

using virgl_internal::box_of;
using virgl_internal::from_errno;
using virgl_internal::resolve_iovs;

namespace {

// gallium's pipe_texture_target values we read back for scanout.
constexpr uint32_t kPipeTexture2D = 2;
constexpr uint32_t kPipeTextureRect = 5;
// VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP (= VIRGL_RESOURCE_Y_0_TOP): QEMU creates 2D resources with it.
constexpr uint32_t kFlagY0Top = 1;
// The largest block of any format virglrenderer knows (R64G64B64A64_FLOAT): bounds a transfer's bytes.
constexpr uint64_t kMaxBlockBytes = 32;
// virglrenderer sums iovec lengths into 32-bit integers in its bounds checks: never hand it more.
constexpr uint64_t kMaxIovBytes = std::numeric_limits<uint32_t>::max();
// virtio_gpu_ctx_create.debug_name is 64 bytes.
constexpr size_t kMaxDebugName = 64;

RendererError to_2d(Renderer3DError e) {
  switch (e) {
    case Renderer3DError::OutOfMemory: return RendererError::OutOfMemory;
    case Renderer3DError::InvalidResource: return RendererError::InvalidResource;
    case Renderer3DError::GuestMemory: return RendererError::GuestMemory;
    case Renderer3DError::InvalidContext:
    case Renderer3DError::InvalidArgument:
    case Renderer3DError::Failed: return RendererError::InvalidArgument;
  }
  return RendererError::InvalidArgument;
}

uint64_t minify(uint32_t size, uint32_t level) {
  return level >= 32 ? 1 : std::max<uint64_t>(1, uint64_t{size} >> level);
}

// An upper bound of the backing bytes a transfer touches from its offset: virglrenderer's own formula
// (vrend_transfer_size: (d-1) layers, (h-1) rows, one row of blocks) with the largest block size, and its
// default strides for that level when the guest passes 0. Saturates instead of wrapping.
uint64_t transfer_bound(const Resource3DArgs& args, const Transfer3D& t) {
  constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();
  const uint64_t w = std::max<uint32_t>(t.box.w, 1);
  const uint64_t h = std::max<uint32_t>(t.box.h, 1);
  const uint64_t d = std::max<uint32_t>(t.box.d, 1);
  const uint64_t stride = t.stride != 0 ? t.stride : minify(args.width, t.level) * kMaxBlockBytes;
  const auto layer =
      t.layer_stride != 0 ? std::optional<uint64_t>(t.layer_stride) : checked_mul(stride, minify(args.height, t.level));
  if (!layer) return kSaturated;
  const auto layers = checked_mul(d - 1, *layer);
  const auto rows = checked_mul(h - 1, stride);
  const auto row = checked_mul(w, kMaxBlockBytes);
  if (!layers || !rows || !row) return kSaturated;
  const auto sum = checked_add(*layers, *rows);
  if (!sum) return kSaturated;
  return checked_add(*sum, *row).value_or(kSaturated);
}

}  // namespace

VirglRenderer::Resource* VirglRenderer::find(uint32_t resource_id) {
  auto it = resources_.find(resource_id);
  return it == resources_.end() ? nullptr : &it->second;
}

const VirglRenderer::Resource* VirglRenderer::find(uint32_t resource_id) const {
  auto it = resources_.find(resource_id);
  return it == resources_.end() ? nullptr : &it->second;
}

// --- Renderer2D ------------------------------------------------------------------------------------------

Result<void, RendererError> VirglRenderer::create_resource(uint32_t id, PixelFormat format, uint32_t width,
                                                           uint32_t height) {
  if (width == 0 || height == 0) return fail(RendererError::InvalidArgument);
  // The eight 2D formats have the same numbers in virtio-gpu and virgl (virgl_formats).
  const Resource3DArgs args =
      texture_2d_args(static_cast<uint32_t>(format), VIRGL_RES_BIND_RENDER_TARGET, width, height, kFlagY0Top);
  if (auto r = create_resource_3d(id, args); !r) return fail(to_2d(r.error()));
  return {};
}

void VirglRenderer::destroy_resource(uint32_t id) {
  if (find(id) == nullptr) return;
  detach_backing(id);                 // enters the host context, which the unref needs too
  virgl_renderer_resource_unref(id);  // also detaches it from every context
  resources_.erase(id);
}

Result<void, RendererError> VirglRenderer::transfer_to_host_2d(uint32_t id, const Rect& rect, uint64_t offset,
                                                               const GuestScatterList& backing) {
  const Resource* res = find(id);
  if (res == nullptr) return fail(RendererError::InvalidResource);
  const Resource3DArgs& a = res->args;
  if (!pixel_format_from_virtio(a.format) || !rect_fits(rect, a.width, a.height)) {
    return fail(RendererError::InvalidArgument);
  }
  if (rect.empty()) return {};
  // Same rule as soft2d: row r of the rect is at offset + r * (width * 4). No wrap: each factor < 2^32.
  const uint64_t stride = uint64_t{a.width} * kBytesPerPixel;
  const uint64_t row_bytes = uint64_t{rect.width} * kBytesPerPixel;
  const uint64_t extent = uint64_t{rect.height - 1} * stride + row_bytes;
  if (!range_fits(offset, extent, backing.size())) return fail(RendererError::InvalidArgument);

  // Copy first (CONTRIBUTING.md practice 4), then upload from the host copy: the library never sees guest memory here.
  std::vector<std::byte> rows;
  try {
    rows.resize(static_cast<size_t>(row_bytes * rect.height));
  } catch (const std::bad_alloc&) {
    return fail(RendererError::OutOfMemory);
  }
  for (uint32_t r = 0; r < rect.height; ++r) {
    const auto dst = std::span(rows).subspan(static_cast<size_t>(r * row_bytes), static_cast<size_t>(row_bytes));
    if (!backing.read(offset + r * stride, dst)) return fail(RendererError::GuestMemory);
  }
  virgl_box box = box_of(rect);
  iovec iov{.iov_base = rows.data(), .iov_len = rows.size()};
  enter_host_context();
  const int ret = virgl_renderer_transfer_write_iov(id, 0, 0, static_cast<uint32_t>(row_bytes), 0, &box, 0, &iov, 1);
  if (ret != 0) return fail(to_2d(from_errno(ret, Renderer3DError::InvalidArgument)));
  return {};
}

std::optional<ImageView> VirglRenderer::image(uint32_t id) const {
  const Resource* res = find(id);
  if (res == nullptr) return std::nullopt;
  const Resource3DArgs& a = res->args;
  const auto format = pixel_format_from_virtio(a.format);
  if (!format || (a.target != kPipeTexture2D && a.target != kPipeTextureRect) || a.nr_samples > 1) {
    return std::nullopt;
  }
  const uint64_t stride = uint64_t{a.width} * kBytesPerPixel;  // < 2^34: no wrap
  const auto bytes = checked_mul<uint64_t>(stride, a.height);
  if (stride > std::numeric_limits<uint32_t>::max() || !bytes || *bytes > kMaxIovBytes) return std::nullopt;
  try {
    if (!res->shadow || res->shadow.use_count() > 1) res->shadow = std::make_shared<std::vector<std::byte>>();
    res->shadow->resize(static_cast<size_t>(*bytes));
  } catch (const std::bad_alloc&) {
    return std::nullopt;
  }
  virgl_box box{
      .x = 0, .y = 0, .z = 0, .w = static_cast<int32_t>(a.width), .h = static_cast<int32_t>(a.height), .d = 1};
  iovec iov{.iov_base = res->shadow->data(), .iov_len = res->shadow->size()};
  enter_host_context();
  if (virgl_renderer_transfer_read_iov(id, 0, 0, static_cast<uint32_t>(stride), 0, &box, 0, &iov, 1) != 0) {
    return std::nullopt;
  }
  return ImageView{.data = res->shadow->data(),
                   .width = a.width,
                   .height = a.height,
                   .stride = static_cast<uint32_t>(stride),
                   .format = *format,
                   .lease = res->shadow};
}

// --- Renderer3D: contexts ----------------------------------------------------------------------------------

Result<void, Renderer3DError> VirglRenderer::create_context(uint32_t ctx_id, uint32_t context_init,
                                                            std::string_view debug_name) {
  if (ctx_id == 0 || contexts_.contains(ctx_id)) return fail(Renderer3DError::InvalidContext);
  if ((context_init & ~uint32_t{VIRGL_RENDERER_CONTEXT_FLAG_CAPSET_ID_MASK}) != 0) {
    return fail(Renderer3DError::InvalidArgument);
  }
  uint32_t capset_id = context_init & VIRGL_RENDERER_CONTEXT_FLAG_CAPSET_ID_MASK;
  if (capset_id == 0) capset_id = kCapsetVirgl2;  // CTX_CREATE without CONTEXT_INIT: a virgl context
  const bool offered =
      std::any_of(capsets_.begin(), capsets_.end(), [&](const CapsetInfo& c) { return c.id == capset_id; });
  if (!offered) return fail(Renderer3DError::InvalidArgument);

  try {
    const std::string name(debug_name.substr(0, kMaxDebugName));  // NUL-terminated copy for the library
    contexts_.reserve(contexts_.size() + 1);
    enter_host_context();
    const int ret =
        virgl_renderer_context_create_with_flags(ctx_id, capset_id, static_cast<uint32_t>(name.size()), name.c_str());
    // The new context's GL context is current now, unknown to the library's record: put ctx0 back at once.
    enter_host_context();
    if (ret != 0) return fail(from_errno(ret, Renderer3DError::Failed));
    contexts_.emplace(ctx_id, capset_id);
    dirty_ = true;
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  return {};
}

void VirglRenderer::destroy_context(uint32_t ctx_id) {
  if (!contexts_.contains(ctx_id)) return;
  enter_host_context();
  virgl_renderer_context_destroy(ctx_id);
  contexts_.erase(ctx_id);
  // The library freed the context's pending fences without retiring them (see renderer_3d.h).
  std::erase_if(context_fences_, [&](const auto& entry) { return entry.first.first == ctx_id; });
}

Result<void, Renderer3DError> VirglRenderer::attach_resource(uint32_t ctx_id, uint32_t resource_id) {
  if (!contexts_.contains(ctx_id)) return fail(Renderer3DError::InvalidContext);
  if (find(resource_id) == nullptr) return fail(Renderer3DError::InvalidResource);
  enter_host_context();
  virgl_renderer_ctx_attach_resource(static_cast<int>(ctx_id), static_cast<int>(resource_id));
  return {};
}

void VirglRenderer::detach_resource(uint32_t ctx_id, uint32_t resource_id) {
  if (!contexts_.contains(ctx_id) || find(resource_id) == nullptr) return;
  enter_host_context();
  virgl_renderer_ctx_detach_resource(static_cast<int>(ctx_id), static_cast<int>(resource_id));
}

// --- Renderer3D: 3D resources (backings and blobs: virgl_backings.cc) --------------------------------------

Result<void, Renderer3DError> VirglRenderer::create_resource_3d(uint32_t resource_id, const Resource3DArgs& args) {
  if (resource_id == 0 || find(resource_id) != nullptr) return fail(Renderer3DError::InvalidArgument);
  try {
    resources_.reserve(resources_.size() + 1);
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  virgl_renderer_resource_create_args a{.handle = resource_id,
                                        .target = args.target,
                                        .format = args.format,
                                        .bind = args.bind,
                                        .width = args.width,
                                        .height = args.height,
                                        .depth = args.depth,
                                        .array_size = args.array_size,
                                        .last_level = args.last_level,
                                        .nr_samples = args.nr_samples,
                                        .flags = args.flags};
  // The library validates target, format, bind and sizes against what the GL driver can do.
  enter_host_context();
  const int ret = virgl_renderer_resource_create(&a, nullptr, 0);
  if (ret != 0) return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  resources_.emplace(resource_id, Resource{.args = args});
  dirty_ = true;
  return {};
}

// --- Renderer3D: dma-buf export for scanout ------------------------------------------------------------------

Result<ExportedDmabuf, Renderer3DError> VirglRenderer::export_image(uint32_t resource_id) {
  const Resource* res = find(resource_id);
  if (res == nullptr || res->blob) return fail(Renderer3DError::InvalidResource);
  enter_host_context();
  virgl_renderer_resource_info info{};
  if (virgl_renderer_resource_get_info(static_cast<int>(resource_id), &info) != 0 || info.tex_id == 0) {
    return fail(Renderer3DError::Failed);  // not a texture (a buffer, or a resource the library never made)
  }
  int fd = -1;
  int stride = 0;
  int offset = 0;
  // EGL_MESA_image_dma_buf_export on the texture; fails on drivers without it (llvmpipe without udmabuf).
  if (virgl_renderer_get_fd_for_texture2(info.tex_id, &fd, &stride, &offset) != 0 || fd < 0) {
    if (fd >= 0) ::close(fd);
    return fail(Renderer3DError::Failed);
  }
  ExportedDmabuf out;
  out.fd.reset(fd);
  if (stride <= 0 || offset < 0 || info.drm_fourcc == 0) return fail(Renderer3DError::Failed);
  out.image = DmabufImage{.fd = out.fd.get(),
                          .width = info.width,
                          .height = info.height,
                          .stride = static_cast<uint32_t>(stride),
                          .offset = static_cast<uint32_t>(offset),
                          .fourcc = static_cast<uint32_t>(info.drm_fourcc),
                          .modifier = virgl_compat::resource_modifier(resource_id, kDrmModInvalid),
                          .y0_top = (info.flags & VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP) != 0};
  return out;
}

Result<UniqueFd, Renderer3DError> VirglRenderer::export_blob(uint32_t resource_id) {
  const Resource* res = find(resource_id);
  if (res == nullptr || !res->blob) return fail(Renderer3DError::InvalidResource);
  enter_host_context();
  uint32_t fd_type = 0;
  int fd = -1;
  if (virgl_renderer_resource_export_blob(resource_id, &fd_type, &fd) != 0 || fd < 0) {
    return fail(Renderer3DError::Failed);
  }
  UniqueFd out(fd);
  // OPAQUE fds are Vulkan memory, SHM ones a memfd: neither is a dma-buf a display can import.
  if (fd_type != VIRGL_RENDERER_BLOB_FD_TYPE_DMABUF) return fail(Renderer3DError::Failed);
  return out;
}

void VirglRenderer::flush_for_display() {
  // The display imports the buffer in another process's GL context: commands still queued in ours must reach
  // the driver first (QEMU's backend does the same before DMABUF_UPDATE).
  enter_host_context();
  glFlush();
}

// --- Renderer3D: transfers and submission ------------------------------------------------------------------

Result<void, Renderer3DError> VirglRenderer::transfer_3d(uint32_t ctx_id, uint32_t resource_id, const Transfer3D& t,
                                                         const GuestMemory& mem, const GuestScatterList& backing,
                                                         bool to_host) {
  if (ctx_id != 0 && !contexts_.contains(ctx_id)) return fail(Renderer3DError::InvalidContext);
  const Resource* res = find(resource_id);
  if (res == nullptr) return fail(Renderer3DError::InvalidResource);
  // The library keeps the box in ints: refuse what would not survive the cast. It checks the geometry itself.
  constexpr uint32_t kIntMax = std::numeric_limits<int32_t>::max();
  const Box3D& b = t.box;
  if (b.x > kIntMax || b.y > kIntMax || b.z > kIntMax || b.w > kIntMax || b.h > kIntMax || b.d > kIntMax ||
      t.level > res->args.last_level || t.offset >= backing.size()) {
    return fail(Renderer3DError::InvalidArgument);
  }
  // The views start at `offset` (passed to the library as 0) and end at the transfer's upper bound, so a small
  // transfer into a large backing resolves a few pages, and the library's 32-bit size sums cannot wrap.
  const uint64_t len = std::min({transfer_bound(res->args, t), backing.size() - t.offset, kMaxIovBytes});
  std::vector<iovec> iovs;
  std::vector<RegionPin> pins;  // the mappings stay for the call even if they leave the table meanwhile
  if (auto r = resolve_iovs(mem, backing, t.offset, len, iovs, pins); !r) return r;
  // Never hand the library an empty list: it would fall back to the attached backing.
  if (iovs.empty()) return fail(Renderer3DError::InvalidArgument);

  virgl_box box{.x = static_cast<int32_t>(b.x),
                .y = static_cast<int32_t>(b.y),
                .z = static_cast<int32_t>(b.z),
                .w = static_cast<int32_t>(b.w),
                .h = static_cast<int32_t>(b.h),
                .d = static_cast<int32_t>(b.d)};
  enter_host_context();
  const int ret = to_host ? virgl_renderer_transfer_write_iov(resource_id, ctx_id, static_cast<int>(t.level), t.stride,
                                                              t.layer_stride, &box, 0, iovs.data(),
                                                              static_cast<unsigned>(iovs.size()))
                          : virgl_renderer_transfer_read_iov(resource_id, ctx_id, t.level, t.stride, t.layer_stride,
                                                             &box, 0, iovs.data(), static_cast<int>(iovs.size()));
  if (ret != 0) return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  return {};
}

Result<void, Renderer3DError> VirglRenderer::transfer_to_host_3d(uint32_t ctx_id, uint32_t resource_id,
                                                                 const Transfer3D& t, const GuestMemory& mem,
                                                                 const GuestScatterList& backing) {
  return transfer_3d(ctx_id, resource_id, t, mem, backing, /*to_host=*/true);
}

Result<void, Renderer3DError> VirglRenderer::transfer_from_host_3d(uint32_t ctx_id, uint32_t resource_id,
                                                                   const Transfer3D& t, const GuestMemory& mem,
                                                                   const GuestScatterList& backing) {
  return transfer_3d(ctx_id, resource_id, t, mem, backing, /*to_host=*/false);
}

Result<void, Renderer3DError> VirglRenderer::submit_3d(uint32_t ctx_id, std::span<const std::byte> commands) {
  if (!contexts_.contains(ctx_id)) return fail(Renderer3DError::InvalidContext);
  if (commands.size() % sizeof(uint32_t) != 0 || commands.size() > options_.max_submit_bytes) {
    return fail(Renderer3DError::InvalidArgument);
  }
  if (commands.empty()) return {};
  try {
    submit_words_.resize(commands.size() / sizeof(uint32_t));
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  std::memcpy(submit_words_.data(), commands.data(), commands.size());
  // A virgl context that rejects a stream marks itself broken and refuses later streams; others are unaffected.
  enter_host_context();
  const int ret =
      virgl_renderer_submit_cmd(submit_words_.data(), static_cast<int>(ctx_id), static_cast<int>(submit_words_.size()));
  if (ret != 0) {
    VGPU_LOG_DEBUG("virgl: context {} rejected a {}-byte command stream ({})", ctx_id, commands.size(), ret);
    return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  }
  return {};
}

}  // namespace vgpu

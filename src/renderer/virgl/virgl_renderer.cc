#include "renderer/virgl/virgl_renderer.h"

// EGL through libepoxy (as virglrenderer itself), without X11's macros.
#define EGL_NO_X11 1
#include <epoxy/egl.h>
#include <epoxy/gl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/virtio_gpu.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>

#include "common/checked.h"
#include "common/leak_check.h"
#include "common/log.h"
#include "renderer/mapped_file.h"
#include "renderer/virgl/virgl_compat.h"

namespace vgpu {

namespace {

bool has_extension(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const size_t end = std::min(list.find(' '), list.size());
    if (list.substr(0, end) == name) return true;
    list.remove_prefix(std::min(end + 1, list.size()));
  }
  return false;
}

// What makes surfaceless EGL impossible, or empty. virglrenderer 0.10.4 does not fail cleanly there: without
// EGL_EXT_platform_base (e.g. glvnd finding no vendor library) it falls back to eglGetDisplay on a GBM device
// it does not have, and crashes.
std::string surfaceless_egl_problem() {
  const char* client = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS);
  if (client == nullptr) {
    return "EGL has no vendor library (install libegl-mesa0 for Mesa, or point __EGL_VENDOR_LIBRARY_FILENAMES "
           "at a vendor's json)";
  }
  for (const char* needed : {"EGL_EXT_platform_base", "EGL_MESA_platform_surfaceless"}) {
    if (!has_extension(client, needed)) return fmt::format("EGL lacks {} (needed for surfaceless rendering)", needed);
  }
  return {};
}

// virgl_renderer_init with the driver's leaks ignored.
int init_library(void* cookie, int flags, virgl_renderer_callbacks* callbacks) {
  // Mesa's EGL (LLVM's one-time set-up) leaks a little on every init.
  [[maybe_unused]] LeakCheckPaused driver_allocates;
  return virgl_renderer_init(cookie, flags, callbacks);
}

// virglrenderer's global state allows one client per process (see the header).
std::atomic<bool> g_instance_alive{false};

// gallium's pipe_texture_target values we read back for scanout.
constexpr uint32_t kPipeTexture2D = 2;
constexpr uint32_t kPipeTextureRect = 5;
// VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP (= VIRGL_RESOURCE_Y_0_TOP): QEMU creates 2D resources with it.
constexpr uint32_t kFlagY0Top = 1;
// The largest block of any format virglrenderer knows (R64G64B64A64_FLOAT): bounds a transfer's bytes.
constexpr uint64_t kMaxBlockBytes = 32;
// virglrenderer sums iovec lengths into 32-bit integers in its bounds checks: never hand it more.
constexpr uint64_t kMaxIovBytes = std::numeric_limits<uint32_t>::max();
// A capset larger than this is a library bug; fill_caps also gets this much slack past max_size, because
// virglrenderer clears its whole capability union, not max_size bytes.
constexpr uint32_t kMaxCapsetBytes = 64 * 1024;
constexpr uint32_t kCapsetFillSlack = 16 * 1024;
// virtio_gpu_ctx_create.debug_name is 64 bytes.
constexpr size_t kMaxDebugName = 64;

Renderer3DError from_errno(int ret, Renderer3DError otherwise) {
  const int e = ret < 0 ? -ret : ret;
  return e == ENOMEM ? Renderer3DError::OutOfMemory : otherwise;
}

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

// virglrenderer's own messages (GL version, context errors) go to our log at debug level.
void log_from_virgl(const char* fmt, va_list ap) {
  try {
    char line[1024];
    const int n = std::vsnprintf(line, sizeof(line), fmt, ap);
    if (n <= 0) return;
    std::string_view text(line, std::min<size_t>(static_cast<size_t>(n), sizeof(line) - 1));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    if (!text.empty()) VGPU_LOG_DEBUG("virglrenderer: {}", text);
  } catch (...) {  // nothing may cross back into C
  }
}

std::string describe_flags(int flags) {
  std::string out;
  auto add = [&](int bit, const char* name) {
    if ((flags & bit) == 0) return;
    if (!out.empty()) out += '|';
    out += name;
  };
  add(VIRGL_RENDERER_USE_EGL, "USE_EGL");
  add(VIRGL_RENDERER_USE_SURFACELESS, "USE_SURFACELESS");
  add(VIRGL_RENDERER_THREAD_SYNC, "THREAD_SYNC");
  add(VIRGL_RENDERER_VENUS, "VENUS");
  add(VIRGL_RENDERER_RENDER_SERVER, "RENDER_SERVER");
  return out;
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

// The library keeps boxes in ints.
bool fits_int(const Rect& r) {
  constexpr uint32_t kIntMax = std::numeric_limits<int32_t>::max();
  return r.x <= kIntMax && r.y <= kIntMax && r.width <= kIntMax && r.height <= kIntMax;
}

// A 2D rectangle as a one-deep box (callers check fits_int, or sizes already below 2^31).
virgl_box box_of(const Rect& r) {
  return virgl_box{.x = static_cast<int32_t>(r.x),
                   .y = static_cast<int32_t>(r.y),
                   .z = 0,
                   .w = static_cast<int32_t>(r.width),
                   .h = static_cast<int32_t>(r.height),
                   .d = 1};
}

// Host views of bytes [offset, offset + len) of `list`, resolved now. Adjacent views are merged.
Result<void, Renderer3DError> resolve_iovs(const GuestMemory& mem, const GuestScatterList& list, uint64_t offset,
                                           uint64_t len, std::vector<iovec>& out) {
  out.clear();
  if (!range_fits(offset, len, list.size())) return fail(Renderer3DError::InvalidArgument);
  const uint64_t end = offset + len;  // no wrap: both are <= list.size()
  uint64_t start = 0;                 // offset of the current entry in the list (list.size() did not wrap)
  try {
    for (const ScatterEntry& e : list.entries()) {
      if (start >= end) break;
      const uint64_t entry_end = start + e.length;
      if (entry_end > offset && e.length > 0) {
        const uint64_t from = std::max(start, offset);
        const uint64_t to = std::min(entry_end, end);
        auto views = mem.slices(GuestAddress{raw(e.addr) + (from - start)}, to - from);
        if (!views) return fail(Renderer3DError::GuestMemory);
        for (const HostSlice& s : *views) {
          if (!out.empty() && static_cast<std::byte*>(out.back().iov_base) + out.back().iov_len == s.data) {
            out.back().iov_len += s.size;
          } else {
            out.push_back(iovec{.iov_base = s.data, .iov_len = s.size});
          }
        }
      }
      start = entry_end;
    }
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  if (out.size() > static_cast<size_t>(INT_MAX)) return fail(Renderer3DError::InvalidArgument);
  return {};
}

}  // namespace

// The C callbacks. virglrenderer calls them inside its own calls on our thread (we never pass
// ASYNC_FENCE_CB); they only record, so nothing of ours runs inside the library and no exception crosses it.
struct VirglRenderer::Callbacks {
  static void write_fence(void* cookie, uint32_t fence_id) noexcept {
    // Capacity for every pending fence was reserved in create_fence(): this push_back does not allocate.
    auto* self = static_cast<VirglRenderer*>(cookie);
    if (self->retired_.size() < self->retired_.capacity()) {
      self->retired_.push_back(Retired{.global = true, .ctx_id = 0, .ring_idx = 0, .fence_id = fence_id});
    } else {
      VGPU_LOG_ERROR("virgl: fence {} retired with no room to record it", fence_id);
    }
  }
  static void write_context_fence(void* cookie, uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id) noexcept {
    auto* self = static_cast<VirglRenderer*>(cookie);
    if (self->retired_.size() < self->retired_.capacity()) {
      self->retired_.push_back(Retired{.global = false, .ctx_id = ctx_id, .ring_idx = ring_idx, .fence_id = fence_id});
    } else {
      VGPU_LOG_ERROR("virgl: fence {} of context {} ring {} retired with no room to record it", fence_id, ctx_id,
                     ring_idx);
    }
  }
  // Only set with a render node: the library takes ownership of a new fd on each call.
  static int get_drm_fd(void* cookie) noexcept {
    auto* self = static_cast<VirglRenderer*>(cookie);
    return ::open(self->options_.render_node.c_str(), O_RDWR | O_CLOEXEC);
  }
};

Result<std::unique_ptr<VirglRenderer>, std::string> VirglRenderer::create(const VirglOptions& options) {
  bool expected = false;
  if (!g_instance_alive.compare_exchange_strong(expected, true)) {
    return fail(std::string("virglrenderer has process-wide state and another VirglRenderer is alive"));
  }
  std::unique_ptr<VirglRenderer> self;
  try {
    self.reset(new VirglRenderer(options));  // from here on its destructor clears g_instance_alive
  } catch (const std::bad_alloc&) {
    g_instance_alive.store(false);
    return fail(std::string("out of memory"));
  }
  if (auto ok = self->init(); !ok) return fail(ok.error());
  return self;
}

VirglRenderer::VirglRenderer(const VirglOptions& options)
    : options_(options), callbacks_(std::make_unique<virgl_renderer_callbacks>()) {}

VirglRenderer::~VirglRenderer() {
  if (initialised_) {
    // The library drops resources without detaching them, so it reads no backing here.
    virgl_renderer_cleanup(this);
  }
  virgl_set_debug_callback(nullptr);
  g_instance_alive.store(false);
}

Result<void, std::string> VirglRenderer::init() {
  int flags = VIRGL_RENDERER_USE_EGL;
  if (options_.render_node.empty()) {
    flags |= VIRGL_RENDERER_USE_SURFACELESS;
    if (const std::string problem = surfaceless_egl_problem(); !problem.empty()) {
      return fail(fmt::format("3D needs EGL: {}", problem));
    }
  } else {
    const int fd = ::open(options_.render_node.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      return fail(fmt::format("cannot open render node {}: {}", options_.render_node, std::strerror(errno)));
    }
    ::close(fd);
  }
  if (options_.thread_sync) flags |= VIRGL_RENDERER_THREAD_SYNC;

  virgl_set_debug_callback(log_from_virgl);
  *callbacks_ = virgl_renderer_callbacks{};
  callbacks_->write_fence = Callbacks::write_fence;
  if (!options_.render_node.empty()) callbacks_->get_drm_fd = Callbacks::get_drm_fd;
  virgl_compat::set_context_fence_callback(*callbacks_, Callbacks::write_context_fence);

  // The cookie must be non-null: virglrenderer's init fails (-1, silently) with a null one.
  int ret = -1;
  if (options_.venus) {
    const int venus_flags = flags | VIRGL_RENDERER_VENUS | VIRGL_RENDERER_RENDER_SERVER;
    ret = init_library(this, venus_flags, callbacks_.get());
    if (ret == 0 && !render_server_answers()) {
      // Init succeeds even when the server binary cannot run (the fork works, the exec fails), and the
      // Venus capset is then still filled in-process: only a context shows whether Venus really works.
      virgl_renderer_cleanup(this);
      ret = -1;
    }
    if (ret == 0) {
      flags = venus_flags;
    } else {
      VGPU_LOG_WARN(
          "3D: Venus did not start with {}: is virgl_render_server (package virgl-server) installed and "
          "runnable? Going on with virgl only",
          describe_flags(venus_flags));
    }
  }
  if (ret != 0) ret = init_library(this, flags, callbacks_.get());
  if (ret != 0) {
    return fail(fmt::format(
        "virgl_renderer_init failed ({}) with {}: no usable EGL{} (install Mesa's libegl1, libegl-mesa0 and "
        "libgl1-mesa-dri, or a vendor EGL; see LIBGL_DEBUG=verbose EGL_LOG_LEVEL=debug)",
        ret, describe_flags(flags),
        options_.render_node.empty() ? " for a surfaceless display" : " on the render node"));
  }
  flags_ = flags;
  initialised_ = true;

  probe_capsets();
  venus_ = std::any_of(capsets_.begin(), capsets_.end(), [](const CapsetInfo& c) { return c.id == kCapsetVenus; });
  if (options_.venus && (flags_ & VIRGL_RENDERER_VENUS) != 0 && !venus_) {
    VGPU_LOG_WARN("3D: Venus started but its capset is empty; not offering it");
  }
  const bool has_virgl = std::any_of(capsets_.begin(), capsets_.end(),
                                     [](const CapsetInfo& c) { return c.id == kCapsetVirgl || c.id == kCapsetVirgl2; });
  if (!has_virgl) return fail(std::string("virglrenderer started but reports no VIRGL capset"));

  std::string list;
  for (const CapsetInfo& c : capsets_) list += fmt::format(" {}(v{}, {} bytes)", c.id, c.max_version, c.max_size);
  VGPU_LOG_INFO("3D: virglrenderer {}.{}.{} up with {}; capsets:{}; poll fd {}", VGPU_VIRGL_VERSION_MAJOR,
                VGPU_VIRGL_VERSION_MINOR, VGPU_VIRGL_VERSION_MICRO, describe_flags(flags_), list, poll_fd());
  return {};
}

bool VirglRenderer::render_server_answers() {
  // An id no guest uses at this point (the device creates contexts only after init), destroyed at once.
  constexpr uint32_t kProbeContext = std::numeric_limits<uint32_t>::max();
  constexpr std::string_view kName = "vhost-gpu probe";
  const int ret = virgl_renderer_context_create_with_flags(kProbeContext, kCapsetVenus,
                                                           static_cast<uint32_t>(kName.size()), kName.data());
  if (ret != 0) return false;
  virgl_renderer_context_destroy(kProbeContext);
  return true;
}

void VirglRenderer::probe_capsets() {
  capsets_.clear();
  for (const uint32_t id : {kCapsetVirgl, kCapsetVirgl2, kCapsetVenus}) {
    if (id == kCapsetVenus && (flags_ & VIRGL_RENDERER_VENUS) == 0) continue;
    uint32_t max_version = 0;
    uint32_t max_size = 0;
    virgl_renderer_get_cap_set(id, &max_version, &max_size);
    if (max_size == 0 || max_size > kMaxCapsetBytes) continue;
    capsets_.push_back(CapsetInfo{.id = id, .max_version = max_version, .max_size = max_size});
    // Venus reports a size even when it did not initialise, and then fills nothing: an all-zero capset
    // makes guests fall back to software silently, so it is not offered.
    auto bytes = capset(id, max_version);
    const bool empty =
        !bytes || std::all_of(bytes->begin(), bytes->end(), [](std::byte b) { return b == std::byte{0}; });
    if (empty) {
      VGPU_LOG_WARN("3D: capset {} is empty; not offering it", id);
      capsets_.pop_back();
    }
  }
}

Result<std::vector<std::byte>, Renderer3DError> VirglRenderer::capset(uint32_t id, uint32_t version) const {
  auto it = std::find_if(capsets_.begin(), capsets_.end(), [&](const CapsetInfo& c) { return c.id == id; });
  if (it == capsets_.end() || version > it->max_version) return fail(Renderer3DError::InvalidArgument);
  std::vector<std::byte> out;
  try {
    out.assign(size_t{it->max_size} + kCapsetFillSlack, std::byte{0});
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  virgl_renderer_fill_caps(id, version, out.data());
  out.resize(it->max_size);
  return out;
}

void VirglRenderer::enter_host_context() const {
  if (initialised_) virgl_renderer_force_ctx_0();
}

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
  const Resource3DArgs args{.target = kPipeTexture2D,
                            .format = static_cast<uint32_t>(format),
                            .bind = VIRGL_RES_BIND_RENDER_TARGET,
                            .width = width,
                            .height = height,
                            .depth = 1,
                            .array_size = 1,
                            .last_level = 0,
                            .nr_samples = 0,
                            .flags = kFlagY0Top};
  if (auto r = create_resource_3d(id, args); !r) return fail(to_2d(r.error()));
  return {};
}

// Callers enter the host context first (once, not per resource).
void VirglRenderer::release_backing(uint32_t id, Resource& res) {
  if (res.attached) {
    // The library may read the views here (custom-bind buffers copy their contents back): they must still be
    // mapped, which is why memory-table changes go through release_backings() first.
    virgl_renderer_resource_detach_iov(static_cast<int>(id), nullptr, nullptr);
    res.attached = false;
  }
  res.iovs.clear();
}

void VirglRenderer::destroy_resource(uint32_t id) {
  Resource* res = find(id);
  if (res == nullptr) return;
  enter_host_context();
  release_backing(id, *res);
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
    res->shadow.resize(static_cast<size_t>(*bytes));
  } catch (const std::bad_alloc&) {
    return std::nullopt;
  }
  virgl_box box{
      .x = 0, .y = 0, .z = 0, .w = static_cast<int32_t>(a.width), .h = static_cast<int32_t>(a.height), .d = 1};
  iovec iov{.iov_base = res->shadow.data(), .iov_len = res->shadow.size()};
  enter_host_context();
  if (virgl_renderer_transfer_read_iov(id, 0, 0, static_cast<uint32_t>(stride), 0, &box, 0, &iov, 1) != 0) {
    return std::nullopt;
  }
  return ImageView{.data = res->shadow.data(),
                   .width = a.width,
                   .height = a.height,
                   .stride = static_cast<uint32_t>(stride),
                   .format = *format};
}

void VirglRenderer::reset() {
  const bool had_state = dirty_;
  dirty_ = false;
  if (had_state && (flags_ & VIRGL_RENDERER_THREAD_SYNC) == 0) {
    virgl_renderer_reset();
  } else if (had_state) {
    // virgl_renderer_reset() joins the library's fence thread and never starts it again (0.10.4; 1.x only
    // with ASYNC_FENCE_CB), leaving poll_fd() silent for good. A full cleanup and init brings it back (tens
    // of milliseconds, and a new render server for Venus); poll_fd() may change.
    virgl_renderer_cleanup(this);
    initialised_ = false;
    if (const int ret = init_library(this, flags_, callbacks_.get()); ret == 0) {
      initialised_ = true;
    } else {
      // The library refuses every call while uninitialised; with no capsets no context can be created.
      VGPU_LOG_ERROR("3D: virgl_renderer_init failed ({}) after reset; 3D is gone until restart", ret);
      capsets_.clear();
      venus_ = false;
    }
  }
  // Only now: the library has dropped the resources (without detaching: it read no backing on the way).
  resources_.clear();
  contexts_.clear();
  global_fences_.clear();
  context_fences_.clear();
  retired_.clear();
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

// --- Renderer3D: resources and backings --------------------------------------------------------------------

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

Result<void, Renderer3DError> VirglRenderer::attach_backing(uint32_t resource_id, const GuestMemory& mem,
                                                            const GuestScatterList& backing) {
  Resource* res = find(resource_id);
  if (res == nullptr) return fail(Renderer3DError::InvalidResource);
  enter_host_context();
  release_backing(resource_id, *res);
  res->backing.reset();
  res->backing_mem = nullptr;
  if (auto r = resolve_iovs(mem, backing, 0, backing.size(), res->iovs); !r) return r;
  try {
    res->backing.emplace(backing);
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  res->backing_mem = &mem;
  if (res->iovs.empty()) return {};  // nothing to hand over: an empty backing
  const int ret = virgl_renderer_resource_attach_iov(static_cast<int>(resource_id), res->iovs.data(),
                                                     static_cast<int>(res->iovs.size()));
  if (ret != 0) {
    res->iovs.clear();
    return fail(from_errno(ret, Renderer3DError::Failed));
  }
  res->attached = true;
  return {};
}

Result<void, Renderer3DError> VirglRenderer::create_blob(uint32_t resource_id, const BlobArgs& args,
                                                         const GuestMemory* mem, const GuestScatterList* backing) {
  if (resource_id == 0 || find(resource_id) != nullptr) return fail(Renderer3DError::InvalidArgument);
  if (args.ctx_id != 0 && !contexts_.contains(args.ctx_id)) return fail(Renderer3DError::InvalidContext);
  if ((backing == nullptr) != (mem == nullptr)) return fail(Renderer3DError::InvalidArgument);
  Resource* res = nullptr;
  try {
    res = &resources_.emplace(resource_id, Resource{.args = {}, .blob = args}).first->second;
    if (backing != nullptr) res->backing.emplace(*backing);
  } catch (const std::bad_alloc&) {
    resources_.erase(resource_id);
    return fail(Renderer3DError::OutOfMemory);
  }
  // The views live in the map node (it never moves): the library keeps the pointer, as for attach_iov.
  if (backing != nullptr) {
    if (auto r = resolve_iovs(*mem, *backing, 0, backing->size(), res->iovs); !r) {
      resources_.erase(resource_id);
      return r;
    }
    res->backing_mem = mem;
  }
  const virgl_renderer_resource_create_blob_args a{.res_handle = resource_id,
                                                   .ctx_id = args.ctx_id,
                                                   .blob_mem = args.blob_mem,
                                                   .blob_flags = args.blob_flags,
                                                   .blob_id = args.blob_id,
                                                   .size = args.size,
                                                   .iovecs = res->iovs.empty() ? nullptr : res->iovs.data(),
                                                   .num_iovs = static_cast<uint32_t>(res->iovs.size())};
  // The library checks the blob id against what the context made, and the flags against what it can do.
  enter_host_context();
  if (const int ret = virgl_renderer_resource_create_blob(&a); ret != 0) {
    resources_.erase(resource_id);
    return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  }
  res->attached = !res->iovs.empty();
  dirty_ = true;
  return {};
}

Result<void, Renderer3DError> VirglRenderer::read_blob(uint32_t resource_id, uint64_t offset, uint32_t stride,
                                                       const Rect& rect, std::span<std::byte> dst,
                                                       uint32_t dst_stride) {
  const Resource* res = find(resource_id);
  if (res == nullptr || !res->blob) return fail(Renderer3DError::InvalidResource);
  if (rect.empty()) return {};
  const uint64_t row_bytes = uint64_t{rect.width} * kBytesPerPixel;
  const uint64_t dst_extent = uint64_t{rect.height - 1} * dst_stride + row_bytes;
  // The source's last byte: offset + (y + h - 1) * stride + (x + w) * 4, each term < 2^64 / 4.
  const auto last_row = checked_mul<uint64_t>(uint64_t{rect.y} + rect.height - 1, stride);
  const auto src_end =
      last_row ? checked_add<uint64_t>(*last_row, (uint64_t{rect.x} + rect.width) * kBytesPerPixel) : std::nullopt;
  const auto src_extent = src_end ? checked_add<uint64_t>(*src_end, offset) : std::nullopt;
  if (dst_stride < row_bytes || dst.size() < dst_extent || !src_extent || *src_extent > res->blob->size) {
    return fail(Renderer3DError::InvalidArgument);
  }
  enter_host_context();
  if ((res->blob->blob_flags & VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE) != 0) {
    void* map = nullptr;
    uint64_t map_size = 0;
    if (virgl_renderer_resource_map(resource_id, &map, &map_size) == 0) {
      const bool fits = *src_extent <= map_size;
      if (fits) {
        const auto* src = static_cast<const std::byte*>(map);
        for (uint32_t r = 0; r < rect.height; ++r) {
          const uint64_t from = offset + (uint64_t{rect.y} + r) * stride + uint64_t{rect.x} * kBytesPerPixel;
          std::memcpy(dst.data() + uint64_t{r} * dst_stride, src + from, static_cast<size_t>(row_bytes));
        }
      }
      virgl_renderer_resource_unmap(resource_id);
      if (!fits) return fail(Renderer3DError::InvalidArgument);
      return {};
    }
  }
  if (!fits_int(rect)) return fail(Renderer3DError::InvalidArgument);
  virgl_box box = box_of(rect);
  iovec iov{.iov_base = dst.data(), .iov_len = static_cast<size_t>(dst_extent)};
  if (const int ret = virgl_renderer_transfer_read_iov(resource_id, 0, 0, dst_stride, 0, &box, 0, &iov, 1); ret != 0) {
    return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  }
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

Result<BlobMapping, Renderer3DError> VirglRenderer::blob_mapping(uint32_t resource_id) {
  const Resource* res = find(resource_id);
  if (res == nullptr || !res->blob) return fail(Renderer3DError::InvalidResource);
  if ((res->blob->blob_flags & VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE) == 0) {
    return fail(Renderer3DError::InvalidArgument);
  }
  enter_host_context();
  BlobMapping out;
  if (virgl_renderer_resource_get_map_info(resource_id, &out.map_info) != 0) return fail(Renderer3DError::Failed);
  out.map_info &= VIRGL_RENDERER_MAP_CACHE_MASK;
  uint32_t fd_type = 0;
  int fd = -1;
  if (virgl_renderer_resource_export_blob(resource_id, &fd_type, &fd) != 0 || fd < 0) {
    VGPU_LOG_DEBUG("3D: blob {} has no fd to map (a GL buffer of this process?)", resource_id);
    return fail(Renderer3DError::Failed);
  }
  out.fd.reset(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Renderer3DError::Failed);
  if (fd_type == VIRGL_RENDERER_BLOB_FD_TYPE_DMABUF) {
    const off_t end = ::lseek(fd, 0, SEEK_END);
    if (end <= 0) return fail(Renderer3DError::Failed);
    out.size = static_cast<uint64_t>(end);
    return out;
  }
  if (fd_type == VIRGL_RENDERER_BLOB_FD_TYPE_SHM) {
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) return fail(Renderer3DError::Failed);
    out.size = static_cast<uint64_t>(st.st_size);
    return out;
  }
  if (fd_type != VIRGL_RENDERER_BLOB_FD_TYPE_OPAQUE || !S_ISREG(st.st_mode)) return fail(Renderer3DError::Failed);
  // OPAQUE: where the data starts in the file is the driver's business. The library's own mapping of the blob
  // says it: the file offset its pointer maps, if that mapping is of this very file.
  void* ptr = nullptr;
  uint64_t map_size = 0;
  if (virgl_renderer_resource_map(resource_id, &ptr, &map_size) != 0 || ptr == nullptr) {
    return fail(Renderer3DError::Failed);
  }
  const auto offset = file_offset_of(read_proc_maps(), reinterpret_cast<uintptr_t>(ptr), st.st_dev, st.st_ino);
  virgl_renderer_resource_unmap(resource_id);
  if (!offset || *offset > static_cast<uint64_t>(st.st_size) ||
      map_size > static_cast<uint64_t>(st.st_size) - *offset) {
    VGPU_LOG_WARN("3D: blob {}: its OPAQUE fd does not map to the library's view of it; not mapping it", resource_id);
    return fail(Renderer3DError::Failed);
  }
  out.fd_offset = *offset;
  out.size = map_size;
  return out;
}

void VirglRenderer::flush_for_display() {
  // The display imports the buffer in another process's GL context: commands still queued in ours must reach
  // the driver first (QEMU's backend does the same before DMABUF_UPDATE).
  enter_host_context();
  glFlush();
}

void VirglRenderer::detach_backing(uint32_t resource_id) {
  Resource* res = find(resource_id);
  if (res == nullptr) return;
  enter_host_context();
  release_backing(resource_id, *res);
  res->backing.reset();
  res->backing_mem = nullptr;
}

void VirglRenderer::release_backings() {
  enter_host_context();
  for (auto& [id, res] : resources_) release_backing(id, res);
}

void VirglRenderer::refresh_backings() {
  release_backings();  // enters the host context
  for (auto& [id, res] : resources_) {
    if (!res.backing || res.backing_mem == nullptr) continue;
    auto resolved = resolve_iovs(*res.backing_mem, *res.backing, 0, res.backing->size(), res.iovs);
    int ret = 0;
    if (resolved && !res.iovs.empty()) {
      ret =
          virgl_renderer_resource_attach_iov(static_cast<int>(id), res.iovs.data(), static_cast<int>(res.iovs.size()));
    }
    if (!resolved || ret != 0) {
      VGPU_LOG_WARN("virgl: backing of resource {} no longer resolves after a memory change; dropped", id);
      res.iovs.clear();
      res.backing.reset();
      res.backing_mem = nullptr;
      continue;
    }
    res.attached = !res.iovs.empty();
  }
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
  if (auto r = resolve_iovs(mem, backing, t.offset, len, iovs); !r) return r;
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

// --- Renderer3D: fences ------------------------------------------------------------------------------------

size_t VirglRenderer::pending_fences() const {
  size_t n = global_fences_.size();
  for (const auto& [key, ids] : context_fences_) n += ids.size();
  return n;
}

Result<void, Renderer3DError> VirglRenderer::create_fence(FenceRing ring, uint64_t fence_id) {
  if (ring.kind == FenceRing::Kind::Context && !contexts_.contains(ring.ctx_id)) {
    return fail(Renderer3DError::InvalidContext);
  }
  const bool on_global = ring.kind == FenceRing::Kind::Global || !virgl_compat::kHasContextFences;
  // virgl (OpenGL) contexts have one timeline in the library: every ring of theirs maps onto it.
  uint32_t library_ring = ring.ring_idx;
  if (!on_global) {
    const uint32_t capset = contexts_.at(ring.ctx_id);
    if (capset == kCapsetVirgl || capset == kCapsetVirgl2) {
      if (ring.ring_idx >= kMaxVirglRings) return fail(Renderer3DError::InvalidArgument);
      library_ring = 0;
    }
  }
  try {
    // Room for every completion the library may report, so the C callbacks never allocate.
    retired_.reserve(retired_.size() + pending_fences() + 1);
    if (on_global) {
      global_fences_.push_back(PendingFence{.ring = ring, .fence_id = fence_id});
    } else {
      context_fences_[{ring.ctx_id, library_ring}].push_back(PendingFence{.ring = ring, .fence_id = fence_id});
    }
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }

  int ret = 0;
  if (on_global) {
    // The library's ctx0 timeline has 32-bit ids and merges fences: a retired id also retires every
    // earlier one, and deliver() maps it back to the 64-bit ids on record.
    ret = virgl_renderer_create_fence(static_cast<int>(static_cast<uint32_t>(fence_id)), ring.ctx_id);
    if (ret != 0) global_fences_.pop_back();
  } else {
    // Not MERGEABLE: the library reports each fence.
    ret = virgl_compat::context_create_fence(ring.ctx_id, 0, library_ring, fence_id);
    if (ret != 0) {
      auto it = context_fences_.find({ring.ctx_id, library_ring});
      it->second.pop_back();
      if (it->second.empty()) context_fences_.erase(it);
    }
  }
  if (ret != 0) return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  dirty_ = true;
  deliver();  // in case the library retired something inside that call
  return {};
}

int VirglRenderer::poll_fd() const {
  return virgl_renderer_get_poll_fd();
}

int VirglRenderer::context_poll_fd(uint32_t ctx_id) const {
  if (!contexts_.contains(ctx_id)) return -1;
  return virgl_compat::context_poll_fd(ctx_id);
}

void VirglRenderer::poll() {
  virgl_renderer_poll();
  deliver();
}

// Turns what the library reported into one callback per fence on record, in creation order per ring. The
// callback may call back into us (create fences, destroy contexts, reset, poll): every queue is looked up
// again after each callback, and completions recorded meanwhile are handled in the same loop.
void VirglRenderer::deliver() {
  if (delivering_) return;
  delivering_ = true;
  struct Done {
    VirglRenderer* self;
    ~Done() {
      self->retired_.clear();
      self->delivering_ = false;
    }
  } done{this};
  auto notify = [&](FenceRing ring, uint64_t id) {
    if (fence_callback_) fence_callback_(ring, id);
  };
  for (size_t i = 0; i < retired_.size(); ++i) {
    const Retired r = retired_[i];
    if (r.global) {
      const auto target = static_cast<uint32_t>(r.fence_id);
      const bool known = std::any_of(global_fences_.begin(), global_fences_.end(), [&](const PendingFence& f) {
        return static_cast<uint32_t>(f.fence_id) == target;
      });
      while (known && !global_fences_.empty()) {
        const PendingFence f = global_fences_.front();
        global_fences_.pop_front();
        notify(f.ring, f.fence_id);
        if (static_cast<uint32_t>(f.fence_id) == target) break;
      }
      continue;
    }
    const std::pair<uint32_t, uint32_t> key{r.ctx_id, r.ring_idx};
    auto it = context_fences_.find(key);
    // Ids of different guest rings sharing the library's ring may repeat; the library reports in creation
    // order, so the first match is the one it means.
    const bool known =
        it != context_fences_.end() && std::any_of(it->second.begin(), it->second.end(),
                                                   [&](const PendingFence& f) { return f.fence_id == r.fence_id; });
    while (known) {
      it = context_fences_.find(key);
      if (it == context_fences_.end() || it->second.empty()) break;
      const PendingFence f = it->second.front();
      it->second.pop_front();
      if (it->second.empty()) context_fences_.erase(it);
      notify(f.ring, f.fence_id);
      if (f.fence_id == r.fence_id) break;
    }
  }
}

}  // namespace vgpu

// The library's lifecycle: EGL checks, virgl_renderer_init with its C callbacks, capset probing, the host
// context, and reset() (a cleanup and re-init under thread_sync). Separate from the per-command work because it
// owns the library's process-wide state.

// EGL through libepoxy (as virglrenderer itself), without X11's macros.
#define EGL_NO_X11 1
#include <epoxy/egl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>

#include "common/leak_check.h"
#include "common/log.h"
#include "renderer/virgl/virgl_compat.h"
#include "renderer/virgl/virgl_renderer.h"

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

// A capset larger than this is a library bug; fill_caps also gets this much slack past max_size, because
// virglrenderer clears its whole capability union, not max_size bytes.
constexpr uint32_t kMaxCapsetBytes = 64 * 1024;
constexpr uint32_t kCapsetFillSlack = 16 * 1024;

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

// --- Device reset ---------------------------------------------------------------------------------------------

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

}  // namespace vgpu

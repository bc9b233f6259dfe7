// virglrenderer's API across versions, in one place: the rest of src/renderer/virgl has no #if.
//
// virglrenderer.h carries no version macros (not even 1.3), so CMake passes pkg-config's version as
// VGPU_VIRGL_VERSION_{MAJOR,MINOR,MICRO}. What differs by version, for what we call:
//
//   - 0.10.4 and 1.x: per-context fences (virgl_renderer_context_create_fence with a uint32_t ring_idx, the
//     v3 callback write_context_fence(cookie, ctx_id, ring_idx, fence_id)), Venus and the render server flags.
//     In 0.10.x all of it sits behind VIRGL_RENDERER_UNSTABLE_APIS; 1.0 made it stable with the same ABI.
//     0.10.0-0.10.3 had a uint64_t queue_id in both places: there we use only the global timeline.
//   - virgl_renderer_resource_get_info_ext (texture modifiers for dma-buf scanouts) exists from 1.0 on.
//   - virgl_renderer_context_get_poll_fd / context_poll stay behind VIRGL_RENDERER_UNSTABLE_APIS in 1.x.
//   - Below 0.10.0 there is no render server; CMake refuses those versions.
//
//   virgl_compat::context_create_fence(ctx, flags, ring, id);   // -ENOSYS where the ABI is not the 1.x one
#pragma once

#include <cerrno>
#include <cstdint>

#ifndef VGPU_VIRGL_VERSION_MAJOR
#error "VGPU_VIRGL_VERSION_MAJOR/MINOR/MICRO come from pkg-config (see CMakeLists.txt)"
#endif

// The unstable part is where 0.10.x keeps Venus, the render server and per-context fences.
#ifndef VIRGL_RENDERER_UNSTABLE_APIS
#define VIRGL_RENDERER_UNSTABLE_APIS 1
#endif
// The header is plain C without extern "C" guards.
extern "C" {
#include <virglrenderer.h>
}

// virglrenderer.h declares struct virgl_box but never defines it: the library casts it to gallium's pipe_box
// (six ints: x, y, z, width, height, depth) in every version from 0.8 to 1.3. QEMU relies on the same layout.
struct virgl_box {
  int32_t x, y, z;
  int32_t w, h, d;
};

namespace vgpu::virgl_compat {

constexpr uint32_t version_number(uint32_t major, uint32_t minor, uint32_t micro) {
  return major * 10000 + minor * 100 + micro;
}

constexpr uint32_t kVersion =
    version_number(VGPU_VIRGL_VERSION_MAJOR, VGPU_VIRGL_VERSION_MINOR, VGPU_VIRGL_VERSION_MICRO);
static_assert(kVersion >= version_number(0, 10, 0), "virglrenderer 0.10.0 or newer is required");

#define VGPU_VIRGL_HAS_CONTEXT_FENCES \
  (VGPU_VIRGL_VERSION_MAJOR * 10000 + VGPU_VIRGL_VERSION_MINOR * 100 + VGPU_VIRGL_VERSION_MICRO >= 1004)

// Per-context fence timelines with the 1.x ABI.
constexpr bool kHasContextFences = VGPU_VIRGL_HAS_CONTEXT_FENCES;
// The callbacks struct version we fill: 3 adds write_context_fence and get_server_fd (left null: virglrenderer
// then forks /usr/libexec/virgl_render_server itself); 4's get_egl_display is not used.
constexpr int kCallbacksVersion = kHasContextFences ? 3 : 2;

using ContextFenceFn = void (*)(void* cookie, uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id);

inline void set_context_fence_callback(virgl_renderer_callbacks& cbs, [[maybe_unused]] ContextFenceFn fn) {
#if VGPU_VIRGL_HAS_CONTEXT_FENCES
  cbs.write_context_fence = fn;
#endif
  cbs.version = kCallbacksVersion;
}

inline int context_create_fence([[maybe_unused]] uint32_t ctx_id, [[maybe_unused]] uint32_t flags,
                                [[maybe_unused]] uint32_t ring_idx, [[maybe_unused]] uint64_t fence_id) {
#if VGPU_VIRGL_HAS_CONTEXT_FENCES
  return virgl_renderer_context_create_fence(ctx_id, flags, ring_idx, fence_id);
#else
  return -ENOSYS;
#endif
}

// A texture resource's DRM format modifier: virgl_renderer_resource_get_info_ext (1.0 and later); 0.10.x
// cannot say, which is DRM_FORMAT_MOD_INVALID (the exporter's implicit layout).
inline uint64_t resource_modifier([[maybe_unused]] uint32_t resource_id, uint64_t unknown) {
#if VGPU_VIRGL_VERSION_MAJOR >= 1
  virgl_renderer_resource_info_ext info{};
  info.version = 1;
  if (virgl_renderer_resource_get_info_ext(static_cast<int>(resource_id), &info) == 0) return info.modifiers;
#endif
  return unknown;
}

inline int context_poll_fd(uint32_t ctx_id) {
  return virgl_renderer_context_get_poll_fd(ctx_id);
}

}  // namespace vgpu::virgl_compat

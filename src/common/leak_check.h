// LeakCheckPaused: while alive, allocations made on this thread are not reported as leaks (LeakSanitizer builds;
// nothing otherwise). For calls into a GL driver whose own leaks are not ours to fix and would fail every
// sanitizer run: Mesa's EGL set-up in virgl_renderer_init, llvmpipe's first shader compile.
//
//   { [[maybe_unused]] LeakCheckPaused driver_allocates; virgl_renderer_init(...); }
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define VGPU_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VGPU_LSAN 1
#endif
#endif
#ifdef VGPU_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace vgpu {

class LeakCheckPaused {
 public:
#ifdef VGPU_LSAN
  LeakCheckPaused() {
    __lsan_disable();
  }
  ~LeakCheckPaused() {
    __lsan_enable();
  }
#else
  LeakCheckPaused() = default;
#endif
  LeakCheckPaused(const LeakCheckPaused&) = delete;
  LeakCheckPaused& operator=(const LeakCheckPaused&) = delete;
};

}  // namespace vgpu

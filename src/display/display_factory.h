// How the device gets its displays, decided in app/ and injected (the device names no concrete display):
// the sink it uses while the frontend has sent no display socket, after that socket closes and after a reset;
// and the display it builds from the frontend's socket (VHOST_USER_GPU_SET_SOCKET).
//
//   GpuDevice d(cfg, &loop, renderers, DisplayFactory::standard({.num_scanouts = 1}));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "common/unique_fd.h"
#include "display/display.h"

namespace vgpu {

struct StandardDisplayOptions {
  uint32_t num_scanouts = 1;
  uint32_t width = 1280;  // the layout the headless sink reports
  uint32_t height = 800;
  bool headless_only = false;  // --headless: the frontend's display socket is not used
};

struct DisplayFactory {
  // Never null: a display that keeps the frames itself.
  std::function<std::unique_ptr<Display>()> idle;
  // Null: the frontend's socket is ignored (logged) and frames stay on the idle display.
  std::function<std::unique_ptr<Display>(UniqueFd socket)> frontend;

  // The daemon's pair: HeadlessDisplay (frames in memory, PNGs on SIGUSR1) and SocketDisplay (QEMU's
  // vhost-user-gpu display protocol).
  static DisplayFactory standard(const StandardDisplayOptions& options);
};

}  // namespace vgpu

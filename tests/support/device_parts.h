// The parts app/main.cc wires into a GpuDevice, made the way tests need them: soft2d as the renderer, the
// standard displays (headless until a display socket arrives), and a shared_ptr that borrows an object the
// test owns (virglrenderer allows one instance per process, fakes are inspected after the device is gone).
//
//   GpuDevice dev(cfg, nullptr, soft2d_renderers(), standard_displays(cfg));
//   GpuHarness h(cfg, features, 64ull << 20, Renderers::with_3d(borrow(fake_3d)));
#pragma once

#include <memory>

#include "display/display_factory.h"
#include "gpu/device.h"
#include "renderer/renderers.h"
#include "renderer/soft2d/soft2d_renderer.h"

namespace vgpu::test {

template <class T>
std::shared_ptr<T> borrow(T& object) {
  return std::shared_ptr<T>(std::shared_ptr<void>(), &object);
}

inline Renderers soft2d_renderers() {
  return Renderers::only_2d(std::make_shared<Soft2DRenderer>());
}

inline DisplayFactory standard_displays(const GpuDeviceConfig& cfg) {
  return DisplayFactory::standard(StandardDisplayOptions{
      .num_scanouts = cfg.num_scanouts, .width = cfg.headless_width, .height = cfg.headless_height});
}

}  // namespace vgpu::test

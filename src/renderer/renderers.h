// The renderer a GpuDevice drives, seen as 2D always and as 3D when it is one. Built in app/ (or a test) and
// handed to the device whole: the factories make the 3D view the same object as the 2D one, so the two can
// never be different renderers whose state drifts apart.
//
//   GpuDevice d(cfg, &loop, Renderers::only_2d(std::make_shared<Soft2DRenderer>()), displays);
//   GpuDevice d(cfg, &loop, Renderers::with_3d(std::shared_ptr<VirglRenderer>(std::move(virgl))), displays);
#pragma once

#include <concepts>
#include <memory>
#include <utility>

#include "renderer/renderer_2d.h"
#include "renderer/renderer_3d.h"

namespace vgpu {

class Renderers {
 public:
  // A 2D-only renderer (soft2d): the device offers no 3D features.
  static Renderers only_2d(std::shared_ptr<Renderer2D> renderer) { return Renderers(std::move(renderer), nullptr); }

  // One object that is both (VirglRenderer, a test's fake): VIRGL and CONTEXT_INIT are offered.
  template <class R>
  requires std::derived_from<R, Renderer2D> && std::derived_from<R, Renderer3D>
  static Renderers with_3d(std::shared_ptr<R> renderer) {
    Renderer3D* r3d = renderer.get();
    return Renderers(std::move(renderer), r3d);
  }

  [[nodiscard]] const std::shared_ptr<Renderer2D>& r2d() const { return r2d_; }
  [[nodiscard]] Renderer3D* r3d() const { return r3d_; }

 private:
  Renderers(std::shared_ptr<Renderer2D> r2d, Renderer3D* r3d) : r2d_(std::move(r2d)), r3d_(r3d) {}

  std::shared_ptr<Renderer2D> r2d_;
  Renderer3D* r3d_;  // the same object as r2d_, or null
};

}  // namespace vgpu

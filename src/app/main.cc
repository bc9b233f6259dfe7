#include "app/main.h"

#include <memory>
#include <optional>
#include <variant>

#include "app/options.h"
#include "app/server.h"
#include "common/log.h"
#include "display/display_factory.h"
#include "gpu/device.h"
#include "renderer/renderers.h"
#include "renderer/soft2d/soft2d_renderer.h"
#ifdef VGPU_HAVE_VIRGL
#include "renderer/virgl/virgl_renderer.h"
#endif

namespace vgpu {

int run_main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (const auto* exit_now = std::get_if<ExitNow>(&parsed)) return exit_now->code;
  const Options& opts = std::get<Options>(parsed);

  init_logging();
  set_log_level(opts.log_level);

  auto loop = EventLoop::create();
  if (!loop) {
    VGPU_LOG_ERROR("cannot create the event loop (errno {})", loop.error());
    return 1;
  }
  // Wiring: the renderer and the displays are chosen here; the device sees only their interfaces.
  std::optional<Renderers> renderers;
#ifdef VGPU_HAVE_VIRGL
  if (opts.virgl) {
    // Start 3D before accepting any frontend: a daemon that cannot render must not look alive.
    auto virgl = VirglRenderer::create(VirglOptions{.render_node = opts.render_node, .venus = opts.venus});
    if (!virgl) {
      VGPU_LOG_ERROR("--virgl: 3D cannot start: {}", virgl.error());
      return 1;
    }
    renderers = Renderers::with_3d(std::shared_ptr<VirglRenderer>(std::move(*virgl)));
  }
#endif
  if (!renderers) renderers = Renderers::only_2d(std::make_shared<Soft2DRenderer>());
  GpuDevice device(
      GpuDeviceConfig{.num_scanouts = opts.outputs,
                      .max_resource_memory = opts.max_resource_memory,
                      .headless_width = opts.width,
                      .headless_height = opts.height,
                      .dmabuf_scanout = opts.dmabuf_scanout,
                      .hostmem_size = opts.hostmem,
                      .blob_alignment = opts.blob_alignment == "off" ? BlobAlignmentMode::Off : BlobAlignmentMode::On,
                      .max_contexts = opts.max_contexts,
                      .max_venus_contexts = opts.max_venus_contexts},
      &*loop, *renderers,
      DisplayFactory::standard(StandardDisplayOptions{
          .num_scanouts = opts.outputs, .width = opts.width, .height = opts.height, .headless_only = opts.headless}));
  auto dump = [&device, dir = opts.screenshot_dir] {
    auto paths = device.dump_frames(dir);
    if (!paths) {
      VGPU_LOG_WARN("SIGUSR1: no screenshot: {}", paths.error());
      return;
    }
    if (paths->empty()) VGPU_LOG_INFO("SIGUSR1: no active scanout to write");
    for (const auto& p : *paths) VGPU_LOG_INFO("SIGUSR1: wrote {}", p);
  };
  Server server(device, *loop, ServerConfig{.exit_on_disconnect = opts.exit_on_disconnect, .on_sigusr1 = dump});
  auto ready = opts.socket_path ? server.listen_on_path(*opts.socket_path) : server.use_fd(*opts.fd);
  if (!ready) {
    VGPU_LOG_ERROR("{}", ready.error());
    return 1;
  }
  return server.run();
}

}  // namespace vgpu

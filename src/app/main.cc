#include "app/main.h"

#include <variant>

#include "app/options.h"
#include "app/server.h"
#include "common/log.h"
#include "gpu/device.h"

namespace vgpu {

int run_main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (const auto* exit_now = std::get_if<ExitNow>(&parsed)) return exit_now->code;
  const Options& opts = std::get<Options>(parsed);

  init_logging();
  set_log_level(opts.log_level);

  GpuDevice device(GpuDeviceConfig{.num_scanouts = opts.outputs});
  auto loop = EventLoop::create();
  if (!loop) {
    VGPU_LOG_ERROR("cannot create the event loop (errno {})", loop.error());
    return 1;
  }
  Server server(device, std::move(*loop), ServerConfig{.exit_on_disconnect = opts.exit_on_disconnect});
  auto ready = opts.socket_path ? server.listen_on_path(*opts.socket_path) : server.use_fd(*opts.fd);
  if (!ready) {
    VGPU_LOG_ERROR("{}", ready.error());
    return 1;
  }
  return server.run();
}

}  // namespace vgpu

#include "display/display_factory.h"

#include <utility>

#include "display/headless_display.h"
#include "display/socket_display.h"

namespace vgpu {

DisplayFactory DisplayFactory::standard(const StandardDisplayOptions& options) {
  DisplayFactory f;
  f.idle = [options] { return std::make_unique<HeadlessDisplay>(options.num_scanouts, options.width, options.height); };
  if (!options.headless_only) {
    f.frontend = [n = options.num_scanouts](UniqueFd socket) {
      return std::make_unique<SocketDisplay>(std::move(socket), n);
    };
  }
  return f;
}

}  // namespace vgpu

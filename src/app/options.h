// Command-line options. QEMU's backend-program conventions come first (docs/interop/vhost-user.rst,
// "Backend program conventions"): --socket-path, --fd, --print-capabilities.
//
//   auto opts = parse_options(argc, argv);
//   if (auto* exit = std::get_if<ExitNow>(&opts)) return exit->code;
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace vgpu {

// --hostmem bounds: a page multiple at least, and no more than a PCI BAR a guest can be given sanely.
constexpr uint64_t kMinHostmem = uint64_t{1} << 20;
constexpr uint64_t kMaxHostmem = uint64_t{64} << 30;

struct Options {
  std::optional<std::string> socket_path;  // listen here (we are the vhost-user server)
  std::optional<int> fd;                   // inherited socket: connected, or listening (socket activation)
  bool exit_on_disconnect = false;
  uint32_t outputs = 1;   // virtio_gpu_config.num_scanouts
  uint32_t width = 1280;  // preferred mode when no display supplies one (headless, EDID fallback)
  uint32_t height = 800;
  uint64_t max_resource_memory = 512ull << 20;
  bool headless = false;
  bool virgl = false;           // 3D through libvirglrenderer (QEMU's option name)
  bool venus = false;           // Vulkan (Venus) contexts too; needs --virgl
  std::string render_node;      // empty: surfaceless EGL
  bool dmabuf_scanout = false;  // 3D scanouts as exported dma-bufs; needs --virgl and a GL display in QEMU
  uint64_t hostmem = 0;         // host-visible memory window (QEMU's property name); 0: none
  uint32_t max_contexts = 64;
  uint32_t max_venus_contexts = 16;
  std::string blob_alignment = "on";  // on, off
  std::string screenshot_dir = ".";
  std::string log_level = "info";
};

// Parsing finished the job (help, version, capabilities, or a usage error): exit with this code.
struct ExitNow {
  int code;
};

std::variant<Options, ExitNow> parse_options(int argc, char** argv);

// The JSON document --print-capabilities writes (vhost-user.rst: type "gpu"; features lists only the
// optional GPU options this build really supports).
std::string capabilities_json();

}  // namespace vgpu

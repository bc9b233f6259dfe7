#include "app/options.h"

#include <CLI/CLI.hpp>
#include <bit>
#include <charconv>
#include <cstdio>
#include <iostream>

#include "common/log.h"

namespace vgpu {

namespace {

constexpr const char* kVersion = "vhost-gpu 0.1.0";
constexpr uint32_t kMaxOutputs = 16;  // VIRTIO_GPU_MAX_SCANOUTS

// "1280x800" → 1280, 800. Bounds: what a display and an EDID detailed timing can describe.
bool parse_resolution(const std::string& text, uint32_t& width, uint32_t& height) {
  const char* const end = text.data() + text.size();
  uint32_t w = 0;
  uint32_t h = 0;
  auto [after_w, ec_w] = std::from_chars(text.data(), end, w);
  if (ec_w != std::errc() || after_w == end || *after_w != 'x') return false;
  auto [after_h, ec_h] = std::from_chars(after_w + 1, end, h);
  if (ec_h != std::errc() || after_h != end) return false;
  if (w < 16 || h < 16 || w > 16384 || h > 16384) return false;
  width = w;
  height = h;
  return true;
}

}  // namespace

std::string capabilities_json() {
  // libvirt reads this to decide which options it may pass: "virgl" and "render-node" only in builds with the
  // virgl renderer.
#ifdef VGPU_HAVE_VIRGL
  return "{\n  \"type\": \"gpu\",\n  \"features\": [\n    \"render-node\",\n    \"virgl\"\n  ]\n}\n";
#else
  return "{\n  \"type\": \"gpu\",\n  \"features\": []\n}\n";
#endif
}

std::variant<Options, ExitNow> parse_options(int argc, char** argv) {
  Options opts;
  CLI::App app{
      "vhost-gpu: a virtio-gpu device served over vhost-user to QEMU (-device vhost-user-gpu-pci).\n"
      "Start it first, then point QEMU's '-chardev socket,path=PATH' at the same PATH.",
      "vhost-gpu"};
  app.get_formatter()->column_width(34);

  bool print_caps = false;
  bool version = false;
  auto* socket_opt = app.add_option("-s,--socket-path", opts.socket_path,
                                    "Listen on this UNIX socket path (created; a stale socket file is replaced)")
                         ->type_name("PATH");
  auto* fd_opt = app.add_option("-f,--fd", opts.fd,
                                "Use inherited socket FD: a connected vhost-user socket, or a listening one "
                                "(socket activation)")
                     ->check(CLI::NonNegativeNumber)
                     ->type_name("FD");
  socket_opt->excludes(fd_opt);
  fd_opt->excludes(socket_opt);
  app.add_flag("-c,--print-capabilities", print_caps, "Print the backend capabilities as JSON and exit");
  app.add_flag("--exit-on-disconnect", opts.exit_on_disconnect,
               "Exit when the frontend disconnects (default: wait for the next connection)");
  // A count N in 1..max, its default shown in --help.
  auto add_count = [&app](const char* name, uint32_t& value, const char* help, uint32_t max) {
    app.add_option(name, value, help)->type_name("N")->check(CLI::Range(1u, max))->capture_default_str();
  };
  add_count("--outputs", opts.outputs, "Number of scanouts (displays) offered to the guest", kMaxOutputs);
  std::string resolution = "1280x800";
  app.add_option("--resolution", resolution,
                 "Preferred mode WIDTHxHEIGHT reported when no display supplies one (headless; EDID fallback)")
      ->type_name("WxH")
      ->capture_default_str();
  app.add_option("--max-resource-memory", opts.max_resource_memory,
                 "Host memory the guest may make us spend on its GPU objects: resources by format and size, "
                 "backing lists, 3D contexts, host blobs, each with its bookkeeping (suffixes K, M, G); beyond it, "
                 "commands fail with ERR_OUT_OF_MEMORY")
      ->type_name("BYTES")
      ->transform(CLI::AsSizeValue(false))
      ->default_str("512M");
#ifdef VGPU_HAVE_VIRGL
  app.add_flag("--virgl", opts.virgl,
               "3D acceleration through libvirglrenderer (OpenGL guests via Mesa's virgl driver); the daemon exits "
               "with an error if 3D cannot start");
  app.add_option("-r,--render-node", opts.render_node,
                 "DRM render node for 3D (e.g. /dev/dri/renderD128); default: surfaceless EGL (any GPU driver, or "
                 "Mesa llvmpipe without a GPU)")
      ->type_name("PATH")
      ->check(CLI::ExistingFile);
  app.add_flag("--venus", opts.venus,
               "Also offer Vulkan (Venus) contexts; needs --virgl and virgl_render_server (package virgl-server). "
               "Guests use Venus only with host-visible memory: add --hostmem");
  app.add_option("--hostmem", opts.hostmem,
                 "Host-visible memory window offered to the guest (suffixes K, M, G; a power of two, as QEMU makes "
                 "it one PCI BAR): mappable Venus blobs are mapped into it (RESOURCE_MAP_BLOB). Needs --venus and a "
                 "frontend with vhost-user SHMEM (QEMU >= 11.1, -device vhost-user-test-device-pci,virtio-id=16,"
                 "num_vqs=2,config_size=24); default: none")
      ->type_name("SIZE")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--blob-alignment", opts.blob_alignment,
                 "With --hostmem: offer VIRTIO_GPU_F_BLOB_ALIGNMENT, the host page size (on), or not (off: for "
                 "guests whose userspace makes blobs of other sizes, which a Linux >= 7.2 guest then refuses)")
      ->type_name("MODE")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  add_count("--max-contexts", opts.max_contexts,
            "3D contexts one guest may have at once (each also takes 3 MiB of --max-resource-memory); CTX_CREATE "
            "beyond it fails with ERR_OUT_OF_MEMORY",
            4096);
  add_count("--max-venus-contexts", opts.max_venus_contexts,
            "Venus contexts one guest may have at once (each is a render-server process here); CTX_CREATE beyond "
            "it fails with ERR_OUT_OF_MEMORY",
            1024);
  app.add_flag("--dmabuf-scanout", opts.dmabuf_scanout,
               "Show 3D scanouts as dma-bufs the renderer exports (DMABUF_SCANOUT2, no pixel copies); needs "
               "--virgl, a GPU driver that exports dma-bufs, and a GL display in QEMU (-display egl-headless, "
               "gtk,gl=on, dbus,gl=on): a 2D display shows nothing. Scanouts that cannot be exported go by copy");
#endif
  app.add_flag("--headless", opts.headless,
               "Keep frames here instead of sending them to QEMU's display (also the default until QEMU "
               "sends its display socket)");
  app.add_option("--screenshot-dir", opts.screenshot_dir,
                 "Where SIGUSR1 writes scanout-N.png of each active scanout (headless display)")
      ->type_name("DIR")
      ->capture_default_str();
  app.add_option("-l,--log-level", opts.log_level, "Log level: trace, debug, info, warn, error, off")
      ->type_name("LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.add_flag("-V,--version", version, "Print the version and exit");
  app.footer(
      "Signals: SIGTERM/SIGINT exit cleanly; SIGUSR1 writes scanout-N.png (see --screenshot-dir).\n"
      "Exit status: 0 on a clean exit (SIGTERM/SIGINT, or disconnect with --exit-on-disconnect), 1 on a runtime\n"
      "error (the socket cannot be set up, 3D cannot start), 2 on a usage error.\n"
      "Example:\n"
      "  vhost-gpu --socket-path /tmp/gpu.sock &\n"
      "  qemu-system-x86_64 -object memory-backend-memfd,id=mem,size=1G,share=on -machine q35,memory-backend=mem \\\n"
      "    -chardev socket,id=gpu,path=/tmp/gpu.sock -device vhost-user-gpu-pci,chardev=gpu ...");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return ExitNow{app.exit(e)};
  } catch (const CLI::CallForAllHelp& e) {
    return ExitNow{app.exit(e)};
  } catch (const CLI::ParseError& e) {
    std::cerr << "vhost-gpu: " << e.what() << "\nRun with --help for usage.\n";
    return ExitNow{2};
  }
  if (version) {
    std::cout << kVersion << "\n";
    return ExitNow{0};
  }
  if (print_caps) {
    std::cout << capabilities_json();
    return ExitNow{0};
  }
  if (!opts.socket_path && !opts.fd) {
    std::cerr << "vhost-gpu: one of --socket-path or --fd is required\nRun with --help for usage.\n";
    return ExitNow{2};
  }
  if (!parse_resolution(resolution, opts.width, opts.height)) {
    std::cerr << "vhost-gpu: --resolution: expected WIDTHxHEIGHT between 16x16 and 16384x16384, got '" << resolution
              << "'\nRun with --help for usage.\n";
    return ExitNow{2};
  }
  if ((opts.venus || !opts.render_node.empty() || opts.dmabuf_scanout) && !opts.virgl) {
    std::cerr << "vhost-gpu: --venus, --render-node and --dmabuf-scanout need --virgl\n";
    return ExitNow{2};
  }
  if (opts.hostmem != 0 && !opts.venus) {
    // Only Venus blobs are memory another process can map (a GL context's are buffer mappings in this one).
    std::cerr << "vhost-gpu: --hostmem needs --venus (and --virgl)\n";
    return ExitNow{2};
  }
  if (opts.hostmem != 0 &&
      (!std::has_single_bit(opts.hostmem) || opts.hostmem < kMinHostmem || opts.hostmem > kMaxHostmem)) {
    std::cerr << "vhost-gpu: --hostmem must be a power of two between 1M and 64G (QEMU makes it one PCI BAR), got "
              << opts.hostmem << " bytes\nRun with --help for usage.\n";
    return ExitNow{2};
  }
  if (opts.max_resource_memory == 0) {
    std::cerr << "vhost-gpu: --max-resource-memory must be more than 0\n";
    return ExitNow{2};
  }
  if (opts.socket_path && opts.socket_path->empty()) {
    std::cerr << "vhost-gpu: --socket-path must not be empty\n";
    return ExitNow{2};
  }
  return opts;
}

}  // namespace vgpu

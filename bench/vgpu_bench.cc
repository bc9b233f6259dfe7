// vgpu_bench: our backend and QEMU's vhost-user-gpu (10.0 installed; 7.2 unpacked by
// bench/fetch-qemu72-backend.sh) driven by the same test frontend and display server, in one run
// (docs/ARCHITECTURE.md, "Performance").
//
//   vgpu_bench                                   # every backend, 1 s per case, a markdown table on stdout
//   vgpu_bench --backends ours,qemu-10.0 --duration-ms 2000 --output bench/results/DATE.md
//   vgpu_bench --quick                           # CI smoke: tiny durations, no timing assertions
//   vgpu_bench --cases frame --backends ours     # one group, e.g. under a profiler
//   vgpu_bench --backends ours,baseline,qemu-10.0 --baseline /tmp/vhost-gpu-before   # before/after, interleaved
//
// Every figure is measured the same way for every backend. A batch of commands is published on the control
// queue and kicked once; the batch is complete when every command is in the used ring and, for each
// RESOURCE_FLUSH of a resource on a scanout, the display server has handled its UPDATE (the pixels are in
// its surface). Latencies are from just before the first publish to the frontend seeing both, on
// CLOCK_MONOTONIC; every case is warmed up first. Floors: one memcpy of the frame between two memfd mappings,
// and an eventfd ping-pong between two processes.
//
// This file: BenchRun (one backend driven through the test frontend), the cases, and run()/main. Statistics and
// floors are in stats.h, backend discovery in backends.h, the markdown report in report.h.
#include <fmt/format.h>
#include <linux/virtio_gpu.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/types.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "backends.h"
#include "report.h"
#include "stats.h"
#include "support/backend_process.h"
#include "support/display_server.h"
#include "support/test_frontend.h"

namespace vgpu::bench {
namespace {

using test::BackendProcess;
using test::BackingLayout;
using test::CommandPipeline;
using test::DisplayServer;
using test::GuestBacking;
using test::TempSocketPath;
using test::TestFrontend;

// ---- one backend, connected and negotiated ----

constexpr uint32_t kFormat = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
constexpr uint32_t kRes1080 = 1;
constexpr uint32_t kRes4k = 2;
constexpr uint16_t kDepth = 64;
constexpr uint32_t kMaxRequest = 64 << 10;  // ATTACH_BACKING of a 1080p frame in 4 KiB pages: 32 KiB
constexpr int kTimeoutMs = 10'000;

struct Step {
  std::vector<std::byte> request;
  uint32_t response_size = sizeof(virtio_gpu_ctrl_hdr);
  uint32_t expect = VIRTIO_GPU_RESP_OK_NODATA;
  bool update = false;  // the display server gets one UPDATE for it
};

// A pixel written by the guest before each batch, checked on the display afterwards.
struct Touch {
  GuestBacking* backing = nullptr;
  uint64_t offset = 0;
  uint32_t x = 0, y = 0;  // where it shows on scanout 0
};

}  // namespace

// Outside the unnamed namespace: report.h declares it, for CaseDef::run.
class BenchRun {
 public:
  static std::unique_ptr<BenchRun> open(const BackendSpec& spec, const Config& config, std::string& error) {
    auto s = std::unique_ptr<BenchRun>(new BenchRun(config));
    std::vector<std::string> argv{spec.path};
    argv.insert(argv.end(), spec.args.begin(), spec.args.end());
    argv.push_back(s->sock_.path());
    auto proc = BackendProcess::start(argv);
    if (!proc) {
      error = "cannot start " + spec.path;
      return nullptr;
    }
    s->proc_.emplace(std::move(*proc));
    if (!s->proc_->wait_for_socket(s->sock_.path(), std::chrono::seconds(30))) {
      error = "no socket: " + s->proc_->log();
      return nullptr;
    }
    s->fe_ = TestFrontend::connect(
        s->sock_.path(),
        {.memory_size = 256ull << 20, .queue_size = 256, .page_aligned_regions = true, .display = &s->display_});
    if (!s->fe_ || !s->fe_->negotiate()) {
      error = "negotiation failed: " + (s->fe_ ? s->fe_->error() : std::string("connect")) + "\n" + s->proc_->log();
      return nullptr;
    }
    if (!s->setup(error)) return nullptr;
    return s;
  }

  ~BenchRun() {
    pipe_.reset();
    fe_.reset();  // the backend sees the disconnect
    display_.stop();
    if (proc_) proc_->stop(SIGTERM, std::chrono::seconds(5));
  }

  [[nodiscard]] std::string log() const { return proc_ ? proc_->log() : std::string(); }
  [[nodiscard]] pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  DisplayServer& display() { return display_; }
  GuestBacking& fb1080() { return fb1080_; }
  GuestBacking& fb4k() { return fb4k_; }
  TestFrontend& frontend() { return *fe_; }
  [[nodiscard]] const std::vector<std::string>& problems() const { return problems_; }

  // Puts resource `id` (w x h) on scanout 0 unless it is there already.
  bool bind_scanout(uint32_t id, uint32_t w, uint32_t h) {
    if (bound_ == id) return true;
    if (!ok(test::set_scanout_request(0, id, {0, 0, w, h}))) return false;
    bound_ = id;
    return true;
  }

  // Publishes `steps` at once, kicks once, waits for every completion and UPDATE. Appends one latency per
  // step (per_command) or one for the batch.
  bool run_batch(const std::vector<Step>& steps, bool per_command, std::vector<double>& out,
                 const Touch* touch = nullptr) {
    if (touch != nullptr) write_touch(*touch);
    const size_t n = steps.size();
    used_at_.assign(n, 0);
    update_of_step_.assign(n, -1);
    size_t expected_updates = 0;
    for (size_t i = 0; i < n; ++i) {
      if (steps[i].update) update_of_step_[i] = static_cast<int64_t>(expected_updates++);
    }
    update_at_.assign(expected_updates, 0);
    const uint64_t base = updates_before_;
    const uint64_t t0 = now_ns();
    for (size_t i = 0; i < n; ++i) {
      if (!pipe_->submit(steps[i].request, steps[i].response_size, static_cast<uint32_t>(i))) {
        return record_problem("submit failed (pipeline full or request too large)");
      }
    }
    pipe_->kick();
    size_t done = 0, updates = 0;
    const int call_fd = fe_->call_fd(TestFrontend::kControlQueue);
    while (done < n || updates < expected_updates) {
      std::array<pollfd, 2> fds{pollfd{call_fd, POLLIN, 0}, pollfd{display_.update_fd(), POLLIN, 0}};
      const int r = ::poll(fds.data(), fds.size(), kTimeoutMs);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        return record_problem(
            fmt::format("timed out: {}/{} completions, {}/{} UPDATEs", done, n, updates, expected_updates));
      }
      eventfd_t v = 0;
      if ((fds[0].revents & POLLIN) != 0) ::eventfd_read(call_fd, &v);
      if ((fds[1].revents & POLLIN) != 0) ::eventfd_read(display_.update_fd(), &v);
      const uint64_t t = now_ns();
      completions_.clear();
      pipe_->reap(completions_);
      for (const auto& c : completions_) {
        used_at_[c.tag] = t;
        if (c.response_type != steps[c.tag].expect) {
          return record_problem(
              fmt::format("command {} answered {:#x}, expected {:#x}", c.tag, c.response_type, steps[c.tag].expect));
        }
        ++done;
      }
      const uint64_t seen = display_.updates() - base;
      if (seen > expected_updates) return record_problem("more UPDATEs than flushes");
      for (; updates < seen; ++updates) update_at_[updates] = t;
    }
    updates_before_ += expected_updates;
    if (per_command) {
      for (size_t i = 0; i < n; ++i) {
        uint64_t end = used_at_[i];
        if (update_of_step_[i] >= 0) end = std::max(end, update_at_[static_cast<size_t>(update_of_step_[i])]);
        out.push_back(double(end - t0));
      }
    } else {
      uint64_t end = *std::max_element(used_at_.begin(), used_at_.end());
      if (!update_at_.empty()) end = std::max(end, *std::max_element(update_at_.begin(), update_at_.end()));
      out.push_back(double(end - t0));
    }
    return true;
  }

  // The last touched pixel made it to the display.
  bool touch_shown(const Touch& touch) {
    const auto px = display_.pixel(0, touch.x, touch.y);
    return px && (*px & 0xffffffu) == (touch_value_ & 0xffffffu);
  }
  // A pixel of the 1080p pattern, as the display shows it.
  bool pattern_shown(uint32_t x, uint32_t y) {
    const auto px = display_.pixel(0, x, y);
    return px && (*px & 0xffffffu) == (pattern(x, y) & 0xffffffu);
  }

  static uint32_t pattern(uint32_t x, uint32_t y) {
    return 0xff000000u | ((x * 7) & 0xff) << 16 | (y & 0xff) << 8 | ((x ^ y) & 0xff);
  }

  // Notes a problem of this backend (the cases after it are not run on it) and returns false.
  bool record_problem(const std::string& what) {
    problems_.push_back(what);
    return false;
  }

 private:
  explicit BenchRun(const Config& config) : config_(config) {}

  bool ok(const std::vector<std::byte>& request) {
    auto r = fe_->command(TestFrontend::kControlQueue, request, sizeof(virtio_gpu_ctrl_hdr), kTimeoutMs);
    return r && test::response_type(*r) == VIRTIO_GPU_RESP_OK_NODATA;
  }

  // A w x h B8G8R8X8 resource holding pattern(), backed the configured way.
  bool make_framebuffer(uint32_t id, uint32_t w, uint32_t h, GuestBacking& fb) {
    fb = fe_->alloc_backing(uint64_t{w} * h * 4, config_.backing);
    std::vector<uint32_t> row(w);
    for (uint32_t y = 0; y < h; ++y) {
      for (uint32_t x = 0; x < w; ++x) row[x] = pattern(x, y);
      fe_->write_backing(fb, uint64_t{y} * w * 4, std::as_bytes(std::span(row)));
    }
    return ok(test::resource_create_2d_request(id, kFormat, w, h)) &&
           ok(test::attach_backing_request(id, fb.entries)) &&
           ok(test::transfer_to_host_2d_request(id, {0, 0, w, h}, 0));
  }

  bool setup(std::string& error) {
    // The display must have settled (the C backend holds the control queue until SET_PROTOCOL_FEATURES).
    if (!display_.wait_until([](const DisplayServer::Stats& st) { return st.protocol_features_set.has_value(); },
                             std::chrono::milliseconds(kTimeoutMs))) {
      error = "the backend never finished the display negotiation\n" + proc_->log();
      return false;
    }
    auto info = fe_->command(TestFrontend::kControlQueue, test::get_display_info_request(),
                             sizeof(virtio_gpu_resp_display_info), kTimeoutMs);
    if (!info || test::response_type(*info) != VIRTIO_GPU_RESP_OK_DISPLAY_INFO) {
      error = "GET_DISPLAY_INFO failed\n" + proc_->log();
      return false;
    }
    if (!make_framebuffer(kRes1080, 1920, 1080, fb1080_) || !make_framebuffer(kRes4k, 3840, 2160, fb4k_)) {
      error = "framebuffer setup failed\n" + proc_->log();
      return false;
    }
    pipe_ = std::make_unique<CommandPipeline>(*fe_, TestFrontend::kControlQueue, kDepth, kMaxRequest, 4096);
    return true;
  }

  void write_touch(const Touch& t) {
    touch_value_ = (touch_value_ + 0x010203u) & 0xffffffu;
    const uint32_t word = 0xff000000u | touch_value_;
    fe_->write_backing(*t.backing, t.offset, std::as_bytes(std::span(&word, 1)));
  }

  Config config_;
  TempSocketPath sock_;
  std::optional<BackendProcess> proc_;
  DisplayServer display_{{.outputs = {{1920, 1080}}}};
  std::unique_ptr<TestFrontend> fe_;
  std::unique_ptr<CommandPipeline> pipe_;
  GuestBacking fb1080_;
  GuestBacking fb4k_;
  uint32_t bound_ = 0;
  uint64_t updates_before_ = 0;
  uint32_t touch_value_ = 0;
  std::vector<uint64_t> used_at_;
  std::vector<uint64_t> update_at_;
  std::vector<int64_t> update_of_step_;
  std::vector<CommandPipeline::Completion> completions_;
  std::vector<std::string> problems_;
};

namespace {

// ---- cases ----

std::vector<Step> repeat(const Step& step, size_t n) {
  return std::vector<Step>(n, step);
}

Summary run_steps(BenchRun& s, const Config& config, const std::vector<Step>& steps, bool per_command,
                  std::optional<Touch> touch = std::nullopt) {
  uint64_t per_batch_units = per_command ? steps.size() : 1;
  Summary out = measure(
      config,
      [&](std::vector<double>& lat, uint64_t& units) {
        if (!s.run_batch(steps, per_command, lat, touch ? &*touch : nullptr)) return false;
        units += per_batch_units;
        return true;
      },
      s.pid());
  if (!s.problems().empty()) out.error = s.problems().back();
  if (out.ok && touch && !s.touch_shown(*touch)) {
    out.error = "the display does not show the guest's last write";
    out.ok = false;
  }
  return out;
}

Step display_info_step() {
  return Step{.request = test::get_display_info_request(),
              .response_size = sizeof(virtio_gpu_resp_display_info),
              .expect = VIRTIO_GPU_RESP_OK_DISPLAY_INFO,
              .update = false};
}

Step flush_step(uint32_t id, virtio_gpu_rect r) {
  return Step{.request = test::resource_flush_request(id, r), .update = true};
}

Step transfer_step(uint32_t id, virtio_gpu_rect r, uint64_t offset) {
  return Step{.request = test::transfer_to_host_2d_request(id, r, offset)};
}

Summary small_flush(BenchRun& s, const Config& c, size_t depth) {
  if (!s.bind_scanout(kRes1080, 1920, 1080)) return failure("SET_SCANOUT failed");
  return run_steps(s, c, repeat(flush_step(kRes1080, {17, 9, 1, 1}), depth), true);
}

Summary full_frame(BenchRun& s, const Config& c, uint32_t id, uint32_t w, uint32_t h) {
  if (!s.bind_scanout(id, w, h)) return failure("SET_SCANOUT failed");
  GuestBacking& fb = id == kRes1080 ? s.fb1080() : s.fb4k();
  const std::vector<Step> steps{transfer_step(id, {0, 0, w, h}, 0), flush_step(id, {0, 0, w, h})};
  return run_steps(s, c, steps, false, Touch{.backing = &fb, .offset = 0, .x = 0, .y = 0});
}

Summary partial(BenchRun& s, const Config& c, uint32_t side) {
  if (!s.bind_scanout(kRes1080, 1920, 1080)) return failure("SET_SCANOUT failed");
  const uint32_t x = (1920 - side) / 2, y = (1080 - side) / 2;
  const uint64_t offset = (uint64_t{y} * 1920 + x) * 4;
  const std::vector<Step> steps{transfer_step(kRes1080, {x, y, side, side}, offset),
                                flush_step(kRes1080, {x, y, side, side})};
  Summary out = run_steps(s, c, steps, false, Touch{.backing = &s.fb1080(), .offset = offset, .x = x, .y = y});
  if (out.ok && !s.pattern_shown(x + side - 1, y + side - 1)) {
    out.error = "the display does not show the guest's pattern";
    out.ok = false;
  }
  return out;
}

// Create, attach backing, transfer, unref: one cycle per batch, one kick. New ids each cycle.
Summary churn(BenchRun& s, const Config& c, uint32_t w, uint32_t h) {
  GuestBacking backing = s.frontend().alloc_backing(uint64_t{w} * h * 4, c.backing);
  uint32_t id = 1000;
  Summary out = measure(
      c,
      [&](std::vector<double>& lat, uint64_t& units) {
        ++id;
        const std::vector<Step> steps{Step{.request = test::resource_create_2d_request(id, kFormat, w, h)},
                                      Step{.request = test::attach_backing_request(id, backing.entries)},
                                      transfer_step(id, {0, 0, w, h}, 0),
                                      Step{.request = test::resource_unref_request(id)}};
        if (!s.run_batch(steps, false, lat)) return false;
        ++units;
        return true;
      },
      s.pid());
  if (!s.problems().empty()) out.error = s.problems().back();
  s.frontend().free_backing(backing);
  return out;
}

std::vector<CaseDef> all_cases() {
  using S = BenchRun;
  using C = const Config;
  return {
      {"small", "info1", "GET_DISPLAY_INFO, 1 in flight", "cmds", Floor::PingPong,
       [](S& s, C& c) { return run_steps(s, c, repeat(display_info_step(), 1), true); }},
      {"small", "info64", "GET_DISPLAY_INFO, 64 in flight", "cmds", Floor::None,
       [](S& s, C& c) { return run_steps(s, c, repeat(display_info_step(), kDepth), true); }},
      {"small", "flush1", "RESOURCE_FLUSH 1×1 + UPDATE, 1 in flight", "cmds", Floor::PingPong,
       [](S& s, C& c) { return small_flush(s, c, 1); }},
      {"small", "flush64", "RESOURCE_FLUSH 1×1 + UPDATE, 64 in flight", "cmds", Floor::None,
       [](S& s, C& c) { return small_flush(s, c, kDepth); }},
      {"frame", "frame1080", "full frame 1920×1080 (transfer + flush + UPDATE)", "frames", Floor::Memcpy1080,
       [](S& s, C& c) { return full_frame(s, c, kRes1080, 1920, 1080); }},
      {"frame", "frame4k", "full frame 3840×2160 (transfer + flush + UPDATE)", "frames", Floor::Memcpy4k,
       [](S& s, C& c) { return full_frame(s, c, kRes4k, 3840, 2160); }},
      {"partial", "partial64", "partial 64×64 in 1080p (transfer + flush + UPDATE)", "updates", Floor::PingPong,
       [](S& s, C& c) { return partial(s, c, 64); }},
      {"partial", "partial256", "partial 256×256 in 1080p (transfer + flush + UPDATE)", "updates", Floor::PingPong,
       [](S& s, C& c) { return partial(s, c, 256); }},
      {"churn", "churn256", "churn 256×256 (create + attach + transfer + unref)", "cycles", Floor::None,
       [](S& s, C& c) { return churn(s, c, 256, 256); }},
      {"churn", "churn1080", "churn 1920×1080 (create + attach + transfer + unref)", "cycles", Floor::None,
       [](S& s, C& c) { return churn(s, c, 1920, 1080); }},
  };
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"vgpu_bench: ours vs QEMU's vhost-user-gpu, same frontend, same display server"};
  Config config;
  std::string backends_arg = "ours,qemu-10.0,qemu-7.2";
  std::string cases_arg = "small,frame,partial,churn";
  std::string output;
  std::string dump_dir;
  std::string ours_path = VGPU_BINARY;
  std::string qemu10_path = "/usr/lib/qemu/vhost-user-gpu";
  std::string qemu72_path;
  std::string baseline_path;
  std::string backing = "pages";
  bool quick = false;
  app.add_option("--duration-ms", config.duration_ms, "measured time per case and backend")->capture_default_str();
  app.add_option("--warmup-ms", config.warmup_ms, "warm-up time per case and backend")->capture_default_str();
  app.add_option("--backends", backends_arg, "comma-separated: ours, qemu-10.0, qemu-7.2, baseline")
      ->capture_default_str();
  app.add_option("--cases", cases_arg,
                 "comma-separated groups (small, frame, partial, churn) or cases (info1, info64, flush1, flush64, "
                 "frame1080, frame4k, partial64, partial256, churn256, churn1080)")
      ->capture_default_str();
  app.add_option("--backing", backing, "framebuffer backing: pages (4 KiB entries, in order), scattered, one")
      ->capture_default_str();
  app.add_flag("--quick", quick, "smoke run for CI: tiny durations");
  app.add_option("--dump-samples", dump_dir, "write every latency (ns, in order) to DIR/CASE.BACKEND.txt");
  app.add_option("--output", output, "also write the report (markdown, with the machine description) here");
  app.add_option("--ours", ours_path, "our binary (or a wrapper that execs it, e.g. under a profiler)")
      ->capture_default_str();
  app.add_option("--qemu10", qemu10_path, "QEMU 10.0's vhost-user-gpu")->capture_default_str();
  app.add_option("--qemu72", qemu72_path, "QEMU 7.2's vhost-user-gpu (default: the fetch script's cache)");
  app.add_option("--baseline", baseline_path,
                 "the 'baseline' backend: another build of ours (e.g. before a change), for an interleaved "
                 "before/after comparison");
  CLI11_PARSE(app, argc, argv);

  if (quick) {
    config.duration_ms = 30;
    config.warmup_ms = 10;
    config.min_batches = 2;
  }
  if (backing == "pages") {
    config.backing = BackingLayout::Pages;
    config.backing_name = "4 KiB pages, contiguous and in order, one entry each";
  } else if (backing == "scattered") {
    config.backing = BackingLayout::ScatteredPages;
    config.backing_name = "4 KiB pages, permuted so that no two entries are adjacent";
  } else if (backing == "one") {
    config.backing = BackingLayout::OneEntry;
    config.backing_name = "one entry for the whole frame";
  } else {
    std::cerr << "vgpu_bench: --backing must be pages, scattered or one\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);

  Report report;
  report.config = config;
  report.quick = quick;
  for (int i = 0; i < argc; ++i) report.command += (i ? " " : "") + shell_quote(argv[i]);
  std::stringstream bs(backends_arg);
  for (std::string name; std::getline(bs, name, ',');) {
    if (name == "ours") {
      report.backends.push_back(ours_spec(ours_path));
    } else if (name == "qemu-10.0") {
      report.backends.push_back(qemu10_spec(qemu10_path));
    } else if (name == "qemu-7.2") {
      report.backends.push_back(qemu72_spec(qemu72_path));
    } else if (name == "baseline") {
      report.backends.push_back(baseline_spec(baseline_path));
    } else {
      std::cerr << "vgpu_bench: unknown backend '" << name << "' (ours, qemu-10.0, qemu-7.2, baseline)\n";
      return 2;
    }
  }
  for (auto& c : all_cases()) {
    const std::string list = "," + cases_arg + ",";
    if (list.find("," + c.group + ",") != std::string::npos || list.find("," + c.id + ",") != std::string::npos) {
      report.cases.push_back(c);
    }
  }

  report.busy_before = busy_processes();
  report.load_before = loadavg();
  if (!report.busy_before.empty()) {
    std::cerr << "vgpu_bench: WARNING: other heavy processes are running (" << report.busy_before
              << "); figures will be noisy\n";
  }

  std::cerr << "vgpu_bench: floors\n";
  Config floor_config = config;  // a second gives thousands of samples; longer runs only delay the backends
  floor_config.duration_ms = std::min<uint64_t>(config.duration_ms, 1000);
  report.floors.pingpong = eventfd_floor(floor_config);
  report.floors.memcpy1080 = memcpy_floor(floor_config, size_t{1920} * 1080 * 4);
  report.floors.memcpy4k = memcpy_floor(floor_config, size_t{3840} * 2160 * 4);

  // Every backend is started and set up first; then each case runs on each backend in turn (case-major), so
  // that a burst of background load hits all backends alike rather than one of them.
  int failures = 0;
  std::vector<std::unique_ptr<BenchRun>> runs(report.backends.size());
  for (size_t i = 0; i < report.backends.size(); ++i) {
    const BackendSpec& b = report.backends[i];
    if (!b.unavailable.empty()) {
      std::cerr << "vgpu_bench: " << b.name << " skipped: " << b.unavailable << "\n";
      continue;
    }
    std::string error;
    std::cerr << "vgpu_bench: " << b.name << ": starting " << b.path << "\n";
    runs[i] = BenchRun::open(b, config, error);
    if (!runs[i]) {
      std::cerr << "vgpu_bench: " << b.name << ": " << error << "\n";
      report.backend_errors[b.name] = error.substr(0, error.find('\n'));
      ++failures;
    }
  }
  for (size_t c = 0; c < report.cases.size(); ++c) {
    for (size_t i = 0; i < report.backends.size(); ++i) {
      BenchRun* bench_run = runs[i].get();
      const std::string& name = report.backends[i].name;
      if (bench_run == nullptr) continue;
      if (!bench_run->problems().empty()) {
        report.results[{c, name}] = failure("not run: an earlier case failed");
        continue;
      }
      const std::string busy = busy_processes();
      if (!busy.empty()) report.busy_during.insert(busy);
      std::cerr << "vgpu_bench: " << name << ": " << report.cases[c].title << " ... " << std::flush;
      Summary s = report.cases[c].run(*bench_run, config);
      std::cerr << (s.ok ? fmt::format("p50 {} µs, {} {}/s, {} samples", fmt_us(s.p50_ns), fmt_rate(s.rate),
                                       report.cases[c].unit, s.samples)
                         : "ERROR " + s.error)
                << "\n";
      if (!s.ok) {
        ++failures;
        if (bench_run->problems().empty()) bench_run->record_problem(s.error);
      }
      if (!dump_dir.empty()) {
        std::ofstream dump(dump_dir + "/" + report.cases[c].id + "." + name + ".txt");
        for (double v : s.raw_ns) dump << static_cast<uint64_t>(v) << "\n";
      }
      s.raw_ns = {};
      report.results[{c, name}] = s;
    }
  }
  for (size_t i = 0; i < report.backends.size(); ++i) {
    if (!runs[i]) continue;
    const std::string& name = report.backends[i].name;
    for (const auto& e : runs[i]->display().errors()) {
      report.backend_errors[name] += "display: " + e + "; ";
      ++failures;
    }
    if (!runs[i]->problems().empty()) std::cerr << "vgpu_bench: " << name << " log:\n" << runs[i]->log() << "\n";
  }
  runs.clear();
  report.busy_after = busy_processes();
  report.load_after = loadavg();

  const std::string doc = render_document(report);
  std::cout << doc;
  if (!output.empty()) {
    std::ofstream out(output);
    out << doc;
    if (!out) {
      std::cerr << "vgpu_bench: cannot write " << output << "\n";
      return 1;
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace vgpu::bench

int main(int argc, char** argv) {
  return vgpu::bench::run(argc, argv);
}

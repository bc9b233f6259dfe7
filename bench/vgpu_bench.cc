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
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/virtio_gpu.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
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

// ---- time and statistics ----

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

struct Summary {
  size_t samples = 0;
  double p50_ns = 0;
  double p99_ns = 0;
  double rate = 0;  // units per second over the measured wall time
  bool ok = false;
  std::string error;
  std::vector<double> raw_ns;  // every latency in the order measured (--dump-samples)
  double backend_cpu_ns = 0;   // CPU time of the backend process per unit (all threads)
  double harness_cpu_ns = 0;   // CPU time of vgpu_bench (frontend and display server) per unit
};

Summary failure(std::string what) {
  Summary s;
  s.error = std::move(what);
  return s;
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * double(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

Summary summarize(std::vector<double> latencies, uint64_t units, uint64_t elapsed_ns) {
  Summary s;
  s.raw_ns = latencies;
  std::sort(latencies.begin(), latencies.end());
  s.samples = latencies.size();
  s.p50_ns = percentile(latencies, 50);
  s.p99_ns = percentile(latencies, 99);
  s.rate = elapsed_ns > 0 ? double(units) * 1e9 / double(elapsed_ns) : 0;
  s.ok = !latencies.empty();
  return s;
}

struct Config {
  uint64_t duration_ms = 1000;
  uint64_t warmup_ms = 200;
  size_t min_batches = 5;
  BackingLayout backing = BackingLayout::Pages;
  std::string backing_name = "pages";
};

// CPU time (ns) every thread of process `pid` has run, from /proc/PID/task/*/schedstat; 0 when unknown.
uint64_t process_cpu_ns(pid_t pid) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    uint64_t run_ns = 0;
    if (in >> run_ns) total += run_ns;
  }
  return total;
}

// Runs `body` (one batch, returning the latencies it produced and the units done) for warm-up, then for the
// measured duration (at least config.min_batches times). With a backend pid, also the CPU time the backend and
// this process (frontend and display server) spent per unit while measuring.
template <class Body>
Summary measure(const Config& config, Body body, pid_t backend = -1) {
  const uint64_t warm_end = now_ns() + config.warmup_ms * 1'000'000u;
  std::vector<double> latencies;
  uint64_t units = 0;
  while (now_ns() < warm_end) {
    if (!body(latencies, units)) break;
  }
  latencies.clear();
  units = 0;
  const uint64_t backend_cpu0 = backend > 0 ? process_cpu_ns(backend) : 0;
  const uint64_t self_cpu0 = backend > 0 ? process_cpu_ns(::getpid()) : 0;
  const uint64_t start = now_ns();
  const uint64_t end = start + config.duration_ms * 1'000'000u;
  size_t batches = 0;
  while (now_ns() < end || batches < config.min_batches) {
    if (!body(latencies, units)) return failure("failed during the measurement");
    ++batches;
  }
  const uint64_t elapsed = now_ns() - start;
  Summary s = summarize(std::move(latencies), units, elapsed);
  if (backend > 0 && units > 0) {
    s.backend_cpu_ns = double(process_cpu_ns(backend) - backend_cpu0) / double(units);
    s.harness_cpu_ns = double(process_cpu_ns(::getpid()) - self_cpu0) / double(units);
  }
  return s;
}

// ---- floors ----

// One memcpy of `bytes` between two memfd mappings (both prefaulted), per sample.
Summary memcpy_floor(const Config& config, size_t bytes) {
  auto map = [bytes](const char* name) -> std::byte* {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return nullptr;
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    return p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
  };
  std::byte* src = map("vgpu-bench-src");
  std::byte* dst = map("vgpu-bench-dst");
  if (src == nullptr || dst == nullptr) return failure("memfd mapping failed");
  std::memset(src, 0x5a, bytes);
  std::memset(dst, 0, bytes);
  Summary s = measure(config, [&](std::vector<double>& lat, uint64_t& units) {
    const uint64_t t0 = now_ns();
    std::memcpy(dst, src, bytes);
    asm volatile("" : : "r"(dst) : "memory");  // keep the copy
    lat.push_back(double(now_ns() - t0));
    ++units;
    return true;
  });
  ::munmap(src, bytes);
  ::munmap(dst, bytes);
  return s;
}

// A write to one eventfd, the other process's blocking read and its write back, and our blocking read.
Summary eventfd_floor(const Config& config) {
  UniqueFd ping(::eventfd(0, EFD_CLOEXEC));
  UniqueFd pong(::eventfd(0, EFD_CLOEXEC));
  if (!ping || !pong) return failure("eventfd failed");
  constexpr eventfd_t kQuit = 1'000'000;
  const pid_t child = ::fork();
  if (child < 0) return failure("fork failed");
  if (child == 0) {
    for (;;) {
      eventfd_t v = 0;
      if (::eventfd_read(ping.get(), &v) != 0 || v >= kQuit) ::_exit(0);
      ::eventfd_write(pong.get(), 1);
    }
  }
  Summary s = measure(config, [&](std::vector<double>& lat, uint64_t& units) {
    const uint64_t t0 = now_ns();
    eventfd_t v = 0;
    if (::eventfd_write(ping.get(), 1) != 0 || ::eventfd_read(pong.get(), &v) != 0) return false;
    lat.push_back(double(now_ns() - t0));
    ++units;
    return true;
  });
  ::eventfd_write(ping.get(), kQuit);
  int status = 0;
  ::waitpid(child, &status, 0);
  return s;
}

// ---- backends ----

struct BackendSpec {
  std::string name;
  std::string path;
  std::string version;
  std::vector<std::string> args;  // before the socket path
  std::string unavailable;        // why it is skipped; empty when usable
};

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), f) != nullptr) out += buf.data();
  ::pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

bool executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0;
}

// tests/e2e/lib.sh's cache root: $VGPU_CACHE, /var/cache/vhost-gpu when writable, else ~/.cache/vhost-gpu.
std::string cache_dir() {
  if (const char* c = std::getenv("VGPU_CACHE"); c != nullptr && *c != '\0') return c;
  if (::access("/var/cache/vhost-gpu", W_OK) == 0) return "/var/cache/vhost-gpu";
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  return std::string(xdg != nullptr ? xdg : (home != nullptr ? std::string(home) + "/.cache" : "/tmp")) + "/vhost-gpu";
}

BackendSpec ours_spec(const std::string& path) {
  BackendSpec b{.name = "ours", .path = path, .version = "", .args = {"--socket-path"}, .unavailable = ""};
  b.version = run_command("'" + path + "' --version 2>&1 | head -n 1");
  if (!executable(path)) b.unavailable = "not built: " + path;
  return b;
}

// Another build of ours (e.g. before a change), run interleaved with the others so that a before/after
// comparison sees the same load: its column gives an ours/baseline ratio.
BackendSpec baseline_spec(const std::string& path) {
  BackendSpec b = ours_spec(path);
  b.name = "baseline";
  if (path.empty()) b.unavailable = "no --baseline PATH given";
  return b;
}

BackendSpec qemu10_spec(const std::string& path) {
  BackendSpec b{.name = "qemu-10.0", .path = path, .version = "", .args = {"-s"}, .unavailable = ""};
  if (!executable(path)) {
    b.unavailable = path + " is not installed (package qemu-system-gui from bookworm-backports)";
    return b;
  }
  b.version = run_command("dpkg-query -W -f='${Version}' qemu-system-gui 2>/dev/null");
  if (b.version.find(":10.0") == std::string::npos) {
    b.unavailable = path + " is QEMU " + (b.version.empty() ? "of unknown version" : b.version) + ", not 10.0";
  }
  return b;
}

BackendSpec qemu72_spec(std::string path) {
  const std::string cached = cache_dir() + "/qemu72-backend/current/vhost-user-gpu";
  if (path.empty()) path = cached;
  BackendSpec b{.name = "qemu-7.2", .path = path, .version = "", .args = {"-s"}, .unavailable = ""};
  if (!executable(path)) {
    b.unavailable = "not found at " + path + " (run bench/fetch-qemu72-backend.sh, or pass --qemu72 PATH)";
    return b;
  }
  b.version = read_first_line(std::filesystem::path(path).parent_path() / "VERSION");
  return b;
}

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

class Session {
 public:
  static std::unique_ptr<Session> open(const BackendSpec& spec, const Config& config, std::string& error) {
    auto s = std::unique_ptr<Session>(new Session(config));
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

  ~Session() {
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
        return fail("submit failed (pipeline full or request too large)");
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
        return fail(fmt::format("timed out: {}/{} completions, {}/{} UPDATEs", done, n, updates, expected_updates));
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
          return fail(
              fmt::format("command {} answered {:#x}, expected {:#x}", c.tag, c.response_type, steps[c.tag].expect));
        }
        ++done;
      }
      const uint64_t seen = display_.updates() - base;
      if (seen > expected_updates) return fail("more UPDATEs than flushes");
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

  bool fail(const std::string& what) {
    problems_.push_back(what);
    return false;
  }

 private:
  explicit Session(const Config& config) : config_(config) {}

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

// ---- cases ----

enum class Floor { None, PingPong, Memcpy1080, Memcpy4k };

struct CaseDef {
  std::string group;  // small, frame, partial, churn (for --cases)
  std::string id;     // e.g. frame1080 (for --cases too)
  std::string title;
  std::string unit;  // what the rate counts
  Floor floor;
  // Runs the case on a session and returns its summary.
  std::function<Summary(Session&, const Config&)> run;
};

std::vector<Step> repeat(const Step& step, size_t n) {
  return std::vector<Step>(n, step);
}

Summary run_steps(Session& s, const Config& config, const std::vector<Step>& steps, bool per_command,
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

Summary small_flush(Session& s, const Config& c, size_t depth) {
  if (!s.bind_scanout(kRes1080, 1920, 1080)) return failure("SET_SCANOUT failed");
  return run_steps(s, c, repeat(flush_step(kRes1080, {17, 9, 1, 1}), depth), true);
}

Summary full_frame(Session& s, const Config& c, uint32_t id, uint32_t w, uint32_t h) {
  if (!s.bind_scanout(id, w, h)) return failure("SET_SCANOUT failed");
  GuestBacking& fb = id == kRes1080 ? s.fb1080() : s.fb4k();
  const std::vector<Step> steps{transfer_step(id, {0, 0, w, h}, 0), flush_step(id, {0, 0, w, h})};
  return run_steps(s, c, steps, false, Touch{.backing = &fb, .offset = 0, .x = 0, .y = 0});
}

Summary partial(Session& s, const Config& c, uint32_t side) {
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
Summary churn(Session& s, const Config& c, uint32_t w, uint32_t h) {
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
  using S = Session;
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

// ---- report ----

std::string fmt_us(double ns) {
  const double us = ns / 1000.0;
  if (us >= 1000) return fmt::format("{:.0f}", us);
  if (us >= 100) return fmt::format("{:.0f}", us);
  if (us >= 10) return fmt::format("{:.1f}", us);
  return fmt::format("{:.2f}", us);
}

std::string fmt_rate(double r) {
  if (r >= 100) return fmt::format("{:.0f}", r);
  if (r >= 10) return fmt::format("{:.1f}", r);
  return fmt::format("{:.2f}", r);
}

// "frames" -> "frame" for per-unit row names.
std::string unit_one(const std::string& unit) {
  return unit.empty() || unit.back() != 's' ? unit : unit.substr(0, unit.size() - 1);
}

std::string fmt_ratio(double a, double b) {
  if (a <= 0 || b <= 0) return "—";
  return fmt::format("{:.2f}×", a / b);
}

struct Floors {
  Summary pingpong, memcpy1080, memcpy4k;
  [[nodiscard]] const Summary* of(Floor f) const {
    switch (f) {
      case Floor::PingPong: return &pingpong;
      case Floor::Memcpy1080: return &memcpy1080;
      case Floor::Memcpy4k: return &memcpy4k;
      case Floor::None: return nullptr;
    }
    return nullptr;
  }
};

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string mem_total() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  in >> key >> kb >> unit;
  return fmt::format("{:.1f} GiB", double(kb) / (1024.0 * 1024.0));
}

// Other heavy work on the machine while we measure (builds, tests, guests), as "ninja, cc1plus×3".
std::string busy_processes() {
  std::map<std::string, int> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    const std::string comm = read_first_line(entry.path() / "comm");
    for (const char* heavy : {"ninja", "ctest", "cc1plus", "qemu-system-x86", "make", "clang-tidy", "fuzz_"}) {
      if (comm.rfind(heavy, 0) == 0) ++found[comm];
    }
  }
  std::string out;
  for (const auto& [comm, n] : found) {
    out += (out.empty() ? "" : ", ") + comm + (n > 1 ? "×" + std::to_string(n) : "");
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+") ==
                        std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

struct Report {
  std::vector<BackendSpec> backends;  // in table order; skipped ones included
  std::vector<CaseDef> cases;
  std::map<std::pair<size_t, std::string>, Summary> results;  // (case, backend) -> summary
  std::map<std::string, std::string> backend_errors;
  Floors floors;
  std::string command;
  std::string busy_before, busy_after;
  std::set<std::string> busy_during;  // heavy processes seen at the start of a case
  std::string load_before, load_after;
  Config config;
  bool quick = false;
};

std::string machine_description(const Report& r) {
  utsname u{};
  ::uname(&u);
  std::ostringstream o;
  o << "- CPU: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " logical cores online ("
    << ::sysconf(_SC_NPROCESSORS_CONF) << " configured), " << mem_total() << " RAM\n";
  o << "- kernel: " << u.sysname << " " << u.release << " " << u.version << " (" << u.machine << ")\n";
  o << "- compiler: " << VGPU_BENCH_COMPILER << ", build type " << VGPU_BENCH_BUILD_TYPE << "\n";
  const std::string git = run_command(std::string("git -C '") + VGPU_BENCH_SOURCE_DIR +
                                      "' describe --always --dirty --abbrev=12 2>/dev/null");
  o << "- source: " << (git.empty() ? "unknown" : git) << "\n";
  for (const auto& b : r.backends) {
    o << "- backend " << b.name << ": " << b.path;
    if (!b.version.empty()) o << " (" << b.version << ")";
    if (!b.unavailable.empty()) o << " — skipped: " << b.unavailable;
    o << "\n";
  }
  o << "- load average before / after: " << r.load_before << " / " << r.load_after << "\n";
  o << "- other heavy processes (builds, tests, guests) before: " << (r.busy_before.empty() ? "none" : r.busy_before)
    << "; at the start of a case: ";
  if (r.busy_during.empty()) o << "none";
  for (auto it = r.busy_during.begin(); it != r.busy_during.end(); ++it) {
    o << (it == r.busy_during.begin() ? "" : " | ") << *it;
  }
  o << "; after: " << (r.busy_after.empty() ? "none" : r.busy_after) << "\n";
  return o.str();
}

std::string render(const Report& r) {
  std::ostringstream o;
  std::vector<size_t> live;  // backends with results
  for (size_t i = 0; i < r.backends.size(); ++i) {
    if (r.backends[i].unavailable.empty()) live.push_back(i);
  }
  const bool have_ours = !live.empty() && r.backends[live[0]].name == "ours";
  std::vector<size_t> theirs;
  for (size_t i : live) {
    if (r.backends[i].name != "ours") theirs.push_back(i);
  }

  o << "| case | metric |";
  for (size_t i : live) o << " " << r.backends[i].name << " |";
  if (have_ours) {
    for (size_t i : theirs) o << " ours/" << r.backends[i].name << " |";
  }
  o << " floor | " << (have_ours ? "ours/floor |" : "") << "\n";
  o << "|---|---|";
  for (size_t k = 0; k < live.size() + (have_ours ? theirs.size() : 0) + 1 + (have_ours ? 1 : 0); ++k) o << "---:|";
  o << "\n";

  for (size_t c = 0; c < r.cases.size(); ++c) {
    const CaseDef& cd = r.cases[c];
    const Summary* floor = r.floors.of(cd.floor);
    const bool cpu_floor = cd.floor == Floor::Memcpy1080 || cd.floor == Floor::Memcpy4k;  // a memcpy is all CPU
    struct Metric {
      std::string name;
      std::function<std::string(double)> show;
      std::function<double(const Summary&)> value;
      std::function<double(const Summary&)> floor_value;  // nullptr: no floor for this row
      bool ratio;                                         // ours/theirs and ours/floor columns
    };
    const auto us = [](double v) { return fmt_us(v); };
    const auto count = [](double v) { return std::to_string(static_cast<uint64_t>(v)); };
    const std::vector<Metric> metrics{
        {"p50 latency µs ↓", us, [](const Summary& s) { return s.p50_ns; }, [](const Summary& f) { return f.p50_ns; },
         true},
        {"p99 latency µs ↓", us, [](const Summary& s) { return s.p99_ns; }, [](const Summary& f) { return f.p99_ns; },
         true},
        {cd.unit + "/s ↑", [](double v) { return fmt_rate(v); }, [](const Summary& s) { return s.rate; },
         [](const Summary& f) { return f.rate; }, true},
        {"backend CPU µs/" + unit_one(cd.unit) + " ↓", us, [](const Summary& s) { return s.backend_cpu_ns; },
         cpu_floor ? std::function<double(const Summary&)>([](const Summary& f) { return f.p50_ns; }) : nullptr, true},
        {"bench CPU µs/" + unit_one(cd.unit) + " (frontend + display server)", us,
         [](const Summary& s) { return s.harness_cpu_ns; }, nullptr, false},
        {"samples", count, [](const Summary& s) { return double(s.samples); },
         [](const Summary& f) { return double(f.samples); }, false},
    };
    auto result = [&](size_t b) -> const Summary* {
      auto it = r.results.find({c, r.backends[b].name});
      return it == r.results.end() ? nullptr : &it->second;
    };
    for (size_t m = 0; m < metrics.size(); ++m) {
      const Metric& met = metrics[m];
      o << "| " << (m == 0 ? cd.title : "") << " | " << met.name << " |";
      for (size_t b : live) {
        const Summary* s = result(b);
        o << " " << (s == nullptr ? "—" : (s->ok ? met.show(met.value(*s)) : std::string("error"))) << " |";
      }
      const Summary* ours = have_ours ? result(live[0]) : nullptr;
      const bool ours_ok = ours != nullptr && ours->ok && met.ratio;
      if (have_ours) {
        for (size_t b : theirs) {
          const Summary* t = result(b);
          o << " " << (ours_ok && t != nullptr && t->ok ? fmt_ratio(met.value(*ours), met.value(*t)) : "—") << " |";
        }
      }
      const bool floor_ok = floor != nullptr && floor->ok && met.floor_value;
      o << " " << (floor_ok ? met.show(met.floor_value(*floor)) : "—") << " |";
      if (have_ours) {
        o << " " << (ours_ok && floor_ok ? fmt_ratio(met.value(*ours), met.floor_value(*floor)) : "—") << " |";
      }
      o << "\n";
    }
  }
  return o.str();
}

std::string render_notes(const Report& r) {
  std::ostringstream o;
  o << "Floors: eventfd ping-pong between two processes (small commands, partial updates) p50 "
    << fmt_us(r.floors.pingpong.p50_ns) << " µs, p99 " << fmt_us(r.floors.pingpong.p99_ns) << " µs ("
    << r.floors.pingpong.samples << " samples); one memcpy of the frame between two memfd mappings: 1920×1080 p50 "
    << fmt_us(r.floors.memcpy1080.p50_ns) << " µs (" << fmt::format("{:.1f}", 8294400.0 / r.floors.memcpy1080.p50_ns)
    << " GB/s), 3840×2160 p50 " << fmt_us(r.floors.memcpy4k.p50_ns) << " µs ("
    << fmt::format("{:.1f}", 33177600.0 / r.floors.memcpy4k.p50_ns) << " GB/s).\n\n";
  for (const auto& [c_b, s] : r.results) {
    if (!s.ok || !s.error.empty()) {
      o << "- " << c_b.second << ", " << r.cases[c_b.first].title << ": " << (s.error.empty() ? "no samples" : s.error)
        << "\n";
    }
  }
  for (const auto& [b, e] : r.backend_errors) o << "- " << b << ": " << e << "\n";
  for (const auto& b : r.backends) {
    if (!b.unavailable.empty()) o << "- " << b.name << " skipped: " << b.unavailable << "\n";
  }
  return o.str();
}

std::string render_document(const Report& r) {
  std::ostringstream o;
  char date[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  o << "# vgpu_bench " << date << (r.quick ? " (--quick: smoke durations, not for comparison)" : "") << "\n\n";
  o << "Command: `" << r.command << "`\n\n";
  o << "## Machine\n\n" << machine_description(r) << "\n";
  o << "## Method\n\n"
    << "The test frontend (tests/support) plays QEMU 10.0: memfd guest memory (256 MiB in two regions), split "
       "virtqueues of 256 entries with EVENT_IDX and indirect descriptors, GPU_SET_SOCKET to a display server "
       "thread that serves QEMU's side of the display protocol (one 1920×1080 output, EDID offered) and copies "
       "each UPDATE into its surface. Framebuffers are B8G8R8X8 resources whose backing is "
    << r.config.backing_name
    << " (ATTACH_BACKING entries). A batch is published on the control queue and kicked once; it is complete when "
       "every command is in the used ring and every UPDATE its flushes cause has reached the display server's "
       "surface. Latency: from the first publish to the frontend seeing all that (CLOCK_MONOTONIC), per command "
       "for the small-command cases, per batch otherwise. Frames and partial updates write one pixel of guest "
       "memory first and check it on the display afterwards. Each case: "
    << r.config.warmup_ms << " ms warm-up, then " << r.config.duration_ms << " ms (at least " << r.config.min_batches
    << " batches). Ratios are ours ÷ theirs: below 1 is better for latency (↓), above 1 for rates (↑).\n\n";
  o << "## Results\n\n" << render(r) << "\n" << render_notes(r);
  return o.str();
}

std::string loadavg() {
  return read_first_line("/proc/loadavg");
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
  std::vector<std::unique_ptr<Session>> sessions(report.backends.size());
  for (size_t i = 0; i < report.backends.size(); ++i) {
    const BackendSpec& b = report.backends[i];
    if (!b.unavailable.empty()) {
      std::cerr << "vgpu_bench: " << b.name << " skipped: " << b.unavailable << "\n";
      continue;
    }
    std::string error;
    std::cerr << "vgpu_bench: " << b.name << ": starting " << b.path << "\n";
    sessions[i] = Session::open(b, config, error);
    if (!sessions[i]) {
      std::cerr << "vgpu_bench: " << b.name << ": " << error << "\n";
      report.backend_errors[b.name] = error.substr(0, error.find('\n'));
      ++failures;
    }
  }
  for (size_t c = 0; c < report.cases.size(); ++c) {
    for (size_t i = 0; i < report.backends.size(); ++i) {
      Session* session = sessions[i].get();
      const std::string& name = report.backends[i].name;
      if (session == nullptr) continue;
      if (!session->problems().empty()) {
        report.results[{c, name}] = failure("not run: an earlier case failed");
        continue;
      }
      const std::string busy = busy_processes();
      if (!busy.empty()) report.busy_during.insert(busy);
      std::cerr << "vgpu_bench: " << name << ": " << report.cases[c].title << " ... " << std::flush;
      Summary s = report.cases[c].run(*session, config);
      std::cerr << (s.ok ? fmt::format("p50 {} µs, {} {}/s, {} samples", fmt_us(s.p50_ns), fmt_rate(s.rate),
                                       report.cases[c].unit, s.samples)
                         : "ERROR " + s.error)
                << "\n";
      if (!s.ok) {
        ++failures;
        if (session->problems().empty()) session->fail(s.error);
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
    if (!sessions[i]) continue;
    const std::string& name = report.backends[i].name;
    for (const auto& e : sessions[i]->display().errors()) {
      report.backend_errors[name] += "display: " + e + "; ";
      ++failures;
    }
    if (!sessions[i]->problems().empty())
      std::cerr << "vgpu_bench: " << name << " log:\n" << sessions[i]->log() << "\n";
  }
  sessions.clear();
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

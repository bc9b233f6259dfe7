// The markdown report of vgpu_bench (report.h): number formatting, the machine description from /proc and
// uname, the results table and notes, and the whole document.
#include "report.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace vgpu::bench {
namespace {

// "frames" -> "frame" for per-unit row names.
std::string unit_one(const std::string& unit) {
  return unit.empty() || unit.back() != 's' ? unit : unit.substr(0, unit.size() - 1);
}

std::string fmt_ratio(double a, double b) {
  if (a <= 0 || b <= 0) return "—";
  return fmt::format("{:.2f}×", a / b);
}

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

}  // namespace

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

}  // namespace vgpu::bench

// Time, statistics and floors of vgpu_bench: CLOCK_MONOTONIC nanoseconds, a case's Summary (percentiles, rate,
// CPU time per unit), the run Config, measure() (warm-up, then the measured batches), and the floors a case is
// compared with: one memcpy of the frame between two memfd mappings, and an eventfd ping-pong between two processes.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "support/test_frontend.h"

namespace vgpu::bench {

// ---- time and statistics ----

// CLOCK_MONOTONIC in nanoseconds.
uint64_t now_ns();

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

// A failed Summary saying `what` went wrong.
Summary failure(std::string what);

// p50, p99 and the rate of `units` done in `elapsed_ns`; keeps the latencies in their order as raw_ns.
Summary summarize(std::vector<double> latencies, uint64_t units, uint64_t elapsed_ns);

// How long each case runs, and how the framebuffers are backed.
struct Config {
  uint64_t duration_ms = 1000;
  uint64_t warmup_ms = 200;
  size_t min_batches = 5;
  test::BackingLayout backing = test::BackingLayout::Pages;
  std::string backing_name = "pages";
};

// CPU time (ns) every thread of process `pid` has run, from /proc/PID/task/*/schedstat; 0 when unknown.
uint64_t process_cpu_ns(pid_t pid);

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

enum class Floor { None, PingPong, Memcpy1080, Memcpy4k };

// The floors measured once per run, and the one a case is compared with.
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

// One memcpy of `bytes` between two memfd mappings (both prefaulted), per sample.
Summary memcpy_floor(const Config& config, size_t bytes);

// A write to one eventfd, the other process's blocking read and its write back, and our blocking read.
Summary eventfd_floor(const Config& config);

}  // namespace vgpu::bench

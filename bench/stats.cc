// Time, statistics and floors of vgpu_bench (stats.h): percentiles, per-process CPU time from /proc, and the
// memcpy and eventfd ping-pong floors.
#include "stats.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "common/unique_fd.h"

namespace vgpu::bench {
namespace {

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * double(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

Summary failure(std::string what) {
  Summary s;
  s.error = std::move(what);
  return s;
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

// ---- floors ----

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

}  // namespace vgpu::bench

// Logging: spdlog with levels, one logger for the process. Use the spdlog macros through these names so
// the level can be changed from the command line (`--log-level`).
//
//   VGPU_LOG_INFO("frontend connected on fd {}", fd);
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string_view>

#define VGPU_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define VGPU_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define VGPU_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define VGPU_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define VGPU_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)

// For lines a guest (or a peer) can trigger at will: at most LogRateLimit's burst per window from one call
// site, then silence until the window ends; the next line printed says how many were suppressed. A flood of
// bad commands must not turn into a flood of log writes (audit F9).
#define VGPU_LOG_WARN_LIMITED(...)                                                                    \
  do {                                                                                                \
    static ::vgpu::LogRateLimit vgpu_log_limit;                                                       \
    uint64_t vgpu_log_suppressed = 0;                                                                 \
    if (vgpu_log_limit.allow(vgpu_log_suppressed)) {                                                  \
      if (vgpu_log_suppressed > 0) SPDLOG_WARN("({} similar lines suppressed)", vgpu_log_suppressed); \
      SPDLOG_WARN(__VA_ARGS__);                                                                       \
    }                                                                                                 \
  } while (false)

namespace vgpu {

// One call site's budget of lines (see VGPU_LOG_WARN_LIMITED). Single-threaded, like the event loop.
class LogRateLimit {
 public:
  static constexpr uint32_t kBurst = 10;        // lines per window
  static constexpr int64_t kWindowMs = 10'000;  // window length

  // True when a line may be printed now; then `suppressed` holds how many were refused since the last one.
  bool allow(uint64_t& suppressed) { return allow_at(steady_ms(), suppressed); }
  // The same at a given time (milliseconds of a monotonic clock); for tests.
  bool allow_at(int64_t now_ms, uint64_t& suppressed);

 private:
  static int64_t steady_ms();

  int64_t window_start_ms_ = 0;
  uint32_t in_window_ = 0;
  uint64_t suppressed_ = 0;
  bool started_ = false;
};

// Parses "trace|debug|info|warn|error|off"; returns false for anything else.
bool set_log_level(std::string_view name);

// Sends logs to stderr with a short, grep-friendly pattern (tests assert on our log lines).
void init_logging();

}  // namespace vgpu

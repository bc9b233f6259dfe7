#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <array>
#include <chrono>
#include <utility>

namespace vgpu {

bool set_log_level(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 6> kLevels{{
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},
      {"off", spdlog::level::off},
  }};
  for (const auto& [text, level] : kLevels) {
    if (text == name) {
      spdlog::set_level(level);
      return true;
    }
  }
  return false;
}

bool LogRateLimit::allow_at(int64_t now_ms, uint64_t& suppressed) {
  if (!started_ || now_ms - window_start_ms_ >= kWindowMs) {
    started_ = true;
    window_start_ms_ = now_ms;
    in_window_ = 0;
  }
  if (in_window_ >= kBurst) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  suppressed = std::exchange(suppressed_, 0);
  return true;
}

int64_t LogRateLimit::steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void init_logging() {
  auto logger = spdlog::stderr_logger_st("vhost-gpu");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::flush_on(spdlog::level::trace);
}

}  // namespace vgpu

// Logging: spdlog with levels, one logger for the process. Use the spdlog macros through these names so
// the level can be changed from the command line (`--log-level`).
//
//   VGPU_LOG_INFO("frontend connected on fd {}", fd);
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#define VGPU_LOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define VGPU_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define VGPU_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define VGPU_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define VGPU_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)

namespace vgpu {

// Parses "trace|debug|info|warn|error|off"; returns false for anything else.
bool set_log_level(std::string_view name);

// Sends logs to stderr with a short, grep-friendly pattern (tests assert on our log lines).
void init_logging();

}  // namespace vgpu

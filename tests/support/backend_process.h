// Runs a backend binary (ours, or QEMU's vhost-user-gpu) as a child process for integration tests and
// benchmarks: stderr goes to a log file the test can search, and the process is killed on destruction.
//
//   auto be = BackendProcess::start({VGPU_BINARY, "--socket-path", path});
//   ASSERT_TRUE(be->wait_for_socket(path));
//   ...
//   EXPECT_TRUE(be->log_contains("command GET_DISPLAY_INFO"));
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace vgpu::test {

class BackendProcess {
 public:
  // Starts argv[0] with argv; stdout and stderr go to a fresh temporary log file.
  static std::optional<BackendProcess> start(const std::vector<std::string>& argv);

  BackendProcess(BackendProcess&& other) noexcept;
  BackendProcess& operator=(BackendProcess&&) = delete;
  BackendProcess(const BackendProcess&) = delete;
  BackendProcess& operator=(const BackendProcess&) = delete;
  ~BackendProcess();

  // Waits until something accepts connections on `path`.
  bool wait_for_socket(const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits until the log contains `text`.
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  [[nodiscard]] bool log_contains(const std::string& text) const;
  [[nodiscard]] std::string log() const;

  // Sends a signal and waits for the exit status (nullopt on timeout: the process is then killed).
  std::optional<int> stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for the process to exit by itself; returns its exit code (128 + signal if killed).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  [[nodiscard]] bool running();
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  BackendProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// A fresh socket path in a private temporary directory (removed with the object).
class TempSocketPath {
 public:
  TempSocketPath();
  ~TempSocketPath();
  TempSocketPath(const TempSocketPath&) = delete;
  TempSocketPath& operator=(const TempSocketPath&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace vgpu::test

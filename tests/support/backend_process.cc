#include "support/backend_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/unique_fd.h"

namespace vgpu::test {

namespace {

using Clock = std::chrono::steady_clock;

// True when a socket is listening on `path`, found in /proc/net/unix without connecting: a probe connection
// would count as a frontend (and end a backend started with --exit-on-disconnect).
bool is_listening(const std::string& path) {
  constexpr unsigned long kAcceptConnFlag = 0x10000;  // __SO_ACCEPTCON
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string num, refcount, protocol, flags, type, state, inode, sock_path;
    fields >> num >> refcount >> protocol >> flags >> type >> state >> inode >> sock_path;
    if (sock_path == path && (std::stoul(flags, nullptr, 16) & kAcceptConnFlag) != 0) return true;
  }
  return false;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::optional<BackendProcess> BackendProcess::start(const std::vector<std::string>& argv) {
  char log_template[] = "/tmp/vgpu-backend-log-XXXXXX";
  const int log_fd = ::mkstemp(log_template);
  if (log_fd < 0) return std::nullopt;
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return std::nullopt;
  }
  if (pid == 0) {
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(log_fd);
  return BackendProcess(pid, log_template);
}

BackendProcess::BackendProcess(BackendProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), log_path_(std::move(other.log_path_)), exit_code_(other.exit_code_) {}

BackendProcess::~BackendProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!log_path_.empty() && std::getenv("VGPU_KEEP_LOGS") == nullptr) ::unlink(log_path_.c_str());
}

bool BackendProcess::wait_for_socket(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (is_listening(path)) return true;
    if (!running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool BackendProcess::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (log_contains(text)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return log_contains(text);
}

std::string BackendProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool BackendProcess::log_contains(const std::string& text) const {
  return log().find(text) != std::string::npos;
}

bool BackendProcess::running() {
  if (exit_code_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = decode_status(status);
    return false;
  }
  return r == 0;
}

std::optional<int> BackendProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (!running()) return exit_code_;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::nullopt;
}

std::optional<int> BackendProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (!running()) return exit_code_;
  ::kill(pid_, signal);
  return wait_exit(timeout);
}

TempSocketPath::TempSocketPath() {
  char dir_template[] = "/tmp/vgpu-test-XXXXXX";
  if (::mkdtemp(dir_template) != nullptr) dir_ = dir_template;
  path_ = dir_ + "/vgpu.sock";
}

TempSocketPath::~TempSocketPath() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

}  // namespace vgpu::test

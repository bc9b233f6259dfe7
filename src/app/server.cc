#include "app/server.h"

#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/log.h"

namespace vgpu {

namespace {

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

Result<sockaddr_un, std::string> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return fail("socket path too long (" + std::to_string(path.size()) + " bytes, at most " +
                std::to_string(sizeof(addr.sun_path) - 1) + "): " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

const sockaddr* as_sockaddr(const sockaddr_un& a) {
  // SAFETY: sockaddr_un is the AF_UNIX member of the sockaddr family; the socket API takes it by base type.
  return reinterpret_cast<const sockaddr*>(&a);
}

// A socket file nobody accepts on is a leftover from a crashed run: safe to replace.
bool is_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  return ::connect(probe.get(), as_sockaddr(addr), sizeof(addr)) != 0 && errno == ECONNREFUSED;
}

}  // namespace

Server::Server(Backend& backend, EventLoop& loop, ServerConfig config)
    : backend_(backend), loop_(loop), config_(std::move(config)) {}

Server::~Server() {
  session_.reset();
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

Result<void, std::string> Server::listen_on_path(const std::string& path) {
  // Signals first: once the socket accepts, a supervisor may signal us (SIGUSR1's default action would kill).
  if (auto r = setup_signals(); !r) return r;
  auto addr = unix_address(path);
  if (!addr) return fail(addr.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail(errno_text("socket"));
  if (::bind(fd.get(), as_sockaddr(*addr), sizeof(*addr)) != 0) {
    if (errno != EADDRINUSE || !is_stale_socket(path, *addr)) return fail(errno_text("bind " + path));
    VGPU_LOG_INFO("replacing stale socket {}", path);
    ::unlink(path.c_str());
    if (::bind(fd.get(), as_sockaddr(*addr), sizeof(*addr)) != 0) return fail(errno_text("bind " + path));
  }
  socket_path_ = path;
  if (::listen(fd.get(), 1) != 0) return fail(errno_text("listen " + path));
  if (auto r = loop_.add(fd.get(), {Token::Listener}, EPOLLIN); !r) return fail(errno_text("epoll add listener"));
  listener_ = std::move(fd);
  VGPU_LOG_INFO("listening on {}", path);
  return {};
}

Result<void, std::string> Server::use_fd(int fd) {
  if (auto r = setup_signals(); !r) return r;
  int accepting = 0;
  socklen_t len = sizeof(accepting);
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0) {
    return fail(errno_text("--fd " + std::to_string(fd) + " is not a socket"));
  }
  if (accepting != 0) {
    listener_ = UniqueFd(fd);
    if (auto r = loop_.add(fd, {Token::Listener}, EPOLLIN); !r) return fail(errno_text("epoll add listener"));
    VGPU_LOG_INFO("accepting on inherited listening socket fd {}", fd);
    return {};
  }
  connected_fd_only_ = true;
  VGPU_LOG_INFO("using inherited connected socket fd {}", fd);
  start_session(UniqueFd(fd));
  return {};
}

Result<void, std::string> Server::setup_signals() {
  if (signal_fd_) return {};  // already set up
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGUSR1);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return fail(errno_text("sigprocmask"));
  signal_fd_ = UniqueFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return fail(errno_text("signalfd"));
  if (auto r = loop_.add(signal_fd_.get(), {Token::Signal}, EPOLLIN); !r) return fail(errno_text("epoll add"));
  // Writes to a frontend that hung up must fail with EPIPE, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  return {};
}

void Server::accept_frontend() {
  UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) {
    VGPU_LOG_WARN("accept failed: {}", std::strerror(errno));
    return;
  }
  // One frontend at a time: stop accepting until this one is gone (a second one waits in the backlog).
  loop_.remove(listener_.get());
  VGPU_LOG_INFO("frontend connected");
  start_session(std::move(fd));
}

void Server::start_session(UniqueFd socket) {
  const int fd = socket.get();
  session_ =
      std::make_unique<vhost_user::Session>(std::move(socket), backend_, loop_, config_.frontend_recv_timeout_ms);
  if (auto r = loop_.add(fd, {Token::FrontendSocket}, EPOLLIN); !r) end_session("cannot poll the frontend socket");
}

void Server::end_session(const std::string& why, bool clean) {
  if (session_) {
    loop_.remove(session_->socket_fd());
    session_.reset();  // releases mappings, eventfds and resets the device
  }
  if (clean) {
    VGPU_LOG_INFO("frontend disconnected: {}", why);
  } else {
    VGPU_LOG_WARN("dropping the frontend: {}", why);
  }
  if (config_.exit_on_disconnect || connected_fd_only_ || !listener_) {
    stop_ = true;
    return;
  }
  if (auto r = loop_.add(listener_.get(), {Token::Listener}, EPOLLIN); !r) {
    VGPU_LOG_ERROR("cannot poll the listening socket again: {}", std::strerror(r.error()));
    exit_code_ = 1;
    stop_ = true;
    return;
  }
  VGPU_LOG_INFO("waiting for the next frontend");
}

void Server::on_frontend_readable() {
  auto r = session_->on_readable();
  if (!r) {
    end_session(std::string(vhost_user::to_string(r.error())) + session_->error_detail(),
                r.error() == vhost_user::SessionError::Disconnected);
  }
}

int Server::run() {
  if (auto r = setup_signals(); !r) {
    VGPU_LOG_ERROR("{}", r.error());
    return 1;
  }
  while (!stop_) {
    auto events = loop_.wait(-1);
    if (!events) {
      VGPU_LOG_ERROR("epoll_wait: {}", std::strerror(events.error()));
      return 1;
    }
    for (const Event& ev : *events) {
      if (stop_) break;
      switch (ev.source.token) {
        case Token::Listener: accept_frontend(); break;
        case Token::FrontendSocket:
          if (session_) on_frontend_readable();
          break;
        case Token::QueueKick:
          if (session_) session_->on_kick(ev.source.index);
          break;
        case Token::BackendChannel:
          if (session_) session_->on_backend_channel(ev.events);
          break;
        case Token::BackendTimer:
          if (session_) session_->on_backend_timer();
          break;
        case Token::Signal: {
          signalfd_siginfo info{};
          if (::read(signal_fd_.get(), &info, sizeof(info)) != sizeof(info)) break;
          if (info.ssi_signo == SIGUSR1) {
            if (config_.on_sigusr1) config_.on_sigusr1();
            break;
          }
          VGPU_LOG_INFO("received {}, exiting", strsignal(static_cast<int>(info.ssi_signo)));
          stop_ = true;
          break;
        }
        case Token::DisplaySocket:
        case Token::RendererPoll:
        case Token::RendererTimer: backend_.on_event(ev.source, ev.events); break;
      }
    }
  }
  return exit_code_;
}

}  // namespace vgpu

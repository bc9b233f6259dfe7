// The process's event loop: accepts one vhost-user frontend at a time, runs its Session, and after a
// disconnect waits for the next frontend (QEMU reconnects with `-chardev socket,reconnect=N`) unless told to
// exit. SIGTERM and SIGINT end the loop cleanly (vhost-user.rst: the backend must end quickly on SIGTERM).
//
//   Server server(device, loop, {.exit_on_disconnect = false});
//   if (auto r = server.listen_on_path("/tmp/gpu.sock"); !r) ...;
//   return server.run();
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/event_loop.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "vhost_user/backend.h"
#include "vhost_user/session.h"

namespace vgpu {

struct ServerConfig {
  bool exit_on_disconnect = false;
  // Called on SIGUSR1 (e.g. to write the headless frames as PNG).
  std::function<void()> on_sigusr1;
  // A frontend that stops mid-message for this long is dropped instead of stalling the loop.
  int frontend_recv_timeout_ms = 5000;
};

class Server {
 public:
  Server(Backend& backend, EventLoop& loop, ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Creates, binds and listens on a UNIX socket. A stale socket file (nobody accepting) is replaced; a
  // path that is in use or is not a socket is an error (message in the string).
  Result<void, std::string> listen_on_path(const std::string& path);
  // Uses an inherited fd: a listening socket (socket activation) or an already connected frontend.
  Result<void, std::string> use_fd(int fd);

  // Runs until a signal, or until the frontend disconnects when exiting on disconnect. Returns the exit code.
  int run();

 private:
  Result<void, std::string> setup_signals();
  void accept_frontend();
  void start_session(UniqueFd socket);
  // `clean`: the frontend hung up; otherwise it was dropped for a protocol error (logged as a warning).
  void end_session(const std::string& why, bool clean = false);
  void on_frontend_readable();

  Backend& backend_;
  EventLoop& loop_;
  ServerConfig config_;
  UniqueFd listener_;
  std::string socket_path_;  // unlinked on exit when we created it
  UniqueFd signal_fd_;
  std::unique_ptr<vhost_user::Session> session_;
  bool connected_fd_only_ = false;  // --fd with a connected socket: no listener to go back to
  bool stop_ = false;
  int exit_code_ = 0;
};

}  // namespace vgpu

// The real vhost-gpu binary over a real socket, driven by the test frontend (tests/support).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <csignal>
#include <cstring>
#include <thread>

#include "support/backend_process.h"
#include "support/test_frontend.h"

namespace vgpu::test {
namespace {

using vhost_user::FrontendRequest;

class Daemon : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{VGPU_BINARY, "--socket-path", sock_.path(), "--log-level", "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = BackendProcess::start(argv);
    ASSERT_TRUE(p);
    backend_.emplace(std::move(*p));
    ASSERT_TRUE(backend_->wait_for_socket(sock_.path())) << backend_->log();
  }
  std::unique_ptr<TestFrontend> negotiated(TestFrontendOptions options = {}) {
    auto fe = TestFrontend::connect(sock_.path(), options);
    EXPECT_TRUE(fe);
    if (!fe) return nullptr;
    EXPECT_TRUE(fe->negotiate()) << fe->error() << "\n" << backend_->log();
    return fe;
  }
  static std::vector<std::byte> display_info_request() {
    virtio_gpu_ctrl_hdr req{};
    req.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO;
    auto bytes = bytes_of(req);
    return {bytes.begin(), bytes.end()};
  }
  static uint32_t response_type(const std::vector<std::byte>& resp) {
    virtio_gpu_ctrl_hdr hdr{};
    std::memcpy(&hdr, resp.data(), std::min(resp.size(), sizeof(hdr)));
    return hdr.type;
  }

  TempSocketPath sock_;
  std::optional<BackendProcess> backend_;
};

TEST_F(Daemon, Negotiation_LikeQemu_Completes) {
  start();
  auto fe = negotiated();
  ASSERT_TRUE(fe);
  EXPECT_NE(fe->backend_features() & (uint64_t{1} << 32), 0u);  // VIRTIO_F_VERSION_1
}

TEST_F(Daemon, Negotiation_WithAddMemReg_Completes) {
  start();
  auto fe = negotiated({.add_mem_reg = true});
  EXPECT_TRUE(fe);
}

TEST_F(Daemon, GetConfig_TwoOutputs_ReportsTwoScanouts) {
  start({"--outputs", "2"});
  auto fe = negotiated();
  ASSERT_TRUE(fe);
  auto config = fe->get_config();
  ASSERT_TRUE(config);
  EXPECT_EQ(config->num_scanouts, 2u);
}

TEST_F(Daemon, ControlCommand_Kicked_ArrivesAndIsAnswered) {
  start();
  auto fe = negotiated();
  ASSERT_TRUE(fe);
  auto resp = fe->command(TestFrontend::kControlQueue, display_info_request(), sizeof(virtio_gpu_resp_display_info));
  ASSERT_TRUE(resp) << backend_->log();
  EXPECT_EQ(response_type(*resp), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
  EXPECT_TRUE(backend_->log_contains("command GET_DISPLAY_INFO"));
}

TEST_F(Daemon, ControlCommands_Many_AllAnswered) {
  start();
  auto fe = negotiated();
  ASSERT_TRUE(fe);
  int answered = 0;
  for (int i = 0; i < 600; ++i) {  // more than the queue size: indices wrap in the ring
    answered += fe->command(TestFrontend::kControlQueue, display_info_request(), sizeof(virtio_gpu_resp_display_info))
                        .has_value()
                    ? 1
                    : 0;
  }
  EXPECT_EQ(answered, 600);
}

TEST_F(Daemon, CursorCommand_Kicked_ReturnedWithoutResponse) {
  start();
  auto fe = negotiated();
  ASSERT_TRUE(fe);
  virtio_gpu_update_cursor cursor{};
  cursor.hdr.type = VIRTIO_GPU_CMD_MOVE_CURSOR;
  auto resp = fe->command(TestFrontend::kCursorQueue, bytes_of(cursor), 0);
  ASSERT_TRUE(resp);
  EXPECT_TRUE(resp->empty());
}

TEST_F(Daemon, GarbageHeader_Sent_DroppedWithOneLogLineAndAcceptsNext) {
  start();
  {
    auto garbage = VhostUserClient::connect(sock_.path());
    ASSERT_TRUE(garbage);
    const std::array<uint32_t, 3> bad{0xffffffffu, 0x7u, 0x0u};  // unknown request, version 3
    ASSERT_TRUE(garbage->send_raw(std::as_bytes(std::span(bad))));
    EXPECT_TRUE(garbage->wait_closed());
  }
  EXPECT_TRUE(backend_->wait_for_log("dropping the frontend"));
  auto fe = negotiated();  // the daemon waits for the next frontend
  EXPECT_TRUE(fe);
}

TEST_F(Daemon, Frontend_HangsUpMidSession_NextFrontendWorks) {
  start();
  {
    auto first = negotiated();
    ASSERT_TRUE(first);
  }
  auto second = negotiated();
  ASSERT_TRUE(second);
  auto resp =
      second->command(TestFrontend::kControlQueue, display_info_request(), sizeof(virtio_gpu_resp_display_info));
  EXPECT_TRUE(resp);
}

TEST_F(Daemon, Frontend_StopsMidMessage_DroppedAfterTimeout) {
  start();
  auto stalled = VhostUserClient::connect(sock_.path());
  ASSERT_TRUE(stalled);
  const std::array<uint32_t, 2> partial{static_cast<uint32_t>(FrontendRequest::GetFeatures), 0x1u};  // 8 of 12
  ASSERT_TRUE(stalled->send_raw(std::as_bytes(std::span(partial))));
  EXPECT_TRUE(stalled->wait_closed(10000)) << backend_->log();
}

TEST_F(Daemon, ExitOnDisconnect_FrontendLeaves_ExitsZero) {
  start({"--exit-on-disconnect"});
  { auto fe = negotiated(); }
  EXPECT_EQ(backend_->wait_exit(), 0) << backend_->log();
}

TEST_F(Daemon, Sigterm_WhileServing_ExitsZeroAndRemovesSocket) {
  start();
  auto fe = negotiated();
  EXPECT_EQ(backend_->stop(SIGTERM), 0);
  struct stat st {};
  EXPECT_NE(::stat(sock_.path().c_str(), &st), 0);
}

TEST_F(Daemon, InheritedConnectedFd_Negotiates) {
  std::array<int, 2> pair{};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair.data()), 0);
  ::fcntl(pair[1], F_SETFD, 0);  // inherited by the child
  auto p = BackendProcess::start({VGPU_BINARY, "--fd", std::to_string(pair[1])});
  ::close(pair[1]);
  ASSERT_TRUE(p);
  auto client = VhostUserClient::adopt(UniqueFd(pair[0]));
  EXPECT_TRUE(client.get_u64(FrontendRequest::GetFeatures).has_value()) << p->log();
}

TEST_F(Daemon, InheritedListeningFd_AcceptsFrontends) {
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM, 0));  // no CLOEXEC: the child inherits it
  ASSERT_TRUE(listener);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock_.path().c_str(), sock_.path().size() + 1);
  // SAFETY: sockaddr_un is the AF_UNIX member of the sockaddr family.
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  auto p = BackendProcess::start({VGPU_BINARY, "--fd", std::to_string(listener.get())});
  ASSERT_TRUE(p);
  backend_.emplace(std::move(*p));
  auto fe = negotiated();
  EXPECT_TRUE(fe);
}

TEST_F(Daemon, SocketPathInUse_Started_ExitsOne) {
  start();
  auto second = BackendProcess::start({VGPU_BINARY, "--socket-path", sock_.path()});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->wait_exit(), 1);
}

TEST_F(Daemon, StaleSocketFile_Started_Replaced) {
  {
    auto first = BackendProcess::start({VGPU_BINARY, "--socket-path", sock_.path()});
    ASSERT_TRUE(first && first->wait_for_socket(sock_.path()));
    first->stop(SIGKILL);  // leaves the socket file behind
  }
  start();
  EXPECT_TRUE(backend_->log_contains("replacing stale socket"));
}

TEST(DaemonCli, PrintCapabilities_Run_PrintsGpuJson) {
  auto p = BackendProcess::start({VGPU_BINARY, "--print-capabilities"});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->wait_exit(), 0);
  EXPECT_TRUE(p->log_contains("\"type\": \"gpu\""));
}

TEST(DaemonCli, UnknownOption_Run_ExitsTwoWithMessage) {
  auto p = BackendProcess::start({VGPU_BINARY, "--no-such-option"});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->wait_exit(), 2);
  EXPECT_TRUE(p->log_contains("no-such-option"));
}

}  // namespace
}  // namespace vgpu::test

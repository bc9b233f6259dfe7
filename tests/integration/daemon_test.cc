// The real vhost-gpu binary over a real socket, driven by the test frontend (tests/support).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <thread>
#include <utility>

#include "support/backend_process.h"
#include "support/display_server.h"
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
  ASSERT_EQ(resp->size(), sizeof(virtio_gpu_resp_display_info));
  virtio_gpu_resp_display_info info{};
  std::memcpy(&info, resp->data(), sizeof(info));
  // One output (the default) in the default --resolution, since no display supplies a mode.
  EXPECT_EQ(info.pmodes[0].enabled, 1u);
  EXPECT_EQ((std::array<uint32_t, 2>{info.pmodes[0].r.width, info.pmodes[0].r.height}),
            (std::array<uint32_t, 2>{1280, 800}));
  EXPECT_EQ(info.pmodes[1].enabled, 0u);
}

// SHARED_OBJECT as QEMU 11.1 would drive it, with the real binary: the guest shares a 2D resource (ASSIGN_UUID),
// the daemon announces the UUID on the backend channel, and GET_SHARED_OBJECT gives an fd whose bytes are the
// guest's pixels (what a second device importing the buffer reads; QEMU 11.1.3 itself drops that fd).
TEST_F(Daemon, SharedObject_GuestSharesA2DResource_FrontendGetsItsPixelsByUuid) {
  start();
  TestFrontendOptions options;
  options.device_features = uint64_t{1} << VIRTIO_GPU_F_RESOURCE_UUID;
  options.extra_protocol_features = vhost_user::bit(vhost_user::ProtocolFeature::BackendReq) |
                                    vhost_user::bit(vhost_user::ProtocolFeature::SharedObject);
  auto fe = negotiated(options);
  ASSERT_TRUE(fe);
  ASSERT_NE(fe->protocol_features() & options.extra_protocol_features, 0u) << "the daemon did not offer bit 18";
  int sv[2] = {-1, -1};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd ours(sv[0]);
  const UniqueFd theirs(sv[1]);
  const int channel_fd[1] = {theirs.get()};
  ASSERT_TRUE(fe->client().send(FrontendRequest::SetBackendReqFd, {}, channel_fd, vhost_user::kFlagNeedReply));
  ASSERT_TRUE(fe->client().receive());
  VhostUserClient channel = VhostUserClient::adopt(std::move(ours));

  constexpr uint32_t kW = 32, kH = 8, kBytes = kW * kH * 4;
  std::vector<std::byte> pixels(kBytes);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::byte>(i * 7 + 3);
  const GuestBacking fb = fe->alloc_backing(kBytes, BackingLayout::ScatteredPages);
  fe->write_backing(fb, 0, pixels);
  const auto ok = [&](const std::vector<std::byte>& req) {
    auto r = fe->command(TestFrontend::kControlQueue, req, sizeof(virtio_gpu_ctrl_hdr));
    return r && response_type(*r) == VIRTIO_GPU_RESP_OK_NODATA;
  };
  ASSERT_TRUE(ok(resource_create_2d_request(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, kW, kH)));
  ASSERT_TRUE(ok(attach_backing_request(1, fb.entries)));
  ASSERT_TRUE(ok(transfer_to_host_2d_request(1, {0, 0, kW, kH}, 0)));
  virtio_gpu_resource_assign_uuid assign{};
  assign.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID;
  assign.resource_id = 1;
  auto resp = fe->command(TestFrontend::kControlQueue, request_bytes(assign), sizeof(virtio_gpu_resp_resource_uuid));
  ASSERT_TRUE(resp && response_type(*resp) == VIRTIO_GPU_RESP_OK_RESOURCE_UUID) << backend_->log();
  virtio_gpu_resp_resource_uuid uuid{};
  std::memcpy(&uuid, resp->data(), sizeof(uuid));

  // SHARED_OBJECT_ADD of that UUID, with NEED_REPLY; the frontend says yes.
  auto add = channel.receive();
  ASSERT_TRUE(add) << backend_->log();
  EXPECT_EQ(add->header.request, 6u);
  EXPECT_NE(add->header.flags & vhost_user::kFlagNeedReply, 0u);
  ASSERT_EQ(add->payload.size(), 16u);
  EXPECT_EQ(std::memcmp(add->payload.data(), uuid.uuid, 16), 0);
  const vhost_user::MessageHeader yes{6, vhost_user::kVersion1 | vhost_user::kFlagReply, 8};
  std::vector<std::byte> answer(sizeof(yes) + 8);
  std::memcpy(answer.data(), &yes, sizeof(yes));
  ASSERT_TRUE(channel.send_raw(answer));

  // GET_SHARED_OBJECT: 0 and the fd; its bytes are the guest's.
  std::vector<std::byte> asked(16);
  std::memcpy(asked.data(), uuid.uuid, 16);
  ASSERT_TRUE(fe->client().send(FrontendRequest::GetSharedObject, asked, {}));
  auto got = fe->client().receive();
  ASSERT_TRUE(got) << backend_->log();
  ASSERT_EQ(got->payload.size(), 8u);
  EXPECT_EQ(std::to_integer<uint8_t>(got->payload[0]), 0u);
  ASSERT_EQ(got->fds.size(), 1u);
  std::vector<std::byte> read_back(kBytes);
  ASSERT_EQ(::pread(got->fds[0].get(), read_back.data(), read_back.size(), 0), static_cast<ssize_t>(kBytes));
  EXPECT_EQ(read_back, pixels);

  // Unref withdraws it (SHARED_OBJECT_REMOVE), and the UUID is refused from then on (no fd).
  ASSERT_TRUE(ok(resource_unref_request(1)));
  auto remove = channel.receive();
  ASSERT_TRUE(remove);
  EXPECT_EQ(remove->header.request, 7u);
  ASSERT_TRUE(fe->client().send(FrontendRequest::GetSharedObject, asked, {}));
  auto refused = fe->client().receive();
  ASSERT_TRUE(refused);
  EXPECT_NE(std::to_integer<uint8_t>(refused->payload.at(0)), 0u);
  EXPECT_TRUE(refused->fds.empty());
}

// Device state with the real binary, as a migration would drive it: daemon A draws and shows a frame, its rings
// are stopped, SET_DEVICE_STATE_FD (save) streams its state through a pipe; a fresh daemon B on a guest with the
// same memory loads it (SET_DEVICE_STATE_FD load, CHECK_DEVICE_STATE) and shows the same frame; then the guest
// draws the next frame on both and they are still byte-identical. A corrupted state is refused by CHECK.
class DeviceStateMigration : public Daemon {
 protected:
  static constexpr uint32_t kW = 64, kH = 32;
  struct Side {
    std::optional<BackendProcess> backend;
    std::unique_ptr<DisplayServer> display;
    std::unique_ptr<TestFrontend> fe;
    GuestBacking fb;
  };
  static TestFrontendOptions options(DisplayServer& display) {
    TestFrontendOptions o;
    o.display = &display;
    o.extra_protocol_features = vhost_user::bit(vhost_user::ProtocolFeature::DeviceState);
    return o;
  }
  void bring_up(Side& side, const std::string& path) {
    auto p = BackendProcess::start({VGPU_BINARY, "--socket-path", path, "--log-level", "debug"});
    ASSERT_TRUE(p);
    side.backend.emplace(std::move(*p));
    ASSERT_TRUE(side.backend->wait_for_socket(path)) << side.backend->log();
    side.display = std::make_unique<DisplayServer>(DisplayServerOptions{.outputs = {{kW, kH}}});
    side.fe = TestFrontend::connect(path, options(*side.display));
    ASSERT_TRUE(side.fe);
    ASSERT_TRUE(side.fe->negotiate()) << side.fe->error();
    ASSERT_NE(side.fe->protocol_features() & vhost_user::bit(vhost_user::ProtocolFeature::DeviceState), 0u);
    side.fb = side.fe->alloc_backing(uint64_t{kW} * kH * 4, BackingLayout::Pages);
  }
  static bool ok(Side& side, const std::vector<std::byte>& req) {
    auto r = side.fe->command(TestFrontend::kControlQueue, req, sizeof(virtio_gpu_ctrl_hdr));
    return r && response_type(*r) == VIRTIO_GPU_RESP_OK_NODATA;
  }
  static void draw(Side& side, std::byte value) {
    side.fe->write_backing(side.fb, 0, std::vector<std::byte>(uint64_t{kW} * kH * 4, value));
    ASSERT_TRUE(ok(side, transfer_to_host_2d_request(1, {0, 0, kW, kH}, 0)));
    ASSERT_TRUE(ok(side, resource_flush_request(1, {0, 0, kW, kH})));
  }
  static void rings(Side& side, uint32_t enable) {
    for (uint32_t q = 0; q < 2; ++q) {
      ASSERT_TRUE(side.fe->client().send(FrontendRequest::SetVringEnable,
                                         request_bytes(vhost_user::VringState{q, enable}), {},
                                         vhost_user::kFlagNeedReply));
      ASSERT_TRUE(side.fe->client().receive());
    }
  }
  // SET_DEVICE_STATE_FD with one end of a pipe; the u64 reply.
  static uint64_t transfer(Side& side, uint32_t direction, int fd) {
    const int fds[1] = {fd};
    EXPECT_TRUE(side.fe->client().send(FrontendRequest::SetDeviceStateFd,
                                       request_bytes(vhost_user::DeviceStateTransfer{direction, 0}), fds));
    auto r = side.fe->client().receive();
    uint64_t v = ~0ull;
    if (r && r->payload.size() == 8) std::memcpy(&v, r->payload.data(), 8);
    return v;
  }
  static std::optional<uint64_t> check(Side& side) {
    return side.fe->client().get_u64(FrontendRequest::CheckDeviceState);
  }
  // A pipe: its read end, then its write end.
  static std::pair<UniqueFd, UniqueFd> make_pipe() {
    int p[2] = {-1, -1};
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    return {UniqueFd(p[0]), UniqueFd(p[1])};
  }
  static std::vector<std::byte> save(Side& side) {
    auto [rd, wr] = make_pipe();
    EXPECT_EQ(transfer(side, vhost_user::kTransferSave, wr.get()), vhost_user::kDeviceStateUseFrontendFd);
    wr.reset();
    std::vector<std::byte> out;
    std::byte buf[65536];
    for (ssize_t n; (n = ::read(rd.get(), buf, sizeof(buf))) > 0;) out.insert(out.end(), buf, buf + n);
    EXPECT_EQ(check(side), 0u) << side.backend->log();
    return out;
  }
  static uint64_t load(Side& side, const std::vector<std::byte>& state) {
    auto [rd, wr] = make_pipe();
    EXPECT_EQ(transfer(side, vhost_user::kTransferLoad, rd.get()), vhost_user::kDeviceStateUseFrontendFd);
    rd.reset();
    for (size_t done = 0; done < state.size();) {
      const ssize_t n = ::write(wr.get(), state.data() + done, state.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    wr.reset();
    return check(side).value_or(~0ull);
  }

  TempSocketPath sock_b_;
};

TEST_F(DeviceStateMigration, SaveInOneDaemon_LoadInAFreshOne_SameFramesAfter) {
  Side a;
  Side b;
  bring_up(a, sock_.path());
  ASSERT_TRUE(ok(a, resource_create_2d_request(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, kW, kH)));
  ASSERT_TRUE(ok(a, attach_backing_request(1, a.fb.entries)));
  ASSERT_TRUE(ok(a, set_scanout_request(0, 1, {0, 0, kW, kH})));
  draw(a, std::byte{0x33});
  ASSERT_TRUE(a.display->wait_for_updates(1, std::chrono::seconds(5)));

  rings(a, 0);
  const auto state = save(a);
  ASSERT_GT(state.size(), uint64_t{kW} * kH * 4) << a.backend->log();
  rings(a, 1);

  bring_up(b, sock_b_.path());
  ASSERT_EQ(b.fb.entries.front().addr, a.fb.entries.front().addr);  // the same guest layout, as after migration
  b.fe->write_backing(b.fb, 0, std::vector<std::byte>(uint64_t{kW} * kH * 4, std::byte{0x33}));
  rings(b, 0);
  auto corrupt = state;
  corrupt[corrupt.size() / 2] ^= std::byte{1};
  EXPECT_NE(load(b, corrupt), 0u);  // refused: CHECK_DEVICE_STATE fails, the daemon goes on
  ASSERT_EQ(load(b, state), 0u) << b.backend->log();
  rings(b, 1);
  ASSERT_TRUE(b.display->wait_for_updates(1, std::chrono::seconds(5))) << b.backend->log();
  EXPECT_EQ(b.display->surface(0)->pixels, a.display->surface(0)->pixels);

  // The next frame, drawn by the guest on both.
  const uint64_t a_updates = a.display->updates();
  const uint64_t b_updates = b.display->updates();
  draw(a, std::byte{0x5c});
  draw(b, std::byte{0x5c});
  ASSERT_TRUE(a.display->wait_for_updates(a_updates + 1, std::chrono::seconds(5)));
  ASSERT_TRUE(b.display->wait_for_updates(b_updates + 1, std::chrono::seconds(5)));
  EXPECT_EQ(b.display->surface(0)->pixels, a.display->surface(0)->pixels);
  EXPECT_EQ(a.display->pixel(0, 1, 1).value_or(0) & 0xffffff, 0x5c5c5cu);
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

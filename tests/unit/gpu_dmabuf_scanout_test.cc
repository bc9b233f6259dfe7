// Dma-buf scanouts (GpuDeviceConfig::dmabuf_scanout) with a renderer that exports (FakeRenderer3D: memfds
// stand in for dma-bufs, which no driver on this machine class exports): the display gets the renderer's
// buffer and layout instead of pixels, flushes become DMABUF_UPDATEs (after the renderer's flush), the
// control queue waits for QEMU's unblock, and every case the path cannot serve falls back to readback
// (option off, export failing, a display that does not take dma-bufs, guest blobs, plane offsets).
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "display/edid.h"
#include "display/protocol.h"
#include "display/socket_display.h"
#include "support/fake_display.h"
#include "support/fake_renderer_3d.h"
#include "support/gpu_harness.h"
#include "support/gpu_requests.h"

namespace vgpu::test {
namespace {

constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;

// What QEMU's end reads: one message, with the fd that came with its first byte.
struct Received {
  display::MessageHeader header{};
  std::vector<std::byte> payload;
  UniqueFd fd;
};

Received receive(int sock) {
  Received out;
  pollfd p{sock, POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1) return out;
  msghdr mh{};
  iovec iov{&out.header, sizeof(out.header)};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(int))> control{};
  mh.msg_control = control.data();
  mh.msg_controllen = control.size();
  if (::recvmsg(sock, &mh, MSG_WAITALL) != sizeof(out.header)) return out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
      out.fd.reset(fd);
    }
  }
  out.payload.resize(out.header.size);
  if (out.header.size > 0) (void)::recv(sock, out.payload.data(), out.payload.size(), MSG_WAITALL);
  return out;
}

void send_reply(int sock, display::Request request, const void* payload, uint32_t size) {
  const display::MessageHeader h{static_cast<uint32_t>(request), display::kFlagReply, size};
  std::vector<std::byte> bytes(sizeof(h) + size);
  std::memcpy(bytes.data(), &h, sizeof(h));
  if (size > 0) std::memcpy(bytes.data() + sizeof(h), payload, size);
  ASSERT_EQ(::write(sock, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

class GpuDmabufScanout : public ::testing::Test {
 protected:
  void start(bool dmabuf_scanout, bool display_accepts = true) {
    h_.emplace(GpuDeviceConfig{.dmabuf_scanout = dmabuf_scanout}, GpuHarness::k3dFeatures, 64ull << 20,
               Renderers::with_3d(borrow(r_)));
    auto d = std::make_unique<FakeDisplay>(1);
    display_ = d.get();
    display_->accept_dmabufs = display_accepts;
    h_->device().install_display(std::move(d));
  }
  // A 64x32 2D resource showing `pixel` everywhere, on scanout 0 (whole, or `rect`).
  void show_resource(uint32_t id, virtio_gpu_rect rect = {0, 0, 64, 32}, uint32_t pixel = 0xff336699u) {
    ASSERT_EQ(h_->create_2d(id, 64, 32), kOk);
    ASSERT_EQ(h_->attach_backing(id, 64 * 32 * 4), kOk);
    std::vector<uint32_t> px(64 * 32, pixel);
    h_->guest().write(h_->backing_address(id), std::as_bytes(std::span(px)));
    ASSERT_EQ(h_->transfer(id, {0, 0, 64, 32}, 0), kOk);
    ASSERT_EQ(h_->set_scanout(0, id, rect), kOk);
  }
  // A SocketDisplay on a fresh socketpair in place of the fake; `qemu` gets the other end.
  void install_socket_display(UniqueFd& qemu) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    qemu.reset(sv[1]);
    h_->device().install_display(std::make_unique<SocketDisplay>(UniqueFd(sv[0]), 1));
  }
  void pump() { h_->device().on_display_event(EPOLLIN | EPOLLOUT); }
  // QEMU's half of the display handshake, first part: GET_PROTOCOL_FEATURES answered with `offered`.
  void answer_protocol_features(int qemu, uint64_t offered) {
    ASSERT_EQ(receive(qemu).header.request, static_cast<uint32_t>(display::Request::GetProtocolFeatures));
    send_reply(qemu, display::Request::GetProtocolFeatures, &offered, sizeof(offered));
    pump();
  }
  // Second part: SET_PROTOCOL_FEATURES taken, GET_DISPLAY_INFO answered with one `width` x `height` output.
  void answer_display_info(int qemu, uint32_t width, uint32_t height) {
    ASSERT_EQ(receive(qemu).header.request, static_cast<uint32_t>(display::Request::SetProtocolFeatures));
    ASSERT_EQ(receive(qemu).header.request, static_cast<uint32_t>(display::Request::GetDisplayInfo));
    virtio_gpu_resp_display_info info{};
    info.hdr.type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
    info.pmodes[0] = {{0, 0, width, height}, 1, 0};
    send_reply(qemu, display::Request::GetDisplayInfo, &info, sizeof(info));
    pump();
  }

  FakeRenderer3D r_;
  std::optional<GpuHarness> h_;
  FakeDisplay* display_ = nullptr;
};

TEST_F(GpuDmabufScanout, SetScanout_Exportable_DisplayGetsRendererBufferAndLayout) {
  start(true);
  show_resource(1, {8, 4, 32, 16});

  ASSERT_EQ(display_->dmabuf_scanouts.size(), 1u);
  const auto& call = display_->dmabuf_scanouts[0];
  EXPECT_EQ(call.scanout, 0u);
  EXPECT_EQ(call.shown, (Rect{8, 4, 32, 16}));
  EXPECT_EQ(call.image.width, 64u);
  EXPECT_EQ(call.image.height, 32u);
  EXPECT_EQ(call.image.stride, 64u * 4 + FakeRenderer3D::kStridePadding);
  EXPECT_EQ(call.image.fourcc, kDrmFormatXrgb8888);
  EXPECT_EQ(call.image.modifier, FakeRenderer3D::kModifier);
  EXPECT_TRUE(call.image.y0_top);
  EXPECT_EQ(call.inode, r_.exported_inodes.at(1));
  EXPECT_TRUE(display_->scanouts.empty());  // no 2D surface
}

TEST_F(GpuDmabufScanout, Flush_SendsDmabufUpdateAfterRendererFlush_NoPixels) {
  start(true);
  show_resource(1, {8, 4, 32, 16});

  ASSERT_EQ(h_->flush(1, {0, 0, 64, 32}), kOk);
  ASSERT_EQ(h_->flush(1, {10, 6, 2, 2}), kOk);
  ASSERT_EQ(h_->flush(1, {48, 0, 16, 32}), kOk);  // outside the shown rect: nothing

  ASSERT_EQ(display_->dmabuf_updates.size(), 2u);
  EXPECT_EQ(display_->dmabuf_updates[0].damage, (Rect{0, 0, 32, 16}));  // clipped, in scanout coordinates
  EXPECT_EQ(display_->dmabuf_updates[1].damage, (Rect{2, 2, 2, 2}));
  EXPECT_EQ(r_.display_flushes, 2);
  EXPECT_TRUE(display_->updates.empty());
}

TEST_F(GpuDmabufScanout, OptionOff_NoExportAndPixelsByCopy) {
  start(false);
  show_resource(1);
  ASSERT_EQ(h_->flush(1, {0, 0, 64, 32}), kOk);

  EXPECT_EQ(r_.export_calls, 0);
  EXPECT_TRUE(display_->dmabuf_scanouts.empty());
  ASSERT_EQ(display_->scanouts.size(), 1u);
  ASSERT_EQ(display_->updates.size(), 1u);
  EXPECT_EQ(display_->updates[0].pixels.front(), 0xff336699u);
}

TEST_F(GpuDmabufScanout, ExportFails_FallsBackToReadback) {
  start(true);
  r_.exportable = false;
  show_resource(1);
  ASSERT_EQ(h_->flush(1, {0, 0, 64, 32}), kOk);

  EXPECT_EQ(r_.export_calls, 1);
  EXPECT_TRUE(display_->dmabuf_scanouts.empty());
  ASSERT_EQ(display_->scanouts.size(), 1u);
  EXPECT_EQ(display_->scanouts[0].width, 64u);
  ASSERT_EQ(display_->updates.size(), 1u);
  EXPECT_EQ(display_->updates[0].pixels.size(), 64u * 32);
  EXPECT_EQ(display_->updates[0].pixels.back(), 0xff336699u);
  EXPECT_TRUE(display_->dmabuf_updates.empty());
}

TEST_F(GpuDmabufScanout, DisplayRefuses_CopyThenNewDisplayGetsTheDmabuf) {
  start(true, /*display_accepts=*/false);
  show_resource(1);
  ASSERT_EQ(h_->flush(1, {0, 0, 64, 32}), kOk);
  EXPECT_EQ(display_->updates.size(), 1u);

  // QEMU sends a new display socket (e.g. after a guest reboot): the scanout is offered again.
  auto d = std::make_unique<FakeDisplay>(1);
  FakeDisplay* next = d.get();
  next->accept_dmabufs = true;
  h_->device().install_display(std::move(d));

  ASSERT_EQ(next->dmabuf_scanouts.size(), 1u);
  EXPECT_EQ(next->dmabuf_scanouts[0].inode, r_.exported_inodes.at(1));
  ASSERT_EQ(next->dmabuf_updates.size(), 1u);  // the re-announce shows the whole scanout
  EXPECT_EQ(next->dmabuf_updates[0].damage, (Rect{0, 0, 64, 32}));
  EXPECT_TRUE(next->scanouts.empty());
  EXPECT_TRUE(next->updates.empty());
}

TEST_F(GpuDmabufScanout, Unref_DisablesScanout) {
  start(true);
  show_resource(1);
  virtio_gpu_resource_unref unref{};
  unref.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
  unref.resource_id = 1;
  ASSERT_EQ(h_->command_type(unref), kOk);

  ASSERT_EQ(display_->scanouts.size(), 1u);
  EXPECT_EQ(display_->scanouts[0].width, 0u);
  EXPECT_EQ(h_->flush(1, {0, 0, 64, 32}), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  EXPECT_TRUE(display_->dmabuf_updates.empty());
}

TEST_F(GpuDmabufScanout, Host3dBlob_GuestLayoutAndLinear_PageFlipSendsEachBuffer) {
  start(true);
  ASSERT_EQ(h_->ctx_create(1), kOk);
  ASSERT_EQ(h_->create_blob(10, VIRTIO_GPU_BLOB_MEM_HOST3D, 256 * 48, 1, 0, 5, 1), kOk);
  ASSERT_EQ(h_->create_blob(11, VIRTIO_GPU_BLOB_MEM_HOST3D, 256 * 48, 1, 0, 6, 1), kOk);

  ASSERT_EQ(h_->set_scanout_blob(0, 10, {0, 0, 40, 48}, 40, 48, 256, 0, VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM), kOk);
  ASSERT_EQ(h_->set_scanout_blob(0, 11, {0, 0, 40, 48}, 40, 48, 256, 0, VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM), kOk);
  ASSERT_EQ(h_->flush(11, {0, 0, 40, 48}), kOk);

  ASSERT_EQ(display_->dmabuf_scanouts.size(), 2u);
  const auto& img = display_->dmabuf_scanouts[1].image;
  EXPECT_EQ(img.width, 40u);
  EXPECT_EQ(img.height, 48u);
  EXPECT_EQ(img.stride, 256u);
  EXPECT_EQ(img.fourcc, kDrmFormatAbgr8888);
  EXPECT_EQ(img.modifier, kDrmModLinear);
  EXPECT_FALSE(img.y0_top);
  EXPECT_EQ(display_->dmabuf_scanouts[0].inode, r_.exported_inodes.at(10));
  EXPECT_EQ(display_->dmabuf_scanouts[1].inode, r_.exported_inodes.at(11));
  ASSERT_EQ(display_->dmabuf_updates.size(), 1u);
  EXPECT_EQ(r_.blob_reads, 0);
  EXPECT_TRUE(display_->updates.empty());
}

TEST_F(GpuDmabufScanout, Host3dBlobWithPlaneOffset_ReadBack) {
  start(true);
  ASSERT_EQ(h_->ctx_create(1), kOk);
  ASSERT_EQ(h_->create_blob(10, VIRTIO_GPU_BLOB_MEM_HOST3D, 4096 + 256 * 48, 1, 0, 5, 1), kOk);
  ASSERT_EQ(h_->set_scanout_blob(0, 10, {0, 0, 40, 48}, 40, 48, 256, 4096), kOk);
  ASSERT_EQ(h_->flush(10, {0, 0, 40, 48}), kOk);

  EXPECT_TRUE(display_->dmabuf_scanouts.empty());
  ASSERT_EQ(display_->updates.size(), 1u);
  EXPECT_EQ(display_->updates[0].pixels.front(), 0xb1b1b1b1u);
  EXPECT_EQ(r_.blob_reads, 1);
}

TEST_F(GpuDmabufScanout, GuestBlob_ReadFromGuestMemoryNotExported) {
  start(true);
  ASSERT_EQ(h_->create_blob(10, VIRTIO_GPU_BLOB_MEM_GUEST, 256 * 48), kOk);
  ASSERT_EQ(h_->set_scanout_blob(0, 10, {0, 0, 40, 48}, 40, 48, 256), kOk);
  ASSERT_EQ(h_->flush(10, {0, 0, 40, 48}), kOk);

  EXPECT_EQ(r_.export_calls, 0);
  EXPECT_TRUE(display_->dmabuf_scanouts.empty());
  EXPECT_EQ(display_->updates.size(), 1u);
}

TEST_F(GpuDmabufScanout, BackToCopiedResource_DisplayToldSizeAgain) {
  start(true);
  show_resource(1);
  r_.exportable = false;
  ASSERT_EQ(h_->create_2d(2, 64, 32), kOk);
  ASSERT_EQ(h_->set_scanout(0, 2, {0, 0, 64, 32}), kOk);

  EXPECT_EQ(display_->dmabuf_scanouts.size(), 1u);
  ASSERT_EQ(display_->scanouts.size(), 1u);  // leaves dma-buf mode
  EXPECT_EQ(display_->scanouts[0].width, 64u);
}

// --- through the real display socket -----------------------------------------------------------------------

// A guest's GET_EDID that arrives before QEMU has even said whether it supplies EDIDs (its protocol features)
// waits: answering then would hand the guest our generated EDID (few modes) instead of QEMU's.
TEST_F(GpuDmabufScanout, SocketDisplay_GetEdidBeforeTheDisplayNegotiated_WaitsForQemusEdid) {
  start(false);
  UniqueFd qemu;
  ASSERT_NO_FATAL_FAILURE(install_socket_display(qemu));
  virtio_gpu_cmd_get_edid req{};
  req.hdr.type = VIRTIO_GPU_CMD_GET_EDID;
  const auto s = h_->submit(req, sizeof(virtio_gpu_resp_edid));
  EXPECT_FALSE(h_->collect(s));  // QEMU has not answered GET_PROTOCOL_FEATURES yet

  const uint64_t offered = display::kProtocolFeatureEdid;
  ASSERT_NO_FATAL_FAILURE(answer_protocol_features(qemu.get(), offered));
  EXPECT_FALSE(h_->collect(s));
  ASSERT_NO_FATAL_FAILURE(answer_display_info(qemu.get(), 1920, 1080));
  ASSERT_EQ(receive(qemu.get()).header.request, static_cast<uint32_t>(display::Request::GetEdid));
  (void)receive(qemu.get());  // its fence
  virtio_gpu_resp_edid qemus{};
  qemus.hdr.type = VIRTIO_GPU_RESP_OK_EDID;
  const auto blob = generate_edid({.width = 1920, .height = 1080});
  qemus.size = blob.size();
  std::memcpy(qemus.edid, blob.data(), blob.size());
  send_reply(qemu.get(), display::Request::GetEdid, &qemus, sizeof(qemus));
  send_reply(qemu.get(), display::Request::GetProtocolFeatures, &offered, sizeof(offered));
  pump();

  const auto response = h_->collect(s);
  ASSERT_TRUE(response);
  virtio_gpu_resp_edid got{};
  ASSERT_EQ(response->size(), sizeof(got));
  std::memcpy(&got, response->data(), sizeof(got));
  EXPECT_EQ(got.hdr.type, VIRTIO_GPU_RESP_OK_EDID);
  ASSERT_EQ(got.size, blob.size());
  EXPECT_EQ(std::memcmp(got.edid, blob.data(), blob.size()), 0);  // QEMU's, not one we made for 1280x800
}

TEST_F(GpuDmabufScanout, SocketDisplay_FdReachesQemuAndQueueWaitsForUnblock) {
  start(true);
  UniqueFd qemu;
  ASSERT_NO_FATAL_FAILURE(install_socket_display(qemu));
  // QEMU 10.0's answers: EDID and DMABUF2 offered, one 64x32 output.
  const uint64_t offered = display::kProtocolFeatureEdid | display::kProtocolFeatureDmabuf2;
  ASSERT_NO_FATAL_FAILURE(answer_protocol_features(qemu.get(), offered));
  ASSERT_NO_FATAL_FAILURE(answer_display_info(qemu.get(), 64, 32));
  (void)receive(qemu.get());  // GET_EDID
  (void)receive(qemu.get());  // its fence
  // Only the fence is answered (as QEMU does for a GET_EDID it refuses): the device generates an EDID.
  send_reply(qemu.get(), display::Request::GetProtocolFeatures, &offered, sizeof(offered));
  pump();

  show_resource(1);
  Received scanout = receive(qemu.get());
  ASSERT_EQ(scanout.header.request, static_cast<uint32_t>(display::Request::DmabufScanout2));
  ASSERT_TRUE(scanout.fd.valid());
  EXPECT_EQ(FakeRenderer3D::inode_of(scanout.fd.get()), r_.exported_inodes.at(1));
  display::DmabufScanout2Payload p{};
  ASSERT_EQ(scanout.payload.size(), sizeof(p));
  std::memcpy(&p, scanout.payload.data(), sizeof(p));
  EXPECT_EQ(p.dmabuf_scanout.width, 64u);
  EXPECT_EQ(p.dmabuf_scanout.fd_stride, 64u * 4 + FakeRenderer3D::kStridePadding);
  EXPECT_EQ(p.dmabuf_scanout.fd_flags, static_cast<uint32_t>(VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP));
  EXPECT_EQ(p.dmabuf_scanout.fd_drm_fourcc, static_cast<int32_t>(kDrmFormatXrgb8888));
  EXPECT_EQ(p.modifier, FakeRenderer3D::kModifier);

  // The flush is answered; the next control command waits until QEMU has shown the frame.
  ASSERT_EQ(h_->flush(1, {0, 0, 64, 32}), kOk);
  Received update = receive(qemu.get());
  EXPECT_EQ(update.header.request, static_cast<uint32_t>(display::Request::DmabufUpdate));
  EXPECT_FALSE(update.fd.valid());
  EXPECT_TRUE(h_->device().display().busy());
  EXPECT_FALSE(h_->send(GpuDevice::kControlQueue, GpuHarness::as_bytes(req::flush(1, {0, 0, 8, 8}))).has_value());
  pollfd p2{qemu.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p2, 1, 50), 0);  // nothing more reaches QEMU meanwhile

  send_reply(qemu.get(), display::Request::DmabufUpdate, nullptr, 0);  // QEMU's "unblock"
  pump();
  // The held flush ran: its DMABUF_UPDATE went out and its response is on the used ring.
  Received second = receive(qemu.get());
  EXPECT_EQ(second.header.request, static_cast<uint32_t>(display::Request::DmabufUpdate));
  display::UpdateHeaderPayload u{};
  ASSERT_EQ(second.payload.size(), sizeof(u));
  std::memcpy(&u, second.payload.data(), sizeof(u));
  EXPECT_EQ(u.width, 8u);
  EXPECT_TRUE(h_->queue(GpuDevice::kControlQueue).next_used().has_value());
  EXPECT_TRUE(h_->device().display().busy());  // until QEMU answers this one too
}

}  // namespace
}  // namespace vgpu::test

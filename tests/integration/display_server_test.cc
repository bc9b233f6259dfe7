// The real binary with QEMU's side of the display socket (support/display_server.h): GPU_SET_SOCKET as QEMU
// sends it, the display negotiation, and 2D frames arriving as SCANOUT + UPDATE with the guest's pixels.
#include "support/display_server.h"

#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>

#include <chrono>
#include <cstring>

#include "support/backend_process.h"
#include "support/test_frontend.h"

namespace vgpu::test {
namespace {

using std::chrono::seconds;

constexpr uint32_t kWidth = 64;
constexpr uint32_t kHeight = 48;
constexpr uint32_t kResource = 7;

// The guest's pixel at (x, y): B8G8R8X8 bytes B, G, R, X, i.e. the word 0xXXRRGGBB.
uint32_t pattern(uint32_t x, uint32_t y) {
  return 0x5a000000u | (x * 4) << 16 | (y * 5) << 8 | ((x + y) & 0xff);
}

class DisplaySocket : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = BackendProcess::start({VGPU_BINARY, "--socket-path", sock_.path(), "--log-level", "debug"});
    ASSERT_TRUE(p);
    backend_.emplace(std::move(*p));
    ASSERT_TRUE(backend_->wait_for_socket(sock_.path())) << backend_->log();
    fe_ = TestFrontend::connect(sock_.path(), {.display = &display_});
    ASSERT_TRUE(fe_);
    ASSERT_TRUE(fe_->negotiate()) << fe_->error() << "\n" << backend_->log();
  }

  uint32_t ok(const std::vector<std::byte>& request, uint32_t response_size = sizeof(virtio_gpu_ctrl_hdr)) {
    auto resp = fe_->command(TestFrontend::kControlQueue, request, response_size);
    return resp ? response_type(*resp) : 0;
  }

  // A kWidth x kHeight B8G8R8X8 resource backed by scattered guest pages holding pattern().
  GuestBacking make_resource() {
    GuestBacking fb = fe_->alloc_backing(uint64_t{kWidth} * kHeight * 4, BackingLayout::ScatteredPages);
    std::vector<uint32_t> pixels(size_t{kWidth} * kHeight);
    for (uint32_t y = 0; y < kHeight; ++y) {
      for (uint32_t x = 0; x < kWidth; ++x) pixels[size_t{y} * kWidth + x] = pattern(x, y);
    }
    fe_->write_backing(fb, 0, std::as_bytes(std::span(pixels)));
    EXPECT_EQ(ok(resource_create_2d_request(kResource, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, kWidth, kHeight)),
              VIRTIO_GPU_RESP_OK_NODATA);
    EXPECT_EQ(ok(attach_backing_request(kResource, fb.entries)), VIRTIO_GPU_RESP_OK_NODATA);
    return fb;
  }

  TempSocketPath sock_;
  std::optional<BackendProcess> backend_;
  DisplayServer display_{{.outputs = {{1024, 768}}}};
  std::unique_ptr<TestFrontend> fe_;
};

TEST_F(DisplaySocket, Negotiation_WithDisplay_NegotiatesEdidAndAsksDisplayInfo) {
  const bool settled = display_.wait_until(
      [](const DisplayServer::Stats& s) { return s.protocol_features_set && s.get_display_info > 0; }, seconds(5));

  EXPECT_TRUE(settled) << backend_->log();
  EXPECT_EQ(display_.stats().protocol_features_set.value_or(0), display::kProtocolFeatureEdid);
  EXPECT_TRUE(display_.errors().empty());
}

TEST_F(DisplaySocket, GetDisplayInfo_DisplayOutput_ReportsItsSize) {
  auto resp =
      fe_->command(TestFrontend::kControlQueue, get_display_info_request(), sizeof(virtio_gpu_resp_display_info));

  ASSERT_TRUE(resp) << backend_->log();
  virtio_gpu_resp_display_info info{};
  std::memcpy(&info, resp->data(), std::min(resp->size(), sizeof(info)));
  EXPECT_EQ(info.hdr.type, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
  EXPECT_EQ(info.pmodes[0].enabled, 1u);
  EXPECT_EQ(info.pmodes[0].r.width, 1024u);
  EXPECT_EQ(info.pmodes[0].r.height, 768u);
}

TEST_F(DisplaySocket, FullFrame_TransferScanoutFlush_DisplayGetsScanoutAndPixels) {
  make_resource();
  const virtio_gpu_rect full{0, 0, kWidth, kHeight};

  EXPECT_EQ(ok(transfer_to_host_2d_request(kResource, full, 0)), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(ok(set_scanout_request(0, kResource, full)), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(ok(resource_flush_request(kResource, full)), VIRTIO_GPU_RESP_OK_NODATA);

  ASSERT_TRUE(display_.wait_for_updates(1, seconds(5))) << backend_->log();
  const auto surface = display_.surface(0);
  ASSERT_TRUE(surface);
  EXPECT_EQ(surface->width, kWidth);
  EXPECT_EQ(surface->height, kHeight);
  uint32_t mismatches = 0;
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) {
      mismatches += (surface->pixels[size_t{y} * kWidth + x] & 0xffffffu) != (pattern(x, y) & 0xffffffu);
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GE(display_.stats().scanouts, 1u);
  EXPECT_EQ(display_.stats().update_pixels, uint64_t{kWidth} * kHeight);
  EXPECT_TRUE(display_.errors().empty());
}

TEST_F(DisplaySocket, PartialFlush_Rectangle_UpdatesOnlyThatRectangle) {
  make_resource();
  const virtio_gpu_rect full{0, 0, kWidth, kHeight};
  const virtio_gpu_rect part{8, 4, 16, 10};
  ASSERT_EQ(ok(set_scanout_request(0, kResource, full)), VIRTIO_GPU_RESP_OK_NODATA);

  EXPECT_EQ(ok(transfer_to_host_2d_request(kResource, part, (4 * kWidth + 8) * 4)), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(ok(resource_flush_request(kResource, part)), VIRTIO_GPU_RESP_OK_NODATA);

  ASSERT_TRUE(display_.wait_for_updates(1, seconds(5))) << backend_->log();
  EXPECT_EQ(display_.stats().update_pixels, 16u * 10u);
  EXPECT_EQ(display_.pixel(0, 8, 4).value_or(0) & 0xffffffu, pattern(8, 4) & 0xffffffu);
  EXPECT_EQ(display_.pixel(0, 23, 13).value_or(0) & 0xffffffu, pattern(23, 13) & 0xffffffu);
  EXPECT_EQ(display_.pixel(0, 7, 4).value_or(1), 0u);    // left of the rectangle: never sent
  EXPECT_EQ(display_.pixel(0, 24, 13).value_or(1), 0u);  // right of it
}

// A guest blob as Linux makes its dumb buffers when RESOURCE_BLOB is negotiated (through a generic
// vhost-user device): scattered pages, rows padded to a 64-byte pitch, shown with SET_SCANOUT_BLOB.
TEST(DisplaySocketBlob, GuestBlob_SetScanoutBlobFlush_DisplayGetsGuestPixels) {
  TempSocketPath sock;
  auto p = BackendProcess::start({VGPU_BINARY, "--socket-path", sock.path(), "--log-level", "debug"});
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->wait_for_socket(sock.path())) << p->log();
  DisplayServer display{{.outputs = {{1024, 768}}}};
  auto fe = TestFrontend::connect(sock.path(),
                                  {.display = &display, .device_features = uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB});
  ASSERT_TRUE(fe);
  ASSERT_TRUE(fe->negotiate()) << fe->error() << "\n" << p->log();
  ASSERT_NE(fe->backend_features() & (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB), 0u);
  auto ok = [&](const std::vector<std::byte>& request) {
    auto resp = fe->command(TestFrontend::kControlQueue, request, sizeof(virtio_gpu_ctrl_hdr));
    return resp ? response_type(*resp) : 0;
  };
  constexpr uint32_t kPitch = kWidth * 4 + 64;
  GuestBacking blob = fe->alloc_backing(uint64_t{kPitch} * kHeight, BackingLayout::ScatteredPages);
  for (uint32_t y = 0; y < kHeight; ++y) {
    std::vector<uint32_t> row(kPitch / 4, 0xdeadbeefu);
    for (uint32_t x = 0; x < kWidth; ++x) row[x] = pattern(x, y);
    fe->write_backing(blob, uint64_t{y} * kPitch, std::as_bytes(std::span(row)));
  }
  const virtio_gpu_rect full{0, 0, kWidth, kHeight};
  ASSERT_EQ(ok(create_guest_blob_request(kResource, blob.size, blob.entries)), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(ok(set_scanout_blob_request(0, kResource, full, kWidth, kHeight, kPitch, 0)), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(ok(resource_flush_request(kResource, full)), VIRTIO_GPU_RESP_OK_NODATA);

  ASSERT_TRUE(display.wait_for_updates(1, seconds(5))) << p->log();
  uint32_t mismatches = 0;
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) {
      mismatches += (display.pixel(0, x, y).value_or(0) & 0xffffffu) != (pattern(x, y) & 0xffffffu);
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(display.stats().update_pixels, uint64_t{kWidth} * kHeight);
  EXPECT_TRUE(display.errors().empty());
  // The guest changes its blob and flushes a corner: shared memory, no transfer needed.
  const uint32_t white = 0x00ffffffu;
  fe->write_backing(blob, 0, std::as_bytes(std::span(&white, 1)));
  ASSERT_EQ(ok(resource_flush_request(kResource, {0, 0, 1, 1})), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_TRUE(display.wait_for_updates(2, seconds(5))) << p->log();
  EXPECT_EQ(display.pixel(0, 0, 0).value_or(0) & 0xffffffu, white);
}

TEST_F(DisplaySocket, Pipeline_SixtyFourInFlight_AllAnswered) {
  CommandPipeline pipe(*fe_, TestFrontend::kControlQueue, 64);
  const auto request = get_display_info_request();
  for (uint32_t i = 0; i < 64; ++i) ASSERT_TRUE(pipe.submit(request, sizeof(virtio_gpu_resp_display_info), i));

  pipe.kick();
  const auto done = pipe.collect(64);

  ASSERT_TRUE(done) << backend_->log();
  uint32_t answered = 0;
  for (const auto& c : *done) answered += c.response_type == VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
  EXPECT_EQ(answered, 64u);
  EXPECT_EQ(pipe.in_flight(), 0u);
}

}  // namespace
}  // namespace vgpu::test

// --headless: frames stay in the daemon, and SIGUSR1 writes each active scanout as PNG into --screenshot-dir.
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <png.h>

#include <csignal>
#include <filesystem>
#include <optional>

#include "support/backend_process.h"
#include "support/test_frontend.h"

namespace vgpu::test {
namespace {

constexpr uint32_t kWidth = 32;
constexpr uint32_t kHeight = 16;

// The daemon started --headless with screenshots going to the socket's directory.
class HeadlessScreenshot : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = BackendProcess::start(
        {VGPU_BINARY, "--socket-path", sock.path(), "--headless", "--screenshot-dir", sock.dir()});
    ASSERT_TRUE(started);
    p.emplace(std::move(*started));
    ASSERT_TRUE(p->wait_for_socket(sock.path())) << p->log();
  }

  TempSocketPath sock;
  std::optional<BackendProcess> p;
};

TEST_F(HeadlessScreenshot, Sigusr1_AfterFlush_WritesPngWithGuestPixels) {
  auto fe = TestFrontend::connect(sock.path());
  ASSERT_TRUE(fe && fe->negotiate()) << p->log();
  // B8G8R8X8 pixels: blue 0x30, green 0x20, red 0x10 everywhere.
  GuestBacking fb = fe->alloc_backing(uint64_t{kWidth} * kHeight * 4);
  const std::vector<uint32_t> pixels(size_t{kWidth} * kHeight, 0xff102030u);
  fe->write_backing(fb, 0, std::as_bytes(std::span(pixels)));
  const virtio_gpu_rect full{0, 0, kWidth, kHeight};
  for (const auto& req : {resource_create_2d_request(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, kWidth, kHeight),
                          attach_backing_request(1, fb.entries), transfer_to_host_2d_request(1, full, 0),
                          set_scanout_request(0, 1, full), resource_flush_request(1, full)}) {
    auto resp = fe->command(TestFrontend::kControlQueue, req, sizeof(virtio_gpu_ctrl_hdr));
    ASSERT_TRUE(resp);
    ASSERT_EQ(response_type(*resp), VIRTIO_GPU_RESP_OK_NODATA);
  }

  ::kill(p->pid(), SIGUSR1);
  ASSERT_TRUE(p->wait_for_log("SIGUSR1: wrote")) << p->log();

  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  const std::string path = (std::filesystem::path(sock.dir()) / "scanout-0.png").string();
  ASSERT_NE(png_image_begin_read_from_file(&image, path.c_str()), 0) << path;
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(image));
  ASSERT_NE(png_image_finish_read(&image, nullptr, rgb.data(), 0, nullptr), 0);
  EXPECT_EQ(image.width, kWidth);
  EXPECT_EQ(image.height, kHeight);
  EXPECT_EQ(rgb.at(0), 0x10);  // red
  EXPECT_EQ(rgb.at(1), 0x20);  // green
  EXPECT_EQ(rgb.at(2), 0x30);  // blue
}

TEST_F(HeadlessScreenshot, Sigusr1_NoActiveScanout_SaysSo) {
  ::kill(p->pid(), SIGUSR1);
  EXPECT_TRUE(p->wait_for_log("no active scanout")) << p->log();
  EXPECT_TRUE(p->running());
}

}  // namespace
}  // namespace vgpu::test

// Leases on renderer images (ImageView::lease): a display sending straight from a renderer's rows keeps them
// allocated even when the renderer frees the resource meanwhile. Without the lease the display would read
// freed memory (a 4 MiB image is unmapped on free: the test crashes; under ASan it reports use-after-free).
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/unique_fd.h"
#include "display/socket_display.h"
#include "gpu/scanout_shadow.h"
#include "renderer/soft2d/soft2d_renderer.h"

namespace vgpu {
namespace {

constexpr uint32_t kSide = 1024;  // 4 MiB of pixels: malloc maps it on its own and unmaps it on free

std::vector<std::byte> pattern() {
  std::vector<std::byte> px(size_t{kSide} * kSide * kBytesPerPixel);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::byte>((i * 7 + i / 4096) & 0xff);
  return px;
}

// A SocketDisplay showing one kSide x kSide scanout to a fake QEMU that reads nothing yet, both socket buffers
// squeezed so that a frame stays in flight.
struct Squeezed {
  Squeezed() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw std::runtime_error("socketpair");
    qemu.reset(sv[1]);
    display = std::make_unique<SocketDisplay>(UniqueFd(sv[0]), 1);
    const int small = 4096;
    ::setsockopt(display->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    ::setsockopt(qemu.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    display->set_scanout(0, kSide, kSide);
  }
  UniqueFd qemu;
  std::unique_ptr<SocketDisplay> display;
};

TEST(ImageLease, RendererFreesResourceWhileDisplaySendsIt_BytesStillExact) {
  Soft2DRenderer renderer;
  ASSERT_TRUE(renderer.create_resource(1, PixelFormat::B8G8R8X8, kSide, kSide));
  const auto pixels = pattern();
  ASSERT_TRUE(renderer.restore_pixels(1, pixels));
  Squeezed link;
  SocketDisplay& display = *link.display;
  {
    auto image = renderer.image(1);
    ASSERT_TRUE(image);
    ASSERT_TRUE(image->lease);
    display.update(0, Rect{0, 0, kSide, kSide}, *image, 0, 0);
  }
  ASSERT_TRUE(display.busy()) << "the frame should still be going out from the renderer's rows";

  renderer.destroy_resource(1);  // the device never does this while busy(); the lease makes it safe anyway

  std::vector<std::byte> stream;
  std::array<std::byte, 65536> buf{};
  for (int spins = 0; spins < 100000 && (display.busy() || display.queued_bytes() > 0); ++spins) {
    const ssize_t n = ::recv(link.qemu.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) stream.insert(stream.end(), buf.begin(), buf.begin() + n);
    display.on_event(EPOLLOUT);
  }
  for (ssize_t n; (n = ::recv(link.qemu.get(), buf.data(), buf.size(), MSG_DONTWAIT)) > 0;) {
    stream.insert(stream.end(), buf.begin(), buf.begin() + n);
  }
  EXPECT_FALSE(display.busy());
  ASSERT_GE(stream.size(), pixels.size());
  EXPECT_TRUE(std::equal(pixels.begin(), pixels.end(), stream.end() - static_cast<std::ptrdiff_t>(pixels.size())))
      << "the UPDATE's rows are not the image the renderer had";
}

TEST(ImageLease, ViewWithoutLease_DisplayCopiesInsteadOfBorrowing) {
  const auto pixels = pattern();
  Squeezed link;
  SocketDisplay& display = *link.display;
  const ImageView unleased{pixels.data(), kSide, kSide, kSide * kBytesPerPixel, PixelFormat::B8G8R8X8};

  display.update(0, Rect{0, 0, kSide, kSide}, unleased, 0, 0);

  EXPECT_FALSE(display.busy());  // nothing borrowed: the caller may free its rows now
  EXPECT_GT(display.queued_bytes(), 0u);
}

TEST(ImageLease, ScanoutShadowWrittenWhileLeased_CopyOnWriteLeavesTheLeasedBytes) {
  ScanoutShadow shadow;
  shadow.assign(16);
  auto first = shadow.writable();
  std::fill(first.begin(), first.end(), std::byte{0xaa});
  const std::shared_ptr<const void> lease = shadow.lease();
  const auto* leased = static_cast<const std::vector<std::byte>*>(lease.get());

  auto second = shadow.writable();
  std::fill(second.begin(), second.end(), std::byte{0x55});

  EXPECT_EQ((*leased)[0], std::byte{0xaa});
  EXPECT_EQ(shadow.data()[0], std::byte{0x55});
  EXPECT_NE(static_cast<const void*>(shadow.data()), static_cast<const void*>(leased->data()));
}

}  // namespace
}  // namespace vgpu

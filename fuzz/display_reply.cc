// libFuzzer target for the vhost-user-gpu display socket: arbitrary bytes play QEMU's replies into a
// SocketDisplay over a socketpair, interleaved with Display calls (scanouts, updates in every format, cursor,
// refresh) chosen by the input. Must never crash, hang or leak an fd (checked: /proc/self/fd before and
// after, abort on a difference), and the queue must stay consistent with wanted_events().
//
// Input format (what the seeds in fuzz/corpus/display_reply/ are written in):
//
//   u8 setup: bits 0-2 number of scanouts (0..7), bit 3 shrink the display's send buffer
//   repeat { u8 op; operands }, op & 0x0f:
//     0  raw:       u8 n; n bytes written by "QEMU", then on_event(EPOLLIN)
//     1  framed:    u8 request; u8 flags; u16 size (LE); min(size, rest) payload bytes; then on_event(EPOLLIN)
//     2  canned:    u8 kind (0 features, 1 display info, 2 EDID, 3 fence, 4 DMABUF_UPDATE unblock); u8 a; u8 b:
//                   a well-formed reply
//     3  scanout:   u8 scanout; u8 w; u8 h                    (sizes 0..79)
//     4  update:    u8 scanout; u8 x, y, w, h; u8 format; u8 src_x, src_y; u8 image w, h; u8 stride kind
//     5  cursor:    u8 scanout; u8 x, y; u8 hot; u8 pixels kind (bit 0: wrong size)
//     6  move:      u8 scanout; u8 x, y
//     7  hide:      u8 scanout
//     8  drain:     QEMU reads what is waiting; on_event(EPOLLOUT)
//     9  refresh
//     10 queries:   display_info(), edid() of every scanout, pending()
//     11 hang up:   QEMU shuts down its side (u8 how: 0 write, 1 both), then on_event(EPOLLIN | EPOLLHUP)
//     12 events:    u8 events (bit 0 EPOLLIN, 1 EPOLLOUT, 2 EPOLLHUP, 3 EPOLLERR) for on_event
//     13 dma-buf:   u8 scanout; u8 buffer w, h; u8 shown x, y, w, h; u8 modifier kind (0 invalid, 1 linear,
//                   2 tiled); u8 stride kind (0 w*4, 1 w*4+64, 2 w*2); u8 offset kind (0 none, else 4096)
//                   -> set_scanout_dmabuf with a memfd standing in for the dma-buf
//     14 dma-buf update: u8 scanout; u8 x, y, w, h
#include <dirent.h>
#include <linux/virtio_gpu.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "display/edid.h"
#include "display/protocol.h"
#include "display/socket_display.h"
#include "support/fuzz_input.h"

namespace {

using vgpu::ImageView;
using vgpu::PixelFormat;
using vgpu::Rect;
using vgpu::SocketDisplay;
using vgpu::UniqueFd;
using vgpu::display::Request;

constexpr size_t kMaxInput = 64 * 1024;
constexpr uint32_t kImageSide = 64;

constexpr std::array<PixelFormat, 8> kFormats = {
    PixelFormat::B8G8R8A8, PixelFormat::B8G8R8X8, PixelFormat::A8R8G8B8, PixelFormat::X8R8G8B8,
    PixelFormat::R8G8B8A8, PixelFormat::X8B8G8R8, PixelFormat::A8B8G8R8, PixelFormat::R8G8B8X8,
};

using vgpu::test::open_fd_count;

// Reads operands off the input; past the end, every operand is 0.
class Input {
 public:
  explicit Input(std::span<const uint8_t> data) : data_(data) {}
  [[nodiscard]] bool done() const { return pos_ >= data_.size(); }
  uint8_t u8() { return pos_ < data_.size() ? data_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (uint16_t{u8()} << 8)); }
  std::span<const uint8_t> bytes(size_t n) {
    const auto out = data_.subspan(pos_, std::min(n, data_.size() - pos_));
    pos_ += out.size();
    return out;
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

template <class T>
std::vector<uint8_t> framed(Request request, const T& payload) {
  std::vector<uint8_t> out(sizeof(vgpu::display::MessageHeader) + sizeof(T));
  const vgpu::display::MessageHeader h{static_cast<uint32_t>(request), vgpu::display::kFlagReply, sizeof(T)};
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), &payload, sizeof(T));
  return out;
}

std::vector<uint8_t> canned_reply(uint8_t kind, uint8_t a, uint8_t b) {
  switch (kind % 5) {
    case 0: return framed(Request::GetProtocolFeatures, uint64_t{a});
    case 1: {
      virtio_gpu_resp_display_info info{};
      info.hdr.type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
      for (uint32_t i = 0; i < 8; ++i) {
        info.pmodes[i].enabled = (a >> i) & 1;
        info.pmodes[i].r = {i * 640, 0, 16u + b * 8u, 16u + b * 4u};
      }
      return framed(Request::GetDisplayInfo, info);
    }
    case 2: {
      virtio_gpu_resp_edid edid{};
      edid.hdr.type = VIRTIO_GPU_RESP_OK_EDID;
      const auto blob = vgpu::generate_edid({.width = 16u + a * 16u, .height = 16u + b * 16u});
      std::memcpy(edid.edid, blob.data(), blob.size());
      edid.size = (b & 0x80) != 0 ? b : static_cast<uint32_t>(blob.size());  // sometimes a bad size
      return framed(Request::GetEdid, edid);
    }
    case 4: {
      // DMABUF_UPDATE's empty "unblock" reply.
      std::vector<uint8_t> out(sizeof(vgpu::display::MessageHeader));
      const vgpu::display::MessageHeader h{static_cast<uint32_t>(Request::DmabufUpdate), vgpu::display::kFlagReply, 0};
      std::memcpy(out.data(), &h, sizeof(h));
      return out;
    }
    default: return framed(Request::GetProtocolFeatures, uint64_t{0});
  }
}

void qemu_send(int fd, std::span<const uint8_t> bytes) {
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void qemu_drain(int fd) {
  std::array<std::byte, 65536> buf;
  while (::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT) > 0) {
  }
}

void update(SocketDisplay& display, Input& in, const std::vector<uint32_t>& pixels) {
  const uint32_t scanout = in.u8() % 4;
  const Rect damage{in.u8(), in.u8(), in.u8(), in.u8()};
  const uint8_t format = in.u8();
  const uint32_t src_x = in.u8() % 80, src_y = in.u8() % 80;
  const uint32_t w = in.u8() % (kImageSide + 1), h = in.u8() % (kImageSide + 1);
  const uint8_t stride_kind = in.u8() % 3;
  // Views stay inside `pixels` (the device's promise); a too-short stride must be refused by the display.
  const uint32_t stride = stride_kind == 0 ? kImageSide * 4 : stride_kind == 1 ? w * 4 : (w * 4) / 2;
  const ImageView image{reinterpret_cast<const std::byte*>(pixels.data()), w, h, stride,
                        format < 0xf0 ? kFormats[format % kFormats.size()] : static_cast<PixelFormat>(format)};
  display.update(scanout, damage, image, src_x, src_y);
}

void dmabuf_scanout(SocketDisplay& display, Input& in) {
  const uint32_t scanout = in.u8() % 4;
  const uint32_t w = in.u8(), h = in.u8();
  const Rect shown{in.u8(), in.u8(), in.u8(), in.u8()};
  const uint8_t modifier_kind = in.u8() % 3;
  const uint8_t stride_kind = in.u8() % 3;
  const bool offset = in.u8() != 0;
  UniqueFd fd(::memfd_create("dmabuf", MFD_CLOEXEC));
  const vgpu::DmabufImage image{.fd = fd.get(),
                                .width = w,
                                .height = h,
                                .stride = stride_kind == 0   ? w * 4
                                          : stride_kind == 1 ? w * 4 + 64
                                                             : w * 2,
                                .offset = offset ? 4096u : 0u,
                                .fourcc = vgpu::kDrmFormatXrgb8888,
                                .modifier = modifier_kind == 0   ? vgpu::kDrmModInvalid
                                            : modifier_kind == 1 ? vgpu::kDrmModLinear
                                                                 : 0x0100000000000002ULL,
                                .y0_top = (modifier_kind & 1) != 0};
  (void)display.accepts_dmabuf(image);
  (void)display.set_scanout_dmabuf(scanout, image, shown);
}

void run(std::span<const uint8_t> data) {
  Input in(data);
  const uint8_t setup = in.u8();
  int sv[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  UniqueFd qemu(sv[1]);
  if ((setup & 0x08) != 0) {
    const int small = 4096;
    (void)::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  }
  SocketDisplay display(UniqueFd(sv[0]), setup & 0x07);
  uint32_t listener_calls = 0;
  display.set_listener([&] { ++listener_calls; });
  std::vector<uint32_t> pixels(kImageSide * kImageSide);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint32_t>(i * 0x01030507u);
  std::vector<uint32_t> cursor(64 * 64, 0x80ff00ffu);

  while (!in.done()) {
    const uint8_t op = in.u8();
    switch (op & 0x0f) {
      case 0:
        qemu_send(qemu.get(), in.bytes(in.u8()));
        display.on_event(EPOLLIN);
        break;
      case 1: {
        const vgpu::display::MessageHeader h{in.u8(), in.u8(), in.u16()};
        qemu_send(qemu.get(), std::span(reinterpret_cast<const uint8_t*>(&h), sizeof(h)));
        qemu_send(qemu.get(), in.bytes(h.size));
        display.on_event(EPOLLIN);
        break;
      }
      case 2: {
        const uint8_t kind = in.u8(), a = in.u8(), b = in.u8();
        qemu_send(qemu.get(), canned_reply(kind, a, b));
        display.on_event(EPOLLIN);
        break;
      }
      case 3: {
        const uint32_t scanout = in.u8() % 4, w = in.u8() % 80, h = in.u8() % 80;
        display.set_scanout(scanout, w, h);
        break;
      }
      case 4: update(display, in, pixels); break;
      case 5: {
        const uint32_t scanout = in.u8() % 4, x = in.u8(), y = in.u8(), hot = in.u8();
        const bool wrong = (in.u8() & 1) != 0;
        display.cursor_update(scanout, x, y, hot, hot, std::span(cursor).subspan(0, wrong ? 100 : cursor.size()));
        break;
      }
      case 6: {
        const uint32_t scanout = in.u8() % 4, x = in.u8(), y = in.u8();
        display.cursor_move(scanout, x, y);
        break;
      }
      case 7: display.cursor_hide(in.u8() % 4); break;
      case 8:
        qemu_drain(qemu.get());
        display.on_event(EPOLLOUT);
        break;
      case 9: display.refresh(); break;
      case 10: {
        (void)display.display_info();
        for (uint32_t i = 0; i <= vgpu::kMaxScanouts; ++i) (void)display.edid(i);
        (void)display.pending();
        (void)display.edid_supported();
        break;
      }
      case 11: {
        (void)::shutdown(qemu.get(), (in.u8() & 1) != 0 ? SHUT_RDWR : SHUT_WR);
        display.on_event(EPOLLIN | EPOLLHUP);
        break;
      }
      case 12: {
        const uint8_t e = in.u8();
        const uint32_t events = ((e & 1) != 0 ? EPOLLIN : 0u) | ((e & 2) != 0 ? EPOLLOUT : 0u) |
                                ((e & 4) != 0 ? EPOLLHUP : 0u) | ((e & 8) != 0 ? EPOLLERR : 0u);
        display.on_event(events);
        break;
      }
      case 13: dmabuf_scanout(display, in); break;
      case 14: {
        const uint32_t scanout = in.u8() % 4;
        const Rect damage{in.u8(), in.u8(), in.u8(), in.u8()};
        display.update_dmabuf(scanout, damage);
        break;
      }
      default: break;
    }
    // Invariants: EPOLLOUT exactly while bytes are queued; a dead display holds nothing and wants nothing.
    const bool wants_out = (display.wanted_events() & EPOLLOUT) != 0;
    if (wants_out != (display.queued_bytes() > 0)) std::abort();
    if (!display.alive() &&
        (display.queued_bytes() != 0 || display.wanted_events() != 0 || display.pending() || display.busy())) {
      std::abort();
    }
  }
  if (!display.alive() && listener_calls == 0 && display.fd() >= 0) {
    display.on_event(EPOLLHUP);
    if (listener_calls != 1) std::abort();  // death is reported exactly once, from on_event
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return -1;
  (void)vgpu::test::fuzz_verbose();  // silent unless VGPU_FUZZ_LOG is set
  const size_t before = open_fd_count();
  run(std::span<const uint8_t>(data, size));
  if (open_fd_count() != before) std::abort();  // an fd leaked
  return 0;
}

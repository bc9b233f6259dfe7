// SocketDisplay against a fake QEMU on the other end of a socketpair: the negotiation sequence
// (GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, GET_DISPLAY_INFO, GET_EDID + fence), the listener, UPDATE
// payloads for every pixel format and only the damaged rectangle, cursor messages, queueing under EPOLLOUT
// pressure and its bounds, zero-copy UPDATEs (busy() while the socket has not taken them, exact pixels, the
// listener when done, order with messages queued behind), and malformed replies / EOF / EPIPE making the
// display dead without a crash.
// Over 600 lines on purpose: every case runs against the same fake-QEMU fixture (SocketDisplayTest and its
// parameterised variants); sections follow the protocol: negotiation, updates, FrameWriter behaviour, cursor.
#include "display/socket_display.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "display/edid.h"
#include "display/protocol.h"

namespace vgpu {
namespace {

// A lease on a buffer the test keeps alive itself until its end (a renderer's lease owns its storage; the
// display holds either while busy()). Without a lease the display copies instead of sending from the rows.
template <class T>
std::shared_ptr<const void> test_lease(const T& buffer) {
  return std::shared_ptr<const void>(&buffer, [](const void*) {});
}

using display::Request;

struct Message {
  uint32_t request = 0;
  uint32_t flags = 0;
  std::vector<std::byte> payload;
};

uint32_t req(Request r) {
  return static_cast<uint32_t>(r);
}

// Reads exactly n bytes (blocking, 2 s per chunk); returns fewer on timeout or EOF.
std::vector<std::byte> read_exact(int fd, size_t n) {
  std::vector<std::byte> out(n);
  size_t got = 0;
  pollfd p{fd, POLLIN, 0};
  while (got < n && ::poll(&p, 1, 2000) == 1) {
    const ssize_t r = ::read(fd, out.data() + got, n - got);
    got += r > 0 ? static_cast<size_t>(r) : n;  // EOF or error: stop
  }
  return out;
}

// Splits a byte stream into messages.
std::vector<Message> parse_stream(const std::vector<std::byte>& stream) {
  std::vector<Message> out;
  size_t off = 0;
  while (off + sizeof(display::MessageHeader) <= stream.size()) {
    const auto h = copy_from<display::MessageHeader>(stream, off);
    off += sizeof(h);
    out.push_back(Message{h.request, h.flags,
                          std::vector<std::byte>(stream.begin() + static_cast<ptrdiff_t>(off),
                                                 stream.begin() + static_cast<ptrdiff_t>(off + h.size))});
    off += h.size;
  }
  return out;
}

std::vector<uint32_t> requests_of(const std::vector<Message>& messages) {
  std::vector<uint32_t> out;
  for (const Message& m : messages) out.push_back(m.request);
  return out;
}

// A width x height image of distinct pixels whose 4th byte varies too (it must pass through unchanged).
std::vector<uint32_t> pattern_pixels(uint32_t width, uint32_t height) {
  std::vector<uint32_t> out(size_t{width} * height);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) out[size_t{y} * width + x] = (x * 0x9e3779b9u) ^ (y * 0x85ebca6bu) ^ (y << 24);
  }
  return out;
}

// The UPDATE data a rectangle of `pixels` (`stride` pixels per row) must arrive as, for a format that needs
// no conversion: the image's bytes, row by row.
std::vector<std::byte> rows_of(const std::vector<uint32_t>& pixels, uint32_t stride, const Rect& r) {
  std::vector<std::byte> out;
  for (uint32_t y = r.y; y < r.y + r.height; ++y) {
    const auto* row = reinterpret_cast<const std::byte*>(pixels.data() + size_t{y} * stride + r.x);
    out.insert(out.end(), row, row + size_t{r.width} * 4);
  }
  return out;
}

// An UPDATE's pixel bytes (its payload after the UpdateHeaderPayload).
std::vector<std::byte> pixels_of(const Message& m) {
  return {m.payload.begin() + sizeof(display::UpdateHeaderPayload), m.payload.end()};
}

virtio_gpu_resp_display_info display_info_reply(std::vector<Rect> enabled) {
  virtio_gpu_resp_display_info info{};
  info.hdr.type = VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
  for (size_t i = 0; i < enabled.size(); ++i) {
    info.pmodes[i].r = {enabled[i].x, enabled[i].y, enabled[i].width, enabled[i].height};
    info.pmodes[i].enabled = 1;
  }
  return info;
}

virtio_gpu_resp_edid edid_reply(const std::vector<uint8_t>& blob) {
  virtio_gpu_resp_edid r{};
  r.hdr.type = VIRTIO_GPU_RESP_OK_EDID;
  r.size = static_cast<uint32_t>(blob.size());
  std::memcpy(r.edid, blob.data(), blob.size());
  return r;
}

std::vector<uint8_t> test_edid(uint32_t w, uint32_t h) {
  const auto e = generate_edid({.width = w, .height = h});
  return {e.begin(), e.end()};
}

// A view of `pixels` as a width x height image whose rows are `stride` bytes apart (4 * width when 0), leased by
// the test.
ImageView image_of(const std::vector<uint32_t>& pixels, uint32_t width, uint32_t height, uint32_t stride = 0,
                   PixelFormat format = PixelFormat::B8G8R8X8) {
  return ImageView{reinterpret_cast<const std::byte*>(pixels.data()),
                   width,
                   height,
                   stride != 0 ? stride : width * 4,
                   format,
                   test_lease(pixels)};
}

// An UPDATE header's scanout and rectangle, to compare in one expectation.
std::array<uint32_t, 5> rect_of(const display::UpdateHeaderPayload& h) {
  return {h.scanout_id, h.x, h.y, h.width, h.height};
}

// A "dma-buf" for the protocol tests: any fd travels the same way; a memfd's inode tells it apart.
UniqueFd fake_dmabuf() {
  return UniqueFd(::memfd_create("dmabuf", MFD_CLOEXEC));
}

ino_t inode_of(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

DmabufImage dmabuf_image(int fd, uint64_t modifier = kDrmModInvalid) {
  return DmabufImage{.fd = fd,
                     .width = 128,
                     .height = 64,
                     .stride = 640,
                     .offset = 0,
                     .fourcc = kDrmFormatXrgb8888,
                     .modifier = modifier,
                     .y0_top = true};
}

// One message as QEMU's chardev reads it (header first), with the fd that arrived with the header's bytes.
struct FdMessage {
  Message message;
  UniqueFd fd;
};

FdMessage read_fd_message(int sock) {
  FdMessage out;
  display::MessageHeader h{};
  iovec iov{&h, sizeof(h)};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) std::array<std::byte, CMSG_SPACE(sizeof(int))> control{};
  mh.msg_control = control.data();
  mh.msg_controllen = control.size();
  pollfd p{sock, POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1 || ::recvmsg(sock, &mh, MSG_WAITALL) != sizeof(h)) return out;
  if (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr && c->cmsg_type == SCM_RIGHTS) {
    int fd = -1;
    std::memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    out.fd.reset(fd);
  }
  out.message = Message{h.request, h.flags, read_exact(sock, h.size)};
  return out;
}

// The QEMU end of the socket, plus the display under test.
class SocketDisplayTest : public testing::Test {
 protected:
  void SetUp() override { start(1); }

  void start(uint32_t num_scanouts) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    qemu_.reset(sv[1]);
    display_ = std::make_unique<SocketDisplay>(UniqueFd(sv[0]), num_scanouts);
    display_->set_listener([this] { ++listener_calls_; });
  }

  Message read_message() {
    const auto raw = read_exact(qemu_.get(), sizeof(display::MessageHeader));
    const auto h = copy_from<display::MessageHeader>(raw);
    return Message{h.request, h.flags, read_exact(qemu_.get(), h.size)};
  }

  bool qemu_has_input() {
    pollfd p{qemu_.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }

  void send_raw(const std::vector<std::byte>& bytes) {
    ASSERT_EQ(::write(qemu_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }

  void reply(Request r, const std::vector<std::byte>& payload, uint32_t flags = display::kFlagReply) {
    auto bytes = bytes_of(display::MessageHeader{req(r), flags, static_cast<uint32_t>(payload.size())});
    bytes.insert(bytes.end(), payload.begin(), payload.end());
    send_raw(bytes);
  }

  void reply_and_pump(Request r, const std::vector<std::byte>& payload) {
    reply(r, payload);
    display_->on_event(EPOLLIN);
  }

  // Answers the first requests: features, then display info with `enabled` scanouts.
  void negotiate(uint64_t features, std::vector<Rect> enabled) {
    read_message();  // GET_PROTOCOL_FEATURES
    reply_and_pump(Request::GetProtocolFeatures, bytes_of(features));
    read_message();  // SET_PROTOCOL_FEATURES
    read_message();  // GET_DISPLAY_INFO
    reply_and_pump(Request::GetDisplayInfo, bytes_of(display_info_reply(std::move(enabled))));
  }

  // Everything the display writes until its queue is empty, pumping EPOLLOUT as QEMU reads.
  std::vector<Message> drain() {
    std::vector<std::byte> stream;
    std::array<std::byte, 65536> buf{};
    for (int spins = 0; spins < 100000 && (display_->queued_bytes() > 0 || qemu_has_input()); ++spins) {
      const ssize_t n = ::recv(qemu_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      stream.insert(stream.end(), buf.begin(), buf.begin() + (n > 0 ? n : 0));
      display_->on_event(EPOLLOUT);
    }
    return parse_stream(stream);
  }

  // Shrinks both socket buffers so that a few KiB fill them.
  void squeeze_buffers() {
    const int small = 4096;
    ASSERT_EQ(::setsockopt(display_->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    ASSERT_EQ(::setsockopt(qemu_.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
  }

  // Past the first GET_PROTOCOL_FEATURES: scanout 0 set to width x height and its SCANOUT message read.
  void show_scanout(uint32_t width, uint32_t height) {
    read_message();
    display_->set_scanout(0, width, height);
    read_message();
  }

  // Past the first GET_PROTOCOL_FEATURES: both socket buffers squeezed, scanout 0 set (its SCANOUT left queued).
  void squeeze_with_scanout(uint32_t width, uint32_t height) {
    read_message();
    squeeze_buffers();
    display_->set_scanout(0, width, height);
  }

  // On squeezed buffers, a 256 x 256 SCANOUT then a full frame of frame_ (pattern_pixels), too large to go out at
  // once: the display is busy() with it.
  void queue_busy_frame() {
    squeeze_buffers();
    display_->set_scanout(0, 256, 256);
    frame_ = pattern_pixels(256, 256);
    display_->update(0, Rect{0, 0, 256, 256}, image_of(frame_, 256, 256), 0, 0);
  }

  // A squeezed 64 x 64 scanout whose socket a first full frame of backlog_ (all `value`) has filled.
  ImageView fill_socket(uint32_t value) {
    squeeze_with_scanout(64, 64);
    backlog_.assign(size_t{64} * 64, value);
    const ImageView image = image_of(backlog_, 64, 64);
    display_->update(0, Rect{0, 0, 64, 64}, image, 0, 0);
    return image;
  }

  // Negotiated without features for one 128 x 64 output, then scanout 0 showing `shown` of dmabuf_ (its message
  // read).
  void show_dmabuf(Rect shown) {
    negotiate(0, {{0, 0, 128, 64}});
    dmabuf_ = fake_dmabuf();
    ASSERT_TRUE(display_->set_scanout_dmabuf(0, dmabuf_image(dmabuf_.get()), shown));
    (void)read_fd_message(qemu_.get());
  }

  // Answers scanout 0's GET_EDID with `blob`, then the fence that follows it.
  void answer_edid(const std::vector<uint8_t>& blob) {
    reply(Request::GetEdid, bytes_of(edid_reply(blob)));
    reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{1}));
  }

  UniqueFd qemu_;
  std::vector<uint32_t> frame_;
  std::vector<uint32_t> backlog_;
  UniqueFd dmabuf_;
  std::unique_ptr<SocketDisplay> display_;
  int listener_calls_ = 0;
};

// ---- negotiation ----

TEST_F(SocketDisplayTest, Constructed_SendsGetProtocolFeatures) {
  const Message m = read_message();

  EXPECT_EQ(m.request, req(Request::GetProtocolFeatures));
  EXPECT_EQ(m.flags, 0u);
  EXPECT_TRUE(m.payload.empty());
  EXPECT_TRUE(display_->alive());
  EXPECT_TRUE(display_->pending());
}

TEST_F(SocketDisplayTest, FeaturesOfferEdidDmabuf2AndUnknown_SetsTheKnownOnes) {
  read_message();

  reply_and_pump(Request::GetProtocolFeatures,
                 bytes_of(display::kProtocolFeatureEdid | display::kProtocolFeatureDmabuf2 | (uint64_t{1} << 40)));
  const Message set = read_message();
  const Message info = read_message();

  const uint64_t both = display::kProtocolFeatureEdid | display::kProtocolFeatureDmabuf2;
  EXPECT_EQ(set.request, req(Request::SetProtocolFeatures));
  EXPECT_EQ(copy_from<uint64_t>(set.payload), both);
  EXPECT_EQ(info.request, req(Request::GetDisplayInfo));
  EXPECT_TRUE(display_->edid_supported());
  EXPECT_EQ(display_->protocol_features(), both);
}

TEST_F(SocketDisplayTest, FeaturesWithoutEdid_SettlesAfterDisplayInfoWithoutEdidRequests) {
  negotiate(0, {{0, 0, 800, 600}});

  EXPECT_FALSE(display_->pending());
  EXPECT_FALSE(display_->edid_supported());
  EXPECT_FALSE(display_->edid(0).has_value());
  EXPECT_FALSE(qemu_has_input());
}

TEST_F(SocketDisplayTest, BeforeDisplayInfoReply_InfoUnknownAndPending) {
  read_message();
  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{0}));

  EXPECT_FALSE(display_->display_info().has_value());
  EXPECT_TRUE(display_->pending());
  EXPECT_EQ(listener_calls_, 0);
}

TEST_F(SocketDisplayTest, DisplayInfoReply_FiresListenerWithModes) {
  negotiate(0, {{0, 0, 1024, 768}});

  EXPECT_EQ(listener_calls_, 1);
  EXPECT_EQ(display_->display_info(), (std::vector<ScanoutMode>{{true, {0, 0, 1024, 768}}}));
}

TEST_F(SocketDisplayTest, EdidNegotiated_AsksEachScanoutWithFence) {
  start(2);
  negotiate(display::kProtocolFeatureEdid, {{0, 0, 1024, 768}});

  const std::vector<Message> sent = {read_message(), read_message(), read_message(), read_message()};

  EXPECT_EQ(requests_of(sent), (std::vector<uint32_t>{req(Request::GetEdid), req(Request::GetProtocolFeatures),
                                                      req(Request::GetEdid), req(Request::GetProtocolFeatures)}));
  EXPECT_EQ(copy_from<uint32_t>(sent[0].payload), 0u);
  EXPECT_EQ(copy_from<uint32_t>(sent[2].payload), 1u);
  EXPECT_TRUE(display_->pending());
}

TEST_F(SocketDisplayTest, EdidReply_StoresBlobAndSettles) {
  negotiate(display::kProtocolFeatureEdid, {{0, 0, 1024, 768}});
  const auto blob = test_edid(1024, 768);

  answer_edid(blob);

  EXPECT_EQ(display_->edid(0), blob);
  EXPECT_FALSE(display_->pending());
  EXPECT_EQ(listener_calls_, 2);
}

TEST_F(SocketDisplayTest, EdidRefused_FenceSettlesWithoutBlob) {
  start(2);
  negotiate(display::kProtocolFeatureEdid, {{0, 0, 1024, 768}});
  const auto blob = test_edid(1024, 768);

  reply(Request::GetEdid, bytes_of(edid_reply(blob)));
  reply(Request::GetProtocolFeatures, bytes_of(uint64_t{1}));
  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{1}));  // scanout 1: QEMU stayed silent

  EXPECT_EQ(display_->edid(0), blob);
  EXPECT_FALSE(display_->edid(1).has_value());
  EXPECT_FALSE(display_->pending());
  EXPECT_TRUE(display_->alive());
}

TEST_F(SocketDisplayTest, InvalidEdidContent_IgnoredAndStaysAlive) {
  negotiate(display::kProtocolFeatureEdid, {{0, 0, 1024, 768}});
  auto blob = test_edid(1024, 768);
  blob[127] ^= 0xff;

  answer_edid(blob);

  EXPECT_FALSE(display_->edid(0).has_value());
  EXPECT_TRUE(display_->alive());
  EXPECT_FALSE(display_->pending());
}

TEST_F(SocketDisplayTest, EnabledOutputBeyondOurScanouts_Ignored) {
  negotiate(0, {{0, 0, 1024, 768}, {1024, 0, 800, 600}});

  EXPECT_EQ(display_->display_info(), (std::vector<ScanoutMode>{{true, {0, 0, 1024, 768}}}));
  EXPECT_TRUE(display_->alive());
}

TEST_F(SocketDisplayTest, PartialReply_AssembledAcrossEvents) {
  read_message();
  auto bytes = bytes_of(display::MessageHeader{req(Request::GetProtocolFeatures), display::kFlagReply, 8});
  const auto payload = bytes_of(display::kProtocolFeatureEdid);
  bytes.insert(bytes.end(), payload.begin(), payload.end());

  send_raw(std::vector<std::byte>(bytes.begin(), bytes.begin() + 7));
  display_->on_event(EPOLLIN);
  send_raw(std::vector<std::byte>(bytes.begin() + 7, bytes.end()));
  display_->on_event(EPOLLIN);

  EXPECT_TRUE(display_->edid_supported());
  EXPECT_EQ(read_message().request, req(Request::SetProtocolFeatures));
}

TEST_F(SocketDisplayTest, Refresh_AsksAgainAndReportsChange) {
  negotiate(0, {{0, 0, 1024, 768}});

  display_->refresh();
  const Message again = read_message();
  const bool pending_meanwhile = display_->pending();
  reply_and_pump(Request::GetDisplayInfo, bytes_of(display_info_reply({{0, 0, 1920, 1080}})));

  EXPECT_EQ(again.request, req(Request::GetDisplayInfo));
  EXPECT_TRUE(pending_meanwhile);
  EXPECT_FALSE(display_->pending());
  EXPECT_EQ(display_->display_info(), (std::vector<ScanoutMode>{{true, {0, 0, 1920, 1080}}}));
  EXPECT_EQ(listener_calls_, 2);
}

TEST_F(SocketDisplayTest, RefreshDuringNegotiation_AsksOnceMore) {
  read_message();
  display_->refresh();

  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{0}));
  read_message();  // SET_PROTOCOL_FEATURES
  read_message();  // GET_DISPLAY_INFO
  reply_and_pump(Request::GetDisplayInfo, bytes_of(display_info_reply({{0, 0, 640, 480}})));
  const Message again = read_message();

  EXPECT_EQ(again.request, req(Request::GetDisplayInfo));
  EXPECT_TRUE(display_->pending());
}

// ---- scanouts, updates, cursor ----

TEST_F(SocketDisplayTest, SetScanout_SendsScanoutMessage) {
  read_message();

  display_->set_scanout(0, 640, 480);
  const Message m = read_message();

  EXPECT_EQ(m.request, req(Request::Scanout));
  const auto p = copy_from<display::ScanoutPayload>(m.payload);
  EXPECT_EQ(p.scanout_id, 0u);
  EXPECT_EQ(p.width, 640u);
  EXPECT_EQ(p.height, 480u);
}

TEST_F(SocketDisplayTest, SetScanoutOutOfRange_SendsNothing) {
  read_message();

  display_->set_scanout(1, 640, 480);
  display_->set_scanout(0, kMaxScanoutDimension + 1, 480);

  EXPECT_FALSE(qemu_has_input());
}

TEST_F(SocketDisplayTest, Update_SendsOnlyDamagedRectFromSourceOffset) {
  show_scanout(4, 4);
  // An 8 x 8 B8G8R8X8 image whose pixel (x, y) is 0x00YYXX00 + marker, shown from (2, 3).
  std::vector<uint32_t> pixels(64);
  for (uint32_t y = 0; y < 8; ++y)
    for (uint32_t x = 0; x < 8; ++x) pixels[y * 8 + x] = (y << 16) | (x << 8) | 0x5a;

  display_->update(0, Rect{1, 2, 2, 1}, image_of(pixels, 8, 8), 3, 5);
  const Message m = read_message();

  EXPECT_EQ(m.request, req(Request::Update));
  ASSERT_EQ(m.payload.size(), sizeof(display::UpdateHeaderPayload) + 2 * 4);
  EXPECT_EQ(rect_of(copy_from<display::UpdateHeaderPayload>(m.payload)), (std::array<uint32_t, 5>{0, 1, 2, 2, 1}));
  EXPECT_EQ(copy_from<uint32_t>(m.payload, 20), 0x0005035au);  // B8G8R8X8 goes out as it is, X byte included
  EXPECT_EQ(copy_from<uint32_t>(m.payload, 24), 0x0005045au);
}

TEST_F(SocketDisplayTest, UpdateBeyondScanout_ClippedToScanout) {
  show_scanout(4, 4);
  const std::vector<uint32_t> pixels(64, 0x00123456);

  display_->update(0, Rect{2, 2, 100, 100}, image_of(pixels, 8, 8), 0, 0);
  const auto h = copy_from<display::UpdateHeaderPayload>(read_message().payload);

  EXPECT_EQ((std::array<uint32_t, 4>{h.x, h.y, h.width, h.height}), (std::array<uint32_t, 4>{2, 2, 2, 2}));
}

TEST_F(SocketDisplayTest, UpdateBeyondImage_ClippedToImage) {
  show_scanout(64, 64);
  const std::vector<uint32_t> pixels(16, 0x00123456);

  display_->update(0, Rect{0, 0, 64, 64}, image_of(pixels, 4, 4), 1, 1);
  const Message m = read_message();
  const auto h = copy_from<display::UpdateHeaderPayload>(m.payload);

  EXPECT_EQ((std::array<uint32_t, 2>{h.width, h.height}), (std::array<uint32_t, 2>{3, 3}));
  EXPECT_EQ(m.payload.size(), sizeof(h) + 9 * 4);
}

TEST_F(SocketDisplayTest, UpdateOfDisabledScanout_SendsNothing) {
  read_message();
  const std::vector<uint32_t> pixels(16);

  display_->update(0, Rect{0, 0, 4, 4}, image_of(pixels, 4, 4), 0, 0);

  EXPECT_FALSE(qemu_has_input());
}

TEST_F(SocketDisplayTest, UpdateWithShortStride_SendsNothing) {
  show_scanout(4, 4);
  const std::vector<uint32_t> pixels(16);

  display_->update(0, Rect{0, 0, 4, 4}, image_of(pixels, 4, 4, 12), 0, 0);

  EXPECT_FALSE(qemu_has_input());
}

struct FormatCase {
  PixelFormat format;
  std::array<uint8_t, 4> in;   // one pixel's bytes in memory
  std::array<uint8_t, 4> out;  // PIXMAN_x8r8g8b8 bytes on a little-endian host: B, G, R, X
};

class SocketDisplayFormatTest : public SocketDisplayTest, public testing::WithParamInterface<FormatCase> {};

TEST_P(SocketDisplayFormatTest, Update_ConvertsToX8R8G8B8) {
  show_scanout(1, 1);
  const FormatCase c = GetParam();
  const ImageView image{reinterpret_cast<const std::byte*>(c.in.data()), 1, 1, 4, c.format, test_lease(c.in)};

  display_->update(0, Rect{0, 0, 1, 1}, image, 0, 0);
  const Message m = read_message();

  using Pixel = std::array<uint8_t, 4>;
  EXPECT_EQ(copy_from<Pixel>(m.payload, sizeof(display::UpdateHeaderPayload)), c.out);
}

// Names give the byte order in memory; bytes here are 0x11, 0x22, 0x33, 0x44 in that order. B8G8R8A8 and
// B8G8R8X8 already are the wire layout and go out unchanged (QEMU ignores the X byte, and its own backend
// passes it through); the others are converted with X = 0xff.
INSTANTIATE_TEST_SUITE_P(
    AllFormats, SocketDisplayFormatTest,
    testing::Values(FormatCase{PixelFormat::B8G8R8A8, {0x11, 0x22, 0x33, 0x44}, {0x11, 0x22, 0x33, 0x44}},
                    FormatCase{PixelFormat::B8G8R8X8, {0x11, 0x22, 0x33, 0x44}, {0x11, 0x22, 0x33, 0x44}},
                    FormatCase{PixelFormat::A8R8G8B8, {0x11, 0x22, 0x33, 0x44}, {0x44, 0x33, 0x22, 0xff}},
                    FormatCase{PixelFormat::X8R8G8B8, {0x11, 0x22, 0x33, 0x44}, {0x44, 0x33, 0x22, 0xff}},
                    FormatCase{PixelFormat::R8G8B8A8, {0x11, 0x22, 0x33, 0x44}, {0x33, 0x22, 0x11, 0xff}},
                    FormatCase{PixelFormat::R8G8B8X8, {0x11, 0x22, 0x33, 0x44}, {0x33, 0x22, 0x11, 0xff}},
                    FormatCase{PixelFormat::A8B8G8R8, {0x11, 0x22, 0x33, 0x44}, {0x22, 0x33, 0x44, 0xff}},
                    FormatCase{PixelFormat::X8B8G8R8, {0x11, 0x22, 0x33, 0x44}, {0x22, 0x33, 0x44, 0xff}}));

TEST_F(SocketDisplayTest, CursorUpdate_Sends64x64WithHotSpot) {
  read_message();
  std::vector<uint32_t> image(64 * 64);
  for (uint32_t i = 0; i < image.size(); ++i) image[i] = 0xff000000u | i;

  display_->cursor_update(0, 10, 20, 3, 4, image);
  const Message m = read_message();

  EXPECT_EQ(m.request, req(Request::CursorUpdate));
  ASSERT_EQ(m.payload.size(), sizeof(display::CursorUpdatePayload));
  const auto p = std::make_unique<display::CursorUpdatePayload>(copy_from<display::CursorUpdatePayload>(m.payload));
  EXPECT_EQ((std::array<uint32_t, 5>{p->pos.scanout_id, p->pos.x, p->pos.y, p->hot_x, p->hot_y}),
            (std::array<uint32_t, 5>{0, 10, 20, 3, 4}));
  EXPECT_EQ(std::vector<uint32_t>(p->data, p->data + 64 * 64), image);
}

TEST_F(SocketDisplayTest, CursorWrongSize_SendsNothing) {
  read_message();
  std::vector<uint32_t> image(32 * 32);

  display_->cursor_update(0, 10, 20, 3, 4, image);

  EXPECT_FALSE(qemu_has_input());
}

TEST_F(SocketDisplayTest, CursorMoveThenHide_SendPosThenHideAtLastPosition) {
  read_message();

  display_->cursor_move(0, 100, 200);
  display_->cursor_hide(0);
  const Message move = read_message();
  const Message hide = read_message();

  EXPECT_EQ(move.request, req(Request::CursorPos));
  EXPECT_EQ(hide.request, req(Request::CursorPosHide));
  const auto p = copy_from<display::CursorPosPayload>(hide.payload);
  EXPECT_EQ((std::array<uint32_t, 3>{p.scanout_id, p.x, p.y}), (std::array<uint32_t, 3>{0, 100, 200}));
}

// ---- queueing ----

TEST_F(SocketDisplayTest, SmallSendBuffer_QueuesWantsEpolloutAndDrainsInOrder) {
  const std::vector<uint32_t> pixels(256 * 256, 0x00abcdef);

  squeeze_with_scanout(256, 256);
  display_->update(0, Rect{0, 0, 256, 256}, image_of(pixels, 256, 256), 0, 0);
  display_->cursor_move(0, 1, 2);
  const bool queued = display_->queued_bytes() > 0;
  const uint32_t events = display_->wanted_events();
  const auto sent = drain();

  EXPECT_TRUE(queued);
  EXPECT_EQ(events, static_cast<uint32_t>(EPOLLIN | EPOLLOUT));
  EXPECT_EQ(requests_of(sent),
            (std::vector<uint32_t>{req(Request::Scanout), req(Request::Update), req(Request::CursorPos)}));
  EXPECT_EQ(sent[1].payload.size(), sizeof(display::UpdateHeaderPayload) + 256 * 256 * 4);
  EXPECT_EQ(copy_from<uint32_t>(sent[1].payload, sent[1].payload.size() - 4), 0x00abcdefu);
  EXPECT_EQ(display_->wanted_events(), static_cast<uint32_t>(EPOLLIN));
}

TEST_F(SocketDisplayTest, BackloggedFullFrames_QueueStaysWithinCap) {
  squeeze_with_scanout(64, 64);
  std::vector<uint32_t> pixels(64 * 64);
  const ImageView image = image_of(pixels, 64, 64);
  const size_t frame = 64 * 64 * 4;
  size_t peak = 0;

  for (uint32_t i = 0; i < 50; ++i) {
    std::fill(pixels.begin(), pixels.end(), i);
    display_->update(0, Rect{0, 0, 64, 64}, image, 0, 0);
    peak = std::max(peak, display_->queued_bytes());
  }
  const auto sent = drain();

  EXPECT_LE(peak, (SocketDisplay::kMaxQueuedFrames + 1) * (frame + 64));
  EXPECT_EQ(sent.back().request, req(Request::Update));
  EXPECT_EQ(copy_from<uint32_t>(sent.back().payload, sizeof(display::UpdateHeaderPayload)), 49u);
}

TEST_F(SocketDisplayTest, BackloggedSmallUpdates_CoalescedIntoBoundingBox) {
  const ImageView image = fill_socket(0x00112233);

  for (uint32_t i = 0; i < 400; ++i) {
    display_->update(0, Rect{4, 4, 8, 8}, image, 4, 4);
    display_->update(0, Rect{32, 40, 8, 8}, image, 32, 40);
  }
  const auto sent = drain();
  const auto covers_both = [](const Message& m) {  // scanout 0, x 4, y 4, 36 x 44: both rectangles
    return m.request == req(Request::Update) &&
           copy_from<std::array<uint32_t, 5>>(m.payload) == std::array<uint32_t, 5>{0, 4, 4, 36, 44};
  };

  EXPECT_LT(sent.size(), 400u);
  EXPECT_GE(std::count_if(sent.begin(), sent.end(), covers_both), 1);
}

TEST_F(SocketDisplayTest, SetScanoutWhileBacklogged_DropsUnsentUpdates) {
  const ImageView image = fill_socket(0);
  display_->update(0, Rect{0, 0, 64, 64}, image, 0, 0);
  display_->update(0, Rect{0, 0, 64, 64}, image, 0, 0);
  const size_t before = display_->queued_bytes();

  display_->set_scanout(0, 32, 32);

  EXPECT_LT(display_->queued_bytes(), before - 64 * 64 * 4);
  EXPECT_EQ(requests_of(drain()).back(), req(Request::Scanout));
}

TEST_F(SocketDisplayTest, CursorMovesWhileBacklogged_KeepOnlyLatest) {
  fill_socket(0);

  for (uint32_t i = 0; i < 1000; ++i) display_->cursor_move(0, i, i);
  const auto sent = drain();

  EXPECT_EQ(requests_of(sent),
            (std::vector<uint32_t>{req(Request::Scanout), req(Request::Update), req(Request::CursorPos)}));
  EXPECT_EQ(copy_from<display::CursorPosPayload>(sent.back().payload).x, uint32_t{999});
}

// ---- zero-copy updates ----

TEST_F(SocketDisplayTest, SmallUpdates_CompleteAtOnceNotBusy) {
  show_scanout(64, 64);
  const auto pixels = pattern_pixels(64, 64);
  const ImageView image = image_of(pixels, 64, 64);
  bool busy = false;
  size_t queued = 0;

  for (uint32_t i = 0; i < 64; ++i) {
    display_->update(0, Rect{i, i, 1, 1}, image, i, i);
    busy = busy || display_->busy();
    queued += display_->queued_bytes();
  }
  std::vector<Message> sent;
  for (uint32_t i = 0; i < 64; ++i) sent.push_back(read_message());

  EXPECT_FALSE(busy);
  EXPECT_EQ(queued, 0u);
  EXPECT_EQ(display_->wanted_events(), static_cast<uint32_t>(EPOLLIN));
  EXPECT_EQ(pixels_of(sent[63]), rows_of(pixels, 64, Rect{63, 63, 1, 1}));
  EXPECT_EQ(listener_calls_, 0);
}

TEST_F(SocketDisplayTest, FullFrameLargerThanSocket_BusyUntilDrainedThenListenerFires) {
  read_message();

  queue_busy_frame();
  const bool busy_before = display_->busy();
  const uint32_t events = display_->wanted_events();
  const auto sent = drain();

  EXPECT_TRUE(busy_before);
  EXPECT_EQ(events, static_cast<uint32_t>(EPOLLIN | EPOLLOUT));
  ASSERT_EQ(requests_of(sent), (std::vector<uint32_t>{req(Request::Scanout), req(Request::Update)}));
  EXPECT_EQ(copy_from<display::UpdateHeaderPayload>(sent[1].payload).height, 256u);
  EXPECT_EQ(pixels_of(sent[1]), rows_of(frame_, 256, Rect{0, 0, 256, 256}));
  EXPECT_FALSE(display_->busy());
  EXPECT_EQ(display_->queued_bytes(), 0u);
  EXPECT_EQ(display_->wanted_events(), static_cast<uint32_t>(EPOLLIN));
  EXPECT_EQ(listener_calls_, 1);
}

TEST_F(SocketDisplayTest, PartialWidthFromPaddedImage_RowsExactAcrossPartialSends) {
  squeeze_with_scanout(600, 300);
  // Rows of 600 pixels, 640 apart: never one span. The rectangle's rows (2080 bytes) go one iovec each.
  const auto pixels = pattern_pixels(640, 300);
  static_assert(520 * 4 >= SocketDisplay::kMinZeroCopyRowBytes);

  display_->update(0, Rect{5, 7, 520, 250}, image_of(pixels, 600, 300, 2560, PixelFormat::B8G8R8A8), 37, 11);
  const bool busy_before = display_->busy();
  const auto sent = drain();

  EXPECT_TRUE(busy_before);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(rect_of(copy_from<display::UpdateHeaderPayload>(sent[1].payload)),
            (std::array<uint32_t, 5>{0, 5, 7, 520, 250}));
  EXPECT_EQ(pixels_of(sent[1]), rows_of(pixels, 640, Rect{37, 11, 520, 250}));
  EXPECT_FALSE(display_->busy());
  EXPECT_EQ(listener_calls_, 1);
}

TEST_F(SocketDisplayTest, MoreRowsThanIovecs_SentInBatchesInOrder) {
  // A send buffer as large as the host allows (net.core.wmem_max), so that where it is over 2 MiB one
  // sendmsg's rows reach kMaxIov; with the usual 208 KiB each sendmsg stops at the buffer's size instead.
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int big = 8 << 20;
  ASSERT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
  qemu_.reset(sv[1]);
  display_ = std::make_unique<SocketDisplay>(UniqueFd(sv[0]), 1);
  read_message();
  display_->set_scanout(0, 512, 1100);
  const auto pixels = pattern_pixels(520, 1100);  // 1100 rows of 2048 bytes, 2080 apart
  static_assert(1100 > SocketDisplay::kMaxIov);

  display_->update(0, Rect{0, 0, 512, 1100}, image_of(pixels, 520, 1100), 8, 0);
  const auto sent = drain();

  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(pixels_of(sent[1]), rows_of(pixels, 520, Rect{8, 0, 512, 1100}));
  EXPECT_FALSE(display_->busy());
}

TEST_F(SocketDisplayTest, NarrowRowsOverCopyLimit_CopiedNotBusy) {
  squeeze_with_scanout(1, kMaxScanoutDimension);
  // 16384 rows of one pixel: 64 KiB + 32 bytes, over kMaxCopiedUpdateBytes, but rows too short to be
  // worth an iovec each.
  auto pixels = pattern_pixels(2, kMaxScanoutDimension);
  const auto original = pixels;

  display_->update(0, Rect{0, 0, 1, kMaxScanoutDimension}, image_of(pixels, 2, kMaxScanoutDimension), 1, 0);
  const bool busy = display_->busy();
  std::fill(pixels.begin(), pixels.end(), 0u);
  const auto sent = drain();

  EXPECT_FALSE(busy);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(pixels_of(sent[1]), rows_of(original, 2, Rect{1, 0, 1, kMaxScanoutDimension}));
}

TEST_F(SocketDisplayTest, CursorQueuedBehindBusyUpdate_SentAfterIt) {
  read_message();
  queue_busy_frame();

  display_->cursor_move(0, 5, 6);
  display_->cursor_hide(0);
  const bool busy_after_cursor = display_->busy();
  const auto sent = drain();

  EXPECT_TRUE(busy_after_cursor);
  ASSERT_EQ(requests_of(sent),
            (std::vector<uint32_t>{req(Request::Scanout), req(Request::Update), req(Request::CursorPosHide)}));
  EXPECT_EQ(pixels_of(sent[1]), rows_of(frame_, 256, Rect{0, 0, 256, 256}));
  EXPECT_EQ(copy_from<display::CursorPosPayload>(sent[2].payload).x, 5u);
}

TEST_F(SocketDisplayTest, UpdateQueuedBehindBusyUpdate_CopiedAtCallTime) {
  read_message();
  queue_busy_frame();
  std::vector<uint32_t> second(64 * 64, 0x11223344u);

  display_->update(0, Rect{8, 8, 64, 64}, image_of(second, 64, 64), 0, 0);
  std::fill(second.begin(), second.end(), 0u);  // only the busy update's image must stay unchanged
  const auto sent = drain();

  ASSERT_EQ(requests_of(sent),
            (std::vector<uint32_t>{req(Request::Scanout), req(Request::Update), req(Request::Update)}));
  EXPECT_EQ(pixels_of(sent[1]), rows_of(frame_, 256, Rect{0, 0, 256, 256}));
  EXPECT_EQ(pixels_of(sent[2]), rows_of(std::vector<uint32_t>(64 * 64, 0x11223344u), 64, Rect{0, 0, 64, 64}));
  EXPECT_EQ(listener_calls_, 1);
}

TEST_F(SocketDisplayTest, SmallUpdateSocketFull_CopiedNotBusy) {
  squeeze_with_scanout(64, 64);
  auto pixels = pattern_pixels(64, 64);  // 16 KiB: more than the squeezed socket takes, under the copy limit
  const auto original = pixels;

  display_->update(0, Rect{0, 0, 64, 64}, image_of(pixels, 64, 64), 0, 0);
  const bool busy = display_->busy();
  const bool queued = display_->queued_bytes() > 0;
  std::fill(pixels.begin(), pixels.end(), 0u);
  const auto sent = drain();

  EXPECT_FALSE(busy);
  EXPECT_TRUE(queued);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(pixels_of(sent[1]), rows_of(original, 64, Rect{0, 0, 64, 64}));
  EXPECT_EQ(listener_calls_, 0);
}

TEST_F(SocketDisplayTest, SetScanoutWhileBusy_StartedUpdateGoesOutWhole) {
  read_message();
  queue_busy_frame();

  display_->set_scanout(0, 128, 128);
  const auto sent = drain();

  ASSERT_EQ(requests_of(sent),
            (std::vector<uint32_t>{req(Request::Scanout), req(Request::Update), req(Request::Scanout)}));
  EXPECT_EQ(pixels_of(sent[1]), rows_of(frame_, 256, Rect{0, 0, 256, 256}));
}

TEST_F(SocketDisplayTest, PeerClosedWhileBusy_DeadNotBusyListenerFiresOnce) {
  read_message();
  queue_busy_frame();
  const bool busy_before = display_->busy();

  qemu_.reset();
  display_->on_event(EPOLLOUT | EPOLLHUP);

  EXPECT_TRUE(busy_before);
  EXPECT_FALSE(display_->alive());
  EXPECT_FALSE(display_->busy());
  EXPECT_EQ(display_->queued_bytes(), 0u);
  EXPECT_EQ(listener_calls_, 1);
}

// ---- failures ----

struct MalformedCase {
  const char* name;
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};

class SocketDisplayMalformedTest : public SocketDisplayTest, public testing::WithParamInterface<MalformedCase> {};

TEST_P(SocketDisplayMalformedTest, FeaturesReply_DeadAndListenerFiresOnce) {
  read_message();
  const MalformedCase c = GetParam();
  auto bytes = bytes_of(display::MessageHeader{c.request, c.flags, c.size});
  bytes.resize(bytes.size() + std::min<uint32_t>(c.size, 4096));

  send_raw(bytes);
  display_->on_event(EPOLLIN);
  display_->on_event(EPOLLIN);

  EXPECT_FALSE(display_->alive());
  EXPECT_FALSE(display_->pending());
  EXPECT_EQ(display_->wanted_events(), 0u);
  EXPECT_EQ(listener_calls_, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Replies, SocketDisplayMalformedTest,
    testing::Values(MalformedCase{"WrongSize", req(Request::GetProtocolFeatures), display::kFlagReply, 4},
                    MalformedCase{"UnexpectedRequest", req(Request::GetDisplayInfo), display::kFlagReply, 408},
                    MalformedCase{"UnknownRequest", 99, display::kFlagReply, 8},
                    MalformedCase{"Oversized", req(Request::GetProtocolFeatures), display::kFlagReply, 2000},
                    MalformedCase{"HugeSize", req(Request::GetProtocolFeatures), display::kFlagReply, 0xffffffffu},
                    MalformedCase{"NoReplyFlag", req(Request::GetProtocolFeatures), 0, 8},
                    MalformedCase{"UnblockReply", req(Request::DmabufUpdate), display::kFlagReply, 0}),
    [](const testing::TestParamInfo<MalformedCase>& param) { return param.param.name; });

TEST_F(SocketDisplayTest, DisplayInfoWithWrongType_Dead) {
  read_message();
  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{0}));
  auto info = display_info_reply({{0, 0, 640, 480}});
  info.hdr.type = VIRTIO_GPU_RESP_ERR_UNSPEC;

  reply_and_pump(Request::GetDisplayInfo, bytes_of(info));

  EXPECT_FALSE(display_->alive());
}

TEST_F(SocketDisplayTest, DisplayInfoWithBadEnabledValue_Dead) {
  read_message();
  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{0}));
  auto info = display_info_reply({{0, 0, 640, 480}});
  info.pmodes[0].enabled = 2;

  reply_and_pump(Request::GetDisplayInfo, bytes_of(info));

  EXPECT_FALSE(display_->alive());
}

TEST_F(SocketDisplayTest, DisplayInfoWithWrappingRect_Dead) {
  read_message();
  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{0}));

  reply_and_pump(Request::GetDisplayInfo, bytes_of(display_info_reply({{0xfffffff0u, 0, 640, 480}})));

  EXPECT_FALSE(display_->alive());
}

TEST_F(SocketDisplayTest, DisplayInfoWithEmptyEnabledRect_Dead) {
  read_message();
  reply_and_pump(Request::GetProtocolFeatures, bytes_of(uint64_t{0}));

  reply_and_pump(Request::GetDisplayInfo, bytes_of(display_info_reply({{0, 0, 0, 480}})));

  EXPECT_FALSE(display_->alive());
}

TEST_F(SocketDisplayTest, EdidSizeOver1024_Dead) {
  negotiate(display::kProtocolFeatureEdid, {{0, 0, 1024, 768}});
  auto r = edid_reply(test_edid(1024, 768));
  r.size = 1025;

  reply_and_pump(Request::GetEdid, bytes_of(r));

  EXPECT_FALSE(display_->alive());
}

TEST_F(SocketDisplayTest, EdidWithWrongType_Dead) {
  negotiate(display::kProtocolFeatureEdid, {{0, 0, 1024, 768}});
  auto r = edid_reply(test_edid(1024, 768));
  r.hdr.type = VIRTIO_GPU_RESP_OK_NODATA;

  reply_and_pump(Request::GetEdid, bytes_of(r));

  EXPECT_FALSE(display_->alive());
}

TEST_F(SocketDisplayTest, PeerClosed_DeadAndListenerFires) {
  read_message();

  qemu_.reset();
  display_->on_event(EPOLLIN | EPOLLHUP);

  EXPECT_FALSE(display_->alive());
  EXPECT_EQ(listener_calls_, 1);
}

TEST_F(SocketDisplayTest, WriteAfterPeerClosed_DeadWithoutSigpipe) {
  read_message();
  qemu_.reset();

  display_->set_scanout(0, 64, 64);
  display_->on_event(EPOLLHUP);

  EXPECT_FALSE(display_->alive());
  EXPECT_EQ(listener_calls_, 1);
}

TEST_F(SocketDisplayTest, DeadDisplay_IgnoresEveryCall) {
  read_message();
  qemu_.reset();
  display_->on_event(EPOLLHUP);
  std::vector<uint32_t> pixels(64 * 64);

  display_->set_scanout(0, 64, 64);
  display_->update(0, Rect{0, 0, 64, 64}, image_of(pixels, 64, 64), 0, 0);
  display_->cursor_update(0, 1, 1, 0, 0, pixels);
  display_->cursor_move(0, 1, 1);
  display_->cursor_hide(0);
  display_->refresh();
  display_->on_event(EPOLLIN | EPOLLOUT);

  EXPECT_EQ(display_->queued_bytes(), 0u);
  EXPECT_EQ(listener_calls_, 1);
}

// ---- dma-buf scanouts ----

TEST_F(SocketDisplayTest, AcceptsDmabuf_NeedsFeaturesAndDmabuf2ForExplicitModifiers) {
  const UniqueFd buf = fake_dmabuf();
  const bool before = display_->accepts_dmabuf(dmabuf_image(buf.get()));
  negotiate(0, {{0, 0, 128, 64}});

  EXPECT_FALSE(before);
  EXPECT_TRUE(display_->accepts_dmabuf(dmabuf_image(buf.get(), kDrmModInvalid)));
  EXPECT_TRUE(display_->accepts_dmabuf(dmabuf_image(buf.get(), kDrmModLinear)));
  EXPECT_FALSE(display_->accepts_dmabuf(dmabuf_image(buf.get(), 0x0100000000000002ULL)));  // Y-tiled
}

TEST_F(SocketDisplayTest, DmabufScanout_WithoutDmabuf2_V1MessageCarriesFdAndFields) {
  negotiate(0, {{0, 0, 128, 64}});
  const UniqueFd buf = fake_dmabuf();

  ASSERT_TRUE(display_->set_scanout_dmabuf(0, dmabuf_image(buf.get()), Rect{16, 8, 96, 48}));
  FdMessage m = read_fd_message(qemu_.get());

  EXPECT_EQ(m.message.request, req(Request::DmabufScanout));
  ASSERT_TRUE(m.fd.valid());
  EXPECT_EQ(inode_of(m.fd.get()), inode_of(buf.get()));
  ASSERT_EQ(m.message.payload.size(), sizeof(display::DmabufScanoutPayload));
  const auto p = copy_from<display::DmabufScanoutPayload>(m.message.payload);
  EXPECT_EQ((std::array<uint32_t, 9>{p.scanout_id, p.x, p.y, p.width, p.height, p.fd_width, p.fd_height, p.fd_stride,
                                     p.fd_flags}),
            (std::array<uint32_t, 9>{0, 16, 8, 96, 48, 128, 64, 640, VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP}));
  EXPECT_EQ(p.fd_drm_fourcc, static_cast<int32_t>(kDrmFormatXrgb8888));
}

TEST_F(SocketDisplayTest, DmabufScanout_WithDmabuf2_Scanout2CarriesModifier) {
  negotiate(display::kProtocolFeatureDmabuf2, {{0, 0, 128, 64}});
  const UniqueFd buf = fake_dmabuf();

  ASSERT_TRUE(display_->set_scanout_dmabuf(0, dmabuf_image(buf.get(), 0x0100000000000002ULL), Rect{0, 0, 128, 64}));
  FdMessage m = read_fd_message(qemu_.get());

  EXPECT_EQ(m.message.request, req(Request::DmabufScanout2));
  EXPECT_TRUE(m.fd.valid());
  ASSERT_EQ(m.message.payload.size(), sizeof(display::DmabufScanout2Payload));
  EXPECT_EQ(copy_from<display::DmabufScanout2Payload>(m.message.payload).modifier, 0x0100000000000002ULL);
}

TEST_F(SocketDisplayTest, DmabufScanout_UnsendableImages_RefusedAndNothingSent) {
  negotiate(0, {{0, 0, 128, 64}});
  const UniqueFd buf = fake_dmabuf();
  DmabufImage with_offset = dmabuf_image(buf.get());
  with_offset.offset = 4096;
  DmabufImage short_stride = dmabuf_image(buf.get());
  short_stride.stride = 128 * 4 - 4;

  EXPECT_FALSE(display_->set_scanout_dmabuf(0, with_offset, Rect{0, 0, 128, 64}));
  EXPECT_FALSE(display_->set_scanout_dmabuf(0, short_stride, Rect{0, 0, 128, 64}));
  EXPECT_FALSE(display_->set_scanout_dmabuf(0, dmabuf_image(-1), Rect{0, 0, 128, 64}));
  EXPECT_FALSE(display_->set_scanout_dmabuf(0, dmabuf_image(buf.get()), Rect{64, 0, 65, 64}));  // leaves the buffer
  EXPECT_FALSE(display_->set_scanout_dmabuf(0, dmabuf_image(buf.get()), Rect{0, 0, 0, 0}));
  EXPECT_FALSE(display_->set_scanout_dmabuf(1, dmabuf_image(buf.get()), Rect{0, 0, 128, 64}));  // no scanout 1
  display_->update_dmabuf(0, Rect{0, 0, 8, 8});  // not in dma-buf mode: ignored

  EXPECT_FALSE(qemu_has_input());
  EXPECT_FALSE(display_->busy());
  EXPECT_TRUE(display_->alive());
}

TEST_F(SocketDisplayTest, DmabufUpdate_BusyUntilUnblockThenListenerFires) {
  show_dmabuf(Rect{0, 0, 96, 48});
  const int calls_before = listener_calls_;

  display_->update_dmabuf(0, Rect{90, 40, 20, 20});
  const Message update = read_message();
  const bool busy = display_->busy();
  const bool pending = display_->pending();
  reply_and_pump(Request::DmabufUpdate, {});

  EXPECT_EQ(update.request, req(Request::DmabufUpdate));
  EXPECT_EQ(rect_of(copy_from<display::UpdateHeaderPayload>(update.payload)),
            (std::array<uint32_t, 5>{0, 90, 40, 6, 8}));  // clipped to the 96x48 shown
  EXPECT_TRUE(busy);
  EXPECT_FALSE(pending);  // the layout is known: only the frame is outstanding
  EXPECT_FALSE(display_->busy());
  EXPECT_EQ(listener_calls_, calls_before + 1);
  EXPECT_TRUE(display_->alive());
}

TEST_F(SocketDisplayTest, RefreshWhileUnblockOutstanding_RepliesMatchInOrder) {
  show_dmabuf(Rect{0, 0, 128, 64});
  display_->update_dmabuf(0, Rect{0, 0, 128, 64});
  display_->refresh();
  EXPECT_EQ(read_message().request, req(Request::DmabufUpdate));
  EXPECT_EQ(read_message().request, req(Request::GetDisplayInfo));
  EXPECT_TRUE(display_->pending());

  reply_and_pump(Request::DmabufUpdate, {});
  reply_and_pump(Request::GetDisplayInfo, bytes_of(display_info_reply({{0, 0, 800, 600}})));

  EXPECT_TRUE(display_->alive());
  EXPECT_FALSE(display_->busy());
  EXPECT_FALSE(display_->pending());
  EXPECT_EQ(display_->display_info()->at(0).rect, (Rect{0, 0, 800, 600}));
}

TEST_F(SocketDisplayTest, SetScanoutAfterDmabuf_DisablesDmabufWithoutFdThenScanout) {
  show_dmabuf(Rect{0, 0, 128, 64});

  display_->set_scanout(0, 128, 64);
  FdMessage disable = read_fd_message(qemu_.get());
  const Message scanout = read_message();
  display_->set_scanout(0, 64, 64);  // already out of dma-buf mode: SCANOUT only
  const Message again = read_message();

  EXPECT_EQ(disable.message.request, req(Request::DmabufScanout));
  EXPECT_FALSE(disable.fd.valid());
  const auto p = copy_from<display::DmabufScanoutPayload>(disable.message.payload);
  EXPECT_EQ((std::array<uint32_t, 3>{p.scanout_id, p.width, p.height}), (std::array<uint32_t, 3>{0, 0, 0}));
  EXPECT_EQ(scanout.request, req(Request::Scanout));
  EXPECT_EQ(again.request, req(Request::Scanout));
  EXPECT_FALSE(qemu_has_input());
}

TEST_F(SocketDisplayTest, DmabufScanoutBehindQueuedUpdate_FdArrivesWithItsOwnMessage) {
  negotiate(0, {{0, 0, 256, 256}});
  queue_busy_frame();  // 256 KiB against a 4 KiB buffer: queued
  const UniqueFd buf = fake_dmabuf();
  DmabufImage big = dmabuf_image(buf.get());
  big.width = big.height = 256;
  big.stride = 1024;
  ASSERT_TRUE(display_->set_scanout_dmabuf(0, big, Rect{0, 0, 256, 256}));
  ASSERT_GT(display_->queued_bytes(), 0u);

  // QEMU reads message by message (header, then payload) while the display writes on EPOLLOUT.
  std::vector<FdMessage> got;
  std::thread reader([&] {
    for (int i = 0; i < 3; ++i) got.push_back(read_fd_message(qemu_.get()));
  });
  for (int spins = 0; spins < 100000 && display_->queued_bytes() > 0; ++spins) display_->on_event(EPOLLOUT);
  reader.join();

  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].message.request, req(Request::Scanout));
  EXPECT_EQ(got[1].message.request, req(Request::Update));
  EXPECT_EQ(pixels_of(got[1].message), rows_of(frame_, 256, Rect{0, 0, 256, 256}));
  EXPECT_EQ(got[2].message.request, req(Request::DmabufScanout));
  EXPECT_FALSE(got[0].fd.valid());
  EXPECT_FALSE(got[1].fd.valid());
  ASSERT_TRUE(got[2].fd.valid());
  EXPECT_EQ(inode_of(got[2].fd.get()), inode_of(buf.get()));
}

TEST(SocketDisplay, NotASocket_Dead) {
  SocketDisplay display(UniqueFd(::eventfd(0, EFD_CLOEXEC)), 1);

  EXPECT_FALSE(display.alive());
  EXPECT_EQ(display.wanted_events(), 0u);
}

TEST(SocketDisplay, NoFd_Dead) {
  SocketDisplay display(UniqueFd(), 1);

  EXPECT_FALSE(display.alive());
}

}  // namespace
}  // namespace vgpu

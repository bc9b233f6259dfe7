// Connection: framing over a socketpair: whole messages, short reads, fds with SCM_RIGHTS (owned, capped,
// never leaked), EOF, timeouts, oversized payloads, and replies.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ostream>
#include <span>
#include <thread>
#include <vector>

#include "support/cases.h"
#include "support/fd_passing.h"
#include "vhost_user/connection.h"

namespace vgpu::vhost_user {

void PrintTo(TransportError e, std::ostream* os) {
  *os << to_string(e);
}

namespace {

using test::make_eventfd;
using test::open_fd_count;

std::vector<std::byte> message(uint32_t request, std::vector<std::byte> payload) {
  std::vector<std::byte> out = bytes_of(MessageHeader{request, kVersion1, static_cast<uint32_t>(payload.size())});
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// Sends bytes with fds attached to the first byte.
void send_with_fds(int fd, std::span<const std::byte> bytes, const std::vector<int>& fds) {
  ASSERT_EQ(test::send_with_fds(fd, bytes, fds), static_cast<ssize_t>(bytes.size()));
}

void send_bytes(int fd, std::span<const std::byte> bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

class ConnectionTest : public ::testing::Test {
 protected:
  ConnectionTest() {
    int sv[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    peer_ = UniqueFd(sv[0]);
    conn_.emplace(UniqueFd(sv[1]), 200);
  }

  // A short-read scenario: `first` now, `rest` from another thread a little later.
  void send_in_two_parts(std::vector<std::byte> bytes, size_t split) {
    send_bytes(peer_.get(), std::span(bytes).first(split));
    writer_ = std::thread([this, bytes = std::move(bytes), split] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      send_bytes(peer_.get(), std::span(bytes).subspan(split));
    });
  }

  ~ConnectionTest() override {
    if (writer_.joinable()) writer_.join();
  }

  UniqueFd peer_;
  std::optional<Connection> conn_;
  std::thread writer_;
};

TEST_F(ConnectionTest, Receive_NothingWaiting_ReturnsNullopt) {
  auto r = conn_->receive();
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
}

TEST_F(ConnectionTest, Receive_HeaderAndPayload_ReturnsWholeMessage) {
  send_bytes(peer_.get(), message(2, bytes_of(uint64_t{0x1234})));
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->header.request, 2u);
  EXPECT_EQ((*r)->header.flags, kVersion1);
  EXPECT_EQ((*r)->payload, bytes_of(uint64_t{0x1234}));
  EXPECT_TRUE((*r)->fds.empty());
}

TEST_F(ConnectionTest, Receive_TwoMessagesWaiting_ReturnsThemOneByOne) {
  auto both = message(1, {});
  auto second = message(3, {});
  both.insert(both.end(), second.begin(), second.end());
  send_bytes(peer_.get(), both);
  EXPECT_EQ((*conn_->receive())->header.request, 1u);
  EXPECT_EQ((*conn_->receive())->header.request, 3u);
  EXPECT_FALSE(conn_->receive()->has_value());
}

TEST_F(ConnectionTest, Receive_HeaderSplitAcrossWrites_Reassembles) {
  send_in_two_parts(message(8, bytes_of(uint64_t{7})), 5);
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->header.request, 8u);
  EXPECT_EQ((*r)->payload, bytes_of(uint64_t{7}));
}

TEST_F(ConnectionTest, Receive_PayloadArrivesLater_WaitsForIt) {
  send_in_two_parts(message(9, std::vector<std::byte>(40, std::byte{0x5a})), 12 + 3);
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->payload, std::vector<std::byte>(40, std::byte{0x5a}));
}

TEST_F(ConnectionTest, Receive_PeerStopsMidPayload_TimesOut) {
  const auto bytes = message(2, bytes_of(uint64_t{1}));
  send_bytes(peer_.get(), std::span(bytes).first(14));
  EXPECT_EQ(conn_->receive().error(), TransportError::Timeout);
}

TEST_F(ConnectionTest, Receive_EofBetweenMessages_Disconnected) {
  peer_.reset();
  EXPECT_EQ(conn_->receive().error(), TransportError::Disconnected);
}

TEST_F(ConnectionTest, Receive_EofMidHeader_Disconnected) {
  const auto bytes = message(1, {});
  send_bytes(peer_.get(), std::span(bytes).first(6));
  peer_.reset();
  EXPECT_EQ(conn_->receive().error(), TransportError::Disconnected);
}

TEST_F(ConnectionTest, Receive_EofMidPayload_DisconnectedAndFdsClosed) {
  const size_t before = open_fd_count();
  {
    const UniqueFd fd = make_eventfd();
    const auto bytes = message(2, bytes_of(uint64_t{1}));
    send_with_fds(peer_.get(), std::span(bytes).first(16), {fd.get()});
  }
  peer_.reset();
  EXPECT_EQ(conn_->receive().error(), TransportError::Disconnected);
  EXPECT_EQ(open_fd_count(), before - 1);  // the peer's socket
}

TEST_F(ConnectionTest, Receive_PayloadAboveLimit_PayloadTooLarge) {
  send_bytes(peer_.get(), bytes_of(MessageHeader{5, kVersion1, kMaxPayloadSize + 1}));
  EXPECT_EQ(conn_->receive().error(), TransportError::PayloadTooLarge);
}

TEST_F(ConnectionTest, Receive_PayloadAtLimit_Accepted) {
  send_bytes(peer_.get(), message(5, std::vector<std::byte>(kMaxPayloadSize)));
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->payload.size(), kMaxPayloadSize);
}

TEST_F(ConnectionTest, Receive_TwoFds_OwnsDistinctNewFds) {
  const UniqueFd a = make_eventfd();
  const UniqueFd b = make_eventfd();
  send_with_fds(peer_.get(), message(5, {}), {a.get(), b.get()});
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  ASSERT_EQ((*r)->fds.size(), 2u);
  EXPECT_NE((*r)->fds[0].get(), a.get());
  EXPECT_NE((*r)->fds[1].get(), (*r)->fds[0].get());
  EXPECT_EQ(::eventfd_write((*r)->fds[0].get(), 1), 0);  // the same eventfd as `a`
  eventfd_t value = 0;
  EXPECT_EQ(::eventfd_read(a.get(), &value), 0);
  EXPECT_EQ(value, 1u);
}

TEST_F(ConnectionTest, Receive_FdsWithHeaderAndWithPayload_AllCollected) {
  const UniqueFd a = make_eventfd();
  const UniqueFd b = make_eventfd();
  const auto bytes = message(5, bytes_of(uint64_t{3}));
  send_with_fds(peer_.get(), std::span(bytes).first(12), {a.get()});
  send_with_fds(peer_.get(), std::span(bytes).subspan(12), {b.get()});
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->fds.size(), 2u);
}

// More fds than a message may carry: refused with `error`, and every fd that arrived closed.
struct FdFloodCase {
  const char* name;
  size_t fds;
  TransportError error;
};
using ConnectionFdFlood = test::CaseTest<ConnectionTest, FdFloodCase>;

TEST_P(ConnectionFdFlood, Receive_RefusedAndNoneLeaked) {
  const size_t before = open_fd_count();
  {
    const UniqueFd fd = make_eventfd();
    send_with_fds(peer_.get(), message(5, {}), std::vector<int>(GetParam().fds, fd.get()));
  }
  EXPECT_EQ(conn_->receive().error(), GetParam().error);
  EXPECT_EQ(open_fd_count(), before);
}

INSTANTIATE_TEST_SUITE_P(Fds, ConnectionFdFlood,
                         testing::Values(FdFloodCase{"NineFds_TooManyFds", 9, TransportError::TooManyFds},
                                         FdFloodCase{"TwentyFds_ControlTruncated", 20,
                                                     TransportError::ControlTruncated}),
                         test::CaseName{});

TEST_F(ConnectionTest, Receive_EightFdsInTwoChunks_Accepted) {
  const UniqueFd fd = make_eventfd();
  const auto bytes = message(5, bytes_of(uint64_t{3}));
  send_with_fds(peer_.get(), std::span(bytes).first(12), std::vector<int>(4, fd.get()));
  send_with_fds(peer_.get(), std::span(bytes).subspan(12), std::vector<int>(4, fd.get()));
  auto r = conn_->receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->fds.size(), 8u);
}

TEST_F(ConnectionTest, Receive_NineFdsInTwoChunks_TooManyFds) {
  const UniqueFd fd = make_eventfd();
  const auto bytes = message(5, bytes_of(uint64_t{3}));
  send_with_fds(peer_.get(), std::span(bytes).first(12), std::vector<int>(5, fd.get()));
  send_with_fds(peer_.get(), std::span(bytes).subspan(12), std::vector<int>(4, fd.get()));
  EXPECT_EQ(conn_->receive().error(), TransportError::TooManyFds);
}

TEST_F(ConnectionTest, SendReply_U64_PeerSeesReplyHeaderAndPayload) {
  ASSERT_TRUE(conn_->send_reply(15, bytes_of(uint64_t{0xabcd})));
  std::vector<std::byte> got(20);
  ASSERT_EQ(::recv(peer_.get(), got.data(), got.size(), MSG_DONTWAIT), 20);
  const auto expected = [] {
    auto out = bytes_of(MessageHeader{15, kVersion1 | kFlagReply, 8});
    const auto payload = bytes_of(uint64_t{0xabcd});
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
  }();
  EXPECT_EQ(got, expected);
}

TEST_F(ConnectionTest, Send_WithFd_PeerReceivesFd) {
  const UniqueFd fd = make_eventfd();
  const int fds[] = {fd.get()};
  ASSERT_TRUE(conn_->send(MessageHeader{6, kVersion1, 0}, {}, fds));
  Connection peer(std::move(peer_));
  auto r = peer.receive();
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->fds.size(), 1u);
}

TEST_F(ConnectionTest, Send_PeerClosed_Disconnected) {
  peer_.reset();
  EXPECT_EQ(conn_->send_reply(1, bytes_of(uint64_t{0})).error(), TransportError::Disconnected);
}

TEST_F(ConnectionTest, Close_Always_ClosesSocket) {
  conn_->close();
  EXPECT_EQ(conn_->fd(), -1);
}

TEST(TransportErrorTest, ToString_EveryValue_NonEmpty) {
  EXPECT_FALSE(to_string(TransportError::Disconnected).empty());
  EXPECT_FALSE(to_string(TransportError::Timeout).empty());
  EXPECT_FALSE(to_string(TransportError::Io).empty());
  EXPECT_FALSE(to_string(TransportError::TooManyFds).empty());
  EXPECT_FALSE(to_string(TransportError::ControlTruncated).empty());
  EXPECT_FALSE(to_string(TransportError::BadControl).empty());
  EXPECT_FALSE(to_string(TransportError::PayloadTooLarge).empty());
}

}  // namespace
}  // namespace vgpu::vhost_user

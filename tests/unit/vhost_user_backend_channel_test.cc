// BackendChannel: SHMEM_MAP / SHMEM_UNMAP sent with NEED_REPLY, replies matched in order without blocking,
// and every way a frontend can fail us (refuse, close, stay silent, answer nonsense) ending in one callback.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "support/fd_passing.h"
#include "vhost_user/backend_channel.h"

namespace vgpu::vhost_user {
namespace {

struct Received {
  MessageHeader header{};
  ShmemMapMessage payload{};
  ObjectUuid uuid{};
  std::vector<int> fds;
};

// The QEMU end of the channel.
class FrontendEnd {
 public:
  explicit FrontendEnd(UniqueFd fd) : fd_(std::move(fd)) {}
  ~FrontendEnd() {
    for (int fd : owned_) ::close(fd);
  }
  FrontendEnd(const FrontendEnd&) = delete;
  FrontendEnd& operator=(const FrontendEnd&) = delete;

  std::optional<Received> receive() {
    Received r;
    // A stream socket: the header (with the fds) first, then exactly its payload. SHMEM_MAP / UNMAP carry a
    // ShmemMapMessage, SHARED_OBJECT_* a 16-byte UUID.
    if (!test::recv_header_with_fds(fd_.get(), &r.header, sizeof(r.header), r.fds)) return std::nullopt;
    owned_.insert(owned_.end(), r.fds.begin(), r.fds.end());
    std::byte buf[sizeof(ShmemMapMessage)] = {};
    if (r.header.size > sizeof(buf) ||
        ::recv(fd_.get(), buf, r.header.size, MSG_DONTWAIT) != static_cast<ssize_t>(r.header.size)) {
      return std::nullopt;
    }
    std::memcpy(&r.payload, buf, sizeof(r.payload));
    std::memcpy(r.uuid.data(), buf, r.uuid.size());
    return r;
  }

  void reply(uint32_t request, uint64_t value, uint32_t flags = kVersion1 | kFlagReply) const {
    std::byte buf[sizeof(MessageHeader) + sizeof(uint64_t)];
    const MessageHeader h{request, flags, sizeof(uint64_t)};
    std::memcpy(buf, &h, sizeof(h));
    std::memcpy(buf + sizeof(h), &value, sizeof(value));
    ASSERT_EQ(::send(fd_.get(), buf, sizeof(buf), MSG_NOSIGNAL), static_cast<ssize_t>(sizeof(buf)));
  }

  void close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  std::vector<int> owned_;
};

class BackendChannelTest : public ::testing::Test {
 protected:
  static constexpr int kTimeoutMs = 50;
  static constexpr uint32_t kMap = static_cast<uint32_t>(BackendRequest::ShmemMap);
  static constexpr uint32_t kUnmap = static_cast<uint32_t>(BackendRequest::ShmemUnmap);

  BackendChannelTest() : loop_(EventLoop::create().value()) {
    int sv[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    frontend_.emplace(UniqueFd(sv[0]));
    channel_.emplace(UniqueFd(sv[1]), loop_, kTimeoutMs);
    memfd_ = UniqueFd(::memfd_create("backend-channel-test", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(memfd_.get(), 1 << 16), 0);
  }

  // Runs the loop once (waiting up to `ms`), dispatching the channel's events.
  void pump(int ms = 0) {
    const std::vector<Event> events = loop_.wait(ms).value();
    for (const Event& ev : events) {
      if (ev.source.token == Token::BackendChannel) channel_->on_readable(ev.events);
      if (ev.source.token == Token::BackendTimer) channel_->on_timer();
    }
  }

  BackendCallback record() {
    return [this](BackendReply r) { replies_.push_back(r); };
  }

  static constexpr ShmemRange kRange{.shmid = 1, .shm_offset = 0x20000, .len = 0x10000};

  EventLoop loop_;
  std::optional<FrontendEnd> frontend_;
  std::optional<BackendChannel> channel_;
  UniqueFd memfd_;
  std::vector<BackendReply> replies_;
};

TEST_F(BackendChannelTest, Map_SendsShmemMapWithNeedReplyAndTheFd) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0x1000, true, record()));
  const auto got = frontend_->receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->header.request, 9u);
  EXPECT_EQ(got->header.flags, kVersion1 | kFlagNeedReply);
  EXPECT_EQ(got->header.size, 40u);
  EXPECT_EQ(got->payload.shmid, 1u);
  EXPECT_EQ(got->payload.fd_offset, 0x1000u);
  EXPECT_EQ(got->payload.shm_offset, 0x20000u);
  EXPECT_EQ(got->payload.len, 0x10000u);
  EXPECT_EQ(got->payload.flags, kShmemMapFlagWritable);
  EXPECT_EQ(got->fds.size(), 1u);
  EXPECT_TRUE(replies_.empty());  // nothing waited for the answer
  EXPECT_EQ(channel_->pending(), 1u);
}

TEST_F(BackendChannelTest, Unmap_SendsShmemUnmapWithoutFd) {
  ASSERT_TRUE(channel_->unmap(kRange, record()));
  const auto got = frontend_->receive();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->header.request, 10u);
  EXPECT_EQ(got->header.flags, kVersion1 | kFlagNeedReply);
  EXPECT_EQ(got->payload.shm_offset, 0x20000u);
  EXPECT_TRUE(got->fds.empty());
}

TEST_F(BackendChannelTest, SharedObjectAddAndRemove_SendTheUuidWithNeedReply_AnswersInOrder) {
  const ObjectUuid uuid{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8};
  ASSERT_TRUE(channel_->add(uuid, record()));
  ASSERT_TRUE(channel_->remove(uuid, record()));
  for (uint32_t request : {6u, 7u}) {
    const auto got = frontend_->receive();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->header.request, request);
    EXPECT_EQ(got->header.flags, kVersion1 | kFlagNeedReply);
    EXPECT_EQ(got->header.size, 16u);
    EXPECT_EQ(got->uuid, uuid);
    EXPECT_TRUE(got->fds.empty());
  }
  frontend_->reply(6, 1);  // QEMU: the UUID is in its table already
  frontend_->reply(7, 0);
  pump(100);
  pump(0);
  EXPECT_EQ(replies_, (std::vector<BackendReply>{BackendReply::Refused, BackendReply::Done}));
}

TEST_F(BackendChannelTest, Replies_ZeroAndNonZero_DoneAndRefusedInOrder) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  ASSERT_TRUE(channel_->unmap(kRange, record()));
  frontend_->reply(kMap, 0);
  frontend_->reply(kUnmap, 1);
  pump(100);
  ASSERT_EQ(replies_.size(), 2u);
  EXPECT_EQ(replies_[0], BackendReply::Done);
  EXPECT_EQ(replies_[1], BackendReply::Refused);
  EXPECT_EQ(channel_->pending(), 0u);
  EXPECT_TRUE(channel_->open());
}

TEST_F(BackendChannelTest, FrontendCloses_PendingFailWithChannelLostAndLaterRequestsFailAtOnce) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  frontend_->close();
  pump(100);
  ASSERT_EQ(replies_.size(), 1u);
  EXPECT_EQ(replies_[0], BackendReply::ChannelLost);
  EXPECT_FALSE(channel_->open());
  EXPECT_EQ(channel_->map(kRange, memfd_.get(), 0, true, record()).error(), BackendReply::ChannelLost);
  EXPECT_EQ(replies_.size(), 1u);
}

TEST_F(BackendChannelTest, NoAnswer_TimesOutWithoutBlockingAndDropsTheChannel) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  pump(0);
  EXPECT_TRUE(replies_.empty());
  for (int i = 0; i < 20 && replies_.empty(); ++i) pump(kTimeoutMs);
  ASSERT_EQ(replies_.size(), 1u);
  EXPECT_EQ(replies_[0], BackendReply::Timeout);
  EXPECT_FALSE(channel_->open());
}

TEST_F(BackendChannelTest, ReplyToTheWrongRequest_DropsTheChannel) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  frontend_->reply(kUnmap, 0);
  pump(100);
  ASSERT_EQ(replies_.size(), 1u);
  EXPECT_EQ(replies_[0], BackendReply::ChannelLost);
}

TEST_F(BackendChannelTest, ReplyWithoutReplyFlag_DropsTheChannel) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  frontend_->reply(kMap, 0, kVersion1);
  pump(100);
  ASSERT_EQ(replies_.size(), 1u);
  EXPECT_EQ(replies_[0], BackendReply::ChannelLost);
}

TEST_F(BackendChannelTest, UnaskedReply_DropsTheChannel) {
  frontend_->reply(kMap, 0);
  pump(100);
  EXPECT_FALSE(channel_->open());
}

TEST_F(BackendChannelTest, CallbackSendsTheNextRequest_ItGoesOut) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, [this](BackendReply r) {
    replies_.push_back(r);
    ASSERT_TRUE(channel_->unmap(kRange, record()));
  }));
  ASSERT_TRUE(frontend_->receive());
  frontend_->reply(kMap, 0);
  pump(100);
  const auto second = frontend_->receive();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->header.request, kUnmap);
  frontend_->reply(kUnmap, 0);
  pump(100);
  EXPECT_EQ(replies_, (std::vector<BackendReply>{BackendReply::Done, BackendReply::Done}));
}

TEST_F(BackendChannelTest, Close_RunsPendingCallbacks_DestructorDoesNot) {
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  channel_->close(BackendReply::ChannelLost);
  EXPECT_EQ(replies_, std::vector<BackendReply>{BackendReply::ChannelLost});
  channel_.reset();
  EXPECT_EQ(replies_.size(), 1u);

  int sv[2] = {-1, -1};
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  FrontendEnd other(UniqueFd{sv[0]});
  channel_.emplace(UniqueFd(sv[1]), loop_, kTimeoutMs);
  ASSERT_TRUE(channel_->map(kRange, memfd_.get(), 0, true, record()));
  channel_.reset();
  EXPECT_EQ(replies_.size(), 1u);
}

TEST_F(BackendChannelTest, TooManyUnanswered_RefusedAtOnce) {
  for (size_t i = 0; i < BackendChannel::kMaxPending; ++i) {
    ASSERT_TRUE(channel_->unmap(kRange, record())) << i;
    (void)frontend_->receive();  // keep the socket buffer from filling
  }
  EXPECT_FALSE(channel_->unmap(kRange, record()));
  EXPECT_TRUE(channel_->open());
}

}  // namespace
}  // namespace vgpu::vhost_user

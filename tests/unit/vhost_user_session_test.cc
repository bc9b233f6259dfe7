// Session: the validation pipeline (header, known request, fds, sizes, validate(), feature gates, REPLY_ACK),
// every front-end request a QEMU GPU frontend sends, ring start/stop order, memory changes under running
// rings, and teardown without leaks. The frontend is the other end of a socketpair; the device a gmock.
// Over 600 lines on purpose: every case drives the same SessionTest fixture (socketpair frontend, gmock device,
// memfd guest memory); its sections follow the four session_*.cc files.
#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <ostream>
#include <span>
#include <thread>
#include <vector>

#include "common/event_loop.h"
#include "support/cases.h"
#include "support/fake_guest.h"
#include "support/fd_passing.h"
#include "vhost_user/session.h"

namespace vgpu::vhost_user {

void PrintTo(SessionError e, std::ostream* os) {
  *os << to_string(e);
}

namespace {

using test::ChainBuilder;
using test::FakeGuestMemory;
using test::FakeVirtqueue;
using ::testing::_;
using ::testing::InSequence;
using ::testing::NiceMock;
using ::testing::Return;

constexpr uint64_t kVersion1Feature = uint64_t{1} << 32;
constexpr uint64_t kEventIdxFeature = uint64_t{1} << 29;
constexpr uint64_t kDeviceFeatures = kVersion1Feature | kEventIdxFeature;
constexpr size_t kConfigSize = 24;
constexpr uint16_t kRingSize = 16;

class MockBackend : public Backend {
 public:
  MOCK_METHOD(size_t, num_queues, (), (const, override));
  MOCK_METHOD(uint16_t, max_queue_size, (), (const, override));
  MOCK_METHOD(uint64_t, features, (), (const, override));
  MOCK_METHOD(void, set_acked_features, (uint64_t), (override));
  MOCK_METHOD(size_t, config_size, (), (const, override));
  MOCK_METHOD(bool, read_config, (uint32_t, std::span<std::byte>), (const, override));
  MOCK_METHOD(bool, write_config, (uint32_t, std::span<const std::byte>), (override));
  MOCK_METHOD(void, on_queue_started, (size_t, Queue&), (override));
  MOCK_METHOD(void, on_queue_stopped, (size_t), (override));
  MOCK_METHOD(void, on_memory_changed, (), (override));
  MOCK_METHOD(void, on_memory_changing, (), (override));
  MOCK_METHOD(void, on_queue_kick, (size_t, Queue&, const GuestMemory&), (override));
  MOCK_METHOD(void, reset, (), (override));
  MOCK_METHOD(std::vector<uint64_t>, shmem_regions, (), (const, override));
  MOCK_METHOD(void, set_shmem_mapper, (ShmemMapper*), (override));
  MOCK_METHOD(bool, shares_objects, (), (const, override));
  MOCK_METHOD(bool, saves_state, (), (const, override));
  MOCK_METHOD(void, set_shared_objects, (SharedObjects*), (override));
  // Move-only argument: recorded by hand.
  void on_display_socket(UniqueFd fd) override { display_sockets.push_back(std::move(fd)); }
  // Move-only result: the one shared object, by hand.
  Result<UniqueFd, std::string> shared_object_fd(const ObjectUuid& uuid) override {
    if (uuid != shared_uuid || !shared_file) return fail(std::string("unknown"));
    return UniqueFd(::fcntl(shared_file.get(), F_DUPFD_CLOEXEC, 0));
  }

  Result<ObjectUuid, std::string> only_shared_object() const override {
    if (!shared_file) return fail(std::string("none"));
    return shared_uuid;
  }

  Result<std::vector<std::byte>, std::string> save_state() const override {
    if (!state_to_save) return fail(std::string("nothing"));
    return *state_to_save;
  }
  Result<void, std::string> load_state(std::span<const std::byte> bytes, const GuestMemory& /*mem*/) override {
    loaded_state.assign(bytes.begin(), bytes.end());
    if (refuse_load) return fail(std::string("refused"));
    return {};
  }

  std::optional<std::vector<std::byte>> state_to_save;
  std::vector<std::byte> loaded_state;
  bool refuse_load = false;
  std::vector<UniqueFd> display_sockets;
  ObjectUuid shared_uuid{};
  UniqueFd shared_file;
};

// Pops every available chain and returns it unanswered, then signals the driver.
void drain_queue(size_t /*index*/, Queue& q, const GuestMemory& /*mem*/) {
  for (auto chain = q.pop(); chain && *chain; chain = q.pop()) q.add_used(std::move(**chain), 0);
  q.notify_if_needed();
}

using test::make_eventfd;
using test::open_fd_count;

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A GET_CONFIG / SET_CONFIG payload: `h` and `bytes` bytes of config space, each `fill`.
std::vector<std::byte> config_payload(const ConfigHeader& h, size_t bytes, std::byte fill = std::byte{0}) {
  return concat(bytes_of(h), std::vector<std::byte>(bytes, fill));
}

UniqueFd make_memfd(size_t size) {
  UniqueFd fd(::memfd_create("vhost-user-session-test", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

// One end of a fresh socketpair (the other end is closed).
UniqueFd make_socket() {
  int sv[2] = {-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ::close(sv[1]);
  return UniqueFd(sv[0]);
}

// The eventfd's counter (0 when not signalled); clears it.
uint64_t eventfd_count(int fd) {
  uint64_t v = 0;
  return ::read(fd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

struct RawReply {
  MessageHeader header{};
  std::vector<std::byte> payload;
};

// The QEMU end of the socket: raw sends (any header, any fds) and reply reads that never block.
class TestFrontend {
 public:
  explicit TestFrontend(UniqueFd fd) : fd_(std::move(fd)) {}

  void send_raw(std::span<const std::byte> bytes, const std::vector<int>& fds = {}) const {
    EXPECT_EQ(test::send_with_fds(fd_.get(), bytes, fds), static_cast<ssize_t>(bytes.size()));
  }

  void send(FrontendRequest request, const std::vector<std::byte>& payload = {}, const std::vector<int>& fds = {},
            uint32_t flags = kVersion1) const {
    const MessageHeader h{static_cast<uint32_t>(request), flags, static_cast<uint32_t>(payload.size())};
    send_raw(concat(bytes_of(h), payload), fds);
  }

  // The next reply, if one is waiting.
  std::optional<RawReply> receive() const {
    RawReply r;
    if (::recv(fd_.get(), &r.header, sizeof(r.header), MSG_DONTWAIT) != sizeof(r.header)) return std::nullopt;
    r.payload.resize(r.header.size);
    if (r.header.size != 0 &&
        ::recv(fd_.get(), r.payload.data(), r.payload.size(), MSG_DONTWAIT) != static_cast<ssize_t>(r.header.size)) {
      return std::nullopt;
    }
    return r;
  }

  // The next reply with the fds that came with it (each closed by the caller's UniqueFd).
  std::optional<std::pair<RawReply, std::vector<UniqueFd>>> receive_with_fds() const {
    RawReply r;
    std::vector<int> raw_fds;
    if (!test::recv_header_with_fds(fd_.get(), &r.header, sizeof(r.header), raw_fds)) return std::nullopt;
    std::vector<UniqueFd> fds(raw_fds.begin(), raw_fds.end());
    r.payload.resize(r.header.size);
    if (r.header.size != 0 &&
        ::recv(fd_.get(), r.payload.data(), r.payload.size(), MSG_DONTWAIT) != static_cast<ssize_t>(r.header.size)) {
      return std::nullopt;
    }
    return std::make_pair(std::move(r), std::move(fds));
  }

  // The u64 payload of the next reply, if one is waiting and is a u64.
  std::optional<uint64_t> receive_u64() const {
    auto r = receive();
    if (!r || r->payload.size() != sizeof(uint64_t)) return std::nullopt;
    uint64_t v = 0;
    std::memcpy(&v, r->payload.data(), sizeof(v));
    return v;
  }

  void close() { fd_.reset(); }

 private:
  UniqueFd fd_;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() : loop_(EventLoop::create().value()), guest_({{GuestAddress{0x10000}, 0x40000}}) {
    ON_CALL(backend_, num_queues()).WillByDefault(Return(2));
    ON_CALL(backend_, max_queue_size()).WillByDefault(Return(256));
    ON_CALL(backend_, features()).WillByDefault(Return(kDeviceFeatures));
    ON_CALL(backend_, config_size()).WillByDefault(Return(kConfigSize));
    int sv[2] = {-1, -1};
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    frontend_.emplace(UniqueFd(sv[0]));
    session_.emplace(UniqueFd(sv[1]), backend_, loop_, 200);
  }

  // Sends one request and lets the session handle it.
  Result<void, SessionError> deliver(FrontendRequest request, const std::vector<std::byte>& payload = {},
                                     const std::vector<int>& fds = {}, uint32_t flags = kVersion1) {
    frontend_->send(request, payload, fds, flags);
    return session_->on_readable();
  }

  // A fresh session on a fresh socket, for tests that change what the backend offers first.
  void reconnect() {
    session_.reset();
    int sv[2] = {-1, -1};
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    frontend_.emplace(UniqueFd(sv[0]));
    session_.emplace(UniqueFd(sv[1]), backend_, loop_, 200);
  }

  void negotiate_protocol_features(uint64_t protocol) {
    ASSERT_TRUE(deliver(FrontendRequest::SetProtocolFeatures, bytes_of(protocol)));
  }

  std::vector<std::byte> mem_table() const {
    std::vector<std::byte> out = bytes_of(MemoryTableHeader{static_cast<uint32_t>(guest_.regions().size()), 0});
    for (const RegionDesc& r : guest_.regions()) {
      out = concat(out, bytes_of(MemoryRegion{raw(r.guest_phys), r.size, raw(r.frontend_virt), r.mmap_offset}));
    }
    return out;
  }

  VringAddr ring_addr(uint32_t index, const FakeVirtqueue& vq) const {
    const QueueConfig c = vq.config();
    return VringAddr{index,
                     0,
                     raw(*guest_.to_frontend(c.desc)),
                     raw(*guest_.to_frontend(c.used)),
                     raw(*guest_.to_frontend(c.avail)),
                     raw(c.used)};
  }

  // Everything QEMU sends before a ring's kick fd: features, memory, size, base, addresses, call fd.
  void configure_ring(uint32_t index, const FakeVirtqueue& vq, uint64_t features, uint16_t base = 0) {
    ASSERT_TRUE(deliver(FrontendRequest::SetFeatures, bytes_of(features)));
    ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
    ASSERT_TRUE(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{index, kRingSize})));
    ASSERT_TRUE(deliver(FrontendRequest::SetVringBase, bytes_of(VringState{index, base})));
    ASSERT_TRUE(deliver(FrontendRequest::SetVringAddr, bytes_of(ring_addr(index, vq))));
    ASSERT_TRUE(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{index}), {call_.get()}));
  }

  // A started ring 0, without VHOST_USER_F_PROTOCOL_FEATURES (so the kick fd starts it).
  void start_ring0(const FakeVirtqueue& vq) {
    configure_ring(0, vq, kVersion1Feature);
    ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}));
  }

  // Ring 0 started, every chain the guest makes popped and returned unanswered at its kick.
  void start_draining_ring0(const FakeVirtqueue& vq) {
    ON_CALL(backend_, on_queue_kick(_, _, _)).WillByDefault(drain_queue);
    start_ring0(vq);
  }
  // The guest makes one chain on ring 0 and kicks.
  void kick_one_chain(FakeVirtqueue& vq) {
    ChainBuilder(vq).readable("a").build();
    session_->on_kick(0);
  }
  // Ring 0 stops, then the backend resets, in that order.
  void expect_stop_then_reset() {
    InSequence order;
    EXPECT_CALL(backend_, on_queue_stopped(0));
    EXPECT_CALL(backend_, reset());
  }
  // `request` with NEED_REPLY, REPLY_ACK negotiated first.
  Result<void, SessionError> deliver_acked(FrontendRequest request, const std::vector<std::byte>& payload = {},
                                           const std::vector<int>& fds = {}) {
    negotiate_protocol_features(bit(ProtocolFeature::ReplyAck));
    return deliver(request, payload, fds, kVersion1 | kFlagNeedReply);
  }
  // The protocol features the session offers (nullopt: it did not answer GET_PROTOCOL_FEATURES).
  std::optional<uint64_t> offered_protocol_features() {
    if (!deliver(FrontendRequest::GetProtocolFeatures)) return std::nullopt;
    return frontend_->receive_u64();
  }
  // Protocol bit `bit` is not offered now, and is offered, with the base set, after `reconnect_offering()`.
  template <class Reconnect>
  void expect_bit_offered_only_after(unsigned bit, Reconnect reconnect_offering) {
    EXPECT_EQ(offered_protocol_features().value() & (uint64_t{1} << bit), 0u);
    reconnect_offering();
    EXPECT_EQ(offered_protocol_features(), Session::kOfferedProtocolFeatures | (uint64_t{1} << bit));
  }
  // SET_BACKEND_REQ_FD with a fresh socket.
  void deliver_backend_req_fd() {
    const UniqueFd fd = make_socket();
    ASSERT_TRUE(deliver(FrontendRequest::SetBackendReqFd, {}, {fd.get()}));
  }

  std::vector<Event> ready_events() { return loop_.wait(0).value(); }

  NiceMock<MockBackend> backend_;
  EventLoop loop_;
  FakeGuestMemory guest_;
  UniqueFd kick_ = make_eventfd();
  UniqueFd call_ = make_eventfd();
  std::optional<TestFrontend> frontend_;
  std::optional<Session> session_;
};

// ---- features and negotiation --------------------------------------------------------------------------

TEST_F(SessionTest, GetFeatures_Always_OffersDeviceFeaturesAndProtocolFeatures) {
  ASSERT_TRUE(deliver(FrontendRequest::GetFeatures));
  EXPECT_EQ(frontend_->receive_u64(), kDeviceFeatures | kFeatureProtocolFeatures);
}

TEST_F(SessionTest, GetFeatures_Reply_HasReplyFlagVersionAndRequest) {
  ASSERT_TRUE(deliver(FrontendRequest::GetFeatures));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->header.request, static_cast<uint32_t>(FrontendRequest::GetFeatures));
  EXPECT_EQ(reply->header.flags, kVersion1 | kFlagReply);
  EXPECT_EQ(reply->header.size, 8u);
}

TEST_F(SessionTest, SetFeatures_SubsetOfOffered_PassesDeviceBitsToBackend) {
  EXPECT_CALL(backend_, set_acked_features(kVersion1Feature));
  ASSERT_TRUE(deliver(FrontendRequest::SetFeatures, bytes_of(kVersion1Feature | kFeatureProtocolFeatures)));
  EXPECT_EQ(session_->acked_features(), kVersion1Feature | kFeatureProtocolFeatures);
}

TEST_F(SessionTest, SetFeatures_BitNotOffered_IgnoredAndMaskedOff) {
  EXPECT_CALL(backend_, set_acked_features(kVersion1Feature));
  ASSERT_TRUE(deliver(FrontendRequest::SetFeatures, bytes_of(kVersion1Feature | (uint64_t{1} << 40))));
  EXPECT_EQ(session_->acked_features(), kVersion1Feature);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, GetProtocolFeatures_Always_OffersImplementedSet) {
  EXPECT_EQ(offered_protocol_features(),
            (1u << 0) | (1u << 3) | (1u << 5) | (1u << 9) | (1u << 13) | (1u << 15) | (1u << 16));
}

TEST_F(SessionTest, SetProtocolFeatures_Offered_Acked) {
  negotiate_protocol_features(Session::kOfferedProtocolFeatures);
  EXPECT_EQ(session_->acked_protocol_features(), Session::kOfferedProtocolFeatures);
}

TEST_F(SessionTest, SetProtocolFeatures_SharedObjectNotOffered_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetProtocolFeatures, bytes_of(bit(ProtocolFeature::SharedObject))).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetOwner_NoPayload_AcceptedWithoutReply) {
  ASSERT_TRUE(deliver(FrontendRequest::SetOwner));
  EXPECT_FALSE(frontend_->receive());
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, GetQueueNum_MqNegotiated_RepliesNumQueues) {
  negotiate_protocol_features(bit(ProtocolFeature::Mq));
  ASSERT_TRUE(deliver(FrontendRequest::GetQueueNum));
  EXPECT_EQ(frontend_->receive_u64(), 2u);
}

TEST_F(SessionTest, GetQueueNum_MqNotNegotiated_RefusedWithFailureReplyAndSessionGoesOn) {
  ASSERT_TRUE(deliver(FrontendRequest::GetQueueNum));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, GetMaxMemSlots_Negotiated_RepliesGuestMemoryLimit) {
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  ASSERT_TRUE(deliver(FrontendRequest::GetMaxMemSlots));
  EXPECT_EQ(frontend_->receive_u64(), GuestMemory::kMaxRegions);
}

TEST_F(SessionTest, GetMaxMemSlots_NotNegotiated_RefusedWithFailureReply) {
  ASSERT_TRUE(deliver(FrontendRequest::GetMaxMemSlots));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
}

// ---- header, sizes, fds ----------------------------------------------------------------------------------

TEST_F(SessionTest, Header_Version2_BreaksWithBadHeader) {
  EXPECT_EQ(deliver(FrontendRequest::GetFeatures, {}, {}, 0x2).error(), SessionError::BadHeader);
  EXPECT_FALSE(frontend_->receive());
}

TEST_F(SessionTest, Header_ReplyFlagSet_BreaksWithBadHeader) {
  EXPECT_EQ(deliver(FrontendRequest::SetOwner, {}, {}, kVersion1 | kFlagReply).error(), SessionError::BadHeader);
}

TEST_F(SessionTest, Header_ReservedFlagBit_BreaksWithBadHeader) {
  EXPECT_EQ(deliver(FrontendRequest::SetOwner, {}, {}, kVersion1 | (1u << 4)).error(), SessionError::BadHeader);
}

TEST_F(SessionTest, Header_Broken_ErrorDetailNamesRequestAndProblem) {
  (void)deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, 3}));
  EXPECT_EQ(session_->error_detail(), ": SET_VRING_NUM: ring 0: size 3 is not a power of two in 1..256");
}

TEST_F(SessionTest, PayloadSize_SetVringNumWith12Bytes_BreaksWithWrongPayloadSize) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringNum, std::vector<std::byte>(12)).error(), SessionError::WrongPayloadSize);
}

TEST_F(SessionTest, PayloadSize_GetFeaturesWithPayload_BreaksWithWrongPayloadSize) {
  EXPECT_EQ(deliver(FrontendRequest::GetFeatures, std::vector<std::byte>(8)).error(), SessionError::WrongPayloadSize);
}

TEST_F(SessionTest, FdCount_SetOwnerWithFd_BreaksWithWrongFdCount) {
  const UniqueFd fd = make_eventfd();
  EXPECT_EQ(deliver(FrontendRequest::SetOwner, {}, {fd.get()}).error(), SessionError::WrongFdCount);
}

TEST_F(SessionTest, FdCount_GpuSetSocketWithoutFd_BreaksWithWrongFdCount) {
  EXPECT_EQ(deliver(FrontendRequest::GpuSetSocket).error(), SessionError::WrongFdCount);
}

TEST_F(SessionTest, FdCount_SetVringCallNoFdFlagWithFd_BreaksWithWrongFdCount) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringCall, bytes_of(kVringNoFdFlag), {call_.get()}).error(),
            SessionError::WrongFdCount);
}

TEST_F(SessionTest, FdCount_SetVringKickWithoutFdOrFlag_BreaksWithWrongFdCount) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0})).error(), SessionError::WrongFdCount);
}

TEST_F(SessionTest, VringFile_ReservedBits_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{1} << 9), {call_.get()}).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, VringFile_IndexOutOfRange_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{2}), {call_.get()}).error(),
            SessionError::InvalidPayload);
}

// ---- unknown and not offered requests ---------------------------------------------------------------------

TEST_F(SessionTest, UnknownRequest_NeedReplyWithReplyAck_FailureAckAndSessionGoesOn) {
  negotiate_protocol_features(bit(ProtocolFeature::ReplyAck));
  frontend_->send(static_cast<FrontendRequest>(99), std::vector<std::byte>(16), {}, kVersion1 | kFlagNeedReply);
  ASSERT_TRUE(session_->on_readable());
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, UnknownRequest_WithoutReplyAck_NoReplyAndFdsClosed) {
  const size_t before = open_fd_count();
  const UniqueFd fd = make_eventfd();
  frontend_->send(static_cast<FrontendRequest>(1000), {}, {fd.get(), fd.get()});
  ASSERT_TRUE(session_->on_readable());
  EXPECT_FALSE(frontend_->receive());
  EXPECT_EQ(open_fd_count(), before + 1);
}

TEST_F(SessionTest, SetLogBase_NotOffered_RefusedWithFailureReply) {
  const UniqueFd fd = make_memfd(4096);
  ASSERT_TRUE(deliver(FrontendRequest::SetLogBase, std::vector<std::byte>(16), {fd.get()}));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, SetLogFd_NotOfferedWithReplyAck_FailureAck) {
  const UniqueFd fd = make_memfd(4096);
  ASSERT_TRUE(deliver_acked(FrontendRequest::SetLogFd, {}, {fd.get()}));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
}

TEST_F(SessionTest, GetInflightFd_NotOffered_RefusedWithFailureReply) {
  ASSERT_TRUE(deliver(FrontendRequest::GetInflightFd, std::vector<std::byte>(24)));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
}

// ---- REPLY_ACK ----------------------------------------------------------------------------------------------

TEST_F(SessionTest, ReplyAck_NeedReplyOnSuccess_RepliesZero) {
  ASSERT_TRUE(deliver_acked(FrontendRequest::SetOwner));
  EXPECT_EQ(frontend_->receive_u64(), 0u);
}

TEST_F(SessionTest, ReplyAck_NotNegotiated_NeedReplyIgnored) {
  ASSERT_TRUE(deliver(FrontendRequest::SetOwner, {}, {}, kVersion1 | kFlagNeedReply));
  EXPECT_FALSE(frontend_->receive());
}

TEST_F(SessionTest, ReplyAck_RequestWithOwnReply_SendsOnlyItsOwnReply) {
  ASSERT_TRUE(deliver_acked(FrontendRequest::GetFeatures));
  EXPECT_EQ(frontend_->receive_u64(), kDeviceFeatures | kFeatureProtocolFeatures);
  EXPECT_FALSE(frontend_->receive());
}

TEST_F(SessionTest, ReplyAck_FatalError_FailureAckThenBroken) {
  EXPECT_FALSE(deliver_acked(FrontendRequest::SetVringNum, bytes_of(VringState{0, 5})));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_TRUE(session_->broken());
}

// ---- memory ------------------------------------------------------------------------------------------------

TEST_F(SessionTest, SetMemTable_MemfdRegion_MapsItAndTellsBackend) {
  EXPECT_CALL(backend_, on_memory_changed());
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
  EXPECT_EQ(session_->memory().regions(), guest_.regions());
}

TEST_F(SessionTest, SetMemTable_Replaced_BackendWarnedWhileOldMappingsAreStillMapped) {
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
  // The backend must still see the old regions when it is warned, and the new ones when told.
  ::testing::InSequence order;
  EXPECT_CALL(backend_, on_memory_changing()).WillOnce([&] {
    EXPECT_EQ(session_->memory().regions(), guest_.regions());
  });
  EXPECT_CALL(backend_, on_memory_changed()).WillOnce([&] { EXPECT_EQ(session_->memory().region_count(), 0u); });
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, bytes_of(MemoryTableHeader{0, 0})));
}

TEST_F(SessionTest, SetMemTable_ZeroRegions_ClearsMemory) {
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, bytes_of(MemoryTableHeader{0, 0})));
  EXPECT_EQ(session_->memory().region_count(), 0u);
}

TEST_F(SessionTest, SetMemTable_FdCountDiffersFromRegions_BreaksWithWrongFdCount) {
  EXPECT_EQ(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd(), guest_.fd()}).error(),
            SessionError::WrongFdCount);
}

TEST_F(SessionTest, SetMemTable_NineRegions_BreaksWithInvalidPayload) {
  const auto payload = concat(bytes_of(MemoryTableHeader{9, 0}), std::vector<std::byte>(9 * sizeof(MemoryRegion)));
  EXPECT_EQ(deliver(FrontendRequest::SetMemTable, payload).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetMemTable_SizeDisagreesWithRegionCount_BreaksWithWrongPayloadSize) {
  const auto payload = concat(mem_table(), std::vector<std::byte>(8));
  EXPECT_EQ(deliver(FrontendRequest::SetMemTable, payload, {guest_.fd()}).error(), SessionError::WrongPayloadSize);
}

// A hostile SET_MEM_TABLE: `regions` (each with the one memfd of `fd_size` bytes) after a header with `padding`.
struct HostileMemTable {
  const char* name;
  uint32_t padding;
  std::vector<MemoryRegion> regions;
  size_t fd_size;
  SessionError error;
};
using SessionHostileMemTable = test::CaseTest<SessionTest, HostileMemTable>;

TEST_P(SessionHostileMemTable, SetMemTable_Breaks) {
  const HostileMemTable& c = GetParam();
  auto payload = bytes_of(MemoryTableHeader{static_cast<uint32_t>(c.regions.size()), c.padding});
  for (const MemoryRegion& r : c.regions) payload = concat(payload, bytes_of(r));
  const UniqueFd fd = make_memfd(c.fd_size);
  const std::vector<int> fds(c.regions.size(), fd.get());

  EXPECT_EQ(deliver(FrontendRequest::SetMemTable, payload, fds).error(), c.error);
}

constexpr uint64_t kFrontendVirt = 0x7000'0000'0000;
INSTANTIATE_TEST_SUITE_P(Cases, SessionHostileMemTable,
                         testing::Values(HostileMemTable{"NonZeroPadding_BreaksWithInvalidPayload",
                                                         7,
                                                         {MemoryRegion{0, 0x1000, kFrontendVirt, 0}},
                                                         0x1000,
                                                         SessionError::InvalidPayload},
                                         HostileMemTable{"GuestRangeWraps_BreaksWithInvalidPayload",
                                                         0,
                                                         {MemoryRegion{~uint64_t{0} - 0xfff, 0x2000, kFrontendVirt, 0}},
                                                         0x2000,
                                                         SessionError::InvalidPayload},
                                         HostileMemTable{"FdSmallerThanRegion_BreaksWithMemoryMap",
                                                         0,
                                                         {MemoryRegion{0, 0x100000, kFrontendVirt, 0}},
                                                         0x1000,
                                                         SessionError::MemoryMap},
                                         HostileMemTable{"OverlappingRegions_BreaksWithMemoryMap",
                                                         0,
                                                         {MemoryRegion{0, 0x1000, kFrontendVirt, 0},
                                                          MemoryRegion{0, 0x1000, kFrontendVirt, 0}},
                                                         0x1000,
                                                         SessionError::MemoryMap}),
                         test::CaseName{});

TEST_F(SessionTest, AddMemReg_Negotiated_AddsRegion) {
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  const UniqueFd fd = make_memfd(0x2000);
  ASSERT_TRUE(deliver(FrontendRequest::AddMemReg,
                      bytes_of(SingleMemoryRegion{0, {0x100000, 0x1000, 0x7100'0000'0000, 0x1000}}), {fd.get()}));
  EXPECT_EQ(session_->memory().region_count(), 1u);
}

TEST_F(SessionTest, AddMemReg_NotNegotiated_RefusedAndFdClosed) {
  const size_t before = open_fd_count();
  const UniqueFd fd = make_memfd(0x1000);
  ASSERT_TRUE(deliver(FrontendRequest::AddMemReg, bytes_of(SingleMemoryRegion{0, {0, 0x1000, 0x1000, 0}}), {fd.get()}));
  EXPECT_EQ(session_->memory().region_count(), 0u);
  EXPECT_EQ(open_fd_count(), before + 1);
}

TEST_F(SessionTest, AddMemReg_NonZeroPadding_BreaksWithInvalidPayload) {
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  const UniqueFd fd = make_memfd(0x1000);
  EXPECT_EQ(
      deliver(FrontendRequest::AddMemReg, bytes_of(SingleMemoryRegion{1, {0, 0x1000, 0x1000, 0}}), {fd.get()}).error(),
      SessionError::InvalidPayload);
}

TEST_F(SessionTest, RemMemReg_AddedRegionWithoutFd_RemovesIt) {
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  const UniqueFd fd = make_memfd(0x2000);
  ASSERT_TRUE(deliver(FrontendRequest::AddMemReg,
                      bytes_of(SingleMemoryRegion{0, {0x100000, 0x1000, 0x7100'0000'0000, 0x1000}}), {fd.get()}));
  ASSERT_TRUE(
      deliver(FrontendRequest::RemMemReg, bytes_of(SingleMemoryRegion{0, {0x100000, 0x1000, 0x7100'0000'0000, 0}})));
  EXPECT_EQ(session_->memory().region_count(), 0u);
}

TEST_F(SessionTest, RemMemReg_WithFd_AcceptedAndFdClosed) {
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  const UniqueFd fd = make_memfd(0x1000);
  ASSERT_TRUE(deliver(FrontendRequest::AddMemReg, bytes_of(SingleMemoryRegion{0, {0, 0x1000, 0x1000, 0}}), {fd.get()}));
  const size_t before = open_fd_count();
  ASSERT_TRUE(deliver(FrontendRequest::RemMemReg, bytes_of(SingleMemoryRegion{0, {0, 0x1000, 0x1000, 0}}), {fd.get()}));
  EXPECT_EQ(open_fd_count(), before);
}

TEST_F(SessionTest, RemMemReg_UnknownRegion_BreaksWithMemoryMap) {
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  EXPECT_EQ(deliver(FrontendRequest::RemMemReg, bytes_of(SingleMemoryRegion{0, {0, 0x1000, 0x1000, 0}})).error(),
            SessionError::MemoryMap);
}

// ---- vring configuration -----------------------------------------------------------------------------------

TEST_F(SessionTest, SetVringNum_NotPowerOfTwo_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, 3})).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringNum_AboveMaxQueueSize_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, 512})).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringNum_Zero_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, 0})).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringNum_IndexOutOfRange_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{2, 16})).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringBase_Above16Bits_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringBase, bytes_of(VringState{0, 0x10000})).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringAddr_LogFlag_BreaksWithInvalidPayload) {
  EXPECT_EQ(deliver(FrontendRequest::SetVringAddr, bytes_of(VringAddr{0, kVringFlagLog, 0, 0, 0, 0})).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringEnable_ValueTwo_BreaksWithInvalidPayload) {
  ASSERT_TRUE(deliver(FrontendRequest::SetFeatures, bytes_of(kFeatureProtocolFeatures)));
  EXPECT_EQ(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 2})).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringEnable_ProtocolFeaturesNotAcked_Refused) {
  ASSERT_TRUE(deliver_acked(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 1})));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

// ---- ring start and stop -----------------------------------------------------------------------------------

TEST_F(SessionTest, SetVringKick_ProtocolFeaturesNotAcked_StartsRingAndRegistersKick) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_started(0, _));
  start_ring0(vq);
  EXPECT_TRUE(session_->ring_running(0));
  const std::vector<Event> events = ready_events();  // the injected first kick
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].source, (Source{Token::QueueKick, 0}));
}

TEST_F(SessionTest, SetVringKick_ProtocolFeaturesAcked_WaitsForEnable) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_started(_, _)).Times(0);
  configure_ring(0, vq, kVersion1Feature | kFeatureProtocolFeatures);
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}));
  EXPECT_FALSE(session_->ring_running(0));
  EXPECT_TRUE(ready_events().empty());
}

TEST_F(SessionTest, SetVringEnable_AfterKick_StartsRing) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_started(0, _));
  configure_ring(0, vq, kVersion1Feature | kFeatureProtocolFeatures);
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 1})));
  EXPECT_TRUE(session_->ring_running(0));
}

TEST_F(SessionTest, SetVringEnable_BeforeKick_RingStartsAtKick) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  configure_ring(0, vq, kVersion1Feature | kFeatureProtocolFeatures);
  ASSERT_TRUE(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 1})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}));
  EXPECT_TRUE(session_->ring_running(0));
}

TEST_F(SessionTest, SetVringEnable_ZeroOnRunningRing_StopsRingAndUnregistersKick) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_stopped(0));
  configure_ring(0, vq, kVersion1Feature | kFeatureProtocolFeatures);
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 1})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 0})));
  EXPECT_FALSE(session_->ring_running(0));
  EXPECT_TRUE(ready_events().empty());
}

TEST_F(SessionTest, SetVringKick_RingWithoutAddresses_BreaksWithRingStart) {
  ASSERT_TRUE(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, kRingSize})));
  EXPECT_EQ(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}).error(),
            SessionError::RingStart);
}

TEST_F(SessionTest, SetVringKick_AddressesOutsideMemory_BreaksWithRingStart) {
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, kRingSize})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringAddr, bytes_of(VringAddr{0, 0, 0x1000, 0x2000, 0x3000, 0})));
  EXPECT_EQ(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}).error(),
            SessionError::RingStart);
}

TEST_F(SessionTest, SetVringKick_MemfdInsteadOfEventfd_BreaksWithInvalidPayload) {
  const UniqueFd regular_file = make_memfd(8);
  EXPECT_EQ(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {regular_file.get()}).error(),
            SessionError::InvalidPayload);
}

// Found by fuzz/vhost_user_message.cc: a socket (peer closed) as kick fd got the injected first kick written
// to it, and the process died of SIGPIPE.
TEST_F(SessionTest, SetVringKick_SocketWithClosedPeer_RejectedBeforeAnyWrite) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  configure_ring(0, vq, kVersion1Feature);
  const UniqueFd socket = make_socket();
  EXPECT_EQ(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {socket.get()}).error(),
            SessionError::InvalidPayload);
  EXPECT_FALSE(session_->ring_running(0));
}

TEST_F(SessionTest, SetVringCall_SocketInsteadOfEventfd_BreaksWithInvalidPayload) {
  const UniqueFd socket = make_socket();
  EXPECT_EQ(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{0}), {socket.get()}).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetVringKick_NoFdFlagOnRunningRing_StopsRing) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_stopped(0));
  start_ring0(vq);
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(kVringNoFdFlag)));
  EXPECT_FALSE(session_->ring_running(0));
}

TEST_F(SessionTest, SetVringKick_NewFdOnRunningRing_PollsNewFdOnly) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  (void)eventfd_count(kick_.get());
  const UniqueFd new_kick = make_eventfd();
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {new_kick.get()}));
  (void)eventfd_count(new_kick.get());
  ASSERT_EQ(::eventfd_write(kick_.get(), 1), 0);
  EXPECT_TRUE(ready_events().empty());
}

TEST_F(SessionTest, SetVringNum_RunningRing_BreaksWithInvalidState) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  EXPECT_EQ(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, 8})).error(), SessionError::InvalidState);
}

TEST_F(SessionTest, StartAndStop_GetVringBase_BackendSeesStartedThenStoppedBeforeReply) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  {
    InSequence order;
    EXPECT_CALL(backend_, on_queue_started(0, _));
    EXPECT_CALL(backend_, on_queue_stopped(0));
    EXPECT_CALL(backend_, reset());
  }
  start_ring0(vq);
  ASSERT_TRUE(deliver(FrontendRequest::GetVringBase, bytes_of(VringState{0, 0})));
  EXPECT_FALSE(session_->ring_running(0));
  session_->close();
}

TEST_F(SessionTest, GetVringBase_RunningRingAfterThreeChains_ReportsNextAvail) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_draining_ring0(vq);
  ChainBuilder(vq).readable("a").build();
  ChainBuilder(vq).readable("b").build();
  ChainBuilder(vq).readable("c").build();
  session_->on_kick(0);
  ASSERT_TRUE(deliver(FrontendRequest::GetVringBase, bytes_of(VringState{0, 0})));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, bytes_of(VringState{0, 3}));
}

TEST_F(SessionTest, GetVringBase_NeverStartedRing_ReportsSetBase) {
  ASSERT_TRUE(deliver(FrontendRequest::SetVringBase, bytes_of(VringState{1, 42})));
  ASSERT_TRUE(deliver(FrontendRequest::GetVringBase, bytes_of(VringState{1, 0})));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, bytes_of(VringState{1, 42}));
}

TEST_F(SessionTest, GetVringBase_RunningRing_ClosesKickFdAndLeavesLoop) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  const size_t before = open_fd_count();
  ASSERT_TRUE(deliver(FrontendRequest::GetVringBase, bytes_of(VringState{0, 0})));
  EXPECT_EQ(open_fd_count(), before - 1);
  EXPECT_TRUE(ready_events().empty());
}

TEST_F(SessionTest, Restart_AfterGetVringBase_ResumesAtReportedBase) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_draining_ring0(vq);
  kick_one_chain(vq);
  ASSERT_TRUE(deliver(FrontendRequest::GetVringBase, bytes_of(VringState{0, 0})));
  (void)frontend_->receive();
  ChainBuilder(vq).readable("b").build();
  ASSERT_TRUE(deliver(FrontendRequest::SetVringBase, bytes_of(VringState{0, 1})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}));
  session_->on_kick(0);
  EXPECT_EQ(vq.next_used(), (test::UsedElement{0, 0}));
  EXPECT_EQ(vq.next_used()->id, 1u);
}

TEST_F(SessionTest, OnKick_RunningRing_ClearsEventfdAndCallsBackend) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_kick(0, _, _));
  start_ring0(vq);
  session_->on_kick(0);
  EXPECT_EQ(eventfd_count(kick_.get()), 0u);
}

TEST_F(SessionTest, OnKick_StoppedRing_Ignored) {
  EXPECT_CALL(backend_, on_queue_kick(_, _, _)).Times(0);
  session_->on_kick(0);
  session_->on_kick(7);
}

TEST_F(SessionTest, Interrupt_UsedBuffers_WritesCallEventfd) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_draining_ring0(vq);
  kick_one_chain(vq);
  EXPECT_EQ(eventfd_count(call_.get()), 1u);
}

TEST_F(SessionTest, SetVringCall_RunningRing_InterruptGoesToNewFd) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_draining_ring0(vq);
  const UniqueFd new_call = make_eventfd();
  ASSERT_TRUE(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{0}), {new_call.get()}));
  kick_one_chain(vq);
  EXPECT_EQ(eventfd_count(new_call.get()), 1u);
  EXPECT_EQ(eventfd_count(call_.get()), 0u);
}

TEST_F(SessionTest, SetVringCall_NoFdFlag_InterruptGoesNowhere) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_draining_ring0(vq);
  ASSERT_TRUE(deliver(FrontendRequest::SetVringCall, bytes_of(kVringNoFdFlag)));
  kick_one_chain(vq);
  EXPECT_EQ(eventfd_count(call_.get()), 0u);
}

TEST_F(SessionTest, SetVringErr_WithFd_Accepted) {
  const UniqueFd err = make_eventfd();
  ASSERT_TRUE(deliver(FrontendRequest::SetVringErr, bytes_of(uint64_t{1}), {err.get()}));
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, ResetOwner_RunningRing_StopsRingThenResetsBackend) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  expect_stop_then_reset();
  ASSERT_TRUE(deliver(FrontendRequest::ResetOwner));
  EXPECT_FALSE(session_->ring_running(0));
  testing::Mock::VerifyAndClearExpectations(&backend_);
}

TEST_F(SessionTest, ResetDevice_Negotiated_StopsRingsResetsBackendKeepsMemory) {
  EXPECT_NE(Session::kOfferedProtocolFeatures & bit(ProtocolFeature::ResetDevice), 0u);
  negotiate_protocol_features(bit(ProtocolFeature::ResetDevice));
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  expect_stop_then_reset();
  ASSERT_TRUE(deliver(FrontendRequest::ResetDevice));
  EXPECT_FALSE(session_->ring_running(0));
  EXPECT_FALSE(session_->broken());
  testing::Mock::VerifyAndClearExpectations(&backend_);
  // Reinitialised as QEMU does at the next start: the same memory, the ring set up again.
  start_ring0(vq);
  EXPECT_TRUE(session_->ring_running(0));
}

TEST_F(SessionTest, ResetDevice_NotNegotiated_RefusedAndNothingReset) {
  EXPECT_CALL(backend_, reset()).Times(0);
  ASSERT_TRUE(deliver(FrontendRequest::ResetDevice));
  EXPECT_FALSE(session_->broken());
  testing::Mock::VerifyAndClearExpectations(&backend_);
}

// ---- memory changes under running rings --------------------------------------------------------------------

TEST_F(SessionTest, MemoryChange_SameLayout_RingKeepsRunning) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  EXPECT_CALL(backend_, on_queue_stopped(_)).Times(0);
  start_ring0(vq);
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
  EXPECT_TRUE(session_->ring_running(0));
  testing::Mock::VerifyAndClearExpectations(&backend_);
}

TEST_F(SessionTest, MemoryChange_RingMemoryRemoved_StopsRingUntilMemoryReturns) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, bytes_of(MemoryTableHeader{0, 0})));
  EXPECT_FALSE(session_->ring_running(0));
  ASSERT_TRUE(deliver(FrontendRequest::SetMemTable, mem_table(), {guest_.fd()}));
  EXPECT_TRUE(session_->ring_running(0));
}

TEST_F(SessionTest, MemoryChange_RemAndAddMemReg_RingRestartsAtNextAvail) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  negotiate_protocol_features(bit(ProtocolFeature::ConfigureMemSlots));
  start_draining_ring0(vq);
  kick_one_chain(vq);
  const RegionDesc r = guest_.regions()[0];
  const MemoryRegion region{raw(r.guest_phys), r.size, raw(r.frontend_virt), r.mmap_offset};
  ASSERT_TRUE(deliver(FrontendRequest::RemMemReg, bytes_of(SingleMemoryRegion{0, region})));
  ASSERT_TRUE(deliver(FrontendRequest::AddMemReg, bytes_of(SingleMemoryRegion{0, region}), {guest_.fd()}));
  ChainBuilder(vq).readable("b").build();
  session_->on_kick(0);
  EXPECT_EQ(vq.next_used()->id, 0u);
  EXPECT_EQ(vq.next_used()->id, 1u);
}

// ---- config space ------------------------------------------------------------------------------------------

TEST_F(SessionTest, GetConfig_Negotiated_RepliesHeaderAndDeviceBytes) {
  negotiate_protocol_features(bit(ProtocolFeature::Config));
  EXPECT_CALL(backend_, read_config(0, _)).WillOnce([](uint32_t, std::span<std::byte> out) {
    std::memset(out.data(), 0xab, out.size());
    return true;
  });
  ASSERT_TRUE(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{0, 4, 0}, 4)));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, config_payload(ConfigHeader{0, 4, 0}, 4, std::byte{0xab}));
}

TEST_F(SessionTest, GetConfig_DeviceRefuses_RepliesZeroSize) {
  negotiate_protocol_features(bit(ProtocolFeature::Config));
  EXPECT_CALL(backend_, read_config(_, _)).WillOnce(Return(false));
  ASSERT_TRUE(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{20, 8, 0}, 8)));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, bytes_of(ConfigHeader{20, 0, 0}));
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, GetConfig_NotNegotiated_RefusedWithZeroSizeReply) {
  ASSERT_TRUE(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{0, 4, 0}, 4)));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->payload, bytes_of(ConfigHeader{0, 0, 0}));
}

TEST_F(SessionTest, GetConfig_SizeAbove256_BreaksWithInvalidPayload) {
  negotiate_protocol_features(bit(ProtocolFeature::Config));
  EXPECT_EQ(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{0, 257, 0}, 257)).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, GetConfig_PayloadShorterThanSize_BreaksWithWrongPayloadSize) {
  negotiate_protocol_features(bit(ProtocolFeature::Config));
  EXPECT_EQ(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{0, 8, 0}, 4)).error(),
            SessionError::WrongPayloadSize);
}

TEST_F(SessionTest, GetConfig_OffsetPlusSizeWraps_BreaksWithInvalidPayload) {
  negotiate_protocol_features(bit(ProtocolFeature::Config));
  EXPECT_EQ(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{0xffffffff, 4, 0}, 4)).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionTest, SetConfig_Negotiated_WritesDeviceAndAcks) {
  negotiate_protocol_features(bit(ProtocolFeature::Config) | bit(ProtocolFeature::ReplyAck));
  EXPECT_CALL(backend_, write_config(16, _)).WillOnce(Return(true));
  ASSERT_TRUE(
      deliver(FrontendRequest::SetConfig, config_payload(ConfigHeader{16, 4, 0}, 4), {}, kVersion1 | kFlagNeedReply));
  EXPECT_EQ(frontend_->receive_u64(), 0u);
}

TEST_F(SessionTest, SetConfig_DeviceRefuses_FailureAckAndSessionGoesOn) {
  negotiate_protocol_features(bit(ProtocolFeature::Config) | bit(ProtocolFeature::ReplyAck));
  EXPECT_CALL(backend_, write_config(_, _)).WillOnce(Return(false));
  ASSERT_TRUE(
      deliver(FrontendRequest::SetConfig, config_payload(ConfigHeader{0, 4, 0}, 4), {}, kVersion1 | kFlagNeedReply));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, SetConfig_UnknownFlags_BreaksWithInvalidPayload) {
  negotiate_protocol_features(bit(ProtocolFeature::Config));
  EXPECT_EQ(deliver(FrontendRequest::SetConfig, config_payload(ConfigHeader{0, 4, 2}, 4)).error(),
            SessionError::InvalidPayload);
}

// ---- fds handed on -----------------------------------------------------------------------------------------

TEST_F(SessionTest, GpuSetSocket_SentTwice_BothHandedToBackend) {
  const UniqueFd a = make_socket();
  const UniqueFd b = make_socket();
  ASSERT_TRUE(deliver(FrontendRequest::GpuSetSocket, {}, {a.get()}));
  ASSERT_TRUE(deliver(FrontendRequest::GpuSetSocket, {}, {b.get()}));
  EXPECT_EQ(backend_.display_sockets.size(), 2u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionTest, GpuSetSocket_Eventfd_BreaksWithInvalidPayload) {
  const UniqueFd fd = make_eventfd();
  EXPECT_EQ(deliver(FrontendRequest::GpuSetSocket, {}, {fd.get()}).error(), SessionError::InvalidPayload);
  EXPECT_TRUE(backend_.display_sockets.empty());
}

TEST_F(SessionTest, SetBackendReqFd_Negotiated_KeepsFd) {
  negotiate_protocol_features(bit(ProtocolFeature::BackendReq));
  ASSERT_NO_FATAL_FAILURE(deliver_backend_req_fd());
  EXPECT_NE(session_->backend_channel(), nullptr);
}

TEST_F(SessionTest, SetBackendReqFd_NotNegotiated_RefusedAndFdClosed) {
  ASSERT_NO_FATAL_FAILURE(deliver_backend_req_fd());
  EXPECT_EQ(session_->backend_channel(), nullptr);
  EXPECT_FALSE(session_->broken());
}

// ---- status ------------------------------------------------------------------------------------------------

TEST_F(SessionTest, SetStatus_Negotiated_GetStatusReportsIt) {
  negotiate_protocol_features(bit(ProtocolFeature::Status));
  ASSERT_TRUE(deliver(FrontendRequest::SetStatus, bytes_of(uint64_t{0x0f})));
  ASSERT_TRUE(deliver(FrontendRequest::GetStatus));
  EXPECT_EQ(frontend_->receive_u64(), 0x0fu);
}

TEST_F(SessionTest, SetStatus_Zero_DoesNotResetBackend) {
  negotiate_protocol_features(bit(ProtocolFeature::Status));
  EXPECT_CALL(backend_, reset()).Times(0);
  ASSERT_TRUE(deliver(FrontendRequest::SetStatus, bytes_of(uint64_t{0})));
  testing::Mock::VerifyAndClearExpectations(&backend_);
}

TEST_F(SessionTest, SetStatus_Above8Bits_BreaksWithInvalidPayload) {
  negotiate_protocol_features(bit(ProtocolFeature::Status));
  EXPECT_EQ(deliver(FrontendRequest::SetStatus, bytes_of(uint64_t{0x100})).error(), SessionError::InvalidPayload);
}

TEST_F(SessionTest, GetStatus_NotNegotiated_RefusedWithFailureReply) {
  ASSERT_TRUE(deliver(FrontendRequest::GetStatus));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
}

// ---- transport and lifetime --------------------------------------------------------------------------------

TEST_F(SessionTest, OnReadable_SeveralMessagesWaiting_HandlesAll) {
  frontend_->send(FrontendRequest::GetFeatures);
  frontend_->send(FrontendRequest::GetProtocolFeatures);
  ASSERT_TRUE(session_->on_readable());
  EXPECT_EQ(frontend_->receive_u64(), kDeviceFeatures | kFeatureProtocolFeatures);
  EXPECT_EQ(frontend_->receive_u64(), Session::kOfferedProtocolFeatures);
}

TEST_F(SessionTest, OnReadable_NothingWaiting_Succeeds) {
  EXPECT_TRUE(session_->on_readable());
}

TEST_F(SessionTest, OnReadable_PeerClosed_Disconnected) {
  frontend_->close();
  EXPECT_EQ(session_->on_readable().error(), SessionError::Disconnected);
  EXPECT_EQ(session_->error_detail(), "");
}

TEST_F(SessionTest, OnReadable_AfterBroken_SameErrorWithoutReading) {
  (void)deliver(FrontendRequest::GetFeatures, {}, {}, 0);
  frontend_->send(FrontendRequest::GetFeatures);
  EXPECT_EQ(session_->on_readable().error(), SessionError::BadHeader);
  EXPECT_FALSE(frontend_->receive());
}

TEST_F(SessionTest, GarbageHeader_HugeSizeWithFds_BrokenAndNothingLeaked) {
  const size_t before = open_fd_count();
  {
    const UniqueFd a = make_eventfd();
    const UniqueFd b = make_memfd(4096);
    const MessageHeader garbage{0xdeadbeef, 0xffffffff, 0xfffffff0};
    frontend_->send_raw(bytes_of(garbage), {a.get(), b.get()});
  }
  EXPECT_EQ(session_->on_readable().error(), SessionError::Transport);
  EXPECT_EQ(open_fd_count(), before);
}

TEST_F(SessionTest, PeerStopsMidMessage_TimesOutAsTransportError) {
  const MessageHeader h{static_cast<uint32_t>(FrontendRequest::SetFeatures), kVersion1, 8};
  frontend_->send_raw(bytes_of(h));
  EXPECT_EQ(session_->on_readable().error(), SessionError::Transport);
}

TEST_F(SessionTest, Close_FullySetUpSession_ClosesEveryFdItReceived) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  const size_t before = open_fd_count();
  negotiate_protocol_features(bit(ProtocolFeature::BackendReq));
  start_ring0(vq);
  const UniqueFd err = make_eventfd();
  ASSERT_TRUE(deliver(FrontendRequest::SetVringErr, bytes_of(uint64_t{0}), {err.get()}));
  const UniqueFd req = make_socket();
  ASSERT_TRUE(deliver(FrontendRequest::SetBackendReqFd, {}, {req.get()}));
  session_->close();
  EXPECT_EQ(open_fd_count(), before + 2 - 1);  // + err and req here, - the session's own socket
}

TEST_F(SessionTest, Close_RunningRing_StopsRingThenResetsBackend) {
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  expect_stop_then_reset();
  session_.reset();
  EXPECT_TRUE(ready_events().empty());
}

// A QEMU 10-like start: everything a vhost-user-gpu frontend sends, in its order, with REPLY_ACK.
TEST_F(SessionTest, QemuLikeSequence_FullNegotiationAndStart_BothRingsRun) {
  FakeVirtqueue ctrl(guest_, {.size = kRingSize, .event_idx = true});
  FakeVirtqueue cursor(guest_, {.size = kRingSize, .event_idx = true});
  const UniqueFd kick1 = make_eventfd();
  const UniqueFd call1 = make_eventfd();
  const UniqueFd display = make_socket();
  const uint32_t ack = kVersion1 | kFlagNeedReply;
  EXPECT_CALL(backend_, on_queue_started(_, _)).Times(2);
  ASSERT_TRUE(deliver(FrontendRequest::GetFeatures));
  ASSERT_TRUE(deliver(FrontendRequest::GetProtocolFeatures));
  negotiate_protocol_features(Session::kOfferedProtocolFeatures);
  ASSERT_TRUE(deliver(FrontendRequest::GetQueueNum));
  ASSERT_TRUE(deliver(FrontendRequest::GetMaxMemSlots));
  ASSERT_TRUE(deliver(FrontendRequest::SetBackendReqFd, {}, {display.get()}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::SetOwner));
  ASSERT_TRUE(deliver(FrontendRequest::GetFeatures));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{0}), {call_.get()}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringCall, bytes_of(uint64_t{1}), {call1.get()}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::GetConfig, config_payload(ConfigHeader{0, 24, 0}, 24)));
  ASSERT_TRUE(deliver(FrontendRequest::GpuSetSocket, {}, {display.get()}));
  ASSERT_TRUE(
      deliver(FrontendRequest::SetFeatures, bytes_of(kVersion1Feature | kEventIdxFeature | kFeatureProtocolFeatures)));
  const RegionDesc r = guest_.regions()[0];
  ASSERT_TRUE(deliver(FrontendRequest::AddMemReg,
                      bytes_of(SingleMemoryRegion{0, {raw(r.guest_phys), r.size, raw(r.frontend_virt), r.mmap_offset}}),
                      {guest_.fd()}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{0, kRingSize})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringBase, bytes_of(VringState{0, 0})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringAddr, bytes_of(ring_addr(0, ctrl))));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{0}), {kick_.get()}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringNum, bytes_of(VringState{1, kRingSize})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringBase, bytes_of(VringState{1, 0})));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringAddr, bytes_of(ring_addr(1, cursor))));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringKick, bytes_of(uint64_t{1}), {kick1.get()}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{0, 1}), {}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::SetVringEnable, bytes_of(VringState{1, 1}), {}, ack));
  ASSERT_TRUE(deliver(FrontendRequest::GetStatus));
  ASSERT_TRUE(deliver(FrontendRequest::SetStatus, bytes_of(uint64_t{0x0f}), {}, ack));
  EXPECT_TRUE(session_->ring_running(0));
  EXPECT_TRUE(session_->ring_running(1));
  EXPECT_FALSE(session_->broken());
}

// ---- shared memory (VHOST_USER_PROTOCOL_F_SHMEM) -------------------------------------------------------------

class SessionShmemTest : public SessionTest {
 protected:
  static constexpr uint64_t kHostVisibleSize = 256ull << 20;

  // The backend is given a mapper `times` times (and its mapper taken away any number of times).
  void expect_mapper(int times) {
    EXPECT_CALL(backend_, set_shmem_mapper(nullptr)).Times(::testing::AnyNumber());
    EXPECT_CALL(backend_, set_shmem_mapper(::testing::NotNull())).Times(times);
  }
  // A new session whose backend has a host-visible region (shmid 1, as virtio-gpu's).
  void reconnect_with_region() {
    ON_CALL(backend_, shmem_regions()).WillByDefault(Return(std::vector<uint64_t>{0, kHostVisibleSize}));
    reconnect();
  }
};

TEST_F(SessionShmemTest, GetProtocolFeatures_NoRegion_OffersNeitherShmemNorBits20And21) {
  const auto offered = offered_protocol_features();
  ASSERT_TRUE(offered);
  EXPECT_EQ(*offered, Session::kOfferedProtocolFeatures);
  EXPECT_EQ(*offered & (uint64_t{7} << 20), 0u);
}

TEST_F(SessionShmemTest, GetProtocolFeatures_WithRegion_OffersBit22Only) {
  reconnect_with_region();
  const auto offered = offered_protocol_features();
  ASSERT_TRUE(offered);
  EXPECT_EQ(*offered, Session::kOfferedProtocolFeatures | (uint64_t{1} << 22));
  EXPECT_EQ(*offered & (uint64_t{3} << 20), 0u);
}

TEST_F(SessionShmemTest, SetProtocolFeatures_ShmemWithoutRegion_Breaks) {
  EXPECT_EQ(deliver(FrontendRequest::SetProtocolFeatures, bytes_of(bit(ProtocolFeature::Shmem))).error(),
            SessionError::InvalidPayload);
}

TEST_F(SessionShmemTest, GetShmemConfig_Negotiated_Answers2056BytesIndexedByShmid) {
  reconnect_with_region();
  negotiate_protocol_features(bit(ProtocolFeature::Shmem));
  ASSERT_TRUE(deliver(FrontendRequest::GetShmemConfig));
  const auto reply = frontend_->receive();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->header.request, static_cast<uint32_t>(FrontendRequest::GetShmemConfig));
  EXPECT_EQ(reply->header.flags, 0x5u);  // version 1 | reply
  ASSERT_EQ(reply->payload.size(), 2056u);
  ShmemConfig config{};
  std::memcpy(&config, reply->payload.data(), sizeof(config));
  EXPECT_EQ(config.nregions, 1u);
  EXPECT_EQ(config.memory_sizes[0], 0u);
  EXPECT_EQ(config.memory_sizes[1], kHostVisibleSize);
  EXPECT_EQ(config.memory_sizes[2], 0u);
}

TEST_F(SessionShmemTest, GetShmemConfig_NotNegotiated_RefusedWithFailureReply) {
  reconnect_with_region();
  ASSERT_TRUE(deliver(FrontendRequest::GetShmemConfig));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionShmemTest, SetBackendReqFd_ShmemNegotiated_GivesTheBackendAMapper) {
  reconnect_with_region();
  negotiate_protocol_features(bit(ProtocolFeature::Shmem) | bit(ProtocolFeature::BackendReq));
  expect_mapper(1);
  ASSERT_NO_FATAL_FAILURE(deliver_backend_req_fd());
  ASSERT_NE(session_->backend_channel(), nullptr);
  ::testing::Mock::VerifyAndClearExpectations(&backend_);
}

TEST_F(SessionShmemTest, SetBackendReqFd_ShmemNotNegotiated_NoMapper) {
  reconnect_with_region();
  negotiate_protocol_features(bit(ProtocolFeature::BackendReq));
  expect_mapper(0);
  ASSERT_NO_FATAL_FAILURE(deliver_backend_req_fd());
  EXPECT_NE(session_->backend_channel(), nullptr);
}

// SHARED_OBJECT (protocol bit 18): offered only by a backend that shares objects; GET_SHARED_OBJECT answers
// 0 with the buffer's fd, or non-zero and no fd for an unknown UUID; the backend channel goes to the device.
class SessionSharedObjectTest : public SessionTest {
 protected:
  // A sharing session with `protocol` negotiated gets SET_BACKEND_REQ_FD: the backend must be given the channel
  // `times` times (and have it taken away any number of times).
  void backend_req_fd_gives_channel(uint64_t protocol, int times) {
    reconnect_sharing();
    negotiate_protocol_features(protocol);
    EXPECT_CALL(backend_, set_shared_objects(nullptr)).Times(::testing::AnyNumber());
    EXPECT_CALL(backend_, set_shared_objects(::testing::NotNull())).Times(times);
    ASSERT_NO_FATAL_FAILURE(deliver_backend_req_fd());
    ::testing::Mock::VerifyAndClearExpectations(&backend_);
  }
  void reconnect_sharing() {
    ON_CALL(backend_, shares_objects()).WillByDefault(Return(true));
    reconnect();
  }
  static std::vector<std::byte> uuid_bytes(const ObjectUuid& u) {
    return std::vector<std::byte>(reinterpret_cast<const std::byte*>(u.data()),
                                  reinterpret_cast<const std::byte*>(u.data()) + u.size());
  }
};

TEST_F(SessionSharedObjectTest, GetProtocolFeatures_OffersBit18OnlyWhenTheBackendShares) {
  expect_bit_offered_only_after(18, [this] { reconnect_sharing(); });
}

TEST_F(SessionSharedObjectTest, GetSharedObject_KnownUuid_ZeroWithTheBuffersFd) {
  reconnect_sharing();
  negotiate_protocol_features(bit(ProtocolFeature::SharedObject));
  backend_.shared_uuid = ObjectUuid{0xde, 0xad, 0xbe, 0xef};
  backend_.shared_file = UniqueFd(::memfd_create("shared", MFD_CLOEXEC));
  ASSERT_EQ(::pwrite(backend_.shared_file.get(), "pixels", 6, 0), 6);
  ASSERT_TRUE(deliver(FrontendRequest::GetSharedObject, uuid_bytes(backend_.shared_uuid)));
  auto got = frontend_->receive_with_fds();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->first.header.request, static_cast<uint32_t>(FrontendRequest::GetSharedObject));
  EXPECT_EQ(got->first.header.flags, kVersion1 | kFlagReply);
  ASSERT_EQ(got->first.payload.size(), 8u);
  EXPECT_EQ(std::to_integer<uint8_t>(got->first.payload[0]), 0u);
  ASSERT_EQ(got->second.size(), 1u);
  char buf[6] = {};
  ASSERT_EQ(::pread(got->second[0].get(), buf, sizeof(buf), 0), 6);
  EXPECT_EQ(std::string(buf, 6), "pixels");
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionSharedObjectTest, GetSharedObject_UnknownUuid_NonZeroNoFd_SessionGoesOn) {
  reconnect_sharing();
  negotiate_protocol_features(bit(ProtocolFeature::SharedObject));
  const size_t fds_before = open_fd_count();
  ASSERT_TRUE(deliver(FrontendRequest::GetSharedObject, uuid_bytes(ObjectUuid{1})));
  auto got = frontend_->receive_with_fds();
  ASSERT_TRUE(got);
  ASSERT_EQ(got->first.payload.size(), 8u);
  EXPECT_NE(std::to_integer<uint8_t>(got->first.payload[0]), 0u);
  EXPECT_TRUE(got->second.empty());
  EXPECT_FALSE(session_->broken());
  EXPECT_EQ(open_fd_count(), fds_before);
}

TEST_F(SessionSharedObjectTest, GetSharedObject_NotNegotiated_Refused) {
  reconnect_sharing();
  ASSERT_TRUE(deliver(FrontendRequest::GetSharedObject, uuid_bytes(ObjectUuid{1})));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionSharedObjectTest, GetSharedObject_WrongSize_RefusedSessionGoesOn) {
  reconnect_sharing();
  negotiate_protocol_features(bit(ProtocolFeature::SharedObject));
  ASSERT_TRUE(deliver(FrontendRequest::GetSharedObject, std::vector<std::byte>(15)));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  EXPECT_FALSE(session_->broken());
}

// QEMU <= 11.1.3 sends GET_SHARED_OBJECT with header size 0 (the UUID never leaves QEMU).
TEST_F(SessionSharedObjectTest, GetSharedObject_NoPayloadOneObjectShared_AnswersThatOne) {
  reconnect_sharing();
  negotiate_protocol_features(bit(ProtocolFeature::SharedObject));
  backend_.shared_uuid = ObjectUuid{7};
  backend_.shared_file = UniqueFd(::memfd_create("shared", MFD_CLOEXEC));
  ASSERT_TRUE(deliver(FrontendRequest::GetSharedObject));
  auto got = frontend_->receive_with_fds();
  ASSERT_TRUE(got);
  EXPECT_EQ(std::to_integer<uint8_t>(got->first.payload.at(0)), 0u);
  EXPECT_EQ(got->second.size(), 1u);
}

TEST_F(SessionSharedObjectTest, GetSharedObject_NoPayloadNotExactlyOneShared_RefusedNoFd) {
  reconnect_sharing();
  negotiate_protocol_features(bit(ProtocolFeature::SharedObject));
  ASSERT_TRUE(deliver(FrontendRequest::GetSharedObject));
  auto got = frontend_->receive_with_fds();
  ASSERT_TRUE(got);
  EXPECT_NE(std::to_integer<uint8_t>(got->first.payload.at(0)), 0u);
  EXPECT_TRUE(got->second.empty());
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionSharedObjectTest, SetBackendReqFd_Negotiated_GivesTheBackendTheChannel) {
  backend_req_fd_gives_channel(bit(ProtocolFeature::SharedObject) | bit(ProtocolFeature::BackendReq), 1);
}

TEST_F(SessionSharedObjectTest, SetBackendReqFd_NotNegotiated_NoChannelForTheBackend) {
  backend_req_fd_gives_channel(bit(ProtocolFeature::BackendReq), 0);
}

// DEVICE_STATE (protocol bit 19): offered only by a backend that saves state; a save streams the backend's bytes
// into the frontend's fd after the reply (bit 8: the frontend's fd is used), a load reads until end of file and
// hands the bytes over; CHECK_DEVICE_STATE says how the last transfer ended; a running ring refuses it.
class SessionDeviceStateTest : public SessionTest {
 protected:
  void reconnect_saving() {
    ON_CALL(backend_, saves_state()).WillByDefault(Return(true));
    reconnect();
  }
};

TEST_F(SessionDeviceStateTest, GetProtocolFeatures_OffersBit19OnlyWhenTheBackendSaves) {
  expect_bit_offered_only_after(19, [this] { reconnect_saving(); });
}

TEST_F(SessionDeviceStateTest, Save_StreamsTheStateAfterTheReply_CheckSaysOk) {
  reconnect_saving();
  negotiate_protocol_features(bit(ProtocolFeature::DeviceState));
  backend_.state_to_save = std::vector<std::byte>(100000, std::byte{0x5a});  // more than a pipe holds
  int p[2] = {-1, -1};
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd rd(p[0]);
  UniqueFd wr(p[1]);
  std::vector<std::byte> got;
  std::thread reader([&] {
    std::byte buf[4096];
    for (ssize_t n; (n = ::read(rd.get(), buf, sizeof(buf))) > 0;) got.insert(got.end(), buf, buf + n);
  });
  ASSERT_TRUE(deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{kTransferSave, 0}), {wr.get()}));
  wr.reset();
  reader.join();
  EXPECT_EQ(frontend_->receive_u64(), kDeviceStateUseFrontendFd);
  EXPECT_EQ(got, *backend_.state_to_save);
  ASSERT_TRUE(deliver(FrontendRequest::CheckDeviceState));
  EXPECT_EQ(frontend_->receive_u64(), 0u);
}

TEST_F(SessionDeviceStateTest, Load_ReadsToEndOfFile_RefusalShowsInCheck) {
  reconnect_saving();
  negotiate_protocol_features(bit(ProtocolFeature::DeviceState));
  for (const bool refuse : {false, true}) {
    backend_.refuse_load = refuse;
    int p[2] = {-1, -1};
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd rd(p[0]);
    UniqueFd wr(p[1]);
    ASSERT_EQ(::write(wr.get(), "state", 5), 5);
    wr.reset();
    ASSERT_TRUE(
        deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{kTransferLoad, 0}), {rd.get()}));
    EXPECT_EQ(frontend_->receive_u64(), kDeviceStateUseFrontendFd);
    EXPECT_EQ(backend_.loaded_state.size(), 5u);
    ASSERT_TRUE(deliver(FrontendRequest::CheckDeviceState));
    EXPECT_EQ(frontend_->receive_u64(), refuse ? 1u : 0u);
  }
  EXPECT_FALSE(session_->broken());
}

TEST_F(SessionDeviceStateTest, BadDirectionOrPhase_Refused) {
  reconnect_saving();
  negotiate_protocol_features(bit(ProtocolFeature::DeviceState));
  const UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{2, 0}), {fd.get()}));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  ASSERT_TRUE(deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{kTransferSave, 1}), {fd.get()}));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  ASSERT_TRUE(deliver(FrontendRequest::CheckDeviceState));
  EXPECT_EQ(frontend_->receive_u64(), 1u);  // nothing transferred
}

TEST_F(SessionDeviceStateTest, RingRunning_Refused) {
  reconnect_saving();
  negotiate_protocol_features(bit(ProtocolFeature::DeviceState));
  FakeVirtqueue vq(guest_, {.size = kRingSize});
  start_ring0(vq);
  ASSERT_TRUE(session_->ring_running(0));
  backend_.state_to_save = std::vector<std::byte>(8);
  const UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{kTransferSave, 0}), {fd.get()}));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  // Stopped (GET_VRING_BASE), the same request is taken.
  ASSERT_TRUE(deliver(FrontendRequest::GetVringBase, bytes_of(VringState{0, 0})));
  ASSERT_TRUE(frontend_->receive());
  int p[2] = {-1, -1};
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd rd(p[0]);
  UniqueFd wr(p[1]);
  ASSERT_TRUE(deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{kTransferSave, 0}), {wr.get()}));
  EXPECT_EQ(frontend_->receive_u64(), kDeviceStateUseFrontendFd);
}

TEST_F(SessionDeviceStateTest, SaveRefusedByTheBackend_FailureReplyAndCheck) {
  reconnect_saving();
  negotiate_protocol_features(bit(ProtocolFeature::DeviceState));
  const UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(deliver(FrontendRequest::SetDeviceStateFd, bytes_of(DeviceStateTransfer{kTransferSave, 0}), {fd.get()}));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
  ASSERT_TRUE(deliver(FrontendRequest::CheckDeviceState));
  EXPECT_EQ(frontend_->receive_u64(), 1u);
}

}  // namespace
}  // namespace vgpu::vhost_user

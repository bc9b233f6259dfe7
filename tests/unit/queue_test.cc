// Queue: creation checks, popping, the used ring, avail index corruption, and notification suppression in
// both directions (used buffer interrupts and available buffer kicks), with and without EVENT_IDX.
#include "virtio/queue.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>

#include "support/fake_guest.h"

namespace vgpu {

void PrintTo(QueueError e, std::ostream* os) {
  *os << to_string(e);
}

namespace {

using test::BuiltChain;
using test::ChainBuilder;
using test::FakeGuestMemory;
using test::FakeQueueOptions;
using test::FakeVirtqueue;
using test::RingLayout;
using test::UsedElement;

constexpr GuestAddress kBase{0x10000};
constexpr uint64_t kRegionSize = 0x200000;

std::optional<QueueError> create_failure(const GuestMemory& mem, const QueueConfig& config) {
  auto r = Queue::create(mem, config, 0);
  if (r) return std::nullopt;
  return r.error();
}

DescriptorChain pop_chain(Queue& q) {
  return std::move(q.pop().value().value());
}

// True when pop() found nothing (and did not fail).
bool pop_empty(Queue& q) {
  auto r = q.pop();
  return r.has_value() && !r->has_value();
}

// Publishes `n` one-byte readable chains.
void publish_readable_chains(FakeVirtqueue& vq, size_t n) {
  for (size_t i = 0; i < n; ++i) ChainBuilder(vq).readable("x").build();
}

// Pops (and drops) chains until the ring is empty or a pop fails; returns how many popped.
size_t drain(Queue& q) {
  size_t n = 0;
  for (auto r = q.pop(); r && *r; r = q.pop()) ++n;
  return n;
}

// A config at chosen addresses in a 64 KiB region at 0x10000.
QueueConfig config_at(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used, bool event_idx = false) {
  return QueueConfig{.size = size,
                     .desc = GuestAddress{desc},
                     .avail = GuestAddress{avail},
                     .used = GuestAddress{used},
                     .event_idx = event_idx,
                     .indirect = false};
}

// ---- create ----

class QueueCreate : public ::testing::Test {
 protected:
  FakeGuestMemory guest{{{GuestAddress{0x10000}, 0x10000}}};
  const GuestMemory& mem = guest.memory();
};

// A ring layout and what Queue::create makes of it: nullopt when it succeeds.
struct CreateCase {
  const char* name;
  QueueConfig config;
  std::optional<QueueError> error;
};

class QueueCreateCases : public QueueCreate, public testing::WithParamInterface<CreateCase> {};

TEST_P(QueueCreateCases, Create_ReturnsExpectedError) {
  EXPECT_EQ(create_failure(mem, GetParam().config), GetParam().error);
}

// 8 descriptors are 128 bytes; without EVENT_IDX the used ring of 8 entries is 4 + 64 = 68 bytes and the avail
// ring 4 + 16 = 20; EVENT_IDX adds avail_event to the first and used_event to the second (2 bytes each).
INSTANTIATE_TEST_SUITE_P(
    Layouts, QueueCreateCases,
    testing::Values(
        CreateCase{"SizeZero_BadSize", config_at(0, 0x10000, 0x11000, 0x12000), QueueError::BadSize},
        CreateCase{"SizeNotPowerOfTwo_BadSize", config_at(24, 0x10000, 0x11000, 0x12000), QueueError::BadSize},
        CreateCase{"SizeAboveMaximum_BadSize", config_at(0xffff, 0x10000, 0x11000, 0x12000), QueueError::BadSize},
        CreateCase{"SizeOne_Succeeds", config_at(1, 0x10000, 0x11000, 0x12000), std::nullopt},
        CreateCase{"DescTableNot16Aligned_Misaligned", config_at(8, 0x10008, 0x11000, 0x12000), QueueError::Misaligned},
        CreateCase{"AvailRingOdd_Misaligned", config_at(8, 0x10000, 0x11001, 0x12000), QueueError::Misaligned},
        CreateCase{"UsedRingNot4Aligned_Misaligned", config_at(8, 0x10000, 0x11000, 0x12002), QueueError::Misaligned},
        CreateCase{"DescTableRunningOffMemory_RingNotInMemory",  // the region ends 112 bytes after the table
                   config_at(8, 0x1ff90, 0x11000, 0x12000), QueueError::RingNotInMemory},
        CreateCase{"AvailRingNotInMemory_RingNotInMemory", config_at(8, 0x10000, 0x30000, 0x12000),
                   QueueError::RingNotInMemory},
        CreateCase{"UsedRingEndingAtRegionEnd_Succeeds", config_at(8, 0x10000, 0x11000, 0x20000 - 68), std::nullopt},
        CreateCase{"AvailEventFieldPastRegionEndWithEventIdx_RingNotInMemory",
                   config_at(8, 0x10000, 0x11000, 0x20000 - 68, true), QueueError::RingNotInMemory},
        CreateCase{"UsedEventFieldPastRegionEndWithEventIdx_RingNotInMemory",
                   config_at(8, 0x10000, 0x20000 - 20, 0x12000, true), QueueError::RingNotInMemory},
        CreateCase{"UsedEventFieldFitsWithoutEventIdx_Succeeds", config_at(8, 0x10000, 0x20000 - 20, 0x12000, false),
                   std::nullopt}),
    [](const testing::TestParamInfo<CreateCase>& param) { return param.param.name; });

TEST(QueueCreateLarge, MaximumSize32768_Succeeds) {
  FakeGuestMemory guest({{kBase, kRegionSize}});
  FakeVirtqueue vq(guest, {.size = 32768, .event_idx = true, .indirect = false, .start_idx = 0});

  auto q = Queue::create(guest.memory(), vq.config(), 0);

  EXPECT_TRUE(q.has_value());
}

TEST(QueueCreateStart, UsedIdxInRing_ContinuesFromIt) {
  FakeGuestMemory guest({{kBase, kRegionSize}});
  FakeVirtqueue vq(guest, {.size = 8, .event_idx = false, .indirect = false, .start_idx = 7});

  Queue q = Queue::create(guest.memory(), vq.config(), 7).value();

  EXPECT_EQ(q.next_used(), 7);
  EXPECT_EQ(q.next_avail(), 7);
}

// ---- pop and the used ring ----

// A queue of 8 on a fake driver, with or without EVENT_IDX.
class QueueTest : public ::testing::Test {
 protected:
  explicit QueueTest(bool event_idx = false)
      : vq(guest, {.size = 8, .event_idx = event_idx, .indirect = false, .start_idx = 0}),
        q(Queue::create(guest.memory(), vq.config(), 0).value()) {}

  // Pops one freshly built chain and puts it on the used ring.
  void complete_one() {
    ChainBuilder(vq).writable(1).build();
    q.add_used(pop_chain(q), 1);
  }

  // Pops a request with 16 writable bytes and puts it on the used ring, `written` bytes claimed; returns its head.
  uint16_t complete_request(uint32_t written) {
    const BuiltChain built = ChainBuilder(vq).readable("req").writable(16).build();
    q.add_used(pop_chain(q), written);
    return built.head;
  }

  void count_interrupts() {
    q.set_interrupt([this] { ++interrupts; });
  }

  // Takes away the region that holds the rings.
  bool remove_ring_memory() { return guest.memory().remove_region(guest.regions()[0]).has_value(); }

  FakeGuestMemory guest{{{kBase, kRegionSize}}};
  FakeVirtqueue vq;
  Queue q;
  int interrupts = 0;
};

// QueueTest in both modes: false without EVENT_IDX, true with it.
class QueueEitherMode : public QueueTest, public testing::WithParamInterface<bool> {
 protected:
  QueueEitherMode() : QueueTest(GetParam()) {}
};

INSTANTIATE_TEST_SUITE_P(Modes, QueueEitherMode, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& param) { return param.param ? "EventIdx" : "Plain"; });

TEST_F(QueueTest, EmptyRing_PopReturnsNothing) {
  EXPECT_TRUE(pop_empty(q));
  EXPECT_FALSE(q.broken());
}

TEST_F(QueueTest, ChainsPublished_PoppedInOrder) {
  const BuiltChain first = ChainBuilder(vq).readable("1").build();
  const BuiltChain second = ChainBuilder(vq).readable("2").build();

  DescriptorChain a = pop_chain(q);
  DescriptorChain b = pop_chain(q);

  EXPECT_EQ(a.head(), first.head);
  EXPECT_EQ(b.head(), second.head);
  EXPECT_TRUE(pop_empty(q));
  EXPECT_EQ(q.next_avail(), 2);
}

TEST_F(QueueTest, AddUsed_DriverSeesHeadAndLength) {
  const uint16_t head = complete_request(12);

  EXPECT_EQ(vq.next_used(), (UsedElement{.id = head, .len = 12}));
  EXPECT_EQ(vq.used_idx(), 1);
  EXPECT_EQ(q.next_used(), 1);
}

TEST_F(QueueTest, AddUsedClaimingMoreThanWritable_LengthClamped) {
  const uint16_t head = complete_request(1000);

  EXPECT_EQ(vq.next_used(), (UsedElement{.id = head, .len = 16}));
}

TEST_F(QueueTest, CompletedOutOfOrder_UsedRingKeepsCompletionOrder) {
  const BuiltChain first = ChainBuilder(vq).writable(1).build();
  const BuiltChain second = ChainBuilder(vq).writable(1).build();
  DescriptorChain a = pop_chain(q);
  DescriptorChain b = pop_chain(q);

  q.add_used(std::move(b), 1);
  q.add_used(std::move(a), 0);

  EXPECT_EQ(vq.next_used(), (UsedElement{.id = second.head, .len = 1}));
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = first.head, .len = 0}));
}

TEST_F(QueueTest, AvailIdxExactlySizeAhead_AllPop) {
  publish_readable_chains(vq, 8);

  const size_t popped = drain(q);

  EXPECT_EQ(popped, 8u);
  EXPECT_EQ(q.next_avail(), 8);
  EXPECT_FALSE(q.broken());
}

TEST_F(QueueTest, AvailIdxJumpsPastSize_BrokenAndPopReturnsNothing) {
  vq.set_avail_idx(9);

  const bool empty = pop_empty(q);

  EXPECT_TRUE(empty);
  EXPECT_TRUE(q.broken());
  EXPECT_EQ(q.broken_reason(), QueueError::AvailIdxJump);
}

TEST_F(QueueTest, AvailIdxMovesBackwards_Broken) {
  ChainBuilder(vq).readable("x").build();
  pop_chain(q);

  vq.set_avail_idx(0);
  const bool empty = pop_empty(q);

  EXPECT_TRUE(empty);
  EXPECT_EQ(q.broken_reason(), QueueError::AvailIdxJump);
}

TEST_F(QueueTest, BrokenQueue_StaysBrokenAfterIndexRepaired) {
  vq.set_avail_idx(100);
  pop_empty(q);
  vq.set_avail_idx(0);
  ChainBuilder(vq).readable("x").build();

  const bool empty = pop_empty(q);

  EXPECT_TRUE(empty);
  EXPECT_TRUE(q.broken());
}

TEST_F(QueueTest, RingMemoryRemoved_BrokenWithMemoryReason) {
  ChainBuilder(vq).readable("x").build();
  ASSERT_TRUE(remove_ring_memory());

  const bool empty = pop_empty(q);

  EXPECT_TRUE(empty);
  EXPECT_EQ(q.broken_reason(), QueueError::Memory);
}

TEST_F(QueueTest, AddUsedAfterRingMemoryRemoved_BrokenWithMemoryReason) {
  ChainBuilder(vq).writable(1).build();
  DescriptorChain chain = pop_chain(q);
  ASSERT_TRUE(remove_ring_memory());

  q.add_used(std::move(chain), 1);

  EXPECT_EQ(q.broken_reason(), QueueError::Memory);
}

TEST_F(QueueTest, DisableNotificationsAfterRingMemoryRemoved_Broken) {
  ASSERT_TRUE(remove_ring_memory());

  q.disable_notifications();

  EXPECT_EQ(q.broken_reason(), QueueError::Memory);
}

TEST_P(QueueEitherMode, EnableNotificationsAfterRingMemoryRemoved_BrokenAndFalse) {
  ASSERT_TRUE(remove_ring_memory());

  const bool pending = q.enable_notifications();

  EXPECT_FALSE(pending);
  EXPECT_EQ(q.broken_reason(), QueueError::Memory);
}

TEST(QueueMemory, AvailEntryInRemovedRegion_BrokenWithMemoryReason) {
  // Arrange: the avail ring's header sits in region 0 and its entries in region 1, which then goes away.
  FakeGuestMemory guest({{GuestAddress{0x10000}, 0x10000}, {GuestAddress{0x20000}, 0x10000}});
  const RingLayout layout{.desc = GuestAddress{0x11000}, .avail = GuestAddress{0x1fffc}, .used = GuestAddress{0x12000}};
  FakeVirtqueue vq(guest, {.size = 8, .event_idx = false, .indirect = false, .start_idx = 0}, layout);
  Queue q = Queue::create(guest.memory(), vq.config(), 0).value();
  ChainBuilder(vq).readable("x").build();
  ASSERT_TRUE(guest.memory().remove_region(guest.regions()[1]));

  // Act
  const bool empty = pop_empty(q);

  // Assert
  EXPECT_TRUE(empty);
  EXPECT_EQ(q.broken_reason(), QueueError::Memory);
}

TEST_F(QueueTest, AddUsedOnBrokenQueue_UsedRingUntouched) {
  ChainBuilder(vq).readable("x").build();
  DescriptorChain chain = pop_chain(q);
  vq.set_avail_idx(200);
  pop_empty(q);

  q.add_used(std::move(chain), 0);

  EXPECT_EQ(vq.used_idx(), 0);
}

TEST(QueueWrap, IndicesCrossing65535_KeepWorking) {
  // Arrange: both free-running indices start two short of the 16-bit wrap.
  FakeGuestMemory guest({{kBase, kRegionSize}});
  FakeVirtqueue vq(guest, {.size = 4, .event_idx = false, .indirect = false, .start_idx = 65534});
  Queue q = Queue::create(guest.memory(), vq.config(), vq.avail_idx()).value();
  const BuiltChain c1 = ChainBuilder(vq).writable(1).build();
  const BuiltChain c2 = ChainBuilder(vq).writable(1).build();
  const BuiltChain c3 = ChainBuilder(vq).writable(1).build();

  // Act
  q.add_used(pop_chain(q), 1);
  q.add_used(pop_chain(q), 1);
  q.add_used(pop_chain(q), 1);

  // Assert
  EXPECT_EQ(q.next_avail(), 1);
  EXPECT_EQ(vq.used_idx(), 1);
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = c1.head, .len = 1}));
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = c2.head, .len = 1}));
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = c3.head, .len = 1}));
  EXPECT_FALSE(q.broken());
}

TEST(QueueLayout, RingsStraddlingRegionBoundaries_Work) {
  // Arrange: four adjacent 64 KiB regions; each ring straddles one of the boundaries at 0x20000, 0x30000 and
  // 0x40000 (the used ring's element 0 is split across the last one).
  FakeGuestMemory guest({{GuestAddress{0x10000}, 0x10000},
                         {GuestAddress{0x20000}, 0x10000},
                         {GuestAddress{0x30000}, 0x10000},
                         {GuestAddress{0x40000}, 0x10000}});
  const RingLayout layout{.desc = GuestAddress{0x1fff0}, .avail = GuestAddress{0x2fff8}, .used = GuestAddress{0x3fff8}};
  FakeVirtqueue vq(guest, {.size = 8, .event_idx = true, .indirect = false, .start_idx = 0}, layout);
  Queue q = Queue::create(guest.memory(), vq.config(), 0).value();
  const BuiltChain c1 = ChainBuilder(vq).readable("edge").writable(4).build();
  const BuiltChain c2 = ChainBuilder(vq).readable("edge").writable(4).build();
  const BuiltChain c3 = ChainBuilder(vq).readable("edge").writable(4).build();

  // Act
  q.add_used(pop_chain(q), 4);
  q.add_used(pop_chain(q), 3);
  q.add_used(pop_chain(q), 2);

  // Assert
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = c1.head, .len = 4}));
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = c2.head, .len = 3}));
  EXPECT_EQ(vq.next_used(), (UsedElement{.id = c3.head, .len = 2}));
  EXPECT_EQ(vq.avail_event(), 3);
}

// ---- used buffer notifications (interrupts), spec 2.7.7 ----

// A queue whose interrupts are counted.
class QueueNotify : public QueueTest {
 protected:
  explicit QueueNotify(bool event_idx = false) : QueueTest(event_idx) { count_interrupts(); }
};

TEST_F(QueueNotify, UsedEntryAdded_Interrupts) {
  complete_one();

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 1);
}

TEST_F(QueueNotify, NoInterruptFlagSet_Suppressed) {
  vq.set_no_interrupt(true);
  complete_one();

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 0);
}

TEST_F(QueueNotify, NothingAddedSinceLastNotify_NoSecondInterrupt) {
  complete_one();
  q.notify_if_needed();

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 1);
}

TEST_F(QueueNotify, RejectedChain_CountsAsUsedAndInterrupts) {
  ChainBuilder(vq).readable("x").self_loop().build();
  ASSERT_FALSE(q.pop().has_value());

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 1);
}

TEST_F(QueueNotify, NoInterruptCallbackSet_DoesNothing) {
  q.set_interrupt(nullptr);
  complete_one();

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 0);
}

TEST_P(QueueEitherMode, RingMemoryRemovedBeforeNotify_BrokenAndNoInterrupt) {
  count_interrupts();
  complete_one();
  ASSERT_TRUE(remove_ring_memory());

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 0);
  EXPECT_EQ(q.broken_reason(), QueueError::Memory);
}

class QueueNotifyEventIdx : public QueueNotify {
 protected:
  QueueNotifyEventIdx() : QueueNotify(true) {}
};

TEST_F(QueueNotifyEventIdx, FirstNotify_AlwaysInterrupts) {
  vq.set_used_event(5);
  complete_one();

  q.notify_if_needed();

  EXPECT_EQ(interrupts, 1);
}

// After a first notify, the driver moves used_event (and maybe sets NO_INTERRUPT), more chains complete and the
// device notifies again.
struct UsedEventCase {
  const char* name;
  int completed_before;  // before the first notify
  uint16_t used_event;
  bool no_interrupt;  // spec 2.7.7.2: with EVENT_IDX "The device MUST ignore the lower bit of flags."
  int completed_after;
  int interrupts;  // after the second notify
};

class QueueUsedEvent : public QueueNotify, public testing::WithParamInterface<UsedEventCase> {
 protected:
  QueueUsedEvent() : QueueNotify(true) {}
};

TEST_P(QueueUsedEvent, SecondNotify_InterruptsOnlyWhenUsedEventCrossed) {
  const UsedEventCase& c = GetParam();
  for (int i = 0; i < c.completed_before; ++i) complete_one();
  q.notify_if_needed();
  vq.set_no_interrupt(c.no_interrupt);
  vq.set_used_event(c.used_event);

  for (int i = 0; i < c.completed_after; ++i) complete_one();
  q.notify_if_needed();

  EXPECT_EQ(interrupts, c.interrupts);
}

// used_event 1 is "interrupt me once you fill used entry 1".
INSTANTIATE_TEST_SUITE_P(Cases, QueueUsedEvent,
                         testing::Values(UsedEventCase{"UsedEventReached_Interrupts", 1, 1, false, 1, 2},
                                         UsedEventCase{"UsedEventAhead_Suppressed", 1, 5, false, 1, 1},
                                         UsedEventCase{"UsedEventAlreadyPassed_Suppressed", 2, 0, false, 1, 1},
                                         UsedEventCase{"BatchCrossingUsedEvent_InterruptsOnce", 1, 2, false, 3, 2},
                                         UsedEventCase{"NoInterruptFlagIgnored_InterruptsAtUsedEvent", 1, 1, true, 1,
                                                       2}),
                         [](const testing::TestParamInfo<UsedEventCase>& param) { return param.param.name; });

// ---- available buffer notifications (kicks), spec 2.7.10 ----

TEST_F(QueueTest, DisableNotifications_SetsNoNotifyFlag) {
  q.disable_notifications();

  EXPECT_EQ(vq.used_flags(), VRING_USED_F_NO_NOTIFY);
}

TEST_F(QueueTest, EnableNotificationsOnEmptyRing_ClearsFlagAndReturnsFalse) {
  q.disable_notifications();

  const bool pending = q.enable_notifications();

  EXPECT_FALSE(pending);
  EXPECT_EQ(vq.used_flags(), 0);
}

TEST_F(QueueTest, ChainPublishedWhileDisabled_EnableReturnsTrue) {
  q.disable_notifications();
  ChainBuilder(vq).readable("x").build();

  const bool pending = q.enable_notifications();

  EXPECT_TRUE(pending);
}

TEST_F(QueueTest, AvailIdxJumpSeenAtEnable_BrokenAndFalse) {
  q.disable_notifications();
  vq.set_avail_idx(50);

  const bool pending = q.enable_notifications();

  EXPECT_FALSE(pending);
  EXPECT_EQ(q.broken_reason(), QueueError::AvailIdxJump);
}

class QueueKickEventIdx : public QueueTest {
 protected:
  QueueKickEventIdx() : QueueTest(true) {}
};

TEST_F(QueueKickEventIdx, Disable_LeavesUsedFlagsZero) {
  // Spec 2.7.10: with EVENT_IDX "The device MUST set flags to 0."
  q.disable_notifications();

  EXPECT_EQ(vq.used_flags(), 0);
}

TEST_F(QueueKickEventIdx, PopWhileEnabled_AvailEventFollowsNextAvail) {
  publish_readable_chains(vq, 2);

  pop_chain(q);
  pop_chain(q);

  EXPECT_EQ(vq.avail_event(), 2);
}

TEST_F(QueueKickEventIdx, PopWhileDisabled_AvailEventUnchanged) {
  q.disable_notifications();
  ChainBuilder(vq).readable("a").build();

  pop_chain(q);

  EXPECT_EQ(vq.avail_event(), 0);
}

TEST_F(QueueKickEventIdx, EnableAfterDrain_AvailEventIsAvailIdxAndReturnsFalse) {
  q.disable_notifications();
  publish_readable_chains(vq, 2);
  ASSERT_EQ(drain(q), 2u);

  const bool pending = q.enable_notifications();

  EXPECT_FALSE(pending);
  EXPECT_EQ(vq.avail_event(), 2);
}

TEST_F(QueueKickEventIdx, EnableWithChainsLeft_ReturnsTrue) {
  q.disable_notifications();
  publish_readable_chains(vq, 2);
  pop_chain(q);

  const bool pending = q.enable_notifications();

  EXPECT_TRUE(pending);
}

TEST(QueueErrorText, EveryError_HasMessage) {
  EXPECT_NE(to_string(QueueError::BadSize), to_string(QueueError::Misaligned));
  EXPECT_NE(to_string(QueueError::RingNotInMemory), to_string(QueueError::AvailIdxJump));
  EXPECT_NE(to_string(QueueError::Memory), to_string(QueueError::BadSize));
}

}  // namespace
}  // namespace vgpu

// What a guest can make a Queue hold (audit finding F1): a head published again while its chain is still held
// breaks the queue, so held chains never outnumber the queue size; and a chain has at most 1024 descriptors,
// so each held chain is small. Both fail on a device that trusts the driver (the audit's PoC held 3,200 chains
// of a 16-entry queue, +1.5 GiB).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <ostream>

#include "support/fake_guest.h"
#include "virtio/queue.h"

namespace vgpu {

namespace {

using test::ChainBuilder;
using test::FakeGuestMemory;
using test::FakeVirtqueue;

class QueueLimitsTest : public ::testing::Test {
 protected:
  FakeGuestMemory guest{{{GuestAddress{0}, 0x2000000}}};  // 32 MiB
  FakeVirtqueue vq{guest, {.size = 16, .event_idx = false, .indirect = true, .start_idx = 0}};
  Queue q = Queue::create(guest.memory(), vq.config(), 0).value();

  std::optional<DescriptorChain> pop_held() { return std::move(q.pop().value()); }

  // Pops a chain of `count` readable descriptors aliasing one `len`-byte buffer plus one of `last_len` bytes,
  // all in an indirect table; keeps the chain in last_chain. Returns the pop's error, if any.
  std::optional<ChainError> pop_aliased_chain(uint32_t count, uint32_t len, uint32_t last_len) {
    const GuestAddress buffer = guest.alloc(std::max(len, last_len));
    ChainBuilder b(vq);
    for (uint32_t i = 0; i < count; ++i) b.descriptor(buffer, len, 0);
    b.descriptor(buffer, last_len, 0).indirect().build();
    auto r = q.pop();
    if (!r) return r.error();
    last_chain = std::move(*r);
    return std::nullopt;
  }

  std::optional<DescriptorChain> last_chain;
};

TEST_F(QueueLimitsTest, HeadPublishedAgainWhileHeld_BreaksQueue) {
  const uint16_t head = ChainBuilder(vq).readable("held").build().head;
  std::optional<DescriptorChain> held = pop_held();
  ASSERT_TRUE(held.has_value());

  vq.publish(head);  // the same head again, its chain not returned
  auto again = q.pop();

  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->has_value());
  EXPECT_TRUE(q.broken());
  EXPECT_EQ(q.broken_reason(), QueueError::HeadInFlight);
  EXPECT_EQ(q.in_flight(), 1u);
}

TEST_F(QueueLimitsTest, HeadPublishedAgainAfterUsed_Accepted) {
  const uint16_t head = ChainBuilder(vq).readable("once").build().head;
  q.add_used(std::move(*pop_held()), 0);

  vq.publish(head);  // its descriptors are still intact: a driver may hand the same chain over again
  std::optional<DescriptorChain> again = pop_held();

  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->head(), head);
  EXPECT_FALSE(q.broken());
}

TEST_F(QueueLimitsTest, InFlight_CountsPoppedChainsUntilUsed) {
  for (int i = 0; i < 3; ++i) ChainBuilder(vq).readable("x").build();
  std::optional<DescriptorChain> a = pop_held();
  std::optional<DescriptorChain> b = pop_held();
  std::optional<DescriptorChain> c = pop_held();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(q.in_flight(), 3u);

  q.add_used(std::move(*b), 0);

  EXPECT_EQ(q.in_flight(), 2u);
}

TEST_F(QueueLimitsTest, RejectedChain_IsNotInFlight) {
  ChainBuilder(vq).readable("x").indirect().indirect_len(24).build();  // a malformed indirect table

  auto r = q.pop();

  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(q.in_flight(), 0u);
  EXPECT_FALSE(q.broken());
}

TEST_F(QueueLimitsTest, ChainOf1024Descriptors_Accepted) {
  EXPECT_EQ(pop_aliased_chain(1022, 1, 1), std::nullopt);  // 1023 in the table + the INDIRECT one
}

TEST_F(QueueLimitsTest, ChainOf1025Descriptors_RejectedAsTooManyDescriptors) {
  EXPECT_EQ(pop_aliased_chain(1023, 1, 1), ChainError::TooManyDescriptors);
  EXPECT_EQ(q.in_flight(), 0u);
}

// Spec 2.7.5.2: a chain is at most 2^32 bytes; we stop at 2^32 - 1 so its length fits the used ring's len.
TEST_F(QueueLimitsTest, TotalLengthTwoToThe32_RejectedAsTooLong) {
  EXPECT_EQ(pop_aliased_chain(1022, 0x400000, 0x800000), ChainError::TooLong);  // 1022 * 4 MiB + 8 MiB = 2^32
}

TEST_F(QueueLimitsTest, TotalLengthTwoToThe32MinusOne_Accepted) {
  ASSERT_EQ(pop_aliased_chain(1022, 0x400000, 0x7fffff), std::nullopt);
  EXPECT_EQ(last_chain->readable_len(), 0xffffffffu);
  EXPECT_EQ(last_chain->reader().remaining(), 0xffffffffu);
}

}  // namespace
}  // namespace vgpu

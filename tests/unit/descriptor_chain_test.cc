// Descriptor chains: validation at pop (every ChainError), hostile layouts, and the Reader/Writer bounds.
#include "virtio/descriptor_chain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "support/fake_guest.h"
#include "support/result_check.h"
#include "virtio/queue.h"

namespace vgpu {

void PrintTo(ChainError e, std::ostream* os) {
  *os << to_string(e);
}

namespace {

using test::BuiltChain;
using test::ChainBuilder;
using test::FakeGuestMemory;
using test::FakeVirtqueue;
using test::Place;
using test::UsedElement;

std::vector<std::byte> bytes(std::string_view s) {
  const auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

// The error of a pop that rejected its chain, or nullopt when pop did not fail.
std::optional<ChainError> pop_failure(Queue& q) {
  auto r = q.pop();
  if (r) return std::nullopt;
  return r.error();
}

// Pops a chain that must be there (throws, failing the test, otherwise).
DescriptorChain pop_chain(Queue& q) {
  return std::move(q.pop().value().value());
}

std::string read_all(Reader& r) {
  std::string out(r.remaining(), '\0');
  auto ok = r.read_bytes(std::as_writable_bytes(std::span(out.data(), out.size())));
  return ok ? out : std::string("<read failed>");
}

// Memory: a 1 MiB region A, an adjacent 64 KiB region B, a gap, and a 64 KiB region C.
class ChainTest : public ::testing::Test {
 protected:
  static constexpr GuestAddress kGap{0x150000};
  static constexpr uint64_t kBoundaryAB = 0x110000;

  FakeGuestMemory guest{
      {{GuestAddress{0x10000}, 0x100000}, {GuestAddress{kBoundaryAB}, 0x10000}, {GuestAddress{0x200000}, 0x10000}}};
  FakeVirtqueue vq{guest, {.size = 16, .event_idx = false, .indirect = true, .start_idx = 0}};
  Queue q = Queue::create(guest.memory(), vq.config(), vq.avail_idx()).value();
};

// ---- well-formed chains ----

TEST_F(ChainTest, ReadableThenWritable_SegmentsMatchBuffers) {
  const BuiltChain built = ChainBuilder(vq).readable("request").writable(32).build();

  DescriptorChain chain = pop_chain(q);

  EXPECT_EQ(chain.head(), built.head);
  EXPECT_EQ(std::vector<Segment>(chain.readable().begin(), chain.readable().end()), built.readable);
  EXPECT_EQ(std::vector<Segment>(chain.writable().begin(), chain.writable().end()), built.writable);
  EXPECT_EQ(chain.readable_len(), 7u);
  EXPECT_EQ(chain.writable_len(), 32u);
}

TEST_F(ChainTest, OneByteDescriptors_ReaderJoinsThem) {
  ChainBuilder(vq).readable("shards").shard(1).build();

  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  EXPECT_EQ(chain.readable().size(), 6u);
  EXPECT_EQ(read_all(r), "shards");
}

TEST_F(ChainTest, ChainUsingWholeTable_IsNotALoop) {
  ChainBuilder(vq).readable("0123456789abcdef").shard(1).build();

  DescriptorChain chain = pop_chain(q);

  EXPECT_EQ(chain.readable().size(), 16u);
}

TEST_F(ChainTest, BufferAcrossRegionBoundary_ReaderReadsBothParts) {
  const BuiltChain built = ChainBuilder(vq).readable("straddle", Place::AcrossRegions).build();

  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  EXPECT_LT(raw(built.readable[0].addr), kBoundaryAB);
  EXPECT_GT(raw(built.readable[0].addr) + 8, kBoundaryAB);
  EXPECT_EQ(read_all(r), "straddle");
}

TEST_F(ChainTest, ZeroLengthDescriptor_AcceptedAndContributesNothing) {
  ChainBuilder(vq).readable("ab").descriptor(kGap, 0, 0).readable("c").build();

  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  EXPECT_EQ(chain.readable().size(), 2u);
  EXPECT_EQ(read_all(r), "abc");
}

TEST_F(ChainTest, IndirectTable_SegmentsComeFromTable) {
  const BuiltChain built = ChainBuilder(vq).readable("in").writable(4).indirect().build();

  DescriptorChain chain = pop_chain(q);

  EXPECT_EQ(vq.free_descriptors(), 15u);
  EXPECT_EQ(std::vector<Segment>(chain.readable().begin(), chain.readable().end()), built.readable);
  EXPECT_EQ(std::vector<Segment>(chain.writable().begin(), chain.writable().end()), built.writable);
}

TEST_F(ChainTest, DirectDescriptorsThenIndirect_Accepted) {
  // Spec 2.7.5.3.2: "The device MUST handle the case of zero or more normal chained descriptors followed by a
  // single descriptor with flags&VIRTQ_DESC_F_INDIRECT."
  ChainBuilder(vq).readable("hdr").readable("body").writable(8).indirect(1).build();

  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  EXPECT_EQ(read_all(r), "hdrbody");
  EXPECT_EQ(chain.writable_len(), 8u);
}

TEST_F(ChainTest, WriteFlagOnIndirectDescriptor_Ignored) {
  ChainBuilder(vq).readable("x").indirect().indirect_flags(VRING_DESC_F_WRITE).build();

  DescriptorChain chain = pop_chain(q);

  EXPECT_EQ(chain.readable_len(), 1u);
}

TEST_F(ChainTest, IndirectTableLargerThanQueue_Accepted) {
  ChainBuilder(vq).readable(std::string(64, 'i')).shard(1).indirect().build();

  DescriptorChain chain = pop_chain(q);

  EXPECT_EQ(chain.readable().size(), 64u);
}

TEST_F(ChainTest, GuestRewritesDescriptorAfterPop_ChainUnchanged) {
  const BuiltChain built = ChainBuilder(vq).readable("stable").build();
  DescriptorChain chain = pop_chain(q);

  vq.write_desc(built.head, vring_desc{.addr = raw(kGap), .len = 99, .flags = 0, .next = 0});

  EXPECT_EQ(chain.readable()[0], built.readable[0]);
}

// ---- every validation error ----

TEST_F(ChainTest, HeadOutOfRange_Rejected) {
  vq.publish(vq.size());

  EXPECT_EQ(pop_failure(q), ChainError::HeadOutOfRange);
}

TEST_F(ChainTest, NextOutOfRange_Rejected) {
  ChainBuilder(vq).readable("x").next(vq.size()).build();

  EXPECT_EQ(pop_failure(q), ChainError::NextOutOfRange);
}

TEST_F(ChainTest, NextOutOfRangeInsideIndirectTable_Rejected) {
  ChainBuilder(vq).readable("x").readable("y").indirect().next(2).build();

  EXPECT_EQ(pop_failure(q), ChainError::NextOutOfRange);
}

TEST_F(ChainTest, SelfLoop_RejectedAsLoop) {
  ChainBuilder(vq).readable("x").self_loop().build();

  EXPECT_EQ(pop_failure(q), ChainError::Loop);
}

TEST_F(ChainTest, LoopBackToHead_RejectedAsLoop) {
  // The first chain in a fresh queue gets descriptors 0, 1, 2; the last points back to 0.
  ChainBuilder(vq).readable("a").readable("b").readable("c").next(0).build();

  EXPECT_EQ(pop_failure(q), ChainError::Loop);
}

TEST_F(ChainTest, SelfLoopInsideIndirectTable_RejectedAsLoop) {
  ChainBuilder(vq).readable("x").readable("y").indirect().self_loop().build();

  EXPECT_EQ(pop_failure(q), ChainError::Loop);
}

TEST_F(ChainTest, UnknownFlag_Rejected) {
  ChainBuilder(vq).readable("x").flags(0x8).build();

  EXPECT_EQ(pop_failure(q), ChainError::UnknownFlags);
}

TEST_F(ChainTest, UnknownFlagInsideIndirectTable_Rejected) {
  ChainBuilder(vq).readable("x").indirect().flags(0x8000).build();

  EXPECT_EQ(pop_failure(q), ChainError::UnknownFlags);
}

TEST_F(ChainTest, UnknownFlagOnIndirectDescriptor_Rejected) {
  ChainBuilder(vq).readable("x").indirect().indirect_flags(0x10).build();

  EXPECT_EQ(pop_failure(q), ChainError::UnknownFlags);
}

TEST_F(ChainTest, ReadableAfterWritable_Rejected) {
  ChainBuilder(vq).writable(4).readable("x").build();

  EXPECT_EQ(pop_failure(q), ChainError::ReadableAfterWritable);
}

TEST_F(ChainTest, ReadableInIndirectTableAfterDirectWritable_Rejected) {
  ChainBuilder(vq).writable(4).readable("x").indirect(1).build();

  EXPECT_EQ(pop_failure(q), ChainError::ReadableAfterWritable);
}

TEST_F(ChainTest, ZeroLengthReadableAfterWritable_Rejected) {
  ChainBuilder(vq).writable(4).descriptor(kGap, 0, 0).build();

  EXPECT_EQ(pop_failure(q), ChainError::ReadableAfterWritable);
}

TEST_F(ChainTest, IndirectInsideIndirect_Rejected) {
  ChainBuilder(vq).readable("x").indirect().nested_indirect().build();

  EXPECT_EQ(pop_failure(q), ChainError::NestedIndirect);
}

TEST_F(ChainTest, IndirectWithNext_Rejected) {
  ChainBuilder(vq).readable("x").indirect().indirect_flags(VRING_DESC_F_NEXT).build();

  EXPECT_EQ(pop_failure(q), ChainError::IndirectWithNext);
}

TEST_F(ChainTest, IndirectTableLengthZero_Rejected) {
  ChainBuilder(vq).readable("x").indirect().indirect_len(0).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadIndirectTable);
}

TEST_F(ChainTest, IndirectTableLengthNotMultipleOf16_Rejected) {
  ChainBuilder(vq).readable("x").readable("y").indirect().indirect_len(24).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadIndirectTable);
}

TEST_F(ChainTest, IndirectTableOver32768Entries_Rejected) {
  ChainBuilder(vq).readable("x").indirect().indirect_len(16 * 32769).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadIndirectTable);
}

TEST_F(ChainTest, IndirectTableLongerThanItsMemory_RejectedAsBadAddress) {
  // 32768 entries claimed at the start of the 64 KiB region C: the table runs off its end.
  ChainBuilder(vq).descriptor(GuestAddress{0x200000}, 16 * 32768, VRING_DESC_F_INDIRECT).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadAddress);
}

TEST_F(ChainTest, IndirectTableInGap_RejectedAsBadAddress) {
  ChainBuilder(vq).descriptor(kGap, 16, VRING_DESC_F_INDIRECT).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadAddress);
}

TEST(ChainIndirectNegotiation, IndirectWithoutFeature_Rejected) {
  FakeGuestMemory guest({{GuestAddress{0}, 0x10000}});
  FakeVirtqueue vq(guest, {.size = 8, .event_idx = false, .indirect = false, .start_idx = 0});
  Queue q = Queue::create(guest.memory(), vq.config(), 0).value();
  ChainBuilder(vq).readable("x").indirect().build();

  auto failure = pop_failure(q);

  EXPECT_EQ(failure, ChainError::IndirectNotNegotiated);
}

// The 2^32-byte limit (TooLong) is tested in queue_limits_test.cc, whose memory holds chains that long.

TEST_F(ChainTest, HugeLengthAtBackedAddress_RejectedAsBadAddress) {
  ChainBuilder(vq).descriptor(GuestAddress{0x10000}, 0xffffffff, 0).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadAddress);
}

TEST_F(ChainTest, BufferInGap_RejectedAsBadAddress) {
  ChainBuilder(vq).readable("ok").descriptor(kGap, 4, VRING_DESC_F_WRITE).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadAddress);
}

TEST_F(ChainTest, BufferRunningOffRegionIntoGap_RejectedAsBadAddress) {
  ChainBuilder(vq).descriptor(GuestAddress{0x20fffe}, 4, 0).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadAddress);
}

TEST_F(ChainTest, BufferWrappingPastTwoToThe64_RejectedAsBadAddress) {
  ChainBuilder(vq).descriptor(GuestAddress{std::numeric_limits<uint64_t>::max() - 3}, 0x10008, 0).build();

  EXPECT_EQ(pop_failure(q), ChainError::BadAddress);
}

// ---- a rejected chain goes back to the driver ----

TEST_F(ChainTest, RejectedChain_ReturnedOnUsedRingWithLengthZero) {
  const BuiltChain bad = ChainBuilder(vq).readable("x").self_loop().build();

  auto failure = pop_failure(q);
  auto used = vq.next_used();

  EXPECT_EQ(failure, ChainError::Loop);
  EXPECT_EQ(used, (UsedElement{.id = bad.head, .len = 0}));
}

TEST_F(ChainTest, RejectedChain_NextChainStillPops) {
  ChainBuilder(vq).writable(1).readable("bad").build();
  const BuiltChain good = ChainBuilder(vq).readable("good").build();

  auto failure = pop_failure(q);
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  EXPECT_EQ(failure, ChainError::ReadableAfterWritable);
  EXPECT_EQ(chain.head(), good.head);
  EXPECT_EQ(read_all(r), "good");
}

// ---- Reader ----

TEST_F(ChainTest, ReaderOverReadableOnly_RemainingExcludesWritable) {
  ChainBuilder(vq).readable("abc").writable(100).build();

  DescriptorChain chain = pop_chain(q);

  EXPECT_EQ(chain.reader().remaining(), 3u);
  EXPECT_EQ(chain.writer().available(), 100u);
}

TEST_F(ChainTest, ReaderReadPastEnd_ShortReadAndNothingConsumed) {
  ChainBuilder(vq).readable("abc").shard(2).build();
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();
  std::array<std::byte, 4> out{};

  auto result = r.read_bytes(out);

  EXPECT_EQ(test::error_of(result), ChainError::ShortRead);
  EXPECT_EQ(r.remaining(), 3u);
  EXPECT_EQ(read_all(r), "abc");
}

TEST_F(ChainTest, ReaderPeek_DoesNotConsume) {
  ChainBuilder(vq).readable("peek").shard(1).build();
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  auto peeked = r.peek<std::array<char, 2>>();

  ASSERT_TRUE(peeked.has_value());
  EXPECT_EQ(std::string(peeked->begin(), peeked->end()), "pe");
  EXPECT_EQ(read_all(r), "peek");
}

TEST_F(ChainTest, ReaderPeekPastEnd_ShortRead) {
  ChainBuilder(vq).readable("ab").build();
  DescriptorChain chain = pop_chain(q);
  const Reader r = chain.reader();

  auto peeked = r.peek<uint32_t>();

  EXPECT_EQ(test::error_of(peeked), ChainError::ShortRead);
}

TEST_F(ChainTest, ReaderSkipThenRead_ReturnsRest) {
  ChainBuilder(vq).readable("head").readable("tail").build();
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  auto skipped = r.skip(5);

  EXPECT_TRUE(skipped.has_value());
  EXPECT_EQ(r.consumed(), 5u);
  EXPECT_EQ(read_all(r), "ail");
}

TEST_F(ChainTest, ReaderSkipPastEnd_ShortRead) {
  ChainBuilder(vq).readable("ab").build();
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  auto skipped = r.skip(3);

  EXPECT_EQ(test::error_of(skipped), ChainError::ShortRead);
  EXPECT_EQ(r.remaining(), 2u);
}

TEST_F(ChainTest, ReaderStructSpanningDescriptors_ReadsWholeValue) {
  const uint64_t value = 0x1122334455667788;
  ChainBuilder(vq).readable_value(value).shard(3).build();
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();

  auto read = r.read<uint64_t>();

  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, value);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST_F(ChainTest, ReaderAfterRegionRemoved_BadAddressAndNothingConsumed) {
  ChainBuilder(vq).readable("gone", Place::AcrossRegions).build();
  DescriptorChain chain = pop_chain(q);
  Reader r = chain.reader();
  ASSERT_TRUE(guest.memory().remove_region(guest.regions()[1]));
  std::array<std::byte, 4> out{};

  auto result = r.read_bytes(out);

  EXPECT_EQ(test::error_of(result), ChainError::BadAddress);
  EXPECT_EQ(r.remaining(), 4u);
}

TEST(ChainHandMade, SegmentWrappingPastTwoToThe64_ReaderReturnsBadAddress) {
  FakeGuestMemory guest({{GuestAddress{0}, 0x1000}});
  const std::vector<Segment> readable{{GuestAddress{std::numeric_limits<uint64_t>::max() - 7}, 16}};
  DescriptorChain chain(guest.memory(), 0, readable, {});
  Reader r = chain.reader();
  std::array<std::byte, 16> out{};

  auto result = r.read_bytes(out);

  EXPECT_EQ(test::error_of(result), ChainError::BadAddress);
}

TEST(ChainHandMade, ZeroLengthSegmentsBetweenBytes_ReaderSkipsThem) {
  FakeGuestMemory guest({{GuestAddress{0}, 0x1000}});
  guest.write(GuestAddress{0x10}, bytes("xy"));
  const std::vector<Segment> readable{{GuestAddress{0x10}, 1}, {GuestAddress{0x500}, 0}, {GuestAddress{0x11}, 1}};
  DescriptorChain chain(guest.memory(), 0, readable, {});
  Reader r = chain.reader();

  auto text = read_all(r);

  EXPECT_EQ(text, "xy");
}

// ---- Writer ----

TEST_F(ChainTest, WriterAcrossOneByteDescriptors_BytesLandInOrder) {
  const BuiltChain built = ChainBuilder(vq).writable(5).shard(1).build();
  DescriptorChain chain = pop_chain(q);
  Writer w = chain.writer();

  auto result = w.write_bytes(bytes("hello"));

  EXPECT_TRUE(result.has_value());
  EXPECT_EQ(w.written(), 5u);
  EXPECT_EQ(w.available(), 0u);
  EXPECT_EQ(guest.read(built.writable[0].addr, 5), bytes("hello"));
}

TEST_F(ChainTest, WriterAcrossRegionBoundary_BothPartsWritten) {
  const BuiltChain built = ChainBuilder(vq).readable("r").writable(6, Place::AcrossRegions).build();
  DescriptorChain chain = pop_chain(q);
  Writer w = chain.writer();

  auto result = w.write_bytes(bytes("across"));

  EXPECT_TRUE(result.has_value());
  EXPECT_EQ(guest.read(built.writable[0].addr, 6), bytes("across"));
}

TEST_F(ChainTest, WriterPastEnd_ShortWriteAndNothingWritten) {
  const BuiltChain built = ChainBuilder(vq).writable(2).writable(2).build();
  DescriptorChain chain = pop_chain(q);
  Writer w = chain.writer();

  auto result = w.write_bytes(bytes("12345"));

  EXPECT_EQ(test::error_of(result), ChainError::ShortWrite);
  EXPECT_EQ(w.written(), 0u);
  EXPECT_EQ(guest.read(built.writable[0].addr, 2), std::vector<std::byte>(2, ChainBuilder::kPoison));
}

TEST_F(ChainTest, WriterSequentialWrites_Accumulate) {
  const BuiltChain built = ChainBuilder(vq).writable(3).writable(5).build();
  DescriptorChain chain = pop_chain(q);
  Writer w = chain.writer();

  auto first = w.write<uint16_t>(0x6261);  // "ab"
  auto second = w.write_bytes(bytes("cdef"));

  EXPECT_TRUE(first.has_value());
  EXPECT_TRUE(second.has_value());
  EXPECT_EQ(w.written(), 6u);
  EXPECT_EQ(guest.read(built.writable[0].addr, 3), bytes("abc"));
  EXPECT_EQ(guest.read(built.writable[1].addr, 3), bytes("def"));
}

TEST_F(ChainTest, WriterAfterRegionRemoved_BadAddressAndNothingWritten) {
  // Arrange: the writable buffer straddles regions A and B; B goes away after pop.
  const BuiltChain built = ChainBuilder(vq).writable(8, Place::AcrossRegions).build();
  DescriptorChain chain = pop_chain(q);
  Writer w = chain.writer();
  ASSERT_TRUE(guest.memory().remove_region(guest.regions()[1]));

  // Act
  auto result = w.write_bytes(bytes("12345678"));

  // Assert: the half still in region A kept its poison.
  EXPECT_EQ(test::error_of(result), ChainError::BadAddress);
  EXPECT_EQ(w.written(), 0u);
  EXPECT_EQ(guest.read(built.writable[0].addr, 4), std::vector<std::byte>(4, ChainBuilder::kPoison));
}

TEST_F(ChainTest, WriterWithNoWritableSegments_ShortWrite) {
  ChainBuilder(vq).readable("only").build();
  DescriptorChain chain = pop_chain(q);
  Writer w = chain.writer();

  auto result = w.write<uint8_t>(1);

  EXPECT_EQ(test::error_of(result), ChainError::ShortWrite);
}

TEST(ChainErrorText, EveryError_HasDistinctMessage) {
  const std::vector<ChainError> all{ChainError::HeadOutOfRange,
                                    ChainError::NextOutOfRange,
                                    ChainError::Loop,
                                    ChainError::UnknownFlags,
                                    ChainError::ReadableAfterWritable,
                                    ChainError::NestedIndirect,
                                    ChainError::IndirectWithNext,
                                    ChainError::BadIndirectTable,
                                    ChainError::IndirectNotNegotiated,
                                    ChainError::TooLong,
                                    ChainError::TooManyDescriptors,
                                    ChainError::BadAddress,
                                    ChainError::ShortRead,
                                    ChainError::ShortWrite};
  std::vector<std::string_view> texts;
  for (ChainError e : all) texts.push_back(to_string(e));

  std::sort(texts.begin(), texts.end());
  const auto duplicate = std::adjacent_find(texts.begin(), texts.end());

  EXPECT_EQ(duplicate, texts.end());
  EXPECT_NE(to_string(static_cast<ChainError>(999)), "");
}

}  // namespace
}  // namespace vgpu

// A descriptor chain popped from a virtqueue, validated once (see Queue::pop), and the only two ways to touch
// its buffers: a Reader over the driver-readable part and a Writer over the device-writable part. Neither can
// step outside the chain nor outside guest memory.
//
//   auto chain = queue.pop();                    // Result<std::optional<DescriptorChain>, ChainError>
//   Reader r = chain->reader();
//   auto hdr = r.read<virtio_gpu_ctrl_hdr>();    // copies out of the guest once
//   Writer w = chain->writer();
//   w.write(resp);
//   queue.add_used(std::move(*chain), w.written());
//
// A Reader or Writer views the segments of the chain it came from: it must not outlive that chain (moving
// the chain is fine; its segment storage moves with it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"

namespace vgpu {

enum class ChainError {
  // Errors found while validating a chain at pop (the chain is returned to the driver unused).
  HeadOutOfRange,         // avail ring entry >= queue size
  NextOutOfRange,         // a `next` index >= table size
  Loop,                   // more descriptors than the table holds (TTL = table size)
  UnknownFlags,           // a flag bit the spec does not define
  ReadableAfterWritable,  // spec 2.7.4.2: device-writable descriptors come after all readable ones
  NestedIndirect,         // spec 2.7.5.3.1: the driver MUST NOT set INDIRECT inside an indirect table
  IndirectWithNext,       // spec 2.7.5.3.1: the driver MUST NOT set both INDIRECT and NEXT
  BadIndirectTable,       // indirect length 0, not a multiple of 16, or more than 32768 entries
  IndirectNotNegotiated,  // INDIRECT flag without VIRTIO_RING_F_INDIRECT_DESC
  TooLong,                // total length of the chain over 4 GiB - 1 (the used ring's len is 32 bits)
  TooManyDescriptors,     // more than kMaxChainDescriptors descriptors, direct and indirect together
  BadAddress,             // a descriptor's buffer (or an indirect table) is not in guest memory
  // Errors from Reader / Writer.
  ShortRead,   // the readable part has fewer bytes than asked
  ShortWrite,  // the writable part has less room than asked
};

std::string_view to_string(ChainError e);

// A contiguous guest buffer [addr, addr + len) belonging to one chain.
struct Segment {
  GuestAddress addr;
  uint32_t len;

  bool operator==(const Segment&) const = default;
};

// What a Reader or a Writer keeps: the segments it walks (and the memory they lie in), its position in them
// (segment index and byte offset inside it), and how many bytes it has passed and has left.
struct SegmentCursor {
  SegmentCursor(const GuestMemory& memory, std::span<const Segment> segs);

  const GuestMemory* mem;
  std::span<const Segment> segments;
  size_t index = 0;
  size_t offset = 0;
  size_t passed = 0;
  size_t left = 0;
};

// Sequential reader over the driver-readable segments. All-or-nothing: a read that does not fit returns
// ShortRead and consumes nothing. A guest memory failure (a region removed after pop) returns BadAddress and
// consumes nothing.
class Reader {
 public:
  Reader(const GuestMemory& mem, std::span<const Segment> segments);

  [[nodiscard]] size_t remaining() const { return cursor_.left; }
  [[nodiscard]] size_t consumed() const { return cursor_.passed; }
  Result<void, ChainError> read_bytes(std::span<std::byte> out);
  Result<void, ChainError> peek_bytes(std::span<std::byte> out) const;
  Result<void, ChainError> skip(size_t n);

  template <GuestPod T>
  Result<T, ChainError> read() {
    T out;
    auto r = read_bytes(std::as_writable_bytes(std::span<T, 1>(&out, 1)));
    if (!r) return fail(r.error());
    return out;
  }
  template <GuestPod T>
  Result<T, ChainError> peek() const {
    T out;
    auto r = peek_bytes(std::as_writable_bytes(std::span<T, 1>(&out, 1)));
    if (!r) return fail(r.error());
    return out;
  }

 private:
  SegmentCursor cursor_;
};

// Sequential writer over the device-writable segments. All-or-nothing: a write that does not fit returns
// ShortWrite and writes nothing; a write touching memory that vanished after pop returns BadAddress and writes
// nothing.
class Writer {
 public:
  Writer(const GuestMemory& mem, std::span<const Segment> segments);

  [[nodiscard]] size_t available() const { return cursor_.left; }
  [[nodiscard]] size_t written() const { return cursor_.passed; }
  Result<void, ChainError> write_bytes(std::span<const std::byte> in);

  template <GuestPod T>
  Result<void, ChainError> write(const T& value) {
    return write_bytes(std::as_bytes(std::span<const T, 1>(&value, 1)));
  }

 private:
  SegmentCursor cursor_;
};

// A validated chain. Move-only; hand it back with Queue::add_used once the request is answered. Segments are
// copies of the descriptors taken at pop, so a guest rewriting its descriptor table cannot change them.
// Zero-length descriptors are dropped at pop: they hold no bytes.
class DescriptorChain {
 public:
  DescriptorChain(const GuestMemory& mem, uint16_t head, std::vector<Segment> readable, std::vector<Segment> writable);
  DescriptorChain(DescriptorChain&&) noexcept = default;
  DescriptorChain& operator=(DescriptorChain&&) noexcept = default;
  DescriptorChain(const DescriptorChain&) = delete;
  DescriptorChain& operator=(const DescriptorChain&) = delete;
  ~DescriptorChain() = default;

  [[nodiscard]] uint16_t head() const { return head_; }
  [[nodiscard]] Reader reader() const { return Reader(*mem_, readable_); }
  [[nodiscard]] Writer writer() const { return Writer(*mem_, writable_); }
  [[nodiscard]] std::span<const Segment> readable() const { return readable_; }
  [[nodiscard]] std::span<const Segment> writable() const { return writable_; }
  // Total bytes of each part (at most 2^32 - 1 together for chains from Queue::pop).
  [[nodiscard]] uint64_t readable_len() const { return readable_len_; }
  [[nodiscard]] uint64_t writable_len() const { return writable_len_; }

 private:
  const GuestMemory* mem_;
  uint16_t head_;
  std::vector<Segment> readable_;
  std::vector<Segment> writable_;
  uint64_t readable_len_ = 0;
  uint64_t writable_len_ = 0;
};

// Where a queue's descriptor table lives and what the driver negotiated about it.
struct DescriptorTable {
  GuestAddress addr{0};
  uint16_t size = 0;                 // queue size: entries in the table
  bool indirect_negotiated = false;  // VIRTIO_RING_F_INDIRECT_DESC
};

// Walks the chain starting at `head`, validating every descriptor once (spec 2.7.5): indices, loops, flags,
// ordering, at most one indirect table, total length, and that every buffer lies in guest memory. Queue::pop
// uses it; tests and fuzzers may call it directly.
Result<DescriptorChain, ChainError> read_chain(const GuestMemory& mem, const DescriptorTable& table, uint16_t head);

}  // namespace vgpu

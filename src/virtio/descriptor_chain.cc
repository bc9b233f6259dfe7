#include "virtio/descriptor_chain.h"

// The legacy part of this header (vring_init) is C, not C++; we only need the ring structs and flags.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <optional>

#include "common/checked.h"

namespace vgpu {

// Virtio 1.x rings are little-endian (spec 2.7: "le16", "le32", "le64"); we copy fields as host integers.
static_assert(std::endian::native == std::endian::little, "add byte swaps before running on a big-endian host");
static_assert(sizeof(vring_desc) == 16 && GuestPod<vring_desc>);

std::string_view to_string(ChainError e) {
  switch (e) {
    case ChainError::HeadOutOfRange: return "avail ring entry out of range";
    case ChainError::NextOutOfRange: return "descriptor next index out of range";
    case ChainError::Loop: return "descriptor chain loops";
    case ChainError::UnknownFlags: return "descriptor has unknown flags";
    case ChainError::ReadableAfterWritable: return "readable descriptor after a writable one";
    case ChainError::NestedIndirect: return "indirect descriptor inside an indirect table";
    case ChainError::IndirectWithNext: return "descriptor has both INDIRECT and NEXT";
    case ChainError::BadIndirectTable: return "indirect table length invalid";
    case ChainError::IndirectNotNegotiated: return "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC";
    case ChainError::TooLong: return "descriptor chain longer than 4 GiB";
    case ChainError::TooManyDescriptors: return "descriptor chain of more than 1024 descriptors";
    case ChainError::BadAddress: return "descriptor buffer not in guest memory";
    case ChainError::ShortRead: return "chain has fewer readable bytes than needed";
    case ChainError::ShortWrite: return "chain has less writable room than needed";
  }
  return "unknown chain error";
}

namespace {

constexpr uint16_t kKnownFlags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT;
// The largest indirect table we accept: the largest queue size (spec 2.7: Queue Size <= 32768).
constexpr uint32_t kMaxIndirectEntries = 32768;
constexpr uint64_t kMaxChainBytes = std::numeric_limits<uint32_t>::max();
// The most descriptors one chain may have, direct and indirect together. Spec 2.7.5.3.1: "A driver MUST NOT
// create a descriptor chain longer than the Queue Size of the device"; we accept up to 1024 whatever the queue
// size, QEMU's VIRTQUEUE_MAX_SIZE, so that any chain QEMU's own devices take is taken here. Each held chain
// then costs at most 1024 segments (16 KiB), and a queue holds at most its size in chains (Queue::in_flight).
constexpr uint32_t kMaxChainDescriptors = 1024;

uint64_t total_len(std::span<const Segment> segments) {
  uint64_t sum = 0;
  for (const Segment& s : segments) sum += s.len;  // at most 2^64 / 2^32 segments: cannot wrap in practice
  return sum;
}

// Validates one chain's descriptors and collects its buffers. One instance per pop.
class ChainWalker {
 public:
  ChainWalker(const GuestMemory& mem, bool indirect_negotiated)
      : mem_(mem), indirect_negotiated_(indirect_negotiated) {}

  // Follows the chain from entry `first` of a table of `entries` descriptors at `table`. The whole table
  // must already be known to lie in guest memory.
  Result<void, ChainError> walk(GuestAddress table, uint32_t entries, uint32_t first, bool in_indirect) {
    uint32_t index = first;
    // TTL: a chain visits each entry of its table at most once, so more visits than entries is a loop
    // (spec 2.7.5.2: "this implies that loops in the descriptor chain are forbidden").
    for (uint32_t visited = 1;; ++visited) {
      if (visited > entries) return fail(ChainError::Loop);
      if (++descriptors_ > kMaxChainDescriptors) return fail(ChainError::TooManyDescriptors);
      // Plain copy: descriptors are ordered after the acquire load of avail->idx that made this chain
      // visible. Each descriptor is copied once and only the copy is checked and used (no TOCTOU).
      auto at = offset_by(table, uint64_t{index} * sizeof(vring_desc));
      if (!at) return fail(ChainError::BadAddress);
      auto desc = mem_.read<vring_desc>(*at);
      if (!desc) return fail(ChainError::BadAddress);
      auto r = visit(*desc, in_indirect);
      if (!r) return r;
      if ((desc->flags & VRING_DESC_F_NEXT) == 0) return {};
      if (desc->next >= entries) return fail(ChainError::NextOutOfRange);
      index = desc->next;
    }
  }

  DescriptorChain finish(uint16_t head) && {
    return DescriptorChain(mem_, head, std::move(readable_), std::move(writable_));
  }

 private:
  Result<void, ChainError> visit(const vring_desc& d, bool in_indirect) {
    if ((d.flags & ~kKnownFlags) != 0) return fail(ChainError::UnknownFlags);
    if ((d.flags & VRING_DESC_F_INDIRECT) != 0) return enter_indirect(d, in_indirect);
    return add_buffer(d);
  }

  Result<void, ChainError> enter_indirect(const vring_desc& d, bool in_indirect) {
    // Spec 2.7.5.3.1: "The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag unless the
    // VIRTIO_F_INDIRECT_DESC feature was negotiated. The driver MUST NOT set the VIRTQ_DESC_F_INDIRECT flag
    // within an indirect descriptor (ie. only one table per descriptor). [...] A driver MUST NOT set both
    // VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT in flags."
    if (in_indirect) return fail(ChainError::NestedIndirect);
    if (!indirect_negotiated_) return fail(ChainError::IndirectNotNegotiated);
    if ((d.flags & VRING_DESC_F_NEXT) != 0) return fail(ChainError::IndirectWithNext);
    if (d.len == 0 || d.len % sizeof(vring_desc) != 0 || d.len / sizeof(vring_desc) > kMaxIndirectEntries) {
      return fail(ChainError::BadIndirectTable);
    }
    if (!mem_.is_valid_range(GuestAddress{d.addr}, d.len)) return fail(ChainError::BadAddress);
    // Spec 2.7.5.3.2: "The device MUST ignore the write-only flag (flags&VIRTQ_DESC_F_WRITE) in the
    // descriptor that refers to an indirect table." The table's first descriptor is entry 0.
    return walk(GuestAddress{d.addr}, d.len / sizeof(vring_desc), 0, /*in_indirect=*/true);
  }

  Result<void, ChainError> add_buffer(const vring_desc& d) {
    const bool writable = (d.flags & VRING_DESC_F_WRITE) != 0;
    // Spec 2.7.4.2: "The driver MUST place any device-writable descriptor elements after any device-readable
    // descriptor elements." Checked for zero-length descriptors too: the flags still lie.
    if (!writable && saw_writable_) return fail(ChainError::ReadableAfterWritable);
    saw_writable_ = saw_writable_ || writable;
    // Spec 2.7.5.2: "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total". We stop at
    // 2^32 - 1 so that any byte count of the chain fits the used ring's 32-bit len.
    auto total = checked_add(total_, uint64_t{d.len});
    if (!total || *total > kMaxChainBytes) return fail(ChainError::TooLong);
    total_ = *total;
    if (!mem_.is_valid_range(GuestAddress{d.addr}, d.len)) return fail(ChainError::BadAddress);
    if (d.len == 0) return {};  // contributes no bytes
    (writable ? writable_ : readable_).push_back(Segment{GuestAddress{d.addr}, d.len});
    return {};
  }

  const GuestMemory& mem_;
  bool indirect_negotiated_;
  bool saw_writable_ = false;
  uint64_t total_ = 0;
  uint32_t descriptors_ = 0;  // visited so far, the indirect-table descriptor included
  std::vector<Segment> readable_;
  std::vector<Segment> writable_;
};

// The guest address of byte `offset` within segment `s`, or nullopt when it would wrap (only possible for
// hand-made chains; read_chain validated its segments).
std::optional<GuestAddress> address_in(const Segment& s, size_t offset) {
  return offset_by(s.addr, offset);
}

// Moves `c` forward by `n` bytes; the caller checked that n fits.
void advance(SegmentCursor& c, size_t n) {
  c.passed += n;
  c.left -= n;
  while (c.index < c.segments.size()) {
    const size_t left = c.segments[c.index].len - c.offset;
    if (n < left) {
      c.offset += n;
      return;
    }
    n -= left;
    ++c.index;
    c.offset = 0;
    if (n == 0) return;
  }
}

// Calls fn(GuestAddress, std::span-range [done, done + len)) for each piece of the next `n` bytes from `c`,
// stopping at the first failure. The caller checked that n fits.
template <class Fn>
Result<void, ChainError> for_each_piece(SegmentCursor c, size_t n, Fn&& fn) {
  size_t done = 0;
  while (done < n) {
    const Segment& s = c.segments[c.index];
    const size_t take = std::min<size_t>(n - done, s.len - c.offset);
    auto addr = address_in(s, c.offset);
    if (!addr) return fail(ChainError::BadAddress);
    auto r = fn(*addr, done, take);
    if (!r) return r;
    done += take;
    advance(c, take);
  }
  return {};
}

}  // namespace

SegmentCursor::SegmentCursor(const GuestMemory& memory, std::span<const Segment> segs)
    : mem(&memory), segments(segs), left(total_len(segs)) {}

// ---- Reader ----

Reader::Reader(const GuestMemory& mem, std::span<const Segment> segments) : cursor_(mem, segments) {}

Result<void, ChainError> Reader::peek_bytes(std::span<std::byte> out) const {
  if (out.size() > cursor_.left) return fail(ChainError::ShortRead);
  return for_each_piece(cursor_, out.size(), [&](GuestAddress a, size_t done, size_t len) -> Result<void, ChainError> {
    auto r = cursor_.mem->read_bytes(a, out.subspan(done, len));
    if (!r) return fail(ChainError::BadAddress);
    return {};
  });
}

Result<void, ChainError> Reader::read_bytes(std::span<std::byte> out) {
  auto r = peek_bytes(out);
  if (!r) return r;
  return skip(out.size());
}

Result<void, ChainError> Reader::skip(size_t n) {
  if (n > cursor_.left) return fail(ChainError::ShortRead);
  advance(cursor_, n);
  return {};
}

// ---- Writer ----

Writer::Writer(const GuestMemory& mem, std::span<const Segment> segments) : cursor_(mem, segments) {}

Result<void, ChainError> Writer::write_bytes(std::span<const std::byte> in) {
  if (in.size() > cursor_.left) return fail(ChainError::ShortWrite);
  // Check every piece first so that a failure (memory removed since pop) writes nothing.
  auto valid = for_each_piece(cursor_, in.size(), [&](GuestAddress a, size_t, size_t len) -> Result<void, ChainError> {
    if (!cursor_.mem->is_valid_range(a, len)) return fail(ChainError::BadAddress);
    return {};
  });
  if (!valid) return valid;
  auto r = for_each_piece(cursor_, in.size(), [&](GuestAddress a, size_t done, size_t len) -> Result<void, ChainError> {
    auto w = cursor_.mem->write_bytes(a, in.subspan(done, len));
    if (!w) return fail(ChainError::BadAddress);
    return {};
  });
  if (!r) return r;
  advance(cursor_, in.size());
  return {};
}

// ---- DescriptorChain ----

DescriptorChain::DescriptorChain(const GuestMemory& mem, uint16_t head, std::vector<Segment> readable,
                                 std::vector<Segment> writable)
    : mem_(&mem),
      head_(head),
      readable_(std::move(readable)),
      writable_(std::move(writable)),
      readable_len_(total_len(readable_)),
      writable_len_(total_len(writable_)) {}

Result<DescriptorChain, ChainError> read_chain(const GuestMemory& mem, const DescriptorTable& table, uint16_t head) {
  if (head >= table.size) return fail(ChainError::HeadOutOfRange);
  ChainWalker walker(mem, table.indirect_negotiated);
  auto r = walker.walk(table.addr, table.size, head, /*in_indirect=*/false);
  if (!r) return fail(r.error());
  return std::move(walker).finish(head);
}

}  // namespace vgpu

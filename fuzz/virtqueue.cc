// libFuzzer target for the device side of a split virtqueue (CONTRIBUTING.md practice 14): the input is decoded into
// a queue configuration and then a sequence of calls, by the driver (ring and descriptor writes, chains built
// with ChainBuilder, hostile indices) and by the device (pop, Reader/Writer, add_used, notifications), plus
// guest memory vanishing underneath. It checks the Queue's promises as it goes and traps when one breaks.
//
// Input format (little-endian; reading past the end yields zeros, and the op loop stops at the end):
//   u8 size_log2 (mod 9)   u8 features: bit0 EVENT_IDX, bit1 INDIRECT_DESC, bits 2-3 ring layout
//   u16 start index        [layout 2: u32 desc, u32 avail, u32 used, anywhere in the address span]
//   then ops: u8 opcode (mod kOpCount) followed by its arguments, see run_op().
//
// Guest memory: regions [0x10000, 0x20000), [0x20000, 0x30000), [0x30000, 0x38000) (adjacent), a gap, then
// [0x40000, 0x50000); addresses drawn from the input fall in all of them, in the gap, above, or anywhere.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/log.h"
#include "support/fake_guest.h"
#include "support/fuzz_input.h"
#include "virtio/descriptor_chain.h"
#include "virtio/queue.h"

namespace {

using vgpu::ChainError;
using vgpu::DescriptorChain;
using vgpu::GuestAddress;
using vgpu::Queue;
using vgpu::QueueConfig;
using vgpu::Reader;
using vgpu::Writer;
using vgpu::test::ChainBuilder;
using vgpu::test::FakeGuestMemory;
using vgpu::test::FakeQueueOptions;
using vgpu::test::FakeVirtqueue;
using vgpu::test::Place;
using vgpu::test::RingLayout;

constexpr uint64_t kSpan = 0x58000;        // most drawn addresses fall below this
constexpr uint64_t kTableSlots = 0x48000;  // 8 slots of 1 KiB for indirect tables
constexpr uint64_t kBoundaries[] = {0x20000, 0x30000, 0x38000};
constexpr size_t kMaxOps = 256;
constexpr size_t kMaxPops = 64;    // a looping 32768-entry indirect table costs ~1 ms per pop
constexpr size_t kMaxHeld = 32;    // chains in flight at once
constexpr size_t kMaxIo = 0x2000;  // bytes per Reader/Writer call

// A broken promise of the code under test: crash loudly so libFuzzer records the input.
void check(bool ok) {
  if (!ok) __builtin_trap();
}

using Input = vgpu::test::FuzzInput;

uint64_t take_addr(Input& in) {
  switch (in.take<uint8_t>() % 4) {
    case 0: return in.take<uint32_t>() % kSpan;
    case 1: return kTableSlots + (in.take<uint8_t>() % 8) * 0x400;
    case 2: return kBoundaries[in.take<uint8_t>() % 3] + static_cast<uint64_t>(int64_t{in.take<int8_t>()});
    default: return in.take<uint64_t>();
  }
}

uint32_t take_len(Input& in) {
  switch (in.take<uint8_t>() % 4) {
    case 0: return in.take<uint8_t>();
    case 1: return in.take<uint16_t>();
    case 2: return in.take<uint32_t>();
    default: return (in.take<uint8_t>() % 33) * 16;  // plausible indirect table lengths
  }
}

uint16_t take_flags(Input& in) {
  const auto f = in.take<uint8_t>();
  return f < 0xf0 ? static_cast<uint16_t>(f & 0x7) : in.take<uint16_t>();
}

vring_desc take_desc(Input& in, uint16_t next_modulus) {
  vring_desc d{};
  d.addr = take_addr(in);
  d.len = take_len(in);
  d.flags = take_flags(in);
  d.next = static_cast<uint16_t>(in.take<uint16_t>() % next_modulus);
  return d;
}

// A chain the device is working on, with its cursors.
struct Held {
  DescriptorChain chain;
  Reader reader;
  Writer writer;
};

Held hold(DescriptorChain chain) {
  Reader r = chain.reader();  // views chain's segment vectors, whose storage moves with the chain
  Writer w = chain.writer();
  return Held{std::move(chain), r, w};
}

class Session {
 public:
  Session(FakeGuestMemory& guest, FakeVirtqueue& vq, Queue& q) : guest_(guest), vq_(vq), q_(q) {
    q_.set_interrupt([this] { ++interrupts_; });
  }

  void run(Input& in) {
    for (size_t ops = 0; ops < kMaxOps && !in.empty(); ++ops) run_op(in);
    for (Held& h : held_) q_.add_used(std::move(h.chain), static_cast<uint32_t>(h.writer.written()));
    held_.clear();
    q_.notify_if_needed();
  }

 private:
  enum Op : uint8_t {
    kPublish,
    kSetAvailIdx,
    kWriteDesc,
    kWriteBytes,
    kWriteIndirectTable,
    kBuild,
    kPop,
    kRead,
    kPeek,
    kSkip,
    kWrite,
    kComplete,
    kNotify,
    kDisable,
    kEnable,
    kSetUsedEvent,
    kSetNoInterrupt,
    kReapUsed,
    kRemoveRegion,
    kRestoreRegion,
    kOpCount
  };

  void run_op(Input& in) {
    const uint16_t size = vq_.size();
    // Driver-side helpers throw std::runtime_error when the fake cannot do what was asked (ring memory removed,
    // out of descriptors); that ends the driver's turn, not the run. The device side never throws.
    try {
      switch (in.take<uint8_t>() % kOpCount) {
        case kPublish: vq_.publish(static_cast<uint16_t>(in.take<uint16_t>() % (size + 1u))); break;
        case kSetAvailIdx: set_avail_idx(in); break;
        case kWriteDesc: {
          const auto index = static_cast<uint16_t>(in.take<uint16_t>() % size);
          vq_.write_desc(index, take_desc(in, static_cast<uint16_t>(size + 1u)));
          break;
        }
        case kWriteBytes: {
          const uint64_t addr = take_addr(in);
          (void)guest_.memory().write_bytes(GuestAddress{addr}, in.bytes(in.take<uint8_t>()));
          break;
        }
        case kWriteIndirectTable: write_indirect_table(in); break;
        case kBuild: build(in); break;
        case kPop: pop(); break;
        case kRead: read(in, /*peek=*/false); break;
        case kPeek: read(in, /*peek=*/true); break;
        case kSkip: skip(in); break;
        case kWrite: write(in); break;
        case kComplete: complete(in); break;
        case kNotify: q_.notify_if_needed(); break;
        case kDisable: q_.disable_notifications(); break;
        case kEnable: (void)q_.enable_notifications(); break;
        case kSetUsedEvent: set_used_event(in); break;
        case kSetNoInterrupt: vq_.set_no_interrupt((in.take<uint8_t>() & 1) != 0); break;
        case kReapUsed: reap(in.take<uint8_t>() % 8); break;
        case kRemoveRegion: remove_region(in.take<uint8_t>()); break;
        case kRestoreRegion: restore_region(in.take<uint8_t>()); break;
        default: break;
      }
    } catch (const std::runtime_error&) {
    }
  }

  void set_avail_idx(Input& in) {
    const auto mode = in.take<uint8_t>();
    const uint16_t raw = in.take<uint16_t>();
    const auto idx = (mode & 1) != 0 ? raw : static_cast<uint16_t>(vq_.avail_idx() + static_cast<int8_t>(raw));
    vq_.set_avail_idx(idx);
  }

  void set_used_event(Input& in) {
    const uint16_t idx = in.take<uint16_t>();
    if (vq_.config().event_idx) vq_.set_used_event(idx);
  }

  void write_indirect_table(Input& in) {
    const uint64_t base = kTableSlots + (in.take<uint8_t>() % 8) * 0x400;
    const size_t count = in.take<uint8_t>() % 17;
    for (size_t i = 0; i < count; ++i) {
      (void)guest_.memory().write(GuestAddress{base + i * sizeof(vring_desc)}, take_desc(in, 18));
    }
  }

  void build(Input& in) {
    const auto opts = in.take<uint8_t>();
    const size_t readable = in.take<uint8_t>();
    const auto writable = in.take<uint8_t>();
    const Place place = (opts & 4) != 0 ? Place::AcrossRegions : Place::Normal;
    ChainBuilder b(vq_);
    b.readable(in.bytes(readable), readable >= 2 ? place : Place::Normal).writable(writable);
    if ((opts & 1) != 0) b.indirect((opts >> 5) & 1);
    if ((opts & 2) != 0) b.shard(1 + ((opts >> 6) & 3));
    if ((opts & 8) != 0) b.self_loop();
    if ((opts & 16) != 0 && (opts & 1) != 0) b.nested_indirect();
    b.build();
  }

  void pop() {
    if (pops_++ >= kMaxPops) return;
    const uint16_t before = q_.next_avail();
    auto r = q_.pop();
    // Promise: a rejected chain consumed exactly one avail entry; so did a popped one; none when empty.
    if (!r || *r) check(static_cast<uint16_t>(q_.next_avail() - before) == 1);
    if (!r || !*r) return;
    DescriptorChain& chain = **r;
    check(chain.head() < vq_.size());
    // Promise: every segment of a validated chain is non-empty and in guest memory, the total fits 32 bits.
    uint64_t total = 0;
    for (const auto& part : {chain.readable(), chain.writable()}) {
      for (const vgpu::Segment& s : part) {
        check(s.len != 0 && guest_.memory().is_valid_range(s.addr, s.len));
        total += s.len;
      }
    }
    check(total <= UINT32_MAX);
    if (held_.size() >= kMaxHeld) {
      q_.add_used(std::move(chain), 0);
      return;
    }
    held_.push_back(hold(std::move(chain)));
  }

  Held* pick(Input& in) {
    const auto i = in.take<uint8_t>();
    return held_.empty() ? nullptr : &held_[i % held_.size()];
  }

  void read(Input& in, bool peek) {
    Held* h = pick(in);
    const size_t n = in.take<uint16_t>() % kMaxIo;
    if (h == nullptr) return;
    std::vector<std::byte> out(n);
    const size_t before = h->reader.remaining();
    auto r = peek ? h->reader.peek_bytes(out) : h->reader.read_bytes(out);
    // Promise: all or nothing; ShortRead exactly when asking for more than remains; BadAddress only after
    // memory was removed.
    const bool fits = n <= before;
    check(fits ? (r || (removed_ && r.error() == ChainError::BadAddress)) : (!r && r.error() == ChainError::ShortRead));
    check(h->reader.remaining() == (r && !peek ? before - n : before));
    check(h->reader.remaining() + h->reader.consumed() == h->chain.readable_len());
  }

  void skip(Input& in) {
    Held* h = pick(in);
    const size_t n = in.take<uint16_t>();
    if (h == nullptr) return;
    const size_t before = h->reader.remaining();
    auto r = h->reader.skip(n);
    check(r.has_value() == (n <= before));
    check(h->reader.remaining() + h->reader.consumed() == h->chain.readable_len());
  }

  void write(Input& in) {
    Held* h = pick(in);
    const size_t n = in.take<uint16_t>() % kMaxIo;
    const auto fill = in.take<uint8_t>();
    if (h == nullptr) return;
    const size_t before = h->writer.written();
    auto r = h->writer.write_bytes(std::vector<std::byte>(n, std::byte{fill}));
    check(r || r.error() == ChainError::ShortWrite || (removed_ && r.error() == ChainError::BadAddress));
    check(h->writer.written() == (r ? before + n : before));
    check(h->writer.written() + h->writer.available() == h->chain.writable_len());
  }

  void complete(Input& in) {
    const auto i = in.take<uint8_t>();
    const auto written = in.take<uint32_t>();
    if (held_.empty()) return;
    const size_t index = i % held_.size();
    const uint16_t used_before = q_.next_used();
    q_.add_used(std::move(held_[index].chain), written);
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(index));
    check(q_.broken() || static_cast<uint16_t>(q_.next_used() - used_before) == 1);
  }

  void reap(size_t count) {
    while (count-- > 0 && vq_.next_used().has_value()) continue;
  }

  void remove_region(uint8_t i) {
    const auto& regions = guest_.regions();
    (void)guest_.memory().remove_region(regions[i % regions.size()]);
    removed_ = true;
  }

  void restore_region(uint8_t i) {
    const auto& regions = guest_.regions();
    auto mapped = vgpu::MappedRegion::map(regions[i % regions.size()], guest_.fd());
    if (mapped) (void)guest_.memory().add_region(std::move(*mapped));
  }

  FakeGuestMemory& guest_;
  FakeVirtqueue& vq_;
  Queue& q_;
  std::vector<Held> held_;
  size_t pops_ = 0;
  size_t interrupts_ = 0;
  bool removed_ = false;  // some region was removed at some point: memory errors are now legitimate
};

uint64_t used_ring_bytes(uint16_t size, bool event_idx) {
  return 4 + 8 * uint64_t{size} + (event_idx ? 2 : 0);
}

// Ring layout 1: each ring touches a region boundary (desc and avail straddle one, used ends at one).
RingLayout boundary_layout(uint16_t size, bool event_idx) {
  return RingLayout{.desc = GuestAddress{0x20000 - 16 * ((size + 1u) / 2)},
                    .avail = GuestAddress{0x30000 - 2 * (size / 2u) - 4},
                    .used = GuestAddress{(0x38000 - used_ring_bytes(size, event_idx)) & ~uint64_t{3}}};
}

int run(Input& in) {
  FakeGuestMemory guest({{GuestAddress{0x10000}, 0x10000},
                         {GuestAddress{0x20000}, 0x10000},
                         {GuestAddress{0x30000}, 0x8000},
                         {GuestAddress{0x40000}, 0x10000}});
  const auto size = static_cast<uint16_t>(1u << (in.take<uint8_t>() % 9));
  const auto features = in.take<uint8_t>();
  const FakeQueueOptions options{.size = size,
                                 .event_idx = (features & 1) != 0,
                                 .indirect = (features & 2) != 0,
                                 .start_idx = in.take<uint16_t>()};
  const int layout_mode = (features >> 2) & 3;
  RingLayout layout = boundary_layout(size, options.event_idx);
  if (layout_mode >= 2) {
    layout = RingLayout{.desc = GuestAddress{in.take<uint32_t>() % kSpan},
                        .avail = GuestAddress{in.take<uint32_t>() % kSpan},
                        .used = GuestAddress{in.take<uint32_t>() % kSpan}};
    QueueConfig config{.size = size,
                       .desc = layout.desc,
                       .avail = layout.avail,
                       .used = layout.used,
                       .event_idx = options.event_idx,
                       .indirect = options.indirect};
    if (!Queue::create(guest.memory(), config, options.start_idx)) return 0;  // create's checks were the test
  }
  try {
    FakeVirtqueue vq = layout_mode == 0 ? FakeVirtqueue(guest, options) : FakeVirtqueue(guest, options, layout);
    auto q = Queue::create(guest.memory(), vq.config(), options.start_idx);
    check(q.has_value());
    Session session(guest, vq, *q);
    session.run(in);
  } catch (const std::runtime_error&) {
    // The fake could not lay the rings out (overlapping or unbacked): not a finding.
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  vgpu::set_log_level("off");  // rejected chains and broken queues are expected here; logging them is noise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  return run(in);
}

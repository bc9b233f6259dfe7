// The guest side of a virtqueue, for unit tests, fuzzers and benchmarks (CONTRIBUTING.md practice 12):
//
//  - FakeGuestMemory: guest RAM in one memfd, cut into regions at chosen guest addresses (gaps allowed) and
//    mapped through MappedRegion::map, so the real mmap path (and mmap_offset) is exercised. Hands out a
//    GuestMemory& for the code under test, plus a small allocator for placing rings and buffers.
//  - FakeVirtqueue: a driver. Lays out the descriptor table, avail ring and used ring in fake memory, publishes
//    chains (plain ring writes, no kicks), reads used entries back with next_used(), and drives notification
//    suppression (used_event, VRING_AVAIL_F_NO_INTERRUPT) and reads the device's avail_event.
//  - ChainBuilder: builds a chain and publishes it, including hostile layouts.
//
// Usage (everything is in namespace vgpu::test):
//
//   FakeGuestMemory guest({{GuestAddress{0}, 1 << 20}});          // one 1 MiB region at guest address 0
//   FakeVirtqueue vq(guest, {.size = 16, .event_idx = true});
//   auto q = Queue::create(guest.memory(), vq.config(), vq.avail_idx());
//   BuiltChain built = ChainBuilder(vq).readable("ping").writable(64).build();   // on the avail ring now
//   auto chain = q->pop();                                         // the device side
//   Writer w = (*chain)->writer();
//   w.write_bytes(...);
//   q->add_used(std::move(**chain), w.written());
//   std::optional<UsedElement> used = vq.next_used();              // {.id = built.head, .len = w.written()}
//   auto reply = guest.read(built.writable[0].addr, used->len);
//
// Hostile layouts (each is one builder call; they combine; finish with .build()):
//
//   ChainBuilder(vq).readable(req).shard(1)                     // every buffer split into 1-byte descriptors
//   ChainBuilder(vq).readable(req, Place::AcrossRegions)        // the buffer straddles a region boundary
//   ChainBuilder(vq).writable(4).readable("x")                  // readable after writable: order is kept as given
//   ChainBuilder(vq).readable("x").self_loop()                  // last descriptor's next points to itself
//   ChainBuilder(vq).readable("x").next(vq.size())              // out-of-range next on the last descriptor
//   ChainBuilder(vq).readable("x").flags(0x80)                  // extra (unknown) flag bits on the last descriptor
//   ChainBuilder(vq).readable("x").indirect()                   // descriptors in an indirect table
//   ChainBuilder(vq).readable("x").indirect().nested_indirect() // an indirect table inside the indirect table
//   ChainBuilder(vq).readable("x").indirect().indirect_len(0)   // lie about the indirect table's length
//   ChainBuilder(vq).descriptor(addr, 0xffffffff, 0)            // any raw descriptor (huge length, bad address)
//
// Failures of the fake itself (out of fake memory or descriptors, a bad layout) are test bugs and throw
// std::runtime_error; nothing here aborts.
#pragma once

// The legacy part of <linux/virtio_ring.h> (vring_init) is C, not C++; we only need the ring structs and flags.
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"
#include "virtio/queue.h"

namespace vgpu::test {

// One region of fake guest RAM: [guest, guest + size).
struct FakeRegion {
  GuestAddress guest{0};
  uint64_t size = 0;
};

// Guest RAM backed by one memfd. Regions live at distinct, non-page-aligned file offsets (so a wrong
// mmap_offset reads the wrong bytes) and at synthetic frontend addresses (kFrontendBase + file offset).
// Not copyable or movable: queues keep a pointer to memory().
class FakeGuestMemory {
 public:
  static constexpr uint64_t kFrontendBase = 0x7000'0000'0000;

  explicit FakeGuestMemory(const std::vector<FakeRegion>& regions);
  FakeGuestMemory(const FakeGuestMemory&) = delete;
  FakeGuestMemory& operator=(const FakeGuestMemory&) = delete;

  // What the code under test sees. Tests may add or remove regions through it.
  [[nodiscard]] GuestMemory& memory() { return memory_; }
  [[nodiscard]] const GuestMemory& memory() const { return memory_; }
  // The regions as mapped (what a frontend would send in SET_MEM_TABLE), sorted by guest address.
  [[nodiscard]] const std::vector<RegionDesc>& regions() const { return regions_; }
  // The memfd holding all regions (region i starts at regions()[i].mmap_offset).
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] std::optional<FrontendVirtAddr> to_frontend(GuestAddress a) const;

  // First-fit allocation of `size` bytes aligned to `align` (a power of two) inside one region. A zero size
  // still reserves one byte, so every allocation has a distinct address. Throws when nothing fits.
  GuestAddress alloc(uint64_t size, uint64_t align = 8);
  // Reserves exactly [addr, addr + size) (it may span adjacent regions). Throws if taken or not backed.
  GuestAddress alloc_at(GuestAddress addr, uint64_t size);
  // Reserves `size` (>= 2) bytes straddling the first free boundary between two adjacent regions.
  GuestAddress alloc_across_regions(uint64_t size);
  // Releases an allocation made by one of the alloc functions; unknown addresses are ignored.
  void free(GuestAddress addr);

  // Copies through GuestMemory; throw if the range is not backed.
  void write(GuestAddress a, std::span<const std::byte> data) const;
  [[nodiscard]] std::vector<std::byte> read(GuestAddress a, size_t len) const;
  template <GuestPod T>
  void write_value(GuestAddress a, const T& value) const {
    write(a, std::as_bytes(std::span<const T, 1>(&value, 1)));
  }
  template <GuestPod T>
  [[nodiscard]] T read_value(GuestAddress a) const {
    T out;
    auto bytes = read(a, sizeof(T));
    std::memcpy(&out, bytes.data(), sizeof(T));
    return out;
  }

 private:
  [[nodiscard]] bool is_free(uint64_t begin, uint64_t end) const;

  UniqueFd fd_;
  GuestMemory memory_;
  std::vector<RegionDesc> regions_;
  std::map<uint64_t, uint64_t> allocated_;  // guest address of an allocation -> its end (exclusive)
};

struct FakeQueueOptions {
  uint16_t size = 16;
  bool event_idx = false;  // VIRTIO_RING_F_EVENT_IDX: reserves used_event / avail_event, set in config()
  bool indirect = false;   // VIRTIO_RING_F_INDIRECT_DESC, set in config()
  uint16_t start_idx = 0;  // initial avail->idx and used->idx (to test 16-bit wrap-around)
};

// Where the three rings live. FakeVirtqueue allocates them unless given one.
struct RingLayout {
  GuestAddress desc{0};
  GuestAddress avail{0};
  GuestAddress used{0};
};

struct UsedElement {
  uint32_t id = 0;
  uint32_t len = 0;
  bool operator==(const UsedElement&) const = default;
};

// The driver side of a split virtqueue. All ring accesses go through GuestMemory; indices are written with
// release and read with acquire, as a real driver's barriers would.
class FakeVirtqueue {
 public:
  FakeVirtqueue(FakeGuestMemory& guest, const FakeQueueOptions& options);
  // Rings at caller-chosen addresses (reserved with alloc_at, so they must be backed and free; zeroed here).
  FakeVirtqueue(FakeGuestMemory& guest, const FakeQueueOptions& options, const RingLayout& layout);
  FakeVirtqueue(const FakeVirtqueue&) = delete;
  FakeVirtqueue& operator=(const FakeVirtqueue&) = delete;
  // Frees the rings it allocated and the buffers of chains still in flight. Must not outlive `guest`.
  ~FakeVirtqueue();

  // What the device needs for Queue::create.
  [[nodiscard]] QueueConfig config() const;
  [[nodiscard]] uint16_t size() const { return options_.size; }
  [[nodiscard]] const RingLayout& layout() const { return layout_; }
  [[nodiscard]] FakeGuestMemory& guest() const { return *guest_; }

  // Descriptor table.
  void write_desc(uint16_t index, const vring_desc& desc) const;
  [[nodiscard]] vring_desc read_desc(uint16_t index) const;
  // Takes `n` free descriptor indices (throws if fewer are free); ChainBuilder uses this.
  std::vector<uint16_t> take_descriptors(size_t n);
  [[nodiscard]] size_t free_descriptors() const { return free_.size(); }
  // Records what a chain owns, so that next_used() returning `head` frees its descriptors and buffers.
  void track(uint16_t head, std::vector<uint16_t> descriptors, std::vector<GuestAddress> buffers);

  // Avail ring: writes `head` into the next slot, then publishes avail->idx + 1 (release).
  void publish(uint16_t head);
  // Writes avail->idx directly (release), e.g. to jump it past the queue size.
  void set_avail_idx(uint16_t idx);
  [[nodiscard]] uint16_t avail_idx() const { return avail_idx_; }

  // Used ring: the next used element the device published since the last call, if any. Frees what a tracked
  // chain owned.
  std::optional<UsedElement> next_used();
  [[nodiscard]] uint16_t used_idx() const;     // used->idx as the device last wrote it (acquire)
  [[nodiscard]] uint16_t used_flags() const;   // VRING_USED_F_NO_NOTIFY or 0
  [[nodiscard]] uint16_t avail_event() const;  // needs event_idx

  // Used buffer notification suppression (spec 2.7.7).
  void set_used_event(uint16_t idx) const;  // needs event_idx
  void set_no_interrupt(bool on) const;     // VRING_AVAIL_F_NO_INTERRUPT in avail->flags

 private:
  struct Owned {
    std::vector<uint16_t> descriptors;
    std::vector<GuestAddress> buffers;
  };
  FakeVirtqueue(FakeGuestMemory& guest, const FakeQueueOptions& options, const RingLayout& layout, bool reserve);
  void init_rings() const;
  [[nodiscard]] GuestAddress desc_addr(uint16_t index) const;

  FakeGuestMemory* guest_;
  FakeQueueOptions options_;
  RingLayout layout_;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  std::vector<uint16_t> free_;  // free descriptor indices, taken from the back
  std::map<uint16_t, Owned> owned_;
};

// Where ChainBuilder puts a buffer.
enum class Place {
  Normal,         // inside one region
  AcrossRegions,  // straddling the boundary between two adjacent regions
};

// What build() made: the head, and the buffers as the caller asked for them (before sharding), in order.
struct BuiltChain {
  uint16_t head = 0;
  std::vector<Segment> readable;
  std::vector<Segment> writable;
};

// Builds one chain in a FakeVirtqueue. Buffers become descriptors in the order they are added; the layout
// options apply at build(). See the top of this file for examples.
class ChainBuilder {
 public:
  // Writable buffers are filled with this byte, so tests can see what the device did not write.
  static constexpr std::byte kPoison{0xa5};

  explicit ChainBuilder(FakeVirtqueue& q) : q_(&q) {}

  ChainBuilder& readable(std::span<const std::byte> data, Place place = Place::Normal);
  ChainBuilder& readable(std::string_view text, Place place = Place::Normal);
  template <GuestPod T>
  ChainBuilder& readable_value(const T& value, Place place = Place::Normal) {
    return readable(std::as_bytes(std::span<const T, 1>(&value, 1)), place);
  }
  ChainBuilder& writable(uint32_t len, Place place = Place::Normal);
  // A raw descriptor, used as given (the builder still adds NEXT and `next` to link it, unless it is last).
  ChainBuilder& descriptor(GuestAddress addr, uint32_t len, uint16_t flags);

  // Splits every buffer into descriptors of at most `bytes` bytes (1: one descriptor per byte).
  ChainBuilder& shard(uint32_t bytes) { return set(shard_, bytes); }
  // Puts the descriptors after the first `direct` ones into an indirect table (spec 2.7.5.3.2: zero or more
  // direct descriptors followed by one INDIRECT descriptor).
  ChainBuilder& indirect(size_t direct = 0) { return set(indirect_direct_, direct); }
  // Hostile: the indirect table holds a single INDIRECT descriptor pointing at a second table with the
  // descriptors. Needs indirect().
  ChainBuilder& nested_indirect() { return set(nested_, true); }
  // Hostile: the INDIRECT descriptor's len (instead of 16 * entries) and extra flags (e.g. NEXT).
  ChainBuilder& indirect_len(uint32_t len) { return set(indirect_len_, len); }
  ChainBuilder& indirect_flags(uint16_t flags) { return set(indirect_flags_, flags); }
  // Hostile, on the last descriptor (inside the indirect table when there is one): NEXT pointing at itself,
  // NEXT pointing at `index`, or extra flag bits.
  ChainBuilder& self_loop() { return set(self_loop_, true); }
  ChainBuilder& next(uint16_t index) { return set(next_, index); }
  ChainBuilder& flags(uint16_t extra) { return set(extra_flags_, extra); }

  // Writes buffers, tables and descriptors, publishes the head on the avail ring and returns what it built.
  BuiltChain build();
  // The same without publishing (publish it later with FakeVirtqueue::publish).
  BuiltChain build_unpublished();

 private:
  struct Piece {
    std::vector<std::byte> data;  // readable contents
    uint32_t len = 0;
    bool writable = false;
    Place place = Place::Normal;
    std::optional<vring_desc> raw;  // a raw descriptor instead of a buffer
  };
  struct Plan;
  // One layout option set; the builder back, for chaining.
  template <class Field, class Value>
  ChainBuilder& set(Field& field, Value value) {
    field = value;
    return *this;
  }
  void place_buffers(Plan& plan) const;
  void write_tables(Plan& plan) const;

  FakeVirtqueue* q_;
  std::vector<Piece> pieces_;
  uint32_t shard_ = 0;
  std::optional<size_t> indirect_direct_;
  bool nested_ = false;
  std::optional<uint32_t> indirect_len_;
  uint16_t indirect_flags_ = 0;
  bool self_loop_ = false;
  std::optional<uint16_t> next_;
  uint16_t extra_flags_ = 0;
};

}  // namespace vgpu::test

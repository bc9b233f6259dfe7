#include "support/fake_guest.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

#include "common/checked.h"

namespace vgpu::test {

namespace {

[[noreturn]] void fake_error(const std::string& what) {
  throw std::runtime_error("fake guest: " + what);
}

[[noreturn]] void memory_error(const std::string& what, MemoryError e) {
  fake_error(what + ": " + std::string(to_string(e)));
}

std::optional<uint64_t> align_up(uint64_t value, uint64_t align) {
  auto bumped = checked_add(value, align - 1);
  if (!bumped) return std::nullopt;
  return *bumped & ~(align - 1);
}

GuestAddress at(GuestAddress base, uint64_t offset) {
  auto a = offset_by(base, offset);
  if (!a) fake_error("address wraps");
  return *a;
}

// File layout: region i starts kFileGap bytes after the page following region i-1, so mmap_offset is never
// page aligned and never zero.
constexpr uint64_t kPage = 4096;
constexpr uint64_t kFileGap = 0x300;

constexpr uint64_t kRingHeader = 4;  // le16 flags, le16 idx
// Ring sizes (spec 2.7.6, 2.7.8): header, entries, and the event-index field when EVENT_IDX is on.
uint64_t avail_bytes(uint16_t size, bool event_idx) {
  return kRingHeader + 2 * uint64_t{size} + (event_idx ? 2 : 0);
}
uint64_t used_bytes(uint16_t size, bool event_idx) {
  return kRingHeader + sizeof(vring_used_elem) * uint64_t{size} + (event_idx ? 2 : 0);
}

}  // namespace

// ---- FakeGuestMemory ----

FakeGuestMemory::FakeGuestMemory(const std::vector<FakeRegion>& regions) {
  fd_.reset(::memfd_create("vgpu-fake-guest", MFD_CLOEXEC));
  if (!fd_) fake_error("memfd_create failed");
  uint64_t file_end = 0;
  for (const FakeRegion& r : regions) {
    if (r.size == 0 || !checked_add(raw(r.guest), r.size)) fake_error("region empty or ending at 2^64");
    const uint64_t offset = *align_up(file_end, kPage) + kFileGap;
    regions_.push_back(RegionDesc{.guest_phys = r.guest,
                                  .size = r.size,
                                  .frontend_virt = FrontendVirtAddr{kFrontendBase + offset},
                                  .mmap_offset = offset});
    file_end = offset + r.size;
  }
  if (::ftruncate(fd_.get(), static_cast<off_t>(file_end)) != 0) fake_error("ftruncate failed");
  for (const RegionDesc& d : regions_) {
    auto mapped = MappedRegion::map(d, fd_.get());
    if (!mapped) memory_error("map", mapped.error());
    auto added = memory_.add_region(std::move(*mapped));
    if (!added) memory_error("add_region", added.error());
  }
  std::sort(regions_.begin(), regions_.end(),
            [](const RegionDesc& a, const RegionDesc& b) { return raw(a.guest_phys) < raw(b.guest_phys); });
}

std::optional<FrontendVirtAddr> FakeGuestMemory::to_frontend(GuestAddress a) const {
  for (const RegionDesc& d : regions_) {
    if (raw(a) >= raw(d.guest_phys) && raw(a) - raw(d.guest_phys) < d.size) {
      return FrontendVirtAddr{raw(d.frontend_virt) + (raw(a) - raw(d.guest_phys))};
    }
  }
  return std::nullopt;
}

bool FakeGuestMemory::is_free(uint64_t begin, uint64_t end) const {
  auto it = allocated_.upper_bound(begin);
  if (it != allocated_.begin() && std::prev(it)->second > begin) return false;
  return it == allocated_.end() || it->first >= end;
}

GuestAddress FakeGuestMemory::alloc(uint64_t size, uint64_t align) {
  if (align == 0 || (align & (align - 1)) != 0) fake_error("alignment must be a power of two");
  size = std::max<uint64_t>(size, 1);
  for (const RegionDesc& d : regions_) {
    const uint64_t region_end = raw(d.guest_phys) + d.size;  // no wrap: checked in the constructor
    std::optional<uint64_t> begin = align_up(raw(d.guest_phys), align);
    while (begin && *begin < region_end && size <= region_end - *begin) {
      const uint64_t end = *begin + size;
      auto it = allocated_.upper_bound(*begin);
      if (it != allocated_.begin() && std::prev(it)->second > *begin) {
        begin = align_up(std::prev(it)->second, align);
      } else if (it != allocated_.end() && it->first < end) {
        begin = align_up(it->second, align);
      } else {
        allocated_.emplace(*begin, end);
        return GuestAddress{*begin};
      }
    }
  }
  fake_error("out of fake guest memory for " + std::to_string(size) + " bytes");
}

GuestAddress FakeGuestMemory::alloc_at(GuestAddress addr, uint64_t size) {
  size = std::max<uint64_t>(size, 1);
  auto end = checked_add(raw(addr), size);
  if (!end || !memory_.is_valid_range(addr, size)) fake_error("alloc_at: range not backed");
  if (!is_free(raw(addr), *end)) fake_error("alloc_at: range already allocated");
  allocated_.emplace(raw(addr), *end);
  return addr;
}

GuestAddress FakeGuestMemory::alloc_across_regions(uint64_t size) {
  if (size < 2) fake_error("a buffer across regions needs at least 2 bytes");
  const uint64_t before = size / 2;
  for (size_t i = 0; i + 1 < regions_.size(); ++i) {
    const RegionDesc& lo = regions_[i];
    const RegionDesc& hi = regions_[i + 1];
    const uint64_t boundary = raw(lo.guest_phys) + lo.size;
    if (boundary != raw(hi.guest_phys) || before > lo.size || size - before > hi.size) continue;
    if (!is_free(boundary - before, boundary - before + size)) continue;
    allocated_.emplace(boundary - before, boundary - before + size);
    return GuestAddress{boundary - before};
  }
  fake_error("no free boundary between adjacent regions");
}

void FakeGuestMemory::free(GuestAddress addr) {
  allocated_.erase(raw(addr));
}

void FakeGuestMemory::write(GuestAddress a, std::span<const std::byte> data) const {
  auto r = memory_.write_bytes(a, data);
  if (!r) memory_error("write", r.error());
}

std::vector<std::byte> FakeGuestMemory::read(GuestAddress a, size_t len) const {
  std::vector<std::byte> out(len);
  auto r = memory_.read_bytes(a, out);
  if (!r) memory_error("read", r.error());
  return out;
}

// ---- FakeVirtqueue ----

FakeVirtqueue::FakeVirtqueue(FakeGuestMemory& guest, const FakeQueueOptions& options)
    : FakeVirtqueue(guest, options,
                    RingLayout{.desc = guest.alloc(sizeof(vring_desc) * uint64_t{options.size}, 16),
                               .avail = guest.alloc(avail_bytes(options.size, options.event_idx), 2),
                               .used = guest.alloc(used_bytes(options.size, options.event_idx), 4)},
                    /*reserve=*/false) {}

FakeVirtqueue::FakeVirtqueue(FakeGuestMemory& guest, const FakeQueueOptions& options, const RingLayout& layout)
    : FakeVirtqueue(guest, options, layout, /*reserve=*/true) {}

FakeVirtqueue::FakeVirtqueue(FakeGuestMemory& guest, const FakeQueueOptions& options, const RingLayout& layout,
                             bool reserve)
    : guest_(&guest), options_(options), layout_(layout), avail_idx_(options.start_idx), last_used_(options.start_idx) {
  if (options.size == 0) fake_error("queue size 0");
  if (reserve) {
    guest.alloc_at(layout.desc, sizeof(vring_desc) * uint64_t{options.size});
    guest.alloc_at(layout.avail, avail_bytes(options.size, options.event_idx));
    guest.alloc_at(layout.used, used_bytes(options.size, options.event_idx));
  }
  free_.reserve(options.size);
  for (uint32_t i = options.size; i > 0; --i) free_.push_back(static_cast<uint16_t>(i - 1));
  init_rings();
}

FakeVirtqueue::~FakeVirtqueue() {
  for (const auto& [head, owned] : owned_) {
    for (GuestAddress b : owned.buffers) guest_->free(b);
  }
  guest_->free(layout_.desc);
  guest_->free(layout_.avail);
  guest_->free(layout_.used);
}

void FakeVirtqueue::init_rings() const {
  const auto zero = [&](GuestAddress a, uint64_t n) { guest_->write(a, std::vector<std::byte>(n)); };
  zero(layout_.desc, sizeof(vring_desc) * uint64_t{options_.size});
  zero(layout_.avail, avail_bytes(options_.size, options_.event_idx));
  zero(layout_.used, used_bytes(options_.size, options_.event_idx));
  guest_->write_value<uint16_t>(at(layout_.avail, 2), options_.start_idx);
  guest_->write_value<uint16_t>(at(layout_.used, 2), options_.start_idx);
}

QueueConfig FakeVirtqueue::config() const {
  return QueueConfig{.size = options_.size,
                     .desc = layout_.desc,
                     .avail = layout_.avail,
                     .used = layout_.used,
                     .event_idx = options_.event_idx,
                     .indirect = options_.indirect};
}

GuestAddress FakeVirtqueue::desc_addr(uint16_t index) const {
  if (index >= options_.size) fake_error("descriptor index out of range");
  return at(layout_.desc, sizeof(vring_desc) * uint64_t{index});
}

void FakeVirtqueue::write_desc(uint16_t index, const vring_desc& desc) const {
  guest_->write_value(desc_addr(index), desc);
}

vring_desc FakeVirtqueue::read_desc(uint16_t index) const {
  return guest_->read_value<vring_desc>(desc_addr(index));
}

std::vector<uint16_t> FakeVirtqueue::take_descriptors(size_t n) {
  if (n > free_.size()) fake_error("out of descriptors: need " + std::to_string(n));
  std::vector<uint16_t> out(free_.rbegin(), free_.rbegin() + static_cast<std::ptrdiff_t>(n));
  free_.resize(free_.size() - n);
  return out;
}

void FakeVirtqueue::track(uint16_t head, std::vector<uint16_t> descriptors, std::vector<GuestAddress> buffers) {
  if (owned_.contains(head)) fake_error("head already in flight");
  owned_.emplace(head, Owned{std::move(descriptors), std::move(buffers)});
}

void FakeVirtqueue::publish(uint16_t head) {
  const uint64_t slot = avail_idx_ % options_.size;
  guest_->write_value<uint16_t>(at(layout_.avail, kRingHeader + 2 * slot), head);
  set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
}

void FakeVirtqueue::set_avail_idx(uint16_t idx) {
  avail_idx_ = idx;
  // Release: the ring entry and descriptors written before must be visible first (a driver's virtio_wmb).
  auto r = guest_->memory().store_u16(at(layout_.avail, 2), idx, std::memory_order_release);
  if (!r) memory_error("store avail->idx", r.error());
}

std::optional<UsedElement> FakeVirtqueue::next_used() {
  if (used_idx() == last_used_) return std::nullopt;
  const uint64_t slot = last_used_ % options_.size;
  const auto elem = guest_->read_value<vring_used_elem>(at(layout_.used, kRingHeader + sizeof(vring_used_elem) * slot));
  ++last_used_;
  const UsedElement out{.id = elem.id, .len = elem.len};
  auto it = elem.id <= UINT16_MAX ? owned_.find(static_cast<uint16_t>(elem.id)) : owned_.end();
  if (it != owned_.end()) {
    free_.insert(free_.end(), it->second.descriptors.rbegin(), it->second.descriptors.rend());
    for (GuestAddress b : it->second.buffers) guest_->free(b);
    owned_.erase(it);
  }
  return out;
}

uint16_t FakeVirtqueue::used_idx() const {
  // Acquire: the used elements before this index must be visible (a driver's virtio_rmb).
  auto r = guest_->memory().load_u16(at(layout_.used, 2), std::memory_order_acquire);
  if (!r) memory_error("load used->idx", r.error());
  return *r;
}

uint16_t FakeVirtqueue::used_flags() const {
  auto r = guest_->memory().load_u16(layout_.used, std::memory_order_acquire);
  if (!r) memory_error("load used->flags", r.error());
  return *r;
}

uint16_t FakeVirtqueue::avail_event() const {
  if (!options_.event_idx) fake_error("avail_event needs event_idx");
  auto r = guest_->memory().load_u16(at(layout_.used, kRingHeader + sizeof(vring_used_elem) * options_.size),
                                     std::memory_order_acquire);
  if (!r) memory_error("load avail_event", r.error());
  return *r;
}

void FakeVirtqueue::set_used_event(uint16_t idx) const {
  if (!options_.event_idx) fake_error("used_event needs event_idx");
  auto r = guest_->memory().store_u16(at(layout_.avail, kRingHeader + 2 * uint64_t{options_.size}), idx,
                                      std::memory_order_release);
  if (!r) memory_error("store used_event", r.error());
}

void FakeVirtqueue::set_no_interrupt(bool on) const {
  auto r = guest_->memory().store_u16(layout_.avail, on ? VRING_AVAIL_F_NO_INTERRUPT : 0, std::memory_order_release);
  if (!r) memory_error("store avail->flags", r.error());
}

// ---- ChainBuilder ----

ChainBuilder& ChainBuilder::readable(std::span<const std::byte> data, Place place) {
  pieces_.push_back(Piece{.data = {data.begin(), data.end()},
                          .len = static_cast<uint32_t>(data.size()),
                          .writable = false,
                          .place = place,
                          .raw = std::nullopt});
  return *this;
}

ChainBuilder& ChainBuilder::readable(std::string_view text, Place place) {
  return readable(std::as_bytes(std::span(text.data(), text.size())), place);
}

ChainBuilder& ChainBuilder::writable(uint32_t len, Place place) {
  pieces_.push_back(Piece{.data = {}, .len = len, .writable = true, .place = place, .raw = std::nullopt});
  return *this;
}

ChainBuilder& ChainBuilder::descriptor(GuestAddress addr, uint32_t len, uint16_t flags) {
  pieces_.push_back(Piece{.data = {},
                          .len = len,
                          .writable = false,
                          .place = Place::Normal,
                          .raw = vring_desc{.addr = raw(addr), .len = len, .flags = flags, .next = 0}});
  return *this;
}

struct ChainBuilder::Plan {
  std::vector<vring_desc> data;       // data descriptors in chain order, not yet linked
  std::vector<uint16_t> descriptors;  // main-table indices taken
  std::vector<GuestAddress> buffers;  // guest allocations to free when the chain comes back
  BuiltChain built;
};

void ChainBuilder::place_buffers(Plan& plan) const {
  FakeGuestMemory& guest = q_->guest();
  for (const Piece& p : pieces_) {
    if (p.raw) {
      plan.data.push_back(*p.raw);
      continue;
    }
    const GuestAddress addr = p.place == Place::AcrossRegions ? guest.alloc_across_regions(p.len) : guest.alloc(p.len);
    plan.buffers.push_back(addr);
    if (p.writable) {
      guest.write(addr, std::vector<std::byte>(p.len, kPoison));
      plan.built.writable.push_back(Segment{addr, p.len});
    } else {
      guest.write(addr, p.data);
      plan.built.readable.push_back(Segment{addr, p.len});
    }
    const auto flags = static_cast<uint16_t>(p.writable ? VRING_DESC_F_WRITE : 0);
    const uint32_t step = shard_ == 0 ? std::max<uint32_t>(p.len, 1) : shard_;
    uint32_t off = 0;
    do {
      const uint32_t len = std::min(step, p.len - off);
      plan.data.push_back(vring_desc{.addr = raw(addr) + off, .len = len, .flags = flags, .next = 0});
      off += len;
    } while (off < p.len);
  }
}

namespace {

// Links `table` (entries at indices `index[i]`) with NEXT, then applies the hostile tweaks to the last entry.
struct LastTweaks {
  bool self_loop;
  std::optional<uint16_t> next;
  uint16_t extra_flags;
};

void link(std::vector<vring_desc>& table, const std::vector<uint16_t>& index, const LastTweaks* tweaks) {
  for (size_t i = 0; i + 1 < table.size(); ++i) {
    table[i].flags |= VRING_DESC_F_NEXT;
    table[i].next = index[i + 1];
  }
  if (tweaks == nullptr || table.empty()) return;
  vring_desc& last = table.back();
  last.flags |= tweaks->extra_flags;
  if (tweaks->self_loop) {
    last.flags |= VRING_DESC_F_NEXT;
    last.next = index.back();
  }
  if (tweaks->next) {
    last.flags |= VRING_DESC_F_NEXT;
    last.next = *tweaks->next;
  }
}

std::vector<uint16_t> iota16(size_t n) {
  std::vector<uint16_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint16_t>(i);
  return out;
}

}  // namespace

void ChainBuilder::write_tables(Plan& plan) const {
  FakeGuestMemory& guest = q_->guest();
  const LastTweaks tweaks{self_loop_, next_, extra_flags_};
  std::vector<vring_desc> main = plan.data;
  if (indirect_direct_) {
    const size_t direct = std::min(*indirect_direct_, plan.data.size());
    std::vector<vring_desc> inner(plan.data.begin() + static_cast<std::ptrdiff_t>(direct), plan.data.end());
    if (inner.size() > UINT16_MAX + 1u) fake_error("indirect table too large for the builder");
    link(inner, iota16(inner.size()), &tweaks);
    GuestAddress table = guest.alloc(sizeof(vring_desc) * inner.size(), 16);
    plan.buffers.push_back(table);
    for (size_t i = 0; i < inner.size(); ++i) guest.write_value(at(table, sizeof(vring_desc) * i), inner[i]);
    auto table_len = static_cast<uint32_t>(sizeof(vring_desc) * inner.size());
    if (nested_) {
      const vring_desc to_inner{.addr = raw(table), .len = table_len, .flags = VRING_DESC_F_INDIRECT, .next = 0};
      table = guest.alloc(sizeof(vring_desc), 16);
      plan.buffers.push_back(table);
      guest.write_value(table, to_inner);
      table_len = sizeof(vring_desc);
    }
    main.resize(direct);
    main.push_back(vring_desc{.addr = raw(table),
                              .len = indirect_len_.value_or(table_len),
                              .flags = static_cast<uint16_t>(VRING_DESC_F_INDIRECT | indirect_flags_),
                              .next = 0});
  }
  if (main.empty()) fake_error("a chain needs at least one descriptor");
  plan.descriptors = q_->take_descriptors(main.size());
  link(main, plan.descriptors, indirect_direct_ ? nullptr : &tweaks);
  for (size_t i = 0; i < main.size(); ++i) q_->write_desc(plan.descriptors[i], main[i]);
  plan.built.head = plan.descriptors.front();
}

BuiltChain ChainBuilder::build_unpublished() {
  Plan plan;
  place_buffers(plan);
  write_tables(plan);
  q_->track(plan.built.head, std::move(plan.descriptors), std::move(plan.buffers));
  return plan.built;
}

BuiltChain ChainBuilder::build() {
  BuiltChain built = build_unpublished();
  q_->publish(built.head);
  return built;
}

}  // namespace vgpu::test

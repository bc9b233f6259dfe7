#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/checked.h"

namespace vgpu {

std::string_view to_string(MemoryError e) {
  switch (e) {
    case MemoryError::OutOfRange: return "address not backed by guest memory";
    case MemoryError::Overflow: return "address range wraps";
    case MemoryError::Misaligned: return "misaligned atomic access";
    case MemoryError::MapFailed: return "mmap of a memory region failed";
    case MemoryError::BadRegion: return "invalid memory region";
    case MemoryError::Overlap: return "memory region overlaps an existing one";
    case MemoryError::TooManyRegions: return "too many memory regions";
    case MemoryError::NotFound: return "no such memory region";
  }
  return "unknown memory error";
}

namespace {

// A region is usable when it is non-empty and none of its three ranges wraps.
bool region_ranges_valid(const RegionDesc& d) {
  return d.size != 0 && checked_add(raw(d.guest_phys), d.size - 1) && checked_add(raw(d.frontend_virt), d.size - 1) &&
         checked_add(d.mmap_offset, d.size);
}

bool ranges_overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  // Both ranges are non-empty and do not wrap (checked by region_ranges_valid).
  return a <= b + (b_size - 1) && b <= a + (a_size - 1);
}

}  // namespace

Result<MappedRegion, MemoryError> MappedRegion::map(const RegionDesc& desc, int fd) {
  if (!region_ranges_valid(desc)) return fail(MemoryError::BadRegion);
  const uint64_t map_len = desc.mmap_offset + desc.size;  // no wrap: checked above
  if (map_len > SIZE_MAX) return fail(MemoryError::BadRegion);
  // The fd offset passed to mmap must be page aligned; vhost-user's mmap_offset need not be, so map from 0
  // and skip mmap_offset bytes (as libvhost-user does).
  // Touching a mapping beyond the end of its file raises SIGBUS: a frontend that announces a region larger
  // than its fd must get an error here, not crash us on the first ring access.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(MemoryError::MapFailed);
  if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && static_cast<uint64_t>(st.st_size) < map_len) {
    return fail(MemoryError::BadRegion);
  }
  void* base = ::mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) return fail(MemoryError::MapFailed);
  return MappedRegion(desc, base, map_len, static_cast<std::byte*>(base) + desc.mmap_offset);
}

MappedRegion MappedRegion::borrow(const RegionDesc& desc, std::byte* data) {
  return MappedRegion(desc, nullptr, 0, data);
}

MappedRegion::MappedRegion(MappedRegion&& other) noexcept
    : desc_(other.desc_),
      map_base_(std::exchange(other.map_base_, nullptr)),
      map_len_(std::exchange(other.map_len_, 0)),
      data_(std::exchange(other.data_, nullptr)) {}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    release();
    desc_ = other.desc_;
    map_base_ = std::exchange(other.map_base_, nullptr);
    map_len_ = std::exchange(other.map_len_, 0);
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

MappedRegion::~MappedRegion() {
  release();
}

void MappedRegion::release() {
  if (map_base_ != nullptr) ::munmap(map_base_, map_len_);
  map_base_ = nullptr;
  data_ = nullptr;
}

bool MappedRegion::contains(GuestAddress a) const {
  return raw(a) >= raw(desc_.guest_phys) && raw(a) - raw(desc_.guest_phys) < desc_.size;
}

bool MappedRegion::contains(FrontendVirtAddr a) const {
  return raw(a) >= raw(desc_.frontend_virt) && raw(a) - raw(desc_.frontend_virt) < desc_.size;
}

Result<void, MemoryError> GuestMemory::add_region(MappedRegion region) {
  const RegionDesc& d = region.desc();
  if (!region_ranges_valid(d)) return fail(MemoryError::BadRegion);
  if (regions_.size() >= kMaxRegions) return fail(MemoryError::TooManyRegions);
  for (const auto& r : regions_) {
    const RegionDesc& e = r->desc();
    if (ranges_overlap(raw(d.guest_phys), d.size, raw(e.guest_phys), e.size) ||
        ranges_overlap(raw(d.frontend_virt), d.size, raw(e.frontend_virt), e.size)) {
      return fail(MemoryError::Overlap);
    }
  }
  auto pos = std::upper_bound(regions_.begin(), regions_.end(), raw(d.guest_phys),
                              [](uint64_t gpa, const RegionPin& r) { return gpa < raw(r->desc().guest_phys); });
  regions_.insert(pos, std::make_shared<const MappedRegion>(std::move(region)));
  return {};
}

Result<void, MemoryError> GuestMemory::remove_region(const RegionDesc& desc) {
  // QEMU identifies the region by its guest address, size and frontend address; mmap_offset may differ.
  auto it = std::find_if(regions_.begin(), regions_.end(), [&](const RegionPin& r) {
    const RegionDesc& e = r->desc();
    return e.guest_phys == desc.guest_phys && e.size == desc.size && e.frontend_virt == desc.frontend_virt;
  });
  if (it == regions_.end()) return fail(MemoryError::NotFound);
  regions_.erase(it);
  return {};
}

std::vector<RegionDesc> GuestMemory::regions() const {
  std::vector<RegionDesc> out;
  out.reserve(regions_.size());
  for (const auto& r : regions_) out.push_back(r->desc());
  return out;
}

Result<GuestAddress, MemoryError> GuestMemory::to_guest(FrontendVirtAddr a) const {
  for (const auto& r : regions_) {
    if (r->contains(a)) return GuestAddress{raw(r->desc().guest_phys) + (raw(a) - raw(r->desc().frontend_virt))};
  }
  return fail(MemoryError::OutOfRange);
}

Result<GuestMemory::Hit, MemoryError> GuestMemory::find(GuestAddress a) const {
  auto it = std::upper_bound(regions_.begin(), regions_.end(), raw(a),
                             [](uint64_t gpa, const RegionPin& r) { return gpa < raw(r->desc().guest_phys); });
  if (it == regions_.begin()) return fail(MemoryError::OutOfRange);
  const RegionPin& pin = *std::prev(it);
  if (!pin->contains(a)) return fail(MemoryError::OutOfRange);
  return Hit{pin.get(), raw(a) - raw(pin->desc().guest_phys), &pin};
}

// Calls fn(std::byte* host, size_t n, size_t done, const RegionPin& region) for each region-contiguous piece of
// [a, a + len), in order, after checking that the whole range is backed: nothing is touched unless every byte
// is valid.
template <class Fn>
Result<void, MemoryError> GuestMemory::for_each_piece(GuestAddress a, uint64_t len, Fn&& fn) const {
  if (len == 0) return {};
  if (!checked_add(raw(a), len - 1)) return fail(MemoryError::Overflow);
  // First pass: validate. Second pass: act. Region lookups are cheap (binary search).
  for (int pass = 0; pass < 2; ++pass) {
    uint64_t done = 0;
    while (done < len) {
      auto hit = find(GuestAddress{raw(a) + done});
      if (!hit) return fail(hit.error());
      const uint64_t n = std::min(len - done, hit->region->desc().size - hit->offset);
      if (pass == 1) fn(hit->region->data_ + hit->offset, static_cast<size_t>(n), static_cast<size_t>(done), *hit->pin);
      done += n;
    }
  }
  return {};
}

bool GuestMemory::is_valid_range(GuestAddress a, uint64_t len) const {
  return for_each_piece(a, len, [](std::byte*, size_t, size_t, const RegionPin&) {}).has_value();
}

Result<void, MemoryError> GuestMemory::read_bytes(GuestAddress a, std::span<std::byte> out) const {
  return for_each_piece(a, out.size(), [&](std::byte* host, size_t n, size_t done, const RegionPin&) {
    std::memcpy(out.data() + done, host, n);
  });
}

Result<void, MemoryError> GuestMemory::write_bytes(GuestAddress a, std::span<const std::byte> in) const {
  return for_each_piece(a, in.size(), [&](std::byte* host, size_t n, size_t done, const RegionPin&) {
    std::memcpy(host, in.data() + done, n);
  });
}

Result<uint16_t, MemoryError> GuestMemory::load_u16(GuestAddress a, std::memory_order order) const {
  if (raw(a) % alignof(uint16_t) != 0) return fail(MemoryError::Misaligned);
  auto hit = find(a);
  if (!hit) return fail(hit.error());
  // An aligned 2-byte field never straddles a region unless a region has odd size; refuse that case.
  if (hit->region->desc().size - hit->offset < sizeof(uint16_t)) return fail(MemoryError::OutOfRange);
  std::byte* host = hit->region->data_ + hit->offset;
  // The guest address is aligned, but the host byte is not when the frontend sent an odd mmap_offset (or a
  // borrowed buffer is odd): an atomic there would be undefined behaviour.
  if (reinterpret_cast<uintptr_t>(host) % alignof(uint16_t) != 0) return fail(MemoryError::Misaligned);
  // SAFETY: in bounds and aligned (checked above); the guest writes this field concurrently, hence atomic.
  auto* p = reinterpret_cast<uint16_t*>(host);
  return std::atomic_ref<uint16_t>(*p).load(order);
}

Result<void, MemoryError> GuestMemory::store_u16(GuestAddress a, uint16_t value, std::memory_order order) const {
  if (raw(a) % alignof(uint16_t) != 0) return fail(MemoryError::Misaligned);
  auto hit = find(a);
  if (!hit) return fail(hit.error());
  if (hit->region->desc().size - hit->offset < sizeof(uint16_t)) return fail(MemoryError::OutOfRange);
  std::byte* host = hit->region->data_ + hit->offset;
  if (reinterpret_cast<uintptr_t>(host) % alignof(uint16_t) != 0) return fail(MemoryError::Misaligned);  // see load
  // SAFETY: in bounds and aligned (checked above); the guest reads this field concurrently, hence atomic.
  auto* p = reinterpret_cast<uint16_t*>(host);
  std::atomic_ref<uint16_t>(*p).store(value, order);
  return {};
}

Result<std::vector<HostSlice>, MemoryError> GuestMemory::slices(GuestAddress a, uint64_t len) const {
  std::vector<HostSlice> out;
  auto r = for_each_piece(a, len, [&](std::byte* host, size_t n, size_t, const RegionPin& pin) {
    out.push_back({host, n, pin});
  });
  if (!r) return fail(r.error());
  return out;
}

}  // namespace vgpu

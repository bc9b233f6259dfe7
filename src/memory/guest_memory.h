// The only code that touches mapped guest bytes. Regions come from the frontend (vhost-user SET_MEM_TABLE,
// ADD_MEM_REG, REM_MEM_REG) as shared file descriptors; every access is bounds-checked and split across
// regions when it crosses a boundary. Callers get copies, never pointers into the guest (the guest can change
// those bytes at any time; see CONTRIBUTING.md practice 4, "copy first, then validate").
//
//   GuestMemory mem;
//   auto region = MappedRegion::map(desc, fd);          // mmap(MAP_SHARED) honouring mmap_offset
//   mem.add_region(std::move(*region));
//   auto hdr = mem.read<virtio_gpu_ctrl_hdr>(GuestAddress{addr});
//   if (!hdr) ...                                        // MemoryError::OutOfRange and friends
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "memory/address.h"

namespace vgpu {

enum class MemoryError {
  OutOfRange,      // some byte of the access is not backed by any region
  Overflow,        // address + length wraps
  Misaligned,      // an atomic access on an address not aligned to its size
  MapFailed,       // mmap of the frontend's fd failed
  BadRegion,       // zero size, or guest/frontend/offset ranges that wrap
  Overlap,         // a new region overlaps an existing one
  TooManyRegions,  // more than kMaxRegions
  NotFound,        // REM_MEM_REG for a region we do not have
};

std::string_view to_string(MemoryError e);

// A struct that can be copied byte-wise from or to guest memory: trivially copyable with no padding, so a
// guest cannot make us read uninitialised host bytes or leak them back.
template <class T>
concept GuestPod = std::is_trivially_copyable_v<T> && std::has_unique_object_representations_v<T>;

// Where one region sits in each address space (vhost-user's VhostUserMemoryRegion, validated).
struct RegionDesc {
  GuestAddress guest_phys{0};
  uint64_t size = 0;
  FrontendVirtAddr frontend_virt{0};
  uint64_t mmap_offset = 0;  // offset of the region's first byte within the fd

  bool operator==(const RegionDesc&) const = default;
};

// One mmap'd region; unmaps on destruction. Move-only.
class MappedRegion {
 public:
  // Maps [0, mmap_offset + size) of fd shared and read-write. Validates that no range wraps.
  static Result<MappedRegion, MemoryError> map(const RegionDesc& desc, int fd);
  // For tests and fuzzers: wraps host memory the caller owns (not unmapped here).
  static MappedRegion borrow(const RegionDesc& desc, std::byte* data);

  MappedRegion(MappedRegion&& other) noexcept;
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
  ~MappedRegion();

  [[nodiscard]] const RegionDesc& desc() const { return desc_; }
  [[nodiscard]] bool contains(GuestAddress a) const;
  [[nodiscard]] bool contains(FrontendVirtAddr a) const;

 private:
  friend class GuestMemory;
  MappedRegion(const RegionDesc& desc, void* map_base, size_t map_len, std::byte* data)
      : desc_(desc), map_base_(map_base), map_len_(map_len), data_(data) {}
  void release();

  RegionDesc desc_;
  void* map_base_ = nullptr;  // what mmap returned (null when borrowed)
  size_t map_len_ = 0;
  std::byte* data_ = nullptr;  // first byte of the region (map_base_ + mmap_offset)
};

// Shared ownership of a mapping (as vm-memory's Arc<GuestRegionMmap>): a region is unmapped when GuestMemory
// dropped it and the last pin is gone, never while a pin is held.
using RegionPin = std::shared_ptr<const MappedRegion>;

// A contiguous host view of part of one region. The one escape hatch from copy-in/copy-out: only for bulk
// pixel copies (scatter-gather lists) in later layers, which must treat the bytes as volatile guest data.
// The view pins its region: keep `region` as long as `data` may be used (a C library holding iovecs), and a
// SET_MEM_TABLE or REM_MEM_REG in between cannot unmap the bytes under it (guest_memory_test.cc shows it).
struct HostSlice {
  std::byte* data;
  size_t size;
  RegionPin region;
};

class GuestMemory {
 public:
  // libvhost-user's limit; QEMU never sends more than 509 slots to a vhost-user backend.
  static constexpr size_t kMaxRegions = 509;

  GuestMemory() = default;
  // Move-only, as when it owned its mappings outright: a copy would share them unnoticed.
  GuestMemory(GuestMemory&&) noexcept = default;
  GuestMemory& operator=(GuestMemory&&) noexcept = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory() = default;

  Result<void, MemoryError> add_region(MappedRegion region);
  Result<void, MemoryError> remove_region(const RegionDesc& desc);
  void clear() { regions_.clear(); }
  [[nodiscard]] size_t region_count() const { return regions_.size(); }
  [[nodiscard]] std::vector<RegionDesc> regions() const;

  // frontend-virtual → guest-physical, for vring addresses (SET_VRING_ADDR carries frontend addresses).
  [[nodiscard]] Result<GuestAddress, MemoryError> to_guest(FrontendVirtAddr a) const;
  // True when every byte of [a, a + len) is backed (possibly across several regions).
  [[nodiscard]] bool is_valid_range(GuestAddress a, uint64_t len) const;

  Result<void, MemoryError> read_bytes(GuestAddress a, std::span<std::byte> out) const;
  Result<void, MemoryError> write_bytes(GuestAddress a, std::span<const std::byte> in) const;

  template <GuestPod T>
  Result<T, MemoryError> read(GuestAddress a) const {
    T out;
    auto r = read_bytes(a, std::as_writable_bytes(std::span<T, 1>(&out, 1)));
    if (!r) return fail(r.error());
    return out;
  }
  template <GuestPod T>
  Result<void, MemoryError> write(GuestAddress a, const T& value) const {
    return write_bytes(a, std::as_bytes(std::span<const T, 1>(&value, 1)));
  }

  // Single-copy atomic 16-bit ring accesses (virtio rings' idx and flags fields). The caller names the
  // memory order and says why at the call site; the address must be 2-byte aligned (the spec aligns rings), and
  // so must its host mapping (an odd mmap_offset gives Misaligned).
  Result<uint16_t, MemoryError> load_u16(GuestAddress a, std::memory_order order) const;
  Result<void, MemoryError> store_u16(GuestAddress a, uint16_t value, std::memory_order order) const;

  // Host views of [a, a + len), split at region boundaries. See HostSlice.
  Result<std::vector<HostSlice>, MemoryError> slices(GuestAddress a, uint64_t len) const;

 private:
  // The region holding `a` and the offset of `a` inside it.
  struct Hit {
    const MappedRegion* region;
    uint64_t offset;
    const RegionPin* pin;  // the region's owning pointer in regions_
  };
  [[nodiscard]] Result<Hit, MemoryError> find(GuestAddress a) const;
  template <class Fn>
  Result<void, MemoryError> for_each_piece(GuestAddress a, uint64_t len, Fn&& fn) const;

  std::vector<RegionPin> regions_;  // sorted by guest_phys, non-overlapping; HostSlices may share them
};

}  // namespace vgpu

// Guest backings and blobs: the places where guest pointers escape into the C library, kept apart so that
// their lifetime rules (below) are read in one file.
//
// Lifetime risk (the one place where the library holds pointers into the guest): attach_backing() gives the
// library host views of guest memory (GuestMemory::slices) that it keeps until detach, and reads through them
// on its own (queries, staging copies, memory info) and when a backing is detached. When the memory table
// changes, call release_backings() while the old mappings are still mapped and refresh_backings() once the
// new table is in place (refresh_backings() alone releases first, so the old mappings must then still be
// alive during that call). Transfers never reuse views: they resolve the backing afresh on every call
// (transfer_3d in virgl_renderer.cc, through resolve_iovs here). Blobs with a guest backing hand the library
// views the same way (create_blob), kept in the resource's map node until release.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <new>

#include "common/checked.h"
#include "common/log.h"
#include "renderer/mapped_file.h"
#include "renderer/virgl/virgl_compat.h"
#include "renderer/virgl/virgl_internal.h"
#include "renderer/virgl/virgl_renderer.h"

namespace vgpu {

using virgl_internal::box_of;
using virgl_internal::from_errno;
using virgl_internal::resolve_iovs;

namespace {

// The library keeps boxes in ints.
bool fits_int(const Rect& r) {
  constexpr uint32_t kIntMax = std::numeric_limits<int32_t>::max();
  return r.x <= kIntMax && r.y <= kIntMax && r.width <= kIntMax && r.height <= kIntMax;
}

}  // namespace

namespace virgl_internal {

Result<void, Renderer3DError> resolve_iovs(const GuestMemory& mem, const GuestScatterList& list, uint64_t offset,
                                           uint64_t len, std::vector<iovec>& out, std::vector<RegionPin>& pins) {
  out.clear();
  pins.clear();
  if (!range_fits(offset, len, list.size())) return fail(Renderer3DError::InvalidArgument);
  const uint64_t end = offset + len;  // no wrap: both are <= list.size()
  uint64_t start = 0;                 // offset of the current entry in the list (list.size() did not wrap)
  try {
    for (const ScatterEntry& e : list.entries()) {
      if (start >= end) break;
      const uint64_t entry_end = start + e.length;
      if (entry_end > offset && e.length > 0) {
        const uint64_t from = std::max(start, offset);
        const uint64_t to = std::min(entry_end, end);
        auto views = mem.slices(GuestAddress{raw(e.addr) + (from - start)}, to - from);
        if (!views) return fail(Renderer3DError::GuestMemory);
        for (const HostSlice& s : *views) {
          if (pins.empty() || pins.back() != s.region) pins.push_back(s.region);
          if (!out.empty() && static_cast<std::byte*>(out.back().iov_base) + out.back().iov_len == s.data) {
            out.back().iov_len += s.size;
          } else {
            out.push_back(iovec{.iov_base = s.data, .iov_len = s.size});
          }
        }
      }
      start = entry_end;
    }
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  if (out.size() > static_cast<size_t>(INT_MAX)) return fail(Renderer3DError::InvalidArgument);
  return {};
}

}  // namespace virgl_internal

// --- Backings -------------------------------------------------------------------------------------------------

// Callers enter the host context first (once, not per resource).
void VirglRenderer::release_backing(uint32_t id, Resource& res) {
  if (res.attached) {
    // The library may read the views here (custom-bind buffers copy their contents back): they must still be
    // mapped, which is why memory-table changes go through release_backings() first.
    virgl_renderer_resource_detach_iov(static_cast<int>(id), nullptr, nullptr);
    res.attached = false;
  }
  res.iovs.clear();
  res.pins.clear();
}

Result<void, Renderer3DError> VirglRenderer::attach_backing(uint32_t resource_id, const GuestMemory& mem,
                                                            const GuestScatterList& backing) {
  Resource* res = find(resource_id);
  if (res == nullptr) return fail(Renderer3DError::InvalidResource);
  enter_host_context();
  release_backing(resource_id, *res);
  res->backing.reset();
  res->backing_mem = nullptr;
  if (auto r = resolve_iovs(mem, backing, 0, backing.size(), res->iovs, res->pins); !r) return r;
  try {
    res->backing.emplace(backing);
  } catch (const std::bad_alloc&) {
    return fail(Renderer3DError::OutOfMemory);
  }
  res->backing_mem = &mem;
  if (res->iovs.empty()) return {};  // nothing to hand over: an empty backing
  const int ret = virgl_renderer_resource_attach_iov(static_cast<int>(resource_id), res->iovs.data(),
                                                     static_cast<int>(res->iovs.size()));
  if (ret != 0) {
    res->iovs.clear();
    res->pins.clear();
    return fail(from_errno(ret, Renderer3DError::Failed));
  }
  res->attached = true;
  return {};
}

void VirglRenderer::detach_backing(uint32_t resource_id) {
  Resource* res = find(resource_id);
  if (res == nullptr) return;
  enter_host_context();
  release_backing(resource_id, *res);
  res->backing.reset();
  res->backing_mem = nullptr;
}

void VirglRenderer::release_backings() {
  enter_host_context();
  for (auto& [id, res] : resources_) release_backing(id, res);
}

void VirglRenderer::refresh_backings() {
  release_backings();  // enters the host context
  for (auto& [id, res] : resources_) {
    if (!res.backing || res.backing_mem == nullptr) continue;
    auto resolved = resolve_iovs(*res.backing_mem, *res.backing, 0, res.backing->size(), res.iovs, res.pins);
    int ret = 0;
    if (resolved && !res.iovs.empty()) {
      ret =
          virgl_renderer_resource_attach_iov(static_cast<int>(id), res.iovs.data(), static_cast<int>(res.iovs.size()));
    }
    if (!resolved || ret != 0) {
      VGPU_LOG_WARN_LIMITED("virgl: backing of resource {} no longer resolves after a memory change; dropped", id);
      res.iovs.clear();
      res.pins.clear();
      res.pins.clear();
      res.backing.reset();
      res.backing_mem = nullptr;
      continue;
    }
    res.attached = !res.iovs.empty();
  }
}

// --- Blobs ----------------------------------------------------------------------------------------------------

Result<void, Renderer3DError> VirglRenderer::create_blob(uint32_t resource_id, const BlobArgs& args,
                                                         const GuestMemory* mem, const GuestScatterList* backing) {
  if (resource_id == 0 || find(resource_id) != nullptr) return fail(Renderer3DError::InvalidArgument);
  if (args.ctx_id != 0 && !contexts_.contains(args.ctx_id)) return fail(Renderer3DError::InvalidContext);
  if ((backing == nullptr) != (mem == nullptr)) return fail(Renderer3DError::InvalidArgument);
  Resource* res = nullptr;
  try {
    res = &resources_.emplace(resource_id, Resource{.args = {}, .blob = args}).first->second;
    if (backing != nullptr) res->backing.emplace(*backing);
  } catch (const std::bad_alloc&) {
    resources_.erase(resource_id);
    return fail(Renderer3DError::OutOfMemory);
  }
  // The views live in the map node (it never moves): the library keeps the pointer, as for attach_iov.
  if (backing != nullptr) {
    if (auto r = resolve_iovs(*mem, *backing, 0, backing->size(), res->iovs, res->pins); !r) {
      resources_.erase(resource_id);
      return r;
    }
    res->backing_mem = mem;
  }
  const virgl_renderer_resource_create_blob_args a{.res_handle = resource_id,
                                                   .ctx_id = args.ctx_id,
                                                   .blob_mem = args.blob_mem,
                                                   .blob_flags = args.blob_flags,
                                                   .blob_id = args.blob_id,
                                                   .size = args.size,
                                                   .iovecs = res->iovs.empty() ? nullptr : res->iovs.data(),
                                                   .num_iovs = static_cast<uint32_t>(res->iovs.size())};
  // The library checks the blob id against what the context made, and the flags against what it can do.
  enter_host_context();
  if (const int ret = virgl_renderer_resource_create_blob(&a); ret != 0) {
    resources_.erase(resource_id);
    return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  }
  res->attached = !res->iovs.empty();
  dirty_ = true;
  return {};
}

Result<void, Renderer3DError> VirglRenderer::read_blob(uint32_t resource_id, uint64_t offset, uint32_t stride,
                                                       const Rect& rect, std::span<std::byte> dst,
                                                       uint32_t dst_stride) {
  const Resource* res = find(resource_id);
  if (res == nullptr || !res->blob) return fail(Renderer3DError::InvalidResource);
  if (rect.empty()) return {};
  const uint64_t row_bytes = uint64_t{rect.width} * kBytesPerPixel;
  const uint64_t dst_extent = uint64_t{rect.height - 1} * dst_stride + row_bytes;
  // The source's last byte: offset + (y + h - 1) * stride + (x + w) * 4, each term < 2^64 / 4.
  const auto last_row = checked_mul<uint64_t>(uint64_t{rect.y} + rect.height - 1, stride);
  const auto src_end =
      last_row ? checked_add<uint64_t>(*last_row, (uint64_t{rect.x} + rect.width) * kBytesPerPixel) : std::nullopt;
  const auto src_extent = src_end ? checked_add<uint64_t>(*src_end, offset) : std::nullopt;
  if (dst_stride < row_bytes || dst.size() < dst_extent || !src_extent || *src_extent > res->blob->size) {
    return fail(Renderer3DError::InvalidArgument);
  }
  enter_host_context();
  if ((res->blob->blob_flags & VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE) != 0) {
    void* map = nullptr;
    uint64_t map_size = 0;
    if (virgl_renderer_resource_map(resource_id, &map, &map_size) == 0) {
      const bool fits = *src_extent <= map_size;
      if (fits) {
        const auto* src = static_cast<const std::byte*>(map);
        for (uint32_t r = 0; r < rect.height; ++r) {
          const uint64_t from = offset + (uint64_t{rect.y} + r) * stride + uint64_t{rect.x} * kBytesPerPixel;
          std::memcpy(dst.data() + uint64_t{r} * dst_stride, src + from, static_cast<size_t>(row_bytes));
        }
      }
      virgl_renderer_resource_unmap(resource_id);
      if (!fits) return fail(Renderer3DError::InvalidArgument);
      return {};
    }
  }
  if (!fits_int(rect)) return fail(Renderer3DError::InvalidArgument);
  virgl_box box = box_of(rect);
  iovec iov{.iov_base = dst.data(), .iov_len = static_cast<size_t>(dst_extent)};
  if (const int ret = virgl_renderer_transfer_read_iov(resource_id, 0, 0, dst_stride, 0, &box, 0, &iov, 1); ret != 0) {
    return fail(from_errno(ret, Renderer3DError::InvalidArgument));
  }
  return {};
}

Result<BlobMapping, Renderer3DError> VirglRenderer::blob_mapping(uint32_t resource_id) {
  const Resource* res = find(resource_id);
  if (res == nullptr || !res->blob) return fail(Renderer3DError::InvalidResource);
  if ((res->blob->blob_flags & VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE) == 0) {
    return fail(Renderer3DError::InvalidArgument);
  }
  enter_host_context();
  BlobMapping out;
  if (virgl_renderer_resource_get_map_info(resource_id, &out.map_info) != 0) return fail(Renderer3DError::Failed);
  out.map_info &= VIRGL_RENDERER_MAP_CACHE_MASK;
  uint32_t fd_type = 0;
  int fd = -1;
  if (virgl_renderer_resource_export_blob(resource_id, &fd_type, &fd) != 0 || fd < 0) {
    VGPU_LOG_DEBUG("3D: blob {} has no fd to map (a GL buffer of this process?)", resource_id);
    return fail(Renderer3DError::Failed);
  }
  out.fd.reset(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(Renderer3DError::Failed);
  if (fd_type == VIRGL_RENDERER_BLOB_FD_TYPE_DMABUF) {
    const off_t end = ::lseek(fd, 0, SEEK_END);
    if (end <= 0) return fail(Renderer3DError::Failed);
    out.size = static_cast<uint64_t>(end);
    return out;
  }
  if (fd_type == VIRGL_RENDERER_BLOB_FD_TYPE_SHM) {
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) return fail(Renderer3DError::Failed);
    out.size = static_cast<uint64_t>(st.st_size);
    return out;
  }
  if (fd_type != VIRGL_RENDERER_BLOB_FD_TYPE_OPAQUE || !S_ISREG(st.st_mode)) return fail(Renderer3DError::Failed);
  // OPAQUE: where the data starts in the file is the driver's business. The library's own mapping of the blob
  // says it: the file offset its pointer maps, if that mapping is of this very file.
  void* ptr = nullptr;
  uint64_t map_size = 0;
  if (virgl_renderer_resource_map(resource_id, &ptr, &map_size) != 0 || ptr == nullptr) {
    return fail(Renderer3DError::Failed);
  }
  const auto offset = file_offset_of(read_proc_maps(), reinterpret_cast<uintptr_t>(ptr), st.st_dev, st.st_ino);
  virgl_renderer_resource_unmap(resource_id);
  if (!offset || *offset > static_cast<uint64_t>(st.st_size) ||
      map_size > static_cast<uint64_t>(st.st_size) - *offset) {
    VGPU_LOG_WARN_LIMITED("3D: blob {}: its OPAQUE fd does not map to the library's view of it; not mapping it",
                          resource_id);
    return fail(Renderer3DError::Failed);
  }
  out.fd_offset = *offset;
  out.size = map_size;
  return out;
}

}  // namespace vgpu

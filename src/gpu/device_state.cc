// Device state save and load (vhost-user DEVICE_STATE; the format is state_format.h's). What a 2D device is to a
// guest: its resources (the host image's pixels, the backing as guest addresses, UUIDs, guest blobs), the
// scanouts (including blob layouts), each scanout's cursor, and the display layout the guest was last told.
// Guest memory itself is the frontend's to migrate; backings are saved as addresses into it.
//
// Refused, with the reason, rather than saved in a form that could not work: anything with the 3D renderer on
// (virglrenderer has no way to serialise its contexts and resources, and host blobs and host-visible mappings
// live in it), and a device with commands in flight (the frontend stops the rings first: phase "stopped").
// A load is checked whole before anything changes: a state from another version, truncated or corrupted,
// saved with another number of scanouts, over this device's memory limit, or naming guest memory that is not
// there leaves the device as it was.
#include <linux/virtio_gpu.h>

#include <algorithm>
#include <set>

#include "common/checked.h"
#include "common/log.h"
#include "gpu/device.h"
#include "gpu/state_format.h"

namespace vgpu {

namespace {

std::vector<SavedBackingEntry> saved_entries(const GuestScatterList& list) {
  std::vector<SavedBackingEntry> out;
  out.reserve(list.entries().size());
  for (const ScatterEntry& e : list.entries()) out.push_back({raw(e.addr), e.length});
  return out;
}

}  // namespace

Result<std::vector<std::byte>, std::string> GpuDevice::save_state() const {
  if (r3d_ != nullptr) {
    return fail(std::string(
        "the 3D renderer is on (--virgl/--venus): virglrenderer cannot serialise its contexts, resources and "
        "host blobs, so no state is saved"));
  }
  if (stalled_ || !held_.empty() || !fences_.empty()) {
    return fail(std::string("commands are in flight: stop the rings first (migration phase \"stopped\")"));
  }
  DeviceState st;
  st.num_scanouts = cfg_.num_scanouts;
  std::vector<uint32_t> ids;
  resources_.for_each([&](uint32_t id, const Resource&) { ids.push_back(id); });
  std::sort(ids.begin(), ids.end());
  for (const uint32_t id : ids) {
    const Resource& res = *resources_.find(id);
    SavedResource r;
    r.id = id;
    r.format = static_cast<uint32_t>(res.format);
    r.width = res.width;
    r.height = res.height;
    r.blob_mem = res.blob_mem;
    r.blob_flags = res.blob_flags;
    r.blob_size = res.blob_size;
    r.uuid = res.uuid;
    if (res.backing) r.backing = saved_entries(*res.backing);
    if (!res.is_blob()) {
      auto image = renderer_->image(id);
      if (!image) return fail(fmt::format("resource {}: the renderer has no image for it", id));
      const size_t row = size_t{image->width} * kBytesPerPixel;
      r.pixels.resize(row * image->height);
      for (uint32_t y = 0; y < image->height; ++y) {
        std::copy_n(image->data + size_t{y} * image->stride, row, r.pixels.data() + size_t{y} * row);
      }
    }
    st.resources.push_back(std::move(r));
  }
  for (uint32_t s = 0; s < cfg_.num_scanouts; ++s) {
    const Scanout& sc = scanouts_[s];
    SavedScanout out{.resource_id = sc.resource_id, .rect = sc.rect, .blob = std::nullopt};
    if (sc.blob) {
      out.blob = SavedBlobLayout{static_cast<uint32_t>(sc.blob->format), sc.blob->width, sc.blob->height,
                                 sc.blob->stride, sc.blob->offset};
    }
    st.scanouts.push_back(out);
    st.cursors.push_back(cursors_[s]);
  }
  if (last_layout_) {
    st.layout.emplace();
    for (const ScanoutMode& m : *last_layout_) st.layout->push_back(SavedMode{m.enabled, m.rect});
  }
  return encode_state(st);
}

Result<void, std::string> GpuDevice::load_state(std::span<const std::byte> bytes, const GuestMemory& mem) {
  if (r3d_ != nullptr) return fail(std::string("the 3D renderer is on: only a 2D device loads state"));
  auto decoded = decode_state(bytes);
  if (!decoded) return fail(std::move(decoded.error()));
  const DeviceState& st = *decoded;
  if (st.num_scanouts != cfg_.num_scanouts) {
    return fail(
        fmt::format("saved with {} scanouts; this device has {} (--outputs)", st.num_scanouts, cfg_.num_scanouts));
  }

  // Check everything before changing anything.
  struct Checked {
    const SavedResource* saved;
    std::optional<PixelFormat> format;
    std::optional<GuestScatterList> backing;
    uint64_t host_bytes;
  };
  std::vector<Checked> checked;
  std::set<uint32_t> seen;
  std::set<ObjectUuid> uuids;
  uint64_t total = 0;
  for (const SavedResource& r : st.resources) {
    const std::string what = fmt::format("resource {}", r.id);
    if (r.id == 0 || !seen.insert(r.id).second) return fail(what + ": id 0 or twice");
    if (r.uuid && !uuids.insert(*r.uuid).second) return fail(what + ": a UUID used twice");
    Checked c{&r, std::nullopt, std::nullopt, 0};
    if (r.blob_mem == 0) {
      c.format = pixel_format_from_virtio(r.format);
      if (!c.format || r.width == 0 || r.height == 0 || r.blob_size != 0 || r.blob_flags != 0) {
        return fail(what + ": not a valid 2D resource");
      }
      const auto image_bytes = checked_mul<uint64_t>(uint64_t{r.width} * kBytesPerPixel, r.height);
      if (!image_bytes || r.pixels.size() != *image_bytes) return fail(what + ": its pixels do not match its size");
      c.host_bytes = *image_bytes;
    } else {
      if (r.blob_mem != VIRTIO_GPU_BLOB_MEM_GUEST || r.blob_size == 0 || !r.backing || !r.pixels.empty()) {
        return fail(what + ": only guest-memory blobs are saved");
      }
    }
    if (r.backing) {
      if (r.backing->empty()) return fail(what + ": an empty backing");
      std::vector<ScatterEntry> entries;
      entries.reserve(r.backing->size());
      for (const SavedBackingEntry& e : *r.backing) entries.push_back({GuestAddress{e.addr}, e.length});
      auto list = GuestScatterList::create(mem, std::move(entries));
      if (!list) {
        return fail(what + ": its backing is not in guest memory (" + std::string(to_string(list.error())) +
                    "; the frontend sends the memory table before the state)");
      }
      if (r.blob_mem != 0 && list->size() < r.blob_size) return fail(what + ": its memory is smaller than the blob");
      c.host_bytes += uint64_t{r.backing->size()} * sizeof(ScatterEntry);
      c.backing = std::move(*list);
    }
    total += c.host_bytes;
    checked.push_back(std::move(c));
  }
  const auto find = [&](uint32_t id) -> const SavedResource* {
    for (const Checked& c : checked) {
      if (c.saved->id == id) return c.saved;
    }
    return nullptr;
  };
  for (uint32_t s = 0; s < st.num_scanouts; ++s) {
    const SavedScanout& sc = st.scanouts[s];
    const std::string what = fmt::format("scanout {}", s);
    if (sc.resource_id != 0) {
      const SavedResource* r = find(sc.resource_id);
      if (r == nullptr || sc.rect.empty()) return fail(what + ": shows a resource the state does not have");
      if (!sc.blob) {
        if (r->blob_mem != 0 || !rect_fits(sc.rect, r->width, r->height)) return fail(what + ": does not fit");
      } else {
        const SavedBlobLayout& b = *sc.blob;
        const uint64_t row = uint64_t{b.width} * kBytesPerPixel;
        if (r->blob_mem == 0 || !pixel_format_from_virtio(b.format) || b.width == 0 || b.height == 0 ||
            b.stride < row || uint64_t{b.offset} + uint64_t{b.height - 1} * b.stride + row > r->blob_size ||
            !rect_fits(sc.rect, b.width, b.height)) {
          return fail(what + ": a blob layout that does not fit its blob");
        }
        total += uint64_t{sc.rect.width} * sc.rect.height * kBytesPerPixel;  // the shadow
      }
    }
    const CursorState& cur = st.cursors[s];
    if (cur.visible) {
      const SavedResource* r = find(cur.resource_id);
      if (r == nullptr || r->blob_mem != 0 || r->width > kCursorSize || r->height > kCursorSize ||
          cur.hot_x >= kCursorSize || cur.hot_y >= kCursorSize) {
        return fail(fmt::format("cursor {}: not a valid cursor", s));
      }
    }
  }
  if (total > resources_.max_bytes()) {
    return fail(fmt::format("needs {} bytes of resource memory; this device allows {} (--max-resource-memory)", total,
                            resources_.max_bytes()));
  }

  // Apply: the old state goes (as on a device reset), the saved one comes in.
  for (uint32_t s = 0; s < cfg_.num_scanouts; ++s) {
    if (scanouts_[s].resource_id != 0) clear_scanout(s);
  }
  resources_.for_each([this](uint32_t /*id*/, Resource& r) { withdraw_shared(r); });
  resources_.clear();
  renderer_->reset();
  mem_ = &mem;
  for (Checked& c : checked) {
    const SavedResource& r = *c.saved;
    if (!resources_.reserve(c.host_bytes)) return fail(fmt::format("resource {}: over the memory limit", r.id));
    Resource res;
    res.host_bytes = c.host_bytes;
    res.uuid = r.uuid;
    res.backing = std::move(c.backing);
    if (r.blob_mem == 0) {
      res.format = *c.format;
      res.width = r.width;
      res.height = r.height;
      if (auto made = renderer_->create_resource(r.id, *c.format, r.width, r.height); !made) {
        resources_.release(c.host_bytes);
        return fail(fmt::format("resource {}: {}", r.id, to_string(made.error())));
      }
      if (auto put = renderer_->restore_pixels(r.id, r.pixels); !put) {
        return fail(fmt::format("resource {}: {}", r.id, to_string(put.error())));
      }
    } else {
      res.blob_mem = r.blob_mem;
      res.blob_flags = r.blob_flags;
      res.blob_size = r.blob_size;
    }
    resources_.insert(r.id, std::move(res));
  }
  for (uint32_t s = 0; s < st.num_scanouts; ++s) {
    const SavedScanout& saved = st.scanouts[s];
    if (saved.resource_id == 0) continue;
    Scanout& sc = scanouts_[s];
    sc.resource_id = saved.resource_id;
    sc.rect = saved.rect;
    if (saved.blob) {
      const SavedBlobLayout& b = *saved.blob;
      sc.blob = BlobLayout{*pixel_format_from_virtio(b.format), b.width, b.height, b.stride, b.offset};
      const uint64_t shadow = uint64_t{sc.rect.width} * sc.rect.height * kBytesPerPixel;
      if (!resources_.reserve(shadow)) return fail(fmt::format("scanout {}: over the memory limit", s));
      sc.shadow.assign(static_cast<size_t>(shadow));
    }
    show_scanout(s, /*resized=*/true);
    send_flush(s, sc.blob ? Rect{0, 0, sc.blob->width, sc.blob->height} : sc.rect);
  }
  for (uint32_t s = 0; s < st.num_scanouts; ++s) {
    cursors_[s] = st.cursors[s];
    if (cursors_[s].visible) show_cursor(s);
  }
  if (st.layout) {
    std::vector<ScanoutMode> modes;
    for (const SavedMode& m : *st.layout) modes.push_back(ScanoutMode{m.enabled, m.rect});
    last_layout_ = std::move(modes);
  }
  VGPU_LOG_INFO("device state loaded: {} resources, {} scanouts", st.resources.size(), st.num_scanouts);
  return {};
}

}  // namespace vgpu

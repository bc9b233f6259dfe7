// The saved state of a 2D virtio-gpu device (vhost-user DEVICE_STATE, SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE):
// plain data, and its versioned, checksummed byte format. The device fills a DeviceState (GpuDevice::save_state)
// and applies one (load_state); this file only turns one into bytes and back, refusing anything it cannot vouch
// for: another magic or version, a length or checksum that does not match, a count or size beyond the limits
// below, trailing bytes. decode() never allocates more than the input's size allows.
//
//   std::vector<std::byte> bytes = encode_state(state);
//   Result<DeviceState, std::string> back = decode_state(bytes);   // error: why, for the log
//
// Layout (little-endian): "VGPUSTAT", u32 version (1), u32 flags (0), u64 body length, u32 CRC-32 of the body
// (zlib's), u32 0; then the body: u32 num_scanouts, the resources (u32 count, each: id, wire format, width,
// height, blob_mem, blob_flags, u64 blob_size, u8 has_uuid + 16 bytes, u8 has_backing + u32 entry count +
// {u64 addr, u32 length, u32 0} each, u64 pixel bytes + the pixels), the scanouts (u32 count, each: resource id,
// rect, u8 is_blob + {wire format, width, height, stride, offset}), the cursors (u32 count, each: u8 visible,
// resource id, hot x, hot y, x, y) and the display layout (u8 known, u32 count, each: u8 enabled + rect).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "renderer/image.h"

namespace vgpu {

struct SavedBackingEntry {
  uint64_t addr = 0;
  uint32_t length = 0;
  bool operator==(const SavedBackingEntry&) const = default;
};

struct SavedResource {
  uint32_t id = 0;
  uint32_t format = 0;  // virtio wire value
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t blob_mem = 0;  // 0: a 2D resource; VIRTIO_GPU_BLOB_MEM_GUEST: a guest blob
  uint32_t blob_flags = 0;
  uint64_t blob_size = 0;
  std::optional<std::array<uint8_t, 16>> uuid;
  std::optional<std::vector<SavedBackingEntry>> backing;  // guest addresses, as ATTACH_BACKING gave them
  std::vector<std::byte> pixels;                          // a 2D resource's host image, width * 4 per row
  bool operator==(const SavedResource&) const = default;
};

// SET_SCANOUT_BLOB's description of the image inside a blob resource.
struct SavedBlobLayout {
  uint32_t format = 0;  // virtio wire value
  uint32_t width = 0;   // in pixels
  uint32_t height = 0;
  uint32_t stride = 0;  // bytes per row (strides[0])
  uint32_t offset = 0;  // of the first pixel in the blob (offsets[0])
  bool operator==(const SavedBlobLayout&) const = default;
};

struct SavedScanout {
  uint32_t resource_id = 0;
  Rect rect;
  std::optional<SavedBlobLayout> blob;
  bool operator==(const SavedScanout&) const = default;
};

// A scanout's cursor as the guest last set it (UPDATE_CURSOR / MOVE_CURSOR); the device keeps one per scanout.
struct CursorState {
  bool visible = false;
  uint32_t resource_id = 0;  // the cursor image, a 64 x 64 resource
  uint32_t hot_x = 0;        // the hot spot, inside the image
  uint32_t hot_y = 0;
  uint32_t x = 0;  // where the hot spot is, in scanout coordinates
  uint32_t y = 0;
  bool operator==(const CursorState&) const = default;
};

struct SavedMode {
  bool enabled = false;
  Rect rect;
  bool operator==(const SavedMode&) const = default;
};

struct DeviceState {
  uint32_t num_scanouts = 0;
  std::vector<SavedResource> resources;
  std::vector<SavedScanout> scanouts;  // num_scanouts of them
  std::vector<CursorState> cursors;    // num_scanouts of them
  std::optional<std::vector<SavedMode>> layout;
  bool operator==(const DeviceState&) const = default;
};

constexpr uint32_t kStateVersion = 1;
// Limits decode() enforces before it allocates (a hostile stream cannot make it reserve more).
constexpr uint32_t kMaxSavedResources = 1u << 16;
constexpr uint32_t kMaxSavedBackingEntries = 1u << 18;
constexpr uint32_t kMaxSavedScanouts = 16;

std::vector<std::byte> encode_state(const DeviceState& state);
Result<DeviceState, std::string> decode_state(std::span<const std::byte> bytes);

}  // namespace vgpu

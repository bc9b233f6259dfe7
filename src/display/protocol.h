// vhost-user-gpu display wire format (QEMU docs/interop/vhost-user-gpu.rst; the frontend side is QEMU's
// hw/display/vhost-user-gpu.c). The backend (us) sends requests on the socket QEMU passed with
// VHOST_USER_GPU_SET_SOCKET; QEMU replies only to the requests kRequests marks `replies`. Every number is in
// this one table, checked against QEMU 7.2, 10.0 and 11.1. Payloads are host-endian (common/wire.h).
//
//   const RequestInfo& info = request_info(Request::GetEdid);    // size, reply size, feature bit
//   MessageHeader hdr{static_cast<uint32_t>(Request::Scanout), 0, sizeof(ScanoutPayload)};
//   if (!is_update_layout(fmt)) convert_row_to_x8r8g8b8(fmt, src_row, dst_row, width);   // UPDATE data
#pragma once

#include <linux/virtio_gpu.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/wire.h"
#include "renderer/image.h"

namespace vgpu::display {

// VhostUserGpuRequest. QEMU numbers them by enum order from NONE = 0; the rst gives each id explicitly.
enum class Request : uint32_t {
  None = 0,  // not a request: never sent
  GetProtocolFeatures = 1,
  SetProtocolFeatures = 2,
  GetDisplayInfo = 3,
  CursorPos = 4,
  CursorPosHide = 5,
  CursorUpdate = 6,
  Scanout = 7,
  Update = 8,
  DmabufScanout = 9,
  DmabufUpdate = 10,
  GetEdid = 11,         // needs kProtocolFeatureEdid (QEMU >= 8.0 offers it)
  DmabufScanout2 = 12,  // needs kProtocolFeatureDmabuf2 (QEMU >= 8.1); never sent on a modifier alone
};
constexpr uint32_t kMaxRequest = 12;

// Protocol feature bits (VHOST_USER_GPU_PROTOCOL_F_*), answered by GET_PROTOCOL_FEATURES.
constexpr uint64_t kProtocolFeatureEdid = uint64_t{1} << 0;
constexpr uint64_t kProtocolFeatureDmabuf2 = uint64_t{1} << 1;

// Header flags: "Bit 2 is the reply flag - needs to be set on each reply". Requests carry 0.
constexpr uint32_t kFlagReply = 1u << 2;

using MessageHeader = WireHeader;

// VhostUserGpuCursorPos: CURSOR_POS and CURSOR_POS_HIDE.
struct CursorPosPayload {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
};
static_assert(sizeof(CursorPosPayload) == 12);

constexpr uint32_t kCursorPixels = 64 * 64;

// VhostUserGpuCursorUpdate: 64 x 64 PIXMAN_a8r8g8b8 (native uint32 0xAARRGGBB), row-major.
struct CursorUpdatePayload {
  CursorPosPayload pos;
  uint32_t hot_x;
  uint32_t hot_y;
  uint32_t data[kCursorPixels];
};
static_assert(sizeof(CursorUpdatePayload) == 20 + 4 * kCursorPixels);

// VhostUserGpuScanout: width = height = 0 disables the scanout.
struct ScanoutPayload {
  uint32_t scanout_id;
  uint32_t width;
  uint32_t height;
};
static_assert(sizeof(ScanoutPayload) == 12);

// VhostUserGpuUpdate without its data: width * height PIXMAN_x8r8g8b8 pixels follow, stride width * 4 (QEMU
// wraps them with pixman_image_create_bits(PIXMAN_x8r8g8b8, w, h, data, w * 4) and does not check the size).
struct UpdateHeaderPayload {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
  uint32_t width;
  uint32_t height;
};
static_assert(sizeof(UpdateHeaderPayload) == 20);

// VhostUserGpuDMABUFScanout; the dma-buf fd travels as SCM_RIGHTS (none: disable).
struct DmabufScanoutPayload {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
  uint32_t width;
  uint32_t height;
  uint32_t fd_width;
  uint32_t fd_height;
  uint32_t fd_stride;
  uint32_t fd_flags;
  int32_t fd_drm_fourcc;
};
static_assert(sizeof(DmabufScanoutPayload) == 40);

// VhostUserGpuDMABUFScanout2 (QEMU_PACKED there; 40 is a multiple of 8, so no padding here either).
struct DmabufScanout2Payload {
  DmabufScanoutPayload dmabuf_scanout;
  uint64_t modifier;
};
static_assert(sizeof(DmabufScanout2Payload) == 48);

// VhostUserGpuEdidRequest.
struct EdidRequestPayload {
  uint32_t scanout_id;
};
static_assert(sizeof(EdidRequestPayload) == 4);

// Reply payloads are the virtio structs themselves (GET_PROTOCOL_FEATURES: one u64).
static_assert(sizeof(virtio_gpu_resp_display_info) == 408);
static_assert(sizeof(virtio_gpu_resp_edid) == 1056);
constexpr uint32_t kMaxEdidSize = sizeof(virtio_gpu_resp_edid::edid);  // 1024
static_assert(kMaxEdidSize == 1024);

// How a request travels. `size`: the exact payload size (UPDATE: the header part; its pixels follow).
// `reply_size`: the exact payload of QEMU's reply when `replies`. `feature`: the protocol feature it needs.
// QEMU answers GET_EDID only for a scanout below its own max_outputs: a GET_EDID it refuses gets no reply
// at all, so SocketDisplay follows each with a GET_PROTOCOL_FEATURES as a fence. DMABUF_UPDATE's reply is an
// empty "unblock" message QEMU sends once the frame is shown.
struct RequestInfo {
  Request request;
  std::string_view name;
  uint32_t size;
  bool replies;
  uint32_t reply_size;
  uint64_t feature;
};

constexpr std::array<RequestInfo, kMaxRequest + 1> kRequests = {{
    {Request::None, "NONE", 0, false, 0, 0},
    {Request::GetProtocolFeatures, "GET_PROTOCOL_FEATURES", 0, true, sizeof(uint64_t), 0},
    {Request::SetProtocolFeatures, "SET_PROTOCOL_FEATURES", sizeof(uint64_t), false, 0, 0},
    {Request::GetDisplayInfo, "GET_DISPLAY_INFO", 0, true, sizeof(virtio_gpu_resp_display_info), 0},
    {Request::CursorPos, "CURSOR_POS", sizeof(CursorPosPayload), false, 0, 0},
    {Request::CursorPosHide, "CURSOR_POS_HIDE", sizeof(CursorPosPayload), false, 0, 0},
    {Request::CursorUpdate, "CURSOR_UPDATE", sizeof(CursorUpdatePayload), false, 0, 0},
    {Request::Scanout, "SCANOUT", sizeof(ScanoutPayload), false, 0, 0},
    {Request::Update, "UPDATE", sizeof(UpdateHeaderPayload), false, 0, 0},
    {Request::DmabufScanout, "DMABUF_SCANOUT", sizeof(DmabufScanoutPayload), false, 0, 0},
    {Request::DmabufUpdate, "DMABUF_UPDATE", sizeof(UpdateHeaderPayload), true, 0, 0},
    {Request::GetEdid, "GET_EDID", sizeof(EdidRequestPayload), true, sizeof(virtio_gpu_resp_edid),
     kProtocolFeatureEdid},
    {Request::DmabufScanout2, "DMABUF_SCANOUT2", sizeof(DmabufScanout2Payload), false, 0, kProtocolFeatureDmabuf2},
}};

constexpr bool table_is_indexed_by_request() {
  for (uint32_t i = 0; i < kRequests.size(); ++i) {
    if (static_cast<uint32_t>(kRequests[i].request) != i) return false;
  }
  return true;
}
static_assert(table_is_indexed_by_request());

constexpr const RequestInfo& request_info(Request r) {
  return kRequests[static_cast<uint32_t>(r) <= kMaxRequest ? static_cast<uint32_t>(r) : 0];
}

constexpr std::string_view to_string(Request r) {
  return request_info(r).name;
}

// The largest reply payload any request can get (GET_EDID's virtio_gpu_resp_edid).
constexpr uint32_t max_reply_size() {
  uint32_t out = 0;
  for (const RequestInfo& info : kRequests) out = info.reply_size > out ? info.reply_size : out;
  return out;
}
constexpr uint32_t kMaxReplySize = max_reply_size();
static_assert(kMaxReplySize == 1056);

// Applies `swizzle` (a little-endian pixel word to 0x00RRGGBB) to `width` pixels and stores 0xffRRGGBB.
template <class Swizzle>
inline void convert_row_with(const std::byte* src, std::byte* dst, uint32_t width, Swizzle swizzle) {
  for (uint32_t i = 0; i < width; ++i) {
    uint32_t w = 0;
    std::memcpy(&w, src + size_t{i} * 4, 4);
    const uint32_t out = (swizzle(w) & 0x00ffffffu) | 0xff000000u;
    std::memcpy(dst + size_t{i} * 4, &out, 4);
  }
}

// True when `format`'s bytes already are UPDATE data. vhost-user-gpu.rst says only "The data payload
// contains the graphical bits"; QEMU's frontend wraps them as PIXMAN_x8r8g8b8 (bytes B, G, R, X on a
// little-endian host) and composites them with PIXMAN_OP_SRC into its x8r8g8b8 surface, so X is ignored.
// Such rows go out unchanged, even straight from the resource (SocketDisplay's zero-copy send): byte 3 (X,
// or B8G8R8A8's alpha) reaches QEMU as it is in the resource, exactly as with QEMU's own backend, whose SRC
// composite of an a8r8g8b8 or x8r8g8b8 resource into its x8r8g8b8 UPDATE buffer is pixman's memcpy path.
constexpr bool is_update_layout(PixelFormat format) {
  return is_known_format(format) && pixel_format_info(format).to_xrgb == ToXrgb::Same;
}

// One row of `width` pixels in `format` to PIXMAN_x8r8g8b8 as stored on a little-endian host (bytes B, G, R,
// X), the UPDATE data format. X is written as 0xff so a consumer that reads it as alpha sees opaque pixels
// (the headless sink keeps its frames so). SocketDisplay converts only formats that are not is_update_layout().
// (A row memcpy plus a separate X-byte pass for B8G8R8X8 measured slower in vgpu_bench than this single
// vectorised pass: the second pass walks 8 MiB again.)
// Each case reads a pixel as a little-endian uint32 w (byte 0 in the low bits); the table says which.
inline void convert_row_to_x8r8g8b8(PixelFormat format, const std::byte* src, std::byte* dst, uint32_t width) {
  switch (pixel_format_info(format).to_xrgb) {
    case ToXrgb::Same: convert_row_with(src, dst, width, [](uint32_t w) { return w; }); return;
    case ToXrgb::ByteSwap: convert_row_with(src, dst, width, [](uint32_t w) { return __builtin_bswap32(w); }); return;
    case ToXrgb::SwapRB:
      convert_row_with(src, dst, width,
                       [](uint32_t w) { return (w & 0x0000ff00u) | ((w & 0xffu) << 16) | ((w >> 16) & 0xffu); });
      return;
    case ToXrgb::ShiftDown: convert_row_with(src, dst, width, [](uint32_t w) { return w >> 8; }); return;
  }
}

}  // namespace vgpu::display

#include "display/edid.h"

#include <algorithm>
#include <string_view>

namespace vgpu {
namespace {

constexpr std::array<uint8_t, 8> kHeader = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
constexpr uint32_t kMaxBlocks = 8;  // 1024 bytes: virtio_gpu_resp_edid's buffer
constexpr size_t kDescriptorOffset = 54;
constexpr size_t kDescriptorSize = 18;
constexpr size_t kExtensionCountOffset = 126;
constexpr size_t kChecksumOffset = 127;
constexpr std::string_view kMonitorName = "vhost-gpu";
constexpr uint32_t kMaxPixelClock10khz = 0xffff;  // a DTD's 16-bit pixel clock, in 10 kHz units

// CVT 1.2 reduced blanking (version 1) constants.
constexpr uint32_t kRbHBlank = 160;
constexpr uint32_t kRbHFrontPorch = 48;
constexpr uint32_t kRbHSync = 32;
constexpr uint32_t kRbVFrontPorch = 3;
constexpr uint32_t kRbMinVBackPorch = 6;
constexpr double kRbMinVBlankUs = 460.0;
constexpr uint32_t kClockStep10khz = 25;  // CVT's 0.25 MHz clock granularity

// One axis of a mode, in pixels (horizontal) or lines (vertical): the visible part, the blanking after it,
// and the front porch and sync pulse inside the blanking.
struct Axis {
  uint32_t active, blank, front, sync;
};

struct Timing {
  Axis h, v;
  uint32_t pixel_clock_10khz;
  uint32_t refresh_hz;
};

// CVT's vertical sync width encodes the aspect ratio; 10 lines for any other ratio.
uint32_t cvt_vsync_lines(uint32_t w, uint32_t h) {
  const uint64_t w64 = w, h64 = h;
  if (w64 * 3 == h64 * 4) return 4;
  if (w64 * 9 == h64 * 16) return 5;
  if (w64 * 10 == h64 * 16) return 6;
  if (w64 * 4 == h64 * 5 || w64 * 9 == h64 * 15) return 7;
  return 10;
}

Timing cvt_reduced_blanking(uint32_t w, uint32_t h, uint32_t refresh_hz) {
  // Reduced blanking fixes everything but the vertical blank and the clock, which follow from the refresh rate.
  const uint32_t v_sync = cvt_vsync_lines(w, h);
  const double h_period_us = (1e6 / refresh_hz - kRbMinVBlankUs) / h;
  const auto vbi_lines = static_cast<uint32_t>(kRbMinVBlankUs / h_period_us) + 1;
  const uint32_t v_blank = std::max(vbi_lines, kRbVFrontPorch + v_sync + kRbMinVBackPorch);
  const uint64_t clock_hz = uint64_t{refresh_hz} * (w + kRbHBlank) * (h + v_blank);
  // CVT steps the clock down to 0.25 MHz; modes under 25 MHz keep 10 kHz precision (a step would cost them a
  // large part of their refresh rate), and the clock never reaches 0, which marks a display descriptor.
  const uint64_t units = clock_hz / 10000;
  const uint64_t step = kClockStep10khz;
  const uint64_t stepped = units >= 100 * step ? units / step * step : units;
  return Timing{.h = {w, kRbHBlank, kRbHFrontPorch, kRbHSync},
                .v = {h, v_blank, kRbVFrontPorch, v_sync},
                .pixel_clock_10khz = static_cast<uint32_t>(std::max<uint64_t>(stepped, 1)),
                .refresh_hz = refresh_hz};
}

// Highest refresh rate <= `wanted` whose pixel clock fits a descriptor.
Timing fitting_timing(uint32_t w, uint32_t h, uint32_t wanted) {
  Timing t = cvt_reduced_blanking(w, h, wanted);
  for (uint32_t hz = wanted; hz > 1 && t.pixel_clock_10khz > kMaxPixelClock10khz; --hz) {
    t = cvt_reduced_blanking(w, h, hz - 1);
  }
  return t;
}

uint32_t millimetres_at_96_dpi(uint32_t pixels) {
  return (pixels * 254 + 480) / 960;
}

// Two 12-bit sizes as a DTD stores them (active and blanking of an axis, or the image size in mm): the low
// bytes of `first` and `second`, then their high nibbles in one byte.
void put_12bit_pair(std::span<uint8_t, 3> d, uint32_t first, uint32_t second) {
  d[0] = first & 0xff;
  d[1] = second & 0xff;
  d[2] = static_cast<uint8_t>(((first >> 8) & 0xf) << 4 | ((second >> 8) & 0xf));
}

void put_detailed_timing(std::span<uint8_t, kDescriptorSize> d, const Timing& t) {
  const uint32_t h_mm = millimetres_at_96_dpi(t.h.active);
  const uint32_t v_mm = millimetres_at_96_dpi(t.v.active);
  d[0] = t.pixel_clock_10khz & 0xff;
  d[1] = (t.pixel_clock_10khz >> 8) & 0xff;
  put_12bit_pair(d.subspan<2, 3>(), t.h.active, t.h.blank);
  put_12bit_pair(d.subspan<5, 3>(), t.v.active, t.v.blank);
  d[8] = t.h.front & 0xff;
  d[9] = t.h.sync & 0xff;
  d[10] = static_cast<uint8_t>((t.v.front & 0xf) << 4 | (t.v.sync & 0xf));
  d[11] = static_cast<uint8_t>(((t.h.front >> 8) & 0x3) << 6 | ((t.h.sync >> 8) & 0x3) << 4 |
                               ((t.v.front >> 4) & 0x3) << 2 | ((t.v.sync >> 4) & 0x3));
  put_12bit_pair(d.subspan<12, 3>(), h_mm, v_mm);
  d[15] = 0;  // no borders
  d[16] = 0;
  d[17] = 0x1a;  // digital separate sync, +hsync, -vsync (CVT reduced blanking)
}

// Display range limits (tag 0xfd) that contain the preferred mode, "range limits only" (no formula).
void put_range_limits(std::span<uint8_t, kDescriptorSize> d, const Timing& t) {
  const uint64_t clock_hz = uint64_t{t.pixel_clock_10khz} * 10000;
  const uint64_t h_total = t.h.active + t.h.blank, v_total = t.v.active + t.v.blank;
  const uint64_t h_khz_floor = clock_hz / h_total / 1000;
  const uint64_t h_khz_ceil = (clock_hz + h_total * 1000 - 1) / (h_total * 1000);
  const uint64_t v_hz_floor = clock_hz / (h_total * v_total);
  const uint64_t v_hz_ceil = (clock_hz + h_total * v_total - 1) / (h_total * v_total);
  const uint64_t min_v = std::clamp<uint64_t>(std::min<uint64_t>(50, v_hz_floor), 1, 255);
  const uint64_t max_v = std::clamp<uint64_t>(std::max<uint64_t>(60, v_hz_ceil), min_v, 255);
  const uint64_t min_h = std::clamp<uint64_t>(std::min<uint64_t>(30, h_khz_floor), 1, 255);
  const uint64_t max_h = std::clamp<uint64_t>(h_khz_ceil, min_h, 255);
  const uint64_t max_clock_10mhz = std::clamp<uint64_t>((clock_hz + 9999999) / 10000000, 1, 255);
  d[3] = 0xfd;
  d[4] = 0;  // no +255 offsets
  d[5] = static_cast<uint8_t>(min_v);
  d[6] = static_cast<uint8_t>(max_v);
  d[7] = static_cast<uint8_t>(min_h);
  d[8] = static_cast<uint8_t>(max_h);
  d[9] = static_cast<uint8_t>(max_clock_10mhz);
  d[10] = 0x01;  // range limits only
  d[11] = 0x0a;
  std::fill(d.begin() + 12, d.end(), 0x20);
}

// A 13-byte text descriptor: the string, a line feed, then spaces.
void put_text(std::span<uint8_t, kDescriptorSize> d, uint8_t tag, std::string_view text) {
  d[3] = tag;
  std::fill(d.begin() + 5, d.end(), 0x20);
  const size_t n = std::min<size_t>(text.size(), 13);
  std::copy_n(text.begin(), n, d.begin() + 5);
  if (n < 13) d[5 + n] = 0x0a;
}

std::span<uint8_t, kDescriptorSize> descriptor(std::array<uint8_t, kEdidBlockSize>& block, size_t index) {
  return std::span<uint8_t, kDescriptorSize>(block.data() + kDescriptorOffset + index * kDescriptorSize,
                                             kDescriptorSize);
}

// sRGB primaries and D65 white as 10-bit CIE fractions (value * 1024, rounded).
void put_srgb_chromaticity(std::array<uint8_t, kEdidBlockSize>& e) {
  constexpr uint32_t rx = 655, ry = 338, gx = 307, gy = 614, bx = 154, by = 61, wx = 320, wy = 337;
  e[25] = static_cast<uint8_t>((rx & 3) << 6 | (ry & 3) << 4 | (gx & 3) << 2 | (gy & 3));
  e[26] = static_cast<uint8_t>((bx & 3) << 6 | (by & 3) << 4 | (wx & 3) << 2 | (wy & 3));
  e[27] = rx >> 2;
  e[28] = ry >> 2;
  e[29] = gx >> 2;
  e[30] = gy >> 2;
  e[31] = bx >> 2;
  e[32] = by >> 2;
  e[33] = wx >> 2;
  e[34] = wy >> 2;
}

uint8_t checksum_byte(std::span<const uint8_t> block_without_checksum) {
  uint32_t sum = 0;
  for (uint8_t b : block_without_checksum) sum += b;
  return static_cast<uint8_t>((256 - (sum & 0xff)) & 0xff);
}

}  // namespace

// Established (bytes 35-37) and standard timings (38-53, eight slots) for common modes that fit inside the
// preferred one, so a guest can switch modes: Linux offers only an EDID's modes once it has an EDID.
static void put_smaller_modes(std::array<uint8_t, kEdidBlockSize>& e, uint32_t w, uint32_t h) {
  struct Established {
    uint32_t width, height;
    size_t byte;
    uint8_t bit;
  };
  constexpr std::array<Established, 3> kEstablished{
      {{640, 480, 35, 0x20}, {800, 600, 35, 0x01}, {1024, 768, 36, 0x08}}};
  for (const auto& m : kEstablished) {
    if (m.width <= w && m.height <= h) e[m.byte] |= m.bit;
  }
  struct Standard {
    uint32_t width, height;
    uint8_t aspect;  // bits 7-6 of the second byte: 0 16:10, 1 4:3, 2 5:4, 3 16:9
  };
  constexpr std::array<Standard, 8> kStandard{{{1280, 720, 3},
                                               {1280, 800, 0},
                                               {1280, 1024, 2},
                                               {1440, 900, 0},
                                               {1600, 900, 3},
                                               {1680, 1050, 0},
                                               {1920, 1080, 3},
                                               {1920, 1200, 0}}};
  size_t slot = 38;
  std::fill(e.begin() + 38, e.begin() + 54, 0x01);  // 0x01 0x01: unused slot
  for (const auto& m : kStandard) {
    if (m.width > w || m.height > h || (m.width == w && m.height == h)) continue;
    e[slot] = static_cast<uint8_t>(m.width / 8 - 31);
    e[slot + 1] = static_cast<uint8_t>(m.aspect << 6 | (60 - 60));  // 60 Hz
    slot += 2;
  }
}

std::array<uint8_t, kEdidBlockSize> generate_edid(const EdidOptions& options) {
  const uint32_t w = std::clamp<uint32_t>(options.width, 1, kEdidMaxDimension);
  const uint32_t h = std::clamp<uint32_t>(options.height, 1, kEdidMaxDimension);
  const uint32_t hz = std::clamp<uint32_t>(options.refresh_hz, 1, kEdidDefaultRefreshHz);
  const Timing t = fitting_timing(w, h, hz);

  std::array<uint8_t, kEdidBlockSize> e{};
  std::copy(kHeader.begin(), kHeader.end(), e.begin());
  // Manufacturer "VGP": three 5-bit letters ('A' = 1), big-endian.
  const uint16_t vendor = static_cast<uint16_t>(('V' - '@') << 10 | ('G' - '@') << 5 | ('P' - '@'));
  e[8] = vendor >> 8;
  e[9] = vendor & 0xff;
  e[10] = 0x01;  // product code 1, little-endian
  e[11] = 0x00;
  e[12] = options.serial & 0xff;
  e[13] = (options.serial >> 8) & 0xff;
  e[14] = (options.serial >> 16) & 0xff;
  e[15] = (options.serial >> 24) & 0xff;
  e[16] = 0;            // week unspecified
  e[17] = 2025 - 1990;  // year of manufacture
  e[18] = 1;            // EDID 1.4
  e[19] = 4;
  e[20] = 0xa5;  // digital, 8 bits per colour, DisplayPort
  e[21] = static_cast<uint8_t>(std::clamp<uint32_t>((millimetres_at_96_dpi(w) + 5) / 10, 1, 255));  // cm
  e[22] = static_cast<uint8_t>(std::clamp<uint32_t>((millimetres_at_96_dpi(h) + 5) / 10, 1, 255));
  e[23] = 120;   // gamma 2.2: (2.2 * 100) - 100
  e[24] = 0x06;  // RGB 4:4:4, sRGB default colour space, preferred timing is native
  put_srgb_chromaticity(e);
  put_smaller_modes(e, w, h);
  put_detailed_timing(descriptor(e, 0), t);
  put_range_limits(descriptor(e, 1), t);
  put_text(descriptor(e, 2), 0xfc, kMonitorName);
  descriptor(e, 3)[3] = 0x10;  // dummy descriptor
  e[kExtensionCountOffset] = 0;
  e[kChecksumOffset] = checksum_byte(std::span<const uint8_t>(e.data(), kChecksumOffset));
  return e;
}

bool edid_valid(std::span<const uint8_t> edid) {
  if (edid.empty() || edid.size() % kEdidBlockSize != 0 || edid.size() / kEdidBlockSize > kMaxBlocks) return false;
  if (!std::equal(kHeader.begin(), kHeader.end(), edid.begin())) return false;
  if (edid[kExtensionCountOffset] + size_t{1} != edid.size() / kEdidBlockSize) return false;
  for (size_t off = 0; off < edid.size(); off += kEdidBlockSize) {
    uint32_t sum = 0;
    for (size_t i = 0; i < kEdidBlockSize; ++i) sum += edid[off + i];
    if ((sum & 0xff) != 0) return false;
  }
  return true;
}

std::optional<EdidMode> edid_preferred_mode(std::span<const uint8_t> edid) {
  if (edid.size() < kEdidBlockSize) return std::nullopt;
  const uint8_t* d = edid.data() + kDescriptorOffset;
  const uint32_t clock = d[0] | uint32_t{d[1]} << 8;
  if (clock == 0) return std::nullopt;
  EdidMode m;
  m.width = d[2] | (uint32_t{d[4]} >> 4) << 8;
  m.height = d[5] | (uint32_t{d[7]} >> 4) << 8;
  m.h_total = m.width + (d[3] | (uint32_t{d[4]} & 0xfu) << 8);
  m.v_total = m.height + (d[6] | (uint32_t{d[7]} & 0xfu) << 8);
  m.pixel_clock_khz = clock * 10;
  return m;
}

}  // namespace vgpu

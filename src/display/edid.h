// EDID 1.4 base blocks (VESA E-EDID 1.4) for displays that do not supply one: the headless sink, and the
// device when the frontend's display socket has no EDID for a scanout. One 128-byte block: a preferred
// detailed timing with CVT reduced-blanking timings computed from the size, range limits, the monitor name
// "vhost-gpu", sRGB chromaticity, and a checksum.
//
//   std::array<uint8_t, kEdidBlockSize> blob = generate_edid({.width = 1920, .height = 1080});
//   auto mode = edid_preferred_mode(blob);     // {1920, 1080, ...}
//   bool ok = edid_valid(blob);                // header, checksums, extension count
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

namespace vgpu {

constexpr uint32_t kEdidBlockSize = 128;
// A detailed timing descriptor holds 12-bit sizes; larger requests are clamped to this.
constexpr uint32_t kEdidMaxDimension = 4095;
constexpr uint32_t kEdidDefaultRefreshHz = 60;

struct EdidOptions {
  uint32_t width = 1280;
  uint32_t height = 800;
  uint32_t refresh_hz = kEdidDefaultRefreshHz;  // lowered when the pixel clock would not fit 655.35 MHz
  uint32_t serial = 0;                          // e.g. the scanout index, so outputs differ
};

// The preferred mode as a detailed timing descriptor states it.
struct EdidMode {
  uint32_t width = 0;            // active pixels
  uint32_t height = 0;           // active lines
  uint32_t pixel_clock_khz = 0;  // the descriptor stores it in 10 kHz units
  uint32_t h_total = 0;          // active + blanking pixels
  uint32_t v_total = 0;          // active + blanking lines
  bool operator==(const EdidMode&) const = default;
};

// A valid EDID 1.4 base block. Sizes are clamped to [1, kEdidMaxDimension]; refresh_hz to [1, 60].
std::array<uint8_t, kEdidBlockSize> generate_edid(const EdidOptions& options);

// True when `edid` is 1..8 whole blocks, block 0 has the fixed header, its extension count matches the size,
// and every block's bytes sum to 0 mod 256.
bool edid_valid(std::span<const uint8_t> edid);

// The first detailed timing descriptor of block 0 (the preferred mode in EDID 1.4); nullopt when the block is
// too short or the descriptor is a display descriptor.
std::optional<EdidMode> edid_preferred_mode(std::span<const uint8_t> edid);

}  // namespace vgpu

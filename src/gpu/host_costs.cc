#include "gpu/host_costs.h"

#include <algorithm>
#include <array>

#include "common/checked.h"

namespace vgpu::host_costs {

namespace {

struct FormatSize {
  uint16_t format;
  uint8_t bytes;
};

// VIRGL_FORMAT_* values (virglrenderer src/virgl_hw.h) whose texels take other than 4 bytes, sorted by value.
// Formats of at most 4 bytes are charged 4, which is never less than they take.
// clang-format off
constexpr std::array kSizes = std::to_array<FormatSize>({
    {24, 8},  {25, 16}, {26, 24}, {27, 32},           // R64, R64G64, R64G64B64, R64G64B64A64 _FLOAT
    {29, 8},  {30, 12}, {31, 16},                     // R32G32, R32G32B32, R32G32B32A32 _FLOAT
    {33, 8},  {34, 12}, {35, 16},                     // ... _UNORM
    {37, 8},  {38, 12}, {39, 16},                     // ... _USCALED
    {41, 8},  {42, 12}, {43, 16},                     // ... _SNORM
    {45, 8},  {46, 12}, {47, 16},                     // ... _SSCALED
    {50, 6},  {51, 8},                                // R16G16B16, R16G16B16A16 _UNORM
    {54, 6},  {55, 8},                                // ... _USCALED
    {58, 6},  {59, 8},                                // ... _SNORM
    {62, 6},  {63, 8},                                // ... _SSCALED
    {88, 8},  {89, 12}, {90, 16},                     // R32G32, R32G32B32, R32G32B32A32 _FIXED
    {93, 6},  {94, 8},                                // R16G16B16, R16G16B16A16 _FLOAT
    {126, 8}, {138, 8},                               // Z32_FLOAT_S8X24_UINT, X32_S8X24_UINT
    {161, 8},                                         // L32A32_FLOAT
    {187, 6}, {188, 8}, {191, 6}, {192, 8},           // R16G16B16(A16) _UINT, _SINT
    {194, 8}, {195, 12}, {196, 16},                   // R32G32, R32G32B32, R32G32B32A32 _UINT
    {198, 8}, {199, 12}, {200, 16},                   // ... _SINT
    {220, 8}, {224, 8},                               // L32A32 _UINT, _SINT
    {234, 8}, {235, 8}, {236, 8}, {237, 8}, {238, 8}, // R16G16B16X16 _UNORM/_SNORM/_FLOAT/_UINT/_SINT
    {239, 16}, {240, 16}, {241, 16},                  // R32G32B32X32 _FLOAT/_UINT/_SINT
    {246, 8}, {251, 8}, {252, 8},                     // R32A32 _FLOAT/_UINT/_SINT
});
// clang-format on

}  // namespace

uint32_t virgl_texel_bytes(uint32_t virgl_format) {
  const auto* it = std::lower_bound(kSizes.begin(), kSizes.end(), virgl_format,
                                    [](const FormatSize& s, uint32_t f) { return s.format < f; });
  if (it != kSizes.end() && it->format == virgl_format) return it->bytes;
  return 4;
}

std::optional<uint64_t> resource_3d_bytes(const Resource3DArgs& shape) {
  const uint64_t h = std::max(shape.height, 1u), d = std::max(shape.depth, 1u);
  const uint64_t layers = std::max(shape.array_size, 1u), samples = std::max(shape.nr_samples, 1u);
  auto bytes = checked_mul<uint64_t>(shape.width, h);
  for (const uint64_t factor : {d, layers, samples, uint64_t{virgl_texel_bytes(shape.format)}}) {
    if (bytes) bytes = checked_mul<uint64_t>(*bytes, factor);
  }
  // A full mip chain adds at most a third (2D) or a seventh (3D); half again is a bound for both.
  if (bytes && shape.last_level > 0) bytes = checked_add<uint64_t>(*bytes, *bytes / 2 + 1);
  if (bytes) bytes = checked_add<uint64_t>(*bytes, kPerResource);
  return bytes;
}

}  // namespace vgpu::host_costs

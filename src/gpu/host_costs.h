// What a guest's objects cost this process, charged against --max-resource-memory (ResourceTable) when they
// are made and refunded when they go. Each figure is an upper bound of what we or the renderer library keep
// for the object, so a guest can never spend more host memory than it is charged (security audit findings
// F2, F4 and F5: before, a 1x1 resource was charged 4 bytes and cost about 540, a context was charged nothing
// and cost 2.3 MiB, and every 3D texel was charged 4 bytes whatever its format and sample count).
//
//   auto bytes = host_costs::resource_3d_bytes(args);   // a RESOURCE_CREATE_3D's Resource3DArgs
//   if (!bytes || !resources_.reserve(*bytes)) return fail(GpuError::OutOfMemory);
#pragma once

#include <cstdint>
#include <optional>

#include "renderer/renderer_3d.h"

namespace vgpu::host_costs {

// Bookkeeping of one resource, beyond its pixels: the ResourceTable node, the renderer's node and image
// header (measured: 542 bytes per 1x1 soft2d resource, 200,000 of them), rounded up.
inline constexpr uint64_t kPerResource = 1024;
// One backing entry: the GuestScatterList entry, virglrenderer's copy and its iovec (about 80 bytes).
inline constexpr uint64_t kPerBackingEntry = 96;
// One 3D context: a virglrenderer context with its GL context (measured with llvmpipe: 2,381 KiB each).
inline constexpr uint64_t kPerContext = 3ull << 20;

// Bytes of `entries` backing entries.
constexpr uint64_t backing_bytes(uint64_t entries) {
  return entries * kPerBackingEntry;
}

// The most bytes one texel of a virgl format (VIRGL_FORMAT_*, virglrenderer's virgl_hw.h) takes: 32 for
// R64G64B64A64, 16 for four 32-bit channels, and so on; 4 for every format of at most 4 bytes (block-compressed
// formats, which take 1 or less, are over-charged rather than listed).
uint32_t virgl_texel_bytes(uint32_t virgl_format);

// Host bytes a RESOURCE_CREATE_3D of this shape may make the renderer allocate: texels x bytes per texel x
// samples x layers, half as much again with mip levels (a full chain adds at most a third), plus
// kPerResource. std::nullopt when that does not fit 64 bits.
std::optional<uint64_t> resource_3d_bytes(const Resource3DArgs& shape);

}  // namespace vgpu::host_costs

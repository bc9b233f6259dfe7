// What the device charges a guest for its objects (audit F2, F4, F5): the texel size follows the format, samples
// and mip levels multiply, bookkeeping is charged per resource, contexts are counted and charged. Each test
// fails on the old accounting (4 bytes per texel whatever the format, nothing per resource or context).
#include "gpu/host_costs.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "support/device_parts.h"
#include "support/fake_renderer_3d.h"
#include "support/gpu_harness.h"

namespace vgpu {
namespace {

using host_costs::kPerResource;
using host_costs::resource_3d_bytes;
using host_costs::virgl_texel_bytes;

// VIRGL_FORMAT_* values from virglrenderer's virgl_hw.h.
constexpr uint32_t kB8G8R8A8 = 1, kR64G64B64A64Float = 27, kR32G32B32A32Float = 31, kR16G16B16A16Float = 94,
                   kR32G32B32Float = 30, kDxt1Rgb = 105, kR8Unorm = 64;

TEST(HostCosts, TexelBytes_FollowTheFormat) {
  EXPECT_EQ(virgl_texel_bytes(kB8G8R8A8), 4u);
  EXPECT_EQ(virgl_texel_bytes(kR8Unorm), 4u);  // never less than 4
  EXPECT_EQ(virgl_texel_bytes(kR16G16B16A16Float), 8u);
  EXPECT_EQ(virgl_texel_bytes(kR32G32B32Float), 12u);
  EXPECT_EQ(virgl_texel_bytes(kR32G32B32A32Float), 16u);
  EXPECT_EQ(virgl_texel_bytes(kR64G64B64A64Float), 32u);
  EXPECT_EQ(virgl_texel_bytes(kDxt1Rgb), 4u);     // compressed: over-charged, never under
  EXPECT_EQ(virgl_texel_bytes(0xffffffffu), 4u);  // unknown
}

TEST(HostCosts, Resource3D_FormatSamplesLayersAndMipsMultiply) {
  // The audit's case: 4096x4096 RGBA32F with 4 samples is 1 GiB, not 64 MiB.
  EXPECT_EQ(
      resource_3d_bytes({.target = 2, .format = kR32G32B32A32Float, .width = 4096, .height = 4096, .nr_samples = 4}),
      (uint64_t{4096} * 4096 * 16 * 4) + kPerResource);
  EXPECT_EQ(
      resource_3d_bytes({.target = 2, .format = kB8G8R8A8, .width = 64, .height = 64, .depth = 1, .array_size = 6}),
      (uint64_t{64} * 64 * 4 * 6) + kPerResource);
  EXPECT_EQ(resource_3d_bytes({.target = 2, .format = kB8G8R8A8, .width = 64, .height = 64, .last_level = 6}),
            (uint64_t{64} * 64 * 4) * 3 / 2 + 1 + kPerResource);
  EXPECT_EQ(resource_3d_bytes({.target = 2, .format = kB8G8R8A8, .width = 1}),
            4 + kPerResource);  // 0 height/depth/... mean 1
}

TEST(HostCosts, Resource3D_OverflowIsNullopt) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  EXPECT_EQ(
      resource_3d_bytes({.target = 2, .format = kR64G64B64A64Float, .width = kMax, .height = kMax, .depth = kMax}),
      std::nullopt);
}

TEST(HostCosts, TinyResources_ChargedTheirBookkeeping) {
  GpuDeviceConfig cfg;
  cfg.max_resource_memory = 1 << 20;
  test::GpuHarness h(cfg);
  uint32_t created = 0;
  while (created < 100'000 && h.create_2d(created + 1, 1, 1) == VIRTIO_GPU_RESP_OK_NODATA) ++created;

  // 1 MiB at 1 KiB + 4 bytes each; the old charge (4 bytes) let 262,144 through.
  EXPECT_EQ(created, (1u << 20) / (kPerResource + 4));
}

TEST(HostCosts, Contexts_CountedAndCharged) {
  GpuDeviceConfig cfg;
  cfg.max_contexts = 4;
  test::FakeRenderer3D r3d;
  test::GpuHarness h(cfg, test::GpuHarness::k3dFeatures, 64ull << 20, Renderers::with_3d(test::borrow(r3d)));
  const uint64_t before = h.device().resources().used_bytes();
  for (uint32_t id = 1; id <= 4; ++id) ASSERT_EQ(h.ctx_create(id), VIRTIO_GPU_RESP_OK_NODATA) << "context " << id;

  EXPECT_EQ(h.ctx_create(5), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(h.device().resources().used_bytes() - before, 4 * host_costs::kPerContext);
}

TEST(HostCosts, Contexts_BeyondTheBudget_Refused_AndRefundedOnDestroy) {
  GpuDeviceConfig cfg;
  cfg.max_resource_memory = 2 * host_costs::kPerContext;
  test::FakeRenderer3D r3d;
  test::GpuHarness h(cfg, test::GpuHarness::k3dFeatures, 64ull << 20, Renderers::with_3d(test::borrow(r3d)));
  ASSERT_EQ(h.ctx_create(1), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h.ctx_create(2), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(h.ctx_create(3), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);

  virtio_gpu_ctx_destroy destroy{};
  destroy.hdr.type = VIRTIO_GPU_CMD_CTX_DESTROY;
  destroy.hdr.ctx_id = 1;
  ASSERT_EQ(h.command_type(destroy), VIRTIO_GPU_RESP_OK_NODATA);

  EXPECT_EQ(h.ctx_create(3), VIRTIO_GPU_RESP_OK_NODATA);
}

}  // namespace
}  // namespace vgpu

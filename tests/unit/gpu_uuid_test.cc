// RESOURCE_ASSIGN_UUID: offered always; a UUID per resource that is an RFC 9562 version 4 UUID, the same however
// often it is asked for, different between resources, and gone with the resource. Refused unless negotiated.
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>

#include <array>
#include <cstring>
#include <optional>
#include <set>

#include "support/gpu_harness.h"

namespace vgpu::test {
namespace {

constexpr uint64_t kUuidFeatures = (uint64_t{1} << VIRTIO_GPU_F_EDID) | (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_UUID);
using Uuid = std::array<uint8_t, 16>;

class GpuUuid : public ::testing::Test {
 protected:
  // The response type, and the UUID when it is RESP_OK_RESOURCE_UUID.
  std::pair<uint32_t, std::optional<Uuid>> assign(uint32_t id, GpuHarness& h) {
    virtio_gpu_resource_assign_uuid req{};
    req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID;
    req.resource_id = id;
    const auto s = h.submit(req, sizeof(virtio_gpu_resp_resource_uuid));
    const auto r = h.collect(s);
    const uint32_t type = GpuHarness::response_type(r);
    if (type != VIRTIO_GPU_RESP_OK_RESOURCE_UUID || !r || r->size() < sizeof(virtio_gpu_resp_resource_uuid)) {
      return {type, std::nullopt};
    }
    virtio_gpu_resp_resource_uuid resp{};
    std::memcpy(&resp, r->data(), sizeof(resp));
    Uuid u{};
    std::memcpy(u.data(), resp.uuid, u.size());
    return {type, u};
  }
  std::pair<uint32_t, std::optional<Uuid>> assign(uint32_t id) { return assign(id, h_); }

  GpuHarness h_{GpuDeviceConfig{}, kUuidFeatures};
};

TEST_F(GpuUuid, Assign_Version4_StableForTheResourcesLife) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), VIRTIO_GPU_RESP_OK_NODATA);
  const auto [type, first] = assign(1);
  ASSERT_EQ(type, VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)[6] >> 4, 4);       // version 4
  EXPECT_EQ((*first)[8] & 0xc0, 0x80);  // RFC variant
  EXPECT_EQ(assign(1).second, first);   // asked again: the same
  EXPECT_EQ(assign(1).second, first);
}

TEST_F(GpuUuid, Assign_UniqueAcrossResources_NewAfterUnref) {
  std::set<Uuid> seen;
  for (uint32_t id = 1; id <= 64; ++id) {
    ASSERT_EQ(h_.create_2d(id, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
    const auto u = assign(id).second;
    ASSERT_TRUE(u);
    EXPECT_TRUE(seen.insert(*u).second) << "resource " << id;
  }
  virtio_gpu_resource_unref unref{};
  unref.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
  unref.resource_id = 7;
  ASSERT_EQ(h_.command_type(unref), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h_.create_2d(7, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  const auto again = assign(7).second;
  ASSERT_TRUE(again);
  EXPECT_FALSE(seen.contains(*again));  // a new resource under an old id is a new object
}

TEST_F(GpuUuid, Assign_UnknownResource_InvalidResourceId) {
  EXPECT_EQ(assign(42).first, VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuUuid, Assign_FeatureNotNegotiated_Refused) {
  GpuHarness plain(GpuDeviceConfig{}, uint64_t{1} << VIRTIO_GPU_F_EDID);
  ASSERT_EQ(plain.create_2d(1, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(assign(1, plain).first, VIRTIO_GPU_RESP_ERR_UNSPEC);
}

}  // namespace
}  // namespace vgpu::test

// RESOURCE_ASSIGN_UUID: offered always; a UUID per resource that is an RFC 9562 version 4 UUID, the same however
// often it is asked for, different between resources, and gone with the resource. Refused unless negotiated.
// Sharing: with a frontend channel, a shareable resource's UUID is announced (SHARED_OBJECT_ADD) once, its
// buffer answers GET_SHARED_OBJECT with the resource's pixels, and it is withdrawn on unref and reset.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <array>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

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

// The frontend's table as the device sees it: what was added and removed, answers given at once.
class RecordingObjects final : public SharedObjects {
 public:
  Result<void, BackendReply> add(const ObjectUuid& uuid, BackendCallback done) override {
    added.push_back(uuid);
    done(answer);
    return {};
  }
  Result<void, BackendReply> remove(const ObjectUuid& uuid, BackendCallback done) override {
    removed.push_back(uuid);
    done(BackendReply::Done);
    return {};
  }
  BackendReply answer = BackendReply::Done;
  std::vector<ObjectUuid> added;
  std::vector<ObjectUuid> removed;
};

constexpr uint64_t kBlobUuidFeatures = kUuidFeatures | (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB);

class GpuSharing : public GpuUuid {
 protected:
  GpuSharing() { h_.device().set_shared_objects(&objects_); }
  ~GpuSharing() override { h_.device().set_shared_objects(nullptr); }
  uint32_t unref(uint32_t id) {
    virtio_gpu_resource_unref u{};
    u.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
    u.resource_id = id;
    return h_.command_type(u);
  }
  RecordingObjects objects_;
};

TEST_F(GpuSharing, Assign_2DResource_AnnouncedOnceWithItsPixels) {
  ASSERT_EQ(h_.create_2d(1, 8, 4), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h_.attach_backing(1, 8 * 4 * 4), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h_.transfer(1, {0, 0, 8, 4}, 0), VIRTIO_GPU_RESP_OK_NODATA);
  const auto u = assign(1).second;
  ASSERT_TRUE(u);
  ASSERT_EQ(objects_.added.size(), 1u);
  EXPECT_EQ(objects_.added[0], *u);
  EXPECT_EQ(assign(1).second, u);
  EXPECT_EQ(objects_.added.size(), 1u);  // asked again: not announced twice

  auto fd = h_.device().shared_object_fd(*u);
  ASSERT_TRUE(fd) << fd.error();
  struct stat st {};
  ASSERT_EQ(::fstat(fd->get(), &st), 0);
  ASSERT_EQ(st.st_size, 8 * 4 * 4);
  // The importer sees the guest's bytes (the harness fills backings with a known pattern)...
  const std::vector<std::byte> expected = h_.guest().read(h_.backing_address(1), 8 * 4 * 4);
  std::vector<std::byte> got(expected.size());
  ASSERT_EQ(::pread(fd->get(), got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, expected);
  // ...and what the guest transfers later, in the same file.
  std::vector<std::byte> ones(8 * 4 * 4, std::byte{0x5a});
  h_.guest().write(h_.backing_address(1), ones);
  ASSERT_EQ(h_.transfer(1, {0, 0, 8, 4}, 0), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(::pread(fd->get(), got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, ones);
  // The importer cannot shrink the pages from under the device.
  EXPECT_NE(::ftruncate(fd->get(), 0), 0);
}

TEST_F(GpuSharing, Unref_Withdraws_ThenTheUuidIsUnknown) {
  ASSERT_EQ(h_.create_2d(1, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  const auto u = assign(1).second;
  ASSERT_TRUE(u);
  ASSERT_EQ(unref(1), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(objects_.removed.size(), 1u);
  EXPECT_EQ(objects_.removed[0], *u);
  EXPECT_FALSE(h_.device().shared_object_fd(*u));
}

TEST_F(GpuSharing, Reset_WithdrawsEveryAnnouncedUuid) {
  for (uint32_t id = 1; id <= 3; ++id) {
    ASSERT_EQ(h_.create_2d(id, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
    ASSERT_TRUE(assign(id).second);
  }
  ASSERT_EQ(h_.create_2d(4, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);  // never asked for: nothing to withdraw
  h_.device().reset();
  EXPECT_EQ(objects_.removed.size(), 3u);
  std::set<ObjectUuid> added(objects_.added.begin(), objects_.added.end());
  std::set<ObjectUuid> removed(objects_.removed.begin(), objects_.removed.end());
  EXPECT_EQ(added, removed);
}

TEST_F(GpuSharing, OnlySharedObject_ExactlyOne) {
  EXPECT_FALSE(h_.device().only_shared_object());  // none
  ASSERT_EQ(h_.create_2d(1, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h_.create_2d(2, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  const auto u = assign(1).second;
  ASSERT_TRUE(u);
  EXPECT_EQ(h_.device().only_shared_object().value(), *u);
  ASSERT_TRUE(assign(2).second);
  EXPECT_FALSE(h_.device().only_shared_object());  // two: which one cannot be told
}

TEST_F(GpuSharing, UnknownUuid_Refused) {
  EXPECT_FALSE(h_.device().shared_object_fd(ObjectUuid{1, 2, 3}));
}

TEST_F(GpuSharing, FrontendRefusesTheAdd_NotShared) {
  objects_.answer = BackendReply::Refused;
  ASSERT_EQ(h_.create_2d(1, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  const auto u = assign(1).second;
  ASSERT_TRUE(u);  // the guest still gets its UUID
  EXPECT_FALSE(h_.device().shared_object_fd(*u));
  ASSERT_EQ(unref(1), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_TRUE(objects_.removed.empty());  // nothing to withdraw
}

TEST_F(GpuSharing, NoChannel_UuidButNoAnnouncement) {
  h_.device().set_shared_objects(nullptr);
  ASSERT_EQ(h_.create_2d(1, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_TRUE(assign(1).second);
  EXPECT_TRUE(objects_.added.empty());
}

TEST(GpuSharingBlob, CrossDeviceGuestBlob_AcceptedWithUuid_ButNotAnnounced) {
  GpuHarness h(GpuDeviceConfig{}, kBlobUuidFeatures);
  RecordingObjects objects;
  h.device().set_shared_objects(&objects);
  ASSERT_EQ(h.create_blob(1, VIRTIO_GPU_BLOB_MEM_GUEST, 4096, 1, VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE),
            VIRTIO_GPU_RESP_OK_NODATA);
  virtio_gpu_resource_assign_uuid req{};
  req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID;
  req.resource_id = 1;
  const auto r = h.collect(h.submit(req, sizeof(virtio_gpu_resp_resource_uuid)));
  EXPECT_EQ(GpuHarness::response_type(r), VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
  EXPECT_TRUE(objects.added.empty());  // its pages are guest RAM: never handed to another process
  h.device().set_shared_objects(nullptr);
}

}  // namespace
}  // namespace vgpu::test

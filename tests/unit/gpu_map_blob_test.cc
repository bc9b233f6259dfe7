// Host-visible memory on the device: RESOURCE_MAP_BLOB / UNMAP_BLOB held until the frontend answers, every
// guest-controlled range checked before the frontend is asked, mappings taken out before their blob or context
// goes, BLOB_ALIGNMENT in features and config space, and the per-guest cap on Venus contexts. The frontend is a
// FakeShmemMapper, the renderer a FakeRenderer3D whose blobs map as memfds behind a header (as lavapipe's).
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>

#include "support/fake_renderer_3d.h"
#include "support/fake_shmem_mapper.h"
#include "support/gpu_harness.h"

namespace vgpu::test {
namespace {

constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;
constexpr uint32_t kBadParam = VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
constexpr uint32_t kUnspec = VIRTIO_GPU_RESP_ERR_UNSPEC;
constexpr uint64_t kHostmem = 1u << 20;
constexpr uint64_t kPage = 4096;
constexpr uint32_t kCtx = 1;
constexpr uint32_t kHost3d = VIRTIO_GPU_BLOB_MEM_HOST3D;
constexpr uint32_t kMappable = VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE;
constexpr uint64_t kFeatures = GpuHarness::k3dFeatures | (uint64_t{1} << kFeatureBlobAlignment);

std::shared_ptr<FakeRenderer3D> venus_renderer() {
  auto r = std::make_shared<FakeRenderer3D>();
  r->capset_infos.push_back({kCapsetVenus, 0, 160});
  return r;
}

class GpuMapBlob : public ::testing::Test {
 protected:
  explicit GpuMapBlob(uint32_t max_venus = 16)
      : r_(venus_renderer()),
        h_(
            GpuDeviceConfig{
                .hostmem_size = kHostmem, .blob_alignment = BlobAlignmentMode::On, .max_venus_contexts = max_venus},
            kFeatures, 64ull << 20, Renderers::with_3d(r_)) {
    h_.device().set_shmem_mapper(&mapper_);
    EXPECT_EQ(h_.ctx_create(kCtx, kCapsetVenus), kOk);
  }

  uint32_t create_host_blob(uint32_t id, uint64_t size, uint32_t flags = kMappable, uint32_t ctx = kCtx) {
    return h_.create_blob(id, kHost3d, size, 1, flags, /*blob_id=*/id, ctx);
  }
  GpuHarness::Submitted submit_map(uint32_t id, uint64_t offset) {
    virtio_gpu_resource_map_blob req{};
    req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB;
    req.resource_id = id;
    req.offset = offset;
    return h_.submit(req, sizeof(virtio_gpu_resp_map_info));
  }
  GpuHarness::Submitted submit_unmap(uint32_t id) {
    virtio_gpu_resource_unmap_blob req{};
    req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB;
    req.resource_id = id;
    return h_.submit(req);
  }
  // The response type of a submitted command (0: not answered yet).
  uint32_t type_of(const GpuHarness::Submitted& s) { return GpuHarness::response_type(h_.collect(s)); }
  // MAP_BLOB answered by the frontend with `reply`; the response type.
  uint32_t map(uint32_t id, uint64_t offset, BackendReply reply = BackendReply::Done) {
    const size_t before = mapper_.requests.size();
    const auto s = submit_map(id, offset);
    if (mapper_.requests.size() == before) return type_of(s);  // refused before asking
    mapper_.answer(before, reply);
    return type_of(s);
  }
  uint32_t unref(uint32_t id) {
    virtio_gpu_resource_unref req{};
    req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
    req.resource_id = id;
    return h_.command_type(req);
  }
  [[nodiscard]] size_t mappings() const { return h_region()->count(); }
  [[nodiscard]] const HostVisibleRegion* h_region() const { return dev().host_visible_region(); }
  [[nodiscard]] const GpuDevice& dev() const { return const_cast<GpuHarness&>(h_).device(); }

  std::shared_ptr<FakeRenderer3D> r_;
  GpuHarness h_;
  FakeShmemMapper mapper_;
};

TEST_F(GpuMapBlob, Config_OffersShmid1BlobAlignmentAndThePageInConfigSpace) {
  GpuDevice& d = h_.device();
  EXPECT_TRUE(d.host_visible());
  EXPECT_EQ(d.shmem_regions(), (std::vector<uint64_t>{0, kHostmem}));
  EXPECT_NE(d.features() & (uint64_t{1} << kFeatureBlobAlignment), 0u);
  EXPECT_EQ(d.config_size(), 20u);
  std::array<std::byte, 4> alignment{};
  ASSERT_TRUE(d.read_config(16, alignment));
  uint32_t value = 0;
  std::memcpy(&value, alignment.data(), 4);
  EXPECT_EQ(value, kPage);
}

TEST(GpuMapBlobConfig, RendererCannotMapBlobs_NoRegionNoAlignmentBit) {
  auto r = venus_renderer();
  r->mappable = false;
  GpuHarness h(GpuDeviceConfig{.hostmem_size = kHostmem}, kFeatures, 64ull << 20, Renderers::with_3d(r));
  EXPECT_FALSE(h.device().host_visible());
  EXPECT_TRUE(h.device().shmem_regions().empty());
  EXPECT_EQ(h.device().features() & (uint64_t{1} << kFeatureBlobAlignment), 0u);
  EXPECT_EQ(h.device().config_size(), 16u);
}

TEST(GpuMapBlobConfig, BlobAlignmentOff_NotOffered_FieldZero_MappingsStillPageAligned) {
  auto r = venus_renderer();
  GpuHarness h(GpuDeviceConfig{.hostmem_size = kHostmem, .blob_alignment = BlobAlignmentMode::Off}, kFeatures,
               64ull << 20, Renderers::with_3d(r));
  ASSERT_EQ(::sysconf(_SC_PAGESIZE), 4096);
  EXPECT_TRUE(h.device().host_visible());
  EXPECT_EQ(h.device().features() & (uint64_t{1} << kFeatureBlobAlignment), 0u);
  std::array<std::byte, 4> field{};
  ASSERT_TRUE(h.device().read_config(16, field));
  EXPECT_EQ(field, (std::array<std::byte, 4>{}));  // reserved: zero
  EXPECT_EQ(h.device().host_visible_region()->alignment(), kPage);
  const GpuDeviceConfig on_cfg{.hostmem_size = kHostmem};  // blob_alignment: the default
  GpuDevice on(on_cfg, nullptr, Renderers::with_3d(r), standard_displays(on_cfg));
  EXPECT_NE(on.features() & (uint64_t{1} << kFeatureBlobAlignment), 0u);
}

TEST(GpuMapBlobConfig, NoHostmem_AsBefore) {
  auto r = venus_renderer();
  GpuHarness h(GpuDeviceConfig{}, kFeatures, 64ull << 20, Renderers::with_3d(r));
  EXPECT_FALSE(h.device().host_visible());
  EXPECT_TRUE(h.device().shmem_regions().empty());
  EXPECT_EQ(h.device().features() & (uint64_t{1} << kFeatureBlobAlignment), 0u);
}

TEST_F(GpuMapBlob, Map_FrontendSaysYes_OkMapInfoOnlyAfterTheReply) {
  ASSERT_EQ(create_host_blob(5, 2 * kPage), kOk);
  const auto s = submit_map(5, 4 * kPage);
  EXPECT_EQ(type_of(s), 0u);  // held
  EXPECT_EQ(h_.device().held_commands(), 1u);
  ASSERT_EQ(mapper_.requests.size(), 1u);
  const auto& req = mapper_.requests[0];
  EXPECT_TRUE(req.map);
  EXPECT_EQ(req.range.shmid, VIRTIO_GPU_SHM_ID_HOST_VISIBLE);
  EXPECT_EQ(req.range.shm_offset, 4 * kPage);
  EXPECT_EQ(req.range.len, 2 * kPage);
  EXPECT_EQ(req.fd_offset, FakeRenderer3D::kMapHeader);  // the data's offset in the renderer's fd
  EXPECT_EQ(req.inode, r_->mapped_inodes.at(5));
  EXPECT_TRUE(req.writable);
  mapper_.answer(0, BackendReply::Done);
  const auto response = h_.collect(s);
  ASSERT_TRUE(response);
  ASSERT_EQ(response->size(), sizeof(virtio_gpu_resp_map_info));
  virtio_gpu_resp_map_info info{};
  std::memcpy(&info, response->data(), sizeof(info));
  EXPECT_EQ(info.hdr.type, VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(info.map_info, FakeRenderer3D::kMapInfo);
  EXPECT_EQ(h_.device().held_commands(), 0u);
}

TEST_F(GpuMapBlob, Map_UnalignedBlobSize_MapsWholePages) {
  ASSERT_EQ(h_.device().has_feature(kFeatureBlobAlignment), true);
  h_.device().set_acked_features(kFeatures & ~(uint64_t{1} << kFeatureBlobAlignment));  // a 6.x driver
  ASSERT_EQ(create_host_blob(5, kPage + 100), kOk);
  EXPECT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(mapper_.requests.at(0).range.len, 2 * kPage);
}

TEST_F(GpuMapBlob, Map_FrontendRefusesOrIsLost_ErrUnspecAndTheRangeIsFree) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  EXPECT_EQ(map(5, 0, BackendReply::Refused), kUnspec);
  EXPECT_EQ(mappings(), 0u);
  EXPECT_EQ(map(5, 0, BackendReply::ChannelLost), kUnspec);
  EXPECT_EQ(map(5, 0, BackendReply::Timeout), kUnspec);
  EXPECT_EQ(mappings(), 0u);
  EXPECT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
}

TEST_F(GpuMapBlob, Map_HostileRanges_InvalidParameterWithoutAskingTheFrontend) {
  ASSERT_EQ(create_host_blob(5, 2 * kPage), kOk);
  ASSERT_EQ(create_host_blob(6, 2 * kPage), kOk);
  EXPECT_EQ(map(5, kPage + 1), kBadParam);                    // unaligned
  EXPECT_EQ(map(5, 512), kBadParam);                          // unaligned
  EXPECT_EQ(map(5, kHostmem - kPage), kBadParam);             // runs past the end
  EXPECT_EQ(map(5, kHostmem), kBadParam);                     // starts at the end
  EXPECT_EQ(map(5, ~uint64_t{0} & ~(kPage - 1)), kBadParam);  // wraps
  EXPECT_TRUE(mapper_.requests.empty());
  EXPECT_EQ(map(5, 2 * kPage), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(map(6, 3 * kPage), kBadParam);  // overlaps the second page of 5
  EXPECT_EQ(map(6, kPage), kBadParam);      // overlaps the first page of 5
  EXPECT_EQ(map(5, 8 * kPage), kBadParam);  // mapped already
  EXPECT_EQ(mapper_.requests.size(), 1u);
  EXPECT_EQ(map(6, 4 * kPage), VIRTIO_GPU_RESP_OK_MAP_INFO);  // adjacent is fine
  EXPECT_EQ(mappings(), 2u);
}

TEST_F(GpuMapBlob, Map_NotAMappableHostBlob_Refused) {
  ASSERT_EQ(create_host_blob(5, kPage, /*flags=*/0), kOk);
  ASSERT_EQ(h_.create_blob(6, VIRTIO_GPU_BLOB_MEM_GUEST, kPage), kOk);
  ASSERT_EQ(h_.create_2d(7, 16, 16), kOk);
  EXPECT_EQ(map(5, 0), kBadParam);
  EXPECT_EQ(map(6, 0), kBadParam);
  EXPECT_EQ(map(7, 0), kBadParam);
  EXPECT_EQ(map(99, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  EXPECT_TRUE(mapper_.requests.empty());
}

TEST_F(GpuMapBlob, Map_RendererHasNoFd_ErrUnspecAndNothingAsked) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  r_->mappable = false;
  EXPECT_EQ(map(5, 0), kUnspec);
  EXPECT_TRUE(mapper_.requests.empty());
  EXPECT_EQ(mappings(), 0u);
}

TEST_F(GpuMapBlob, Map_ChannelGoneOrNeverThere_ErrUnspec) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  mapper_.connected = false;
  EXPECT_EQ(map(5, 0), kUnspec);
  EXPECT_EQ(mappings(), 0u);
  h_.device().set_shmem_mapper(nullptr);
  EXPECT_EQ(map(5, 0), kUnspec);
}

TEST_F(GpuMapBlob, Unmap_Mapped_AnsweredOkAfterTheFrontendUnmaps) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  ASSERT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  const auto s = submit_unmap(5);
  EXPECT_EQ(type_of(s), 0u);
  ASSERT_EQ(mapper_.requests.size(), 2u);
  EXPECT_FALSE(mapper_.requests[1].map);
  EXPECT_EQ(mapper_.requests[1].range.shm_offset, 0u);
  EXPECT_EQ(mapper_.requests[1].range.len, kPage);
  mapper_.answer(1, BackendReply::Done);
  EXPECT_EQ(type_of(s), kOk);
  EXPECT_EQ(mappings(), 0u);
  EXPECT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);  // mappable again
}

TEST_F(GpuMapBlob, Unmap_NeverMappedOrInFlight_InvalidParameter) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  EXPECT_EQ(type_of(submit_unmap(5)), kBadParam);
  EXPECT_EQ(type_of(submit_unmap(42)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  const auto s = submit_map(5, 0);
  EXPECT_EQ(type_of(submit_unmap(5)), kBadParam);  // its map is still with the frontend
  mapper_.answer(0, BackendReply::Done);
  EXPECT_EQ(type_of(s), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(mapper_.requests.size(), 1u);
}

TEST_F(GpuMapBlob, Unref_Mapped_UnmapsBeforeTheRendererFreesIt) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  ASSERT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(unref(5), kOk);
  ASSERT_EQ(mapper_.requests.size(), 2u);
  EXPECT_FALSE(mapper_.requests[1].map);
  // The range stays reserved until the frontend confirms: a new blob mapped there meanwhile waits (Linux frees
  // the range when the UNREF is answered), and is sent to the frontend only once the old one is out.
  ASSERT_EQ(create_host_blob(6, kPage), kOk);
  const auto s = submit_map(6, 0);
  EXPECT_EQ(type_of(s), 0u);
  EXPECT_EQ(mapper_.requests.size(), 2u);
  mapper_.answer(1, BackendReply::Done);
  ASSERT_EQ(mapper_.requests.size(), 3u);
  EXPECT_TRUE(mapper_.requests[2].map);
  EXPECT_EQ(mapper_.requests[2].range.shm_offset, 0u);
  EXPECT_EQ(type_of(s), 0u);
  mapper_.answer(2, BackendReply::Done);
  EXPECT_EQ(type_of(s), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(mappings(), 1u);
}

TEST_F(GpuMapBlob, MapOverAnUnmapInFlight_WaitsThenFailsIfItsBlobWentOrTheQueueStopped) {
  ASSERT_EQ(create_host_blob(5, 2 * kPage), kOk);
  ASSERT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(unref(5), kOk);  // SHMEM_UNMAP #1 in flight
  ASSERT_EQ(create_host_blob(6, kPage), kOk);
  ASSERT_EQ(create_host_blob(7, kPage), kOk);
  const auto s6 = submit_map(6, kPage);  // overlaps the second page of 5's range
  const auto s7 = submit_map(7, 0);
  EXPECT_EQ(h_.device().held_commands(), 2u);
  EXPECT_EQ(unref(6), kOk);  // its map never went out: it fails when retried
  mapper_.answer(1, BackendReply::Done);
  EXPECT_EQ(type_of(s6), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  EXPECT_EQ(type_of(s7), 0u);  // sent now
  ASSERT_EQ(mapper_.requests.size(), 3u);
  h_.device().on_queue_stopped(GpuDevice::kControlQueue);
  EXPECT_EQ(type_of(s7), kUnspec);
  EXPECT_EQ(h_.device().held_commands(), 0u);

  // Overlapping a mapping the guest still owns is an error at once, as before.
  ASSERT_EQ(create_host_blob(8, kPage), kOk);
  ASSERT_EQ(create_host_blob(9, kPage), kOk);
  ASSERT_EQ(map(8, 8 * kPage), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(map(9, 8 * kPage), kBadParam);
}

TEST_F(GpuMapBlob, MapsWaitingForARange_Bounded) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  ASSERT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  EXPECT_EQ(unref(5), kOk);
  size_t refused = 0;
  for (uint32_t id = 10; id < 10 + 70; ++id) {
    ASSERT_EQ(create_host_blob(id, kPage), kOk);
    const auto s = submit_map(id, 0);
    refused += type_of(s) == kBadParam ? 1 : 0;
  }
  EXPECT_EQ(refused, 6u);  // 64 wait
  EXPECT_EQ(h_.device().held_commands(), 64u);
  mapper_.answer(1, BackendReply::Done);  // the first gets the range, the others then overlap it: refused
  EXPECT_EQ(h_.device().held_commands(), 1u);
}

TEST_F(GpuMapBlob, Unref_WhileMapping_UnmappedOnceConfirmedAndTheMapFails) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  const auto s = submit_map(5, 0);
  EXPECT_EQ(unref(5), kOk);
  EXPECT_EQ(mapper_.requests.size(), 1u);
  mapper_.answer(0, BackendReply::Done);
  EXPECT_EQ(type_of(s), kUnspec);
  ASSERT_EQ(mapper_.requests.size(), 2u);
  EXPECT_FALSE(mapper_.requests[1].map);
  mapper_.answer(1, BackendReply::Done);
  EXPECT_EQ(mappings(), 0u);
}

TEST_F(GpuMapBlob, QueueStops_HeldMapAnsweredNowAndItsMappingUndoneLater) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  const auto s = submit_map(5, 0);
  h_.device().on_queue_stopped(GpuDevice::kControlQueue);
  EXPECT_EQ(h_.device().held_commands(), 0u);
  EXPECT_EQ(type_of(s), kUnspec);
  mapper_.answer(0, BackendReply::Done);
  ASSERT_EQ(mapper_.requests.size(), 2u);  // the orphan goes
  EXPECT_FALSE(mapper_.requests[1].map);
}

TEST_F(GpuMapBlob, CtxDestroy_UnmapsTheBlobsOfThatContextOnly) {
  ASSERT_EQ(h_.ctx_create(2, kCapsetVenus), kOk);
  ASSERT_EQ(create_host_blob(5, kPage, kMappable, kCtx), kOk);
  ASSERT_EQ(create_host_blob(6, kPage, kMappable, 2), kOk);
  ASSERT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  ASSERT_EQ(map(6, kPage), VIRTIO_GPU_RESP_OK_MAP_INFO);
  virtio_gpu_ctx_destroy req{};
  req.hdr.type = VIRTIO_GPU_CMD_CTX_DESTROY;
  req.hdr.ctx_id = kCtx;
  EXPECT_EQ(h_.command_type(req), kOk);
  ASSERT_EQ(mapper_.requests.size(), 3u);
  EXPECT_FALSE(mapper_.requests[2].map);
  EXPECT_EQ(mapper_.requests[2].range.shm_offset, 0u);
  mapper_.answer_all(BackendReply::Done);
  EXPECT_EQ(mappings(), 1u);
  // Linux frees the context's buffers after the context: their UNMAP_BLOB is answered OK, once, unasked.
  const size_t asked = mapper_.requests.size();
  EXPECT_EQ(type_of(submit_unmap(5)), kOk);
  EXPECT_EQ(mapper_.requests.size(), asked);
  EXPECT_EQ(type_of(submit_unmap(5)), kBadParam);
  EXPECT_EQ(unref(5), kOk);
}

TEST_F(GpuMapBlob, Reset_UnmapsEverythingAndForgetsHeldCommands) {
  ASSERT_EQ(create_host_blob(5, kPage), kOk);
  ASSERT_EQ(create_host_blob(6, kPage), kOk);
  ASSERT_EQ(map(5, 0), VIRTIO_GPU_RESP_OK_MAP_INFO);
  (void)submit_map(6, kPage);
  h_.device().reset();
  EXPECT_EQ(mappings(), 0u);
  EXPECT_EQ(h_.device().held_commands(), 0u);
  size_t unmaps = 0;
  for (const auto& r : mapper_.requests) unmaps += r.map ? 0 : 1;
  EXPECT_EQ(unmaps, 2u);
  mapper_.answer_all(BackendReply::Done);  // late answers touch nothing
  EXPECT_EQ(mappings(), 0u);
}

TEST_F(GpuMapBlob, CreateBlob_SizeNotAlignedWithBlobAlignment_InvalidParameter) {
  EXPECT_EQ(create_host_blob(5, kPage + 1), kBadParam);
  EXPECT_EQ(h_.create_blob(6, VIRTIO_GPU_BLOB_MEM_GUEST, 100), kBadParam);
  EXPECT_EQ(create_host_blob(7, 3 * kPage), kOk);
}

class GpuVenusCap : public GpuMapBlob {
 protected:
  GpuVenusCap() : GpuMapBlob(2) {}
};

TEST_F(GpuVenusCap, BeyondTheCap_OutOfMemory_FreedSlotReusable_VirglUnaffected) {
  EXPECT_EQ(h_.ctx_create(2, kCapsetVenus), kOk);  // kCtx is the first
  EXPECT_EQ(h_.ctx_create(3, kCapsetVenus), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(h_.ctx_create(4, kCapsetVirgl2), kOk);
  EXPECT_EQ(h_.ctx_create(5, 0), kOk);
  virtio_gpu_ctx_destroy req{};
  req.hdr.type = VIRTIO_GPU_CMD_CTX_DESTROY;
  req.hdr.ctx_id = 2;
  EXPECT_EQ(h_.command_type(req), kOk);
  EXPECT_EQ(h_.ctx_create(3, kCapsetVenus), kOk);
}

}  // namespace
}  // namespace vgpu::test

// Blob resources on the 2D device (soft2d): RESOURCE_CREATE_BLOB of guest memory, SET_SCANOUT_BLOB, flushes
// read straight from the guest's pages with the blob's stride and offset, and every malformed request answered
// with the most specific error. Host blobs (HOST3D*) are tested with the virgl renderer (tests/unit/virgl).
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>

#include <cstring>
#include <vector>

#include "gpu/host_costs.h"
#include "support/device_parts.h"
#include "support/fake_display.h"
#include "support/gpu_harness.h"
#include "support/gpu_requests.h"

namespace vgpu::test {
namespace {

constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;
constexpr uint32_t kBadParam = VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
constexpr uint64_t kBlobFeatures = (uint64_t{1} << VIRTIO_GPU_F_EDID) | (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB);
constexpr uint32_t kGuest = VIRTIO_GPU_BLOB_MEM_GUEST;

class GpuBlob : public ::testing::Test {
 protected:
  GpuBlob() : h_(GpuDeviceConfig{.num_scanouts = 2, .max_resource_memory = 64ull << 20}, kBlobFeatures) {
    auto d = std::make_unique<FakeDisplay>(2);
    display_ = d.get();
    h_.device().install_display(std::move(d));
  }
  // A guest blob holding a width x height image with `stride` bytes per row from byte `offset`; pixel (x, y)
  // is x | y << 8 | tag << 16 | 0xff000000, everything else 0xee.
  void make_blob(uint32_t id, uint32_t width, uint32_t height, uint32_t stride, uint32_t offset, uint32_t tag = 0,
                 uint32_t pieces = 3) {
    const uint64_t bytes = uint64_t{offset} + uint64_t{stride} * height;
    ASSERT_EQ(h_.create_blob(id, kGuest, bytes, pieces), kOk);
    write_pattern(id, width, height, stride, offset, tag);
  }
  void write_pattern(uint32_t id, uint32_t width, uint32_t height, uint32_t stride, uint32_t offset, uint32_t tag) {
    std::vector<std::byte> img(uint64_t{offset} + uint64_t{stride} * height, std::byte{0xee});
    for (uint32_t y = 0; y < height; ++y) {
      for (uint32_t x = 0; x < width; ++x) {
        const uint32_t px = x | y << 8 | tag << 16 | 0xff000000u;
        std::memcpy(img.data() + offset + uint64_t{y} * stride + uint64_t{x} * 4, &px, 4);
      }
    }
    h_.guest().write(h_.backing_address(id), img);
  }
  static uint32_t pixel(uint32_t x, uint32_t y, uint32_t tag = 0) { return x | y << 8 | tag << 16 | 0xff000000u; }
  // The size the display was last told for `scanout` ({0, 0}: disabled or never set).
  std::pair<uint32_t, uint32_t> shown(uint32_t scanout) const {
    std::pair<uint32_t, uint32_t> size{0, 0};
    for (const auto& c : display_->scanouts) {
      if (c.scanout == scanout) size = {c.width, c.height};
    }
    return size;
  }

  GpuHarness h_;
  FakeDisplay* display_;
};

TEST(GpuBlobFeatures, Offered_On2dDevice) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  EXPECT_NE(dev.features() & (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB), 0u);
}

TEST(GpuBlobFeatures, NotNegotiated_CreateBlobRefused) {
  GpuHarness h;  // EDID only
  EXPECT_EQ(h.create_blob(1, kGuest, 4096), VIRTIO_GPU_RESP_ERR_UNSPEC);
  EXPECT_EQ(h.device().resources().size(), 0u);
}

TEST_F(GpuBlob, CreateGuest_Ok_ChargesItsEntriesAndBookkeepingNotItsGuestPages) {
  ASSERT_EQ(h_.create_blob(1, kGuest, 64 * 1024, 4), kOk);
  EXPECT_TRUE(h_.device().resources().contains(1));
  EXPECT_EQ(h_.device().resources().used_bytes(), host_costs::backing_bytes(4) + host_costs::kPerResource);
}

TEST_F(GpuBlob, CreateGuest_BadRequests_MostSpecificError) {
  EXPECT_EQ(h_.create_blob(0, kGuest, 4096), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  ASSERT_EQ(h_.create_blob(1, kGuest, 4096), kOk);
  EXPECT_EQ(h_.create_blob(1, kGuest, 4096), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  EXPECT_EQ(h_.create_blob(2, kGuest, 0), kBadParam);                                               // size 0
  EXPECT_EQ(h_.create_blob(3, 9, 4096), kBadParam);                                                 // unknown blob_mem
  EXPECT_EQ(h_.create_blob(4, kGuest, 4096, 1, 0x8), kBadParam);                                    // unknown flag
  EXPECT_EQ(h_.create_blob(5, kGuest, 4096, 1, VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE), kBadParam);  // UUIDs not acked
  // Host blobs need a 3D context: a 2D device has none.
  EXPECT_EQ(h_.create_blob(6, VIRTIO_GPU_BLOB_MEM_HOST3D, 4096, 1, 0, 1, 1), kBadParam);
  EXPECT_EQ(h_.create_blob(7, VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST, 4096, 1, 0, 1, 1), kBadParam);
  EXPECT_EQ(h_.device().resources().size(), 1u);
}

TEST_F(GpuBlob, CreateGuest_EntriesShorterThanSize_InvalidParameterAndRefunded) {
  const auto blob = req::create_blob(1, kGuest, 0, /*nr_entries=*/1, 0, /*size=*/8192);
  const GuestAddress base = h_.guest().alloc(4096, 4096);
  const virtio_gpu_mem_entry entry{raw(base), 4096, 0};
  EXPECT_EQ(h_.command_type(blob, GpuHarness::as_bytes(entry)), kBadParam);
  EXPECT_EQ(h_.device().resources().used_bytes(), 0u);
}

TEST_F(GpuBlob, CreateGuest_EntryOutsideGuestMemoryOrNoEntries_InvalidParameter) {
  auto blob = req::create_blob(1, kGuest, 0, /*nr_entries=*/1, 0, /*size=*/4096);
  const virtio_gpu_mem_entry outside{~uint64_t{0} - 100, 4096, 0};
  EXPECT_EQ(h_.command_type(blob, GpuHarness::as_bytes(outside)), kBadParam);
  blob.nr_entries = 0;
  EXPECT_EQ(h_.command_type(blob), kBadParam);
  blob.nr_entries = 5;  // entries announced but not in the request
  EXPECT_EQ(h_.command_type(blob), kBadParam);
  EXPECT_EQ(h_.device().resources().used_bytes(), 0u);
}

TEST_F(GpuBlob, ScanoutBlob_Flush_DisplayGetsGuestPixelsWithStrideAndOffset) {
  // 16x8 image, rows of 80 bytes (16 pixels + 4 of padding), starting 256 bytes into the blob.
  make_blob(1, 16, 8, 80, 256);
  ASSERT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 80, 256), kOk);
  ASSERT_EQ(shown(0), (std::pair<uint32_t, uint32_t>{16, 8}));
  ASSERT_EQ(h_.flush(1, {0, 0, 16, 8}), kOk);
  ASSERT_EQ(display_->updates.size(), 1u);
  const auto& u = display_->updates[0];
  EXPECT_EQ(u.damage, (Rect{0, 0, 16, 8}));
  ASSERT_EQ(u.pixels.size(), 16u * 8u);
  for (uint32_t y = 0; y < 8; ++y) {
    for (uint32_t x = 0; x < 16; ++x) EXPECT_EQ(u.pixels[y * 16 + x], pixel(x, y)) << x << "," << y;
  }
}

TEST_F(GpuBlob, ScanoutBlob_PartOfImage_DamageClippedAndTranslated) {
  make_blob(1, 32, 16, 128, 0);
  ASSERT_EQ(h_.set_scanout_blob(1, 1, {8, 4, 16, 8}, 32, 16, 128), kOk);
  ASSERT_EQ(h_.flush(1, {0, 0, 10, 6}), kOk);  // overlaps the shown part at (8..9, 4..5)
  ASSERT_EQ(display_->updates.size(), 1u);
  const auto& u = display_->updates[0];
  EXPECT_EQ(u.scanout, 1u);
  EXPECT_EQ(u.damage, (Rect{0, 0, 2, 2}));
  EXPECT_EQ(u.pixels, (std::vector<uint32_t>{pixel(8, 4), pixel(9, 4), pixel(8, 5), pixel(9, 5)}));
}

TEST_F(GpuBlob, ScanoutBlob_SharedMemory_FlushShowsWhatTheGuestWroteSince) {
  make_blob(1, 8, 8, 32, 0);
  ASSERT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 8, 8}, 8, 8, 32), kOk);
  ASSERT_EQ(h_.flush(1, {0, 0, 8, 8}), kOk);
  write_pattern(1, 8, 8, 32, 0, /*tag=*/7);
  // TRANSFER_TO_HOST_2D on a blob is accepted and copies nothing (Linux sends it for blob dumb buffers).
  ASSERT_EQ(h_.transfer(1, {0, 0, 8, 8}, 0), kOk);
  ASSERT_EQ(h_.flush(1, {2, 3, 1, 1}), kOk);
  ASSERT_EQ(display_->updates.size(), 2u);
  EXPECT_EQ(display_->updates[1].pixels, std::vector<uint32_t>{pixel(2, 3, 7)});
}

TEST_F(GpuBlob, ScanoutBlob_PageFlipBetweenTwoBlobs_EachFlushShowsItsBlob) {
  make_blob(1, 8, 4, 32, 0, 1);
  make_blob(2, 8, 4, 32, 0, 2);
  const uint64_t used_one = h_.device().resources().used_bytes();
  ASSERT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 8, 4}, 8, 4, 32), kOk);
  const uint64_t with_shadow = h_.device().resources().used_bytes();
  EXPECT_EQ(with_shadow - used_one, 8u * 4u * 4u);  // the shadow is charged
  ASSERT_EQ(h_.flush(1, {0, 0, 8, 4}), kOk);
  ASSERT_EQ(h_.set_scanout_blob(0, 2, {0, 0, 8, 4}, 8, 4, 32), kOk);
  EXPECT_EQ(h_.device().resources().used_bytes(), with_shadow);  // same size: the shadow is reused
  ASSERT_EQ(h_.flush(2, {0, 0, 8, 4}), kOk);
  ASSERT_EQ(h_.flush(1, {0, 0, 8, 4}), kOk);  // no longer shown: nothing sent
  ASSERT_EQ(display_->updates.size(), 2u);
  EXPECT_EQ(display_->updates[0].pixels[9], pixel(1, 1, 1));
  EXPECT_EQ(display_->updates[1].pixels[9], pixel(1, 1, 2));
}

TEST_F(GpuBlob, ScanoutBlob_BadRequests_MostSpecificError) {
  make_blob(1, 16, 8, 64, 0);
  ASSERT_EQ(h_.create_2d(2, 16, 8), kOk);
  EXPECT_EQ(h_.set_scanout_blob(2, 1, {0, 0, 16, 8}, 16, 8, 64), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
  EXPECT_EQ(h_.set_scanout_blob(0, 9, {0, 0, 16, 8}, 16, 8, 64), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  EXPECT_EQ(h_.set_scanout_blob(0, 2, {0, 0, 16, 8}, 16, 8, 64), kBadParam);          // not a blob
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 60), kBadParam);          // stride < width * 4
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 64, 4), kBadParam);       // last row past the end
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 9}, 16, 8, 64), kBadParam);          // rect outside image
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 0, 8}, 16, 8, 64), kBadParam);           // empty rect
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 64, 0, 999), kBadParam);  // unknown format
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 9, 64), kBadParam);          // taller than the blob
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 0xffffffffu, 64), kBadParam);
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0xfffffff0u, 0, 0x20, 8}, 16, 8, 64), kBadParam);
  // SET_SCANOUT (the 2D form) of a blob is refused: it has no image layout of its own.
  EXPECT_EQ(h_.set_scanout(0, 1, {0, 0, 16, 8}), kBadParam);
  EXPECT_TRUE(display_->updates.empty());
}

TEST_F(GpuBlob, UnrefBlobOnScanout_DisablesScanoutAndRefundsEverything) {
  make_blob(1, 16, 8, 64, 0);
  ASSERT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 64), kOk);
  virtio_gpu_resource_unref unref{};
  unref.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
  unref.resource_id = 1;
  ASSERT_EQ(h_.command_type(unref), kOk);
  EXPECT_EQ(shown(0), (std::pair<uint32_t, uint32_t>{0, 0}));
  EXPECT_EQ(h_.device().resources().used_bytes(), 0u);
  EXPECT_EQ(h_.flush(1, {0, 0, 1, 1}), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuBlob, DisableWithResourceZero_RefundsShadow) {
  make_blob(1, 16, 8, 64, 0);
  const uint64_t before = h_.device().resources().used_bytes();
  ASSERT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 64), kOk);
  ASSERT_EQ(h_.set_scanout_blob(0, 0, {0, 0, 0, 0}, 0, 0, 0), kOk);
  EXPECT_EQ(h_.device().resources().used_bytes(), before);
  EXPECT_EQ(shown(0), (std::pair<uint32_t, uint32_t>{0, 0}));
}

TEST_F(GpuBlob, BackingCommandsOnABlob_InvalidParameter) {
  make_blob(1, 16, 8, 64, 0);
  EXPECT_EQ(h_.attach_backing(1, 4096), kBadParam);
  virtio_gpu_resource_detach_backing detach{};
  detach.hdr.type = VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING;
  detach.resource_id = 1;
  EXPECT_EQ(h_.command_type(detach), kBadParam);
}

TEST_F(GpuBlob, MapAndUnmap_NoHostVisibleRegion_ErrorAndDeviceKeepsServing) {
  make_blob(1, 16, 8, 64, 0);
  virtio_gpu_resource_map_blob map{};
  map.hdr.type = VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB;
  map.resource_id = 1;
  EXPECT_EQ(h_.command_type(map), VIRTIO_GPU_RESP_ERR_UNSPEC);
  map.resource_id = 5;
  EXPECT_EQ(h_.command_type(map), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  virtio_gpu_resource_unmap_blob unmap{};
  unmap.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB;
  unmap.resource_id = 1;
  EXPECT_EQ(h_.command_type(unmap), kBadParam);  // nothing of it is mapped
  EXPECT_EQ(h_.set_scanout_blob(0, 1, {0, 0, 16, 8}, 16, 8, 64), kOk);
}

TEST_F(GpuBlob, OverMemoryCap_OutOfMemory) {
  GpuHarness small(GpuDeviceConfig{.max_resource_memory = 4096}, kBlobFeatures);
  ASSERT_EQ(small.create_blob(1, kGuest, 64 * 64 * 4), kOk);
  // A 64x64 scanout needs a 16 KiB shadow: over a 4 KiB budget.
  EXPECT_EQ(small.set_scanout_blob(0, 1, {0, 0, 64, 64}, 64, 64, 256), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
}

}  // namespace
}  // namespace vgpu::test

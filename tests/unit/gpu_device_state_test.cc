// Device state: the format round-trips and refuses every other version, truncation, corruption and hostile count;
// a 2D device saved mid-run and loaded into a fresh one shows the same frames and cursor and saves the same
// bytes; a load that fails leaves the device as it was; 3D refuses to save.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <zlib.h>

#include <cstring>
#include <memory>
#include <vector>

#include "gpu/state_format.h"
#include "support/fake_display.h"
#include "support/fake_renderer_3d.h"
#include "support/gpu_harness.h"
#include "support/result_check.h"

namespace vgpu::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;
constexpr uint64_t kBlobFeatures = (uint64_t{1} << VIRTIO_GPU_F_EDID) | (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB) |
                                   (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_UUID);

DeviceState sample_state() {
  DeviceState st;
  st.num_scanouts = 2;
  SavedResource r;
  r.id = 3;
  r.format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
  r.width = 2;
  r.height = 2;
  r.uuid = std::array<uint8_t, 16>{1, 2, 3};
  r.backing = std::vector<SavedBackingEntry>{{0x10000, 16}};
  r.pixels = std::vector<std::byte>(16, std::byte{0x7f});
  st.resources.push_back(r);
  st.scanouts = {SavedScanout{3, {0, 0, 2, 2}, std::nullopt}, SavedScanout{}};
  st.cursors = {CursorState{true, 3, 1, 1, 10, 20}, CursorState{}};
  st.layout = std::vector<SavedMode>{{true, {0, 0, 1280, 800}}, {false, {}}};
  return st;
}

// Rewrites the header's CRC after a test edited the body (a hostile writer that knows the format).
void fix_crc(std::vector<std::byte>& bytes) {
  constexpr size_t kHeader = 32;
  const uint32_t crc =
      static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data() + kHeader),
                                  static_cast<uInt>(bytes.size() - kHeader)));
  std::memcpy(bytes.data() + 24, &crc, sizeof(crc));
}

TEST(StateFormat, RoundTrip) {
  const DeviceState st = sample_state();
  const auto bytes = encode_state(st);
  auto back = decode_state(bytes);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, st);
}

TEST(StateFormat, EveryTruncation_Refused) {
  const auto bytes = encode_state(sample_state());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_state(std::span(bytes).first(n))) << n << " bytes";
  }
}

TEST(StateFormat, EveryFlippedBit_Refused) {
  const auto bytes = encode_state(sample_state());
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i >= 28 && i < 32) continue;  // the reserved word after the CRC is not checked
    auto bad = bytes;
    bad[i] ^= std::byte{0x10};
    EXPECT_FALSE(decode_state(bad)) << "byte " << i;
  }
}

TEST(StateFormat, OtherVersion_RefusedWithTheReason) {
  auto bytes = encode_state(sample_state());
  const uint32_t v2 = 2;
  std::memcpy(bytes.data() + 8, &v2, sizeof(v2));
  auto r = decode_state(bytes);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("version 2"), std::string::npos) << r.error();
}

TEST(StateFormat, HostileCountsWithAValidChecksum_RefusedWithoutAllocating) {
  auto bytes = encode_state(sample_state());
  // The resource count (body offset 4) claims 2^16; the entry count of resource 0 claims 2^18 - 1.
  auto many = bytes;
  const uint32_t n = 1u << 16;
  std::memcpy(many.data() + 32 + 4, &n, sizeof(n));
  fix_crc(many);
  EXPECT_FALSE(decode_state(many));
  auto entries = bytes;
  const uint32_t e = (1u << 18) - 1;
  // id, format, width, height, blob_mem, blob_flags (6 x 4), blob_size 8, uuid flag 1 + 16, backing flag 1.
  std::memcpy(entries.data() + 32 + 8 + 24 + 8 + 17 + 1, &e, sizeof(e));
  fix_crc(entries);
  EXPECT_FALSE(decode_state(entries));
}

TEST(StateFormat, TrailingBytes_Refused) {
  auto bytes = encode_state(sample_state());
  bytes.push_back(std::byte{0});
  const uint64_t len = bytes.size() - 32;
  std::memcpy(bytes.data() + 16, &len, sizeof(len));
  fix_crc(bytes);
  EXPECT_FALSE(decode_state(bytes));
}

class GpuDeviceState : public ::testing::Test {
 protected:
  GpuDeviceState() {
    auto d = std::make_unique<FakeDisplay>(1);
    display_ = d.get();
    a_.device().install_display(std::move(d));
    auto d2 = std::make_unique<FakeDisplay>(1);
    display_b_ = d2.get();
    b_.device().install_display(std::move(d2));
  }

  // A guest that has drawn a frame, shows it, and has a cursor.
  void draw_on_a() {
    ASSERT_EQ(a_.create_2d(1, 64, 32), kOk);
    ASSERT_EQ(a_.attach_backing(1, 64 * 32 * 4), kOk);
    ASSERT_EQ(a_.transfer(1, {0, 0, 64, 32}, 0), kOk);
    ASSERT_EQ(a_.set_scanout(0, 1, {0, 0, 64, 32}), kOk);
    ASSERT_EQ(a_.flush(1, {0, 0, 64, 32}), kOk);
    ASSERT_EQ(a_.create_2d(2, 64, 64, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM), kOk);
    ASSERT_EQ(a_.attach_backing(2, 64 * 64 * 4), kOk);
    ASSERT_EQ(a_.transfer(2, {0, 0, 64, 64}, 0), kOk);
    virtio_gpu_update_cursor cur{};
    cur.hdr.type = VIRTIO_GPU_CMD_UPDATE_CURSOR;
    cur.pos = {0, 100, 200, 0};
    cur.resource_id = 2;
    cur.hot_x = 3;
    ASSERT_TRUE(a_.send(GpuDevice::kCursorQueue, GpuHarness::as_bytes(cur), 0));
  }

  GpuHarness a_{GpuDeviceConfig{}, kBlobFeatures};
  GpuHarness b_{GpuDeviceConfig{}, kBlobFeatures};
  FakeDisplay* display_ = nullptr;
  FakeDisplay* display_b_ = nullptr;
};

TEST_F(GpuDeviceState, SaveMidRun_LoadIntoAFreshDevice_SameFrameCursorAndState) {
  draw_on_a();
  auto saved = a_.device().save_state();
  ASSERT_TRUE(saved) << saved.error();
  // The guest's memory goes with it (a migration copies RAM): b's has the same backings.
  b_.guest().write(a_.backing_address(1), a_.guest().read(a_.backing_address(1), 64 * 32 * 4));
  auto loaded = b_.device().load_state(*saved, b_.guest().memory());
  ASSERT_TRUE(loaded) << loaded.error();
  // The scanout is shown again with the saved pixels, and the cursor is back.
  ASSERT_FALSE(display_b_->updates.empty());
  EXPECT_EQ(display_b_->updates.back().pixels, display_->updates.back().pixels);
  ASSERT_FALSE(display_b_->cursor.empty());
  EXPECT_EQ(display_b_->cursor.back().pixels, display_->cursor.back().pixels);
  EXPECT_EQ(display_b_->cursor.back().x, 100u);
  EXPECT_EQ(display_b_->cursor.back().hot_x, 3u);
  // The next frames: the guest draws on both, both show the same.
  a_.guest().write(a_.backing_address(1), std::vector<std::byte>(64 * 4, std::byte{0x42}));
  b_.guest().write(a_.backing_address(1), std::vector<std::byte>(64 * 4, std::byte{0x42}));
  for (GpuHarness* h : {&a_, &b_}) {
    ASSERT_EQ(h->transfer(1, {0, 0, 64, 1}, 0), kOk);
    ASSERT_EQ(h->flush(1, {0, 0, 64, 32}), kOk);
  }
  EXPECT_EQ(display_b_->updates.back().pixels, display_->updates.back().pixels);
  // Saving b gives a's bytes back.
  auto again = b_.device().save_state();
  auto a_now = a_.device().save_state();
  ASSERT_TRUE(again && a_now);
  EXPECT_EQ(*again, *a_now);
}

TEST_F(GpuDeviceState, CorruptedOrForeignState_RefusedAndTheDeviceIsAsItWas) {
  draw_on_a();
  auto saved = a_.device().save_state();
  ASSERT_TRUE(saved);
  ASSERT_EQ(b_.create_2d(9, 8, 8), kOk);
  const auto before = b_.device().save_state().value();
  auto corrupt = *saved;
  corrupt[corrupt.size() / 2] ^= std::byte{1};
  EXPECT_FALSE(b_.device().load_state(corrupt, b_.guest().memory()));
  EXPECT_FALSE(b_.device().load_state(std::span(*saved).first(saved->size() - 1), b_.guest().memory()));
  GpuHarness other(GpuDeviceConfig{.num_scanouts = 2}, kBlobFeatures);
  EXPECT_THAT(error_of(other.device().load_state(*saved, other.guest().memory())), Optional(HasSubstr("scanouts")));
  EXPECT_EQ(b_.device().save_state().value(), before);
}

TEST_F(GpuDeviceState, OverTheMemoryLimit_Refused) {
  draw_on_a();
  auto saved = a_.device().save_state();
  ASSERT_TRUE(saved);
  GpuHarness tiny(GpuDeviceConfig{.max_resource_memory = 4096}, kBlobFeatures);
  EXPECT_THAT(error_of(tiny.device().load_state(*saved, tiny.guest().memory())),
              Optional(HasSubstr("--max-resource-memory")));
  EXPECT_EQ(tiny.device().resources().size(), 0u);
}

TEST_F(GpuDeviceState, GuestBlobScanout_SavedAndShownAfterLoad) {
  ASSERT_EQ(a_.create_blob(5, VIRTIO_GPU_BLOB_MEM_GUEST, 16 * 16 * 4, 2), kOk);
  ASSERT_EQ(a_.set_scanout_blob(0, 5, {0, 0, 16, 16}, 16, 16, 16 * 4, 0), kOk);
  ASSERT_EQ(a_.flush(5, {0, 0, 16, 16}), kOk);
  auto saved = a_.device().save_state();
  ASSERT_TRUE(saved) << saved.error();
  b_.guest().write(a_.backing_address(5), a_.guest().read(a_.backing_address(5), 16 * 16 * 4));
  ASSERT_TRUE(b_.device().load_state(*saved, b_.guest().memory()));
  ASSERT_FALSE(display_b_->updates.empty());
  EXPECT_EQ(display_b_->updates.back().pixels, display_->updates.back().pixels);
}

TEST(GpuDeviceState3D, Save_Refused_WithTheReason) {
  FakeRenderer3D r3d;
  GpuHarness h(GpuDeviceConfig{}, GpuHarness::kDefaultFeatures | (uint64_t{1} << VIRTIO_GPU_F_VIRGL), 64ull << 20,
               Renderers::with_3d(borrow(r3d)));
  EXPECT_THAT(error_of(h.device().save_state()), Optional(HasSubstr("virglrenderer")));
}

}  // namespace
}  // namespace vgpu::test

// The 2D command set through the device's command table, with a fake driver and a recording display.
// Malformed input for every handler gets the most specific error and the device keeps serving.
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>

#include <cstring>

#include "support/fake_display.h"
#include "support/gpu_harness.h"
#include "support/gpu_requests.h"

namespace vgpu::test {
namespace {

constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;

class GpuCommands : public ::testing::Test {
 protected:
  GpuCommands() : h_(GpuDeviceConfig{.num_scanouts = 2, .max_resource_memory = 64ull << 20}) {
    auto d = std::make_unique<FakeDisplay>(2);
    display_ = d.get();
    h_.device().install_display(std::move(d));
  }
  // A 64x32 B8G8R8X8 resource 1 with a backing whose pixel at (x, y) is x | y << 8 | 0xff000000.
  void make_patterned_resource() {
    ASSERT_EQ(h_.create_2d(1, 64, 32), kOk);
    ASSERT_EQ(h_.attach_backing(1, 64 * 32 * 4, 3), kOk);
    std::vector<uint32_t> px(64 * 32);
    for (uint32_t y = 0; y < 32; ++y) {
      for (uint32_t x = 0; x < 64; ++x) px[y * 64 + x] = x | y << 8 | 0xff000000u;
    }
    h_.guest().write(h_.backing_address(1), std::as_bytes(std::span(px)));
  }

  // GET_DISPLAY_INFO with room for `response_size` bytes of response.
  std::optional<std::vector<std::byte>> get_display_info(uint32_t response_size) {
    virtio_gpu_ctrl_hdr req{};
    req.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO;
    return h_.send(0, GpuHarness::as_bytes(req), response_size);
  }
  // A command that is only a resource id after its header (RESOURCE_UNREF, RESOURCE_DETACH_BACKING).
  template <class T>
  uint32_t on_resource(uint32_t type, uint32_t id) {
    T req{};
    req.hdr.type = type;
    req.resource_id = id;
    return h_.command_type(req);
  }
  // ATTACH_BACKING of resource 1 announcing `nr_entries` entries and carrying `entries`.
  uint32_t attach_entries(uint32_t nr_entries, const std::vector<virtio_gpu_mem_entry>& entries) {
    virtio_gpu_resource_attach_backing req{};
    req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
    req.resource_id = 1;
    req.nr_entries = nr_entries;
    return h_.command_type(req, std::as_bytes(std::span(entries)));
  }
  // A 64x64 resource 7 in `format` whose first pixel's bytes are 10 20 30 80, transferred.
  void make_cursor_resource(uint32_t format) {
    ASSERT_EQ(h_.create_2d(7, 64, 64, format), kOk);
    ASSERT_EQ(h_.attach_backing(7, 64 * 64 * 4), kOk);
    const std::array<uint8_t, 4> bgra{0x10, 0x20, 0x30, 0x80};
    h_.guest().write(h_.backing_address(7), std::as_bytes(std::span(bgra)));
    ASSERT_EQ(h_.transfer(7, {0, 0, 64, 64}, 0), kOk);
  }
  // Sends `req` (UPDATE_CURSOR or MOVE_CURSOR) on the cursor queue; true when the chain came back.
  bool send_cursor(const virtio_gpu_update_cursor& req) {
    return h_.send(GpuDevice::kCursorQueue, GpuHarness::as_bytes(req), 0).has_value();
  }

  GpuHarness h_;
  FakeDisplay* display_;
};

virtio_gpu_update_cursor cursor_request(uint32_t type, uint32_t resource_id = 0) {
  virtio_gpu_update_cursor req{};
  req.hdr.type = type;
  req.resource_id = resource_id;
  return req;
}

TEST_F(GpuCommands, GetDisplayInfo_TwoScanouts_ReportsLayout) {
  auto resp = get_display_info(sizeof(virtio_gpu_resp_display_info));
  ASSERT_TRUE(resp);
  virtio_gpu_resp_display_info info{};
  std::memcpy(&info, resp->data(), sizeof(info));
  EXPECT_EQ(info.hdr.type, VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
  EXPECT_EQ(info.pmodes[1].r.x, 1280u);
  EXPECT_EQ(info.pmodes[1].enabled, 1u);
  EXPECT_EQ(info.pmodes[2].enabled, 0u);
}

TEST_F(GpuCommands, GetDisplayInfo_LayoutPending_AnsweredWhenItArrives) {
  display_->hold_layout();
  auto pending = get_display_info(sizeof(virtio_gpu_resp_display_info));
  EXPECT_FALSE(pending);
  display_->set_layout({{true, {0, 0, 800, 600}}, {false, {}}});
  auto used = h_.queue(0).next_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, sizeof(virtio_gpu_resp_display_info));
}

TEST_F(GpuCommands, FencedCommand_Failing_ResponseEchoesFenceId) {
  virtio_gpu_resource_unref unref{};
  unref.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
  unref.hdr.flags = VIRTIO_GPU_FLAG_FENCE;
  unref.hdr.fence_id = 77;
  auto resp = h_.send(0, GpuHarness::as_bytes(unref));
  ASSERT_TRUE(resp);
  virtio_gpu_ctrl_hdr out{};
  std::memcpy(&out, resp->data(), sizeof(out));
  EXPECT_EQ(out.flags & VIRTIO_GPU_FLAG_FENCE, VIRTIO_GPU_FLAG_FENCE);
  EXPECT_EQ(out.fence_id, 77u);
}

TEST_F(GpuCommands, GetEdid_DisplayWithoutEdid_GeneratedBlob) {
  virtio_gpu_cmd_get_edid req{};
  req.hdr.type = VIRTIO_GPU_CMD_GET_EDID;
  auto resp = h_.send(0, GpuHarness::as_bytes(req), sizeof(virtio_gpu_resp_edid));
  ASSERT_TRUE(resp);
  virtio_gpu_resp_edid edid{};
  std::memcpy(&edid, resp->data(), sizeof(edid));
  EXPECT_EQ(edid.hdr.type, VIRTIO_GPU_RESP_OK_EDID);
  EXPECT_EQ(edid.size, 128u);
}

TEST_F(GpuCommands, GetEdid_ScanoutOutOfRange_InvalidScanoutId) {
  virtio_gpu_cmd_get_edid req{};
  req.hdr.type = VIRTIO_GPU_CMD_GET_EDID;
  req.scanout = 2;
  EXPECT_EQ(h_.command_type(req), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
}

TEST(GpuCommandsFeatures, GetEdid_FeatureNotNegotiated_Unspec) {
  GpuHarness h(GpuDeviceConfig{}, 0);
  virtio_gpu_cmd_get_edid req{};
  req.hdr.type = VIRTIO_GPU_CMD_GET_EDID;
  EXPECT_EQ(h.command_type(req), VIRTIO_GPU_RESP_ERR_UNSPEC);
}

TEST_F(GpuCommands, Create2d_Valid_Ok) {
  EXPECT_EQ(h_.create_2d(1, 640, 480), kOk);
}

TEST_F(GpuCommands, Create2d_IdZero_InvalidResourceId) {
  EXPECT_EQ(h_.create_2d(0, 64, 64), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuCommands, Create2d_DuplicateId_InvalidResourceId) {
  ASSERT_EQ(h_.create_2d(5, 64, 64), kOk);
  EXPECT_EQ(h_.create_2d(5, 64, 64), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuCommands, Create2d_UnknownFormat_InvalidParameter) {
  EXPECT_EQ(h_.create_2d(1, 64, 64, 999), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, Create2d_ZeroWidth_InvalidParameter) {
  EXPECT_EQ(h_.create_2d(1, 0, 64), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, Create2d_SizeWrapsUint32_OutOfMemory) {
  // 0x40000000 * 4 wraps a 32-bit stride; 64-bit arithmetic sees 16 EiB-ish and the cap refuses it.
  static_assert(uint32_t{0x40000000u} * 4u == 0u, "the naive 32-bit stride wraps to zero");
  EXPECT_EQ(h_.create_2d(1, 0x40000000u, 0x40000000u), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
}

TEST_F(GpuCommands, Create2d_OverMemoryCap_OutOfMemoryAndDeviceKeepsServing) {
  ASSERT_EQ(h_.create_2d(1, 4096, 4097), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);  // 16 KiB over the 64 MiB cap
  EXPECT_EQ(h_.create_2d(2, 1024, 1024), kOk);
}

TEST_F(GpuCommands, Create2d_EveryFormat_Ok) {
  const std::array<uint32_t, 8> formats{1, 2, 3, 4, 67, 68, 121, 134};
  uint32_t ok = 0;
  for (uint32_t i = 0; i < formats.size(); ++i) ok += h_.create_2d(i + 1, 16, 16, formats[i]) == kOk ? 1 : 0;
  EXPECT_EQ(ok, formats.size());
}

TEST_F(GpuCommands, Unref_Unknown_InvalidResourceId) {
  EXPECT_EQ(on_resource<virtio_gpu_resource_unref>(VIRTIO_GPU_CMD_RESOURCE_UNREF, 9),
            VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuCommands, Unref_OnScanout_DisablesScanoutAndRefundsMemory) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  ASSERT_EQ(h_.set_scanout(0, 1, {0, 0, 64, 64}), kOk);
  EXPECT_EQ(on_resource<virtio_gpu_resource_unref>(VIRTIO_GPU_CMD_RESOURCE_UNREF, 1), kOk);
  EXPECT_EQ(display_->scanouts.back().width, 0u);
  EXPECT_EQ(h_.device().resources().used_bytes(), 0u);
}

TEST_F(GpuCommands, SetScanout_ScanoutOutOfRange_InvalidScanoutId) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  EXPECT_EQ(h_.set_scanout(2, 1, {0, 0, 64, 64}), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
}

TEST_F(GpuCommands, SetScanout_UnknownResource_InvalidResourceId) {
  EXPECT_EQ(h_.set_scanout(0, 3, {0, 0, 64, 64}), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuCommands, SetScanout_RectOutsideResource_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  EXPECT_EQ(h_.set_scanout(0, 1, {1, 0, 64, 64}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, SetScanout_RectOverflowingUint32_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  static_assert(uint32_t{0xfffffff0u} + uint32_t{0x20u} < 64u, "the naive x + width check is fooled");
  EXPECT_EQ(h_.set_scanout(0, 1, {0xfffffff0u, 0, 0x20u, 16}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, SetScanout_ResourceZero_DisablesScanout) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  ASSERT_EQ(h_.set_scanout(0, 1, {0, 0, 64, 64}), kOk);
  EXPECT_EQ(h_.set_scanout(0, 0, {0, 0, 0, 0}), kOk);
  EXPECT_EQ(display_->scanouts.back().width, 0u);
}

TEST_F(GpuCommands, AttachBacking_Unknown_InvalidResourceId) {
  EXPECT_EQ(h_.attach_backing(4, 4096), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuCommands, AttachBacking_Twice_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  ASSERT_EQ(h_.attach_backing(1, 1024), kOk);
  EXPECT_EQ(h_.attach_backing(1, 1024), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, AttachBacking_EntryOutsideGuestMemory_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  EXPECT_EQ(attach_entries(1, {{0x7fff'0000'0000ull, 4096, 0}}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, AttachBacking_EntryWrapsAddressSpace_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  EXPECT_EQ(attach_entries(1, {{0xffff'ffff'ffff'f000ull, 0x2000, 0}}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, AttachBacking_FewerEntriesThanAnnounced_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  EXPECT_EQ(attach_entries(3, {{0x1000, 4096, 0}}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, AttachBacking_HugeEntryCount_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  EXPECT_EQ(attach_entries(0xffffffffu, {}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, DetachBacking_NoBacking_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  EXPECT_EQ(on_resource<virtio_gpu_resource_detach_backing>(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1),
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, DetachBacking_Attached_OkAndTransferThenFails) {
  ASSERT_EQ(h_.create_2d(1, 16, 16), kOk);
  ASSERT_EQ(h_.attach_backing(1, 1024), kOk);
  ASSERT_EQ(on_resource<virtio_gpu_resource_detach_backing>(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1), kOk);
  EXPECT_EQ(h_.transfer(1, {0, 0, 16, 16}, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, Transfer_Unknown_InvalidResourceId) {
  EXPECT_EQ(h_.transfer(8, {0, 0, 1, 1}, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

TEST_F(GpuCommands, Transfer_RectOutsideResource_InvalidParameter) {
  make_patterned_resource();
  EXPECT_EQ(h_.transfer(1, {60, 0, 5, 1}, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, Transfer_OffsetPastBacking_InvalidParameter) {
  make_patterned_resource();
  EXPECT_EQ(h_.transfer(1, {0, 0, 64, 32}, 4), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, Transfer_OffsetNearUint64Max_InvalidParameter) {
  make_patterned_resource();
  EXPECT_EQ(h_.transfer(1, {0, 0, 1, 1}, ~uint64_t{0} - 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, TransferFlush_SubRect_DisplayGetsOnlyThatRectWithGuestPixels) {
  make_patterned_resource();
  ASSERT_EQ(h_.set_scanout(0, 1, {0, 0, 64, 32}), kOk);
  const uint64_t offset = (uint64_t{4} * 64 + 8) * 4;  // pixel (8, 4)
  ASSERT_EQ(h_.transfer(1, {8, 4, 2, 2}, offset), kOk);
  ASSERT_EQ(h_.flush(1, {8, 4, 2, 2}), kOk);
  ASSERT_EQ(display_->updates.size(), 1u);
  const auto& u = display_->updates[0];
  EXPECT_EQ(u.damage, (Rect{8, 4, 2, 2}));
  EXPECT_EQ(u.pixels, (std::vector<uint32_t>{0xff000408u, 0xff000409u, 0xff000508u, 0xff000509u}));
}

TEST_F(GpuCommands, Transfer_SubRect_LeavesOtherPixelsUntouched) {
  make_patterned_resource();
  ASSERT_EQ(h_.set_scanout(0, 1, {0, 0, 64, 32}), kOk);
  ASSERT_EQ(h_.transfer(1, {8, 4, 2, 2}, (uint64_t{4} * 64 + 8) * 4), kOk);
  ASSERT_EQ(h_.flush(1, {7, 4, 1, 1}), kOk);
  EXPECT_EQ(display_->updates.back().pixels, std::vector<uint32_t>{0u});
}

TEST_F(GpuCommands, Flush_ScanoutShowsPartOfResource_DamageTranslatedAndClipped) {
  make_patterned_resource();
  ASSERT_EQ(h_.transfer(1, {0, 0, 64, 32}, 0), kOk);
  ASSERT_EQ(h_.set_scanout(1, 1, {32, 16, 32, 16}), kOk);
  ASSERT_EQ(h_.flush(1, {0, 0, 40, 20}), kOk);
  ASSERT_EQ(display_->updates.size(), 1u);
  EXPECT_EQ(display_->updates[0].scanout, 1u);
  EXPECT_EQ(display_->updates[0].damage, (Rect{0, 0, 8, 4}));
  EXPECT_EQ(display_->updates[0].pixels.front(), 0xff001020u);
}

TEST_F(GpuCommands, Flush_RectOutsideResource_InvalidParameter) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  EXPECT_EQ(h_.flush(1, {0, 0, 65, 1}), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, UnknownCommand_Sent_UnspecAndDeviceKeepsServing) {
  virtio_gpu_ctrl_hdr req{};
  req.type = 0x0999;
  ASSERT_EQ(h_.command_type(req), VIRTIO_GPU_RESP_ERR_UNSPEC);
  EXPECT_EQ(h_.create_2d(1, 16, 16), kOk);
}

TEST_F(GpuCommands, ThreeDCommand_WithoutVirgl_Unspec) {
  virtio_gpu_ctx_create req{};
  req.hdr.type = VIRTIO_GPU_CMD_CTX_CREATE;
  EXPECT_EQ(h_.command_type(req), VIRTIO_GPU_RESP_ERR_UNSPEC);
}

TEST_F(GpuCommands, ShortRequest_HeaderOnly_InvalidParameter) {
  virtio_gpu_ctrl_hdr req{};
  req.type = VIRTIO_GPU_CMD_RESOURCE_CREATE_2D;
  EXPECT_EQ(h_.command_type(req), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, ShortRequest_LessThanHeader_InvalidParameter) {
  const std::array<std::byte, 3> bytes{};
  EXPECT_EQ(GpuHarness::response_type(h_.send(0, bytes)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(GpuCommands, CursorCommand_OnControlQueue_Unspec) {
  EXPECT_EQ(h_.command_type(cursor_request(VIRTIO_GPU_CMD_MOVE_CURSOR)), VIRTIO_GPU_RESP_ERR_UNSPEC);
}

TEST_F(GpuCommands, ControlCommand_OnCursorQueue_ReturnedWithoutEffect) {
  const auto create = req::create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 16, 16);
  auto resp = h_.send(GpuDevice::kCursorQueue, GpuHarness::as_bytes(create), 0);
  ASSERT_TRUE(resp);
  EXPECT_FALSE(h_.device().resources().contains(1));
}

TEST_F(GpuCommands, ResponseBufferTooSmall_ChainReturnedWithZeroLength) {
  auto resp = get_display_info(8);
  ASSERT_TRUE(resp);
  EXPECT_TRUE(resp->empty());
}

TEST_F(GpuCommands, UpdateCursor_Resource_DisplayGetsArgbImage) {
  make_cursor_resource(VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM);
  virtio_gpu_update_cursor req = cursor_request(VIRTIO_GPU_CMD_UPDATE_CURSOR, 7);
  req.pos = {0, 100, 200, 0};
  req.hot_x = 3;
  ASSERT_TRUE(send_cursor(req));
  ASSERT_EQ(display_->cursor.size(), 1u);
  EXPECT_EQ(display_->cursor[0].x, 100u);
  EXPECT_EQ(display_->cursor[0].hot_x, 3u);
  EXPECT_EQ(display_->cursor[0].pixels.at(0), 0x80302010u);
}

TEST_F(GpuCommands, UpdateCursor_ResourceZero_Hides) {
  ASSERT_TRUE(send_cursor(cursor_request(VIRTIO_GPU_CMD_UPDATE_CURSOR)));
  ASSERT_EQ(display_->cursor.size(), 1u);
  EXPECT_EQ(display_->cursor[0].kind, FakeDisplay::CursorCall::Hide);
}

TEST_F(GpuCommands, UpdateCursor_TooLargeResource_Ignored) {
  ASSERT_EQ(h_.create_2d(7, 128, 64), kOk);
  ASSERT_TRUE(send_cursor(cursor_request(VIRTIO_GPU_CMD_UPDATE_CURSOR, 7)));
  EXPECT_TRUE(display_->cursor.empty());
}

TEST_F(GpuCommands, MoveCursor_BadScanout_Ignored) {
  virtio_gpu_update_cursor req = cursor_request(VIRTIO_GPU_CMD_MOVE_CURSOR);
  req.pos.scanout_id = 16;
  ASSERT_TRUE(send_cursor(req));
  EXPECT_TRUE(display_->cursor.empty());
}

TEST_F(GpuCommands, MoveCursor_Valid_DisplayGetsPosition) {
  virtio_gpu_update_cursor req = cursor_request(VIRTIO_GPU_CMD_MOVE_CURSOR);
  req.pos = {1, 5, 6, 0};
  ASSERT_TRUE(send_cursor(req));
  ASSERT_EQ(display_->cursor.size(), 1u);
  EXPECT_EQ(display_->cursor[0].kind, FakeDisplay::CursorCall::Move);
}

TEST_F(GpuCommands, LayoutChange_AfterFirstLayout_RaisesDisplayEvent) {
  display_->set_layout({{true, {0, 0, 1024, 768}}, {true, {1024, 0, 1024, 768}}});
  std::array<std::byte, 4> events{};
  ASSERT_TRUE(h_.device().read_config(offsetof(virtio_gpu_config, events_read), events));
  EXPECT_EQ(std::to_integer<uint32_t>(events[0]) & VIRTIO_GPU_EVENT_DISPLAY, VIRTIO_GPU_EVENT_DISPLAY);
}

TEST_F(GpuCommands, Reset_WithResources_AllDropped) {
  ASSERT_EQ(h_.create_2d(1, 64, 64), kOk);
  h_.device().reset();
  EXPECT_EQ(h_.device().resources().size(), 0u);
  EXPECT_EQ(h_.device().resources().used_bytes(), 0u);
}

TEST_F(GpuCommands, UpdateCursor_XrgbResource_FourthByteIsAlpha) {
  make_cursor_resource(VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
  ASSERT_TRUE(send_cursor(cursor_request(VIRTIO_GPU_CMD_UPDATE_CURSOR, 7)));
  ASSERT_EQ(display_->cursor.size(), 1u);
  EXPECT_EQ(display_->cursor[0].pixels.at(0), 0x80302010u);
}

}  // namespace
}  // namespace vgpu::test

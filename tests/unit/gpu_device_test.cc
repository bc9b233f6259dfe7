#include <gtest/gtest.h>
#include <linux/virtio_config.h>

#include "gpu/device.h"
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

#include <array>
#include <cstring>

#include "gpu/command_names.h"
#include "support/device_parts.h"

namespace vgpu {
namespace {

uint32_t read_u32(const GpuDevice& dev, uint32_t offset) {
  std::array<std::byte, 4> buf{};
  EXPECT_TRUE(dev.read_config(offset, buf));
  uint32_t v = 0;
  std::memcpy(&v, buf.data(), sizeof(v));
  return v;
}

TEST(GpuDevice, Config_TwoOutputs_ReportsNumScanouts) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{.num_scanouts = 2};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  EXPECT_EQ(read_u32(dev, offsetof(virtio_gpu_config, num_scanouts)), 2u);
}

TEST(GpuDevice, Config_Default_NoCapsets) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  EXPECT_EQ(read_u32(dev, offsetof(virtio_gpu_config, num_capsets)), 0u);
}

TEST(GpuDevice, ReadConfig_PastTheStruct_ReadsZeros) {
  // QEMU 11.1's vhost-user-gpu-pci reads 20 bytes; a generic device its config_size.
  const GpuDeviceConfig cfg = GpuDeviceConfig{.num_scanouts = 3};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  std::array<std::byte, 24> buf{};
  buf.fill(std::byte{0x77});
  ASSERT_TRUE(dev.read_config(0, buf));
  uint32_t scanouts = 0;
  std::memcpy(&scanouts, buf.data() + offsetof(virtio_gpu_config, num_scanouts), 4);
  EXPECT_EQ(scanouts, 3u);
  for (size_t i = kConfigBaseSize; i < buf.size(); ++i) EXPECT_EQ(buf[i], std::byte{0}) << i;
  std::array<std::byte, 8> tail{};
  EXPECT_TRUE(dev.read_config(kConfigBaseSize - 4, tail));
}

TEST(GpuDevice, ReadConfig_PastVhostUserLimit_Refused) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  std::array<std::byte, 8> buf{};
  EXPECT_FALSE(dev.read_config(252, buf));
}

TEST(GpuDevice, ReadConfig_HugeOffset_Refused) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  std::array<std::byte, 4> buf{};
  EXPECT_FALSE(dev.read_config(0xfffffffeu, buf));
}

TEST(GpuDevice, WriteConfig_NumScanouts_Refused) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  std::array<std::byte, 4> one{std::byte{1}};
  EXPECT_FALSE(dev.write_config(offsetof(virtio_gpu_config, num_scanouts), one));
}

TEST(GpuDevice, WriteConfig_EventsClear_Accepted) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  std::array<std::byte, 4> one{std::byte{1}};
  EXPECT_TRUE(dev.write_config(offsetof(virtio_gpu_config, events_clear), one));
}

TEST(GpuDevice, Features_2d_OfferTransportBitsEdidBlobAndUuid) {
  const GpuDeviceConfig cfg = GpuDeviceConfig{};
  GpuDevice dev(cfg, nullptr, test::soft2d_renderers(), test::standard_displays(cfg));
  const uint64_t expected = (uint64_t{1} << VIRTIO_F_VERSION_1) | (uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC) |
                            (uint64_t{1} << VIRTIO_RING_F_EVENT_IDX) | (uint64_t{1} << VIRTIO_GPU_F_EDID) |
                            (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB) | (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_UUID);
  EXPECT_EQ(dev.features(), expected);
}

TEST(CommandNames, KnownType_ReturnsName) {
  EXPECT_EQ(command_name(VIRTIO_GPU_CMD_GET_DISPLAY_INFO), "GET_DISPLAY_INFO");
}

TEST(CommandNames, UnknownType_ReturnsUnknown) {
  EXPECT_EQ(command_name(0xdead), "UNKNOWN");
}

}  // namespace
}  // namespace vgpu

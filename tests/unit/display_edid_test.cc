// EDID generator: the fixed header, the checksum, EDID 1.4, the preferred mode round trip through the
// detailed timing descriptor, the clamp to what a descriptor can state, the monitor name, and the validator.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <numeric>
#include <string>
#include <vector>

#include "display/edid.h"

namespace vgpu {
namespace {

uint32_t byte_sum(std::span<const uint8_t> bytes) {
  return std::accumulate(bytes.begin(), bytes.end(), 0u);
}

// The 13 text bytes of the display descriptor with `tag`, or "" when there is none.
std::string descriptor_text(const std::array<uint8_t, kEdidBlockSize>& e, uint8_t tag) {
  std::string out;
  for (size_t off = 54; off < 126; off += 18) {
    const bool match = e[off] == 0 && e[off + 1] == 0 && e[off + 3] == tag;
    out += match ? std::string(e.begin() + off + 5, e.begin() + off + 18) : std::string();
  }
  return out;
}

TEST(Edid, Generated_HeaderIsFixedPattern) {
  const auto e = generate_edid({});

  EXPECT_EQ(std::vector<uint8_t>(e.begin(), e.begin() + 8),
            (std::vector<uint8_t>{0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}));
}

TEST(Edid, Generated_ChecksumMakesSumZero) {
  const auto e = generate_edid({.width = 1920, .height = 1080});

  EXPECT_EQ(byte_sum(e) % 256, 0u);
}

TEST(Edid, Generated_IsVersion14DigitalWithoutExtensions) {
  const auto e = generate_edid({});

  EXPECT_EQ(e[18], 1);
  EXPECT_EQ(e[19], 4);
  EXPECT_NE(e[20] & 0x80, 0);
  EXPECT_EQ(e[126], 0);
}

TEST(Edid, Generated_IsValid) {
  const auto e = generate_edid({.width = 1024, .height = 768});

  EXPECT_TRUE(edid_valid(e));
}

TEST(Edid, Generated_MonitorNameIsVhostGpu) {
  const auto e = generate_edid({});

  EXPECT_EQ(descriptor_text(e, 0xfc), "vhost-gpu\n   ");
}

TEST(Edid, Generated_SerialIsStored) {
  const auto e = generate_edid({.serial = 0x01020304});

  EXPECT_EQ((std::vector<uint8_t>(e.begin() + 12, e.begin() + 16)), (std::vector<uint8_t>{4, 3, 2, 1}));
}

class EdidModeTest : public testing::TestWithParam<std::pair<uint32_t, uint32_t>> {};

TEST_P(EdidModeTest, PreferredMode_RoundTripsSize) {
  const auto [w, h] = GetParam();

  const auto mode = edid_preferred_mode(generate_edid({.width = w, .height = h}));

  ASSERT_TRUE(mode.has_value());
  EXPECT_EQ(mode->width, w);
  EXPECT_EQ(mode->height, h);
}

TEST_P(EdidModeTest, PreferredMode_UsesReducedBlankingAtMost60Hz) {
  const auto [w, h] = GetParam();

  const auto mode = edid_preferred_mode(generate_edid({.width = w, .height = h})).value();

  EXPECT_EQ(mode.h_total, w + 160);
  EXPECT_GT(mode.v_total, h);
  EXPECT_LE(uint64_t{mode.pixel_clock_khz} * 1000, uint64_t{60} * mode.h_total * mode.v_total);
  EXPECT_GT(uint64_t{mode.pixel_clock_khz} * 1000, uint64_t{50} * mode.h_total * mode.v_total);
}

TEST_P(EdidModeTest, Generated_ValidForEverySize) {
  const auto [w, h] = GetParam();

  EXPECT_TRUE(edid_valid(generate_edid({.width = w, .height = h})));
}

TEST_P(EdidModeTest, RangeLimits_ContainPreferredMode) {
  const auto [w, h] = GetParam();
  const auto e = generate_edid({.width = w, .height = h});
  const auto mode = edid_preferred_mode(e).value();
  const size_t range = 72;  // second descriptor

  EXPECT_EQ(e[range + 3], 0xfd);
  EXPECT_LE(e[range + 5], 60);                                                  // min vertical Hz
  EXPECT_GE(e[range + 6], 60);                                                  // max vertical Hz
  EXPECT_LE(e[range + 7] * 1000u, mode.pixel_clock_khz * 1000 / mode.h_total);  // min horizontal kHz
  EXPECT_GE(e[range + 8] * 1000u, mode.pixel_clock_khz * 1000 / mode.h_total);  // max horizontal kHz
  EXPECT_GE(e[range + 9] * 10000u, mode.pixel_clock_khz);                       // max clock, 10 MHz units
}

INSTANTIATE_TEST_SUITE_P(Sizes, EdidModeTest,
                         testing::Values(std::pair{640u, 480u}, std::pair{1024u, 768u}, std::pair{1280u, 800u},
                                         std::pair{1920u, 1080u}, std::pair{2560u, 1600u}, std::pair{3840u, 2160u},
                                         std::pair{1366u, 768u}, std::pair{33u, 17u}));

TEST(Edid, OversizedRequest_ClampedTo4095) {
  const auto mode = edid_preferred_mode(generate_edid({.width = 8192, .height = 5000})).value();

  EXPECT_EQ(mode.width, kEdidMaxDimension);
  EXPECT_EQ(mode.height, kEdidMaxDimension);
}

TEST(Edid, HugeMode_ClockFitsDescriptor) {
  const auto mode = edid_preferred_mode(generate_edid({.width = 4095, .height = 4095})).value();

  EXPECT_LE(mode.pixel_clock_khz, 655350u);
  EXPECT_GT(mode.pixel_clock_khz, 0u);
}

TEST(Edid, ZeroSize_ClampedToOnePixelWithNonZeroClock) {
  const auto mode = edid_preferred_mode(generate_edid({.width = 0, .height = 0})).value();

  EXPECT_EQ(mode.width, 1u);
  EXPECT_EQ(mode.height, 1u);
  EXPECT_GT(mode.pixel_clock_khz, 0u);
}

TEST(Edid, BadChecksum_Invalid) {
  auto e = generate_edid({});
  e[127] ^= 1;

  EXPECT_FALSE(edid_valid(e));
}

TEST(Edid, BadHeader_Invalid) {
  auto e = generate_edid({});
  e[0] = 1;
  e[127] -= 1;  // keep the checksum right: only the header is wrong

  EXPECT_FALSE(edid_valid(e));
}

TEST(Edid, ExtensionCountWithoutExtension_Invalid) {
  auto e = generate_edid({});
  e[126] = 1;
  e[127] -= 1;

  EXPECT_FALSE(edid_valid(e));
}

TEST(Edid, PartialBlock_Invalid) {
  const auto e = generate_edid({});

  EXPECT_FALSE(edid_valid(std::span<const uint8_t>(e.data(), 100)));
  EXPECT_FALSE(edid_valid({}));
}

TEST(Edid, TwoBlocksWithExtensionCount_Valid) {
  const auto base = generate_edid({});
  std::vector<uint8_t> e(base.begin(), base.end());
  e[126] = 1;
  e[127] -= 1;
  e.resize(256, 0);
  e[128] = 0x70;  // a DisplayID extension tag, checksummed
  e[255] = 0x90;

  EXPECT_TRUE(edid_valid(e));
}

TEST(Edid, ShortBlock_NoPreferredMode) {
  const auto e = generate_edid({});

  EXPECT_FALSE(edid_preferred_mode(std::span<const uint8_t>(e.data(), 64)).has_value());
}

}  // namespace
}  // namespace vgpu

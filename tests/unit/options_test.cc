#include "app/options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vgpu {
namespace {

std::variant<Options, ExitNow> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "vhost-gpu");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

int exit_code(const std::variant<Options, ExitNow>& r) {
  return std::get<ExitNow>(r).code;
}

TEST(Options, SocketPath_Given_IsParsed) {
  auto r = parse({"--socket-path", "/tmp/x.sock"});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  EXPECT_EQ(std::get<Options>(r).socket_path, "/tmp/x.sock");
}

TEST(Options, Fd_Given_IsParsed) {
  auto r = parse({"--fd", "3"});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  EXPECT_EQ(std::get<Options>(r).fd, 3);
}

TEST(Options, SocketPathAndFd_Together_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--fd", "3"})), 2);
}

TEST(Options, NoSocket_Given_ExitCode2) {
  EXPECT_EQ(exit_code(parse({})), 2);
}

TEST(Options, UnknownOption_Given_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--bogus"})), 2);
}

TEST(Options, NegativeFd_Given_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"--fd", "-1"})), 2);
}

TEST(Options, OutputsOutOfRange_Given_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--outputs", "17"})), 2);
}

TEST(Options, BadLogLevel_Given_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--log-level", "loud"})), 2);
}

TEST(Options, PrintCapabilities_WithoutSocket_ExitCode0) {
  EXPECT_EQ(exit_code(parse({"--print-capabilities"})), 0);
}

TEST(Options, Help_Given_ExitCode0) {
  EXPECT_EQ(exit_code(parse({"--help"})), 0);
}

TEST(Options, Version_Given_ExitCode0) {
  EXPECT_EQ(exit_code(parse({"--version"})), 0);
}

TEST(Options, Capabilities_Always_DeclareGpuType) {
  EXPECT_NE(capabilities_json().find("\"type\": \"gpu\""), std::string::npos);
}

}  // namespace
}  // namespace vgpu

namespace vgpu {
namespace {

TEST(Options, Resolution_Valid_Parsed) {
  auto r = parse({"-s", "/tmp/x", "--resolution", "1920x1080"});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  EXPECT_EQ(std::get<Options>(r).width, 1920u);
  EXPECT_EQ(std::get<Options>(r).height, 1080u);
}

TEST(Options, Resolution_TrailingGarbage_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--resolution", "1920x1080p"})), 2);
}

TEST(Options, Resolution_TooSmall_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--resolution", "8x8"})), 2);
}

TEST(Options, MaxResourceMemory_WithSuffix_Parsed) {
  auto r = parse({"-s", "/tmp/x", "--max-resource-memory", "64M"});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  EXPECT_EQ(std::get<Options>(r).max_resource_memory, 64ull << 20);
}

#ifdef VGPU_HAVE_VIRGL
TEST(Options, DmabufScanout_WithVirgl_Parsed) {
  auto r = parse({"-s", "/tmp/x", "--virgl", "--dmabuf-scanout"});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  EXPECT_TRUE(std::get<Options>(r).dmabuf_scanout);
}

TEST(Options, DmabufScanout_WithoutVirgl_ExitCode2) {
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--dmabuf-scanout"})), 2);
}

TEST(Options, Hostmem_PowerOfTwoWithSuffix_Parsed) {
  auto r = parse({"-s", "/tmp/x", "--virgl", "--venus", "--hostmem", "256M", "--max-venus-contexts", "4"});
  ASSERT_TRUE(std::holds_alternative<Options>(r));
  EXPECT_EQ(std::get<Options>(r).hostmem, uint64_t{256} << 20);
  EXPECT_EQ(std::get<Options>(r).max_venus_contexts, 4u);
  EXPECT_EQ(std::get<Options>(parse({"-s", "/tmp/x", "--virgl", "--venus", "--hostmem", "1G"})).hostmem,
            uint64_t{1} << 30);
}

TEST(Options, MaxContexts_ParsedAndRangeChecked) {
  EXPECT_EQ(std::get<Options>(parse({"-s", "/tmp/x", "--virgl"})).max_contexts, 64u);
  EXPECT_EQ(std::get<Options>(parse({"-s", "/tmp/x", "--virgl", "--max-contexts", "8"})).max_contexts, 8u);
  for (const char* n : {"0", "4097", "many"}) {
    EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--virgl", "--max-contexts", n})), 2) << n;
  }
}

TEST(Options, Hostmem_NotAPowerOfTwoOrOutOfRangeOrWithoutVenus_ExitCode2) {
  for (const char* size : {"300M", "0x1234", "512K", "128G", "3", "lots"}) {
    EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--virgl", "--venus", "--hostmem", size})), 2) << size;
  }
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--virgl", "--hostmem", "256M"})), 2);
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--virgl", "--venus", "--max-venus-contexts", "0"})), 2);
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--virgl", "--venus", "--blob-alignment", "sometimes"})), 2);
  EXPECT_EQ(std::get<Options>(parse({"-s", "/tmp/x", "--virgl", "--venus", "--blob-alignment", "off"})).blob_alignment,
            "off");
  EXPECT_EQ(exit_code(parse({"-s", "/tmp/x", "--virgl", "--venus", "--blob-alignment", "auto"})), 2);
}
#endif

}  // namespace
}  // namespace vgpu

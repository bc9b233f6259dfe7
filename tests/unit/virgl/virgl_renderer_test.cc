// VirglRenderer on whatever EGL the machine has (Mesa llvmpipe in CI, surfaceless): init, capsets, contexts,
// 3D resources and their transfers through fake guest memory, SUBMIT_3D (a real clear, garbage), fences on
// the global timeline and on context rings, scanout readback, backings across memory changes, reset, Venus.
//
// virglrenderer has process-wide state, so every test shares one renderer, created on first use and
// destroyed by a global environment; each test resets it on the way out, so tests run alone or in any order.
// Over 600 lines on purpose: virglrenderer allows one instance per process, so every case shares this file's one
// fixture and its library set-up; sections follow virgl_init, virgl_backings, virgl_fences and virgl_renderer.cc.
#include "renderer/virgl/virgl_renderer.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "common/leak_check.h"
#include "support/fake_display.h"
#include "support/fake_guest.h"
#include "support/gpu_harness.h"
#include "support/gpu_requests.h"
#include "support/virgl_stream.h"

// The test reads the library's own numbers to compare (plain C header, no extern "C" guards).
extern "C" {
#include <virglrenderer.h>
}

namespace vgpu {
namespace {

using test::FakeGuestMemory;
using test::VirglStream;
namespace virgl = test::virgl;

// Short names for the protocol numbers these tests use most.
constexpr uint32_t kPipeTexture2D = virgl::kPipeTexture2D;
constexpr uint32_t kVirglFormatB8G8R8X8 = virgl::kFormatB8G8R8X8;
constexpr uint32_t kBindRenderTarget = virgl::kBindRenderTarget;
constexpr uint32_t kBindSamplerView = virgl::kBindSamplerView;
// Streams come from test::VirglStream (support/virgl_stream.h).
std::vector<uint32_t> clear_stream_for(uint32_t res, std::array<float, 4> rgba) {
  return VirglStream{}.surface(1, res).framebuffer(1).clear(rgba).words();
}
std::vector<uint32_t> pipe_buffer_stream(uint32_t bytes, uint32_t blob_id) {
  return VirglStream{}.pipe_buffer(bytes, blob_id).words();
}

// Fills a mappable host blob through the library's own mapping (what the guest would do through a
// host-visible region): byte i is i * 7 + seed.
void fill_host_blob(uint32_t resource_id, uint64_t bytes, uint32_t seed) {
  void* map = nullptr;
  uint64_t size = 0;
  ASSERT_EQ(virgl_renderer_resource_map(resource_id, &map, &size), 0);
  ASSERT_GE(size, bytes);
  auto* p = static_cast<uint8_t*>(map);
  for (uint64_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(i * 7 + seed);
  virgl_renderer_resource_unmap(resource_id);
}

// The one renderer of this process.
std::unique_ptr<VirglRenderer>& shared_slot() {
  static std::unique_ptr<VirglRenderer> renderer;
  return renderer;
}
std::string& init_error() {
  static std::string error;
  return error;
}

class VirglEnvironment : public ::testing::Environment {
 public:
  // Before static destruction: the library logs through spdlog while cleaning up.
  void TearDown() override { shared_slot().reset(); }
};
[[maybe_unused]] const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new VirglEnvironment);

void create_shared() {
  // VGPU_TEST_LOG=debug shows what virglrenderer says about rejected streams.
  if (const char* level = std::getenv("VGPU_TEST_LOG")) spdlog::set_level(spdlog::level::from_str(level));
  // Venus on: it falls back to virgl alone when virgl_render_server cannot start.
  auto created = VirglRenderer::create(VirglOptions{.venus = true});
  if (created) {
    shared_slot() = std::move(*created);
  } else {
    init_error() = created.error();
  }
}

// The shared renderer, created on first use (and again after a test replaced it).
VirglRenderer* shared_renderer() {
  if (!shared_slot()) create_shared();
  return shared_slot().get();
}

// A pattern with no zero byte and the X byte of each pixel at 0xff (what a GL BGRX texture reads back).
std::vector<std::byte> pixels(size_t n, uint32_t seed) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = (i % 4 == 3) ? std::byte{0xff} : static_cast<std::byte>((i * 131 + seed) % 251 + 1);
  }
  return out;
}

// A BGRX render target / sampler view (renderer_3d.h's texture_2d_args is PIPE_TEXTURE_2D).
Resource3DArgs texture_args(uint32_t width, uint32_t height) {
  static_assert(texture_2d_args(0, 0, 1, 1).target == kPipeTexture2D);
  return texture_2d_args(kVirglFormatB8G8R8X8, kBindRenderTarget | kBindSamplerView, width, height);
}

Transfer3D whole(uint32_t width, uint32_t height) {
  return Transfer3D{.box = {.x = 0, .y = 0, .z = 0, .w = width, .h = height, .d = 1}};
}

std::span<const std::byte> bytes_of(const std::vector<uint32_t>& words) {
  return std::as_bytes(std::span(words));
}

class VirglRendererTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kWidth = 64;
  static constexpr uint32_t kHeight = 32;
  static constexpr uint64_t kFrameBytes = uint64_t{kWidth} * kHeight * 4;

  void SetUp() override {
    r_ = shared_renderer();
    if (r_ == nullptr) GTEST_FAIL() << "VirglRenderer::create failed: " << init_error();
  }
  void TearDown() override {
    if (r_ == nullptr) return;
    r_->set_fence_callback(nullptr);
    r_->reset();
  }

  // A backing of `size` bytes in two entries; the first backing of a test straddles the region boundary.
  GuestScatterList backing(uint64_t size) {
    const uint64_t first = size / 2;
    const GuestAddress a = straddled_ ? guest_.alloc(first, 4096) : guest_.alloc_across_regions(first);
    straddled_ = true;
    const GuestAddress b = guest_.alloc(size - first, 4096);
    auto list = GuestScatterList::create(guest_.memory(),
                                         {{a, static_cast<uint32_t>(first)}, {b, static_cast<uint32_t>(size - first)}});
    EXPECT_TRUE(list.has_value());
    return *list;
  }
  void fill(const GuestScatterList& list, std::span<const std::byte> data) {
    ASSERT_TRUE(list.write(0, data).has_value());
  }
  std::vector<std::byte> contents(const GuestScatterList& list) {
    std::vector<std::byte> out(list.size());
    EXPECT_TRUE(list.read(0, out).has_value());
    return out;
  }
  // A virgl context with a kWidth x kHeight BGRX render target attached to it.
  void make_context_and_target(uint32_t ctx, uint32_t res) {
    ASSERT_TRUE(r_->create_context(ctx, 0, "test").has_value());
    ASSERT_TRUE(r_->create_resource_3d(res, texture_args(kWidth, kHeight)).has_value());
    ASSERT_TRUE(r_->attach_resource(ctx, res).has_value());
  }
  // Polls `r` until `done` or five seconds; waits on poll_fd() when there is one.
  template <class Done>
  static bool poll_until(VirglRenderer& r, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd p{.fd = r.poll_fd(), .events = POLLIN, .revents = 0};
      if (p.fd >= 0) {
        ::poll(&p, 1, 10);
      } else {
        ::poll(nullptr, 0, 1);
      }
      r.poll();
    }
    return true;
  }
  template <class Done>
  bool poll_until(Done done) {
    return poll_until(*r_, done);
  }
  // Surface 1 on `res` as the only colour buffer, cleared to (r, g, b, a).
  static std::vector<uint32_t> clear_stream(uint32_t res, std::array<float, 4> rgba) {
    return clear_stream_for(res, rgba);
  }

  // kWidth x kHeight BGRX pixels of one colour, X byte 0xff (what a GL BGRX texture reads back).
  static std::vector<std::byte> solid_bgrx(uint8_t b, uint8_t g, uint8_t r) {
    std::vector<std::byte> out(kFrameBytes);
    for (size_t i = 0; i < out.size(); i += 4) {
      out[i] = std::byte{b};
      out[i + 1] = std::byte{g};
      out[i + 2] = std::byte{r};
      out[i + 3] = std::byte{0xff};
    }
    return out;
  }
  // "" when `got` == `want` (BGRX pixels), else the first pixel that differs, readably.
  static std::string pixel_difference(const std::vector<std::byte>& got, const std::vector<std::byte>& want) {
    if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
    for (size_t i = 0; i + 3 < got.size(); i += 4) {
      if (std::memcmp(&got[i], &want[i], 3) == 0) continue;
      auto bgr = [](const std::byte* p) {
        return std::to_string(std::to_integer<int>(p[0])) + "," + std::to_string(std::to_integer<int>(p[1])) + "," +
               std::to_string(std::to_integer<int>(p[2]));
      };
      return "pixel " + std::to_string(i / 4) + ": BGR " + bgr(&got[i]) + ", expected " + bgr(&want[i]);
    }
    return "";
  }
  // Target `res` read back through the host context into fresh guest memory.
  std::vector<std::byte> read_target(uint32_t res) {
    const GuestScatterList out = backing(kFrameBytes);
    auto read = r_->transfer_from_host_3d(0, res, whole(kWidth, kHeight), guest_.memory(), out);
    EXPECT_TRUE(read.has_value()) << to_string(read.error());
    return contents(out);
  }
  // A kWidth x kHeight sampler-view texture holding `bgrx`, uploaded through the host context.
  void make_texture(uint32_t res, const std::vector<std::byte>& bgrx) {
    ASSERT_TRUE(r_->create_resource_3d(res, texture_args(kWidth, kHeight)).has_value());
    const GuestScatterList in = backing(kFrameBytes);
    fill(in, bgrx);
    ASSERT_TRUE(r_->transfer_to_host_3d(0, res, whole(kWidth, kHeight), guest_.memory(), in).has_value());
  }
  // A HOST3D blob of `bytes` that context `ctx` made as `blob_id`, claimed with `flags`.
  static BlobArgs host3d_blob(uint32_t ctx, uint32_t blob_id, uint32_t bytes, uint32_t flags) {
    return BlobArgs{.ctx_id = ctx,
                    .blob_mem = VIRGL_RENDERER_BLOB_MEM_HOST3D,
                    .blob_flags = flags,
                    .blob_id = blob_id,
                    .size = bytes};
  }
  // Resource `id`: the buffer `args` names, made by its context (PIPE_RESOURCE_CREATE) and claimed as a blob.
  void make_host3d_blob(uint32_t id, const BlobArgs& args) {
    const auto made = r_->submit_3d(args.ctx_id, bytes_of(pipe_buffer_stream(static_cast<uint32_t>(args.size),
                                                                             static_cast<uint32_t>(args.blob_id))));
    ASSERT_TRUE(made.has_value()) << to_string(made.error());
    auto created = r_->create_blob(id, args, nullptr, nullptr);
    ASSERT_TRUE(created.has_value()) << to_string(created.error());
  }
  // A vertex buffer holding virgl::quad_vertices().
  void make_quad_vertex_buffer(uint32_t res) {
    const auto data = virgl::quad_vertices();
    const auto size = static_cast<uint32_t>(data.size());
    ASSERT_TRUE(r_->create_resource_3d(res, Resource3DArgs{.target = virgl::kPipeBuffer,
                                                           .format = virgl::kFormatR8,
                                                           .bind = virgl::kBindVertexBuffer,
                                                           .width = size,
                                                           .height = 1,
                                                           .depth = 1,
                                                           .array_size = 1})
                    .has_value());
    const GuestScatterList in = backing(size);
    fill(in, data);
    ASSERT_TRUE(r_->transfer_to_host_3d(0, res, whole(size, 1), guest_.memory(), in).has_value());
  }

  VirglRenderer* r_ = nullptr;
  bool straddled_ = false;
  FakeGuestMemory guest_{{{GuestAddress{0}, 1 << 20}, {GuestAddress{1 << 20}, 1 << 20}}};
};

// --- init and capsets ---------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Init_Surfaceless_ReportsVirglCapsetsWithLibrarySizes) {
  uint32_t v1 = 0, size1 = 0, v2 = 0, size2 = 0;
  virgl_renderer_get_cap_set(kCapsetVirgl, &v1, &size1);
  virgl_renderer_get_cap_set(kCapsetVirgl2, &v2, &size2);

  const auto& caps = r_->capsets();

  ASSERT_GE(caps.size(), 2u);
  EXPECT_EQ(caps[0], (CapsetInfo{.id = kCapsetVirgl, .max_version = v1, .max_size = size1}));
  EXPECT_EQ(caps[1], (CapsetInfo{.id = kCapsetVirgl2, .max_version = v2, .max_size = size2}));
  EXPECT_EQ(caps[0].max_size, 308u);   // struct virgl_caps_v1, frozen
  EXPECT_GE(caps[1].max_size, 1376u);  // struct virgl_caps_v2 of 0.10.4; it grows in later versions
  EXPECT_TRUE(r_->init_flags() & VIRGL_RENDERER_USE_SURFACELESS);
}

TEST_F(VirglRendererTest, Capset_Virgl_IsFilledAndStartsWithItsVersion) {
  auto v1 = r_->capset(kCapsetVirgl, 1);
  auto v2 = r_->capset(kCapsetVirgl2, 2);

  ASSERT_TRUE(v1.has_value());
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(v1->size(), 308u);
  EXPECT_EQ(v2->size(), r_->capsets()[1].max_size);
  uint32_t first = 0;
  std::memcpy(&first, v1->data(), 4);  // union virgl_caps starts with max_version
  EXPECT_EQ(first, 1u);
  std::memcpy(&first, v2->data(), 4);
  EXPECT_EQ(first, 2u);
  EXPECT_GT(std::count_if(v2->begin(), v2->end(), [](std::byte b) { return b != std::byte{0}; }), 100);
}

TEST_F(VirglRendererTest, Capset_UnknownIdOrNewerVersion_InvalidArgument) {
  EXPECT_EQ(r_->capset(3, 0).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->capset(kCapsetVirgl, 2).error(), Renderer3DError::InvalidArgument);
}

TEST_F(VirglRendererTest, Create_WhileOneIsAlive_FailsWithReason) {
  auto second = VirglRenderer::create({});

  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().find("another VirglRenderer"), std::string::npos);
}

TEST_F(VirglRendererTest, Lifecycle_DestroyThenCreateWithOtherOptions_Works) {
  r_ = nullptr;           // TearDown leaves the renderers of this test alone
  shared_slot().reset();  // the library is cleaned up: a new renderer may start (the next SetUp makes one)

  auto missing_node = VirglRenderer::create(VirglOptions{.render_node = "/nonexistent/renderD128"});
  auto polled = VirglRenderer::create(VirglOptions{.thread_sync = false});

  ASSERT_FALSE(missing_node.has_value());
  EXPECT_NE(missing_node.error().find("cannot open render node /nonexistent/renderD128"), std::string::npos);
  ASSERT_TRUE(polled.has_value()) << polled.error();
  VirglRenderer& r = **polled;
  EXPECT_EQ(r.poll_fd(), -1);  // no fence thread: poll() on a timer
  EXPECT_FALSE(r.venus());
  std::vector<uint64_t> seen;
  r.set_fence_callback([&](FenceRing, uint64_t id) { seen.push_back(id); });
  ASSERT_TRUE(r.create_fence(FenceRing::global(), 1).has_value());
  ASSERT_TRUE(r.create_fence(FenceRing::global(), 2).has_value());
  EXPECT_TRUE(poll_until(r, [&] { return seen.size() == 2; }));
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2}));
  r.reset();
}

// --- contexts -------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Context_CreateDestroyRecreate_Succeeds) {
  EXPECT_TRUE(r_->create_context(1, 0, "one").has_value());
  EXPECT_TRUE(r_->create_context(2, kCapsetVirgl, "virgl1").has_value());
  r_->destroy_context(1);
  EXPECT_TRUE(r_->create_context(1, kCapsetVirgl2, std::string(200, 'n')).has_value());  // name cut to 64
  r_->destroy_context(1);
  r_->destroy_context(1);  // unknown: ignored
  r_->destroy_context(2);
}

TEST_F(VirglRendererTest, Context_BadIdsAndCapsets_Refused) {
  ASSERT_TRUE(r_->create_context(1, 0, "one").has_value());

  EXPECT_EQ(r_->create_context(1, 0, "again").error(), Renderer3DError::InvalidContext);
  EXPECT_EQ(r_->create_context(0, 0, "zero").error(), Renderer3DError::InvalidContext);
  EXPECT_EQ(r_->create_context(3, 3, "gfxstream").error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->create_context(4, 0x100 | kCapsetVirgl2, "flags").error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->attach_resource(9, 1).error(), Renderer3DError::InvalidContext);
  EXPECT_EQ(r_->attach_resource(1, 77).error(), Renderer3DError::InvalidResource);
}

// --- 3D resources and transfers ---------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Transfer3D_ToHostThenFromHost_RoundTripsBytes) {
  make_context_and_target(1, 10);
  const GuestScatterList in = backing(kFrameBytes);
  const GuestScatterList out = backing(kFrameBytes);
  const auto data = pixels(kFrameBytes, 7);
  fill(in, data);

  auto up = r_->transfer_to_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), in);
  auto down = r_->transfer_from_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), out);

  ASSERT_TRUE(up.has_value()) << to_string(up.error());
  ASSERT_TRUE(down.has_value()) << to_string(down.error());
  EXPECT_EQ(contents(out), data);
}

TEST_F(VirglRendererTest, Transfer3D_SubBoxWithStrideAndOffset_LandsInPlace) {
  make_context_and_target(1, 10);
  const GuestScatterList frame = backing(kFrameBytes);
  const auto base = pixels(kFrameBytes, 3);
  fill(frame, base);
  ASSERT_TRUE(r_->transfer_to_host_3d(0, 10, whole(kWidth, kHeight), guest_.memory(), frame).has_value());
  // An 8 x 4 box at (5, 3), rows 40 bytes apart, starting 12 bytes into its own backing.
  constexpr uint32_t kStride = 40;
  const GuestScatterList patch = backing(12 + 3 * kStride + 8 * 4);
  const auto patch_bytes = pixels(patch.size(), 99);
  fill(patch, patch_bytes);
  const Transfer3D t{.box = {.x = 5, .y = 3, .z = 0, .w = 8, .h = 4, .d = 1}, .offset = 12, .stride = kStride};

  auto up = r_->transfer_to_host_3d(1, 10, t, guest_.memory(), patch);
  ASSERT_TRUE(up.has_value()) << to_string(up.error());
  ASSERT_TRUE(r_->transfer_from_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), frame).has_value());

  auto expected = base;
  for (uint32_t row = 0; row < 4; ++row) {
    std::memcpy(expected.data() + ((3 + row) * kWidth + 5) * 4, patch_bytes.data() + 12 + row * kStride, 8 * 4);
  }
  EXPECT_EQ(contents(frame), expected);
}

TEST_F(VirglRendererTest, Transfer3D_BadArguments_RefusedAndNothingBreaks) {
  make_context_and_target(1, 10);
  const GuestScatterList frame = backing(kFrameBytes);
  const GuestScatterList small = backing(kFrameBytes / 2);
  Transfer3D outside = whole(kWidth, kHeight);
  outside.box.x = 1;
  Transfer3D level = whole(kWidth, kHeight);
  level.level = 1;
  Transfer3D past_end = whole(1, 1);
  past_end.offset = kFrameBytes;
  Transfer3D huge = whole(kWidth, kHeight);
  huge.box.w = 0x80000000u;

  EXPECT_EQ(r_->transfer_to_host_3d(1, 77, whole(kWidth, kHeight), guest_.memory(), frame).error(),
            Renderer3DError::InvalidResource);
  EXPECT_EQ(r_->transfer_to_host_3d(9, 10, whole(kWidth, kHeight), guest_.memory(), frame).error(),
            Renderer3DError::InvalidContext);
  EXPECT_EQ(r_->transfer_to_host_3d(1, 10, outside, guest_.memory(), frame).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->transfer_to_host_3d(1, 10, level, guest_.memory(), frame).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->transfer_to_host_3d(1, 10, past_end, guest_.memory(), frame).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->transfer_to_host_3d(1, 10, huge, guest_.memory(), frame).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->transfer_from_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), small).error(),
            Renderer3DError::InvalidArgument);
  // The library marks context 1 broken for those (as it does for a bad stream); the resource and the host
  // context still work, and so does a new context.
  EXPECT_TRUE(r_->transfer_from_host_3d(0, 10, whole(kWidth, kHeight), guest_.memory(), frame).has_value());
  ASSERT_TRUE(r_->create_context(2, 0, "healthy").has_value());
  ASSERT_TRUE(r_->attach_resource(2, 10).has_value());
  EXPECT_TRUE(r_->transfer_from_host_3d(2, 10, whole(kWidth, kHeight), guest_.memory(), frame).has_value());
}

TEST_F(VirglRendererTest, Resource3D_BadArgsOrDuplicateId_InvalidArgument) {
  ASSERT_TRUE(r_->create_resource_3d(10, texture_args(kWidth, kHeight)).has_value());
  Resource3DArgs bad_target = texture_args(kWidth, kHeight);
  bad_target.target = 99;

  EXPECT_EQ(r_->create_resource_3d(10, texture_args(4, 4)).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->create_resource_3d(0, texture_args(4, 4)).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->create_resource_3d(11, bad_target).error(), Renderer3DError::InvalidArgument);
}

// --- 2D commands and scanout readback ---------------------------------------------------------------------------

TEST_F(VirglRendererTest, Transfer2D_ThenImage_ShowsTheGuestBytes) {
  ASSERT_TRUE(r_->create_resource(20, PixelFormat::B8G8R8X8, kWidth, kHeight).has_value());
  const GuestScatterList frame = backing(kFrameBytes);
  const auto data = pixels(kFrameBytes, 11);
  fill(frame, data);

  auto up = r_->transfer_to_host_2d(20, Rect{0, 0, kWidth, kHeight}, 0, frame);
  auto view = r_->image(20);

  ASSERT_TRUE(up.has_value());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->width, kWidth);
  EXPECT_EQ(view->height, kHeight);
  EXPECT_EQ(view->stride, kWidth * 4);
  EXPECT_EQ(view->format, PixelFormat::B8G8R8X8);
  EXPECT_EQ(std::vector<std::byte>(view->data, view->data + kFrameBytes), data);
}

TEST_F(VirglRendererTest, Transfer2D_SubRect_CopiesOnlyTheRect) {
  ASSERT_TRUE(r_->create_resource(20, PixelFormat::B8G8R8X8, kWidth, kHeight).has_value());
  const GuestScatterList frame = backing(kFrameBytes);
  const auto data = pixels(kFrameBytes, 5);
  fill(frame, data);
  const Rect rect{3, 2, 10, 5};
  const uint64_t offset = (uint64_t{rect.y} * kWidth + rect.x) * 4;  // what Linux sends

  ASSERT_TRUE(r_->transfer_to_host_2d(20, rect, offset, frame).has_value());
  auto view = r_->image(20);

  ASSERT_TRUE(view.has_value());
  std::vector<std::byte> expected(kFrameBytes, std::byte{0});
  for (uint32_t row = rect.y; row < rect.y + rect.height; ++row) {
    const size_t at = (size_t{row} * kWidth + rect.x) * 4;
    std::memcpy(expected.data() + at, data.data() + at, size_t{rect.width} * 4);
  }
  std::vector<std::byte> got(view->data, view->data + kFrameBytes);
  for (size_t i = 3; i < got.size(); i += 4) got[i] = expected[i] = std::byte{0};  // X bytes: undefined
  EXPECT_EQ(got, expected);
}

TEST_F(VirglRendererTest, Transfer2D_Errors_MatchSoft2D) {
  ASSERT_TRUE(r_->create_resource(20, PixelFormat::B8G8R8X8, kWidth, kHeight).has_value());
  const GuestScatterList frame = backing(kFrameBytes);

  EXPECT_EQ(r_->transfer_to_host_2d(21, Rect{0, 0, 1, 1}, 0, frame).error(), RendererError::InvalidResource);
  EXPECT_EQ(r_->transfer_to_host_2d(20, Rect{1, 0, kWidth, 1}, 0, frame).error(), RendererError::InvalidArgument);
  EXPECT_EQ(r_->transfer_to_host_2d(20, Rect{0, 0, kWidth, kHeight}, 4, frame).error(), RendererError::InvalidArgument);
  EXPECT_EQ(r_->create_resource(20, PixelFormat::B8G8R8X8, 4, 4).error(), RendererError::InvalidArgument);
  EXPECT_EQ(r_->create_resource(22, PixelFormat::B8G8R8X8, 0, 4).error(), RendererError::InvalidArgument);
}

TEST_F(VirglRendererTest, Image_UnknownOrDestroyedOrNonScanoutResource_Nullopt) {
  ASSERT_TRUE(r_->create_resource(20, PixelFormat::B8G8R8X8, 8, 8).has_value());
  Resource3DArgs buffer{.target = 0,
                        .format = 64 /* R8_UNORM */,
                        .bind = 1u << 4,
                        .width = 4096,
                        .height = 1,
                        .depth = 1,
                        .array_size = 1};
  ASSERT_TRUE(r_->create_resource_3d(21, buffer).has_value());

  r_->destroy_resource(20);

  EXPECT_FALSE(r_->image(20).has_value());
  EXPECT_FALSE(r_->image(21).has_value());
  EXPECT_FALSE(r_->image(99).has_value());
}

// --- SUBMIT_3D ----------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Submit3D_ClearOfASurface_ReadsBackTheColour) {
  make_context_and_target(1, 10);
  const auto stream = clear_stream(10, {0.0f, 1.0f, 0.0f, 1.0f});

  auto submitted = r_->submit_3d(1, bytes_of(stream));
  ASSERT_TRUE(submitted.has_value()) << to_string(submitted.error());
  const GuestScatterList out = backing(kFrameBytes);
  ASSERT_TRUE(r_->transfer_from_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), out).has_value());
  auto view = r_->image(10);

  const auto got = contents(out);
  for (size_t px = 0; px < kFrameBytes / 4; ++px) {  // BGRX: green only
    ASSERT_EQ(got[px * 4 + 0], std::byte{0x00}) << "pixel " << px;
    ASSERT_EQ(got[px * 4 + 1], std::byte{0xff}) << "pixel " << px;
    ASSERT_EQ(got[px * 4 + 2], std::byte{0x00}) << "pixel " << px;
  }
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(std::vector<std::byte>(view->data, view->data + kFrameBytes), got);
}

// --- several contexts -----------------------------------------------------------------------------------------
// virglrenderer runs work that is not a context's command stream (resource creation, transfers, readback,
// fences) in whatever GL context is current, and its record of the current context goes stale when a context
// is created. QEMU forces the host context before every command; these tests fail without that.

TEST_F(VirglRendererTest, Contexts_SubmitAfterAnotherContextIsCreated_RendersInItsOwnContext) {
  make_context_and_target(1, 10);
  VirglStream setup;
  setup.surface(1, 10).framebuffer(1).clear({1.0f, 0.0f, 0.0f, 1.0f});
  ASSERT_TRUE(r_->submit_3d(1, setup.bytes()).has_value());

  // Creating context 2 makes its GL context current behind the library's back.
  ASSERT_TRUE(r_->create_context(2, 0, "second program").has_value());
  VirglStream clear;
  clear.clear({0.0f, 1.0f, 0.0f, 1.0f});  // context 1's framebuffer is still bound in context 1
  ASSERT_TRUE(r_->submit_3d(1, clear.bytes()).has_value());

  EXPECT_EQ(pixel_difference(read_target(10), solid_bgrx(0x00, 0xff, 0x00)),
            "");  // green: the clear reached context 1's target
}

TEST_F(VirglRendererTest, Contexts_ResourceCreatedBetweenDraws_KeepsTheContextsTextureBound) {
  // Context 1 draws a quad textured with a solid colour into target 10; then another program creates a texture
  // (RESOURCE_CREATE_3D), and context 1 draws the same quad into target 11 without rebinding anything.
  make_context_and_target(1, 10);
  ASSERT_TRUE(r_->create_resource_3d(11, texture_args(kWidth, kHeight)).has_value());
  ASSERT_TRUE(r_->attach_resource(1, 11).has_value());
  const uint32_t texture = 12, vertices = 13;
  make_texture(texture, solid_bgrx(0x30, 0x60, 0xc0));
  make_quad_vertex_buffer(vertices);
  ASSERT_TRUE(r_->attach_resource(1, texture).has_value());
  ASSERT_TRUE(r_->attach_resource(1, vertices).has_value());
  VirglStream first;
  first.surface(1, 10).framebuffer(1).textured_quad_pipeline(100, vertices, texture, kWidth, kHeight).draw_quad();
  {
    // llvmpipe keeps 112 bytes of its first shader compile unreachable (calloc from JIT code).
    [[maybe_unused]] LeakCheckPaused compiling_shaders;
    ASSERT_TRUE(r_->submit_3d(1, first.bytes()).has_value());  // (no readback here: it would switch contexts)
  }

  ASSERT_TRUE(r_->create_resource_3d(20, texture_args(kWidth, kHeight)).has_value());
  VirglStream second;
  second.clear({0.0f, 0.0f, 0.0f, 1.0f}).draw_quad();
  {
    [[maybe_unused]] LeakCheckPaused drawing;  // a variant of the program may be compiled here
    ASSERT_TRUE(r_->submit_3d(1, second.bytes()).has_value());
  }

  EXPECT_EQ(pixel_difference(read_target(10), solid_bgrx(0x30, 0x60, 0xc0)),
            "");  // not black: texture unit 0 still has the texture
}

TEST_F(VirglRendererTest, Contexts_InterleavedSubmitsTransfersAndFences_EachContextSeesItsOwnWork) {
  // Two programs at once: each clears its own target in turn, with transfers, resource creation and fences of
  // the other in between; every fence is delivered and every target ends in its own colour.
  make_context_and_target(1, 10);
  make_context_and_target(2, 11);
  std::vector<std::pair<FenceRing, uint64_t>> seen;
  r_->set_fence_callback([&](FenceRing ring, uint64_t id) { seen.emplace_back(ring, id); });
  VirglStream bind1, bind2;
  bind1.surface(1, 10).framebuffer(1);
  bind2.surface(1, 11).framebuffer(1);
  ASSERT_TRUE(r_->submit_3d(1, bind1.bytes()).has_value());
  ASSERT_TRUE(r_->submit_3d(2, bind2.bytes()).has_value());
  const GuestScatterList scratch = backing(kFrameBytes);
  uint64_t fence = 0;
  for (uint32_t round = 0; round < 4; ++round) {
    const float level = static_cast<float>(round + 1) / 4.0f;
    VirglStream c1, c2;
    c1.clear({level, 0.0f, 0.0f, 1.0f});
    c2.clear({0.0f, 0.0f, level, 1.0f});
    ASSERT_TRUE(r_->submit_3d(1, c1.bytes()).has_value());
    ASSERT_TRUE(r_->create_fence(FenceRing::context(1, 0), ++fence).has_value());
    ASSERT_TRUE(r_->create_resource_3d(30 + round, texture_args(8, 8)).has_value());
    ASSERT_TRUE(r_->transfer_from_host_3d(2, 11, whole(kWidth, kHeight), guest_.memory(), scratch).has_value());
    ASSERT_TRUE(r_->submit_3d(2, c2.bytes()).has_value());
    ASSERT_TRUE(r_->create_fence(FenceRing::context(2, 0), ++fence).has_value());
    ASSERT_TRUE(r_->create_fence(FenceRing::global(), ++fence).has_value());
  }

  ASSERT_TRUE(poll_until([&] { return seen.size() == fence; }));
  EXPECT_EQ(pixel_difference(read_target(10), solid_bgrx(0x00, 0x00, 0xff)), "");
  EXPECT_EQ(pixel_difference(read_target(11), solid_bgrx(0xff, 0x00, 0x00)), "");
}

// --- Blobs ---------------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Blob_Host3dMappable_ReadBlobHonoursOffsetAndStride) {
  ASSERT_TRUE(r_->create_context(1, 0, "blob").has_value());
  constexpr uint32_t kBytes = 64 * 1024;
  ASSERT_NO_FATAL_FAILURE(make_host3d_blob(30, host3d_blob(1, 5, kBytes, VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE)));
  fill_host_blob(30, kBytes, 3);

  // A 4x2 rect at (3, 5) of an image with 256-byte rows starting at byte 128, into rows of 24 bytes.
  const Rect rect{3, 5, 4, 2};
  constexpr uint32_t kDstStride = 4 * 4 + 8;
  std::vector<std::byte> dst(kDstStride * 2, std::byte{0x55});
  auto read = r_->read_blob(30, 128, 256, rect, dst, kDstStride);
  ASSERT_TRUE(read.has_value()) << to_string(read.error());
  for (uint32_t row = 0; row < 2; ++row) {
    for (uint32_t b = 0; b < 16; ++b) {
      const uint64_t src = 128 + (5 + row) * 256 + 3 * 4 + b;
      EXPECT_EQ(dst[row * kDstStride + b], static_cast<std::byte>(src * 7 + 3)) << row << "," << b;
    }
    EXPECT_EQ(dst[row * kDstStride + 16], std::byte{0x55});  // padding untouched
  }
  r_->destroy_resource(30);
  EXPECT_EQ(r_->read_blob(30, 0, 256, rect, dst, kDstStride).error(), Renderer3DError::InvalidResource);
}

// Dma-buf export needs EGL_MESA_image_dma_buf_export on a driver that can export (a GPU's, or llvmpipe with
// udmabuf): on this machine class it fails, and must fail cleanly, as Failed, so the device reads back instead.
// Where it works, the layout must be the resource's.
TEST_F(VirglRendererTest, ExportImage_DmabufWithTheResourceLayoutOrFailed) {
  ASSERT_TRUE(r_->create_resource(20, PixelFormat::B8G8R8X8, kWidth, kHeight).has_value());

  auto exported = r_->export_image(20);

  if (exported) {
    EXPECT_TRUE(exported->fd.valid());
    EXPECT_EQ(exported->image.fd, exported->fd.get());
    EXPECT_EQ(exported->image.width, kWidth);
    EXPECT_EQ(exported->image.height, kHeight);
    EXPECT_GE(exported->image.stride, kWidth * 4);
    EXPECT_EQ(exported->image.fourcc, kDrmFormatXrgb8888);
    EXPECT_TRUE(exported->image.y0_top);  // 2D resources are made Y_0_TOP, as QEMU makes them
  } else {
    EXPECT_EQ(exported.error(), Renderer3DError::Failed);
  }
  EXPECT_EQ(r_->export_image(21).error(), Renderer3DError::InvalidResource);
  EXPECT_EQ(r_->export_blob(20).error(), Renderer3DError::InvalidResource);  // not a blob
  r_->flush_for_display();                                                   // harmless at any time
}

TEST_F(VirglRendererTest, ExportBlob_Host3dBlobIsDmabufOrFailed) {
  ASSERT_TRUE(r_->create_context(1, 0, "blob").has_value());
  constexpr uint32_t kBytes = 64 * 1024;
  ASSERT_NO_FATAL_FAILURE(make_host3d_blob(
      30, host3d_blob(1, 5, kBytes, VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE | VIRGL_RENDERER_BLOB_FLAG_USE_SHAREABLE)));

  auto fd = r_->export_blob(30);

  if (fd) {
    EXPECT_TRUE(fd->valid());
  } else {
    EXPECT_EQ(fd.error(), Renderer3DError::Failed);
  }
  EXPECT_EQ(r_->export_image(30).error(), Renderer3DError::InvalidResource);  // a blob has no texture layout
  EXPECT_EQ(r_->export_blob(31).error(), Renderer3DError::InvalidResource);
}

TEST_F(VirglRendererTest, Blob_BadRequests_RefusedAndNothingLeaks) {
  ASSERT_TRUE(r_->create_context(1, 0, "blob").has_value());
  const BlobArgs unknown_id{.ctx_id = 1, .blob_mem = VIRGL_RENDERER_BLOB_MEM_HOST3D, .blob_id = 77, .size = 4096};
  EXPECT_FALSE(r_->create_blob(31, unknown_id, nullptr, nullptr).has_value());
  BlobArgs no_ctx = unknown_id;
  no_ctx.ctx_id = 9;
  EXPECT_EQ(r_->create_blob(31, no_ctx, nullptr, nullptr).error(), Renderer3DError::InvalidContext);
  EXPECT_EQ(r_->create_blob(0, unknown_id, nullptr, nullptr).error(), Renderer3DError::InvalidArgument);
  // Reading outside the blob is refused before the library sees it.
  const BlobArgs ok = host3d_blob(1, 6, kFrameBytes, VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE);
  ASSERT_NO_FATAL_FAILURE(make_host3d_blob(32, ok));
  std::vector<std::byte> dst(kFrameBytes);
  EXPECT_EQ(r_->read_blob(32, 4, kWidth * 4, Rect{0, 0, kWidth, kHeight}, dst, kWidth * 4).error(),
            Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->read_blob(32, 0, kWidth * 4, Rect{0, 0, kWidth, kHeight}, std::span(dst).first(16), kWidth * 4).error(),
            Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->create_blob(32, ok, nullptr, nullptr).error(), Renderer3DError::InvalidArgument);  // id in use
}

TEST_F(VirglRendererTest, Blob_GuestMemory_SurvivesMemoryRefresh) {
  const GuestScatterList list = backing(kFrameBytes);
  const BlobArgs args{.blob_mem = VIRGL_RENDERER_BLOB_MEM_GUEST,
                      .blob_flags = VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE,
                      .size = kFrameBytes};
  ASSERT_TRUE(r_->create_blob(33, args, &guest_.memory(), &list).has_value());
  r_->release_backings();
  r_->refresh_backings();
  r_->destroy_resource(33);
  EXPECT_EQ(r_->pending_fences(), 0u);
}

TEST_F(VirglRendererTest, Submit3D_EmptyStream_Succeeds) {
  ASSERT_TRUE(r_->create_context(1, 0, "empty").has_value());

  EXPECT_TRUE(r_->submit_3d(1, {}).has_value());
}

TEST_F(VirglRendererTest, Submit3D_Garbage_ErrorThenOtherContextsKeepWorking) {
  make_context_and_target(1, 10);
  // A command whose length runs past the end, then an unknown command number.
  const std::vector<uint32_t> overrun = {virgl::cmd0(virgl::kCcmdClear, 0, 200), 1, 2};
  const std::vector<uint32_t> unknown = {virgl::cmd0(250, 0, 0)};

  EXPECT_EQ(r_->submit_3d(1, bytes_of(unknown)).error(), Renderer3DError::InvalidArgument);
  (void)r_->submit_3d(1, bytes_of(overrun));  // 0.10.4 reports this one only through the context's error state
  ASSERT_TRUE(r_->create_context(2, 0, "healthy").has_value());
  ASSERT_TRUE(r_->attach_resource(2, 10).has_value());
  EXPECT_TRUE(r_->submit_3d(2, bytes_of(clear_stream(10, {1.0f, 0.0f, 0.0f, 1.0f}))).has_value());
  auto view = r_->image(10);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->data[2], std::byte{0xff});  // red
}

TEST_F(VirglRendererTest, Submit3D_BadSizeOrContext_Refused) {
  ASSERT_TRUE(r_->create_context(1, 0, "sizes").has_value());
  const std::vector<std::byte> odd(6);
  const std::vector<std::byte> too_big(VirglOptions{}.max_submit_bytes + 4);

  EXPECT_EQ(r_->submit_3d(1, odd).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->submit_3d(1, too_big).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->submit_3d(9, {}).error(), Renderer3DError::InvalidContext);
}

// --- fences --------------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Fences_Global_EachDeliveredOnceInOrderWith64BitIds) {
  make_context_and_target(1, 10);
  std::vector<std::pair<FenceRing, uint64_t>> seen;
  r_->set_fence_callback([&](FenceRing ring, uint64_t id) { seen.emplace_back(ring, id); });
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 6; ++i) {
    ids.push_back((uint64_t{7} << 40) + 100 + i);
    ASSERT_TRUE(r_->submit_3d(1, bytes_of(clear_stream(10, {0.5f, 0.5f, 0.5f, 1.0f}))).has_value());
    ASSERT_TRUE(r_->create_fence(FenceRing::global(), ids.back()).has_value());
  }

  ASSERT_TRUE(poll_until([&] { return seen.size() == ids.size(); }));

  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(seen[i].first, FenceRing::global());
    EXPECT_EQ(seen[i].second, ids[i]);
  }
  EXPECT_EQ(r_->pending_fences(), 0u);
}

TEST_F(VirglRendererTest, Fences_ContextRing0_DeliveredOnTheirRing) {
  make_context_and_target(1, 10);
  std::vector<std::pair<FenceRing, uint64_t>> seen;
  r_->set_fence_callback([&](FenceRing ring, uint64_t id) { seen.emplace_back(ring, id); });

  ASSERT_TRUE(r_->create_fence(FenceRing::context(1, 0), 5).has_value());
  ASSERT_TRUE(r_->create_fence(FenceRing::global(), 6).has_value());
  ASSERT_TRUE(r_->create_fence(FenceRing::context(1, 0), 7).has_value());
  ASSERT_TRUE(poll_until([&] { return seen.size() == 3; }));

  std::vector<uint64_t> ring0;
  for (const auto& [ring, id] : seen) {
    if (ring == FenceRing::context(1, 0)) ring0.push_back(id);
  }
  EXPECT_EQ(ring0, (std::vector<uint64_t>{5, 7}));
}

TEST_F(VirglRendererTest, Fences_BadRingOrContext_Refused) {
  ASSERT_TRUE(r_->create_context(1, 0, "rings").has_value());

  EXPECT_EQ(r_->create_fence(FenceRing::context(1, 64), 1).error(), Renderer3DError::InvalidArgument);
  EXPECT_EQ(r_->create_fence(FenceRing::context(9, 0), 1).error(), Renderer3DError::InvalidContext);
  EXPECT_EQ(r_->pending_fences(), 0u);
}

TEST_F(VirglRendererTest, Fences_VirglContextRingsAboveZero_EachDeliveredOnItsRingInOrder) {
  make_context_and_target(1, 10);
  std::vector<std::pair<FenceRing, uint64_t>> got;
  r_->set_fence_callback([&](FenceRing ring, uint64_t id) { got.emplace_back(ring, id); });
  // Rings 0, 1 and 2 interleaved, with ids that repeat across rings (each ring has its own sequence).
  const std::vector<std::pair<uint32_t, uint64_t>> order = {{1, 1}, {0, 1}, {2, 1}, {1, 2}, {0, 2}, {1, 3}};
  for (const auto& [ring, id] : order) {
    ASSERT_TRUE(r_->submit_3d(1, bytes_of(clear_stream(10, {0.2f, 0.4f, 0.6f, 1.0f}))).has_value());
    ASSERT_TRUE(r_->create_fence(FenceRing::context(1, ring), id).has_value());
  }
  ASSERT_TRUE(poll_until([&] { return got.size() == order.size(); })) << got.size();
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(got[i].first, FenceRing::context(1, order[i].first)) << i;
    EXPECT_EQ(got[i].second, order[i].second) << i;
  }
  EXPECT_EQ(r_->pending_fences(), 0u);
}

TEST_F(VirglRendererTest, Fences_CallbackCreatesMoreFences_AllDelivered) {
  std::vector<uint64_t> seen;
  r_->set_fence_callback([&](FenceRing, uint64_t id) {
    seen.push_back(id);
    if (id < 3) {
      EXPECT_TRUE(r_->create_fence(FenceRing::global(), id + 1).has_value());
    }
  });

  ASSERT_TRUE(r_->create_fence(FenceRing::global(), 1).has_value());
  ASSERT_TRUE(poll_until([&] { return seen.size() == 3; }));

  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 2, 3}));
}

TEST_F(VirglRendererTest, PollFd_WithThreadSync_ReadableOnceAFenceSignals) {
  const int fd = r_->poll_fd();
  ASSERT_GE(fd, 0) << "THREAD_SYNC did not take: poll() would need a timer";
  bool done = false;
  r_->set_fence_callback([&](FenceRing, uint64_t) { done = true; });

  ASSERT_TRUE(r_->create_fence(FenceRing::global(), 1).has_value());
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  const int ready = ::poll(&p, 1, 5000);
  r_->poll();

  EXPECT_EQ(ready, 1);
  EXPECT_TRUE(done);
}

// --- backings ---------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Backing_ReleaseRefresh_KeepsTransfersWorking) {
  make_context_and_target(1, 10);
  const GuestScatterList frame = backing(kFrameBytes);
  ASSERT_TRUE(r_->attach_backing(10, guest_.memory(), frame).has_value());

  r_->release_backings();
  r_->refresh_backings();
  r_->refresh_backings();  // releases by itself

  const auto data = pixels(kFrameBytes, 21);
  fill(frame, data);
  EXPECT_TRUE(r_->transfer_to_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), frame).has_value());
  r_->detach_backing(10);
  r_->detach_backing(10);
  EXPECT_EQ(r_->attach_backing(77, guest_.memory(), frame).error(), Renderer3DError::InvalidResource);
}

TEST_F(VirglRendererTest, Backing_RegionRemoved_DroppedOnRefreshAndTransfersFailCleanly) {
  make_context_and_target(1, 10);
  const GuestScatterList frame = backing(kFrameBytes);  // its first entry straddles into the second region
  ASSERT_TRUE(r_->attach_backing(10, guest_.memory(), frame).has_value());

  r_->release_backings();  // while the old mappings are alive
  ASSERT_TRUE(guest_.memory().remove_region(guest_.regions()[1]).has_value());
  r_->refresh_backings();

  EXPECT_EQ(r_->transfer_to_host_3d(1, 10, whole(kWidth, kHeight), guest_.memory(), frame).error(),
            Renderer3DError::GuestMemory);
  r_->destroy_resource(10);
}

// --- reset ---------------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Reset_DropsEverything_ThenWorksAgain) {
  make_context_and_target(1, 10);
  ASSERT_TRUE(r_->create_fence(FenceRing::context(1, 0), 1).has_value());

  r_->reset();

  EXPECT_FALSE(r_->image(10).has_value());
  EXPECT_EQ(r_->pending_fences(), 0u);
  EXPECT_EQ(r_->submit_3d(1, {}).error(), Renderer3DError::InvalidContext);
  make_context_and_target(1, 10);
  bool done = false;
  r_->set_fence_callback([&](FenceRing, uint64_t) { done = true; });
  ASSERT_TRUE(r_->create_fence(FenceRing::global(), 2).has_value());
  EXPECT_TRUE(poll_until([&] { return done; }));
}

// --- Venus ---------------------------------------------------------------------------------------------------------

TEST_F(VirglRendererTest, Venus_WithRenderServer_CapsetAndContext) {
  if (!r_->venus()) GTEST_SKIP() << "Venus did not start: virgl_render_server (package virgl-server) missing?";
  uint32_t version = 0, size = 0;
  virgl_renderer_get_cap_set(kCapsetVenus, &version, &size);

  const auto& caps = r_->capsets();
  auto venus = std::find_if(caps.begin(), caps.end(), [](const CapsetInfo& c) { return c.id == kCapsetVenus; });
  ASSERT_NE(venus, caps.end());
  EXPECT_EQ(*venus, (CapsetInfo{.id = kCapsetVenus, .max_version = version, .max_size = size}));
  auto bytes = r_->capset(kCapsetVenus, venus->max_version);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_TRUE(std::any_of(bytes->begin(), bytes->end(), [](std::byte b) { return b != std::byte{0}; }));
  EXPECT_TRUE(r_->create_context(5, kCapsetVenus, "venus").has_value());
  r_->destroy_context(5);
}

TEST_F(VirglRendererTest, Venus_ContextFences_DeliveredInOrderOnRing0) {
  if (!r_->venus()) GTEST_SKIP() << "Venus did not start: virgl_render_server (package virgl-server) missing?";
  ASSERT_TRUE(r_->create_context(5, kCapsetVenus, "venus").has_value());
  std::vector<std::pair<FenceRing, uint64_t>> seen;
  r_->set_fence_callback([&](FenceRing ring, uint64_t id) { seen.emplace_back(ring, id); });

  // Rings above 0 exist only once the guest created a Venus queue on them (vkr refuses them before).
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE(r_->create_fence(FenceRing::context(5, 0), id).has_value());
  ASSERT_TRUE(poll_until([&] { return seen.size() == 3; }));

  for (uint64_t id = 1; id <= 3; ++id) EXPECT_EQ(seen[id - 1], std::make_pair(FenceRing::context(5, 0), id));
  EXPECT_GE(r_->context_poll_fd(5), 0);  // Venus contexts on the render server signal through their own fd
}

}  // namespace
}  // namespace vgpu

// ---------------------------------------------------------------------------------------------------------
// The device's 3D command set on the real renderer (the device borrows the process's one virgl instance).

namespace vgpu::test {
namespace {

constexpr uint32_t kOk = VIRTIO_GPU_RESP_OK_NODATA;

class Gpu3dCommands : public ::testing::Test {
 protected:
  void SetUp() override {
    r_ = shared_renderer();
    if (r_ == nullptr) GTEST_FAIL() << "VirglRenderer::create failed: " << init_error();
    start_device(GpuDeviceConfig{});
  }
  // A fresh 3D device with `config` on the shared renderer (borrowed, not owned: an aliasing shared_ptr with no
  // control block).
  void start_device(const GpuDeviceConfig& config) {
    h_.reset();
    h_.emplace(config, GpuHarness::k3dFeatures, 64ull << 20, Renderers::with_3d(borrow(*r_)));
  }
  void TearDown() override {
    h_.reset();
    if (r_ == nullptr) return;
    r_->set_fence_callback(nullptr);
    r_->reset();
  }
  uint32_t ctx_create(uint32_t ctx_id, uint32_t context_init = 0) { return h_->ctx_create(ctx_id, context_init); }
  // CTX_ATTACH_RESOURCE of resource `id` to context `ctx`.
  static virtio_gpu_ctx_resource attach(uint32_t ctx, uint32_t id) {
    return req::for_resource<virtio_gpu_ctx_resource>(VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, id, ctx);
  }
  // SUBMIT_3D of `commands` on context `ctx`. With a fence id it is fenced and held until the fence signals: 0
  // comes back (no response yet).
  uint32_t submit_3d(uint32_t ctx, std::span<const std::byte> commands, uint64_t fence_id = 0) {
    return h_->command_type(req::submit_3d(ctx, static_cast<uint32_t>(commands.size()), fence_id), commands);
  }
  // RESOURCE_CREATE_3D of a 64x32 BGRX render target / sampler view, with a 64x32x4-byte backing in two pieces.
  void create_target_with_backing(uint32_t id) {
    ASSERT_EQ(h_->command_type(req::create_3d(id, kPipeTexture2D, kVirglFormatB8G8R8X8,
                                              kBindRenderTarget | kBindSamplerView, 64, 32)),
              VIRTIO_GPU_RESP_OK_NODATA);
    ASSERT_EQ(h_->attach_backing(id, 64 * 32 * 4, 2), VIRTIO_GPU_RESP_OK_NODATA);
  }
  // Polls the renderer until no fenced response is held (or 5 s pass).
  bool drain_fences() {
    for (int i = 0; i < 500 && h_->device().pending_fences() > 0; ++i) {
      h_->device().on_event({Token::RendererPoll, 0}, EPOLLIN);
      if (h_->device().pending_fences() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return h_->device().pending_fences() == 0;
  }

  VirglRenderer* r_ = nullptr;
  std::optional<GpuHarness> h_;
};

TEST_F(Gpu3dCommands, Features_With3d_OfferVirglContextInitAndBlob) {
  const uint64_t f = h_->device().features();
  EXPECT_NE(f & (uint64_t{1} << VIRTIO_GPU_F_VIRGL), 0u);
  EXPECT_NE(f & (uint64_t{1} << VIRTIO_GPU_F_CONTEXT_INIT), 0u);
  EXPECT_NE(f & (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB), 0u);
}

TEST_F(Gpu3dCommands, Host3dBlob_SetScanoutBlobFlush_DisplayShowsItsBytes) {
  auto d = std::make_unique<FakeDisplay>(1);
  FakeDisplay* display = d.get();
  h_->device().install_display(std::move(d));
  ASSERT_EQ(ctx_create(1), kOk);
  constexpr uint32_t kW = 32, kH = 16, kStride = kW * 4 + 64, kOffset = 4096;
  constexpr uint32_t kBytes = kOffset + kStride * kH;
  ASSERT_EQ(submit_3d(1, bytes_of(pipe_buffer_stream(kBytes, 9))), kOk);
  ASSERT_EQ(h_->create_blob(40, VIRTIO_GPU_BLOB_MEM_HOST3D, kBytes, 1, VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE, 9, 1), kOk);
  fill_host_blob(40, kBytes, 11);
  ASSERT_EQ(h_->set_scanout_blob(0, 40, {0, 0, kW, kH}, kW, kH, kStride, kOffset), kOk);
  ASSERT_EQ(h_->flush(40, {4, 2, 8, 3}), kOk);
  ASSERT_EQ(display->updates.size(), 1u);
  const auto& u = display->updates[0];
  EXPECT_EQ(u.damage, (Rect{4, 2, 8, 3}));
  ASSERT_EQ(u.pixels.size(), 24u);
  for (uint32_t y = 0; y < 3; ++y) {
    for (uint32_t x = 0; x < 8; ++x) {
      const uint64_t at = kOffset + uint64_t{2 + y} * kStride + (4 + x) * 4;
      uint32_t want = 0;
      for (uint32_t b = 0; b < 4; ++b) want |= uint32_t{static_cast<uint8_t>((at + b) * 7 + 11)} << (8 * b);
      EXPECT_EQ(u.pixels[y * 8 + x], want) << x << "," << y;
    }
  }
  // A HOST3D blob the context never made, or of an unknown context: errors, and the device goes on.
  EXPECT_EQ(h_->create_blob(41, VIRTIO_GPU_BLOB_MEM_HOST3D, 4096, 1, 0, 1234, 1),
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
  EXPECT_EQ(h_->create_blob(42, VIRTIO_GPU_BLOB_MEM_HOST3D, 4096, 1, 0, 9, 7), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
  EXPECT_EQ(h_->create_blob(43, VIRTIO_GPU_BLOB_MEM_GUEST, 4096), kOk);
  // MAP_BLOB: no host-visible region is offered.
  EXPECT_EQ(h_->command_type(req::for_resource<virtio_gpu_resource_map_blob>(VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB, 40)),
            VIRTIO_GPU_RESP_ERR_UNSPEC);
}

TEST_F(Gpu3dCommands, Config_NumCapsets_MatchesRenderer) {
  EXPECT_EQ(h_->device().config().num_capsets, r_->capsets().size());
}

TEST_F(Gpu3dCommands, GetCapsetInfo_Index0_Virgl) {
  auto resp = h_->send(0, GpuHarness::as_bytes(req::get_capset_info(0)), sizeof(virtio_gpu_resp_capset_info));
  ASSERT_TRUE(resp);
  virtio_gpu_resp_capset_info info{};
  std::memcpy(&info, resp->data(), sizeof(info));
  EXPECT_EQ(info.hdr.type, VIRTIO_GPU_RESP_OK_CAPSET_INFO);
  EXPECT_EQ(info.capset_id, kCapsetVirgl);
  EXPECT_EQ(info.capset_max_size, 308u);
}

TEST_F(Gpu3dCommands, GetCapsetInfo_IndexPastEnd_InvalidParameter) {
  EXPECT_EQ(h_->command_type(req::get_capset_info(7)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(Gpu3dCommands, GetCapset_Virgl2_ReturnsData) {
  // The library's own size (1376 bytes in 0.10.4, 1384 in 1.1).
  uint32_t max_version = 0, size = 0;
  virgl_renderer_get_cap_set(kCapsetVirgl2, &max_version, &size);
  ASSERT_GT(size, 0u);
  auto resp = h_->send(0, GpuHarness::as_bytes(req::get_capset(kCapsetVirgl2, 2)), sizeof(virtio_gpu_ctrl_hdr) + size);
  ASSERT_TRUE(resp);
  EXPECT_EQ(GpuHarness::response_type(resp), VIRTIO_GPU_RESP_OK_CAPSET);
  EXPECT_EQ(resp->size(), sizeof(virtio_gpu_ctrl_hdr) + size);
}

TEST_F(Gpu3dCommands, GetCapset_UnknownId_InvalidParameter) {
  EXPECT_EQ(h_->command_type(req::get_capset(99, 0)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(Gpu3dCommands, CtxCreate_Twice_InvalidContextId) {
  ASSERT_EQ(ctx_create(1), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(ctx_create(1), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
}

TEST_F(Gpu3dCommands, CtxCreate_IdZero_InvalidContextId) {
  EXPECT_EQ(ctx_create(0), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
}

TEST_F(Gpu3dCommands, CtxDestroy_Unknown_InvalidContextId) {
  EXPECT_EQ(h_->command_type(req::header(VIRTIO_GPU_CMD_CTX_DESTROY, 5)), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
}

TEST_F(Gpu3dCommands, Submit3d_UnknownContext_InvalidContextId) {
  EXPECT_EQ(h_->command_type(req::submit_3d(9, 0)), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
}

TEST_F(Gpu3dCommands, Submit3d_SizeBeyondChain_InvalidParameter) {
  ASSERT_EQ(ctx_create(1), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(h_->command_type(req::submit_3d(1, 4096)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
}

TEST_F(Gpu3dCommands, Submit3d_GarbageFenced_ErrorAndFenceStillCompletes) {
  ASSERT_EQ(ctx_create(1), VIRTIO_GPU_RESP_OK_NODATA);
  const std::vector<uint32_t> garbage{0xdeadbeef, 0x12345678};
  const auto fenced = req::submit_3d(1, static_cast<uint32_t>(garbage.size() * 4), /*fence_id=*/1);
  auto first = h_->send(0, GpuHarness::as_bytes(fenced), sizeof(virtio_gpu_ctrl_hdr), bytes_of(garbage));
  EXPECT_FALSE(first);  // held until its fence signals
  EXPECT_TRUE(drain_fences());
  EXPECT_EQ(ctx_create(2), VIRTIO_GPU_RESP_OK_NODATA);  // the device keeps serving
}

// Two guest programs through the device: context 1's fenced submit after context 2 was created (what the
// guest kernel logged as "response 0x1205 (command 0x207)") answers OK, and its clear reaches its target.
TEST_F(Gpu3dCommands, TwoContexts_FencedSubmitsTransfersAndContextCreation_EachContextRendersItsOwn) {
  create_target_with_backing(10);
  ASSERT_EQ(ctx_create(1), kOk);
  ASSERT_EQ(h_->command_type(attach(1, 10)), kOk);
  VirglStream red;
  red.surface(1, 10).framebuffer(1).clear({1.0f, 0.0f, 0.0f, 1.0f});
  EXPECT_EQ(submit_3d(1, red.bytes(), /*fence_id=*/1), 0u);

  ASSERT_EQ(ctx_create(2), kOk);  // a second program starts
  VirglStream green;
  green.clear({0.0f, 1.0f, 0.0f, 1.0f});
  EXPECT_EQ(submit_3d(1, green.bytes()), kOk);
  EXPECT_EQ(submit_3d(1, {}, /*fence_id=*/2), 0u);
  ASSERT_TRUE(drain_fences());
  ASSERT_EQ(h_->command_type(req::transfer_host_3d(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, 1, 10,
                                                   {.x = 0, .y = 0, .z = 0, .w = 64, .h = 32, .d = 1})),
            kOk);

  std::vector<std::byte> pixels(64 * 32 * 4);
  pixels = h_->guest().read(h_->backing_address(10), pixels.size());
  for (size_t px = 0; px < pixels.size() / 4; ++px) {
    ASSERT_EQ(std::to_integer<int>(pixels[px * 4 + 1]), 0xff) << "pixel " << px << " is not green";
    ASSERT_EQ(std::to_integer<int>(pixels[px * 4 + 2]), 0x00) << "pixel " << px << " is not green";
  }
}

TEST_F(Gpu3dCommands, FencedCommands_ManyOnGlobalTimeline_AllCompletedAfterPoll) {
  ASSERT_EQ(ctx_create(1), VIRTIO_GPU_RESP_OK_NODATA);
  for (uint64_t fence = 1; fence <= 5; ++fence) (void)h_->send(0, GpuHarness::as_bytes(req::submit_3d(1, 0, fence)));
  ASSERT_TRUE(drain_fences());
  size_t completed = 0;
  while (h_->queue(0).next_used()) ++completed;  // the held chains, released by their fences
  EXPECT_EQ(completed, 5u);
}

TEST_F(Gpu3dCommands, Resource3d_CreateAttachTransferScanout_FlushReachesDisplay) {
  create_target_with_backing(10);
  EXPECT_EQ(h_->transfer(10, {0, 0, 64, 32}, 0), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(h_->set_scanout(0, 10, {0, 0, 64, 32}), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(h_->flush(10, {0, 0, 64, 32}), VIRTIO_GPU_RESP_OK_NODATA);
}

// --dmabuf-scanout with the real library: a scanout is shown by dma-buf where the driver exports, and otherwise
// (this machine class) by readback with exact pixels; the device never leaves the display without a frame.
TEST_F(Gpu3dCommands, DmabufScanout_DmabufWhereExportableElseReadback) {
  start_device(GpuDeviceConfig{.dmabuf_scanout = true});
  auto d = std::make_unique<FakeDisplay>(1);
  FakeDisplay* display = d.get();
  display->accept_dmabufs = true;
  h_->device().install_display(std::move(d));
  ASSERT_EQ(h_->create_2d(7, 64, 32), kOk);
  ASSERT_EQ(h_->attach_backing(7, 64 * 32 * 4), kOk);
  std::vector<uint32_t> px(64 * 32, 0xff20a040u);
  h_->guest().write(h_->backing_address(7), std::as_bytes(std::span(px)));
  ASSERT_EQ(h_->transfer(7, {0, 0, 64, 32}, 0), kOk);
  const bool exportable = r_->export_image(7).has_value();

  ASSERT_EQ(h_->set_scanout(0, 7, {0, 0, 64, 32}), kOk);
  ASSERT_EQ(h_->flush(7, {0, 0, 64, 32}), kOk);

  if (exportable) {
    ASSERT_EQ(display->dmabuf_scanouts.size(), 1u);
    EXPECT_EQ(display->dmabuf_updates.size(), 1u);
    EXPECT_TRUE(display->updates.empty());
  } else {
    EXPECT_TRUE(display->dmabuf_scanouts.empty());
    ASSERT_EQ(display->updates.size(), 1u);
    EXPECT_EQ(display->updates[0].pixels, std::vector<uint32_t>(px.begin(), px.end()));
  }
}

TEST_F(Gpu3dCommands, Resource3d_HugeDimensions_OutOfMemory) {
  constexpr uint32_t kHuge = 0xffffffffu;
  EXPECT_EQ(h_->command_type(req::create_3d(11, kPipeTexture2D, kVirglFormatB8G8R8X8, 0, kHuge, kHuge, kHuge, kHuge)),
            VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
}

TEST_F(Gpu3dCommands, CtxAttach_UnknownResource_InvalidResourceId) {
  ASSERT_EQ(ctx_create(1), VIRTIO_GPU_RESP_OK_NODATA);
  EXPECT_EQ(h_->command_type(attach(1, 77)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
}

}  // namespace
}  // namespace vgpu::test

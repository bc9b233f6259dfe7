// Fence delivery (virtio spec 5.7.6.7): FenceTable's guarantees one by one, then the device with a renderer
// that signals from inside create_fence() and with one that has no poll fd (the fence timer must poll it).
#include <gtest/gtest.h>
#include <linux/virtio_gpu.h>
#include <sys/eventfd.h>

#include <memory>
#include <vector>

#include "common/event_loop.h"
#include "common/unique_fd.h"
#include "gpu/fence_table.h"
#include "support/fake_guest.h"
#include "support/fake_renderer_3d.h"
#include "support/gpu_harness.h"

namespace vgpu::test {
namespace {

class FenceTableTest : public ::testing::Test {
 protected:
  FenceTable::Response response(FenceRing ring, uint64_t fence_id, uint16_t head) {
    return {ring, fence_id, DescriptorChain(guest_.memory(), head, {}, {}), 0};
  }
  static std::vector<uint16_t> heads(const std::vector<FenceTable::Response>& rs) {
    std::vector<uint16_t> out;
    for (const auto& r : rs) out.push_back(r.chain.head());
    return out;
  }

  FakeGuestMemory guest_{{{GuestAddress{0}, 4096}}};
  FenceTable table_;
  const FenceRing ring_a_ = FenceRing::context(1, 0);
  const FenceRing ring_b_ = FenceRing::context(1, 1);
};

TEST_F(FenceTableTest, Signal_ReleasesHeldUpToItsIdInHoldOrder) {
  EXPECT_FALSE(table_.hold(response(ring_a_, 1, 10)));
  EXPECT_FALSE(table_.hold(response(ring_a_, 2, 11)));
  EXPECT_FALSE(table_.hold(response(ring_a_, 3, 12)));

  EXPECT_EQ(heads(table_.signal(ring_a_, 2)), (std::vector<uint16_t>{10, 11}));
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(heads(table_.signal(ring_a_, 3)), (std::vector<uint16_t>{12}));
  EXPECT_TRUE(table_.empty());
}

TEST_F(FenceTableTest, Signal_OtherRing_ReleasesNothing) {
  EXPECT_FALSE(table_.hold(response(ring_a_, 5, 10)));

  EXPECT_TRUE(table_.signal(ring_b_, 9).empty());
  EXPECT_TRUE(table_.signal(FenceRing::global(), 9).empty());
  EXPECT_EQ(table_.size(), 1u);
}

TEST_F(FenceTableTest, HoldAfterItsFenceSignalled_ComesBackAtOnce) {
  // The renderer signalled fence 4 before the device held its response (signal from inside create_fence).
  EXPECT_TRUE(table_.signal(ring_a_, 4).empty());

  auto back = table_.hold(response(ring_a_, 4, 20));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->chain.head(), 20);
  EXPECT_TRUE(table_.empty());
  // A later fence on the ring is not covered by that signal.
  EXPECT_FALSE(table_.hold(response(ring_a_, 5, 21)));
}

TEST_F(FenceTableTest, SignalGoingBackwards_KeepsTheHigherRecord) {
  EXPECT_TRUE(table_.signal(ring_a_, 7).empty());
  EXPECT_TRUE(table_.signal(ring_a_, 3).empty());

  EXPECT_TRUE(table_.hold(response(ring_a_, 6, 30)));
}

TEST_F(FenceTableTest, ForgetContext_ReleasesItsResponsesAndDropsItsRecords) {
  EXPECT_TRUE(table_.signal(ring_a_, 8).empty());
  EXPECT_FALSE(table_.hold(response(ring_b_, 9, 40)));
  EXPECT_FALSE(table_.hold(response(FenceRing::global(), 9, 41)));

  EXPECT_EQ(heads(table_.forget_context(1)), (std::vector<uint16_t>{40}));
  EXPECT_EQ(table_.size(), 1u);  // the global timeline's stays
  // A new context 1 counts from the start: fence 8 has not signalled on it.
  EXPECT_FALSE(table_.hold(response(ring_a_, 8, 42)));
}

TEST_F(FenceTableTest, Clear_DropsHeldAndRecords) {
  EXPECT_TRUE(table_.signal(ring_a_, 8).empty());
  EXPECT_FALSE(table_.hold(response(ring_a_, 9, 50)));

  table_.clear();

  EXPECT_TRUE(table_.empty());
  EXPECT_FALSE(table_.hold(response(ring_a_, 1, 51)));
}

// --- the device ---------------------------------------------------------------------------------------------

constexpr uint64_t kFeatures = (uint64_t{1} << VIRTIO_GPU_F_VIRGL) | (uint64_t{1} << VIRTIO_GPU_F_CONTEXT_INIT);
constexpr uint32_t kCtx = 1;

virtio_gpu_cmd_submit fenced_submit(uint64_t fence_id) {
  virtio_gpu_cmd_submit req{};
  req.hdr.type = VIRTIO_GPU_CMD_SUBMIT_3D;
  req.hdr.flags = VIRTIO_GPU_FLAG_FENCE;
  req.hdr.fence_id = fence_id;
  req.hdr.ctx_id = kCtx;
  req.size = 0;
  return req;
}

class DeviceFences : public ::testing::Test {
 protected:
  void start(EventLoop* loop = nullptr) {
    h_.emplace(GpuDeviceConfig{}, kFeatures, 16ull << 20, Renderers::with_3d(borrow(r_)), loop);
    ASSERT_EQ(h_->ctx_create(kCtx), VIRTIO_GPU_RESP_OK_NODATA);
  }

  FakeRenderer3D r_;
  std::optional<GpuHarness> h_;
};

TEST_F(DeviceFences, RendererSignalsInsideCreateFence_ResponseCompletesAtOnce) {
  r_.signal_in_create_fence = true;
  start();

  auto s = h_->submit(fenced_submit(1));
  auto out = h_->collect(s);

  ASSERT_TRUE(out) << "the fence signalled inside create_fence and its response was lost";
  EXPECT_EQ(h_->device().pending_fences(), 0u);
}

TEST_F(DeviceFences, RendererWithoutPollFd_FenceTimerPollsUntilTheFenceSignals) {
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  start(&*loop);

  auto s = h_->submit(fenced_submit(1));
  EXPECT_FALSE(h_->collect(s));  // held: nothing has polled the renderer yet
  EXPECT_TRUE(h_->device().fence_timer_armed());

  for (int i = 0; i < 100 && h_->device().pending_fences() > 0; ++i) {
    auto events = loop->wait(100);
    ASSERT_TRUE(events);
    for (const Event& e : *events) h_->device().on_event(e.source, e.events);
  }

  EXPECT_TRUE(h_->collect(s)) << "no fence timer: a renderer without a poll fd never completes fenced commands";
  EXPECT_GT(r_.polls, 0);
  EXPECT_FALSE(h_->device().fence_timer_armed());  // nothing waits: the timer stops
}

TEST_F(DeviceFences, RendererWithPollFd_NoFenceTimer) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(efd);
  r_.poll_fd_value = efd.get();
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  start(&*loop);

  auto s = h_->submit(fenced_submit(1));
  EXPECT_FALSE(h_->collect(s));
  EXPECT_FALSE(h_->device().fence_timer_armed());
  h_.reset();  // the device unregisters the eventfd before it closes
}

}  // namespace
}  // namespace vgpu::test

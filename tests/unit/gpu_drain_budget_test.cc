// The device's drain is bounded (audit F6): a guest that publishes a new command each time one completes must
// not hold the event loop. After a queue's worth of chains the device stops and asks the transport to run it
// again (Queue::resume_later), so the frontend socket, signals, the display and fence polling get their turn.
// Before the bound, the drain below ran until the test's guest gave up (2560 flushes in one call).
#include <gtest/gtest.h>

#include <memory>

#include "support/fake_display.h"
#include "support/fake_guest.h"
#include "support/gpu_harness.h"
#include "support/gpu_requests.h"

namespace vgpu {
namespace {

using test::ChainBuilder;
using test::FakeDisplay;
using test::GpuHarness;

TEST(DrainBudget, GuestThatKeepsPublishing_DrainYieldsAfterAQueueOfChains) {
  GpuHarness h;
  auto owned = std::make_unique<FakeDisplay>(1);
  FakeDisplay* display = owned.get();
  h.device().install_display(std::move(owned));
  const virtio_gpu_rect rect{0, 0, 4, 4};
  ASSERT_EQ(h.create_2d(1, 4, 4), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h.attach_backing(1, 64), VIRTIO_GPU_RESP_OK_NODATA);
  ASSERT_EQ(h.set_scanout(0, 1, rect), VIRTIO_GPU_RESP_OK_NODATA);
  int resumes = 0;
  h.control_queue().set_resume([&] { ++resumes; });
  const size_t queue_size = h.queue(GpuDevice::kControlQueue).size();
  const size_t give_up = 10 * queue_size;  // the test's guest stops here, so a device without the bound fails
  size_t published = 0;
  // Each frame that reaches the display makes the "guest" reclaim its used entries and publish another flush.
  display->on_update = [&] {
    if (published >= give_up) return;
    while (h.queue(GpuDevice::kControlQueue).next_used()) {
    }
    ChainBuilder(h.queue(GpuDevice::kControlQueue))
        .readable_value(test::req::flush(1, rect))
        .writable(sizeof(virtio_gpu_ctrl_hdr))
        .build();
    ++published;
  };
  const size_t updates_before = display->updates.size();

  (void)h.flush(1, rect);

  EXPECT_EQ(resumes, 1);
  EXPECT_LE(display->updates.size() - updates_before, queue_size + 1);  // the kicked flush + one queue's worth
  EXPECT_LT(published, give_up);
  EXPECT_FALSE(h.control_queue().broken());
}

TEST(DrainBudget, ManyChainsAtOnce_AllHandledWithoutResume) {
  GpuHarness h;
  int resumes = 0;
  h.control_queue().set_resume([&] { ++resumes; });
  virtio_gpu_resource_unref unref{};
  unref.hdr = test::req::header(VIRTIO_GPU_CMD_RESOURCE_UNREF);
  unref.resource_id = 99;  // no such resource: a quick error response
  // Two descriptors a chain: half the 256-entry table is as many as a driver can have published at once.
  const size_t chains = h.queue(GpuDevice::kControlQueue).size() / 2;
  for (size_t i = 1; i < chains; ++i) {
    ChainBuilder(h.queue(GpuDevice::kControlQueue)).readable_value(unref).writable(sizeof(virtio_gpu_ctrl_hdr)).build();
  }

  // The last one kicks: every published chain is handled in this one call.
  EXPECT_EQ(h.command_type(unref), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
  EXPECT_EQ(resumes, 0);
  EXPECT_EQ(h.queue(GpuDevice::kControlQueue).used_idx(), h.queue(GpuDevice::kControlQueue).avail_idx());
}

}  // namespace
}  // namespace vgpu

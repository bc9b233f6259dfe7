// Fenced control responses held until their fence signals (virtio spec 5.7.6.7: "the device MUST NOT complete
// a command with VIRTIO_GPU_FLAG_FENCE until the command's work is done"; per (context, ring) with
// VIRTIO_GPU_FLAG_INFO_RING_IDX, one global timeline otherwise).
//
// What this type guarantees (tests/unit/gpu_fence_table_test.cc checks each):
//   - a held response comes back only once its ring's signalled fence id reaches its own;
//   - the responses of one ring come back in the order they were held;
//   - a signal is never lost: the table remembers the last fence id signalled per ring, so a response held
//     after its fence already signalled (a renderer that signals from inside create_fence, or one whose
//     fence fires between creation and hold) comes back from hold() at once;
//   - forgetting a context drops its rings' records, so a later context with the same id starts clean.
// The table only keeps chains; the device puts what it returns on the used ring.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "renderer/renderer_3d.h"
#include "virtio/descriptor_chain.h"

namespace vgpu {

class FenceTable {
 public:
  struct Response {
    FenceRing ring;
    uint64_t fence_id = 0;
    DescriptorChain chain;
    uint32_t written = 0;  // bytes of the response already in the chain
  };

  // Holds `response` until its fence signals; returns it straight back when its ring has signalled that id.
  [[nodiscard]] std::optional<Response> hold(Response response);

  // The renderer signalled `fence_id` on `ring`: every held response of that ring up to it, in hold order.
  [[nodiscard]] std::vector<Response> signal(FenceRing ring, uint64_t fence_id);

  // Releases the held responses `which` selects, in hold order (queue stopping, a context destroyed: the
  // renderer drops its fences without signalling them).
  [[nodiscard]] std::vector<Response> release_if(const std::function<bool(const Response&)>& which);

  // A destroyed context: its held responses are released (returned) and its rings' last-signalled records go.
  [[nodiscard]] std::vector<Response> forget_context(uint32_t ctx_id);

  // Device reset: everything dropped (the queues are gone with their chains).
  void clear();

  [[nodiscard]] size_t size() const { return held_.size(); }
  [[nodiscard]] bool empty() const { return held_.empty(); }

 private:
  struct Signalled {
    FenceRing ring;
    uint64_t fence_id;
  };
  [[nodiscard]] Signalled* last_signalled(const FenceRing& ring);

  std::deque<Response> held_;         // in hold order
  std::vector<Signalled> signalled_;  // one entry per ring that ever signalled (few: contexts x rings)
};

}  // namespace vgpu

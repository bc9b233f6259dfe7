// A split virtqueue (virtio 1.x spec section 2.7), device side: pops validated descriptor chains from the
// avail ring and places completed ones on the used ring, with indirect descriptors and
// VIRTIO_RING_F_EVENT_IDX notification suppression. Single-threaded: one event loop owns each Queue.
//
//   auto q = Queue::create(mem, {.size = 256, .desc = d, .avail = a, .used = u, .event_idx = true,
//                                .indirect = true}, /*next_avail=*/0);
//   q->set_interrupt([&] { eventfd_write(call_fd, 1); });
//   while (true) {
//     auto chain = q->pop();
//     if (!chain) { log(chain.error()); continue; }   // a bad chain was rejected; the queue keeps working
//     if (!*chain) break;                             // ring empty
//     ... handle ...
//     q->add_used(std::move(**chain), written);
//   }
//   q->notify_if_needed();
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"

namespace vgpu {

struct QueueConfig {
  uint16_t size = 0;  // number of descriptors: a power of two, 1..32768 (spec 2.7)
  GuestAddress desc{0};
  GuestAddress avail{0};
  GuestAddress used{0};
  bool event_idx = false;  // VIRTIO_RING_F_EVENT_IDX negotiated
  bool indirect = false;   // VIRTIO_RING_F_INDIRECT_DESC negotiated
};

enum class QueueError {
  BadSize,          // not a power of two, 0, or > 32768
  Misaligned,       // ring addresses not aligned as spec 2.7 requires (desc 16, avail 2, used 4)
  RingNotInMemory,  // some ring byte is not backed by guest memory
  AvailIdxJump,     // the driver moved avail->idx by more than the queue size: the queue is broken
  HeadInFlight,     // the driver published a head again before the device returned it on the used ring
  Memory,           // a ring access failed (memory removed under us)
};

std::string_view to_string(QueueError e);

class Queue {
 public:
  // Validates the configuration and that every ring byte is in guest memory. `mem` must outlive the queue
  // (the queue re-checks each access, so regions may still be added or removed). The used index starts at
  // the value found in used->idx (as Linux vhost does), so a queue restarted after GET_VRING_BASE continues.
  static Result<Queue, QueueError> create(const GuestMemory& mem, const QueueConfig& config, uint16_t next_avail);

  // Move-only: two copies would hand out the same chains twice.
  Queue(Queue&&) noexcept = default;
  Queue& operator=(Queue&&) noexcept = default;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue() = default;

  // Returns the next available chain, std::nullopt when the ring is empty, or a ChainError when the head
  // chain was malformed: that chain has then already been put on the used ring with length 0, so the driver
  // gets its descriptors back, and the next pop() continues with the following entry. When the queue itself
  // is broken (see broken()), pop() returns std::nullopt.
  Result<std::optional<DescriptorChain>, ChainError> pop();

  // True when the driver has published entries that pop() has not returned yet (reads avail->idx).
  [[nodiscard]] bool has_available();

  // True once the queue is broken (the driver corrupted the avail index, or memory vanished); pop() then
  // returns nothing until the queue is re-created by the transport.
  [[nodiscard]] bool broken() const { return broken_.has_value(); }
  [[nodiscard]] std::optional<QueueError> broken_reason() const { return broken_; }

  // Places a completed chain on the used ring; `written` is the number of bytes the device wrote (clamped to
  // the chain's writable length). The chain's head is no longer in flight.
  void add_used(DescriptorChain chain, uint32_t written);

  // Chains popped and not yet placed on the used ring. Never more than the queue size: each is a distinct
  // head, and a head published again while in flight breaks the queue.
  [[nodiscard]] uint32_t in_flight() const { return in_flight_count_; }

  // Signals the interrupt if the driver wants to be notified about the used entries added since the last
  // signal (VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX; spec 2.7.7.2).
  void notify_if_needed();
  void set_interrupt(std::function<void()> interrupt) { interrupt_ = std::move(interrupt); }

  // A device that stops draining with buffers still available (to let the event loop serve other sources)
  // asks to be run again: the transport re-signals the queue's kick (set_resume), so the drain continues on
  // the loop's next turn, after the sources that were already ready.
  void set_resume(std::function<void()> resume) { resume_ = std::move(resume); }
  void resume_later() const {
    if (resume_) resume_();
  }

  // Notification suppression for the kick side (spec 2.7.10): disable while draining, then enable and
  // re-check. enable_notifications() returns true when buffers are waiting (drain again). Without EVENT_IDX
  // this sets or clears VRING_USED_F_NO_NOTIFY; with EVENT_IDX, enabling writes avail_event, and while enabled
  // each pop() moves avail_event along (as QEMU does), so a caller that never disables still gets kicks.
  void disable_notifications();
  bool enable_notifications();

  // The index of the next avail entry to process (what GET_VRING_BASE reports).
  [[nodiscard]] uint16_t next_avail() const { return next_avail_; }
  [[nodiscard]] uint16_t next_used() const { return next_used_; }
  [[nodiscard]] const QueueConfig& config() const { return config_; }

 private:
  Queue(const GuestMemory& mem, const QueueConfig& config, uint16_t next_avail);

  // Loads avail->idx (acquire) into shadow_avail_idx_; marks the queue broken on a jump or memory failure.
  bool refresh_avail_idx();
  // Writes one used element and publishes it (release). Marks the queue broken on memory failure.
  void put_used(uint32_t id, uint32_t len);
  void set_avail_event(uint16_t value);
  void mark_broken(QueueError reason);

  // Guest addresses of ring fields (spec 2.7.6 and 2.7.8); the ranges were checked by create().
  [[nodiscard]] GuestAddress avail_field(uint64_t offset) const;
  [[nodiscard]] GuestAddress used_field(uint64_t offset) const;

  const GuestMemory* mem_;
  QueueConfig config_;
  uint16_t next_avail_ = 0;
  uint16_t shadow_avail_idx_ = 0;  // avail->idx as last read; entries before it are known published
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;  // next_used_ at the last notify_if_needed (EVENT_IDX bookkeeping)
  bool signalled_used_valid_ = false;
  bool used_since_notify_ = false;     // used entries were added since the last notify_if_needed
  bool notifications_enabled_ = true;  // kick side: see disable_notifications()
  std::optional<QueueError> broken_;
  std::function<void()> interrupt_;
  std::function<void()> resume_;
  // in_flight_[head]: that head's chain was popped and is not on the used ring yet (see pop()).
  std::vector<bool> in_flight_;
  uint32_t in_flight_count_ = 0;
};

}  // namespace vgpu

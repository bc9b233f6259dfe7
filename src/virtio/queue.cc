#include "virtio/queue.h"

// The legacy part of this header (vring_init) is C, not C++; we only need the ring structs and flags.
#define VIRTIO_RING_NO_LEGACY
#include <linux/virtio_ring.h>

#include <algorithm>
#include <atomic>
#include <bit>

#include "common/log.h"

namespace vgpu {

std::string_view to_string(QueueError e) {
  switch (e) {
    case QueueError::BadSize: return "queue size not a power of two in 1..32768";
    case QueueError::Misaligned: return "ring address misaligned";
    case QueueError::RingNotInMemory: return "ring not in guest memory";
    case QueueError::AvailIdxJump: return "avail index moved by more than the queue size";
    case QueueError::HeadInFlight: return "a head published again while the device still holds its chain";
    case QueueError::Memory: return "ring access failed";
  }
  return "unknown queue error";
}

namespace {

// Spec 2.7: "Queue Size [...] The maximum Queue Size value is 32768", and a split queue's size is a power of 2.
constexpr uint32_t kMaxQueueSize = 32768;
// Spec 2.7.2 alignment table: descriptor table 16, available ring 2, used ring 4.
constexpr uint64_t kDescAlign = VRING_DESC_ALIGN_SIZE;
constexpr uint64_t kAvailAlign = VRING_AVAIL_ALIGN_SIZE;
constexpr uint64_t kUsedAlign = VRING_USED_ALIGN_SIZE;

// Field offsets (spec 2.7.6 and 2.7.8). Both rings start with le16 flags, le16 idx, then the ring array; with
// EVENT_IDX a trailing le16 follows the array (used_event in avail, avail_event in used). Computed here rather
// than read through the <linux/virtio_ring.h> structs, whose ring arrays are flexible.
constexpr uint64_t kFlagsOffset = 0;
constexpr uint64_t kIdxOffset = 2;
constexpr uint64_t kRingOffset = 4;
constexpr uint64_t kAvailEntrySize = sizeof(uint16_t);
constexpr uint64_t kUsedEntrySize = sizeof(vring_used_elem);
static_assert(kUsedEntrySize == 8 && GuestPod<vring_used_elem>);

uint64_t desc_table_bytes(uint16_t size) {
  return uint64_t{size} * sizeof(vring_desc);
}
uint64_t avail_ring_bytes(uint16_t size, bool event_idx) {
  return kRingOffset + uint64_t{size} * kAvailEntrySize + (event_idx ? sizeof(uint16_t) : 0);
}
uint64_t used_ring_bytes(uint16_t size, bool event_idx) {
  return kRingOffset + uint64_t{size} * kUsedEntrySize + (event_idx ? sizeof(uint16_t) : 0);
}

}  // namespace

Result<Queue, QueueError> Queue::create(const GuestMemory& mem, const QueueConfig& config, uint16_t next_avail) {
  if (config.size == 0 || config.size > kMaxQueueSize || !std::has_single_bit(config.size)) {
    return fail(QueueError::BadSize);
  }
  if (raw(config.desc) % kDescAlign != 0 || raw(config.avail) % kAvailAlign != 0 ||
      raw(config.used) % kUsedAlign != 0) {
    return fail(QueueError::Misaligned);
  }
  // is_valid_range also rejects ranges that wrap past 2^64, so every field offset below stays in range.
  if (!mem.is_valid_range(config.desc, desc_table_bytes(config.size)) ||
      !mem.is_valid_range(config.avail, avail_ring_bytes(config.size, config.event_idx)) ||
      !mem.is_valid_range(config.used, used_ring_bytes(config.size, config.event_idx))) {
    return fail(QueueError::RingNotInMemory);
  }
  Queue q(mem, config, next_avail);
  // Relaxed: the device is the only writer of used->idx; there is nothing of the driver's to synchronise with.
  auto used_idx = mem.load_u16(q.used_field(kIdxOffset), std::memory_order_relaxed);
  if (!used_idx) return fail(QueueError::Memory);
  q.next_used_ = *used_idx;
  q.signalled_used_ = *used_idx;
  return q;
}

Queue::Queue(const GuestMemory& mem, const QueueConfig& config, uint16_t next_avail)
    : mem_(&mem), config_(config), next_avail_(next_avail), shadow_avail_idx_(next_avail), in_flight_(config.size) {}

GuestAddress Queue::avail_field(uint64_t offset) const {
  return GuestAddress{raw(config_.avail) + offset};
}
GuestAddress Queue::used_field(uint64_t offset) const {
  return GuestAddress{raw(config_.used) + offset};
}

void Queue::mark_broken(QueueError reason) {
  if (!broken_) VGPU_LOG_WARN("virtqueue broken: {}", to_string(reason));
  broken_ = reason;
}

bool Queue::refresh_avail_idx() {
  // Acquire: pairs with the driver's write barrier before it publishes avail->idx (spec 2.7.13.3.1), so the
  // ring entries and descriptors it wrote before bumping idx are visible to our later plain reads.
  auto idx = mem_->load_u16(avail_field(kIdxOffset), std::memory_order_acquire);
  if (!idx) {
    mark_broken(QueueError::Memory);
    return false;
  }
  // The driver can only have published up to `size` entries we have not consumed; more means it corrupted
  // its index (Linux vhost treats this the same way). Unsigned 16-bit arithmetic handles the wrap.
  if (static_cast<uint16_t>(*idx - next_avail_) > config_.size) {
    mark_broken(QueueError::AvailIdxJump);
    return false;
  }
  shadow_avail_idx_ = *idx;
  return true;
}

bool Queue::has_available() {
  if (broken_) return false;
  return next_avail_ != shadow_avail_idx_ || (refresh_avail_idx() && next_avail_ != shadow_avail_idx_);
}

Result<std::optional<DescriptorChain>, ChainError> Queue::pop() {
  if (broken_) return std::nullopt;
  if (next_avail_ == shadow_avail_idx_ && (!refresh_avail_idx() || next_avail_ == shadow_avail_idx_)) {
    return std::nullopt;
  }
  const uint64_t slot = next_avail_ & (config_.size - 1u);
  // Relaxed: ordered after the acquire load of avail->idx that covered this entry (refresh_avail_idx, now or
  // at an earlier pop); atomic only so that the 16-bit read is single-copy.
  auto head = mem_->load_u16(avail_field(kRingOffset + slot * kAvailEntrySize), std::memory_order_relaxed);
  if (!head) {
    mark_broken(QueueError::Memory);
    return std::nullopt;
  }
  // Spec 2.7.13 (Supplying Buffers to The Device): a head in the available ring hands its chain to the device
  // until the device returns it in the used ring. Publishing it again meanwhile is a driver error that would
  // let a guest make us hold (and copy) the same chain without bound; like QEMU's virtqueue_pop and
  // libvhost-user, the queue is then broken (the transport reports DEVICE_NEEDS_RESET where it can).
  if (*head < config_.size && in_flight_[*head]) {
    mark_broken(QueueError::HeadInFlight);
    return std::nullopt;
  }
  ++next_avail_;
  if (config_.event_idx && notifications_enabled_) set_avail_event(next_avail_);

  auto chain = read_chain(*mem_, DescriptorTable{config_.desc, config_.size, config_.indirect}, *head);
  if (!chain) {
    VGPU_LOG_DEBUG("rejected descriptor chain at head {}: {}", *head, to_string(chain.error()));
    // Give the descriptors back unused, so the driver can reclaim them and the queue keeps going.
    put_used(*head, 0);
    return fail(chain.error());
  }
  in_flight_[*head] = true;
  ++in_flight_count_;
  return std::optional<DescriptorChain>(std::move(*chain));
}

void Queue::add_used(DescriptorChain chain, uint32_t written) {
  // Never claim more bytes than the driver offered.
  const auto len = static_cast<uint32_t>(std::min<uint64_t>(written, chain.writable_len()));
  // A chain popped from an earlier Queue of this ring (before the transport re-created it) was never
  // counted here.
  if (chain.head() < config_.size && in_flight_[chain.head()]) {
    in_flight_[chain.head()] = false;
    --in_flight_count_;
  }
  put_used(chain.head(), len);
}

void Queue::put_used(uint32_t id, uint32_t len) {
  if (broken_) return;
  const uint64_t slot = next_used_ & (config_.size - 1u);
  // Plain copy of the element: the release store of used->idx below publishes it.
  const vring_used_elem elem{.id = id, .len = len};
  if (!mem_->write(used_field(kRingOffset + slot * kUsedEntrySize), elem)) {
    mark_broken(QueueError::Memory);
    return;
  }
  ++next_used_;
  // Release: spec 2.7.8.2: "The device MUST set len prior to updating the used idx." The element written above
  // must be visible before the driver, reading used->idx, sees the new value.
  if (!mem_->store_u16(used_field(kIdxOffset), next_used_, std::memory_order_release)) {
    mark_broken(QueueError::Memory);
    return;
  }
  used_since_notify_ = true;
}

void Queue::notify_if_needed() {
  if (broken_ || !used_since_notify_) return;
  used_since_notify_ = false;
  // Full fence: our used->idx store must be visible before we read the driver's suppression field, pairing
  // with the driver's barrier between its field write and its used->idx read; otherwise each side can miss
  // the other's update and the guest waits forever for an interrupt.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool needed = true;
  if (config_.event_idx) {
    // Relaxed: ordered by the fence above. Spec 2.7.7.2: with EVENT_IDX, "If the idx field in the used ring
    // (which determined where that descriptor index was placed) was equal to used_event, the device MUST send
    // a notification. Otherwise the device SHOULD NOT send a notification."
    auto used_event =
        mem_->load_u16(avail_field(kRingOffset + uint64_t{config_.size} * kAvailEntrySize), std::memory_order_relaxed);
    if (!used_event) {
      mark_broken(QueueError::Memory);
      return;
    }
    const uint16_t old = signalled_used_;
    needed = !signalled_used_valid_ || vring_need_event(*used_event, next_used_, old) != 0;
    signalled_used_ = next_used_;
    signalled_used_valid_ = true;
  } else {
    // Relaxed: ordered by the fence above. Spec 2.7.7.2: without EVENT_IDX, "If flags is 1, the device SHOULD
    // NOT send a notification. If flags is 0, the device MUST send a notification."
    auto flags = mem_->load_u16(avail_field(kFlagsOffset), std::memory_order_relaxed);
    if (!flags) {
      mark_broken(QueueError::Memory);
      return;
    }
    needed = (*flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }
  if (needed && interrupt_) interrupt_();
}

void Queue::set_avail_event(uint16_t value) {
  // Relaxed: a hint to the driver; enable_notifications() fences before re-checking avail->idx.
  if (!mem_->store_u16(used_field(kRingOffset + uint64_t{config_.size} * kUsedEntrySize), value,
                       std::memory_order_relaxed)) {
    mark_broken(QueueError::Memory);
  }
}

void Queue::disable_notifications() {
  notifications_enabled_ = false;
  if (broken_ || config_.event_idx) return;  // with EVENT_IDX: avail_event simply stops moving
  // Relaxed: only a hint; a late-seen flag costs at most one extra kick. Spec 2.7.10: "The device MAY set
  // flags to 1 to advise the driver that notifications are not needed."
  if (!mem_->store_u16(used_field(kFlagsOffset), VRING_USED_F_NO_NOTIFY, std::memory_order_relaxed)) {
    mark_broken(QueueError::Memory);
  }
}

bool Queue::enable_notifications() {
  notifications_enabled_ = true;
  if (broken_) return false;
  if (config_.event_idx) {
    // Ask for a kick when the driver publishes the entry after the last one we have seen.
    set_avail_event(shadow_avail_idx_);
  } else if (!mem_->store_u16(used_field(kFlagsOffset), 0, std::memory_order_relaxed)) {
    // Relaxed: ordered against the re-check below by the fence. Spec 2.7.10: with EVENT_IDX "The device MUST
    // set flags to 0", so flags are only ever touched without it.
    mark_broken(QueueError::Memory);
  }
  if (broken_) return false;
  // Full fence: the store above must be visible before we re-read avail->idx, pairing with the driver's
  // barrier between publishing avail->idx and reading our suppression field; otherwise a buffer published in
  // between could go unnoticed by both sides.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!refresh_avail_idx()) return false;
  return shadow_avail_idx_ != next_avail_;
}

}  // namespace vgpu

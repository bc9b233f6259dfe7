// The rings of a session: when a ring may run (kick fd, addresses, enable), starting and stopping its Queue,
// restarting rings after the memory table changes, kicks and calls. The memory-change rules of session.h
// live here.
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "vhost_user/session.h"

namespace vgpu::vhost_user {

namespace {

constexpr uint64_t feature_bit(unsigned n) {
  return uint64_t{1} << n;
}

// Ring feature bits (virtio 1.x section 6; <linux/virtio_ring.h> has them too, but is not valid C++).
constexpr unsigned kVirtioRingFIndirectDesc = 28;
constexpr unsigned kVirtioRingFEventIdx = 29;

bool same_rings(const QueueConfig& a, const QueueConfig& b) {
  return a.size == b.size && a.desc == b.desc && a.avail == b.avail && a.used == b.used;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Rings

bool Session::protocol_features_acked() const {
  return (acked_features_ & kFeatureProtocolFeatures) != 0;
}

bool Session::wants_to_run(size_t index) const {
  const Vring& vr = vrings_[index];
  // vhost-user.rst: without VHOST_USER_F_PROTOCOL_FEATURES "the ring starts directly in the enabled state".
  return vr.kick.valid() && (vr.enabled || !protocol_features_acked());
}

Result<QueueConfig, std::string> Session::queue_config(size_t index) const {
  const Vring& vr = vrings_[index];
  if (vr.num == 0) return fail(std::string("no SET_VRING_NUM"));
  if (!vr.addr) return fail(std::string("no SET_VRING_ADDR"));
  auto desc = mem_.to_guest(FrontendVirtAddr{vr.addr->desc_user_addr});
  auto avail = mem_.to_guest(FrontendVirtAddr{vr.addr->avail_user_addr});
  auto used = mem_.to_guest(FrontendVirtAddr{vr.addr->used_user_addr});
  if (!desc || !avail || !used) {
    return fail(fmt::format("ring addresses desc 0x{:x} avail 0x{:x} used 0x{:x} are not all in guest memory",
                            vr.addr->desc_user_addr, vr.addr->avail_user_addr, vr.addr->used_user_addr));
  }
  QueueConfig config;
  config.size = vr.num;
  config.desc = *desc;
  config.avail = *avail;
  config.used = *used;
  config.event_idx = (acked_features_ & feature_bit(kVirtioRingFEventIdx)) != 0;
  config.indirect = (acked_features_ & feature_bit(kVirtioRingFIndirectDesc)) != 0;
  return config;
}

Result<void, std::string> Session::start_ring(size_t index) {
  Vring& vr = vrings_[index];
  auto config = queue_config(index);
  if (!config) return fail(std::move(config.error()));
  auto queue = Queue::create(mem_, *config, vr.base);
  if (!queue) return fail(fmt::format("queue: {}", to_string(queue.error())));
  if (auto r = loop_.add(vr.kick.get(), {Token::QueueKick, static_cast<uint32_t>(index)}, EPOLLIN); !r) {
    return fail(fmt::format("kick fd cannot be polled: {}", std::strerror(r.error())));
  }
  vr.queue.emplace(std::move(*queue));
  vr.queue->set_interrupt([this, index] { signal_call(index); });
  vr.queue->set_resume([this, index] { resume_ring(index); });
  VGPU_LOG_DEBUG("vhost-user: ring {} started (size {}, base {})", index, vr.num, vr.base);
  backend_.on_queue_started(index, *vr.queue);
  // A (re)started ring resumes with what is already available, without waiting for the driver's next kick
  // (vhost-user.rst, "Starting and stopping rings"). The kick goes through the eventfd, so the first drain
  // runs from the event loop, after the frontend's remaining setup messages (QEMU sends the call fd after
  // the kick fd).
  resume_ring(index);
  return {};
}

void Session::resume_ring(size_t index) {
  // The kick eventfd is ours to read; adding 1 makes it readable again, so the loop calls on_kick for this
  // ring once it has served the sources that were already ready (epoll reports ready fds round-robin).
  const uint64_t one = 1;
  (void)!::write(vrings_[index].kick.get(), &one, sizeof(one));
}

Result<void, Session::Failure> Session::start_if_ready(size_t index) {
  if (vrings_[index].queue || !wants_to_run(index)) return {};
  if (auto r = start_ring(index); !r)
    return fatal(SessionError::RingStart, fmt::format("ring {}: {}", index, r.error()));
  return {};
}

void Session::stop_ring(size_t index) {
  Vring& vr = vrings_[index];
  if (!vr.queue) return;
  vr.base = vr.queue->next_avail();
  backend_.on_queue_stopped(index);
  loop_.remove(vr.kick.get());  // before the kick fd can be closed
  vr.queue.reset();
  VGPU_LOG_DEBUG("vhost-user: ring {} stopped at {}", index, vr.base);
}

void Session::refresh_rings_after_memory_change() {
  backend_.on_memory_changed();
  for (size_t i = 0; i < vrings_.size(); ++i) {
    Vring& vr = vrings_[i];
    if (vr.queue) {
      auto config = queue_config(i);
      if (config && same_rings(*config, vr.queue->config()) && !vr.queue->broken()) continue;
      stop_ring(i);
    }
    if (!wants_to_run(i)) continue;
    if (auto r = start_ring(i); !r) {
      VGPU_LOG_DEBUG("vhost-user: ring {} waits for guest memory: {}", i, r.error());
    }
  }
}

void Session::signal_call(size_t index) {
  const Vring& vr = vrings_[index];
  if (!vr.call) return;  // no call fd (or "no fd"): the frontend polls
  const uint64_t one = 1;
  (void)!::write(vr.call.get(), &one, sizeof(one));
}

void Session::on_kick(uint32_t index) {
  if (error_ || closed_ || index >= vrings_.size() || !vrings_[index].queue) return;
  Vring& vr = vrings_[index];
  // Clear the eventfd without ever blocking (the fd's blocking mode is the frontend's choice).
  pollfd p{vr.kick.get(), POLLIN, 0};
  if (::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0) {
    uint64_t count = 0;
    (void)!::read(vr.kick.get(), &count, sizeof(count));
  }
  backend_.on_queue_kick(index, *vr.queue, mem_);
}

}  // namespace vgpu::vhost_user

#include "gpu/device.h"

#include <linux/virtio_config.h>
// The legacy part of <linux/virtio_ring.h> (vring_init) is C, not C++; only the feature bit numbers are used.
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "common/checked.h"
#include "common/log.h"
#include "gpu/command_names.h"

namespace vgpu {

namespace {

constexpr uint64_t feature_bit(unsigned bit) {
  return uint64_t{1} << bit;
}

// Large enough for every request struct in the command table (checked there with a static_assert).
constexpr size_t kMaxRequestSize = 128;

}  // namespace

GpuDevice::GpuDevice(GpuDeviceConfig config, EventLoop* loop, const Renderers& renderers, DisplayFactory displays)
    : cfg_(config),
      loop_(loop),
      renderer_(renderers.r2d()),
      r3d_(renderers.r3d()),
      displays_(std::move(displays)),
      resources_(config.max_resource_memory) {
  config_.num_scanouts = cfg_.num_scanouts;
  if (r3d_ != nullptr) {
    // num_capsets is what really initialised (spec 5.7.4), never a fixed count.
    config_.num_capsets = static_cast<uint32_t>(r3d_->capsets().size());
    // Callbacks run on the loop's thread, from r3d_->poll() and possibly from inside create_fence(): no lock;
    // fences_ keeps a signal that comes before its response is held.
    r3d_->set_fence_callback([this](FenceRing ring, uint64_t id) { on_fence(ring, id); });
    register_renderer_poll();
  }
  if (cfg_.hostmem_size != 0) {
    if (r3d_ != nullptr && r3d_->maps_blobs()) {
      const auto page = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
      host_visible_.emplace(cfg_.hostmem_size, page);
      const bool offer = cfg_.blob_alignment == BlobAlignmentMode::On;
      blob_alignment_ = offer ? page : 0;
      VGPU_LOG_INFO("host-visible memory: {} MiB (shmid {}), mappings aligned to {} bytes, BLOB_ALIGNMENT {}",
                    cfg_.hostmem_size >> 20, int{VIRTIO_GPU_SHM_ID_HOST_VISIBLE}, page,
                    offer ? "offered" : "not offered");
    } else {
      VGPU_LOG_WARN("host-visible memory not offered: {}",
                    r3d_ == nullptr ? "it needs --virgl"
                                    : "the renderer cannot map blobs into another process (Venus did not start)");
    }
  }
  install_display(displays_.idle());
}

GpuDevice::~GpuDevice() {
  if (loop_ == nullptr) return;
  if (registered_display_fd_ >= 0) loop_->remove(registered_display_fd_);
  if (registered_poll_fd_ >= 0) loop_->remove(registered_poll_fd_);
  for (const auto& [id, ctx] : contexts_) {
    if (ctx.poll_fd >= 0) loop_->remove(ctx.poll_fd);
  }
  if (fence_timer_) loop_->remove(fence_timer_.get());
}

void GpuDevice::register_renderer_poll() {
  if (loop_ == nullptr || r3d_ == nullptr) return;
  if (registered_poll_fd_ >= 0) loop_->remove(registered_poll_fd_);
  registered_poll_fd_ = r3d_->poll_fd();
  if (registered_poll_fd_ < 0) return;
  if (auto r = loop_->add(registered_poll_fd_, {Token::RendererPoll, 0}, EPOLLIN); !r) {
    VGPU_LOG_ERROR("cannot poll the renderer's fence fd (errno {})", r.error());
    registered_poll_fd_ = -1;
  }
}

uint64_t GpuDevice::features() const {
  // EDID always works: from the display when it negotiated EDID, else generated from the layout. VIRGL and
  // CONTEXT_INIT (capset-typed contexts, per-ring fences) only with a 3D renderer. RESOURCE_BLOB always: guest
  // blobs and their scanouts work on soft2d too, and host blobs need a 3D context, which a 2D device never
  // has. RESOURCE_UUID always: the device names any resource with a stable UUID (commands_uuid.cc).
  uint64_t f = feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_RING_F_INDIRECT_DESC) |
               feature_bit(VIRTIO_RING_F_EVENT_IDX) | feature_bit(VIRTIO_GPU_F_EDID) |
               feature_bit(VIRTIO_GPU_F_RESOURCE_BLOB) | feature_bit(VIRTIO_GPU_F_RESOURCE_UUID);
  if (r3d_ != nullptr) f |= feature_bit(VIRTIO_GPU_F_VIRGL) | feature_bit(VIRTIO_GPU_F_CONTEXT_INIT);
  // Blob alignment matters where blobs are mapped: only with a host-visible region (unless BlobAlignmentMode::Off).
  // Its config field sits past the 16 bytes older frontends size the config space for (QEMU's generic device
  // needs config_size >= 20).
  if (blob_alignment_ != 0) f |= feature_bit(kFeatureBlobAlignment);
  return f;
}

size_t GpuDevice::config_size() const {
  return host_visible_ ? kConfigBlobAlignmentOffset + sizeof(blob_alignment_) : kConfigBaseSize;
}

std::vector<uint64_t> GpuDevice::shmem_regions() const {
  if (!host_visible_) return {};
  std::vector<uint64_t> regions(VIRTIO_GPU_SHM_ID_HOST_VISIBLE + 1, 0);
  regions[VIRTIO_GPU_SHM_ID_HOST_VISIBLE] = host_visible_->size();
  return regions;
}

bool GpuDevice::read_config(uint32_t offset, std::span<std::byte> out) const {
  // Frontends read more than our 16 bytes: QEMU 11.1's vhost-user-gpu-pci asks for 20 (its config struct grew)
  // and a generic device reads its config_size; refusing made the guest's probe fail. Bytes past the struct
  // read as zero (the spec's reserved fields), up to the device's config window.
  if (!range_fits<size_t>(offset, out.size(), kConfigWindow)) return false;
  std::fill(out.begin(), out.end(), std::byte{0});
  // virtio_gpu_config (four u32) and, virtio 1.4, blob_alignment (0 where not offered: a reserved field).
  std::array<std::byte, kConfigBlobAlignmentOffset + sizeof(uint32_t)> space{};
  std::memcpy(space.data(), &config_, kConfigBaseSize);  // never a newer header's blob_alignment: ours follows
  std::memcpy(space.data() + kConfigBlobAlignmentOffset, &blob_alignment_, sizeof(blob_alignment_));
  if (offset < space.size()) {
    const size_t n = std::min(out.size(), space.size() - offset);
    std::memcpy(out.data(), space.data() + offset, n);
  }
  return true;
}

bool GpuDevice::write_config(uint32_t offset, std::span<const std::byte> in) {
  // Only events_clear is writable (virtio spec 5.7.4: "events_clear: clears pending events in the device.
  // Writing a '1' into a bit will clear the corresponding bit in events_read").
  if (offset != offsetof(virtio_gpu_config, events_clear) || in.size() != sizeof(uint32_t)) return false;
  uint32_t clear = 0;
  std::memcpy(&clear, in.data(), sizeof(clear));
  config_.events_read &= ~clear;
  return true;
}

void GpuDevice::on_queue_started(size_t index, Queue& queue) {
  if (index < queues_.size()) queues_[index] = &queue;
}

void GpuDevice::on_queue_stopped(size_t index) {
  if (index >= queues_.size()) return;
  // A stalled chain belongs to the stopping queue: return it unanswered (length 0) so the driver gets its
  // descriptors back; the restarted queue resumes after it.
  if (index == kControlQueue && queues_[index] != nullptr) {
    if (stalled_) {
      queues_[index]->add_used(std::move(*stalled_), 0);
      stalled_.reset();
    }
    // Held fenced responses were answered already: hand them back now rather than lose them.
    complete_fenced(fences_.release_if([](const FenceTable::Response&) { return true; }));
    // Commands waiting for the frontend are answered now (an error); their mappings are unmapped when mapped.
    answer_held_now();
  }
  queues_[index] = nullptr;
}

void GpuDevice::on_queue_kick(size_t index, Queue& queue, const GuestMemory& mem) {
  mem_ = &mem;
  if (index < queues_.size()) queues_[index] = &queue;
  drain(index);
}

void GpuDevice::drain(size_t index) {
  Queue* queue = index < queues_.size() ? queues_[index] : nullptr;
  if (queue == nullptr) return;
  if (index == kControlQueue && stalled_) {
    uint32_t written = 0;
    const Outcome outcome = process(index, *stalled_, written);
    if (outcome == Outcome::Stall) return;  // still waiting for the display
    if (outcome == Outcome::Held) {
      held_.push_back({std::exchange(hold_token_, 0), held_hdr_, std::move(*stalled_)});
    } else if (outcome == Outcome::Fenced) {
      hold_fenced(std::move(*stalled_), written);
    } else {
      queue->add_used(std::move(*stalled_), written);
    }
    stalled_.reset();
  }
  // Drain with notifications disabled, then re-enable and drain again if buffers arrived in between
  // (virtio spec 2.7.10: the driver may add buffers after our last check and before re-enabling).
  bool stalled = false;
  // Audit F6: a guest that keeps publishing must not keep the event loop here. One call handles at most a
  // queue's worth of chains (malformed ones included), then asks the transport to run it again after the
  // loop has served the frontend socket, signals, the display and fence polling.
  size_t budget = queue->config().size;
  bool yielded = false;
  do {
    queue->disable_notifications();
    while (!stalled) {
      if (budget == 0) {
        yielded = queue->has_available();
        break;
      }
      --budget;
      auto chain = queue->pop();
      if (!chain) {
        VGPU_LOG_WARN_LIMITED("queue {}: rejected a malformed descriptor chain: {}", index, to_string(chain.error()));
        continue;
      }
      if (!*chain) break;
      uint32_t written = 0;
      switch (process(index, **chain, written)) {
        case Outcome::Stall:
          stalled_.emplace(std::move(**chain));
          stalled = true;
          break;
        case Outcome::Fenced: hold_fenced(std::move(**chain), written); break;
        case Outcome::Held: held_.push_back({std::exchange(hold_token_, 0), held_hdr_, std::move(**chain)}); break;
        case Outcome::Done: queue->add_used(std::move(**chain), written); break;
      }
    }
  } while (!stalled && !yielded && queue->enable_notifications() && !queue->broken());
  // Notifications stay disabled while yielded: the resumed drain runs anyway and re-enables them.
  if (yielded && !queue->broken()) queue->resume_later();
  if (queue->broken()) VGPU_LOG_WARN_LIMITED("queue {} is broken: {}", index, to_string(*queue->broken_reason()));
  queue->notify_if_needed();
  layout_fresh_ = false;
  update_display_registration();
  update_fence_timer();
}

bool GpuDevice::display_ready_for(uint32_t type, std::span<const std::byte> request) {
  if (type == VIRTIO_GPU_CMD_GET_DISPLAY_INFO) {
    // Like QEMU's backend, ask the display for its current layout on every GET_DISPLAY_INFO (a window may
    // have been resized), once per command, and answer when the reply is in.
    // One refresh serves every GET_DISPLAY_INFO of the same drain pass: the layout cannot have changed in
    // between, since the display's messages are only read when the loop next runs.
    if (layout_fresh_) return display_->display_info().has_value();
    if (!display_refresh_requested_) {
      display_->refresh();
      display_refresh_requested_ = true;
    }
    if (display_->pending() || !display_->display_info()) return false;
    display_refresh_requested_ = false;
    layout_fresh_ = true;
    return true;
  }
  if (type == VIRTIO_GPU_CMD_GET_EDID && !display_->edid_supported()) {
    // Until the display has said whether it supplies EDIDs at all (QEMU's protocol features: a GET_EDID the
    // guest sends right after QEMU handed over its socket can come first), wait; once it has settled without
    // them, on_get_edid generates one.
    return !display_->pending();
  }
  if (type == VIRTIO_GPU_CMD_GET_EDID) {
    virtio_gpu_cmd_get_edid req{};
    std::memcpy(&req, request.data(), std::min(request.size(), sizeof(req)));
    // Wait while the display is still fetching EDIDs; once it is done, a missing one (QEMU has fewer
    // outputs, or sent an invalid blob) is generated by on_get_edid.
    return req.scanout >= cfg_.num_scanouts || display_->edid(req.scanout).has_value() || !display_->pending();
  }
  return true;
}

GpuDevice::Outcome GpuDevice::process(size_t index, DescriptorChain& chain, uint32_t& written) {
  Reader reader = chain.reader();
  const bool cursor_queue = index == kCursorQueue;
  const char* queue_name = cursor_queue ? "cursorq" : "controlq";

  virtio_gpu_ctrl_hdr hdr{};
  // The outcome as two plain values (a CommandResult here trips g++ 12's -Wmaybe-uninitialized).
  GpuError error = GpuError::Unspec;
  std::optional<ResponseBytes> answer;
  auto peeked = reader.peek<virtio_gpu_ctrl_hdr>();
  if (!peeked) {
    VGPU_LOG_WARN_LIMITED("{}: request of {} bytes is shorter than a virtio_gpu_ctrl_hdr", queue_name,
                          reader.remaining());
    error = GpuError::InvalidParameter;
  } else {
    hdr = *peeked;
    const CommandInfo* info = find_command(hdr.type);
    const QueueKind kind = cursor_queue ? QueueKind::Cursor : QueueKind::Control;
    if (info == nullptr) {
      if (hdr.type >= logged_unknown_.size() || !logged_unknown_.test(hdr.type)) {
        if (hdr.type < logged_unknown_.size()) logged_unknown_.set(hdr.type);
        VGPU_LOG_WARN("{}: unknown command type 0x{:04x}: answering ERR_UNSPEC", queue_name, hdr.type);
      }
    } else if (info->queue != kind) {
      VGPU_LOG_WARN_LIMITED("{}: command {} belongs on the other queue", queue_name, info->name);
    } else if (!has_feature(info->required_feature)) {
      VGPU_LOG_WARN_LIMITED("{}: command {} needs a feature the driver did not negotiate", queue_name, info->name);
    } else if (reader.remaining() < info->request_size) {
      VGPU_LOG_WARN_LIMITED("{}: command {} is {} bytes, needs {}", queue_name, info->name, reader.remaining(),
                            info->request_size);
      error = GpuError::InvalidParameter;
    } else {
      // Copy the request out of the guest once; everything after this reads the host copy.
      alignas(8) std::array<std::byte, kMaxRequestSize> request{};
      const auto request_bytes = std::span(request).first(info->request_size);
      // remaining() >= request_size was checked, but a stalled chain retried after the frontend removed a
      // region reads zeros: the all-zero request then fails validation like any other bad one.
      (void)reader.read_bytes(request_bytes);
      // A flush still being sent from a resource's pixels: no control command may change them until the
      // socket took it all (cursor commands only read their own resource and queue behind it).
      if (!cursor_queue && display_->busy()) return Outcome::Stall;
      if (!display_ready_for(hdr.type, request_bytes)) return Outcome::Stall;
      VGPU_LOG_DEBUG("{}: command {}", queue_name, info->name);
      VGPU_LOG_TRACE("{}: {} ({} bytes)", queue_name, command_name(hdr.type), info->request_size);
      auto result = info->thunk(*this, request_bytes, reader);
      if (result) {
        answer = std::move(*result);
      } else {
        error = result.error();
        VGPU_LOG_DEBUG("{}: {} failed: {}", queue_name, info->name, to_string(error));
      }
    }
  }

  // The cursor queue carries no responses (spec 5.7.6.10: the device does not write to it).
  if (cursor_queue) {
    written = 0;
    return Outcome::Done;
  }
  if (hold_token_ != 0) {
    held_hdr_ = hdr;
    return Outcome::Held;  // answered by complete_held() when the frontend replies
  }
  ResponseBytes response = answer && !answer->empty()
                               ? std::move(*answer)
                               : header_response(answer ? uint32_t{VIRTIO_GPU_RESP_OK_NODATA} : to_wire(error));
  if (!write_response(chain, hdr, std::move(response), written)) return Outcome::Done;
  // Spec 5.7.6.7: a fenced command's completion means its fence signalled. With a 3D renderer the work may
  // still be running: hold the response until the renderer's fence for it signals.
  return peeked && fence_command(hdr) ? Outcome::Fenced : Outcome::Done;
}

bool GpuDevice::write_response(DescriptorChain& chain, const virtio_gpu_ctrl_hdr& hdr, ResponseBytes response,
                               uint32_t& written) {
  // Spec 5.7.6.7: with VIRTIO_GPU_FLAG_FENCE the device MUST set the flag in the response and copy fence_id
  // (and, with INFO_RING_IDX, ring_idx); ctx_id is echoed too.
  virtio_gpu_ctrl_hdr out{};
  std::memcpy(&out, response.data(), sizeof(out));
  out.flags = hdr.flags & (VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX);
  out.fence_id = (out.flags & VIRTIO_GPU_FLAG_FENCE) != 0 ? hdr.fence_id : 0;
  out.ctx_id = hdr.ctx_id;
  out.ring_idx = (out.flags & VIRTIO_GPU_FLAG_INFO_RING_IDX) != 0 ? hdr.ring_idx : 0;
  std::memcpy(response.data(), &out, sizeof(out));
  Writer writer = chain.writer();
  if (!writer.write_bytes(response)) {
    VGPU_LOG_WARN_LIMITED("controlq: {} bytes of room for a {}-byte response to {}", writer.available(),
                          response.size(), command_name(hdr.type));
    written = 0;
    return false;
  }
  written = static_cast<uint32_t>(writer.written());
  return true;
}

bool GpuDevice::fence_command(const virtio_gpu_ctrl_hdr& hdr) {
  if (r3d_ == nullptr || (hdr.flags & VIRTIO_GPU_FLAG_FENCE) == 0) return false;
  // With CONTEXT_INIT, VIRTIO_GPU_FLAG_INFO_RING_IDX puts the fence on the context's ring `ring_idx`
  // (spec 5.7.6.7); otherwise it is on the device's global timeline.
  const bool per_ring = (hdr.flags & VIRTIO_GPU_FLAG_INFO_RING_IDX) != 0 && has_feature(VIRTIO_GPU_F_CONTEXT_INIT) &&
                        contexts_.contains(hdr.ctx_id);
  const FenceRing ring = per_ring ? FenceRing::context(hdr.ctx_id, hdr.ring_idx) : FenceRing::global();
  if (auto r = r3d_->create_fence(ring, hdr.fence_id); !r) {
    VGPU_LOG_DEBUG("fence {} not created ({}): completing at once", hdr.fence_id, to_string(r.error()));
    return false;
  }
  pending_fence_ring_ = ring;
  pending_fence_id_ = hdr.fence_id;
  return true;
}

void GpuDevice::hold_fenced(DescriptorChain chain, uint32_t written) {
  auto back = fences_.hold({pending_fence_ring_, pending_fence_id_, std::move(chain), written});
  if (back) {
    std::vector<FenceTable::Response> now;
    now.push_back(std::move(*back));
    complete_fenced(std::move(now));
  }
}

void GpuDevice::on_fence(FenceRing ring, uint64_t fence_id) {
  complete_fenced(fences_.signal(ring, fence_id));
  update_fence_timer();
}

void GpuDevice::complete_fenced(std::vector<FenceTable::Response> responses) {
  Queue* queue = queues_[kControlQueue];
  if (queue == nullptr || responses.empty()) return;
  for (FenceTable::Response& r : responses) queue->add_used(std::move(r.chain), r.written);
  queue->notify_if_needed();
}

void GpuDevice::update_fence_timer() {
  const bool want = r3d_ != nullptr && loop_ != nullptr && registered_poll_fd_ < 0 && !fences_.empty();
  if (want == fence_timer_armed_) return;
  if (want && !fence_timer_) {
    fence_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!fence_timer_) {
      VGPU_LOG_ERROR("timerfd_create for the fence timer: {}: fenced commands wait for the next poll fd event",
                     std::strerror(errno));
      return;
    }
    if (auto r = loop_->add(fence_timer_.get(), {Token::RendererTimer, 0}, EPOLLIN); !r) {
      VGPU_LOG_ERROR("cannot poll the fence timer (errno {})", r.error());
      fence_timer_.reset();
      return;
    }
    VGPU_LOG_INFO("the renderer has no poll fd: fenced commands are polled every {} us", kFenceTimerPeriodUs);
  }
  if (!fence_timer_) return;
  // The renderer signals only when asked (poll()); 1 ms keeps a fence's latency near the GPU's without
  // spinning, and the timer runs only while responses wait.
  itimerspec spec{};
  if (want) {
    spec.it_value.tv_nsec = kFenceTimerPeriodUs * 1000;
    spec.it_interval.tv_nsec = kFenceTimerPeriodUs * 1000;
  }
  ::timerfd_settime(fence_timer_.get(), 0, &spec, nullptr);
  fence_timer_armed_ = want;
}

// ---------------------------------------------------------------------------------------------------------
// Display management.

void GpuDevice::install_display(std::unique_ptr<Display> display) {
  if (loop_ != nullptr && registered_display_fd_ >= 0) loop_->remove(registered_display_fd_);
  registered_display_fd_ = -1;
  registered_display_events_ = 0;
  display_ = std::move(display);
  display_refresh_requested_ = false;
  display_->set_listener([this] { on_display_changed(); });
  // Re-announce what is on screen, so a new display starts from the current state.
  for (uint32_t s = 0; s < cfg_.num_scanouts; ++s) {
    const Scanout& sc = scanouts_[s];
    if (sc.resource_id == 0) continue;
    if (!offer_dmabuf(s)) display_->set_scanout(s, sc.rect.width, sc.rect.height);
    send_flush(s, sc.rect);
  }
  update_display_registration();
  on_display_changed();
}

void GpuDevice::update_display_registration() {
  if (loop_ == nullptr) return;
  const int fd = display_->alive() ? display_->fd() : -1;
  const uint32_t events = fd >= 0 ? display_->wanted_events() : 0;
  if (fd == registered_display_fd_ && events == registered_display_events_) return;
  if (registered_display_fd_ >= 0 && fd != registered_display_fd_) loop_->remove(registered_display_fd_);
  if (fd >= 0) {
    auto r = fd == registered_display_fd_ ? loop_->modify(fd, {Token::DisplaySocket}, events)
                                          : loop_->add(fd, {Token::DisplaySocket}, events);
    if (!r) VGPU_LOG_ERROR("cannot poll the display socket (errno {})", r.error());
  }
  registered_display_fd_ = fd;
  registered_display_events_ = events;
}

void GpuDevice::on_display_socket(UniqueFd fd) {
  if (!displays_.frontend) {
    VGPU_LOG_INFO("display socket received; ignored (--headless)");
    return;
  }
  VGPU_LOG_INFO("display socket received: frames go to the frontend's display");
  install_display(displays_.frontend(std::move(fd)));
}

void GpuDevice::on_event(Source source, uint32_t events) {
  if (source.token == Token::DisplaySocket) on_display_event(events);
  if (source.token == Token::RendererTimer && fence_timer_) {
    uint64_t expirations = 0;
    if (::read(fence_timer_.get(), &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
      VGPU_LOG_WARN("fence timer read: {}", std::strerror(errno));
    }
  }
  if ((source.token == Token::RendererPoll || source.token == Token::RendererTimer) && r3d_ != nullptr) r3d_->poll();
}

void GpuDevice::on_memory_changing() {
  // virglrenderer reads attached backings on its own (and while detaching them): let go of its views while
  // the old mappings are still mapped; on_memory_changed() resolves them again in the new table.
  if (r3d_ != nullptr) r3d_->release_backings();
}

void GpuDevice::on_memory_changed() {
  // The 3D renderer keeps host views of attached backings: resolve them again in the new mappings.
  if (r3d_ != nullptr) r3d_->refresh_backings();
}

void GpuDevice::on_display_event(uint32_t events) {
  display_->on_event(events);
  if (!display_->alive()) {
    VGPU_LOG_WARN("display socket closed: keeping frames headless until the frontend sends a new one");
    install_display(displays_.idle());
    return;
  }
  update_display_registration();
}

void GpuDevice::on_display_changed() {
  auto layout = display_->display_info();
  if (layout && last_layout_ && *layout != *last_layout_) {
    // Spec 5.7.4: VIRTIO_GPU_EVENT_DISPLAY tells the driver to fetch the display info again.
    config_.events_read |= VIRTIO_GPU_EVENT_DISPLAY;
    VGPU_LOG_INFO("display layout changed: raising VIRTIO_GPU_EVENT_DISPLAY");
  }
  if (layout) last_layout_ = std::move(layout);
  if (stalled_) drain(kControlQueue);
}

Result<std::vector<std::string>, std::string> GpuDevice::dump_frames(const std::string& directory) const {
  std::vector<std::string> paths;
  for (uint32_t s = 0; s < cfg_.num_scanouts; ++s) {
    if (scanouts_[s].resource_id == 0) continue;
    std::string path = (std::filesystem::path(directory) / ("scanout-" + std::to_string(s) + ".png")).string();
    if (auto r = display_->write_png(s, path); !r) return fail(r.error());
    paths.push_back(std::move(path));
  }
  return paths;
}

void GpuDevice::reset() {
  if (stalled_) stalled_.reset();  // its queue is gone with the session
  fences_.clear();
  held_.clear();
  deferred_maps_.clear();
  hold_token_ = 0;
  if (host_visible_) {
    // QEMU drops its mappings at reset too; asking first keeps a frontend that does not from holding our
    // memory. Answers are ignored: the book is cleared now.
    for (const HostVisibleRegion::Mapping& m : host_visible_->all()) {
      if (mapper_ != nullptr && m.state != HostVisibleRegion::State::Unmapping) {
        (void)mapper_->unmap(shm_range(m.offset, m.len), [](BackendReply) {});
      }
    }
    host_visible_->clear();
  }
  logged_venus_cap_ = false;
  logged_uuid_ = false;
  logged_unshared_ = false;
  if (loop_ != nullptr) {
    for (const auto& [id, ctx] : contexts_) {
      if (ctx.poll_fd >= 0) loop_->remove(ctx.poll_fd);
    }
  }
  contexts_.clear();
  queues_ = {};
  mem_ = nullptr;
  config_.events_read = 0;
  acked_features_ = 0;
  logged_unknown_.reset();
  scanouts_ = {};
  cursors_ = {};
  resources_.for_each([this](uint32_t /*id*/, Resource& r) { withdraw_shared(r); });
  resources_.clear();
  // The display may still be sending straight from a resource's pixels (busy()): it is replaced below, before
  // the loop runs again, so it never reads the images this frees.
  renderer_->reset();
  register_renderer_poll();  // virglrenderer's reset re-initialises it with a new poll fd
  update_fence_timer();
  last_layout_.reset();
  display_refresh_requested_ = false;
  install_display(displays_.idle());
}

}  // namespace vgpu

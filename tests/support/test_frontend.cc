#include "support/test_frontend.h"

#include <linux/virtio_config.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "support/display_server.h"
#include "support/gpu_requests.h"

namespace vgpu::test {

using vhost_user::FrontendRequest;
using vhost_user::ProtocolFeature;

namespace {

constexpr uint64_t kStatusDriverOk =
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;

constexpr uint64_t kPage = 4096;
// Where fake_guest.cc puts each region within its first file page (its kFileGap). With page_aligned_regions the
// regions start this far into a page of guest memory too, and the wire regions start at the page boundary.
constexpr uint64_t kFakeRegionSkew = 0x300;

vhost_user::MemoryRegion wire_region(const RegionDesc& d, bool page_aligned) {
  if (!page_aligned) return {raw(d.guest_phys), d.size, raw(d.frontend_virt), d.mmap_offset};
  // Widen the region down to the page boundary: the few bytes before it are file bytes nobody uses.
  const uint64_t skew = d.mmap_offset % kPage;
  const uint64_t gpa = raw(d.guest_phys) - skew;
  if (gpa % kPage != 0 || (raw(d.frontend_virt) - skew) % kPage != 0) {
    throw std::runtime_error("page_aligned_regions: the fake guest memory's layout changed (see kFakeRegionSkew)");
  }
  return {gpa, d.size + skew, raw(d.frontend_virt) - skew, d.mmap_offset - skew};
}

}  // namespace

std::unique_ptr<TestFrontend> TestFrontend::connect(const std::string& socket_path, TestFrontendOptions options) {
  auto client = VhostUserClient::connect(socket_path);
  if (!client) return nullptr;
  return std::unique_ptr<TestFrontend>(new TestFrontend(std::move(*client), options));
}

TestFrontend::TestFrontend(VhostUserClient client, TestFrontendOptions options)
    : client_(std::move(client)), options_(options) {
  // Two regions with a hole between them, like QEMU's RAM split around the PCI hole.
  const uint64_t half = options_.memory_size / 2;
  const uint64_t skew = options_.page_aligned_regions ? kFakeRegionSkew : 0;
  guest_ = std::make_unique<FakeGuestMemory>(std::vector<FakeRegion>{
      {GuestAddress{skew}, half - skew}, {GuestAddress{0x1'0000'0000 + skew}, options_.memory_size - half - skew}});
  for (size_t i = 0; i < kNumQueues; ++i) {
    queues_[i] = std::make_unique<FakeVirtqueue>(
        *guest_,
        FakeQueueOptions{.size = options_.queue_size, .event_idx = options_.event_idx, .indirect = options_.indirect});
    kick_fds_[i] = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    call_fds_[i] = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
}

TestFrontend::~TestFrontend() {
  queues_ = {};  // before guest_: queues free their rings in guest memory
}

bool TestFrontend::failed(const std::string& what) {
  error_ = what;
  return false;
}

bool TestFrontend::request_ack(FrontendRequest request, std::span<const std::byte> payload, std::span<const int> fds) {
  const bool ack = (protocol_features_ & bit(ProtocolFeature::ReplyAck)) != 0;
  if (!client_.send(request, payload, fds, ack ? vhost_user::kFlagNeedReply : 0)) {
    return failed("send " + std::string(vhost_user::to_string(request)));
  }
  if (!ack) return true;
  auto reply = client_.receive();
  if (!reply || reply->payload.size() != sizeof(uint64_t)) {
    return failed("no REPLY_ACK for " + std::string(vhost_user::to_string(request)));
  }
  uint64_t status = 1;
  std::memcpy(&status, reply->payload.data(), sizeof(status));
  if (status != 0) return failed(std::string(vhost_user::to_string(request)) + " refused");
  return true;
}

bool TestFrontend::send_memory() {
  const auto& regions = guest_->regions();
  if (options_.add_mem_reg) {
    for (const auto& r : regions) {
      vhost_user::SingleMemoryRegion msg{0, wire_region(r, options_.page_aligned_regions)};
      const int fd = guest_->fd();
      if (!request_ack(FrontendRequest::AddMemReg, bytes_of(msg), std::span<const int>(&fd, 1))) return false;
    }
    return true;
  }
  std::vector<std::byte> payload(sizeof(vhost_user::MemoryTableHeader) +
                                 regions.size() * sizeof(vhost_user::MemoryRegion));
  vhost_user::MemoryTableHeader hdr{static_cast<uint32_t>(regions.size()), 0};
  std::memcpy(payload.data(), &hdr, sizeof(hdr));
  std::vector<int> fds;
  for (size_t i = 0; i < regions.size(); ++i) {
    auto wire = wire_region(regions[i], options_.page_aligned_regions);
    std::memcpy(payload.data() + sizeof(hdr) + i * sizeof(wire), &wire, sizeof(wire));
    fds.push_back(guest_->fd());
  }
  return request_ack(FrontendRequest::SetMemTable, payload, fds);
}

bool TestFrontend::setup_queue(size_t index) {
  const auto idx = static_cast<uint32_t>(index);
  FakeVirtqueue& q = *queues_[index];
  const QueueConfig cfg = q.config();
  if (!request_ack(FrontendRequest::SetVringNum, bytes_of(vhost_user::VringState{idx, q.size()}))) return false;
  if (!request_ack(FrontendRequest::SetVringBase, bytes_of(vhost_user::VringState{idx, q.avail_idx()}))) {
    return false;
  }
  auto desc = guest_->to_frontend(cfg.desc);
  auto used = guest_->to_frontend(cfg.used);
  auto avail = guest_->to_frontend(cfg.avail);
  if (!desc || !used || !avail) return failed("ring outside fake memory");
  vhost_user::VringAddr addr{idx, 0, raw(*desc), raw(*used), raw(*avail), 0};
  if (!request_ack(FrontendRequest::SetVringAddr, bytes_of(addr))) return false;
  const uint64_t file_index = idx;
  const int kick = kick_fds_[index].get();
  const int call = call_fds_[index].get();
  if (!request_ack(FrontendRequest::SetVringKick, bytes_of(file_index), std::span<const int>(&kick, 1))) {
    return false;
  }
  if (!request_ack(FrontendRequest::SetVringCall, bytes_of(file_index), std::span<const int>(&call, 1))) {
    return false;
  }
  return request_ack(FrontendRequest::SetVringEnable, bytes_of(vhost_user::VringState{idx, 1}));
}

bool TestFrontend::negotiate() {
  if (!client_.send(FrontendRequest::SetOwner, {}, {})) return failed("send SET_OWNER");
  auto features = client_.get_u64(FrontendRequest::GetFeatures);
  if (!features) return failed("GET_FEATURES");
  backend_features_ = *features;
  if ((backend_features_ & vhost_user::kFeatureProtocolFeatures) == 0) return failed("no PROTOCOL_FEATURES");
  auto protocol = client_.get_u64(FrontendRequest::GetProtocolFeatures);
  if (!protocol) return failed("GET_PROTOCOL_FEATURES");
  const uint64_t wanted = bit(ProtocolFeature::Mq) | bit(ProtocolFeature::ReplyAck) | bit(ProtocolFeature::Config) |
                          bit(ProtocolFeature::ConfigureMemSlots) | bit(ProtocolFeature::Status) |
                          options_.extra_protocol_features;
  protocol_features_ = *protocol & wanted;
  if (!client_.set_u64(FrontendRequest::SetProtocolFeatures, protocol_features_)) {
    return failed("SET_PROTOCOL_FEATURES");
  }
  auto queues = client_.get_u64(FrontendRequest::GetQueueNum);
  if (!queues || *queues < kNumQueues) return failed("GET_QUEUE_NUM");
  auto slots = client_.get_u64(FrontendRequest::GetMaxMemSlots);
  if (!slots || *slots < guest_->regions().size()) return failed("GET_MAX_MEM_SLOTS");
  if (!get_config()) return failed("GET_CONFIG");
  // QEMU (hw/display/vhost-user-gpu.c, set_status on DRIVER_OK): the display socket first, then
  // vhost_user_backend_start() with features, memory and vrings.
  if (options_.display != nullptr && !send_display_socket(*options_.display)) return false;

  uint64_t acked = backend_features_ & ((uint64_t{1} << VIRTIO_F_VERSION_1) | vhost_user::kFeatureProtocolFeatures);
  if (options_.event_idx) acked |= backend_features_ & (uint64_t{1} << VIRTIO_RING_F_EVENT_IDX);
  if (options_.indirect) acked |= backend_features_ & (uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC);
  acked |= backend_features_ & options_.device_features;
  if (!request_ack(FrontendRequest::SetFeatures, bytes_of(acked))) return false;
  if (!send_memory()) return false;
  for (size_t i = 0; i < kNumQueues; ++i) {
    if (!setup_queue(i)) return false;
  }
  // QEMU sends SET_STATUS only when the STATUS protocol feature was negotiated (QEMU 7.2's libvhost-user
  // lacks it).
  if ((protocol_features_ & bit(ProtocolFeature::Status)) == 0) return true;
  return request_ack(FrontendRequest::SetStatus, bytes_of(kStatusDriverOk));
}

std::optional<virtio_gpu_config> TestFrontend::get_config() {
  struct {
    vhost_user::ConfigHeader hdr;
    virtio_gpu_config config;
  } msg{{0, sizeof(virtio_gpu_config), 0}, {}};
  if (!client_.send(FrontendRequest::GetConfig, bytes_of(msg), {})) return std::nullopt;
  auto reply = client_.receive();
  if (!reply || reply->payload.size() != sizeof(msg)) return std::nullopt;
  std::memcpy(&msg, reply->payload.data(), sizeof(msg));
  return msg.config;
}

bool TestFrontend::send_display_socket(DisplayServer& display) {
  UniqueFd backend_end = display.connect();
  if (!backend_end) return failed("display socketpair");
  const int fd = backend_end.get();
  if (!client_.send(FrontendRequest::GpuSetSocket, {}, std::span<const int>(&fd, 1))) {
    return failed("send GPU_SET_SOCKET");
  }
  return true;  // our end closes here, as QEMU closes sv[1] after sending it
}

GuestBacking TestFrontend::alloc_backing(uint64_t size, BackingLayout layout) {
  GuestBacking out;
  if (layout == BackingLayout::OneEntry) {
    if (size > UINT32_MAX) throw std::runtime_error("alloc_backing: one entry holds at most 4 GiB - 1");
    out.size = size;
    out.base = guest_->alloc(size, kPage);
    out.entries.push_back(
        virtio_gpu_mem_entry{.addr = raw(out.base), .length = static_cast<uint32_t>(size), .padding = 0});
    return out;
  }
  const uint64_t pages = (size + kPage - 1) / kPage;
  out.size = pages * kPage;
  out.base = guest_->alloc(out.size, kPage);
  std::vector<uint64_t> order(pages);
  std::iota(order.begin(), order.end(), uint64_t{0});
  if (layout == BackingLayout::ScatteredPages && pages > 1) {
    // A fixed permutation in which no two consecutive entries are adjacent pages: the second half of the
    // pages interleaved with the first, reversed ([n-1, n/2-1, n-2, n/2-2, ...]).
    std::vector<uint64_t> scattered;
    scattered.reserve(pages);
    const uint64_t half = pages / 2;
    for (uint64_t i = 0; i < pages - half; ++i) {
      scattered.push_back(pages - 1 - i);
      if (i < half) scattered.push_back(half - 1 - i);
    }
    order = std::move(scattered);
  }
  out.entries.reserve(pages);
  for (uint64_t page : order) {
    out.entries.push_back(virtio_gpu_mem_entry{.addr = raw(out.base) + page * kPage, .length = kPage, .padding = 0});
  }
  return out;
}

void TestFrontend::free_backing(const GuestBacking& backing) {
  guest_->free(backing.base);
}

void TestFrontend::write_backing(const GuestBacking& backing, uint64_t offset, std::span<const std::byte> data) {
  if (offset > backing.size || data.size() > backing.size - offset) {
    throw std::runtime_error("write_backing: outside the backing");
  }
  // Entries are equal-sized (pages) or one: the entry of a resource offset is offset / entry length.
  const uint64_t entry_len = backing.entries.front().length;
  while (!data.empty()) {
    const virtio_gpu_mem_entry& e = backing.entries[offset / entry_len];
    const uint64_t within = offset % entry_len;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), e.length - within));
    guest_->write(GuestAddress{e.addr + within}, data.first(n));
    data = data.subspan(n);
    offset += n;
  }
}

void TestFrontend::kick(size_t queue) {
  ::eventfd_write(kick_fds_.at(queue).get(), 1);
}

bool TestFrontend::wait_call(size_t queue, int timeout_ms) {
  pollfd p{call_fds_.at(queue).get(), POLLIN, 0};
  int r = 0;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r != 1) return false;
  eventfd_t value = 0;
  ::eventfd_read(call_fds_[queue].get(), &value);
  return true;
}

std::optional<std::vector<std::byte>> TestFrontend::command(size_t queue, std::span<const std::byte> request,
                                                            uint32_t response_size, int timeout_ms) {
  FakeVirtqueue& q = *queues_.at(queue);
  ChainBuilder builder(q);
  builder.readable(request);
  if (response_size > 0) builder.writable(response_size);
  const BuiltChain built = builder.build();
  const GuestAddress response_addr = response_size > 0 ? built.writable.at(0).addr : GuestAddress{0};
  // Like a driver that consumed everything so far: ask to be notified for the very next used entry.
  const uint16_t used_before = q.used_idx();
  if (options_.event_idx) q.set_used_event(used_before);
  kick(queue);
  // A call can come without a used entry: libvhost-user signals every call eventfd it is given (SET_VRING_CALL,
  // "in case of I/O hang after reconnecting"). Wait for the entry itself.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (q.used_idx() == used_before) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_call(queue, static_cast<int>(left.count()))) return std::nullopt;
  }
  // Read the response before next_used() hands the buffers back to the fake's allocator.
  std::vector<std::byte> response;
  if (response_size > 0) response = guest_->read(response_addr, response_size);
  auto used = q.next_used();
  if (!used || used->id != built.head || used->len > response_size) return std::nullopt;
  if (response_size > 0 && used->len == 0) return std::nullopt;
  response.resize(used->len);
  return response;
}

// ---- CommandPipeline ----

CommandPipeline::CommandPipeline(TestFrontend& frontend, size_t queue, uint16_t depth, uint32_t max_request,
                                 uint32_t max_response)
    : frontend_(&frontend), queue_(queue), max_request_(max_request), max_response_(max_response) {
  FakeVirtqueue& q = frontend.queue(queue);
  FakeGuestMemory& guest = frontend.guest();
  slot_of_head_.assign(q.size(), -1);
  const std::vector<uint16_t> descs = q.take_descriptors(size_t{depth} * 2);
  slots_.resize(depth);
  for (uint16_t i = 0; i < depth; ++i) {
    Slot& s = slots_[i];
    s.request_desc = descs[size_t{i} * 2];
    s.response_desc = descs[size_t{i} * 2 + 1];
    s.request = guest.alloc(max_request, 64);
    s.response = guest.alloc(max_response, 64);
    slot_of_head_[s.request_desc] = i;
    free_.push_back(static_cast<uint16_t>(depth - 1 - i));
  }
  last_used_ = q.used_idx();  // everything before was consumed by the frontend's own calls
}

CommandPipeline::~CommandPipeline() {
  for (const Slot& s : slots_) {
    frontend_->guest().free(s.request);
    frontend_->guest().free(s.response);
  }
}

bool CommandPipeline::submit(std::span<const std::byte> request, uint32_t response_size, uint32_t tag) {
  if (free_.empty() || request.size() > max_request_ || response_size > max_response_ || request.empty()) {
    return false;
  }
  FakeVirtqueue& q = frontend_->queue(queue_);
  // Idle: TestFrontend::command() may have consumed used entries since; it consumes all of its own, so the
  // used index is where reaping starts (our chains are not published yet: none of their entries can be there).
  if (in_flight() == 0) last_used_ = q.used_idx();
  const uint16_t index = free_.back();
  free_.pop_back();
  Slot& s = slots_[index];
  s.response_size = response_size;
  s.tag = tag;
  frontend_->guest().write(s.request, request);
  const bool has_response = response_size > 0;
  q.write_desc(s.request_desc, vring_desc{.addr = raw(s.request),
                                          .len = static_cast<uint32_t>(request.size()),
                                          .flags = static_cast<uint16_t>(has_response ? VRING_DESC_F_NEXT : 0),
                                          .next = s.response_desc});
  if (has_response) {
    q.write_desc(s.response_desc,
                 vring_desc{.addr = raw(s.response), .len = response_size, .flags = VRING_DESC_F_WRITE, .next = 0});
  }
  q.publish(s.request_desc);
  return true;
}

void CommandPipeline::kick() {
  if (frontend_->options().event_idx) frontend_->queue(queue_).set_used_event(last_used_);
  frontend_->kick(queue_);
}

size_t CommandPipeline::reap(std::vector<Completion>& out) {
  FakeVirtqueue& q = frontend_->queue(queue_);
  size_t n = 0;
  for (;;) {
    while (auto used = q.next_used()) {
      ++last_used_;
      const int32_t index = used->id < slot_of_head_.size() ? slot_of_head_[used->id] : -1;
      if (index < 0) throw std::runtime_error("CommandPipeline: a used entry for a chain it did not submit");
      const Slot& s = slots_[static_cast<size_t>(index)];
      Completion c{.tag = s.tag, .len = used->len, .response_type = 0};
      if (used->len >= sizeof(virtio_gpu_ctrl_hdr) && s.response_size >= sizeof(virtio_gpu_ctrl_hdr)) {
        c.response_type = frontend_->guest().read_value<virtio_gpu_ctrl_hdr>(s.response).type;
      }
      out.push_back(c);
      free_.push_back(static_cast<uint16_t>(index));
      ++n;
    }
    // EVENT_IDX: ask for a call on the next entry, then look again, or an entry published in between would
    // neither be seen nor be announced (the same dance as the Linux driver's virtqueue_enable_cb).
    if (!frontend_->options().event_idx) break;
    q.set_used_event(last_used_);
    if (q.used_idx() == last_used_) break;
  }
  return n;
}

std::optional<std::vector<CommandPipeline::Completion>> CommandPipeline::collect(size_t count, int timeout_ms) {
  std::vector<Completion> out;
  out.reserve(count);
  reap(out);
  while (out.size() < count) {
    if (!frontend_->wait_call(queue_, timeout_ms)) return std::nullopt;
    reap(out);
  }
  return out;
}

// ---- request builders ----

std::vector<std::byte> get_display_info_request() {
  virtio_gpu_ctrl_hdr req{};
  req.type = VIRTIO_GPU_CMD_GET_DISPLAY_INFO;
  return request_bytes(req);
}

std::vector<std::byte> resource_create_2d_request(uint32_t resource_id, uint32_t format, uint32_t width,
                                                  uint32_t height) {
  return request_bytes(req::create_2d(resource_id, format, width, height));
}

std::vector<std::byte> attach_backing_request(uint32_t resource_id, std::span<const virtio_gpu_mem_entry> entries) {
  virtio_gpu_resource_attach_backing req{};
  req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
  req.resource_id = resource_id;
  req.nr_entries = static_cast<uint32_t>(entries.size());
  return req::with_entries(req, entries);
}

std::vector<std::byte> create_guest_blob_request(uint32_t resource_id, uint64_t size,
                                                 std::span<const virtio_gpu_mem_entry> entries) {
  const auto header = req::create_blob(resource_id, VIRTIO_GPU_BLOB_MEM_GUEST, VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE,
                                       static_cast<uint32_t>(entries.size()), 0, size);
  return req::with_entries(header, entries);
}

std::vector<std::byte> set_scanout_blob_request(uint32_t scanout_id, uint32_t resource_id, const virtio_gpu_rect& rect,
                                                uint32_t width, uint32_t height, uint32_t stride, uint32_t offset) {
  return request_bytes(req::set_scanout_blob(scanout_id, resource_id, rect, width, height, stride, offset,
                                             VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM));
}

std::vector<std::byte> set_scanout_request(uint32_t scanout_id, uint32_t resource_id, const virtio_gpu_rect& rect) {
  return request_bytes(req::set_scanout(scanout_id, resource_id, rect));
}

std::vector<std::byte> transfer_to_host_2d_request(uint32_t resource_id, const virtio_gpu_rect& rect, uint64_t offset) {
  return request_bytes(req::transfer_to_host_2d(resource_id, rect, offset));
}

std::vector<std::byte> resource_flush_request(uint32_t resource_id, const virtio_gpu_rect& rect) {
  return request_bytes(req::flush(resource_id, rect));
}

std::vector<std::byte> resource_unref_request(uint32_t resource_id) {
  virtio_gpu_resource_unref req{};
  req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_UNREF;
  req.resource_id = resource_id;
  return request_bytes(req);
}

uint32_t response_type(std::span<const std::byte> response) {
  virtio_gpu_ctrl_hdr hdr{};
  if (response.size() < sizeof(hdr)) return 0;
  std::memcpy(&hdr, response.data(), sizeof(hdr));
  return hdr.type;
}

}  // namespace vgpu::test

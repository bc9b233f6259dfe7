#include "support/test_frontend.h"

#include <linux/virtio_config.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>

namespace vgpu::test {

using vhost_user::FrontendRequest;
using vhost_user::ProtocolFeature;

namespace {

constexpr uint64_t kStatusDriverOk =
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;

vhost_user::MemoryRegion wire_region(const RegionDesc& d) {
  return {raw(d.guest_phys), d.size, raw(d.frontend_virt), d.mmap_offset};
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
  guest_ = std::make_unique<FakeGuestMemory>(
      std::vector<FakeRegion>{{GuestAddress{0}, half}, {GuestAddress{0x1'0000'0000}, options_.memory_size - half}});
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
      vhost_user::SingleMemoryRegion msg{0, wire_region(r)};
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
    auto wire = wire_region(regions[i]);
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
                          bit(ProtocolFeature::ConfigureMemSlots) | bit(ProtocolFeature::Status);
  protocol_features_ = *protocol & wanted;
  if (!client_.set_u64(FrontendRequest::SetProtocolFeatures, protocol_features_)) {
    return failed("SET_PROTOCOL_FEATURES");
  }
  auto queues = client_.get_u64(FrontendRequest::GetQueueNum);
  if (!queues || *queues < kNumQueues) return failed("GET_QUEUE_NUM");
  auto slots = client_.get_u64(FrontendRequest::GetMaxMemSlots);
  if (!slots || *slots < guest_->regions().size()) return failed("GET_MAX_MEM_SLOTS");
  if (!get_config()) return failed("GET_CONFIG");

  uint64_t acked = backend_features_ & ((uint64_t{1} << VIRTIO_F_VERSION_1) | vhost_user::kFeatureProtocolFeatures);
  if (options_.event_idx) acked |= backend_features_ & (uint64_t{1} << VIRTIO_RING_F_EVENT_IDX);
  if (options_.indirect) acked |= backend_features_ & (uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC);
  if (!request_ack(FrontendRequest::SetFeatures, bytes_of(acked))) return false;
  if (!send_memory()) return false;
  for (size_t i = 0; i < kNumQueues; ++i) {
    if (!setup_queue(i)) return false;
  }
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
  if (options_.event_idx) q.set_used_event(q.used_idx());
  kick(queue);
  if (!wait_call(queue, timeout_ms)) return std::nullopt;
  // Read the response before next_used() hands the buffers back to the fake's allocator.
  std::vector<std::byte> response;
  if (response_size > 0) response = guest_->read(response_addr, response_size);
  auto used = q.next_used();
  if (!used || used->id != built.head || used->len > response_size) return std::nullopt;
  if (response_size > 0 && used->len == 0) return std::nullopt;
  response.resize(used->len);
  return response;
}

}  // namespace vgpu::test

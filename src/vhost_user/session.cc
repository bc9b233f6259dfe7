// The vhost-user session: construction and teardown, and the handler of each front-end request. The pipeline
// every message goes through is in session_pipeline.cc, the rings in session_rings.cc, device state transfers
// in session_device_state.cc.
#include "vhost_user/session.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <span>
#include <utility>

#include "common/checked.h"
#include "common/log.h"
#include "vhost_user/session_detail.h"

namespace vgpu::vhost_user {

std::string_view to_string(SessionError e) {
  switch (e) {
    case SessionError::Disconnected: return "frontend closed the connection";
    case SessionError::Transport: return "transport error";
    case SessionError::BadHeader: return "bad message header";
    case SessionError::WrongFdCount: return "wrong number of file descriptors";
    case SessionError::WrongPayloadSize: return "wrong payload size";
    case SessionError::InvalidPayload: return "invalid payload";
    case SessionError::InvalidState: return "request not allowed in the current state";
    case SessionError::MemoryMap: return "guest memory update failed";
    case SessionError::RingStart: return "cannot start a ring";
  }
  return "unknown session error";
}

namespace session_detail {

namespace {

// What an fd refers to, as /proc/self/fd names it ("anon_inode:[eventfd]", "socket:[123]", "/memfd:x", ...);
// empty when /proc cannot tell.
std::string fd_target(int fd) {
  char buf[128];
  const std::string link = fmt::format("/proc/self/fd/{}", fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

std::string_view protocol_feature_name(ProtocolFeature f) {
  switch (f) {
    case ProtocolFeature::Mq: return "MQ";
    case ProtocolFeature::ReplyAck: return "REPLY_ACK";
    case ProtocolFeature::Config: return "CONFIG";
    case ProtocolFeature::BackendReq: return "BACKEND_REQ";
    case ProtocolFeature::ConfigureMemSlots: return "CONFIGURE_MEM_SLOTS";
    case ProtocolFeature::Status: return "STATUS";
    case ProtocolFeature::Shmem: return "SHMEM";
    case ProtocolFeature::ResetDevice: return "RESET_DEVICE";
    case ProtocolFeature::SharedObject: return "SHARED_OBJECT";
    case ProtocolFeature::DeviceState: return "DEVICE_STATE";
    default: return "(not offered)";
  }
}

std::string request_name(uint32_t request) {
  if (request > static_cast<uint32_t>(FrontendRequest::GetShmemConfig)) return fmt::format("request {}", request);
  return std::string(to_string(static_cast<FrontendRequest>(request)));
}

RegionDesc region_desc(const MemoryRegion& r) {
  return RegionDesc{GuestAddress{r.guest_phys_addr}, r.memory_size, FrontendVirtAddr{r.userspace_addr}, r.mmap_offset};
}

// A region is acceptable when it is not empty and none of its ranges wraps.
std::optional<std::string> region_problem(const MemoryRegion& r) {
  if (r.memory_size == 0) return "size 0";
  if (!checked_add(r.guest_phys_addr, r.memory_size - 1)) return "guest address range wraps";
  if (!checked_add(r.userspace_addr, r.memory_size - 1)) return "frontend address range wraps";
  if (!checked_add(r.mmap_offset, r.memory_size)) return "mmap_offset + size wraps";
  return std::nullopt;
}

// Maps one frontend region. A MAP_SHARED page past the end of a file raises SIGBUS when touched, so a regular
// file (memfd, hugetlbfs, /dev/shm) must cover [0, mmap_offset + size).
Result<MappedRegion, std::string> map_region(const MemoryRegion& r, int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(fmt::format("fstat: {}", std::strerror(errno)));
  const uint64_t end = r.mmap_offset + r.memory_size;  // no wrap: checked by region_problem()
  if (S_ISREG(st.st_mode) && (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < end)) {
    return fail(fmt::format("the fd holds {} bytes, the region needs {}", st.st_size, end));
  }
  auto mapped = MappedRegion::map(region_desc(r), fd);
  if (!mapped && mapped.error() == MemoryError::MapFailed) {
    return fail(fmt::format("{}: {}", to_string(mapped.error()), std::strerror(errno)));
  }
  if (!mapped) return fail(std::string(to_string(mapped.error())));
  return std::move(*mapped);
}

// Kick, call and err fds must be eventfds: we write 8-byte counters to them and poll them, and anything else
// could block, spin (always readable) or raise SIGPIPE. Without /proc the check is skipped.
std::optional<std::string> not_an_eventfd(int fd) {
  const std::string target = fd_target(fd);
  if (target.empty() || target == "anon_inode:[eventfd]") return std::nullopt;
  return target;
}

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace session_detail

using namespace session_detail;  // NOLINT(google-build-using-namespace): this file's own helpers

// ---------------------------------------------------------------------------------------------------------
// Construction and teardown

Session::Session(UniqueFd socket, Backend& backend, EventLoop& loop, int recv_timeout_ms)
    : conn_(std::move(socket), recv_timeout_ms),
      backend_(backend),
      loop_(loop),
      vrings_(backend.num_queues()),
      shmem_regions_(backend.shmem_regions()) {
  if (shmem_regions_.size() > kMaxShmemRegions) shmem_regions_.resize(kMaxShmemRegions);
}

Session::~Session() {
  close();
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  for (size_t i = 0; i < vrings_.size(); ++i) stop_ring(i);  // kick fds leave the loop before being closed
  backend_.reset();                                          // may still ask the frontend to unmap, best effort
  backend_.set_shmem_mapper(nullptr);
  backend_.set_shared_objects(nullptr);
  channel_.reset();  // pending callbacks are dropped: the device state they touch is gone
  vrings_.clear();
  mem_.clear();
  conn_.close();
}

uint64_t Session::offered_protocol_features() const {
  const bool shmem = std::any_of(shmem_regions_.begin(), shmem_regions_.end(), [](uint64_t s) { return s != 0; });
  return kOfferedProtocolFeatures | (shmem ? kShmemProtocolFeatures : 0) |
         (backend_.shares_objects() ? kSharedObjectProtocolFeatures : 0) |
         (backend_.saves_state() ? kDeviceStateProtocolFeatures : 0);
}

void Session::on_backend_channel(uint32_t events) {
  if (channel_) channel_->on_readable(events);
}

void Session::on_backend_timer() {
  if (channel_) channel_->on_timer();
}

uint64_t Session::offered_features() const {
  return backend_.features() | kFeatureProtocolFeatures;
}

bool Session::ring_running(size_t index) const {
  return index < vrings_.size() && vrings_[index].queue;
}

// ---------------------------------------------------------------------------------------------------------
// Handlers

Session::Outcome Session::on_get_features(Message& /*msg*/) {
  return Reply(bytes_of(offered_features()));
}

Session::Outcome Session::on_set_features(const uint64_t& v, Message& /*msg*/) {
  if (const uint64_t extra = v & ~offered_features(); extra != 0) {
    VGPU_LOG_DEBUG("vhost-user: SET_FEATURES: ignoring bits 0x{:x} never offered", extra);
  }
  acked_features_ = v & offered_features();
  backend_.set_acked_features(acked_features_ & ~kFeatureProtocolFeatures);
  // Without VHOST_USER_F_PROTOCOL_FEATURES every ring counts as enabled: one that has a kick fd starts now.
  for (size_t i = 0; i < vrings_.size(); ++i) {
    if (auto r = start_if_ready(i); !r) return fail(std::move(r.error()));
  }
  return Reply{};
}

Session::Outcome Session::on_set_owner(Message& /*msg*/) {
  return Reply{};
}

// vhost-user.rst: RESET_OWNER is deprecated; "back-ends either ignore this message, or use it to disable all
// rings". We disable and stop all rings and reset the device (QEMU <= 7.2 sent it in place of RESET_DEVICE);
// memory, call fds and negotiated features stay.
Session::Outcome Session::on_reset_owner(Message& /*msg*/) {
  reset_device("RESET_OWNER");
  return Reply{};
}

// vhost-user.rst, RESET_DEVICE: "disable all rings and reset all internal device state to the initial state,
// ready to be reinitialized. The back-end retains ownership of the device throughout the reset operation."
// QEMU >= 8.2 sends it from virtio_reset() when the protocol feature is negotiated: a guest device reset (the
// driver unbound, a reboot), never a VM pause (which only stops the rings and sets status 0, ignored above).
// Memory, call fds and the backend channel stay: QEMU sets features and rings up again at the next start.
Session::Outcome Session::on_reset_device(Message& /*msg*/) {
  reset_device("RESET_DEVICE");
  return Reply{};
}

void Session::reset_device(std::string_view why) {
  for (size_t i = 0; i < vrings_.size(); ++i) {
    stop_ring(i);
    vrings_[i].kick.reset();
    vrings_[i].enabled = false;
  }
  backend_.reset();
  VGPU_LOG_INFO("device reset by the frontend ({}): rings stopped, every resource, context, mapping and fence dropped",
                why);
}

Session::Outcome Session::on_set_mem_table(const MemoryTableHeader& h, Message& msg) {
  // Build the whole new table first, so a failure leaves the old one in place (the session breaks anyway).
  GuestMemory next;
  for (uint32_t i = 0; i < h.nregions; ++i) {
    const auto r = copy_from<MemoryRegion>(msg.payload, sizeof(MemoryTableHeader) + i * sizeof(MemoryRegion));
    auto mapped = map_region(r, msg.fds[i].get());
    if (!mapped) return fatal(SessionError::MemoryMap, fmt::format("region {}: {}", i, mapped.error()));
    if (auto added = next.add_region(std::move(*mapped)); !added) {
      return fatal(SessionError::MemoryMap, fmt::format("region {}: {}", i, to_string(added.error())));
    }
  }
  backend_.on_memory_changing();  // the old mappings go with the assignment below
  mem_ = std::move(next);         // the same GuestMemory object: running queues keep pointing at it
  VGPU_LOG_DEBUG("vhost-user: guest memory replaced: {} regions", mem_.region_count());
  refresh_rings_after_memory_change();
  return Reply{};
}

// SET_VRING_NUM, _ADDR and _BASE: their validators checked that the ring is stopped.
Session::Outcome Session::on_set_vring_num(const VringState& s, Message& /*msg*/) {
  vrings_[s.index].num = static_cast<uint16_t>(s.num);
  return Reply{};
}

Session::Outcome Session::on_set_vring_addr(const VringAddr& a, Message& /*msg*/) {
  vrings_[a.index].addr = a;
  return Reply{};
}

Session::Outcome Session::on_set_vring_base(const VringState& s, Message& /*msg*/) {
  vrings_[s.index].base = static_cast<uint16_t>(s.num);
  return Reply{};
}

// vhost-user.rst: "stop a ring upon receiving VHOST_USER_GET_VRING_BASE"; the reply carries the index of the
// next avail entry to process, from which a later SET_VRING_BASE resumes.
Session::Outcome Session::on_get_vring_base(const VringState& s, Message& /*msg*/) {
  stop_ring(s.index);
  Vring& vr = vrings_[s.index];
  vr.kick.reset();
  return Reply(bytes_of(VringState{s.index, vr.base}));
}

Session::Outcome Session::on_set_vring_kick(const uint64_t& v, Message& msg) {
  const auto index = static_cast<size_t>(v & kVringIndexMask);
  Vring& vr = vrings_[index];
  if ((v & kVringNoFdFlag) != 0) {
    // "Polling should be used instead of waiting for the kick": we do not poll, so the ring stops until a
    // kick fd comes again.
    stop_ring(index);
    vr.kick.reset();
    return Reply{};
  }
  if (!vr.queue) {
    vr.kick = std::move(msg.fds[0]);
    if (auto r = start_if_ready(index); !r) return fail(std::move(r.error()));
    return Reply{};
  }
  // A running ring gets a new kick fd: swap it in the loop, and look at the ring once in case the driver
  // kicked the old one last.
  loop_.remove(vr.kick.get());
  vr.kick = std::move(msg.fds[0]);
  if (auto r = loop_.add(vr.kick.get(), {Token::QueueKick, static_cast<uint32_t>(index)}, EPOLLIN); !r) {
    return fatal(SessionError::RingStart,
                 fmt::format("ring {}: kick fd cannot be polled: {}", index, std::strerror(r.error())));
  }
  const uint64_t one = 1;
  (void)!::write(vr.kick.get(), &one, sizeof(one));
  return Reply{};
}

Session::Outcome Session::on_set_vring_call(const uint64_t& v, Message& msg) {
  // Takes effect at once, also on a running ring: QEMU switches between the guest notifier and its masked
  // notifier while the guest masks and unmasks interrupt vectors.
  Vring& vr = vrings_[v & kVringIndexMask];
  vr.call = (v & kVringNoFdFlag) != 0 ? UniqueFd() : std::move(msg.fds[0]);
  return Reply{};
}

Session::Outcome Session::on_set_vring_err(const uint64_t& v, Message& msg) {
  // Kept for the ring's lifetime; we have no error to report through it yet.
  Vring& vr = vrings_[v & kVringIndexMask];
  vr.err = (v & kVringNoFdFlag) != 0 ? UniqueFd() : std::move(msg.fds[0]);
  return Reply{};
}

Session::Outcome Session::on_get_protocol_features(Message& /*msg*/) {
  return Reply(bytes_of(offered_protocol_features()));
}

Session::Outcome Session::on_set_protocol_features(const uint64_t& v, Message& /*msg*/) {
  acked_protocol_features_ = v;
  return Reply{};
}

Session::Outcome Session::on_get_queue_num(Message& /*msg*/) {
  return Reply(bytes_of(uint64_t{backend_.num_queues()}));
}

Session::Outcome Session::on_set_vring_enable(const VringState& s, Message& /*msg*/) {
  Vring& vr = vrings_[s.index];
  vr.enabled = s.num == 1;
  if (!vr.enabled) {
    // A disabled ring must be processed "without side effects"; every virtio-gpu command has side effects,
    // so a disabled ring is stopped, and resumes at its next_avail when enabled again.
    stop_ring(s.index);
    return Reply{};
  }
  if (auto r = start_if_ready(s.index); !r) return fail(std::move(r.error()));
  return Reply{};
}

Session::Outcome Session::on_set_backend_req_fd(Message& msg) {
  if (!is_socket(msg.fds[0].get())) return fatal(SessionError::InvalidPayload, "the fd is not a socket");
  // A new channel replaces the old one: requests pending there will never be answered.
  backend_.set_shmem_mapper(nullptr);
  backend_.set_shared_objects(nullptr);
  if (channel_) channel_->close(BackendReply::ChannelLost);
  channel_ = std::make_unique<BackendChannel>(std::move(msg.fds[0]), loop_);
  // Only a frontend that negotiated SHMEM maps anything for us (and only it has the regions it asked for).
  if ((acked_protocol_features_ & bit(ProtocolFeature::Shmem)) != 0 && channel_->open()) {
    backend_.set_shmem_mapper(channel_.get());
  }
  if ((acked_protocol_features_ & bit(ProtocolFeature::SharedObject)) != 0 && channel_->open()) {
    backend_.set_shared_objects(channel_.get());
  }
  return Reply{};
}

Session::Outcome Session::on_get_config(const ConfigHeader& h, Message& /*msg*/) {
  std::vector<std::byte> reply(sizeof(ConfigHeader) + h.size);
  if (!backend_.read_config(h.offset, std::span(reply).subspan(sizeof(ConfigHeader)))) {
    // vhost-user.rst: the back-end "uses zero length of payload to indicate an error".
    VGPU_LOG_WARN("vhost-user: GET_CONFIG offset {} size {} refused by the device", h.offset, h.size);
    return Reply(bytes_of(ConfigHeader{h.offset, 0, h.flags}));
  }
  std::memcpy(reply.data(), &h, sizeof(h));
  return Reply(std::move(reply));
}

Session::Outcome Session::on_set_config(const ConfigHeader& h, Message& msg) {
  const auto data = std::span<const std::byte>(msg.payload).subspan(sizeof(ConfigHeader), h.size);
  if (!backend_.write_config(h.offset, data)) {
    return refused(fmt::format("device refused a write of {} bytes at offset {}", h.size, h.offset));
  }
  return Reply{};
}

Session::Outcome Session::on_gpu_set_socket(Message& msg) {
  // QEMU sends a fresh display socket every time it starts the device (boot, resume after stop): each one
  // replaces the previous one.
  if (!is_socket(msg.fds[0].get())) return fatal(SessionError::InvalidPayload, "the fd is not a socket");
  backend_.on_display_socket(std::move(msg.fds[0]));
  return Reply{};
}

Session::Outcome Session::on_get_max_mem_slots(Message& /*msg*/) {
  return Reply(bytes_of(uint64_t{GuestMemory::kMaxRegions}));
}

Session::Outcome Session::on_add_mem_reg(const SingleMemoryRegion& r, Message& msg) {
  auto mapped = map_region(r.region, msg.fds[0].get());
  if (!mapped) return fatal(SessionError::MemoryMap, mapped.error());
  if (auto added = mem_.add_region(std::move(*mapped)); !added) {
    return fatal(SessionError::MemoryMap, std::string(to_string(added.error())));
  }
  refresh_rings_after_memory_change();
  return Reply{};
}

Session::Outcome Session::on_rem_mem_reg(const SingleMemoryRegion& r, Message& /*msg*/) {
  backend_.on_memory_changing();
  if (auto removed = mem_.remove_region(region_desc(r.region)); !removed) {
    return fatal(SessionError::MemoryMap, fmt::format("guest address 0x{:x} size 0x{:x}: {}", r.region.guest_phys_addr,
                                                      r.region.memory_size, to_string(removed.error())));
  }
  refresh_rings_after_memory_change();
  return Reply{};
}

// Stored and reported back only. QEMU sets 0 whenever it stops the device, for a VM pause as much as for a
// guest reset, so 0 must not drop device state.
Session::Outcome Session::on_set_status(const uint64_t& v, Message& /*msg*/) {
  status_ = static_cast<uint8_t>(v);
  return Reply{};
}

Session::Outcome Session::on_get_status(Message& /*msg*/) {
  return Reply(bytes_of(uint64_t{status_}));
}

// vhost-user.rst, GET_SHMEM_CONFIG: the size of each region, indexed by shmid, and how many are non-zero. The
// frontend creates one PCI BAR per region from this; it is asked once and must stay valid for the connection.
// vhost-user.rst, GET_SHARED_OBJECT: the front-end asks for the buffer a UUID we announced names (another
// device's backend looked it up). The reply is a u64, 0 with the buffer's fd attached, non-zero and no fd when
// there is none: QEMU then refuses the look-up ("Failed to get dmabuf fd").
//
// QEMU up to 11.1.3 (vhost_user_get_shared_object) sends the request with header size 0: the UUID it asks about
// never reaches us. It only asks after a look-up of a UUID its table says we own, so when exactly one object is
// shared the request can only mean that one, and it is answered; with several it cannot be told which, and it
// is refused (never a guess). One warning says so; the session goes on either way.
Session::Outcome Session::on_get_shared_object(Message& msg) {
  ObjectUuid uuid{};
  if (msg.payload.empty()) {
    if (!std::exchange(warned_sizeless_get_shared_object_, true)) {
      VGPU_LOG_WARN(
          "vhost-user: GET_SHARED_OBJECT without its UUID (a QEMU bug up to 11.1.3 at least): answered only while "
          "this device shares exactly one object");
    }
    auto only = backend_.only_shared_object();
    if (!only) return refused(fmt::format("GET_SHARED_OBJECT without a UUID: {}", only.error()));
    uuid = *only;
  } else if (msg.payload.size() == uuid.size()) {
    std::memcpy(uuid.data(), msg.payload.data(), uuid.size());
  } else {
    return refused(fmt::format("a {}-byte payload (a UUID is 16 bytes)", msg.payload.size()));
  }
  auto fd = backend_.shared_object_fd(uuid);
  if (!fd) return refused(fmt::format("no shared object {}: {}", vgpu::to_string(uuid), fd.error()));
  VGPU_LOG_INFO("vhost-user: GET_SHARED_OBJECT {}: the buffer's fd goes to the frontend", vgpu::to_string(uuid));
  reply_fd_ = std::move(*fd);
  return Reply(bytes_of(uint64_t{0}));
}

Session::Outcome Session::on_get_shmem_config(Message& /*msg*/) {
  ShmemConfig config{};
  for (size_t i = 0; i < shmem_regions_.size(); ++i) {
    config.memory_sizes[i] = shmem_regions_[i];
    if (shmem_regions_[i] != 0) ++config.nregions;
  }
  return Reply(bytes_of(config));
}

}  // namespace vgpu::vhost_user

#include "vhost_user/session.h"

#include <fmt/format.h>
#include <poll.h>
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

// One row of the request table: how a request must look, what it depends on, and who handles it. The field
// order follows the table's columns (readability over the 8 padding bytes per row).
struct Session::RequestSpec {  // NOLINT(clang-analyzer-optin.performance.Padding)
  enum class Payload : uint8_t {
    Fixed,    // exactly `size` bytes
    AtLeast,  // a `size`-byte header whose contents say how many bytes follow (validate() checks the total)
    Any,      // not implemented here: any size up to kMaxPayloadSize is read and dropped
  };
  enum class Gate : uint8_t {
    None,
    ProtocolFeaturesAcked,  // VHOST_USER_F_PROTOCOL_FEATURES acknowledged with SET_FEATURES
    Protocol,               // protocol feature `feature` acknowledged with SET_PROTOCOL_FEATURES
    NotOffered,             // needs a protocol feature we never offer: always refused
  };

  FrontendRequest request;
  Payload payload;
  uint32_t size;
  uint8_t min_fds;
  uint8_t max_fds;  // the exact count, where it depends on the payload, is checked by validate()
  Gate gate;
  // Gate::Protocol: the feature; Gate::NotOffered: the one the request would need, where there is one.
  std::optional<ProtocolFeature> feature;
  bool own_reply;  // the request has a reply of its own (REPLY_ACK does not apply)
  Outcome (Session::*run)(const RequestSpec&, Message&);
};

namespace {

constexpr uint64_t feature_bit(unsigned n) {
  return uint64_t{1} << n;
}

// Ring feature bits (virtio 1.x section 6; <linux/virtio_ring.h> has them too, but is not valid C++).
constexpr unsigned kVirtioRingFIndirectDesc = 28;
constexpr unsigned kVirtioRingFEventIdx = 29;

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

template <class T>
std::vector<std::byte> bytes_of(const T& value) {
  std::vector<std::byte> out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

template <class T>
T copy_from(std::span<const std::byte> bytes, size_t offset) {
  T out{};
  std::memcpy(&out, bytes.data() + offset, sizeof(T));
  return out;
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

// What an fd refers to, as /proc/self/fd names it ("anon_inode:[eventfd]", "socket:[123]", "/memfd:x", ...);
// empty when /proc cannot tell.
std::string fd_target(int fd) {
  char buf[128];
  const std::string link = fmt::format("/proc/self/fd/{}", fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
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

bool same_rings(const QueueConfig& a, const QueueConfig& b) {
  return a.size == b.size && a.desc == b.desc && a.avail == b.avail && a.used == b.used;
}

}  // namespace

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
// The pipeline

const Session::RequestSpec* Session::find_spec(uint32_t request) {
  using R = FrontendRequest;
  using P = RequestSpec::Payload;
  using G = RequestSpec::Gate;
  using F = ProtocolFeature;
  constexpr auto kAnyFds = static_cast<uint8_t>(kMaxFds);
  constexpr auto kRegionsFds = static_cast<uint8_t>(kMaxMemTableRegions);
  constexpr auto refuse = &Session::refuse_unimplemented;
  // clang-format off
  static constexpr RequestSpec kSpecs[] = {
    {R::GetFeatures,         P::Fixed,   0,  0, 0, G::None, {}, true,  &Session::plain<&Session::on_get_features>},
    {R::SetFeatures,         P::Fixed,   8,  0, 0, G::None, {}, false,
     &Session::typed<uint64_t, &Session::check_features, &Session::on_set_features>},
    {R::SetOwner,            P::Fixed,   0,  0, 0, G::None, {}, false, &Session::plain<&Session::on_set_owner>},
    {R::ResetOwner,          P::Fixed,   0,  0, 0, G::None, {}, false, &Session::plain<&Session::on_reset_owner>},
    {R::SetMemTable,         P::AtLeast, 8,  0, kRegionsFds, G::None, {}, false,
     &Session::typed<MemoryTableHeader, &Session::check_mem_table, &Session::on_set_mem_table>},
    {R::SetLogBase,          P::Any,     0,  0, kAnyFds, G::NotOffered, F::LogShmfd, true,  refuse},
    {R::SetLogFd,            P::Any,     0,  0, kAnyFds, G::NotOffered, F::LogShmfd, false, refuse},
    {R::SetVringNum,         P::Fixed,   8,  0, 0, G::None, {}, false,
     &Session::typed<VringState, &Session::check_vring_num, &Session::on_set_vring_num>},
    {R::SetVringAddr,        P::Fixed,   40, 0, 0, G::None, {}, false,
     &Session::typed<VringAddr, &Session::check_vring_addr, &Session::on_set_vring_addr>},
    {R::SetVringBase,        P::Fixed,   8,  0, 0, G::None, {}, false,
     &Session::typed<VringState, &Session::check_vring_base, &Session::on_set_vring_base>},
    {R::GetVringBase,        P::Fixed,   8,  0, 0, G::None, {}, true,
     &Session::typed<VringState, &Session::check_vring_index, &Session::on_get_vring_base>},
    {R::SetVringKick,        P::Fixed,   8,  0, 1, G::None, {}, false,
     &Session::typed<uint64_t, &Session::check_vring_file, &Session::on_set_vring_kick>},
    {R::SetVringCall,        P::Fixed,   8,  0, 1, G::None, {}, false,
     &Session::typed<uint64_t, &Session::check_vring_file, &Session::on_set_vring_call>},
    {R::SetVringErr,         P::Fixed,   8,  0, 1, G::None, {}, false,
     &Session::typed<uint64_t, &Session::check_vring_file, &Session::on_set_vring_err>},
    {R::GetProtocolFeatures, P::Fixed,   0,  0, 0, G::None, {}, true,
     &Session::plain<&Session::on_get_protocol_features>},
    {R::SetProtocolFeatures, P::Fixed,   8,  0, 0, G::None, {}, false,
     &Session::typed<uint64_t, &Session::check_protocol_features, &Session::on_set_protocol_features>},
    {R::GetQueueNum,         P::Fixed,   0,  0, 0, G::Protocol, F::Mq, true, &Session::plain<&Session::on_get_queue_num>},
    {R::SetVringEnable,      P::Fixed,   8,  0, 0, G::ProtocolFeaturesAcked, {}, false,
     &Session::typed<VringState, &Session::check_vring_enable, &Session::on_set_vring_enable>},
    {R::SendRarp,            P::Any,     0,  0, kAnyFds, G::NotOffered, F::Rarp, false, refuse},
    {R::NetSetMtu,           P::Any,     0,  0, kAnyFds, G::NotOffered, F::NetMtu, false, refuse},
    {R::SetBackendReqFd,     P::Fixed,   0,  1, 1, G::Protocol, F::BackendReq, false,
     &Session::plain<&Session::on_set_backend_req_fd>},
    {R::IotlbMsg,            P::Any,     0,  0, kAnyFds, G::NotOffered, F::BackendReq, false, refuse},
    {R::SetVringEndian,      P::Any,     0,  0, kAnyFds, G::NotOffered, F::CrossEndian, false, refuse},
    {R::GetConfig,           P::AtLeast, 12, 0, 0, G::Protocol, F::Config, true,
     &Session::typed<ConfigHeader, &Session::check_config, &Session::on_get_config>},
    {R::SetConfig,           P::AtLeast, 12, 0, 0, G::Protocol, F::Config, false,
     &Session::typed<ConfigHeader, &Session::check_config, &Session::on_set_config>},
    {R::CreateCryptoSession, P::Any,     0,  0, kAnyFds, G::NotOffered, F::CryptoSession, true, refuse},
    {R::CloseCryptoSession,  P::Any,     0,  0, kAnyFds, G::NotOffered, F::CryptoSession, false, refuse},
    {R::PostcopyAdvise,      P::Any,     0,  0, kAnyFds, G::NotOffered, F::Pagefault, true, refuse},
    {R::PostcopyListen,      P::Any,     0,  0, kAnyFds, G::NotOffered, F::Pagefault, false, refuse},
    {R::PostcopyEnd,         P::Any,     0,  0, kAnyFds, G::NotOffered, F::Pagefault, true, refuse},
    {R::GetInflightFd,       P::Any,     0,  0, kAnyFds, G::NotOffered, F::InflightShmfd, true, refuse},
    {R::SetInflightFd,       P::Any,     0,  0, kAnyFds, G::NotOffered, F::InflightShmfd, false, refuse},
    {R::GpuSetSocket,        P::Fixed,   0,  1, 1, G::None, {}, false, &Session::plain<&Session::on_gpu_set_socket>},
    {R::ResetDevice,         P::Fixed,   0,  0, 0, G::Protocol, F::ResetDevice, false,
     &Session::plain<&Session::on_reset_device>},
    {R::VringKick,           P::Any,     0,  0, kAnyFds, G::NotOffered, F::InbandNotifications, false, refuse},
    {R::GetMaxMemSlots,      P::Fixed,   0,  0, 0, G::Protocol, F::ConfigureMemSlots, true,
     &Session::plain<&Session::on_get_max_mem_slots>},
    {R::AddMemReg,           P::Fixed,   40, 1, 1, G::Protocol, F::ConfigureMemSlots, false,
     &Session::typed<SingleMemoryRegion, &Session::check_single_region, &Session::on_add_mem_reg>},
    // QEMU sends REM_MEM_REG with or without the region's fd depending on the release (libvhost-user accepts
    // "at most 1"); one that comes is closed unused.
    {R::RemMemReg,           P::Fixed,   40, 0, 1, G::Protocol, F::ConfigureMemSlots, false,
     &Session::typed<SingleMemoryRegion, &Session::check_single_region, &Session::on_rem_mem_reg>},
    {R::SetStatus,           P::Fixed,   8,  0, 0, G::Protocol, F::Status, false,
     &Session::typed<uint64_t, &Session::check_status, &Session::on_set_status>},
    {R::GetStatus,           P::Fixed,   0,  0, 0, G::Protocol, F::Status, true, &Session::plain<&Session::on_get_status>},
    // Any: QEMU up to 11.1.3 sends it without its 16-byte payload (on_get_shared_object says what then).
    {R::GetSharedObject,     P::Any,     0,  0, 0, G::Protocol, F::SharedObject, true,
     &Session::plain<&Session::on_get_shared_object>},
    {R::SetDeviceStateFd,    P::Fixed,   8,  1, 1, G::Protocol, F::DeviceState, true,
     &Session::typed<DeviceStateTransfer, &Session::check_device_state_transfer, &Session::on_set_device_state_fd>},
    {R::CheckDeviceState,    P::Fixed,   0,  0, 0, G::Protocol, F::DeviceState, true,
     &Session::plain<&Session::on_check_device_state>},
    {R::GetShmemConfig,      P::Fixed,   0,  0, 0, G::Protocol, F::Shmem, true,
     &Session::plain<&Session::on_get_shmem_config>},
  };
  // clang-format on
  for (const RequestSpec& s : kSpecs) {
    if (static_cast<uint32_t>(s.request) == request) return &s;
  }
  return nullptr;
}

Result<void, SessionError> Session::on_readable() {
  if (error_) return fail(*error_);
  if (closed_) return latch(SessionError::Disconnected, "");
  // Bounded, so that a frontend streaming messages cannot starve the rings; a level-triggered poll reports
  // the socket again for the rest.
  for (int handled = 0; handled < kMaxMessagesPerWakeup; ++handled) {
    auto msg = conn_.receive();
    if (!msg) {
      const TransportError e = msg.error();
      if (e == TransportError::Disconnected) return latch(SessionError::Disconnected, "");
      if (e == TransportError::Io) {
        return latch(SessionError::Transport, fmt::format("{}: {}", to_string(e), std::strerror(conn_.last_errno())));
      }
      return latch(SessionError::Transport, std::string(to_string(e)));
    }
    if (!*msg) return {};
    if (auto r = handle(**msg); !r) return r;
  }
  return {};
}

Result<void, SessionError> Session::handle(Message& msg) {
  const RequestSpec* spec = find_spec(msg.header.request);
  VGPU_LOG_DEBUG("vhost-user: <- {} ({} bytes, {} fds{})", request_name(msg.header.request), msg.payload.size(),
                 msg.fds.size(), (msg.header.flags & kFlagNeedReply) != 0 ? ", need reply" : "");
  Outcome outcome = run_pipeline(spec, msg);
  return finish(spec, msg, std::move(outcome));
}

Session::Outcome Session::run_pipeline(const RequestSpec* spec, Message& msg) {
  const MessageHeader& h = msg.header;
  if ((h.flags & kVersionMask) != kVersion1) {
    return fatal(SessionError::BadHeader, fmt::format("version {} (expected 1)", h.flags & kVersionMask));
  }
  if ((h.flags & ~kRequestFlags) != 0) {
    return fatal(SessionError::BadHeader, fmt::format("flags 0x{:x}: reply or reserved bits set", h.flags));
  }
  if (spec == nullptr) return refused("unknown request");
  if (msg.fds.size() < spec->min_fds || msg.fds.size() > spec->max_fds) {
    const std::string expected = spec->min_fds == spec->max_fds ? fmt::format("{}", spec->min_fds)
                                                                : fmt::format("{} to {}", spec->min_fds, spec->max_fds);
    return fatal(SessionError::WrongFdCount, fmt::format("{} fds, expected {}", msg.fds.size(), expected));
  }
  const size_t size = msg.payload.size();
  if (spec->payload == RequestSpec::Payload::Fixed && size != spec->size) {
    return fatal(SessionError::WrongPayloadSize, fmt::format("{} bytes, expected {}", size, spec->size));
  }
  if (spec->payload == RequestSpec::Payload::AtLeast && size < spec->size) {
    return fatal(SessionError::WrongPayloadSize, fmt::format("{} bytes, expected at least {}", size, spec->size));
  }
  return (this->*spec->run)(*spec, msg);
}

template <class P, Session::Validator<P> V, Session::TypedHandler<P> H>
Session::Outcome Session::typed(const RequestSpec& spec, Message& msg) {
  // The pipeline checked the size against the table; this keeps the copy in bounds even if the table lied.
  if (msg.payload.size() < sizeof(P)) {
    return fatal(SessionError::WrongPayloadSize, fmt::format("{} bytes, expected {}", msg.payload.size(), sizeof(P)));
  }
  const P payload = copy_from<P>(msg.payload, 0);
  if (auto v = (this->*V)(payload, msg); !v) return fail(std::move(v.error()));
  if (!gate_open(spec)) return refused(gate_name(spec));
  return (this->*H)(payload, msg);
}

template <Session::PlainHandler H>
Session::Outcome Session::plain(const RequestSpec& spec, Message& msg) {
  if (!gate_open(spec)) return refused(gate_name(spec));
  return (this->*H)(msg);
}

Session::Outcome Session::refuse_unimplemented(const RequestSpec& spec, Message& /*msg*/) {
  return refused(gate_name(spec));
}

bool Session::gate_open(const RequestSpec& spec) const {
  switch (spec.gate) {
    case RequestSpec::Gate::None: return true;
    case RequestSpec::Gate::ProtocolFeaturesAcked: return protocol_features_acked();
    case RequestSpec::Gate::Protocol: return spec.feature && (acked_protocol_features_ & bit(*spec.feature)) != 0;
    case RequestSpec::Gate::NotOffered: return false;
  }
  return false;
}

std::string Session::gate_name(const RequestSpec& spec) const {
  switch (spec.gate) {
    case RequestSpec::Gate::None: return "";
    case RequestSpec::Gate::ProtocolFeaturesAcked: return "needs VHOST_USER_F_PROTOCOL_FEATURES, not negotiated";
    case RequestSpec::Gate::Protocol:
      return fmt::format("needs protocol feature {}, not negotiated",
                         spec.feature ? protocol_feature_name(*spec.feature) : "?");
    case RequestSpec::Gate::NotOffered:
      if (!spec.feature) return "not implemented";
      return fmt::format("not implemented (needs protocol feature {}, not offered)",
                         static_cast<uint32_t>(*spec.feature));
  }
  return "";
}

Result<void, SessionError> Session::finish(const RequestSpec* spec, const Message& msg, Outcome outcome) {
  const MessageHeader& h = msg.header;
  const bool own_reply = spec != nullptr && spec->own_reply;
  // vhost-user.rst, REPLY_ACK: for a request without a reply of its own, the back-end MUST answer a u64
  // (0: success, non-zero: failure) when need_reply is set; requests with their own reply ignore the flag.
  const bool ack =
      !own_reply && (h.flags & kFlagNeedReply) != 0 && (acked_protocol_features_ & bit(ProtocolFeature::ReplyAck)) != 0;
  if (outcome) {
    if (own_reply && *outcome) {
      auto sent = reply(h, **outcome);
      if (auto after = std::exchange(after_reply_, nullptr); after && sent) after();
      return sent;
    }
    if (ack) return reply(h, bytes_of(uint64_t{0}));
    return {};
  }
  Failure& f = outcome.error();
  if (!f.fatal) {
    VGPU_LOG_WARN("vhost-user: refusing {}: {}", request_name(h.request), f.detail);
    if (own_reply && spec->request == FrontendRequest::GetConfig) {
      // vhost-user.rst, GET_CONFIG: the back-end "uses zero length of payload to indicate an error".
      ConfigHeader cfg = copy_from<ConfigHeader>(msg.payload, 0);  // size checked: refusals come after it
      cfg.size = 0;
      return reply(h, bytes_of(cfg));
    }
    if (own_reply || ack) return reply(h, bytes_of(uint64_t{1}));
    return {};
  }
  if (ack) (void)conn_.send_reply(h.request, bytes_of(uint64_t{1}));  // best effort: the connection goes next
  return latch(*f.fatal, fmt::format("{}: {}", request_name(h.request), f.detail));
}

Result<void, SessionError> Session::reply(const MessageHeader& request, std::span<const std::byte> payload) {
  const UniqueFd fd = std::move(reply_fd_);  // sent with this reply or not at all, closed here either way
  const int fds[1] = {fd.get()};             // NOLINT(*-avoid-c-arrays)
  const MessageHeader header{request.request, kVersion1 | kFlagReply, static_cast<uint32_t>(payload.size())};
  if (auto r = fd ? conn_.send(header, payload, fds) : conn_.send_reply(request.request, payload); !r) {
    return latch(SessionError::Transport,
                 fmt::format("reply to {}: {}", request_name(request.request), to_string(r.error())));
  }
  return {};
}

Result<void, SessionError> Session::latch(SessionError e, const std::string& detail) {
  if (!error_) {
    error_ = e;
    error_detail_ = detail.empty() ? std::string() : ": " + detail;
  }
  return fail(*error_);
}

// ---------------------------------------------------------------------------------------------------------
// Validators: each sees a host copy of the payload (and the message, for variable sizes and fd counts).

Result<void, Session::Failure> Session::check_features(const uint64_t& v, const Message& /*msg*/) const {
  // vhost-user.rst, SET_FEATURES: the front-end acknowledges what GET_FEATURES offered. Real frontends also
  // pass bits they handle themselves (QEMU 10.0 sets VIRTIO_F_RING_RESET, bit 40, for vhost-user-gpu-pci),
  // so bits never offered are ignored (masked off in the handler and logged there), not fatal.
  (void)v;
  return {};
}

Result<void, Session::Failure> Session::check_protocol_features(const uint64_t& v, const Message& /*msg*/) const {
  if (const uint64_t extra = v & ~offered_protocol_features(); extra != 0) {
    return fatal(SessionError::InvalidPayload,
                 fmt::format("acknowledges protocol feature bits 0x{:x} never offered", extra));
  }
  return {};
}

Result<void, Session::Failure> Session::check_mem_table(const MemoryTableHeader& h, const Message& msg) const {
  if (h.nregions > kMaxMemTableRegions) {
    return fatal(SessionError::InvalidPayload, fmt::format("{} regions (at most {})", h.nregions, kMaxMemTableRegions));
  }
  const size_t expected = sizeof(MemoryTableHeader) + size_t{h.nregions} * sizeof(MemoryRegion);
  if (msg.payload.size() != expected) {
    return fatal(SessionError::WrongPayloadSize,
                 fmt::format("{} bytes for {} regions, expected {}", msg.payload.size(), h.nregions, expected));
  }
  if (msg.fds.size() != h.nregions) {
    return fatal(SessionError::WrongFdCount, fmt::format("{} fds for {} regions", msg.fds.size(), h.nregions));
  }
  if (h.padding != 0) return fatal(SessionError::InvalidPayload, "non-zero padding");
  for (uint32_t i = 0; i < h.nregions; ++i) {
    const auto r = copy_from<MemoryRegion>(msg.payload, sizeof(MemoryTableHeader) + i * sizeof(MemoryRegion));
    if (auto problem = region_problem(r)) {
      return fatal(SessionError::InvalidPayload, fmt::format("region {}: {}", i, *problem));
    }
  }
  return {};
}

Result<void, Session::Failure> Session::check_vring_index(const VringState& s, const Message& /*msg*/) const {
  if (s.index >= vrings_.size()) {
    return fatal(SessionError::InvalidPayload,
                 fmt::format("ring index {} out of range ({} queues)", s.index, vrings_.size()));
  }
  return {};
}

Result<void, Session::Failure> Session::check_vring_num(const VringState& s, const Message& msg) const {
  if (auto r = check_vring_index(s, msg); !r) return r;
  // Split virtqueues (virtio 1.x 2.7): Queue Size is a power of 2, at most 32768; and at most what the device takes.
  if (s.num == 0 || !std::has_single_bit(s.num) || s.num > backend_.max_queue_size()) {
    return fatal(SessionError::InvalidPayload, fmt::format("ring {}: size {} is not a power of two in 1..{}", s.index,
                                                           s.num, backend_.max_queue_size()));
  }
  return {};
}

Result<void, Session::Failure> Session::check_vring_base(const VringState& s, const Message& msg) const {
  if (auto r = check_vring_index(s, msg); !r) return r;
  // Split rings: the base is the 16-bit index of the next avail entry (packed rings are not offered).
  if (s.num > UINT16_MAX) {
    return fatal(SessionError::InvalidPayload, fmt::format("ring {}: base {} exceeds 16 bits", s.index, s.num));
  }
  return {};
}

Result<void, Session::Failure> Session::check_vring_enable(const VringState& s, const Message& msg) const {
  if (auto r = check_vring_index(s, msg); !r) return r;
  if (s.num > 1) return fatal(SessionError::InvalidPayload, fmt::format("ring {}: enable {} (0 or 1)", s.index, s.num));
  return {};
}

Result<void, Session::Failure> Session::check_vring_addr(const VringAddr& a, const Message& /*msg*/) const {
  if (a.index >= vrings_.size()) {
    return fatal(SessionError::InvalidPayload,
                 fmt::format("ring index {} out of range ({} queues)", a.index, vrings_.size()));
  }
  // VHOST_VRING_F_LOG needs VHOST_F_LOG_ALL (dirty logging for migration), which is never offered.
  if (a.flags != 0) return fatal(SessionError::InvalidPayload, fmt::format("ring {}: flags 0x{:x}", a.index, a.flags));
  return {};
}

Result<void, Session::Failure> Session::check_vring_file(const uint64_t& v, const Message& msg) const {
  if ((v & kVringFileReservedMask) != 0) {
    return fatal(SessionError::InvalidPayload, fmt::format("reserved bits set in 0x{:x}", v));
  }
  const uint64_t index = v & kVringIndexMask;
  if (index >= vrings_.size()) {
    return fatal(SessionError::InvalidPayload,
                 fmt::format("ring index {} out of range ({} queues)", index, vrings_.size()));
  }
  // vhost-user.rst: bit 8 "is set when there is no file descriptor in the ancillary data".
  const size_t expected = (v & kVringNoFdFlag) != 0 ? 0 : 1;
  if (msg.fds.size() != expected) {
    return fatal(SessionError::WrongFdCount,
                 fmt::format("ring {}: {} fds, expected {} (no-fd flag {})", index, msg.fds.size(), expected,
                             (v & kVringNoFdFlag) != 0 ? "set" : "clear"));
  }
  if (expected == 1) {
    if (auto what = not_an_eventfd(msg.fds[0].get())) {
      return fatal(SessionError::InvalidPayload, fmt::format("ring {}: the fd is not an eventfd ({})", index, *what));
    }
  }
  return {};
}

Result<void, Session::Failure> Session::check_config(const ConfigHeader& h, const Message& msg) const {
  if (h.size > kMaxConfigSize) {
    return fatal(SessionError::InvalidPayload, fmt::format("config size {} (at most {})", h.size, kMaxConfigSize));
  }
  if (msg.payload.size() != sizeof(ConfigHeader) + h.size) {
    return fatal(SessionError::WrongPayloadSize,
                 fmt::format("{} bytes for {} config bytes, expected {}", msg.payload.size(), h.size,
                             sizeof(ConfigHeader) + h.size));
  }
  if (!checked_add(h.offset, h.size)) {
    return fatal(SessionError::InvalidPayload, fmt::format("offset {} + size {} wraps", h.offset, h.size));
  }
  if (h.flags != kConfigTypeFrontend && h.flags != kConfigTypeMigration) {
    return fatal(SessionError::InvalidPayload, fmt::format("config flags 0x{:x}", h.flags));
  }
  return {};
}

Result<void, Session::Failure> Session::check_single_region(const SingleMemoryRegion& r, const Message& /*msg*/) const {
  if (r.padding != 0) return fatal(SessionError::InvalidPayload, "non-zero padding");
  if (auto problem = region_problem(r.region)) return fatal(SessionError::InvalidPayload, *problem);
  return {};
}

Result<void, Session::Failure> Session::check_status(const uint64_t& v, const Message& /*msg*/) const {
  if (v > UINT8_MAX) return fatal(SessionError::InvalidPayload, fmt::format("status 0x{:x} exceeds 8 bits", v));
  return {};
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

Session::Outcome Session::on_set_vring_num(const VringState& s, Message& /*msg*/) {
  if (vrings_[s.index].queue) return fatal(SessionError::InvalidState, fmt::format("ring {} is running", s.index));
  vrings_[s.index].num = static_cast<uint16_t>(s.num);
  return Reply{};
}

Session::Outcome Session::on_set_vring_addr(const VringAddr& a, Message& /*msg*/) {
  if (vrings_[a.index].queue) return fatal(SessionError::InvalidState, fmt::format("ring {} is running", a.index));
  vrings_[a.index].addr = a;
  return Reply{};
}

Session::Outcome Session::on_set_vring_base(const VringState& s, Message& /*msg*/) {
  if (vrings_[s.index].queue) return fatal(SessionError::InvalidState, fmt::format("ring {} is running", s.index));
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

// vhost-user.rst, SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE: the front-end hands over one end of a pipe; on save
// the back-end writes its whole state there and closes it, on load it reads until end of file; CHECK then says
// whether that worked. We use the front-end's fd (reply bit 8) and move the bytes right after the reply, from
// the event loop: the front-end reads (or writes) the pipe as soon as it has the reply. A transfer that stalls
// for kDeviceStateTimeoutMs fails; the session goes on either way.
Result<void, Session::Failure> Session::check_device_state_transfer(const DeviceStateTransfer& t,
                                                                    const Message& /*msg*/) const {
  if (t.direction != kTransferSave && t.direction != kTransferLoad) {
    return refused(fmt::format("unknown transfer direction {}", t.direction));
  }
  if (t.phase != 0) return refused(fmt::format("migration phase {} (only 0, stopped, is defined)", t.phase));
  for (size_t i = 0; i < vrings_.size(); ++i) {
    if (ring_running(i)) return refused(fmt::format("ring {} is running: the device must be stopped first", i));
  }
  return {};
}

namespace {

// Waits until `fd` is ready for `events` (POLLIN / POLLOUT); false on timeout, error or hang-up without data.
bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    return n == 1 && (p.revents & (events | POLLHUP)) != 0;
  }
}

Result<void, std::string> write_state(int fd, std::span<const std::byte> bytes, int timeout_ms) {
  // PIPE_BUF at a time: a pipe that polls writable takes that much without blocking.
  constexpr size_t kChunk = 4096;
  for (size_t done = 0; done < bytes.size();) {
    if (!wait_fd(fd, POLLOUT, timeout_ms))
      return fail(fmt::format("the frontend stopped reading after {} bytes", done));
    const ssize_t n = ::write(fd, bytes.data() + done, std::min(kChunk, bytes.size() - done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(fmt::format("write after {} bytes: {}", done, std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::vector<std::byte>, std::string> read_state(int fd, uint64_t max_bytes, int timeout_ms) {
  std::vector<std::byte> out;
  std::vector<std::byte> chunk(1 << 16);
  for (;;) {
    if (!wait_fd(fd, POLLIN, timeout_ms))
      return fail(fmt::format("the frontend stopped writing after {} bytes", out.size()));
    const ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(fmt::format("read after {} bytes: {}", out.size(), std::strerror(errno)));
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > max_bytes) return fail(fmt::format("more than {} bytes", max_bytes));
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
}

}  // namespace

Session::Outcome Session::on_set_device_state_fd(const DeviceStateTransfer& t, Message& msg) {
  auto fd = std::make_shared<UniqueFd>(std::move(msg.fds[0]));
  transfer_error_ = std::string("the transfer did not finish");
  if (t.direction == kTransferSave) {
    auto state = backend_.save_state();
    if (!state) {
      transfer_error_ = state.error();
      return refused(fmt::format("device state not saved: {}", state.error()));
    }
    after_reply_ = [this, fd, bytes = std::move(*state)] {
      auto written = write_state(fd->get(), bytes, kDeviceStateTimeoutMs);
      fd->reset();  // end of file for the reader
      if (!written) {
        transfer_error_ = written.error();
        VGPU_LOG_WARN("vhost-user: saving device state failed: {}", written.error());
        return;
      }
      transfer_error_.reset();
      VGPU_LOG_INFO("vhost-user: device state saved ({} bytes)", bytes.size());
    };
  } else {
    after_reply_ = [this, fd] {
      auto bytes = read_state(fd->get(), kMaxDeviceStateBytes, kDeviceStateTimeoutMs);
      fd->reset();
      if (!bytes) {
        transfer_error_ = bytes.error();
        VGPU_LOG_WARN("vhost-user: loading device state failed: {}", bytes.error());
        return;
      }
      if (auto loaded = backend_.load_state(*bytes, mem_); !loaded) {
        transfer_error_ = loaded.error();
        VGPU_LOG_WARN("vhost-user: device state refused ({} bytes): {}; the device is as it was", bytes->size(),
                      loaded.error());
        return;
      }
      transfer_error_.reset();
    };
  }
  return Reply(bytes_of(kDeviceStateUseFrontendFd));
}

Session::Outcome Session::on_check_device_state(Message& /*msg*/) {
  if (transfer_error_) {
    VGPU_LOG_WARN("vhost-user: CHECK_DEVICE_STATE: the last transfer failed: {}", *transfer_error_);
    return Reply(bytes_of(uint64_t{1}));
  }
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
  VGPU_LOG_DEBUG("vhost-user: ring {} started (size {}, base {})", index, vr.num, vr.base);
  backend_.on_queue_started(index, *vr.queue);
  // A (re)started ring resumes with what is already available, without waiting for the driver's next kick
  // (vhost-user.rst, "Starting and stopping rings"). The kick goes through the eventfd, so the first drain
  // runs from the event loop, after the frontend's remaining setup messages (QEMU sends the call fd after
  // the kick fd).
  const uint64_t one = 1;
  (void)!::write(vr.kick.get(), &one, sizeof(one));
  return {};
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

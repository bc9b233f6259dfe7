// The request pipeline every front-end message goes through: the request table (how each request must look,
// what it depends on, who handles it), header/fd/size/gate checks, the typed validators, and the reply
// (REPLY_ACK included). Handlers are in session.cc.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>

#include "common/checked.h"
#include "common/log.h"
#include "vhost_user/session.h"
#include "vhost_user/session_detail.h"

namespace vgpu::vhost_user {

using namespace session_detail;  // NOLINT(google-build-using-namespace): this file's own helpers

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
     &Session::typed<uint64_t, &Session::check_vring_file, &Session::on_set_vring_kick>},  // 0 fds: kVringNoFdFlag
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

Result<void, Session::Failure> Session::check_ring_index(uint64_t index) const {
  if (index >= vrings_.size()) {
    return fatal(SessionError::InvalidPayload,
                 fmt::format("ring index {} out of range ({} queues)", index, vrings_.size()));
  }
  return {};
}

// SET_VRING_NUM, _ADDR and _BASE describe a ring before it starts: a running Queue has read them already.
// Checked last, so a malformed value is reported as such on a running ring too.
Result<void, Session::Failure> Session::check_ring_stopped(uint32_t index) const {
  if (vrings_[index].queue) return fatal(SessionError::InvalidState, fmt::format("ring {} is running", index));
  return {};
}

Result<void, Session::Failure> Session::check_vring_index(const VringState& s, const Message& /*msg*/) const {
  return check_ring_index(s.index);
}

Result<void, Session::Failure> Session::check_vring_num(const VringState& s, const Message& msg) const {
  if (auto r = check_vring_index(s, msg); !r) return r;
  // Split virtqueues (virtio 1.x 2.7): Queue Size is a power of 2, at most 32768; and at most what the device takes.
  if (s.num == 0 || !std::has_single_bit(s.num) || s.num > backend_.max_queue_size()) {
    return fatal(SessionError::InvalidPayload, fmt::format("ring {}: size {} is not a power of two in 1..{}", s.index,
                                                           s.num, backend_.max_queue_size()));
  }
  return check_ring_stopped(s.index);
}

Result<void, Session::Failure> Session::check_vring_base(const VringState& s, const Message& msg) const {
  if (auto r = check_vring_index(s, msg); !r) return r;
  // Split rings: the base is the 16-bit index of the next avail entry (packed rings are not offered).
  if (s.num > UINT16_MAX) {
    return fatal(SessionError::InvalidPayload, fmt::format("ring {}: base {} exceeds 16 bits", s.index, s.num));
  }
  return check_ring_stopped(s.index);
}

Result<void, Session::Failure> Session::check_vring_enable(const VringState& s, const Message& msg) const {
  if (auto r = check_vring_index(s, msg); !r) return r;
  if (s.num > 1) return fatal(SessionError::InvalidPayload, fmt::format("ring {}: enable {} (0 or 1)", s.index, s.num));
  return {};
}

Result<void, Session::Failure> Session::check_vring_addr(const VringAddr& a, const Message& /*msg*/) const {
  if (auto r = check_ring_index(a.index); !r) return r;
  // VHOST_VRING_F_LOG needs VHOST_F_LOG_ALL (dirty logging for migration), which is never offered.
  if (a.flags != 0) return fatal(SessionError::InvalidPayload, fmt::format("ring {}: flags 0x{:x}", a.index, a.flags));
  return check_ring_stopped(a.index);
}

Result<void, Session::Failure> Session::check_vring_file(const uint64_t& v, const Message& msg) const {
  if ((v & kVringFileReservedMask) != 0) {
    return fatal(SessionError::InvalidPayload, fmt::format("reserved bits set in 0x{:x}", v));
  }
  const uint64_t index = v & kVringIndexMask;
  if (auto r = check_ring_index(index); !r) return r;
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

}  // namespace vgpu::vhost_user

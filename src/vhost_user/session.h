// One vhost-user frontend connection: its negotiated features, guest memory, vrings and the fixed
// validation pipeline every message goes through (CONTRIBUTING.md practice 7):
//
//   header (version 1, no reply or reserved flag bits) → known request → fd count whitelist → exact payload
//   size → copy + validate() → feature gate → one handler → reply (its own, or REPLY_ACK's u64)
//
// Outcomes, one rule: a request that is well formed but that we do not implement (an unknown id, a request
// behind a protocol feature we do not offer, or one whose feature the frontend did not negotiate) is
// *refused*: logged as a warning, its fds closed, a failure reply sent where the frontend expects one, and
// the session goes on. Anything else that is wrong (framing, header, fds, sizes, payload contents, a ring or
// memory operation that fails) is a frontend error: it *latches* the session broken, on_readable() returns
// the error, and the owner drops the connection with one log line built from to_string(error) +
// error_detail().
//
//   Session session(std::move(socket), device, loop);
//   loop.add(session.socket_fd(), {Token::FrontendSocket}, EPOLLIN);
//   ... on Token::FrontendSocket:  if (auto r = session.on_readable(); !r) drop(to_string(r.error()) +
//   session.error_detail());
//   ... on Token::QueueKick:       session.on_kick(ev.source.index);
//
// Rings (vhost-user.rst "Starting and stopping rings"): a ring starts once it has a kick fd and is enabled
// (SET_VRING_ENABLE 1 when VHOST_USER_F_PROTOCOL_FEATURES was negotiated, else implicitly). Starting
// translates the SET_VRING_ADDR frontend addresses, creates the Queue at the SET_VRING_BASE index, registers
// the kick fd as Source{Token::QueueKick, index}, calls Backend::on_queue_started, and injects one kick (the
// spec: a restarted ring resumes processing available buffers without waiting for the driver). A ring stops
// on GET_VRING_BASE (which then reports next_avail and closes the kick fd), SET_VRING_ENABLE 0, RESET_OWNER,
// a kick fd replaced by "no fd", and teardown; stopping calls Backend::on_queue_stopped and keeps next_avail
// as the base for a later restart.
//
// Memory changes (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) while rings run: queues read the rings through
// the session's one GuestMemory on every access, so a ring whose addresses still translate to the same
// guest addresses keeps running untouched. A ring whose addresses now translate elsewhere is restarted
// (stopped + started) at its next_avail; a ring whose addresses no longer translate is stopped and restarts
// by itself at the memory change that brings them back (QEMU removes regions before adding the new ones).
//
// Single-threaded: the event loop thread calls everything. Not movable: queues and interrupt callbacks point
// into the session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/event_loop.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "memory/guest_memory.h"
#include "vhost_user/backend.h"
#include "vhost_user/backend_channel.h"
#include "vhost_user/connection.h"
#include "vhost_user/message.h"
#include "virtio/queue.h"

namespace vgpu::vhost_user {

// Why a session broke. Closed set; error_detail() carries the specifics (which request, what was wrong).
enum class SessionError {
  Disconnected,      // the frontend closed the connection (the normal end of a session)
  Transport,         // socket I/O failed or timed out, too many fds, truncated control data, oversized payload
  BadHeader,         // version is not 1, or the reply flag or a reserved flag bit is set
  WrongFdCount,      // the request carries a number of fds it must not
  WrongPayloadSize,  // the payload size is not the request's exact size
  InvalidPayload,    // validate() failed: index out of range, non-zero padding, wrapping range, bad value
  InvalidState,      // the request is not allowed in the ring's current state (e.g. SET_VRING_NUM while running)
  MemoryMap,         // a memory region could not be mapped or added, or removing it failed
  RingStart,         // a ring could not be started (num or addresses missing or outside memory, kick fd not pollable)
};

std::string_view to_string(SessionError e);

class Session {
 public:
  // Protocol features offered to every frontend: only what is implemented end to end here.
  static constexpr uint64_t kOfferedProtocolFeatures = bit(ProtocolFeature::Mq) | bit(ProtocolFeature::ReplyAck) |
                                                       bit(ProtocolFeature::Config) | bit(ProtocolFeature::BackendReq) |
                                                       bit(ProtocolFeature::ConfigureMemSlots) |
                                                       bit(ProtocolFeature::Status) | bit(ProtocolFeature::ResetDevice);
  // Offered on top when the backend has shared-memory regions (Backend::shmem_regions()): GET_SHMEM_CONFIG, and
  // SHMEM_MAP / SHMEM_UNMAP on the backend channel. Bits 20 (GET_VRING_BASE_INFLIGHT) and 21 (GPA_ADDRESSES,
  // which would change what every memory-table address means) are never offered.
  static constexpr uint64_t kShmemProtocolFeatures = bit(ProtocolFeature::Shmem);
  // Offered on top when the backend exports buffers by UUID (Backend::shares_objects()): GET_SHARED_OBJECT, and
  // SHARED_OBJECT_ADD / SHARED_OBJECT_REMOVE on the backend channel.
  static constexpr uint64_t kSharedObjectProtocolFeatures = bit(ProtocolFeature::SharedObject);
  // Offered on top when the backend saves its state (Backend::saves_state()): SET_DEVICE_STATE_FD and
  // CHECK_DEVICE_STATE, in the "stopped" phase only.
  static constexpr uint64_t kDeviceStateProtocolFeatures = bit(ProtocolFeature::DeviceState);
  // The largest device state a load reads; more is refused (a frontend cannot make us buffer without bound).
  static constexpr uint64_t kMaxDeviceStateBytes = 1ull << 30;
  // How long a state transfer waits for the frontend to read or write more before it fails.
  static constexpr int kDeviceStateTimeoutMs = 10000;

  // Takes the connected frontend socket. Registers nothing with `loop` except kick fds of started rings.
  Session(UniqueFd socket, Backend& backend, EventLoop& loop, int recv_timeout_ms = Connection::kDefaultTimeoutMs);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  [[nodiscard]] int socket_fd() const { return conn_.fd(); }

  // Messages one on_readable() call handles at most.
  static constexpr int kMaxMessagesPerWakeup = 64;

  // Reads and handles the messages that are waiting, up to kMaxMessagesPerWakeup (never blocks before the
  // first byte of a message; a message that has begun is read to its end, within recv_timeout_ms).
  // Returns an error once the session is broken (the same one on every later call); refused requests are
  // not errors.
  Result<void, SessionError> on_readable();

  // The kick eventfd of ring `index` is readable: clears it and lets the backend drain the queue. Ignored
  // for rings that are not running (a kick racing with a stop) and once the session is broken.
  void on_kick(uint32_t index);

  [[nodiscard]] bool broken() const { return error_.has_value(); }
  // What broke the session, starting with ": " (request and specifics), for appending to to_string(error);
  // empty while not broken and for a plain disconnect.
  [[nodiscard]] const std::string& error_detail() const { return error_detail_; }

  // Tears down (also done by the destructor; idempotent): stops running rings (kick fds leave the event
  // loop before they are closed, Backend::on_queue_stopped), Backend::reset(), unmaps guest memory, closes
  // every fd including the socket.
  void close();

  // State, for the owner's logs and for tests.
  [[nodiscard]] uint64_t offered_features() const;
  [[nodiscard]] uint64_t acked_features() const { return acked_features_; }
  [[nodiscard]] uint64_t acked_protocol_features() const { return acked_protocol_features_; }
  [[nodiscard]] bool ring_running(size_t index) const;
  [[nodiscard]] const GuestMemory& memory() const { return mem_; }
  // The protocol features GET_PROTOCOL_FEATURES reports.
  [[nodiscard]] uint64_t offered_protocol_features() const;
  // The SET_BACKEND_REQ_FD channel (null when none or dropped): backend → frontend requests.
  [[nodiscard]] vhost_user::BackendChannel* backend_channel() const { return channel_.get(); }
  // The channel's socket or timer is ready (Token::BackendChannel / Token::BackendTimer).
  void on_backend_channel(uint32_t events);
  void on_backend_timer();
  [[nodiscard]] uint8_t status() const { return status_; }

 private:
  struct Vring {
    uint16_t num = 0;   // SET_VRING_NUM (0: not set)
    uint16_t base = 0;  // SET_VRING_BASE, or next_avail when the ring last stopped
    std::optional<VringAddr> addr;
    UniqueFd kick;
    UniqueFd call;
    UniqueFd err;
    bool enabled = false;        // SET_VRING_ENABLE
    std::optional<Queue> queue;  // engaged while the ring runs
  };
  // A failed step: `fatal` latches the session broken; without it the request is refused and the session
  // goes on.
  struct Failure {
    std::optional<SessionError> fatal;
    std::string detail;
  };
  // A handler's own reply payload (GET_*), if the request has one.
  using Reply = std::optional<std::vector<std::byte>>;
  using Outcome = Result<Reply, Failure>;
  struct RequestSpec;
  template <class P>
  using Validator = Result<void, Failure> (Session::*)(const P&, const Message&) const;
  template <class P>
  using TypedHandler = Outcome (Session::*)(const P&, Message&);
  using PlainHandler = Outcome (Session::*)(Message&);

  static const RequestSpec* find_spec(uint32_t request);
  static Unexpected<Failure> fatal(SessionError e, std::string detail) { return fail(Failure{e, std::move(detail)}); }
  static Unexpected<Failure> refused(std::string detail) { return fail(Failure{std::nullopt, std::move(detail)}); }

  // Pipeline.
  Result<void, SessionError> handle(Message& msg);
  Outcome run_pipeline(const RequestSpec* spec, Message& msg);
  Result<void, SessionError> finish(const RequestSpec* spec, const Message& msg, Outcome outcome);
  [[nodiscard]] bool gate_open(const RequestSpec& spec) const;
  [[nodiscard]] std::string gate_name(const RequestSpec& spec) const;
  template <class P, Validator<P> V, TypedHandler<P> H>
  Outcome typed(const RequestSpec& spec, Message& msg);
  template <PlainHandler H>
  Outcome plain(const RequestSpec& spec, Message& msg);
  Outcome refuse_unimplemented(const RequestSpec& spec, Message& msg);
  Result<void, SessionError> latch(SessionError e, const std::string& detail);
  Result<void, SessionError> reply(const MessageHeader& request, std::span<const std::byte> payload);

  // Validators (step "copy + validate()").
  Result<void, Failure> check_features(const uint64_t& v, const Message& msg) const;
  Result<void, Failure> check_protocol_features(const uint64_t& v, const Message& msg) const;
  Result<void, Failure> check_mem_table(const MemoryTableHeader& h, const Message& msg) const;
  // What the ring validators share: an index below the queue count, and a ring that is not running.
  Result<void, Failure> check_ring_index(uint64_t index) const;
  Result<void, Failure> check_ring_stopped(uint32_t index) const;
  Result<void, Failure> check_vring_index(const VringState& s, const Message& msg) const;
  Result<void, Failure> check_vring_num(const VringState& s, const Message& msg) const;
  Result<void, Failure> check_vring_base(const VringState& s, const Message& msg) const;
  Result<void, Failure> check_vring_enable(const VringState& s, const Message& msg) const;
  Result<void, Failure> check_vring_addr(const VringAddr& a, const Message& msg) const;
  Result<void, Failure> check_vring_file(const uint64_t& v, const Message& msg) const;
  Result<void, Failure> check_config(const ConfigHeader& h, const Message& msg) const;
  Result<void, Failure> check_single_region(const SingleMemoryRegion& r, const Message& msg) const;
  Result<void, Failure> check_status(const uint64_t& v, const Message& msg) const;

  // Handlers, one per request.
  Outcome on_get_features(Message& msg);
  Outcome on_set_features(const uint64_t& v, Message& msg);
  Outcome on_set_owner(Message& msg);
  Outcome on_reset_owner(Message& msg);
  Outcome on_reset_device(Message& msg);
  // Stops and disables every ring and resets the backend (RESET_OWNER, RESET_DEVICE).
  void reset_device(std::string_view why);
  Outcome on_set_mem_table(const MemoryTableHeader& h, Message& msg);
  Outcome on_set_vring_num(const VringState& s, Message& msg);
  Outcome on_set_vring_addr(const VringAddr& a, Message& msg);
  Outcome on_set_vring_base(const VringState& s, Message& msg);
  Outcome on_get_vring_base(const VringState& s, Message& msg);
  Outcome on_set_vring_kick(const uint64_t& v, Message& msg);
  Outcome on_set_vring_call(const uint64_t& v, Message& msg);
  Outcome on_set_vring_err(const uint64_t& v, Message& msg);
  Outcome on_get_protocol_features(Message& msg);
  Outcome on_set_protocol_features(const uint64_t& v, Message& msg);
  Outcome on_get_queue_num(Message& msg);
  Outcome on_set_vring_enable(const VringState& s, Message& msg);
  Outcome on_set_backend_req_fd(Message& msg);
  Outcome on_get_config(const ConfigHeader& h, Message& msg);
  Outcome on_set_config(const ConfigHeader& h, Message& msg);
  Outcome on_gpu_set_socket(Message& msg);
  Outcome on_get_max_mem_slots(Message& msg);
  Outcome on_add_mem_reg(const SingleMemoryRegion& r, Message& msg);
  Outcome on_rem_mem_reg(const SingleMemoryRegion& r, Message& msg);
  Outcome on_set_status(const uint64_t& v, Message& msg);
  Outcome on_get_status(Message& msg);
  Outcome on_get_shmem_config(Message& msg);
  Outcome on_get_shared_object(Message& msg);
  Outcome on_set_device_state_fd(const DeviceStateTransfer& t, Message& msg);
  Outcome on_check_device_state(Message& msg);
  Result<void, Failure> check_device_state_transfer(const DeviceStateTransfer& t, const Message& msg) const;

  // Rings.
  [[nodiscard]] bool protocol_features_acked() const;
  [[nodiscard]] bool wants_to_run(size_t index) const;
  [[nodiscard]] Result<QueueConfig, std::string> queue_config(size_t index) const;
  Result<void, std::string> start_ring(size_t index);
  Result<void, Failure> start_if_ready(size_t index);
  void stop_ring(size_t index);
  void refresh_rings_after_memory_change();
  void signal_call(size_t index);
  // Makes ring `index`'s kick fd readable again (Queue::resume_later).
  void resume_ring(size_t index);

  Connection conn_;
  Backend& backend_;
  EventLoop& loop_;
  GuestMemory mem_;
  std::vector<Vring> vrings_;
  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_features_ = 0;
  uint8_t status_ = 0;
  std::unique_ptr<BackendChannel> channel_;
  // Shared-memory regions by shmid (Backend::shmem_regions(), read once: valid for the connection's life).
  std::vector<uint64_t> shmem_regions_;
  // The fd the next reply carries (GET_SHARED_OBJECT's buffer); closed once sent.
  UniqueFd reply_fd_;
  // Runs once the current request's reply is out (a state transfer the frontend does after it reads the reply).
  std::function<void()> after_reply_;
  // How the last device state transfer ended (CHECK_DEVICE_STATE); nullopt: none yet.
  std::optional<std::string> transfer_error_ = std::string("no device state transfer yet");
  bool warned_sizeless_get_shared_object_ = false;
  std::optional<SessionError> error_;
  std::string error_detail_;
  bool closed_ = false;
};

}  // namespace vgpu::vhost_user

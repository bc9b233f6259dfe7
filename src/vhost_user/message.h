// vhost-user wire format (QEMU docs/interop/vhost-user.rst). One table of request ids and protocol feature
// bits, taken from the QEMU releases we test against (7.2, 10.0, 11.1): keep every number here and nowhere
// else. Multi-byte fields are little-endian on the wire; vhost-user only runs between processes on one host,
// and we only build for little-endian hosts (common/wire.h).
//
//   MessageHeader hdr{.request = static_cast<uint32_t>(FrontendRequest::GetFeatures), .flags = kVersion1, .size = 0};
//   std::string_view name = to_string(FrontendRequest::GetFeatures);   // "GET_FEATURES"
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/wire.h"

namespace vgpu::vhost_user {

// Requests a frontend sends to a backend ("Front-end message types").
enum class FrontendRequest : uint32_t {
  None = 0,  // not a request: no frontend sends it
  GetFeatures = 1,
  SetFeatures = 2,
  SetOwner = 3,
  ResetOwner = 4,
  SetMemTable = 5,
  SetLogBase = 6,
  SetLogFd = 7,
  SetVringNum = 8,
  SetVringAddr = 9,
  SetVringBase = 10,
  GetVringBase = 11,
  SetVringKick = 12,
  SetVringCall = 13,
  SetVringErr = 14,
  GetProtocolFeatures = 15,
  SetProtocolFeatures = 16,
  GetQueueNum = 17,
  SetVringEnable = 18,
  SendRarp = 19,
  NetSetMtu = 20,
  SetBackendReqFd = 21,
  IotlbMsg = 22,
  SetVringEndian = 23,
  GetConfig = 24,
  SetConfig = 25,
  CreateCryptoSession = 26,
  CloseCryptoSession = 27,
  PostcopyAdvise = 28,
  PostcopyListen = 29,
  PostcopyEnd = 30,
  GetInflightFd = 31,
  SetInflightFd = 32,
  GpuSetSocket = 33,
  ResetDevice = 34,
  VringKick = 35,
  GetMaxMemSlots = 36,
  AddMemReg = 37,
  RemMemReg = 38,
  SetStatus = 39,
  GetStatus = 40,
  GetSharedObject = 41,
  SetDeviceStateFd = 42,
  CheckDeviceState = 43,
  GetShmemConfig = 44,
};

// Protocol feature bits (VHOST_USER_PROTOCOL_F_*), with the messages each one enables.
enum class ProtocolFeature : uint32_t {
  Mq = 0,                    // GET_QUEUE_NUM
  LogShmfd = 1,              // SET_LOG_BASE with a shared-memory log fd
  Rarp = 2,                  // SEND_RARP
  ReplyAck = 3,              // the NEED_REPLY flag
  NetMtu = 4,                // NET_SET_MTU
  BackendReq = 5,            // SET_BACKEND_REQ_FD
  CrossEndian = 6,           // SET_VRING_ENDIAN
  CryptoSession = 7,         // CREATE_CRYPTO_SESSION, CLOSE_CRYPTO_SESSION
  Pagefault = 8,             // POSTCOPY_ADVISE, POSTCOPY_LISTEN, POSTCOPY_END
  Config = 9,                // GET_CONFIG, SET_CONFIG, the backend's CONFIG_CHANGE_MSG
  BackendSendFd = 10,        // fds on the backend channel
  HostNotifier = 11,         // the backend's VRING_HOST_NOTIFIER_MSG
  InflightShmfd = 12,        // GET_INFLIGHT_FD, SET_INFLIGHT_FD
  ResetDevice = 13,          // RESET_DEVICE
  InbandNotifications = 14,  // VRING_KICK, the backend's VRING_CALL and VRING_ERR
  ConfigureMemSlots = 15,    // GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG
  Status = 16,               // SET_STATUS, GET_STATUS
  XenMmap = 17,
  SharedObject = 18,  // QEMU >= 8.2 (moved from 17 before release)
  DeviceState = 19,   // QEMU >= 9.0
  // QEMU 11.1: the frontend may take GET_VRING_BASE's index from its inflight area. Never offered.
  GetVringBaseInflight = 20,
  // QEMU 11.1: memory-table addresses become guest-physical, which changes every region's meaning. Never offered.
  GpaAddresses = 21,
  Shmem = 22,  // QEMU >= 11.1: GET_SHMEM_CONFIG and the backend's SHMEM_MAP / SHMEM_UNMAP
};

constexpr uint64_t bit(ProtocolFeature f) {
  return uint64_t{1} << static_cast<uint32_t>(f);
}

// Requests a backend sends to the frontend on the SET_BACKEND_REQ_FD channel ("Back-end message types").
enum class BackendRequest : uint32_t {
  IotlbMsg = 1,
  ConfigChangeMsg = 2,
  VringHostNotifierMsg = 3,
  VringCall = 4,
  VringErr = 5,
  SharedObjectAdd = 6,
  SharedObjectRemove = 7,
  SharedObjectLookup = 8,
  ShmemMap = 9,
  ShmemUnmap = 10,
};

// The request's name as vhost-user.rst spells it (without the VHOST_USER_ or VHOST_USER_BACKEND_ prefix), for
// logs; "UNKNOWN" for a number the enum does not name.
std::string_view to_string(FrontendRequest r);
std::string_view to_string(BackendRequest r);

// Virtio feature bit that says the backend speaks GET/SET_PROTOCOL_FEATURES.
constexpr uint64_t kFeatureProtocolFeatures = uint64_t{1} << 30;

// Header flags.
constexpr uint32_t kVersionMask = 0x3;
constexpr uint32_t kVersion1 = 0x1;
constexpr uint32_t kFlagReply = 1u << 2;
constexpr uint32_t kFlagNeedReply = 1u << 3;
// Every flag bit a frontend request may carry; the others are reserved (and the reply bit is ours to set).
constexpr uint32_t kRequestFlags = kVersionMask | kFlagNeedReply;

// Largest number of fds one message may carry (QEMU's VHOST_MEMORY_BASELINE_NREGIONS).
constexpr size_t kMaxFds = 8;
// Regions in one SET_MEM_TABLE.
constexpr size_t kMaxMemTableRegions = 8;
// GET/SET_CONFIG carries at most 256 bytes of config after a 12-byte header (QEMU's VHOST_USER_MAX_CONFIG_SIZE).
constexpr uint32_t kMaxConfigSize = 256;
// Largest payload read at all. Every message we handle is far smaller (SET_MEM_TABLE with 8 regions is
// 8 + 8 * 32 = 264 bytes, GET/SET_CONFIG 268); requests we do not implement are read and dropped whole, so the
// bound leaves room for their sizes while keeping one message's buffer small.
constexpr uint32_t kMaxPayloadSize = 4096;

using MessageHeader = WireHeader;

struct VringState {
  uint32_t index;
  uint32_t num;
};
static_assert(sizeof(VringState) == 8);

// VringAddr::flags bit 0 (VHOST_VRING_F_LOG): log used-ring writes. Needs VHOST_F_LOG_ALL, never offered.
constexpr uint32_t kVringFlagLog = 1u << 0;

struct VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

struct MemoryTableHeader {  // SET_MEM_TABLE, followed by `nregions` MemoryRegion and as many fds
  uint32_t nregions;
  uint32_t padding;
};
static_assert(sizeof(MemoryTableHeader) == 8);

struct SingleMemoryRegion {  // ADD_MEM_REG / REM_MEM_REG
  uint64_t padding;
  MemoryRegion region;
};
static_assert(sizeof(SingleMemoryRegion) == 40);

// SET_DEVICE_STATE_FD's payload (vhost-user.rst "Device state transfer parameters").
struct DeviceStateTransfer {
  uint32_t direction;  // 0: save (the back-end writes), 1: load (the back-end reads)
  uint32_t phase;      // 0: stopped (the only phase defined)
};
static_assert(sizeof(DeviceStateTransfer) == 8);
constexpr uint32_t kTransferSave = 0;
constexpr uint32_t kTransferLoad = 1;
// SET_DEVICE_STATE_FD's reply: bits 0..7 an error code, bit 8 set when the back-end uses the front-end's fd
// (it attaches no fd of its own).
constexpr uint64_t kDeviceStateUseFrontendFd = uint64_t{1} << 8;

struct ConfigHeader {  // GET_CONFIG / SET_CONFIG, followed by `size` bytes
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);

// ConfigHeader::flags (VHOST_SET_CONFIG_TYPE_*): a plain write, or a restore during live migration.
constexpr uint32_t kConfigTypeFrontend = 0;
constexpr uint32_t kConfigTypeMigration = 1;

// GET_SHMEM_CONFIG's reply: the size of each shared-memory region, indexed by shmid (0: no such region).
// `nregions` counts the non-zero sizes. Sizes are page multiples; a PCI frontend maps each as one BAR, so a
// power of two.
constexpr size_t kMaxShmemRegions = 256;
struct ShmemConfig {
  uint32_t nregions;
  uint32_t padding;
  uint64_t memory_sizes[kMaxShmemRegions];  // NOLINT(*-avoid-c-arrays): the wire layout
};
static_assert(sizeof(ShmemConfig) == 2056);

// SHMEM_MAP (with exactly one fd) and SHMEM_UNMAP (no fd; must name one whole existing mapping).
struct ShmemMapMessage {
  uint8_t shmid;
  uint8_t padding[7];  // NOLINT(*-avoid-c-arrays): the wire layout
  uint64_t fd_offset;
  uint64_t shm_offset;
  uint64_t len;
  uint64_t flags;
};
static_assert(sizeof(ShmemMapMessage) == 40);
constexpr uint64_t kShmemMapFlagWritable = 1u << 0;

// u64 payload of SET_VRING_KICK / CALL / ERR.
constexpr uint64_t kVringIndexMask = 0xff;
constexpr uint64_t kVringNoFdFlag = 1u << 8;
// Bits 9..63 of that u64 are reserved.
constexpr uint64_t kVringFileReservedMask = ~(kVringIndexMask | kVringNoFdFlag);

}  // namespace vgpu::vhost_user

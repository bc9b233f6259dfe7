#include "vhost_user/message.h"

namespace vgpu::vhost_user {

std::string_view to_string(FrontendRequest r) {
  switch (r) {
    case FrontendRequest::None: return "NONE";
    case FrontendRequest::GetFeatures: return "GET_FEATURES";
    case FrontendRequest::SetFeatures: return "SET_FEATURES";
    case FrontendRequest::SetOwner: return "SET_OWNER";
    case FrontendRequest::ResetOwner: return "RESET_OWNER";
    case FrontendRequest::SetMemTable: return "SET_MEM_TABLE";
    case FrontendRequest::SetLogBase: return "SET_LOG_BASE";
    case FrontendRequest::SetLogFd: return "SET_LOG_FD";
    case FrontendRequest::SetVringNum: return "SET_VRING_NUM";
    case FrontendRequest::SetVringAddr: return "SET_VRING_ADDR";
    case FrontendRequest::SetVringBase: return "SET_VRING_BASE";
    case FrontendRequest::GetVringBase: return "GET_VRING_BASE";
    case FrontendRequest::SetVringKick: return "SET_VRING_KICK";
    case FrontendRequest::SetVringCall: return "SET_VRING_CALL";
    case FrontendRequest::SetVringErr: return "SET_VRING_ERR";
    case FrontendRequest::GetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case FrontendRequest::SetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case FrontendRequest::GetQueueNum: return "GET_QUEUE_NUM";
    case FrontendRequest::SetVringEnable: return "SET_VRING_ENABLE";
    case FrontendRequest::SendRarp: return "SEND_RARP";
    case FrontendRequest::NetSetMtu: return "NET_SET_MTU";
    case FrontendRequest::SetBackendReqFd: return "SET_BACKEND_REQ_FD";
    case FrontendRequest::IotlbMsg: return "IOTLB_MSG";
    case FrontendRequest::SetVringEndian: return "SET_VRING_ENDIAN";
    case FrontendRequest::GetConfig: return "GET_CONFIG";
    case FrontendRequest::SetConfig: return "SET_CONFIG";
    case FrontendRequest::CreateCryptoSession: return "CREATE_CRYPTO_SESSION";
    case FrontendRequest::CloseCryptoSession: return "CLOSE_CRYPTO_SESSION";
    case FrontendRequest::PostcopyAdvise: return "POSTCOPY_ADVISE";
    case FrontendRequest::PostcopyListen: return "POSTCOPY_LISTEN";
    case FrontendRequest::PostcopyEnd: return "POSTCOPY_END";
    case FrontendRequest::GetInflightFd: return "GET_INFLIGHT_FD";
    case FrontendRequest::SetInflightFd: return "SET_INFLIGHT_FD";
    case FrontendRequest::GpuSetSocket: return "GPU_SET_SOCKET";
    case FrontendRequest::ResetDevice: return "RESET_DEVICE";
    case FrontendRequest::VringKick: return "VRING_KICK";
    case FrontendRequest::GetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case FrontendRequest::AddMemReg: return "ADD_MEM_REG";
    case FrontendRequest::RemMemReg: return "REM_MEM_REG";
    case FrontendRequest::SetStatus: return "SET_STATUS";
    case FrontendRequest::GetStatus: return "GET_STATUS";
    case FrontendRequest::GetSharedObject: return "GET_SHARED_OBJECT";
    case FrontendRequest::SetDeviceStateFd: return "SET_DEVICE_STATE_FD";
    case FrontendRequest::CheckDeviceState: return "CHECK_DEVICE_STATE";
    case FrontendRequest::GetShmemConfig: return "GET_SHMEM_CONFIG";
  }
  return "UNKNOWN";
}

std::string_view to_string(BackendRequest r) {
  switch (r) {
    case BackendRequest::IotlbMsg: return "IOTLB_MSG";
    case BackendRequest::ConfigChangeMsg: return "CONFIG_CHANGE_MSG";
    case BackendRequest::VringHostNotifierMsg: return "VRING_HOST_NOTIFIER_MSG";
    case BackendRequest::VringCall: return "VRING_CALL";
    case BackendRequest::VringErr: return "VRING_ERR";
    case BackendRequest::SharedObjectAdd: return "SHARED_OBJECT_ADD";
    case BackendRequest::SharedObjectRemove: return "SHARED_OBJECT_REMOVE";
    case BackendRequest::SharedObjectLookup: return "SHARED_OBJECT_LOOKUP";
    case BackendRequest::ShmemMap: return "SHMEM_MAP";
    case BackendRequest::ShmemUnmap: return "SHMEM_UNMAP";
  }
  return "UNKNOWN";
}

}  // namespace vgpu::vhost_user

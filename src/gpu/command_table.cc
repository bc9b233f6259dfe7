#include "gpu/command_table.h"

#include <array>
#include <cstring>

#include "gpu/device.h"

namespace vgpu {

namespace {

// Copies the request bytes into the handler's struct (the dispatcher read exactly sizeof(Req) bytes).
template <class Req, CommandResult (GpuDevice::*Handler)(const Req&, Reader&)>
CommandResult thunk(GpuDevice& device, std::span<const std::byte> request, Reader& rest) {
  static_assert(std::is_trivially_copyable_v<Req>);
  Req req;
  std::memcpy(&req, request.data(), sizeof(Req));
  return (device.*Handler)(req, rest);
}

template <class Req, CommandResult (GpuDevice::*Handler)(const Req&, Reader&)>
constexpr CommandInfo entry(uint32_t type, std::string_view name, QueueKind queue, int feature = -1) {
  static_assert(sizeof(Req) <= 128, "raise kMaxRequestSize in device.cc");
  return CommandInfo{type, name, sizeof(Req), queue, feature, &thunk<Req, Handler>};
}

using D = GpuDevice;
constexpr auto kControl = QueueKind::Control;
constexpr auto kCursor = QueueKind::Cursor;
// The feature bit each group of commands needs (VIRTIO_GPU_F_*).
constexpr int kVirgl = VIRTIO_GPU_F_VIRGL;
constexpr int kBlob = VIRTIO_GPU_F_RESOURCE_BLOB;

}  // namespace

// GpuDevice's friend: the one place outside the device that names its handlers (they are private).
struct CommandHandlers {
  static constexpr auto kTable = std::to_array<CommandInfo>({
      entry<virtio_gpu_ctrl_hdr, &D::on_get_display_info>(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, "GET_DISPLAY_INFO",
                                                          kControl),
      entry<virtio_gpu_resource_create_2d, &D::on_resource_create_2d>(VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
                                                                      "RESOURCE_CREATE_2D", kControl),
      entry<virtio_gpu_resource_unref, &D::on_resource_unref>(VIRTIO_GPU_CMD_RESOURCE_UNREF, "RESOURCE_UNREF",
                                                              kControl),
      entry<virtio_gpu_set_scanout, &D::on_set_scanout>(VIRTIO_GPU_CMD_SET_SCANOUT, "SET_SCANOUT", kControl),
      entry<virtio_gpu_resource_flush, &D::on_resource_flush>(VIRTIO_GPU_CMD_RESOURCE_FLUSH, "RESOURCE_FLUSH",
                                                              kControl),
      entry<virtio_gpu_transfer_to_host_2d, &D::on_transfer_to_host_2d>(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
                                                                        "TRANSFER_TO_HOST_2D", kControl),
      entry<virtio_gpu_resource_attach_backing, &D::on_resource_attach_backing>(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
                                                                                "RESOURCE_ATTACH_BACKING", kControl),
      entry<virtio_gpu_resource_detach_backing, &D::on_resource_detach_backing>(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
                                                                                "RESOURCE_DETACH_BACKING", kControl),
      entry<virtio_gpu_cmd_get_edid, &D::on_get_edid>(VIRTIO_GPU_CMD_GET_EDID, "GET_EDID", kControl, VIRTIO_GPU_F_EDID),
      entry<virtio_gpu_get_capset_info, &D::on_get_capset_info>(VIRTIO_GPU_CMD_GET_CAPSET_INFO, "GET_CAPSET_INFO",
                                                                kControl, kVirgl),
      entry<virtio_gpu_get_capset, &D::on_get_capset>(VIRTIO_GPU_CMD_GET_CAPSET, "GET_CAPSET", kControl, kVirgl),
      entry<virtio_gpu_ctx_create, &D::on_ctx_create>(VIRTIO_GPU_CMD_CTX_CREATE, "CTX_CREATE", kControl, kVirgl),
      entry<virtio_gpu_ctx_destroy, &D::on_ctx_destroy>(VIRTIO_GPU_CMD_CTX_DESTROY, "CTX_DESTROY", kControl, kVirgl),
      entry<virtio_gpu_ctx_resource, &D::on_ctx_attach_resource>(VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE,
                                                                 "CTX_ATTACH_RESOURCE", kControl, kVirgl),
      entry<virtio_gpu_ctx_resource, &D::on_ctx_detach_resource>(VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE,
                                                                 "CTX_DETACH_RESOURCE", kControl, kVirgl),
      entry<virtio_gpu_resource_create_3d, &D::on_resource_create_3d>(VIRTIO_GPU_CMD_RESOURCE_CREATE_3D,
                                                                      "RESOURCE_CREATE_3D", kControl, kVirgl),
      entry<virtio_gpu_transfer_host_3d, &D::on_transfer_to_host_3d>(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D,
                                                                     "TRANSFER_TO_HOST_3D", kControl, kVirgl),
      entry<virtio_gpu_transfer_host_3d, &D::on_transfer_from_host_3d>(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D,
                                                                       "TRANSFER_FROM_HOST_3D", kControl, kVirgl),
      entry<virtio_gpu_cmd_submit, &D::on_submit_3d>(VIRTIO_GPU_CMD_SUBMIT_3D, "SUBMIT_3D", kControl, kVirgl),
      entry<virtio_gpu_update_cursor, &D::on_update_cursor>(VIRTIO_GPU_CMD_UPDATE_CURSOR, "UPDATE_CURSOR", kCursor),
      entry<virtio_gpu_update_cursor, &D::on_move_cursor>(VIRTIO_GPU_CMD_MOVE_CURSOR, "MOVE_CURSOR", kCursor),
      // Appended last: the gpu_command fuzzer's seeds pick commands by table index.
      entry<virtio_gpu_resource_create_blob, &D::on_resource_create_blob>(VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB,
                                                                          "RESOURCE_CREATE_BLOB", kControl, kBlob),
      entry<virtio_gpu_set_scanout_blob, &D::on_set_scanout_blob>(VIRTIO_GPU_CMD_SET_SCANOUT_BLOB, "SET_SCANOUT_BLOB",
                                                                  kControl, kBlob),
      entry<virtio_gpu_resource_map_blob, &D::on_resource_map_blob>(VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB,
                                                                    "RESOURCE_MAP_BLOB", kControl, kBlob),
      entry<virtio_gpu_resource_unmap_blob, &D::on_resource_unmap_blob>(VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB,
                                                                        "RESOURCE_UNMAP_BLOB", kControl, kBlob),
      entry<virtio_gpu_resource_assign_uuid, &D::on_resource_assign_uuid>(
          VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, "RESOURCE_ASSIGN_UUID", kControl, VIRTIO_GPU_F_RESOURCE_UUID),
  });
};

namespace {
constexpr const auto& kTable = CommandHandlers::kTable;
}  // namespace

const CommandInfo* find_command(uint32_t type) {
  for (const auto& info : kTable) {
    if (info.type == type) return &info;
  }
  return nullptr;
}

std::span<const CommandInfo> command_table() {
  return kTable;
}

ResponseBytes header_response(uint32_t type) {
  ResponseBytes out(sizeof(virtio_gpu_ctrl_hdr));
  std::memcpy(out.data() + offsetof(virtio_gpu_ctrl_hdr, type), &type, sizeof(type));
  return out;
}

}  // namespace vgpu

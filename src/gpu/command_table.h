// One table drives decoding (CONTRIBUTING.md practice 5): for each virtio-gpu command its type, name, the exact
// request struct size, the queue it belongs on, the feature bit it needs, and the handler. The dispatcher
// peeks the header, finds the entry, checks queue, feature and size, copies the request struct out of the
// guest once and calls the typed handler with the host copy. Logs, tests and fuzzers reuse the table.
//
//   const CommandInfo* info = find_command(hdr.type);
//   if (!info) ...;   // unknown command: ERR_UNSPEC
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "gpu/gpu_error.h"
#include "virtio/descriptor_chain.h"

namespace vgpu {

class GpuDevice;

enum class QueueKind { Control, Cursor };

// A handler's answer: the response bytes, starting with a virtio_gpu_ctrl_hdr whose `type` the handler set
// (the dispatcher fills flags, fence_id, ctx_id and ring_idx), or empty for RESP_OK_NODATA.
using ResponseBytes = std::vector<std::byte>;
using CommandResult = Result<ResponseBytes, GpuError>;

// A response that is only a virtio_gpu_ctrl_hdr of `type` (RESP_OK_NODATA, RESP_ERR_*); the dispatcher fills the
// rest of the header.
ResponseBytes header_response(uint32_t type);

// Calls the typed handler with the request copied out of `request` (exactly `request_size` bytes). `rest`
// reads what follows the request struct in the chain (e.g. RESOURCE_ATTACH_BACKING's entries).
using CommandThunk = CommandResult (*)(GpuDevice& device, std::span<const std::byte> request, Reader& rest);

struct CommandInfo {
  uint32_t type;
  std::string_view name;
  size_t request_size;
  QueueKind queue;
  int required_feature;  // VIRTIO_GPU_F_* bit, or -1
  CommandThunk thunk;
};

// nullptr for a type not in the table.
const CommandInfo* find_command(uint32_t type);
std::span<const CommandInfo> command_table();

}  // namespace vgpu

// How a request the device sent the frontend on the backend channel ended (SHMEM_MAP / SHMEM_UNMAP,
// SHARED_OBJECT_ADD / SHARED_OBJECT_REMOVE). Every request goes out with NEED_REPLY; its callback runs exactly
// once, from the event loop, with one of these.
#pragma once

#include <functional>
#include <string_view>

namespace vgpu {

enum class BackendReply {
  Done,         // the frontend did it (answered 0)
  Refused,      // the frontend answered "no" (bad fd, range, overlap, unknown region, UUID already taken)
  ChannelLost,  // the channel closed or broke before the answer came
  Timeout,      // no answer in time: the channel is dropped (later answers could no longer be matched)
};

constexpr std::string_view to_string(BackendReply r) {
  switch (r) {
    case BackendReply::Done: return "done";
    case BackendReply::Refused: return "refused by the frontend";
    case BackendReply::ChannelLost: return "backend channel lost";
    case BackendReply::Timeout: return "no answer from the frontend";
  }
  return "unknown";
}

using BackendCallback = std::function<void(BackendReply)>;

}  // namespace vgpu

// The 3D command handlers (virtio spec 5.7.6.10-12: capsets, contexts, 3D resources, transfers, SUBMIT_3D).
// They exist only with a 3D renderer (VIRGL negotiated: the command table gates them); ids, sizes and boxes
// are checked here on the host copy before the renderer sees them.
#include <algorithm>
#include <cstring>
#include <string_view>

#include "common/bytes.h"
#include "common/checked.h"
#include "common/log.h"
#include "gpu/device.h"
#include "gpu/host_costs.h"

namespace vgpu {

namespace {

// Largest SUBMIT_3D stream accepted: Mesa's virgl driver flushes far below this (its batch is 64 KiB).
constexpr uint32_t kMaxSubmitBytes = 16u << 20;

GpuError to_gpu_error(Renderer3DError e) {
  switch (e) {
    case Renderer3DError::OutOfMemory: return GpuError::OutOfMemory;
    case Renderer3DError::InvalidResource: return GpuError::InvalidResourceId;
    case Renderer3DError::InvalidContext: return GpuError::InvalidContextId;
    case Renderer3DError::InvalidArgument: return GpuError::InvalidParameter;
    case Renderer3DError::GuestMemory:
    case Renderer3DError::Failed: return GpuError::Unspec;
  }
  return GpuError::Unspec;
}

}  // namespace

Result<const GuestScatterList*, GpuError> GpuDevice::backing_of(uint32_t resource_id) const {
  const Resource* res = resources_.find(resource_id);
  if (res == nullptr) return fail(GpuError::InvalidResourceId);
  if (!res->backing || mem_ == nullptr) return fail(GpuError::InvalidParameter);
  return &*res->backing;
}

CommandResult GpuDevice::on_get_capset_info(const virtio_gpu_get_capset_info& req, Reader& /*rest*/) {
  const auto& capsets = r3d_->capsets();
  if (req.capset_index >= capsets.size()) return fail(GpuError::InvalidParameter);
  const CapsetInfo& info = capsets[req.capset_index];
  virtio_gpu_resp_capset_info resp{};
  resp.hdr.type = VIRTIO_GPU_RESP_OK_CAPSET_INFO;
  resp.capset_id = info.id;
  resp.capset_max_version = info.max_version;
  resp.capset_max_size = info.max_size;
  return bytes_of(resp);
}

CommandResult GpuDevice::on_get_capset(const virtio_gpu_get_capset& req, Reader& /*rest*/) {
  auto data = r3d_->capset(req.capset_id, req.capset_version);
  if (!data) return fail(GpuError::InvalidParameter);
  ResponseBytes out(sizeof(virtio_gpu_ctrl_hdr) + data->size());
  const uint32_t type = VIRTIO_GPU_RESP_OK_CAPSET;
  std::memcpy(out.data() + offsetof(virtio_gpu_ctrl_hdr, type), &type, sizeof(type));
  std::copy(data->begin(), data->end(), out.begin() + sizeof(virtio_gpu_ctrl_hdr));
  return out;
}

CommandResult GpuDevice::on_ctx_create(const virtio_gpu_ctx_create& req, Reader& /*rest*/) {
  // Context ids come from the header; 0 is not a context (2D commands carry ctx_id 0).
  const uint32_t ctx_id = req.hdr.ctx_id;
  if (ctx_id == 0 || contexts_.contains(ctx_id)) return fail(GpuError::InvalidContextId);
  if (req.nlen > sizeof(req.debug_name)) return fail(GpuError::InvalidParameter);
  // context_init is meaningful only with VIRTIO_GPU_F_CONTEXT_INIT (spec 5.7.6.11); its low byte is the capset.
  const uint32_t context_init = has_feature(VIRTIO_GPU_F_CONTEXT_INIT) ? req.context_init : 0;
  const std::string_view name(req.debug_name, req.nlen);
  const uint32_t capset = context_init & VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK;
  if (capset == kCapsetVenus) {
    // Each Venus context is a render-server process on the host: a guest gets a bounded number of them.
    const auto venus = static_cast<uint32_t>(std::count_if(
        contexts_.begin(), contexts_.end(), [](const auto& c) { return c.second.capset == kCapsetVenus; }));
    if (venus >= cfg_.max_venus_contexts) {
      if (!logged_venus_cap_) {
        VGPU_LOG_WARN(
            "CTX_CREATE {}: the guest has {} Venus contexts, the most --max-venus-contexts allows; "
            "refusing more (logged once)",
            ctx_id, venus);
        logged_venus_cap_ = true;
      }
      return fail(GpuError::OutOfMemory);
    }
  }
  // Every context costs the host a renderer context (audit F2: 2.3 MiB each with virgl, nothing charged
  // before): a bounded number, each charged against the resource budget until CTX_DESTROY.
  if (contexts_.size() >= cfg_.max_contexts || !resources_.reserve(host_costs::kPerContext)) {
    VGPU_LOG_WARN_LIMITED("CTX_CREATE {}: {} contexts (--max-contexts {}), {} of {} resource bytes used; refused",
                          ctx_id, contexts_.size(), cfg_.max_contexts, resources_.used_bytes(), resources_.max_bytes());
    return fail(GpuError::OutOfMemory);
  }
  if (auto r = r3d_->create_context(ctx_id, context_init, name); !r) {
    resources_.release(host_costs::kPerContext);
    return fail(to_gpu_error(r.error()));
  }
  Context ctx;
  ctx.capset = capset;
  ctx.poll_fd = r3d_->context_poll_fd(ctx_id);
  if (ctx.poll_fd >= 0 && ctx.poll_fd == registered_poll_fd_) ctx.poll_fd = -1;
  if (ctx.poll_fd >= 0 && loop_ != nullptr) {
    if (auto r = loop_->add(ctx.poll_fd, {Token::RendererPoll, ctx_id}, EPOLLIN); !r) ctx.poll_fd = -1;
  }
  contexts_.emplace(ctx_id, ctx);
  VGPU_LOG_DEBUG("context {} created (capset {}, '{}')", ctx_id, context_init & 0xff, name);
  return ResponseBytes{};
}

CommandResult GpuDevice::on_ctx_destroy(const virtio_gpu_ctx_destroy& req, Reader& /*rest*/) {
  const uint32_t ctx_id = req.hdr.ctx_id;
  auto it = contexts_.find(ctx_id);
  if (it == contexts_.end()) return fail(GpuError::InvalidContextId);
  if (it->second.poll_fd >= 0 && loop_ != nullptr) loop_->remove(it->second.poll_fd);
  contexts_.erase(it);
  resources_.release(host_costs::kPerContext);
  // Its blobs' memory may go with the context: out of the host-visible region first.
  drop_mappings_of_context(ctx_id);
  r3d_->destroy_context(ctx_id);
  // The renderer drops the fences of a destroyed context without signalling them: release what waits on
  // them, in order, so the driver is not left waiting for work that no longer exists.
  complete_fenced(fences_.forget_context(ctx_id));
  return ResponseBytes{};
}

CommandResult GpuDevice::on_ctx_attach_resource(const virtio_gpu_ctx_resource& req, Reader& /*rest*/) {
  if (!contexts_.contains(req.hdr.ctx_id)) return fail(GpuError::InvalidContextId);
  if (!resources_.contains(req.resource_id)) return fail(GpuError::InvalidResourceId);
  if (auto r = r3d_->attach_resource(req.hdr.ctx_id, req.resource_id); !r) return fail(to_gpu_error(r.error()));
  return ResponseBytes{};
}

CommandResult GpuDevice::on_ctx_detach_resource(const virtio_gpu_ctx_resource& req, Reader& /*rest*/) {
  if (!contexts_.contains(req.hdr.ctx_id)) return fail(GpuError::InvalidContextId);
  if (!resources_.contains(req.resource_id)) return fail(GpuError::InvalidResourceId);
  r3d_->detach_resource(req.hdr.ctx_id, req.resource_id);
  return ResponseBytes{};
}

CommandResult GpuDevice::on_resource_create_3d(const virtio_gpu_resource_create_3d& req, Reader& /*rest*/) {
  if (req.resource_id == 0 || resources_.contains(req.resource_id)) return fail(GpuError::InvalidResourceId);
  if (req.width == 0) return fail(GpuError::InvalidParameter);
  // Host bytes charged against --max-resource-memory: an upper bound from the format's texel size, samples,
  // layers and mip levels (host_costs.h). The GL driver decides the real layout; a guest cannot make it wrap.
  const Resource3DArgs args{req.target, req.format,     req.bind,       req.width,      req.height,
                            req.depth,  req.array_size, req.last_level, req.nr_samples, req.flags};
  const auto bytes = host_costs::resource_3d_bytes(args);
  if (!bytes || !resources_.reserve(*bytes)) {
    VGPU_LOG_WARN_LIMITED("RESOURCE_CREATE_3D {}x{}x{} format {}: over the resource memory limit ({} of {} bytes used)",
                          req.width, req.height, req.depth, req.format, resources_.used_bytes(),
                          resources_.max_bytes());
    return fail(GpuError::OutOfMemory);
  }
  if (auto r = r3d_->create_resource_3d(req.resource_id, args); !r) {
    resources_.release(*bytes);
    return fail(to_gpu_error(r.error()));
  }
  const auto format = pixel_format_from_virtio(req.format);
  Resource res;
  res.format = format.value_or(PixelFormat::B8G8R8X8);
  res.width = req.width;
  res.height = std::max(req.height, 1u);
  res.host_bytes = *bytes;
  resources_.insert(req.resource_id, std::move(res));
  return ResponseBytes{};
}

namespace {

Transfer3D to_transfer(const virtio_gpu_transfer_host_3d& req) {
  return Transfer3D{{req.box.x, req.box.y, req.box.z, req.box.w, req.box.h, req.box.d},
                    req.offset,
                    req.level,
                    req.stride,
                    req.layer_stride};
}

}  // namespace

CommandResult GpuDevice::transfer_3d(const virtio_gpu_transfer_host_3d& req, Transfer3DCall direction) {
  auto backing = backing_of(req.resource_id);
  if (!backing) return fail(backing.error());
  if (req.hdr.ctx_id != 0 && !contexts_.contains(req.hdr.ctx_id)) return fail(GpuError::InvalidContextId);
  auto r = (r3d_->*direction)(req.hdr.ctx_id, req.resource_id, to_transfer(req), *mem_, **backing);
  if (!r) return fail(to_gpu_error(r.error()));
  return ResponseBytes{};
}

CommandResult GpuDevice::on_transfer_to_host_3d(const virtio_gpu_transfer_host_3d& req, Reader& /*rest*/) {
  return transfer_3d(req, &Renderer3D::transfer_to_host_3d);
}

CommandResult GpuDevice::on_transfer_from_host_3d(const virtio_gpu_transfer_host_3d& req, Reader& /*rest*/) {
  return transfer_3d(req, &Renderer3D::transfer_from_host_3d);
}

CommandResult GpuDevice::on_submit_3d(const virtio_gpu_cmd_submit& req, Reader& rest) {
  if (!contexts_.contains(req.hdr.ctx_id)) return fail(GpuError::InvalidContextId);
  if (req.size > kMaxSubmitBytes || req.size > rest.remaining()) return fail(GpuError::InvalidParameter);
  // Copied out of the guest once; the renderer parses the host copy.
  std::vector<std::byte> commands(req.size);
  if (!rest.read_bytes(commands)) return fail(GpuError::InvalidParameter);
  if (auto r = r3d_->submit_3d(req.hdr.ctx_id, commands); !r) {
    VGPU_LOG_DEBUG("SUBMIT_3D context {}: {}", req.hdr.ctx_id, to_string(r.error()));
    return fail(to_gpu_error(r.error()));
  }
  return ResponseBytes{};
}

}  // namespace vgpu

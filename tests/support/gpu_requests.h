// The virtio-gpu request structs the test drivers send (GpuHarness straight into a device, TestFrontend over
// vhost-user), filled in one place. Each returns the struct; the caller turns it into bytes its own way.
//
// Usage:
//   h.command_type(req::create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 64, 64));
//   fe->command(TestFrontend::kControlQueue, request_bytes(req::flush(1, {0, 0, 64, 64})), sizeof(hdr));
#pragma once

#include <linux/virtio_gpu.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace vgpu::test::req {

// A request header of `type`, every other field 0.
inline virtio_gpu_ctrl_hdr header(uint32_t type, uint32_t ctx_id = 0) {
  virtio_gpu_ctrl_hdr h{};
  h.type = type;
  h.ctx_id = ctx_id;
  return h;
}

inline virtio_gpu_resource_create_2d create_2d(uint32_t id, uint32_t format, uint32_t width, uint32_t height) {
  return {.hdr = header(VIRTIO_GPU_CMD_RESOURCE_CREATE_2D),
          .resource_id = id,
          .format = format,
          .width = width,
          .height = height};
}

// RESOURCE_CREATE_BLOB's header; its `nr_entries` entries follow it (with_entries).
inline virtio_gpu_resource_create_blob create_blob(uint32_t id, uint32_t blob_mem, uint32_t flags, uint32_t nr_entries,
                                                   uint64_t blob_id, uint64_t size, uint32_t ctx_id = 0) {
  return {.hdr = header(VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, ctx_id),
          .resource_id = id,
          .blob_mem = blob_mem,
          .blob_flags = flags,
          .nr_entries = nr_entries,
          .blob_id = blob_id,
          .size = size};
}

// A `width` x `height` image in `format`, `stride` bytes per row from byte `offset`, showing `rect`.
inline virtio_gpu_set_scanout_blob set_scanout_blob(uint32_t scanout, uint32_t id, const virtio_gpu_rect& rect,
                                                    uint32_t width, uint32_t height, uint32_t stride, uint32_t offset,
                                                    uint32_t format) {
  return {.hdr = header(VIRTIO_GPU_CMD_SET_SCANOUT_BLOB),
          .r = rect,
          .scanout_id = scanout,
          .resource_id = id,
          .width = width,
          .height = height,
          .format = format,
          .padding = 0,
          .strides = {stride},
          .offsets = {offset}};
}

inline virtio_gpu_set_scanout set_scanout(uint32_t scanout, uint32_t id, const virtio_gpu_rect& rect) {
  return {.hdr = header(VIRTIO_GPU_CMD_SET_SCANOUT), .r = rect, .scanout_id = scanout, .resource_id = id};
}

inline virtio_gpu_transfer_to_host_2d transfer_to_host_2d(uint32_t id, const virtio_gpu_rect& rect, uint64_t offset) {
  return {
      .hdr = header(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D), .r = rect, .offset = offset, .resource_id = id, .padding = 0};
}

inline virtio_gpu_resource_flush flush(uint32_t id, const virtio_gpu_rect& rect) {
  return {.hdr = header(VIRTIO_GPU_CMD_RESOURCE_FLUSH), .r = rect, .resource_id = id, .padding = 0};
}

// A request of struct T that names one resource (UNREF, DETACH_BACKING, MAP_BLOB, UNMAP_BLOB,
// CTX_ATTACH_RESOURCE, ...), every other field 0.
template <class T>
T for_resource(uint32_t type, uint32_t id, uint32_t ctx_id = 0) {
  T r{};
  r.hdr = header(type, ctx_id);
  r.resource_id = id;
  return r;
}

// SUBMIT_3D of `size` command bytes on context `ctx_id`; fenced with `fence_id` unless it is 0.
inline virtio_gpu_cmd_submit submit_3d(uint32_t ctx_id, uint32_t size, uint64_t fence_id = 0) {
  virtio_gpu_cmd_submit r{};
  r.hdr = header(VIRTIO_GPU_CMD_SUBMIT_3D, ctx_id);
  r.hdr.flags = fence_id != 0 ? VIRTIO_GPU_FLAG_FENCE : 0;
  r.hdr.fence_id = fence_id;
  r.size = size;
  return r;
}

// RESOURCE_CREATE_3D of one level and one sample.
inline virtio_gpu_resource_create_3d create_3d(uint32_t id, uint32_t target, uint32_t format, uint32_t bind,
                                               uint32_t width, uint32_t height, uint32_t depth = 1,
                                               uint32_t array_size = 1) {
  virtio_gpu_resource_create_3d r{};
  r.hdr = header(VIRTIO_GPU_CMD_RESOURCE_CREATE_3D);
  r.resource_id = id;
  r.target = target;
  r.format = format;
  r.bind = bind;
  r.width = width;
  r.height = height;
  r.depth = depth;
  r.array_size = array_size;
  return r;
}

// TRANSFER_TO_HOST_3D or TRANSFER_FROM_HOST_3D (`type`) of `box` of resource `id` through context `ctx_id`.
inline virtio_gpu_transfer_host_3d transfer_host_3d(uint32_t type, uint32_t ctx_id, uint32_t id,
                                                    const virtio_gpu_box& box) {
  virtio_gpu_transfer_host_3d r{};
  r.hdr = header(type, ctx_id);
  r.resource_id = id;
  r.box = box;
  return r;
}

inline virtio_gpu_get_capset_info get_capset_info(uint32_t index) {
  virtio_gpu_get_capset_info r{};
  r.hdr = header(VIRTIO_GPU_CMD_GET_CAPSET_INFO);
  r.capset_index = index;
  return r;
}

inline virtio_gpu_get_capset get_capset(uint32_t id, uint32_t version) {
  virtio_gpu_get_capset r{};
  r.hdr = header(VIRTIO_GPU_CMD_GET_CAPSET);
  r.capset_id = id;
  r.capset_version = version;
  return r;
}

// `header` followed by `entries` (ATTACH_BACKING, CREATE_BLOB), as one buffer.
template <class T>
std::vector<std::byte> with_entries(const T& header, std::span<const virtio_gpu_mem_entry> entries) {
  // One allocation and two copies (GCC 12's -Warray-bounds misreads a vector insert here at -O3).
  std::vector<std::byte> out(sizeof(header) + entries.size_bytes());
  std::memcpy(out.data(), &header, sizeof(header));
  if (!entries.empty()) std::memcpy(out.data() + sizeof(header), entries.data(), entries.size_bytes());
  return out;
}

}  // namespace vgpu::test::req

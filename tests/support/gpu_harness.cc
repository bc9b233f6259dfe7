#include "support/gpu_harness.h"

#include <cstring>

#include "support/gpu_requests.h"

namespace vgpu::test {

GpuHarness::GpuHarness(GpuDeviceConfig config, uint64_t acked_features, uint64_t memory_bytes,
                       std::optional<Renderers> renderers, EventLoop* loop) {
  // Two adjacent regions, so backings can straddle a region boundary.
  const uint64_t half = memory_bytes / 2;
  guest_ = std::make_unique<FakeGuestMemory>(
      std::vector<FakeRegion>{{GuestAddress{0}, half}, {GuestAddress{half}, memory_bytes - half}});
  device_ = std::make_unique<GpuDevice>(config, loop, renderers ? std::move(*renderers) : soft2d_renderers(),
                                        standard_displays(config));
  device_->set_acked_features(acked_features);
  for (size_t i = 0; i < device_->num_queues(); ++i) {
    vqs_.push_back(std::make_unique<FakeVirtqueue>(*guest_, FakeQueueOptions{.size = 256}));
    auto q = Queue::create(guest_->memory(), vqs_.back()->config(), 0);
    if (!q) throw std::runtime_error("GpuHarness: Queue::create failed");
    queues_.push_back(std::make_unique<Queue>(std::move(*q)));
    device_->on_queue_started(i, *queues_.back());
  }
}

GpuHarness::~GpuHarness() {
  device_.reset();
  queues_.clear();
  vqs_.clear();
}

std::optional<std::vector<std::byte>> GpuHarness::send(size_t queue, std::span<const std::byte> request,
                                                       uint32_t response_size, std::span<const std::byte> extra) {
  FakeVirtqueue& vq = *vqs_.at(queue);
  std::vector<std::byte> readable(request.begin(), request.end());
  readable.insert(readable.end(), extra.begin(), extra.end());
  ChainBuilder builder(vq);
  builder.readable(readable);
  if (response_size > 0) builder.writable(response_size);
  const BuiltChain built = builder.build();
  device_->on_queue_kick(queue, *queues_.at(queue), guest_->memory());
  std::vector<std::byte> response;
  if (response_size > 0) response = guest_->read(built.writable.at(0).addr, response_size);
  // Skip completions of earlier chains (fenced ones released since): ours is the last one published.
  while (auto used = vq.next_used()) {
    if (used->id != built.head) continue;
    response.resize(std::min<size_t>(used->len, response.size()));
    return response;
  }
  return std::nullopt;
}

GpuHarness::Submitted GpuHarness::submit_bytes(size_t queue, std::span<const std::byte> request,
                                               uint32_t response_size) {
  FakeVirtqueue& vq = *vqs_.at(queue);
  ChainBuilder builder(vq);
  builder.readable(std::vector<std::byte>(request.begin(), request.end()));
  if (response_size > 0) builder.writable(response_size);
  const BuiltChain built = builder.build();
  device_->on_queue_kick(queue, *queues_.at(queue), guest_->memory());
  return Submitted{built.head, response_size > 0 ? built.writable.at(0).addr : GuestAddress{0}, response_size};
}

std::optional<std::vector<std::byte>> GpuHarness::collect(const Submitted& s, size_t queue) {
  FakeVirtqueue& vq = *vqs_.at(queue);
  while (auto used = vq.next_used()) {
    if (used->id != s.head) continue;
    std::vector<std::byte> response;
    if (s.response_size > 0) response = guest_->read(s.response, s.response_size);
    response.resize(std::min<size_t>(used->len, response.size()));
    return response;
  }
  return std::nullopt;
}

uint32_t GpuHarness::response_type(const std::optional<std::vector<std::byte>>& response) {
  if (!response || response->size() < sizeof(virtio_gpu_ctrl_hdr)) return 0;
  virtio_gpu_ctrl_hdr hdr{};
  std::memcpy(&hdr, response->data(), sizeof(hdr));
  return hdr.type;
}

uint32_t GpuHarness::create_2d(uint32_t id, uint32_t width, uint32_t height, uint32_t format) {
  return command_type(req::create_2d(id, format, width, height));
}

namespace {

// `bytes` from `base` as `pieces` consecutive entries (the last takes the remainder).
std::vector<virtio_gpu_mem_entry> split_entries(GuestAddress base, uint64_t bytes, uint32_t pieces) {
  std::vector<virtio_gpu_mem_entry> entries;
  const uint64_t piece = bytes / pieces;
  for (uint32_t i = 0; i < pieces; ++i) {
    const uint64_t len = i + 1 == pieces ? bytes - piece * i : piece;
    entries.push_back({raw(base) + piece * i, static_cast<uint32_t>(len), 0});
  }
  return entries;
}

}  // namespace

uint32_t GpuHarness::attach_backing(uint32_t id, uint64_t bytes, uint32_t pieces) {
  const GuestAddress base = guest_->alloc(bytes, 4096);
  backings_.emplace_back(id, base);
  virtio_gpu_resource_attach_backing req{};
  req.hdr.type = VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
  req.resource_id = id;
  req.nr_entries = pieces;
  const auto entries = split_entries(base, bytes, pieces);
  return command_type(req, std::as_bytes(std::span(entries)));
}

uint32_t GpuHarness::create_blob(uint32_t id, uint32_t blob_mem, uint64_t bytes, uint32_t pieces, uint32_t flags,
                                 uint64_t blob_id, uint32_t ctx_id) {
  std::vector<virtio_gpu_mem_entry> entries;
  if (blob_mem != VIRTIO_GPU_BLOB_MEM_HOST3D) {
    const GuestAddress base = guest_->alloc(bytes, 4096);
    backings_.emplace_back(id, base);
    entries = split_entries(base, bytes, pieces);
  }
  const auto nr_entries = static_cast<uint32_t>(entries.size());
  return command_type(req::create_blob(id, blob_mem, flags, nr_entries, blob_id, bytes, ctx_id),
                      std::as_bytes(std::span(entries)));
}

uint32_t GpuHarness::ctx_create(uint32_t ctx_id, uint32_t context_init) {
  virtio_gpu_ctx_create req{};
  req.hdr.type = VIRTIO_GPU_CMD_CTX_CREATE;
  req.hdr.ctx_id = ctx_id;
  req.nlen = 4;
  req.context_init = context_init;
  std::memcpy(req.debug_name, "test", 4);
  return command_type(req);
}

uint32_t GpuHarness::set_scanout_blob(uint32_t scanout, uint32_t id, virtio_gpu_rect rect, uint32_t width,
                                      uint32_t height, uint32_t stride, uint32_t offset, uint32_t format) {
  return command_type(req::set_scanout_blob(scanout, id, rect, width, height, stride, offset, format));
}

GuestAddress GpuHarness::backing_address(uint32_t id) const {
  for (const auto& [rid, addr] : backings_) {
    if (rid == id) return addr;
  }
  return GuestAddress{0};
}

uint32_t GpuHarness::transfer(uint32_t id, virtio_gpu_rect rect, uint64_t offset) {
  return command_type(req::transfer_to_host_2d(id, rect, offset));
}

uint32_t GpuHarness::set_scanout(uint32_t scanout, uint32_t id, virtio_gpu_rect rect) {
  return command_type(req::set_scanout(scanout, id, rect));
}

uint32_t GpuHarness::flush(uint32_t id, virtio_gpu_rect rect) {
  return command_type(req::flush(id, rect));
}

}  // namespace vgpu::test

// libFuzzer target: virtio-gpu command decoding and handling on soft2d (CONTRIBUTING.md practice 14).
//
// Input: byte 0 picks the negotiated features (bit 0: EDID, bit 1: RESOURCE_BLOB; bit 2: a 3D device with a
// fake renderer whose Venus blobs map, a host-visible region and a fake frontend for SHMEM_MAP / UNMAP; bit 3:
// BLOB_ALIGNMENT offered with it) and
// byte 1 the number of scanouts; then a sequence of operations, each starting with an op byte:
//   0: a control command:  [type index][len][len bytes]  (type index < table size overrides hdr.type with a
//      real command type, so the fuzzer reaches handlers quickly; the rest of the bytes are the request,
//      including any backing entries)
//   1: a cursor command, same layout
//   2: write guest memory:  [u16 page][len][len bytes]  (backing contents for later transfers)
//   3: the display's layout changes (raises the config event; answers a command waiting for it)
//   4: the frontend answers its oldest unanswered SHMEM request: [reply] (done, refused, lost, timeout)
//   5: the control queue stops and restarts (held MAP_BLOBs are answered at once)
// The device must never crash, hang or leak, and every chain must come back (held ones once the frontend
// has answered everything).
#include <linux/virtio_gpu.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "gpu/command_table.h"
#include "support/fake_display.h"
#include "support/fake_renderer_3d.h"
#include "support/fake_shmem_mapper.h"
#include "support/fuzz_input.h"
#include "support/gpu_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vgpu;
  using namespace vgpu::test;
  FuzzInput in(data, size);
  const uint8_t feature_bits = in.byte();
  uint64_t features = 0;
  if ((feature_bits & 1) != 0) features |= uint64_t{1} << VIRTIO_GPU_F_EDID;
  if ((feature_bits & 2) != 0) features |= uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB;
  const uint32_t scanouts = 1 + in.byte() % kMaxScanouts;
  const bool host_visible = (feature_bits & 4) != 0;
  std::shared_ptr<FakeRenderer3D> renderer;
  if (host_visible) {
    renderer = std::make_shared<FakeRenderer3D>();
    renderer->capset_infos.push_back({kCapsetVenus, 0, 160});
    features |= (uint64_t{1} << VIRTIO_GPU_F_VIRGL) | (uint64_t{1} << VIRTIO_GPU_F_CONTEXT_INIT) |
                (uint64_t{1} << kFeatureBlobAlignment);
  }
  GpuHarness h(
      GpuDeviceConfig{.num_scanouts = scanouts,
                      .max_resource_memory = 8ull << 20,
                      .hostmem_size = host_visible ? 1ull << 20 : 0,
                      .blob_alignment = (feature_bits & 8) != 0 ? BlobAlignmentMode::On : BlobAlignmentMode::Off,
                      .max_venus_contexts = 4},
      features, 4ull << 20, renderer ? std::optional(Renderers::with_3d(renderer)) : std::nullopt);
  FakeShmemMapper mapper;
  if (host_visible) h.device().set_shmem_mapper(&mapper);
  auto display = std::make_unique<FakeDisplay>(scanouts, 640, 480);
  FakeDisplay* fake = display.get();
  h.device().install_display(std::move(display));
  const auto table = command_table();

  int ops = 0;
  while (!in.empty() && ops++ < 64) {
    const uint8_t op = in.byte() % 6;
    switch (op) {
      case 0:
      case 1: {
        const size_t queue = op == 0 ? GpuDevice::kControlQueue : GpuDevice::kCursorQueue;
        const uint8_t type_index = in.byte();
        auto request = in.bytes_upto(in.byte());
        if (type_index < table.size() && request.size() >= 4) {
          std::memcpy(request.data(), &table[type_index].type, 4);
        }
        (void)h.send(queue, request, sizeof(virtio_gpu_resp_edid));
        break;
      }
      case 2: {
        // Above the rings and chain buffers the harness allocates first (the low 256 KiB).
        const uint32_t page = 64 + (in.byte() | in.byte() << 8) % 960;
        auto bytes = in.bytes_upto(in.byte());
        h.guest().write(GuestAddress{uint64_t{page} * 4096}, bytes);
        break;
      }
      case 3: fake->set_layout({scanouts, ScanoutMode{true, {0, 0, 320u + in.byte(), 200u + in.byte()}}}); break;
      case 4: {
        const auto reply = static_cast<BackendReply>(in.byte() % 4);
        for (size_t i = 0; i < mapper.requests.size(); ++i) {
          if (mapper.requests[i].done) {
            mapper.answer(i, reply);
            break;
          }
        }
        break;
      }
      case 5:
        h.device().on_queue_stopped(GpuDevice::kControlQueue);
        h.device().on_queue_started(GpuDevice::kControlQueue, h.control_queue());
        break;
    }
  }
  // Once the frontend has answered everything (answers may send unmaps), no command may still be held.
  for (int round = 0; round < 3 && mapper.unanswered() != 0; ++round) mapper.answer_all(BackendReply::Done);
  if (h.device().held_commands() != 0) __builtin_trap();
  return 0;
}

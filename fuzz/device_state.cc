// libFuzzer target: the device state loader (gpu/state_format.cc decode_state, GpuDevice::load_state).
//
// Input: byte 0 picks the mode (bit 0: keep the header as given; otherwise the body length and CRC-32 are
// rewritten to match, so mutations reach the body's parser instead of stopping at the checksum; bit 1: two
// scanouts instead of one); the rest is the state. A state that decodes is loaded into a fresh 2D device
// with 1 MiB of guest memory and an 8 MiB resource limit, shown, saved again and re-decoded: nothing may
// crash, leak or allocate beyond the limits, and what loads must save to a state that decodes to the same.
#include <linux/virtio_gpu.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gpu/state_format.h"
#include "support/fake_display.h"
#include "support/gpu_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vgpu;
  using namespace vgpu::test;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data + 1),
                               reinterpret_cast<const std::byte*>(data + size));
  constexpr size_t kHeader = 32;
  if ((mode & 1) == 0 && bytes.size() >= kHeader) {
    const uint64_t len = bytes.size() - kHeader;
    std::memcpy(bytes.data() + 16, &len, sizeof(len));
    const auto crc = static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data() + kHeader), static_cast<uInt>(len)));
    std::memcpy(bytes.data() + 24, &crc, sizeof(crc));
  }
  auto decoded = decode_state(bytes);
  if (!decoded) return 0;
  // What decodes re-encodes to a state that decodes to the same thing.
  auto round = decode_state(encode_state(*decoded));
  if (!round || !(*round == *decoded)) std::abort();

  const uint32_t scanouts = (mode & 2) != 0 ? 2 : 1;
  GpuHarness h(GpuDeviceConfig{.num_scanouts = scanouts, .max_resource_memory = 8ull << 20},
               (uint64_t{1} << VIRTIO_GPU_F_EDID) | (uint64_t{1} << VIRTIO_GPU_F_RESOURCE_BLOB), 1ull << 20);
  h.device().install_display(std::make_unique<FakeDisplay>(scanouts, 640, 480));
  if (!h.device().load_state(bytes, h.guest().memory())) return 0;
  auto saved = h.device().save_state();
  if (!saved) std::abort();  // a loaded 2D state can always be saved
  auto again = decode_state(*saved);
  if (!again) std::abort();
  if (again->resources.size() != decoded->resources.size()) std::abort();
  return 0;
}

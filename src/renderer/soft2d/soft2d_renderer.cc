#include "renderer/soft2d/soft2d_renderer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstddef>
#include <cstring>
#include <new>
#include <span>

#include "common/checked.h"

namespace vgpu {

namespace {

// pixman takes int widths, heights and strides.
constexpr uint64_t kPixmanMax = std::numeric_limits<int32_t>::max();

}  // namespace

pixman_format_code_t to_pixman_format(PixelFormat f) {
  return pixel_format_info(f).pixman;
}

Soft2DRenderer::Soft2DRenderer(uint64_t max_total_bytes) : max_total_bytes_(max_total_bytes) {}

Soft2DRenderer::~Soft2DRenderer() = default;

Result<void, RendererError> Soft2DRenderer::create_resource(uint32_t id, PixelFormat format, uint32_t width,
                                                            uint32_t height) {
  if (width == 0 || height == 0 || resources_.contains(id)) return fail(RendererError::InvalidArgument);
  // Neither product can wrap in 64 bits: width * 4 < 2^34, and both factors of `bytes` are at most 2^31.
  const uint64_t stride = uint64_t{width} * kBytesPerPixel;
  if (stride > kPixmanMax || height > kPixmanMax) return fail(RendererError::OutOfMemory);
  const uint64_t bytes = stride * height;
  if (bytes > max_total_bytes_ - total_bytes_) return fail(RendererError::OutOfMemory);

  // calloc, not new[]: large buffers come from mmap already zeroed, so untouched pages cost nothing (until
  // glibc's dynamic mmap threshold rises; pinning it costs far more in page faults: vgpu_bench measured
  // full-frame updates 2.3x slower, the 8 MiB UPDATE buffers then being fresh mappings every frame).
  std::unique_ptr<std::byte, PixelsDeleter> pixels(
      static_cast<std::byte*>(std::calloc(static_cast<size_t>(height), static_cast<size_t>(stride))), PixelsDeleter{});
  if (!pixels) return fail(RendererError::OutOfMemory);
  // SAFETY: calloc's memory is aligned for any scalar type; pixman reads and writes it as 32-bit words.
  std::unique_ptr<pixman_image_t, ImageUnref> image(
      pixman_image_create_bits(to_pixman_format(format), static_cast<int>(width), static_cast<int>(height),
                               reinterpret_cast<uint32_t*>(pixels.get()), static_cast<int>(stride)));
  if (!image) return fail(RendererError::OutOfMemory);

  try {
    resources_.emplace(id, Resource{.format = format,
                                    .width = width,
                                    .height = height,
                                    .stride = static_cast<uint32_t>(stride),
                                    .bytes = bytes,
                                    .pixels = std::move(pixels),
                                    .image = std::move(image),
                                    .memfd = UniqueFd()});
  } catch (const std::bad_alloc&) {
    return fail(RendererError::OutOfMemory);
  }
  total_bytes_ += bytes;
  return {};
}

void Soft2DRenderer::destroy_resource(uint32_t id) {
  auto it = resources_.find(id);
  if (it == resources_.end()) return;
  total_bytes_ -= it->second.bytes;
  resources_.erase(it);
}

Result<void, RendererError> Soft2DRenderer::transfer_to_host_2d(uint32_t id, const Rect& rect, uint64_t offset,
                                                                const GuestScatterList& backing) {
  auto it = resources_.find(id);
  if (it == resources_.end()) return fail(RendererError::InvalidResource);
  const Resource& res = it->second;
  if (!rect_fits(rect, res.width, res.height)) return fail(RendererError::InvalidArgument);
  if (rect.empty()) return {};

  // virtio spec 5.7.6.9 / QEMU virtio_gpu_transfer_to_host_2d: row r of the rect is at offset + r * stride in
  // the backing. The last row ends `extent` bytes after `offset`. No wrap: (height - 1) * stride < 2^62.
  const uint64_t row_bytes = uint64_t{rect.width} * kBytesPerPixel;
  const uint64_t extent = uint64_t{rect.height - 1} * res.stride + row_bytes;
  if (!range_fits(offset, extent, backing.size())) return fail(RendererError::InvalidArgument);

  std::byte* dst = res.pixels.get() + size_t{rect.y} * res.stride + size_t{rect.x} * kBytesPerPixel;
  if (rect.x == 0 && rect.width == res.width) {
    // Full-width rows are contiguous on both sides: one read of height * stride (== extent) bytes.
    if (!backing.read(offset, std::span(dst, static_cast<size_t>(extent)))) {
      return fail(RendererError::GuestMemory);
    }
    return {};
  }
  for (uint32_t row = 0; row < rect.height; ++row) {
    const uint64_t step = uint64_t{row} * res.stride;  // offset + step <= offset + extent: fits, checked above
    if (!backing.read(offset + step, std::span(dst + step, static_cast<size_t>(row_bytes)))) {
      return fail(RendererError::GuestMemory);
    }
  }
  return {};
}

std::optional<ImageView> Soft2DRenderer::image(uint32_t id) const {
  auto it = resources_.find(id);
  if (it == resources_.end()) return std::nullopt;
  const Resource& res = it->second;
  return ImageView{.data = res.pixels.get(),
                   .width = res.width,
                   .height = res.height,
                   .stride = res.stride,
                   .format = res.format,
                   .lease = res.pixels};
}

pixman_image_t* Soft2DRenderer::pixman_image(uint32_t id) const {
  auto it = resources_.find(id);
  return it == resources_.end() ? nullptr : it->second.image.get();
}

void Soft2DRenderer::PixelsDeleter::operator()(std::byte* p) const {
  if (mapped_bytes != 0) {
    ::munmap(p, mapped_bytes);
  } else {
    std::free(p);
  }
}

Result<UniqueFd, RendererError> Soft2DRenderer::export_shared(uint32_t id) {
  auto it = resources_.find(id);
  if (it == resources_.end()) return fail(RendererError::InvalidResource);
  Resource& res = it->second;
  if (!res.memfd) {
    const auto bytes = static_cast<size_t>(res.bytes);
    UniqueFd fd(::memfd_create("vhost-gpu-shared-resource", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return fail(RendererError::OutOfMemory);
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      return fail(RendererError::OutOfMemory);
    }
    void* addr = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (addr == MAP_FAILED) return fail(RendererError::OutOfMemory);
    std::unique_ptr<std::byte, PixelsDeleter> pixels(static_cast<std::byte*>(addr), PixelsDeleter{bytes});
    std::memcpy(pixels.get(), res.pixels.get(), bytes);
    // SAFETY: mmap returns page-aligned memory; pixman reads and writes it as 32-bit words.
    std::unique_ptr<pixman_image_t, ImageUnref> image(pixman_image_create_bits(
        to_pixman_format(res.format), static_cast<int>(res.width), static_cast<int>(res.height),
        reinterpret_cast<uint32_t*>(pixels.get()), static_cast<int>(res.stride)));
    if (!image) return fail(RendererError::OutOfMemory);
    res.image = std::move(image);  // the old image goes before the pixels it wraps
    res.pixels = std::move(pixels);
    res.memfd = std::move(fd);
  }
  UniqueFd dup(::fcntl(res.memfd.get(), F_DUPFD_CLOEXEC, 0));
  if (!dup) return fail(RendererError::OutOfMemory);
  return dup;
}

Result<void, RendererError> Soft2DRenderer::restore_pixels(uint32_t id, std::span<const std::byte> pixels) {
  auto it = resources_.find(id);
  if (it == resources_.end()) return fail(RendererError::InvalidResource);
  Resource& res = it->second;
  if (pixels.size() != res.bytes) return fail(RendererError::InvalidArgument);
  std::memcpy(res.pixels.get(), pixels.data(), pixels.size());  // stride == width * 4 here
  return {};
}

void Soft2DRenderer::reset() {
  resources_.clear();
  total_bytes_ = 0;
}

}  // namespace vgpu

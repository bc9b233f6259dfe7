// A blob scanout's host copy (the blob lives in guest memory or the renderer; the display needs a host image),
// shared with the display through ImageView leases: a display still sending the previous frame keeps that
// buffer, and a write while it does goes to a fresh copy (copy on write) instead of under it.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace vgpu {

class ScanoutShadow {
 public:
  [[nodiscard]] size_t size() const { return bytes_ ? bytes_->size() : 0; }
  [[nodiscard]] const std::byte* data() const { return bytes_ ? bytes_->data() : nullptr; }
  // Resizes to `n` zero bytes (may throw std::bad_alloc); a buffer a display holds is left to it.
  void assign(size_t n) { bytes_ = std::make_shared<std::vector<std::byte>>(n, std::byte{0}); }
  // The bytes to write into; copies them first while a lease is out (may throw std::bad_alloc).
  [[nodiscard]] std::span<std::byte> writable() {
    if (!bytes_) return {};
    if (bytes_.use_count() > 1) bytes_ = std::make_shared<std::vector<std::byte>>(*bytes_);
    return std::span(*bytes_);
  }
  [[nodiscard]] std::shared_ptr<const void> lease() const { return bytes_; }

 private:
  std::shared_ptr<std::vector<std::byte>> bytes_;
};

}  // namespace vgpu

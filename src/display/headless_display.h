// A display without a frontend: a fixed layout from the configuration, generated EDIDs, and the latest frame
// of every scanout in host memory (x8r8g8b8: bytes B, G, R, 0xff), which write_png() saves as an opaque
// 8-bit RGB PNG. The cursor's state (image, hot spot, position, visibility) is kept but not composited into
// the frame or the PNG: virtio-gpu cursors are a separate plane, as QEMU's screendump also leaves them out.
//
//   HeadlessDisplay display(2, 1920, 1080);        // two 1920x1080 outputs side by side
//   display.set_scanout(0, 1920, 1080);
//   display.update(0, {0, 0, 64, 64}, image, 0, 0);
//   if (auto r = display.write_png(0, "/tmp/out.png"); !r) log(r.error());
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "display/display.h"

namespace vgpu {

class HeadlessDisplay final : public Display {
 public:
  static constexpr uint32_t kDefaultWidth = 1280;  // QEMU's virtio-gpu defaults (its xres and yres properties)
  static constexpr uint32_t kDefaultHeight = 800;

  struct CursorState {
    bool visible = false;
    uint32_t x = 0;  // the hot spot's position on the scanout
    uint32_t y = 0;
    uint32_t hot_x = 0;  // the hot spot inside the image
    uint32_t hot_y = 0;
    std::vector<uint32_t> image;  // kCursorSize * kCursorSize A8R8G8B8 words once defined, else empty
  };

  // `num_scanouts` outputs (clamped to [1, kMaxScanouts]), all enabled, width x height each (clamped to
  // [1, kMaxScanoutDimension]), laid out left to right. EDIDs prefer that size (at most 4095 x 4095, the
  // largest an EDID detailed timing can state).
  explicit HeadlessDisplay(uint32_t num_scanouts, uint32_t width = kDefaultWidth, uint32_t height = kDefaultHeight);

  [[nodiscard]] std::optional<std::vector<ScanoutMode>> display_info() const override { return modes_; }
  [[nodiscard]] bool edid_supported() const override { return true; }
  [[nodiscard]] std::optional<std::vector<uint8_t>> edid(uint32_t scanout) const override;

  void set_scanout(uint32_t scanout, uint32_t width, uint32_t height) override;
  void update(uint32_t scanout, const Rect& damage, const ImageView& image, uint32_t src_x, uint32_t src_y) override;
  void cursor_update(uint32_t scanout, uint32_t x, uint32_t y, uint32_t hot_x, uint32_t hot_y,
                     std::span<const uint32_t> pixels) override;
  void cursor_move(uint32_t scanout, uint32_t x, uint32_t y) override;
  void cursor_hide(uint32_t scanout) override;
  void set_listener(std::function<void()> on_change) override { (void)on_change; }  // nothing ever changes

  // The latest frame of a scanout (format B8G8R8X8, i.e. PIXMAN x8r8g8b8; stride width * 4); a view of width
  // 0 while the scanout is disabled or out of range. Valid until the next set_scanout of that scanout.
  [[nodiscard]] ImageView frame(uint32_t scanout) const;
  // nullptr for a scanout out of range.
  [[nodiscard]] const CursorState* cursor(uint32_t scanout) const;

  // Saves a scanout's frame as an 8-bit RGB PNG (no alpha). Fails for a disabled or unknown scanout, or when
  // the file cannot be written.
  [[nodiscard]] Result<void, std::string> write_png(uint32_t scanout, const std::string& path) const override;
  // Saves every enabled scanout: into `directory_or_prefix`/scanout-<n>.png when it names a directory, else
  // to `directory_or_prefix`<n>.png. Returns the paths written (none when no scanout shows anything).
  [[nodiscard]] Result<std::vector<std::string>, std::string> write_all_png(
      const std::string& directory_or_prefix) const;

 private:
  struct Frame {
    uint32_t width = 0;
    uint32_t height = 0;
    std::vector<uint32_t> pixels;  // 0xffRRGGBB, row-major, width * height
  };

  uint32_t num_scanouts_;
  std::vector<ScanoutMode> modes_;
  std::vector<std::vector<uint8_t>> edids_;
  std::vector<Frame> frames_;
  std::vector<CursorState> cursors_;
};

}  // namespace vgpu

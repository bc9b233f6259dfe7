// A Display that records what the device sent, for unit tests: scanout sizes, updates (with a copy of the
// damaged pixels, raw in the image's format), dma-buf scanouts and updates (when accept_dmabufs), cursor calls. Its
// layout and EDID answers are settable, and can be held back to test the device's waiting for them.
//
//   auto display = std::make_unique<FakeDisplay>(1);
//   FakeDisplay* d = display.get();
//   harness.device().install_display(std::move(display));
#pragma once

#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "display/display.h"

namespace vgpu::test {

class FakeDisplay final : public Display {
 public:
  struct Update {
    uint32_t scanout;
    Rect damage;
    uint32_t src_x, src_y;
    std::vector<uint32_t> pixels;  // damage.width * damage.height, row-major, as stored in the image
  };
  struct CursorCall {
    enum Kind { Update, Move, Hide } kind;
    uint32_t scanout, x, y, hot_x, hot_y;
    std::vector<uint32_t> pixels;
  };

  explicit FakeDisplay(uint32_t num_scanouts, uint32_t width = 1280, uint32_t height = 800) {
    layout_ = std::vector<ScanoutMode>(num_scanouts);
    for (uint32_t i = 0; i < num_scanouts; ++i) layout_->at(i) = {true, {i * width, 0, width, height}};
  }

  std::optional<std::vector<ScanoutMode>> display_info() const override { return layout_; }
  bool edid_supported() const override { return edid_supported_; }
  std::optional<std::vector<uint8_t>> edid(uint32_t) const override { return edid_; }

  void set_scanout(uint32_t scanout, uint32_t width, uint32_t height) override {
    scanouts.push_back({scanout, width, height});
  }
  void update(uint32_t scanout, const Rect& damage, const ImageView& image, uint32_t src_x, uint32_t src_y) override {
    Update u{scanout, damage, src_x, src_y, {}};
    for (uint32_t y = 0; y < damage.height; ++y) {
      for (uint32_t x = 0; x < damage.width; ++x) {
        uint32_t px = 0;
        std::memcpy(&px, image.data + size_t{src_y + y} * image.stride + size_t{src_x + x} * 4, 4);
        u.pixels.push_back(px);
      }
    }
    updates.push_back(std::move(u));
    if (on_update) on_update();
  }
  bool accepts_dmabuf(const DmabufImage&) const override { return accept_dmabufs; }
  bool set_scanout_dmabuf(uint32_t scanout, const DmabufImage& image, const Rect& shown) override {
    if (!accept_dmabufs) return false;
    struct stat st {};
    dmabuf_scanouts.push_back({scanout, image, shown, ::fstat(image.fd, &st) == 0 ? st.st_ino : 0});
    return true;
  }
  void update_dmabuf(uint32_t scanout, const Rect& damage) override { dmabuf_updates.push_back({scanout, damage}); }
  void cursor_update(uint32_t scanout, uint32_t x, uint32_t y, uint32_t hot_x, uint32_t hot_y,
                     std::span<const uint32_t> pixels) override {
    cursor.push_back({CursorCall::Update, scanout, x, y, hot_x, hot_y, {pixels.begin(), pixels.end()}});
  }
  void cursor_move(uint32_t scanout, uint32_t x, uint32_t y) override {
    cursor.push_back({CursorCall::Move, scanout, x, y, 0, 0, {}});
  }
  void cursor_hide(uint32_t scanout) override { cursor.push_back({CursorCall::Hide, scanout, 0, 0, 0, 0, {}}); }
  void set_listener(std::function<void()> on_change) override { listener_ = std::move(on_change); }

  // Test controls.
  void hold_layout() { layout_.reset(); }
  void set_layout(std::vector<ScanoutMode> layout) {
    layout_ = std::move(layout);
    if (listener_) listener_();
  }
  void set_edid(std::optional<std::vector<uint8_t>> edid, bool supported = true) {
    edid_ = std::move(edid);
    edid_supported_ = supported;
    if (listener_) listener_();
  }

  struct ScanoutCall {
    uint32_t scanout, width, height;
  };
  struct DmabufScanoutCall {
    uint32_t scanout;
    DmabufImage image;  // image.fd was only valid during the call
    Rect shown;
    ino_t inode;  // of the fd passed
  };
  struct DmabufUpdateCall {
    uint32_t scanout;
    Rect damage;
  };
  bool accept_dmabufs = false;  // what accepts_dmabuf() answers
  std::vector<ScanoutCall> scanouts;
  std::vector<DmabufScanoutCall> dmabuf_scanouts;
  std::vector<DmabufUpdateCall> dmabuf_updates;
  std::vector<Update> updates;
  // Called after each update() is recorded (a test's stand-in for a guest that reacts to frames).
  std::function<void()> on_update;
  std::vector<CursorCall> cursor;

 private:
  std::optional<std::vector<ScanoutMode>> layout_;
  std::optional<std::vector<uint8_t>> edid_;
  bool edid_supported_ = false;
  std::function<void()> listener_;
};

}  // namespace vgpu::test

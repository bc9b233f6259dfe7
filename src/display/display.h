// Where frames go (docs/ARCHITECTURE.md, "Displays"). Two sinks implement it: the vhost-user-gpu display socket to QEMU
// (docs/interop/vhost-user-gpu.rst), and a headless sink that keeps the latest frame of each scanout and
// can write it as PNG. The device calls these from the event-loop thread; nothing here blocks: messages
// are queued and written as the socket accepts them, replies are read when the socket is readable.
//
//   display.set_scanout(0, 1280, 800);                       // SCANOUT
//   display.update(0, {0, 0, 64, 64}, image, 0, 0);         // UPDATE with only the damaged rectangle
//   if (auto info = display.display_info()) ...;            // cached GET_DISPLAY_INFO reply
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "renderer/dmabuf.h"
#include "renderer/image.h"

namespace vgpu {

constexpr uint32_t kMaxScanouts = 16;  // VIRTIO_GPU_MAX_SCANOUTS
constexpr uint32_t kCursorSize = 64;   // the display protocol's cursor image is 64 x 64 ARGB
// Largest scanout width or height a display accepts (and reports); larger set_scanout calls are ignored.
constexpr uint32_t kMaxScanoutDimension = 16384;

// One scanout as the display reports it (virtio_gpu_display_one without the wire types).
struct ScanoutMode {
  bool enabled = false;
  Rect rect;  // position in the virtual desktop and preferred size
  bool operator==(const ScanoutMode&) const = default;
};

class Display {
 public:
  virtual ~Display() = default;

  // The display layout (GET_DISPLAY_INFO). nullopt while the first answer from the display is outstanding;
  // `on_change` (set_listener) fires when it arrives or changes later.
  [[nodiscard]] virtual std::optional<std::vector<ScanoutMode>> display_info() const = 0;
  // True when EDID blobs are available (the socket negotiated VHOST_USER_GPU_PROTOCOL_F_EDID, or headless).
  [[nodiscard]] virtual bool edid_supported() const = 0;
  // The EDID blob for a scanout; nullopt while outstanding (on_change fires when it arrives) or unsupported.
  // Once pending() is false, nullopt means the display supplies none for it: use generate_edid (edid.h).
  [[nodiscard]] virtual std::optional<std::vector<uint8_t>> edid(uint32_t scanout) const = 0;
  // True while display_info() or an edid() is still being fetched from the display (on_change fires when
  // it turns false). Answer the guest's GET_DISPLAY_INFO / GET_EDID once it is false.
  [[nodiscard]] virtual bool pending() const { return false; }
  // Ask the display for its layout (and EDIDs) again, e.g. when the guest re-reads them after a display
  // event; pending() is true until the answers are in, and on_change fires then.
  virtual void refresh() {}
  // True while an update() still reads the caller's image (a send straight from the image's rows that the
  // socket has not taken whole yet), or an update_dmabuf() is not shown yet. Until it turns false (on_change fires
  // then) the caller must keep every image it passed unchanged and alive: the device processes no further control
  // command meanwhile.
  [[nodiscard]] virtual bool busy() const { return false; }

  // The scanout now shows a width x height image (0 x 0: disabled). Follow it with a full update: the
  // display starts from a blank image.
  virtual void set_scanout(uint32_t scanout, uint32_t width, uint32_t height) = 0;
  // `damage` (scanout coordinates) changed; its pixels are in `image` starting at (src_x, src_y). Damage
  // outside the scanout or the image is clipped; an update of a disabled scanout is dropped.
  virtual void update(uint32_t scanout, const Rect& damage, const ImageView& image, uint32_t src_x, uint32_t src_y) = 0;
  // Dma-buf scanouts (a GL display imports the buffer: no pixels travel). True when this display can carry
  // `image` now; the socket cannot tell whether QEMU's console has GL (without it QEMU shows nothing), so the
  // device uses them only when the operator asked (--dmabuf-scanout).
  [[nodiscard]] virtual bool accepts_dmabuf(const DmabufImage& image) const {
    (void)image;
    return false;
  }
  // The scanout now shows `shown` (buffer coordinates) of the dma-buf; the display duplicates the fd. Replaces
  // whatever the scanout showed; set_scanout() (any size) leaves dma-buf mode again. False when it was not
  // sent (an image the display cannot describe): the scanout is unchanged, show its pixels instead.
  virtual bool set_scanout_dmabuf(uint32_t scanout, const DmabufImage& image, const Rect& shown) {
    (void)scanout, (void)image, (void)shown;
    return false;
  }
  // `damage` (scanout coordinates) of the dma-buf changed. busy() until the display has shown it: the buffer
  // must not change meanwhile.
  virtual void update_dmabuf(uint32_t scanout, const Rect& damage) { (void)scanout, (void)damage; }

  // A new 64 x 64 cursor image (pixels: A8R8G8B8 as uint32, row-major), with its hot spot, at (x, y).
  virtual void cursor_update(uint32_t scanout, uint32_t x, uint32_t y, uint32_t hot_x, uint32_t hot_y,
                             std::span<const uint32_t> pixels) = 0;
  virtual void cursor_move(uint32_t scanout, uint32_t x, uint32_t y) = 0;
  virtual void cursor_hide(uint32_t scanout) = 0;

  // Called when display_info(), an edid() or pending() changes, or alive() turns false. Only ever called
  // from on_event(), never from inside the other methods; it must not destroy the display.
  virtual void set_listener(std::function<void()> on_change) = 0;
  // The display's fd is ready (epoll events); sinks without an fd ignore it.
  virtual void on_event(uint32_t events) { (void)events; }
  // The fd to poll and the events wanted now (EPOLLIN, plus EPOLLOUT while output is queued); -1 for none.
  // Any call above may change wanted_events(): re-read it after each call (0 once the display is dead).
  [[nodiscard]] virtual int fd() const { return -1; }
  [[nodiscard]] virtual uint32_t wanted_events() const { return 0; }
  // False once the display is gone (socket closed or broken): remove fd() from the loop, drop the display
  // and fall back to headless. A dead display ignores every call.
  [[nodiscard]] virtual bool alive() const { return true; }
  // Saves a scanout's latest frame as a PNG where the display keeps frames (HeadlessDisplay); others refuse.
  [[nodiscard]] virtual Result<void, std::string> write_png(uint32_t scanout, const std::string& path) const {
    (void)scanout, (void)path;
    return fail(std::string("frames are shown by the frontend's display, not kept here"));
  }
};

}  // namespace vgpu

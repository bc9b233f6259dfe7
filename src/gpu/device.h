// The virtio-gpu device (virtio spec 5.7) as the vhost-user transport sees it: two queues (control, cursor),
// feature bits, the virtio_gpu_config space, and the 2D command set. Commands are decoded through the
// command table (command_table.h), validated on host copies and answered with the most specific
// VIRTIO_GPU_RESP_ERR_* on failure; the device keeps serving whatever the guest sends.
//
// Pixels are the renderer's (Renderer2D), frames go to a Display: the vhost-user-gpu socket QEMU sends with
// GPU_SET_SOCKET, or the idle sink (until a socket arrives, or for good): both made by the DisplayFactory
// app/ hands in, so the device names no concrete display or renderer.
//
//   GpuDevice device(GpuDeviceConfig{.num_scanouts = 1}, &loop, Renderers::only_2d(std::make_shared<Soft2DRenderer>()),
//                    DisplayFactory::standard({.num_scanouts = 1}));
//   Server server(device, ...);
#pragma once

#include <linux/virtio_gpu.h>

#include <array>
#include <bitset>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/event_loop.h"
#include "display/display.h"
#include "display/display_factory.h"
#include "gpu/command_table.h"
#include "gpu/fence_table.h"
#include "gpu/host_visible.h"
#include "gpu/resource_table.h"
#include "gpu/scanout_shadow.h"
#include "gpu/state_format.h"
#include "renderer/renderer_2d.h"
#include "renderer/renderer_3d.h"
#include "renderer/renderers.h"
#include "vhost_user/backend.h"

namespace vgpu {

// virtio 1.4 VIRTIO_GPU_F_BLOB_ALIGNMENT (Linux >= 7.2; Debian 12's <linux/virtio_gpu.h> predates it): the
// config space grows a u32 blob_alignment after num_capsets, which RESOURCE_CREATE_BLOB sizes and
// RESOURCE_MAP_BLOB offsets must be multiples of.
constexpr int kFeatureBlobAlignment = 5;
// The wire layout, spelled out: <linux/virtio_gpu.h> of Linux >= 7.2 has blob_alignment inside virtio_gpu_config
// (20 bytes), older ones do not (16), so sizeof() depends on the build host's headers.
constexpr uint32_t kConfigBaseSize = 16;  // events_read, events_clear, num_scanouts, num_capsets
constexpr uint32_t kConfigBlobAlignmentOffset = kConfigBaseSize;
static_assert(offsetof(virtio_gpu_config, num_capsets) + sizeof(uint32_t) == kConfigBaseSize);

// Whether VIRTIO_GPU_F_BLOB_ALIGNMENT is offered (only ever with a host-visible region). A Linux >= 7.2 guest that
// negotiates it refuses every blob whose size is not a multiple of the alignment (EINVAL before the device sees
// it); Off is for guests whose userspace makes such blobs.
enum class BlobAlignmentMode : uint8_t { On, Off };

struct GpuDeviceConfig {
  uint32_t num_scanouts = 1;                    // 1..VIRTIO_GPU_MAX_SCANOUTS
  uint64_t max_resource_memory = 512ull << 20;  // host bytes a guest can make us allocate
  uint32_t headless_width = 1280;               // the mode GET_EDID describes when the display reports none
  uint32_t headless_height = 800;
  // Show scanouts of 3D resources and host blobs as dma-bufs the renderer exports (DMABUF_SCANOUT2 and
  // DMABUF_UPDATE, no pixels copied), where it can export them; the rest go by readback and UPDATE. QEMU
  // must run a GL display (-display egl-headless, gtk,gl=on, dbus,gl=on, spice,gl=on): a 2D one shows nothing.
  bool dmabuf_scanout = false;
  // Bytes of host-visible memory (shmid 1) the frontend is asked to create, a power of two; 0: none. Offered
  // (with BLOB_ALIGNMENT) only when the 3D renderer can map blobs into another process (Renderer3D::maps_blobs).
  uint64_t hostmem_size = 0;
  BlobAlignmentMode blob_alignment = BlobAlignmentMode::On;
  // 3D contexts a guest may have at once (each also charges host_costs::kPerContext to the resource budget),
  // and of those, Venus contexts: each costs a render-server process on the host.
  uint32_t max_contexts = 64;
  uint32_t max_venus_contexts = 16;
};

class GpuDevice final : public Backend {
 public:
  static constexpr size_t kControlQueue = 0;
  static constexpr size_t kCursorQueue = 1;
  // RESOURCE_ATTACH_BACKING entries accepted per resource (16 host bytes each, charged to the budget).
  static constexpr uint32_t kMaxBackingEntries = 1u << 18;
  // The config space as frontends may read it: the struct, then zeros, up to this many bytes (what QEMU's
  // virtio-pci device-config window and vhost-user's GET_CONFIG carry at most); reads past it are refused.
  static constexpr size_t kConfigWindow = 256;
  // How often the fence timer polls a renderer that has no poll fd while fenced responses wait.
  static constexpr long kFenceTimerPeriodUs = 1000;

  // `loop` may be null (unit tests, fuzzers): a display socket is then not polled. With a 3D renderer
  // (Renderers::with_3d), VIRGL and CONTEXT_INIT are offered and the 3D commands work. The renderer is
  // shared so tests can lend one (virglrenderer allows one instance per process).
  GpuDevice(GpuDeviceConfig config, EventLoop* loop, const Renderers& renderers, DisplayFactory displays);
  ~GpuDevice() override;

  [[nodiscard]] size_t num_queues() const override { return 2; }
  [[nodiscard]] uint16_t max_queue_size() const override { return 1024; }
  [[nodiscard]] uint64_t features() const override;
  void set_acked_features(uint64_t acked) override { acked_features_ = acked; }

  [[nodiscard]] size_t config_size() const override;
  [[nodiscard]] std::vector<uint64_t> shmem_regions() const override;
  void set_shmem_mapper(ShmemMapper* mapper) override { mapper_ = mapper; }
  [[nodiscard]] bool shares_objects() const override { return true; }
  void set_shared_objects(SharedObjects* objects) override;
  Result<UniqueFd, std::string> shared_object_fd(const ObjectUuid& uuid) override;
  [[nodiscard]] Result<ObjectUuid, std::string> only_shared_object() const override;
  // Device state (device_state.cc): a 2D device's state as bytes, or why it cannot be saved; a load checks
  // the whole state before it changes anything.
  [[nodiscard]] bool saves_state() const override { return true; }
  [[nodiscard]] Result<std::vector<std::byte>, std::string> save_state() const override;
  Result<void, std::string> load_state(std::span<const std::byte> bytes, const GuestMemory& mem) override;
  bool read_config(uint32_t offset, std::span<std::byte> out) const override;
  bool write_config(uint32_t offset, std::span<const std::byte> in) override;

  void on_queue_started(size_t index, Queue& queue) override;
  void on_queue_stopped(size_t index) override;
  void on_queue_kick(size_t index, Queue& queue, const GuestMemory& mem) override;
  void on_display_socket(UniqueFd fd) override;
  void on_memory_changing() override;
  void on_memory_changed() override;
  void reset() override;

  // Replaces the display (tests inject fakes; the device itself swaps the factory's idle and frontend ones).
  void install_display(std::unique_ptr<Display> display);

  // The display socket's fd is ready (Token::DisplaySocket).
  void on_event(Source source, uint32_t events) override;
  void on_display_event(uint32_t events);
  // Writes every scanout's latest frame as PNG (a display that keeps frames); the paths written, or an error.
  Result<std::vector<std::string>, std::string> dump_frames(const std::string& directory) const;

  [[nodiscard]] const virtio_gpu_config& config() const { return config_; }
  [[nodiscard]] const ResourceTable& resources() const { return resources_; }
  [[nodiscard]] const Display& display() const { return *display_; }
  [[nodiscard]] bool has_feature(int bit) const { return bit < 0 || (acked_features_ >> bit & 1) != 0; }

  [[nodiscard]] size_t pending_fences() const { return fences_.size(); }
  // Whether the fence timer (Token::RendererTimer) polls the renderer: it has no poll fd and responses wait.
  [[nodiscard]] bool fence_timer_armed() const { return fence_timer_armed_; }
  [[nodiscard]] bool has_3d() const { return r3d_ != nullptr; }
  // A host-visible region is offered (--hostmem, and a renderer that can map blobs).
  [[nodiscard]] bool host_visible() const { return host_visible_.has_value(); }
  [[nodiscard]] const HostVisibleRegion* host_visible_region() const {
    return host_visible_ ? &*host_visible_ : nullptr;
  }
  // Control commands answered later (MAP_BLOB / UNMAP_BLOB waiting for the frontend).
  [[nodiscard]] size_t held_commands() const { return held_.size(); }

 private:
  friend struct CommandHandlers;  // command_table.cc: the table's thunks call the handlers below

  // Typed handlers, called only through the command table with host copies of the request.
  CommandResult on_get_display_info(const virtio_gpu_ctrl_hdr& req, Reader& rest);
  CommandResult on_get_edid(const virtio_gpu_cmd_get_edid& req, Reader& rest);
  CommandResult on_resource_assign_uuid(const virtio_gpu_resource_assign_uuid& req, Reader& rest);
  CommandResult on_resource_create_2d(const virtio_gpu_resource_create_2d& req, Reader& rest);
  CommandResult on_resource_unref(const virtio_gpu_resource_unref& req, Reader& rest);
  CommandResult on_set_scanout(const virtio_gpu_set_scanout& req, Reader& rest);
  CommandResult on_resource_flush(const virtio_gpu_resource_flush& req, Reader& rest);
  CommandResult on_transfer_to_host_2d(const virtio_gpu_transfer_to_host_2d& req, Reader& rest);
  CommandResult on_resource_attach_backing(const virtio_gpu_resource_attach_backing& req, Reader& rest);
  CommandResult on_resource_detach_backing(const virtio_gpu_resource_detach_backing& req, Reader& rest);
  CommandResult on_update_cursor(const virtio_gpu_update_cursor& req, Reader& rest);
  CommandResult on_move_cursor(const virtio_gpu_update_cursor& req, Reader& rest);
  CommandResult on_get_capset_info(const virtio_gpu_get_capset_info& req, Reader& rest);
  CommandResult on_get_capset(const virtio_gpu_get_capset& req, Reader& rest);
  CommandResult on_ctx_create(const virtio_gpu_ctx_create& req, Reader& rest);
  CommandResult on_ctx_destroy(const virtio_gpu_ctx_destroy& req, Reader& rest);
  CommandResult on_ctx_attach_resource(const virtio_gpu_ctx_resource& req, Reader& rest);
  CommandResult on_ctx_detach_resource(const virtio_gpu_ctx_resource& req, Reader& rest);
  CommandResult on_resource_create_3d(const virtio_gpu_resource_create_3d& req, Reader& rest);
  CommandResult on_transfer_to_host_3d(const virtio_gpu_transfer_host_3d& req, Reader& rest);
  CommandResult on_transfer_from_host_3d(const virtio_gpu_transfer_host_3d& req, Reader& rest);
  CommandResult on_submit_3d(const virtio_gpu_cmd_submit& req, Reader& rest);
  CommandResult on_resource_create_blob(const virtio_gpu_resource_create_blob& req, Reader& rest);
  CommandResult on_set_scanout_blob(const virtio_gpu_set_scanout_blob& req, Reader& rest);
  CommandResult on_resource_map_blob(const virtio_gpu_resource_map_blob& req, Reader& rest);
  CommandResult on_resource_unmap_blob(const virtio_gpu_resource_unmap_blob& req, Reader& rest);

  // SET_SCANOUT_BLOB's description of the blob as an image (plane 0; every virtio-gpu format has one plane).
  struct BlobLayout {
    PixelFormat format = PixelFormat::B8G8R8X8;
    uint32_t width = 0;
    uint32_t height = 0;
    uint32_t stride = 0;  // bytes from one row to the next
    uint32_t offset = 0;  // byte of pixel (0, 0) in the blob
  };
  struct Scanout {
    uint32_t resource_id = 0;  // 0: disabled
    Rect rect;                 // the part of the resource shown (resource coordinates)
    std::optional<BlobLayout> blob{};
    // A blob scanout's pixels as last flushed (rect.width x rect.height, stride rect.width * 4): the blob lives
    // in guest memory or the renderer, and the display needs a host image. Charged to the resource budget.
    ScanoutShadow shadow{};
    // With dmabuf_scanout: the renderer's dma-buf of the resource (kept open so a new display gets it too),
    // and whether the current display shows it (then flushes send DMABUF_UPDATE and no pixels).
    std::optional<ExportedDmabuf> dmabuf{};
    bool dmabuf_shown = false;
  };

  enum class Outcome {
    Done,    // answered: put the chain on the used ring
    Stall,   // waits for the display (GET_DISPLAY_INFO / GET_EDID): keep it in stalled_ and stop draining
    Fenced,  // answered, but the response is released when its fence signals (fences_)
    Held,    // not answered yet: the frontend's reply decides the response (held_, complete_held)
  };
  // A control command whose answer waits for the frontend (MAP_BLOB, UNMAP_BLOB); later commands go on.
  struct HeldCommand {
    uint64_t token;
    virtio_gpu_ctrl_hdr hdr;  // the request's header, echoed in the response
    DescriptorChain chain;
  };

  // Host-visible memory (commands_map.cc). A handler that sends the frontend a request calls hold() and
  // returns an empty response; process() then keeps the chain, and complete_held() answers it.
  uint64_t hold();
  void complete_held(uint64_t token, ResponseBytes response);
  void complete_held(uint64_t token, GpuError error);
  // Fills in the response header from the request's (fence flags, fence_id, ctx_id, ring_idx) and writes it.
  static bool write_response(DescriptorChain& chain, const virtio_gpu_ctrl_hdr& hdr, ResponseBytes response,
                             uint32_t& written);
  void on_map_reply(uint64_t token, uint64_t offset, BackendReply reply);
  // Sends SHMEM_UNMAP for the mapping at `offset`; `token` (0: none) is a held UNMAP_BLOB its reply answers.
  // False when it could not be sent: the range is released, and a held command is the caller's to answer.
  bool start_unmap(uint64_t offset, uint64_t token);
  void on_unmap_reply(uint64_t token, uint64_t offset, BackendReply reply);
  // The guest gives up `resource_id`'s mapping (RESOURCE_UNREF, CTX_DESTROY): unmap it, whatever its state.
  void drop_mapping_of(uint32_t resource_id);
  void drop_mappings_of_context(uint32_t ctx_id);
  // Held commands are answered with ERR_UNSPEC now (queue stopping); their mappings become orphans.
  void answer_held_now();

  [[nodiscard]] ShmemRange shm_range(uint64_t offset, uint64_t len) const;

  // Drains `index` until empty or until a command must wait for the display (then `stalled_` holds it).
  void drain(size_t index);
  // Answers one chain (writing the response), and says what to do with it.
  Outcome process(size_t index, DescriptorChain& chain, uint32_t& written);
  // Creates the renderer fence for a fenced command; false when the command can complete at once.
  bool fence_command(const virtio_gpu_ctrl_hdr& hdr);
  // The renderer signalled `fence_id` on `ring`: release every held response of that ring up to it, in order.
  void on_fence(FenceRing ring, uint64_t fence_id);
  // A fenced chain process() just answered: held in fences_, or used at once when its fence already signalled.
  void hold_fenced(DescriptorChain chain, uint32_t written);
  // Puts released responses on the control queue's used ring (dropped with the queue when it is gone).
  void complete_fenced(std::vector<FenceTable::Response> responses);
  void register_renderer_poll();
  // Arms the fence timer while responses wait on a renderer without a poll fd; disarms it otherwise.
  void update_fence_timer();
  [[nodiscard]] Result<const GuestScatterList*, GpuError> backing_of(uint32_t resource_id) const;
  // TRANSFER_TO_HOST_3D and TRANSFER_FROM_HOST_3D: the same checks, then `direction` on the renderer.
  using Transfer3DCall = Result<void, Renderer3DError> (Renderer3D::*)(uint32_t, uint32_t, const Transfer3D&,
                                                                       const GuestMemory&, const GuestScatterList&);
  CommandResult transfer_3d(const virtio_gpu_transfer_host_3d& req, Transfer3DCall direction);
  // True when `type` can be answered now (GET_DISPLAY_INFO / GET_EDID wait for the display's answers).
  // Asks the display to refresh its layout for GET_DISPLAY_INFO (once per command).
  bool display_ready_for(uint32_t type, std::span<const std::byte> request);
  void on_display_changed();
  void update_display_registration();
  void disable_scanouts_of(uint32_t resource_id);
  // Disables scanout `s` (display included) and refunds its shadow.
  void clear_scanout(uint32_t s);
  // Reads `visible` (resource coordinates, inside the scanout's rect) of a blob scanout into its shadow.
  bool refresh_blob_shadow(uint32_t scanout_id, const Rect& visible);
  // RESOURCE_ATTACH_BACKING's and RESOURCE_CREATE_BLOB's entries: read, checked against guest memory, charged.
  Result<GuestScatterList, GpuError> read_backing(uint32_t nr_entries, Reader& rest, uint64_t& host_bytes);
  void send_flush(uint32_t scanout_id, const Rect& damage_in_resource);
  // Tells the display what scanout `s` now shows (a new resource or layout): exports it first when
  // dmabuf_scanout allows, then sends its dma-buf, or else its size (always when `resized`).
  void show_scanout(uint32_t s, bool resized);
  // Sends scanout `s`'s dma-buf to the display if it has one and the display takes it; sets dmabuf_shown.
  bool offer_dmabuf(uint32_t s);
  // Scanout `s`'s dma-buf from the renderer, or nullopt (not asked for, or the renderer cannot export it).
  std::optional<ExportedDmabuf> export_scanout(uint32_t s);

  GpuDeviceConfig cfg_;
  EventLoop* loop_;
  virtio_gpu_config config_{};
  uint64_t acked_features_ = 0;
  const GuestMemory* mem_ = nullptr;
  std::array<Queue*, 2> queues_{};
  std::optional<DescriptorChain> stalled_;  // a control command waiting for the display
  std::shared_ptr<Renderer2D> renderer_;
  Renderer3D* r3d_ = nullptr;  // the same object as renderer_ when 3D is on (Renderers guarantees it)
  struct Context {
    int poll_fd = -1;  // a Venus context's own fence fd, registered as Token::RendererPoll index ctx_id
    uint32_t capset = 0;
  };
  std::unordered_map<uint32_t, Context> contexts_;
  FenceTable fences_;
  FenceRing pending_fence_ring_;  // set by fence_command() for the chain process() just answered
  uint64_t pending_fence_id_ = 0;
  int registered_poll_fd_ = -1;
  UniqueFd fence_timer_;  // timerfd, created on first need (Token::RendererTimer)
  bool fence_timer_armed_ = false;
  DisplayFactory displays_;
  std::unique_ptr<Display> display_;
  bool display_refresh_requested_ = false;
  bool layout_fresh_ = false;  // a refreshed layout arrived during the current drain pass
  int registered_display_fd_ = -1;
  uint32_t registered_display_events_ = 0;
  std::optional<std::vector<ScanoutMode>> last_layout_;
  ResourceTable resources_;
  std::array<Scanout, kMaxScanouts> scanouts_{};
  // Each scanout's cursor as the guest last set it (the display has the image; device state needs it too).
  std::array<CursorState, kMaxScanouts> cursors_{};
  // Sends cursors_[s] (visible, its resource's image) to the display.
  void show_cursor(uint32_t s);
  std::optional<HostVisibleRegion> host_visible_;
  uint32_t blob_alignment_ = 0;  // config space; 0 unless BLOB_ALIGNMENT is offered
  ShmemMapper* mapper_ = nullptr;
  SharedObjects* shared_objects_ = nullptr;
  // Sharing (commands_uuid.cc): the buffer other devices would import for resource `id`, or why there is none.
  Result<UniqueFd, std::string> export_for_sharing(uint32_t id, const Resource& res);
  // SHARED_OBJECT_ADD of a resource's UUID with its buffer, once (nothing without a frontend channel).
  void announce_shared(uint32_t id, Resource& res);
  // SHARED_OBJECT_REMOVE of a resource's UUID if it was announced (unref, reset).
  void withdraw_shared(Resource& res);
  std::deque<HeldCommand> held_;
  // MAP_BLOBs (held) whose range only mappings on their way out overlap (RangeError::Leaving), oldest first.
  struct DeferredMap {
    uint64_t token;
    uint32_t resource_id;
    uint64_t offset;
    std::chrono::steady_clock::time_point asked;
  };
  static constexpr size_t kMaxDeferredMaps = 64;  // beyond: refused as an overlap
  std::deque<DeferredMap> deferred_maps_;
  // The second half of MAP_BLOB for the held command m.token (also a waiting one, retried): the range booked,
  // the renderer's fd, SHMEM_MAP sent; or the map queued in deferred_maps_ while only mappings on their way out
  // hold its range. An error (nothing booked) is the response to give.
  std::optional<GpuError> start_map(const DeferredMap& m);
  // Tries the MAP_BLOBs waiting for a range on its way out again (after any range is released).
  void retry_deferred_maps();
  uint64_t next_hold_token_ = 1;
  uint64_t hold_token_ = 0;  // set by hold() for the chain process() is answering
  virtio_gpu_ctrl_hdr held_hdr_{};
  bool logged_venus_cap_ = false;
  bool logged_uuid_ = false;            // the first RESOURCE_ASSIGN_UUID is logged at info, later ones at debug
  bool logged_unshared_ = false;        // the first UUID whose buffer cannot be shared is logged at info
  bool logged_export_failure_ = false;  // one info line when a scanout falls back to readback
  std::bitset<0x400> logged_unknown_;   // unknown command types already logged (one line each)
};

}  // namespace vgpu

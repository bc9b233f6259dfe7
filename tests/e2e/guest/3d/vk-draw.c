/* vk-draw: a headless Vulkan rendering with known output in the 3D e2e guest, checked pixel by pixel, and a round
 * trip through host-visible device memory. Proves that Mesa's Venus driver in the guest, talking to our backend
 * (and through it to the host's Vulkan driver), records, submits and fences work and reads results back intact.
 *
 *   vk-draw                        rounds "draw" and "copy" on the Venus device; VK_DRAW_ANY_DEVICE=1 takes
 *                                  device 0 (e.g. lavapipe)
 *   vk-draw scanout                round "scanout" instead: the frame shown on the first connected KMS output
 *                                  of /dev/dri/card0 until a line (or EOF) arrives on stdin
 *
 * run-3d.sh runs it as the `draw` step of its case `venus` (venus_run: under timeout, output in a log, whose last
 * lines become markers on a failure), with VK_DRIVER_FILES on the Venus ICD alone, and reports the `vk-draw ok`
 * line as `VGPU-E2E: venus:draw vk-draw ok ...`.
 *
 * Runs in the Debian sid guest root against its libvulkan.so.1 (soname stable); built on the host like the other
 * programs here (build-guest-gl.sh), with the host's Vulkan headers (1.3.239) and -lvulkan. No shaders, no WSI.
 *
 * Steps:
 *   1. an API 1.1 instance; one line per physical device, `vk-draw: device N: <name> driverID=<VkDriverId>
 *      type=<kind>`; picks the one whose driverID is VK_DRIVER_ID_MESA_VENUS (22)
 *   2. a device with one queue of the first family with VK_QUEUE_GRAPHICS_BIT
 *   3. round "draw": a 96x64 R8G8B8A8_UNORM image (optimal tiling, DEVICE_LOCAL preferred) in a render pass that
 *      clears it to blue, then vkCmdClearAttachments red on (8,8) 32x32 and green on (48,16) 40x40 (the later
 *      clear wins where rects overlap; these don't), then vkCmdCopyImageToBuffer into a HOST_VISIBLE buffer
 *      (poisoned first). Every pixel must match exactly: clears of 0.0 and 1.0 are exact in UNORM8.
 *   4. round "copy": 1 MiB of HOST_VISIBLE|HOST_COHERENT memory (with Venus, a host-visible blob the guest maps)
 *      filled with word i = i * 2654435761, unmapped, mapped again and checked; vkCmdCopyBuffer of its first
 *      64 KiB into a second HOST_VISIBLE buffer (poisoned first), checked after the fence.
 *   Each submit waits on a fence for at most 60 s.
 *   5. round "scanout" (vk-draw scanout): the picture of round "draw" at the size of the output's preferred mode
 *      (WxH: blue, red at (W/8,H/8) W/4 x H/4, green at (W/2,H/4) W/3 x H/2) in B8G8R8A8_UNORM, copied into a
 *      HOST_VISIBLE buffer (with Venus, a mappable host blob) and checked through its map, then made an XRGB8888
 *      framebuffer (pitch W*4) shown with drmModeSetCrtc, so that the guest kernel sends SET_SCANOUT_BLOB: of
 *      the Venus blob itself where the device exports dma-bufs (path=venus-blob), else of a GUEST blob holding
 *      a copy (path=guest-blob-copy; see round_scanout). Prints `vk-draw: shown WxH connector=<name> fb=<id>
 *      path=<path>` and waits for stdin; run-3d.sh then has the host check the backend's frame.
 * On success, after destroying everything, the last line is
 *   `vk-draw ok 96x64 device="<name>" driverID=<id> pixels=6144 copy=65536`, or
 *   `vk-draw scanout ok WxH connector=<name> device="<name>" driverID=<id> pixels=<W*H>`
 * Failures (stdout): `vk-draw: FAIL <call> returned <VkResult>`, `vk-draw: FAIL pixel (x,y) = RRGGBBAA want
 * RRGGBBAA` (the first 5, then the count), `vk-draw: FAIL <what> word I = XXXXXXXX want XXXXXXXX` (likewise).
 *
 * Exit status: 0 ok; 1 wrong pixels or words (both rounds run, then everything is destroyed); 2 a Vulkan call
 * failed (vkCreateInstance -9: no ICD could start), a fence timed out, no memory type fits, the device cannot
 * export dma-bufs or KMS refused the frame; 3 no Venus device (the guest fell back to another driver, e.g.
 * lavapipe).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vulkan/vulkan.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include <drm_fourcc.h>

#include "kms_output.h"
#include "virtgpu_uapi.h"

#define VK_DRAW_DRIVER_ID_MESA_VENUS 22 /* VK_DRIVER_ID_MESA_VENUS, spelled out for headers that predate it */
#define W 96
#define H 64
#define FENCE_TIMEOUT_NS 60000000000ull
#define COPY_SRC_BYTES (1u << 20)
#define COPY_BYTES (64u << 10)
#define SHOW_MAX 5

/* `CHECK(vkFoo(...))`: any result but VK_SUCCESS prints `vk-draw: FAIL vkFoo returned N` and exits 2. */
#define CHECK(call) check((call), #call)

static void check(VkResult r, const char *expr) {
  if (r == VK_SUCCESS) return;
  printf("vk-draw: FAIL %.*s returned %d\n", (int)strcspn(expr, "("), expr, (int)r);
  exit(2);
}

__attribute__((noreturn, format(printf, 2, 3))) static void fail(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("vk-draw: FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  exit(status);
}

/* --- the picture (RGBA8 as 0xRRGGBBAA) ------------------------------------------------------------------------ */

struct rect {
  int32_t x, y;
  uint32_t w, h, rgba;
};
#define N_RECTS 2
/* A clear colour and rectangles cleared over it, later ones on top, in an image of format `format`. */
struct picture {
  uint32_t w, h;
  VkFormat format; /* R8G8B8A8_UNORM or B8G8R8A8_UNORM (XRGB8888 in memory, for scanout) */
  uint32_t clear;
  struct rect rects[N_RECTS];
};
/* Round "draw": blue, red, green. */
static const struct picture DRAW = {W, H, VK_FORMAT_R8G8B8A8_UNORM, 0x0000ffff,
                                    {{8, 8, 32, 32, 0xff0000ff}, {48, 16, 40, 40, 0x00ff00ff}}};

/* Round "scanout": the same colours at a size only known at run time (run-3d.sh's host side draws the same). */
static struct picture scanout_picture(uint32_t w, uint32_t h) {
  struct picture p = {w, h, VK_FORMAT_B8G8R8A8_UNORM, DRAW.clear,
                      {{(int32_t)(w / 8), (int32_t)(h / 8), w / 4, h / 4, DRAW.rects[0].rgba},
                       {(int32_t)(w / 2), (int32_t)(h / 4), w / 3, h / 2, DRAW.rects[1].rgba}}};
  return p;
}

/* The part of r inside the image (vkCmdClearAttachments must stay in the render area). */
static VkRect2D rect_clip(const struct picture *p, const struct rect *r) {
  int32_t x0 = r->x < 0 ? 0 : r->x, y0 = r->y < 0 ? 0 : r->y;
  int32_t x1 = r->x + (int32_t)r->w, y1 = r->y + (int32_t)r->h;
  if (x1 > (int32_t)p->w) x1 = (int32_t)p->w;
  if (y1 > (int32_t)p->h) y1 = (int32_t)p->h;
  VkRect2D c = {{x0, y0}, {x1 > x0 ? (uint32_t)(x1 - x0) : 0, y1 > y0 ? (uint32_t)(y1 - y0) : 0}};
  return c;
}

static uint32_t want_pixel(const struct picture *p, int x, int y) {
  uint32_t c = p->clear;
  for (size_t k = 0; k < N_RECTS; k++) {
    VkRect2D r = rect_clip(p, &p->rects[k]);
    if (x >= r.offset.x && y >= r.offset.y && x < r.offset.x + (int32_t)r.extent.width &&
        y < r.offset.y + (int32_t)r.extent.height)
      c = p->rects[k].rgba;
  }
  return c;
}

static VkClearValue clear_value(uint32_t rgba) {
  VkClearValue v = {.color.float32 = {(float)(rgba >> 24) / 255.0f, (float)((rgba >> 16) & 0xff) / 255.0f,
                                      (float)((rgba >> 8) & 0xff) / 255.0f, (float)(rgba & 0xff) / 255.0f}};
  return v;
}

/* --- instance, device, buffers ---------------------------------------------------------------------------------- */

struct vk {
  VkInstance inst;
  VkPhysicalDevice pd;
  VkPhysicalDeviceMemoryProperties mem;
  char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
  uint32_t driver_id, qfam;
  VkDevice dev;
  VkQueue queue;
  VkCommandPool pool;
  VkCommandBuffer cmd;
  VkFence fence;
};

struct buf {
  VkBuffer buf;
  VkDeviceMemory mem;
  int coherent; /* else flush after host writes, invalidate before host reads */
};

static void instance_create(struct vk *v) {
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "vk-draw",
                           .apiVersion = VK_API_VERSION_1_1};
  VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
  CHECK(vkCreateInstance(&ici, NULL, &v->inst));
}

/* Whether the physical device has the extension `name`. */
static int has_device_extension(VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  int found = 0;
  CHECK(vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL));
  VkExtensionProperties *ext = calloc(n ? n : 1, sizeof *ext);
  if (ext == NULL) fail(2, "calloc %u extension properties", n);
  CHECK(vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ext));
  for (uint32_t i = 0; i < n && !found; i++) found = strcmp(ext[i].extensionName, name) == 0;
  free(ext);
  return found;
}

/* VkPhysicalDeviceDriverProperties may be chained where the device has Vulkan 1.2 or VK_KHR_driver_properties. */
static int has_driver_props(VkPhysicalDevice pd, uint32_t api) {
  if (VK_API_VERSION_MAJOR(api) > 1 || VK_API_VERSION_MINOR(api) >= 2) return 1;
  return has_device_extension(pd, "VK_KHR_driver_properties");
}

static const char *device_type(VkPhysicalDeviceType t) {
  static const char *const names[] = {"other", "integrated-gpu", "discrete-gpu", "virtual-gpu", "cpu"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* Lists the devices and takes the Venus one (any = device 0); exits 3 when there is none. */
static void device_pick(struct vk *v, int any) {
  uint32_t n = 0;
  CHECK(vkEnumeratePhysicalDevices(v->inst, &n, NULL));
  VkPhysicalDevice *pds = calloc(n ? n : 1, sizeof *pds);
  if (pds == NULL) fail(2, "calloc %u physical devices", n);
  CHECK(vkEnumeratePhysicalDevices(v->inst, &n, pds));
  int picked = -1;
  for (uint32_t i = 0; i < n; i++) {
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pds[i], &base);
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
    if (has_driver_props(pds[i], base.apiVersion)) p2.pNext = &drv;
    vkGetPhysicalDeviceProperties2(pds[i], &p2);
    printf("vk-draw: device %u: %s driverID=%u type=%s\n", i, p2.properties.deviceName, (unsigned)drv.driverID,
           device_type(p2.properties.deviceType));
    int want = any ? i == 0 : (uint32_t)drv.driverID == VK_DRAW_DRIVER_ID_MESA_VENUS;
    if (want && picked < 0) {
      picked = (int)i;
      v->pd = pds[i];
      v->driver_id = (uint32_t)drv.driverID;
      snprintf(v->name, sizeof v->name, "%s", p2.properties.deviceName);
    }
  }
  free(pds);
  if (picked < 0 && any) fail(3, "no Vulkan device at all");
  if (picked < 0) fail(3, "no Venus device (the guest fell back to another driver)");
  vkGetPhysicalDeviceMemoryProperties(v->pd, &v->mem);
}

static void device_create(struct vk *v, const char *const *exts, uint32_t n_exts) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(v->pd, &n, NULL);
  VkQueueFamilyProperties *qf = calloc(n ? n : 1, sizeof *qf);
  if (qf == NULL) fail(2, "calloc %u queue families", n);
  vkGetPhysicalDeviceQueueFamilyProperties(v->pd, &n, qf);
  v->qfam = UINT32_MAX;
  for (uint32_t i = 0; i < n && v->qfam == UINT32_MAX; i++) {
    if (qf[i].queueCount > 0 && (qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) v->qfam = i;
  }
  free(qf);
  if (v->qfam == UINT32_MAX) fail(2, "no queue family with VK_QUEUE_GRAPHICS_BIT on %s", v->name);
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = v->qfam,
                                 .queueCount = 1, .pQueuePriorities = &prio};
  VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                            .pQueueCreateInfos = &qci, .enabledExtensionCount = n_exts,
                            .ppEnabledExtensionNames = exts};
  CHECK(vkCreateDevice(v->pd, &dci, NULL, &v->dev));
  vkGetDeviceQueue(v->dev, v->qfam, 0, &v->queue);
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, .queueFamilyIndex = v->qfam};
  CHECK(vkCreateCommandPool(v->dev, &pci, NULL, &v->pool));
  VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = v->pool,
                                     .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
  CHECK(vkAllocateCommandBuffers(v->dev, &cai, &v->cmd));
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  CHECK(vkCreateFence(v->dev, &fci, NULL, &v->fence));
}

/* A memory type in `bits` with all of `need`, preferring one that also has all of `want`. */
static uint32_t mem_type(const struct vk *v, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags need,
                         const char *what) {
  for (int pass = 0; pass < 2; pass++) {
    VkMemoryPropertyFlags flags = pass == 0 ? want | need : need;
    for (uint32_t i = 0; i < v->mem.memoryTypeCount; i++) {
      if ((bits & (1u << i)) && (v->mem.memoryTypes[i].propertyFlags & flags) == flags) return i;
    }
  }
  fail(2, "no memory type for %s (allowed 0x%x, need flags 0x%x)", what, bits, (unsigned)need);
}

static VkDeviceMemory mem_alloc(const struct vk *v, VkMemoryRequirements req, uint32_t type) {
  VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                              .memoryTypeIndex = type};
  VkDeviceMemory m;
  CHECK(vkAllocateMemory(v->dev, &mai, NULL, &m));
  return m;
}

/* A buffer in HOST_VISIBLE memory with all of `need`, HOST_COHERENT where a type allowed has it. */
static void buf_create(const struct vk *v, struct buf *b, VkDeviceSize size, VkBufferUsageFlags usage,
                       VkMemoryPropertyFlags need, const char *what) {
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size, .usage = usage,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  CHECK(vkCreateBuffer(v->dev, &bci, NULL, &b->buf));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(v->dev, b->buf, &req);
  uint32_t type = mem_type(v, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | need, what);
  b->coherent = (v->mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
  b->mem = mem_alloc(v, req, type);
  CHECK(vkBindBufferMemory(v->dev, b->buf, b->mem, 0));
}

static void buf_destroy(const struct vk *v, struct buf *b) {
  vkDestroyBuffer(v->dev, b->buf, NULL);
  vkFreeMemory(v->dev, b->mem, NULL);
}

/* Makes host writes visible to the device (flush) or device writes to the host (invalidate) on non-coherent memory. */
static void buf_sync(const struct vk *v, const struct buf *b, int flush) {
  if (b->coherent) return;
  VkMappedMemoryRange r = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = b->mem, .size = VK_WHOLE_SIZE};
  if (flush) {
    CHECK(vkFlushMappedMemoryRanges(v->dev, 1, &r));
  } else {
    CHECK(vkInvalidateMappedMemoryRanges(v->dev, 1, &r));
  }
}

static void cmd_begin(const struct vk *v) {
  CHECK(vkResetCommandPool(v->dev, v->pool, 0));
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  CHECK(vkBeginCommandBuffer(v->cmd, &bi));
}

/* Ends the commands with the transfer's writes made visible to the host, submits, waits for the fence. */
static void cmd_submit_wait(const struct vk *v, const char *what) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                        .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
  vkCmdPipelineBarrier(v->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0,
                       NULL);
  CHECK(vkEndCommandBuffer(v->cmd));
  CHECK(vkResetFences(v->dev, 1, &v->fence));
  VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &v->cmd};
  CHECK(vkQueueSubmit(v->queue, 1, &si, v->fence));
  VkResult r = vkWaitForFences(v->dev, 1, &v->fence, VK_TRUE, FENCE_TIMEOUT_NS);
  if (r == VK_TIMEOUT) fail(2, "vkWaitForFences timed out after %llu s (%s)", FENCE_TIMEOUT_NS / 1000000000ull, what);
  CHECK(r);
}

/* --- round "draw": clears into an image, read back through a buffer ------------------------------------------- */

struct target {
  VkImage img;
  VkDeviceMemory mem;
  VkImageView view;
  VkRenderPass rp;
  VkFramebuffer fb;
};

static void target_create(const struct vk *v, struct target *t, const struct picture *p) {
  VkImageCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO, .imageType = VK_IMAGE_TYPE_2D,
                           .format = p->format, .extent = {p->w, p->h, 1}, .mipLevels = 1, .arrayLayers = 1,
                           .samples = VK_SAMPLE_COUNT_1_BIT, .tiling = VK_IMAGE_TILING_OPTIMAL,
                           .usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT,
                           .sharingMode = VK_SHARING_MODE_EXCLUSIVE, .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED};
  CHECK(vkCreateImage(v->dev, &ici, NULL, &t->img));
  VkMemoryRequirements req;
  vkGetImageMemoryRequirements(v->dev, t->img, &req);
  t->mem = mem_alloc(v, req, mem_type(v, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, "the image"));
  CHECK(vkBindImageMemory(v->dev, t->img, t->mem, 0));
  VkImageViewCreateInfo vci = {.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO, .image = t->img,
                               .viewType = VK_IMAGE_VIEW_TYPE_2D, .format = p->format,
                               .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
  CHECK(vkCreateImageView(v->dev, &vci, NULL, &t->view));
  VkAttachmentDescription att = {.format = p->format, .samples = VK_SAMPLE_COUNT_1_BIT,
                                 .loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR, .storeOp = VK_ATTACHMENT_STORE_OP_STORE,
                                 .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
                                 .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
                                 .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
                                 .finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL};
  VkAttachmentReference ref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
  VkSubpassDescription sub = {.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS, .colorAttachmentCount = 1,
                              .pColorAttachments = &ref};
  /* The clears' writes, then the final layout transition, before the copy reads the image. */
  VkSubpassDependency dep = {.srcSubpass = 0, .dstSubpass = VK_SUBPASS_EXTERNAL,
                             .srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
                             .dstStageMask = VK_PIPELINE_STAGE_TRANSFER_BIT,
                             .srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
                             .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
  VkRenderPassCreateInfo rci = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO, .attachmentCount = 1,
                                .pAttachments = &att, .subpassCount = 1, .pSubpasses = &sub, .dependencyCount = 1,
                                .pDependencies = &dep};
  CHECK(vkCreateRenderPass(v->dev, &rci, NULL, &t->rp));
  VkFramebufferCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO, .renderPass = t->rp,
                                 .attachmentCount = 1, .pAttachments = &t->view, .width = p->w, .height = p->h,
                                 .layers = 1};
  CHECK(vkCreateFramebuffer(v->dev, &fci, NULL, &t->fb));
}

static void target_destroy(const struct vk *v, struct target *t) {
  vkDestroyFramebuffer(v->dev, t->fb, NULL);
  vkDestroyRenderPass(v->dev, t->rp, NULL);
  vkDestroyImageView(v->dev, t->view, NULL);
  vkDestroyImage(v->dev, t->img, NULL);
  vkFreeMemory(v->dev, t->mem, NULL);
}

static void record_draw(const struct vk *v, const struct target *t, const struct picture *p, VkBuffer out) {
  VkClearValue clear = clear_value(p->clear);
  VkRenderPassBeginInfo rbi = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO, .renderPass = t->rp,
                               .framebuffer = t->fb, .renderArea = {{0, 0}, {p->w, p->h}}, .clearValueCount = 1,
                               .pClearValues = &clear};
  vkCmdBeginRenderPass(v->cmd, &rbi, VK_SUBPASS_CONTENTS_INLINE);
  for (size_t k = 0; k < N_RECTS; k++) {
    VkClearAttachment ca = {VK_IMAGE_ASPECT_COLOR_BIT, 0, clear_value(p->rects[k].rgba)};
    VkClearRect cr = {rect_clip(p, &p->rects[k]), 0, 1};
    if (cr.rect.extent.width > 0 && cr.rect.extent.height > 0) vkCmdClearAttachments(v->cmd, 1, &ca, 1, &cr);
  }
  vkCmdEndRenderPass(v->cmd);
  VkBufferImageCopy region = {.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1},
                              .imageExtent = {p->w, p->h, 1}};
  vkCmdCopyImageToBuffer(v->cmd, t->img, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, out, 1, &region);
}

/* Every pixel (tightly packed rows) against want_pixel(); prints the first mismatches and returns how many. */
static long check_pixels(const struct picture *p, const uint8_t *px) {
  const int bgra = p->format == VK_FORMAT_B8G8R8A8_UNORM;
  long bad = 0;
  for (int y = 0; y < (int)p->h; y++) {
    for (int x = 0; x < (int)p->w; x++, px += 4) {
      uint32_t r = px[bgra ? 2 : 0], b = px[bgra ? 0 : 2];
      uint32_t got = r << 24 | (uint32_t)px[1] << 16 | b << 8 | px[3];
      uint32_t want = want_pixel(p, x, y);
      if (got != want && bad++ < SHOW_MAX) printf("vk-draw: FAIL pixel (%d,%d) = %08x want %08x\n", x, y, got, want);
    }
  }
  if (bad) printf("vk-draw: FAIL %ld of %u pixels differ\n", bad, p->w * p->h);
  return bad;
}

/* Poisons `out` (mapped at *map on return), draws `p` into `t`, copies it into `out` and checks every pixel
 * read back through the map; returns how many differ. */
static long draw_and_check(const struct vk *v, const struct target *t, const struct picture *p, const struct buf *out,
                           void **map, const char *what) {
  const size_t bytes = (size_t)p->w * p->h * 4;
  CHECK(vkMapMemory(v->dev, out->mem, 0, VK_WHOLE_SIZE, 0, map));
  memset(*map, 0x5a, bytes); /* poison: a copy that never lands must not pass */
  buf_sync(v, out, 1);
  cmd_begin(v);
  record_draw(v, t, p, out->buf);
  cmd_submit_wait(v, what);
  buf_sync(v, out, 0);
  return check_pixels(p, *map);
}

static long round_draw(const struct vk *v) {
  struct target t;
  struct buf out;
  void *map;
  target_create(v, &t, &DRAW);
  buf_create(v, &out, W * H * 4, VK_BUFFER_USAGE_TRANSFER_DST_BIT, 0, "the readback buffer");
  long bad = draw_and_check(v, &t, &DRAW, &out, &map, "draw");
  vkUnmapMemory(v->dev, out.mem);
  buf_destroy(v, &out);
  target_destroy(v, &t);
  return bad;
}

/* --- round "copy": host-visible memory mapped twice, then copied by the GPU --------------------------------- */

static uint32_t pattern(uint32_t i) { return i * 2654435761u; }

static long check_words(const uint32_t *w, uint32_t n, const char *what) {
  long bad = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (w[i] != pattern(i) && bad++ < SHOW_MAX)
      printf("vk-draw: FAIL %s word %u = %08x want %08x\n", what, i, w[i], pattern(i));
  }
  if (bad) printf("vk-draw: FAIL %s: %ld of %u words differ\n", what, bad, n);
  return bad;
}

static long round_copy(const struct vk *v) {
  struct buf src, dst;
  void *map, *dmap;
  buf_create(v, &src, COPY_SRC_BYTES, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
             "the 1 MiB source buffer");
  buf_create(v, &dst, COPY_BYTES, VK_BUFFER_USAGE_TRANSFER_DST_BIT, 0, "the copy's buffer");
  CHECK(vkMapMemory(v->dev, src.mem, 0, VK_WHOLE_SIZE, 0, &map));
  for (uint32_t i = 0; i < COPY_SRC_BYTES / 4; i++) ((uint32_t *)map)[i] = pattern(i);
  vkUnmapMemory(v->dev, src.mem);
  CHECK(vkMapMemory(v->dev, src.mem, 0, VK_WHOLE_SIZE, 0, &map));
  long bad = check_words(map, COPY_SRC_BYTES / 4, "remap");
  CHECK(vkMapMemory(v->dev, dst.mem, 0, VK_WHOLE_SIZE, 0, &dmap));
  memset(dmap, 0xa5, COPY_BYTES);
  buf_sync(v, &dst, 1);
  cmd_begin(v);
  VkBufferCopy region = {0, 0, COPY_BYTES};
  vkCmdCopyBuffer(v->cmd, src.buf, dst.buf, 1, &region);
  cmd_submit_wait(v, "copy");
  buf_sync(v, &dst, 0);
  bad += check_words(dmap, COPY_BYTES / 4, "copy");
  vkUnmapMemory(v->dev, dst.mem);
  vkUnmapMemory(v->dev, src.mem);
  buf_destroy(v, &dst);
  buf_destroy(v, &src);
  return bad;
}

/* --- round "scanout": the frame in an exported dma-buf, shown with KMS ---------------------------------------- */

/* Two ways onto the screen, both a blob scanout (SET_SCANOUT_BLOB):
 *   venus-blob       the Vulkan memory itself, exported as a dma-buf and imported on the card (PRIME): the guest
 *                    kernel scans out Venus's own HOST3D blob. Mesa's Venus driver exports only where the host's
 *                    Vulkan driver has VK_EXT_external_memory_dma_buf (a real GPU; lavapipe only with udmabuf).
 *   guest-blob-copy  otherwise: the frame, read back through the Venus memory's map (the host-visible blob), is
 *                    copied into a GUEST blob made on the card (DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB). */
#define DMA_BUF VK_EXTERNAL_MEMORY_HANDLE_TYPE_DMA_BUF_BIT_EXT
static const char *const SCANOUT_EXTS[] = {"VK_KHR_external_memory_fd", "VK_EXT_external_memory_dma_buf"};
#define N_SCANOUT_EXTS (sizeof SCANOUT_EXTS / sizeof SCANOUT_EXTS[0])

/* Whether the device exports a transfer-destination buffer's memory as a dma-buf. */
static int exports_dma_buf(const struct vk *v) {
  for (size_t i = 0; i < N_SCANOUT_EXTS; i++) {
    if (!has_device_extension(v->pd, SCANOUT_EXTS[i])) return 0;
  }
  VkPhysicalDeviceExternalBufferInfo info = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_EXTERNAL_BUFFER_INFO,
                                             .usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT, .handleType = DMA_BUF};
  VkExternalBufferProperties props = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_BUFFER_PROPERTIES};
  vkGetPhysicalDeviceExternalBufferProperties(v->pd, &info, &props);
  return (props.externalMemoryProperties.externalMemoryFeatures & VK_EXTERNAL_MEMORY_FEATURE_EXPORTABLE_BIT) != 0;
}

/* A buffer of `size` bytes in HOST_VISIBLE memory allocated for export as a dma-buf (dedicated, as drivers that
 * export prefer). */
static void buf_create_exportable(const struct vk *v, struct buf *b, VkDeviceSize size) {
  VkExternalMemoryBufferCreateInfo ext = {.sType = VK_STRUCTURE_TYPE_EXTERNAL_MEMORY_BUFFER_CREATE_INFO,
                                          .handleTypes = DMA_BUF};
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .pNext = &ext, .size = size,
                            .usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  CHECK(vkCreateBuffer(v->dev, &bci, NULL, &b->buf));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(v->dev, b->buf, &req);
  uint32_t type = mem_type(v, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                           VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, "the scanout buffer");
  b->coherent = (v->mem.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
  VkMemoryDedicatedAllocateInfo ded = {.sType = VK_STRUCTURE_TYPE_MEMORY_DEDICATED_ALLOCATE_INFO, .buffer = b->buf};
  VkExportMemoryAllocateInfo exp = {.sType = VK_STRUCTURE_TYPE_EXPORT_MEMORY_ALLOCATE_INFO, .pNext = &ded,
                                    .handleTypes = DMA_BUF};
  VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .pNext = &exp,
                              .allocationSize = req.size, .memoryTypeIndex = type};
  CHECK(vkAllocateMemory(v->dev, &mai, NULL, &b->mem));
  CHECK(vkBindBufferMemory(v->dev, b->buf, b->mem, 0));
}

/* The GEM handle on the card of the buffer's memory, exported as a dma-buf (closed again once imported). */
static uint32_t import_venus_blob(const struct vk *v, const struct kms_output *o, VkDeviceMemory mem) {
  PFN_vkGetMemoryFdKHR get_fd = (PFN_vkGetMemoryFdKHR)vkGetDeviceProcAddr(v->dev, "vkGetMemoryFdKHR");
  if (get_fd == NULL) fail(2, "vkGetDeviceProcAddr(vkGetMemoryFdKHR) is NULL");
  VkMemoryGetFdInfoKHR gi = {.sType = VK_STRUCTURE_TYPE_MEMORY_GET_FD_INFO_KHR, .memory = mem, .handleType = DMA_BUF};
  int fd = -1;
  uint32_t handle = 0;
  CHECK(get_fd(v->dev, &gi, &fd));
  if (drmPrimeFDToHandle(o->fd, fd, &handle) != 0) fail(2, "drmPrimeFDToHandle: %s", strerror(errno));
  close(fd);
  return handle;
}

/* A GUEST blob of `size` bytes on the card holding a copy of `pixels`; returns its GEM handle. */
static uint32_t guest_blob_copy(const struct kms_output *o, const void *pixels, size_t size) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  struct drm_virtgpu_resource_create_blob b = {.blob_mem = VIRTGPU_BLOB_MEM_GUEST,
                                               .blob_flags = VIRTGPU_BLOB_FLAG_USE_MAPPABLE |
                                                             VIRTGPU_BLOB_FLAG_USE_SHAREABLE,
                                               .size = (size + page - 1) / page * page};
  if (drmIoctl(o->fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &b) != 0)
    fail(2, "DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB (guest, %llu bytes): %s", (unsigned long long)b.size,
         strerror(errno));
  struct drm_virtgpu_map m = {.handle = b.bo_handle};
  if (drmIoctl(o->fd, DRM_IOCTL_VIRTGPU_MAP, &m) != 0) fail(2, "DRM_IOCTL_VIRTGPU_MAP: %s", strerror(errno));
  void *map = mmap(NULL, (size_t)b.size, PROT_READ | PROT_WRITE, MAP_SHARED, o->fd, (off_t)m.offset);
  if (map == MAP_FAILED) fail(2, "mmap of the guest blob: %s", strerror(errno));
  memcpy(map, pixels, size);
  munmap(map, (size_t)b.size);
  return b.bo_handle;
}

/* Shows the buffer `handle` (w x h XRGB8888, pitch w*4) on the output; returns the framebuffer's id. */
static uint32_t kms_show(struct kms_output *o, uint32_t handle, uint32_t w, uint32_t h) {
  uint32_t fb = 0, handles[4] = {handle}, pitches[4] = {w * 4}, offsets[4] = {0};
  if (drmModeAddFB2(o->fd, w, h, DRM_FORMAT_XRGB8888, handles, pitches, offsets, &fb, 0) != 0)
    fail(2, "drmModeAddFB2 %ux%u XRGB8888: %s", w, h, strerror(errno));
  if (drmModeSetCrtc(o->fd, o->crtc_id, fb, 0, 0, &o->conn_id, 1, &o->mode) != 0)
    fail(2, "drmModeSetCrtc %s %ux%u: %s", o->name, w, h, strerror(errno));
  if (drmModeDirtyFB(o->fd, fb, NULL, 0) != 0 && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
    fail(2, "drmModeDirtyFB: %s", strerror(errno));
  return fb;
}

static long round_scanout(const struct vk *v, struct kms_output *o, int zero_copy) {
  const struct picture pic = scanout_picture(o->mode.hdisplay, o->mode.vdisplay);
  const size_t bytes = (size_t)pic.w * pic.h * 4;
  struct target t;
  struct buf out;
  void *map;
  target_create(v, &t, &pic);
  if (zero_copy) {
    buf_create_exportable(v, &out, bytes);
  } else {
    buf_create(v, &out, bytes, VK_BUFFER_USAGE_TRANSFER_DST_BIT, 0, "the scanout buffer");
  }
  long bad = draw_and_check(v, &t, &pic, &out, &map, "scanout");
  const uint32_t handle = zero_copy ? import_venus_blob(v, o, out.mem) : guest_blob_copy(o, map, bytes);
  vkUnmapMemory(v->dev, out.mem);
  uint32_t fb = kms_show(o, handle, pic.w, pic.h);
  printf("vk-draw: shown %ux%u connector=%s fb=%u path=%s\n", pic.w, pic.h, o->name, fb,
         zero_copy ? "venus-blob" : "guest-blob-copy");
  /* Shown until run-3d.sh writes a line (the host has checked the backend's frame) or closes stdin. */
  char line[64];
  (void)!fgets(line, sizeof line, stdin);
  drmModeRmFB(o->fd, fb);
  struct drm_gem_close gc = {.handle = handle};
  drmIoctl(o->fd, DRM_IOCTL_GEM_CLOSE, &gc);
  buf_destroy(v, &out);
  target_destroy(v, &t);
  return bad;
}

static void vk_destroy(struct vk *v) {
  vkDestroyFence(v->dev, v->fence, NULL);
  vkFreeCommandBuffers(v->dev, v->pool, 1, &v->cmd);
  vkDestroyCommandPool(v->dev, v->pool, NULL);
  vkDestroyDevice(v->dev, NULL);
  vkDestroyInstance(v->inst, NULL);
}

int main(int argc, char **argv) {
  struct vk v = {0};
  const char *any = getenv("VK_DRAW_ANY_DEVICE");
  const int scanout = argc == 2 && strcmp(argv[1], "scanout") == 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 2 || (argc == 2 && !scanout)) {
    fprintf(stderr, "usage: vk-draw [scanout]\n");
    return 2;
  }
  instance_create(&v);
  device_pick(&v, any != NULL && strcmp(any, "1") == 0);
  if (scanout) {
    const int zero_copy = exports_dma_buf(&v);
    struct kms_output o;
    if (kms_output_probe(&o, "/dev/dri/card0") != 0) fail(2, "%s", o.error);
    device_create(&v, SCANOUT_EXTS, zero_copy ? N_SCANOUT_EXTS : 0);
    long bad = round_scanout(&v, &o, zero_copy);
    close(o.fd);
    vk_destroy(&v);
    if (bad) return 1;
    printf("vk-draw scanout ok %ux%u connector=%s device=\"%s\" driverID=%u pixels=%u\n", o.mode.hdisplay,
           o.mode.vdisplay, o.name, v.name, v.driver_id, (unsigned)o.mode.hdisplay * o.mode.vdisplay);
    return 0;
  }
  device_create(&v, NULL, 0);
  long bad = round_draw(&v);
  bad += round_copy(&v);
  vk_destroy(&v);
  if (bad) return 1;
  printf("vk-draw ok %dx%d device=\"%s\" driverID=%u pixels=%d copy=%u\n", W, H, v.name, v.driver_id, W * H,
         COPY_BYTES);
  return 0;
}

/* vk-draw: a headless Vulkan rendering with known output in the 3D e2e guest, checked pixel by pixel, and a round
 * trip through host-visible device memory. Proves that Mesa's Venus driver in the guest, talking to our backend
 * (and through it to the host's Vulkan driver), records, submits and fences work and reads results back intact.
 *
 *   vk-draw                        takes the Venus device; VK_DRAW_ANY_DEVICE=1 takes device 0 (e.g. lavapipe)
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
 * On success, after destroying everything, the last line is
 *   `vk-draw ok 96x64 device="<name>" driverID=<id> pixels=6144 copy=65536`
 * Failures (stdout): `vk-draw: FAIL <call> returned <VkResult>`, `vk-draw: FAIL pixel (x,y) = RRGGBBAA want
 * RRGGBBAA` (the first 5, then the count), `vk-draw: FAIL <what> word I = XXXXXXXX want XXXXXXXX` (likewise).
 *
 * Exit status: 0 ok; 1 wrong pixels or words (both rounds run, then everything is destroyed); 2 a Vulkan call
 * failed (vkCreateInstance -9: no ICD could start), a fence timed out or no memory type fits; 3 no Venus device
 * (the guest fell back to another driver, e.g. lavapipe).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

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
static const uint32_t CLEAR_RGBA = 0x0000ffff;                                                 /* blue */
static const struct rect RECTS[] = {{8, 8, 32, 32, 0xff0000ff}, {48, 16, 40, 40, 0x00ff00ff}}; /* red, green */
#define N_RECTS (sizeof RECTS / sizeof RECTS[0])

/* The part of r inside the image (vkCmdClearAttachments must stay in the render area). */
static VkRect2D rect_clip(const struct rect *r) {
  int32_t x0 = r->x < 0 ? 0 : r->x, y0 = r->y < 0 ? 0 : r->y;
  int32_t x1 = r->x + (int32_t)r->w, y1 = r->y + (int32_t)r->h;
  if (x1 > W) x1 = W;
  if (y1 > H) y1 = H;
  VkRect2D c = {{x0, y0}, {x1 > x0 ? (uint32_t)(x1 - x0) : 0, y1 > y0 ? (uint32_t)(y1 - y0) : 0}};
  return c;
}

static uint32_t want_pixel(int x, int y) {
  uint32_t c = CLEAR_RGBA;
  for (size_t k = 0; k < N_RECTS; k++) {
    VkRect2D r = rect_clip(&RECTS[k]);
    if (x >= r.offset.x && y >= r.offset.y && x < r.offset.x + (int32_t)r.extent.width &&
        y < r.offset.y + (int32_t)r.extent.height)
      c = RECTS[k].rgba;
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

/* VkPhysicalDeviceDriverProperties may be chained where the device has Vulkan 1.2 or VK_KHR_driver_properties. */
static int has_driver_props(VkPhysicalDevice pd, uint32_t api) {
  if (VK_API_VERSION_MAJOR(api) > 1 || VK_API_VERSION_MINOR(api) >= 2) return 1;
  uint32_t n = 0;
  int found = 0;
  CHECK(vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL));
  VkExtensionProperties *ext = calloc(n ? n : 1, sizeof *ext);
  if (ext == NULL) fail(2, "calloc %u extension properties", n);
  CHECK(vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ext));
  for (uint32_t i = 0; i < n && !found; i++) found = strcmp(ext[i].extensionName, "VK_KHR_driver_properties") == 0;
  free(ext);
  return found;
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

static void device_create(struct vk *v) {
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
                            .pQueueCreateInfos = &qci};
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

static void target_create(const struct vk *v, struct target *t) {
  VkImageCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO, .imageType = VK_IMAGE_TYPE_2D,
                           .format = VK_FORMAT_R8G8B8A8_UNORM, .extent = {W, H, 1}, .mipLevels = 1, .arrayLayers = 1,
                           .samples = VK_SAMPLE_COUNT_1_BIT, .tiling = VK_IMAGE_TILING_OPTIMAL,
                           .usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT,
                           .sharingMode = VK_SHARING_MODE_EXCLUSIVE, .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED};
  CHECK(vkCreateImage(v->dev, &ici, NULL, &t->img));
  VkMemoryRequirements req;
  vkGetImageMemoryRequirements(v->dev, t->img, &req);
  t->mem = mem_alloc(v, req, mem_type(v, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, "the image"));
  CHECK(vkBindImageMemory(v->dev, t->img, t->mem, 0));
  VkImageViewCreateInfo vci = {.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO, .image = t->img,
                               .viewType = VK_IMAGE_VIEW_TYPE_2D, .format = VK_FORMAT_R8G8B8A8_UNORM,
                               .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
  CHECK(vkCreateImageView(v->dev, &vci, NULL, &t->view));
  VkAttachmentDescription att = {.format = VK_FORMAT_R8G8B8A8_UNORM, .samples = VK_SAMPLE_COUNT_1_BIT,
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
                                 .attachmentCount = 1, .pAttachments = &t->view, .width = W, .height = H,
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

static void record_draw(const struct vk *v, const struct target *t, VkBuffer out) {
  VkClearValue clear = clear_value(CLEAR_RGBA);
  VkRenderPassBeginInfo rbi = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO, .renderPass = t->rp,
                               .framebuffer = t->fb, .renderArea = {{0, 0}, {W, H}}, .clearValueCount = 1,
                               .pClearValues = &clear};
  vkCmdBeginRenderPass(v->cmd, &rbi, VK_SUBPASS_CONTENTS_INLINE);
  for (size_t k = 0; k < N_RECTS; k++) {
    VkClearAttachment ca = {VK_IMAGE_ASPECT_COLOR_BIT, 0, clear_value(RECTS[k].rgba)};
    VkClearRect cr = {rect_clip(&RECTS[k]), 0, 1};
    if (cr.rect.extent.width > 0 && cr.rect.extent.height > 0) vkCmdClearAttachments(v->cmd, 1, &ca, 1, &cr);
  }
  vkCmdEndRenderPass(v->cmd);
  VkBufferImageCopy region = {.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1}, .imageExtent = {W, H, 1}};
  vkCmdCopyImageToBuffer(v->cmd, t->img, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, out, 1, &region);
}

/* Every pixel against want_pixel(); prints the first mismatches and returns how many there are. */
static long check_pixels(const uint8_t *px) {
  long bad = 0;
  for (int y = 0; y < H; y++) {
    for (int x = 0; x < W; x++, px += 4) {
      uint32_t got = (uint32_t)px[0] << 24 | (uint32_t)px[1] << 16 | (uint32_t)px[2] << 8 | px[3];
      uint32_t want = want_pixel(x, y);
      if (got != want && bad++ < SHOW_MAX) printf("vk-draw: FAIL pixel (%d,%d) = %08x want %08x\n", x, y, got, want);
    }
  }
  if (bad) printf("vk-draw: FAIL %ld of %d pixels differ\n", bad, W * H);
  return bad;
}

static long round_draw(const struct vk *v) {
  struct target t;
  struct buf out;
  void *map;
  target_create(v, &t);
  buf_create(v, &out, W * H * 4, VK_BUFFER_USAGE_TRANSFER_DST_BIT, 0, "the readback buffer");
  CHECK(vkMapMemory(v->dev, out.mem, 0, VK_WHOLE_SIZE, 0, &map));
  memset(map, 0x5a, W * H * 4); /* poison: a copy that never lands must not pass */
  buf_sync(v, &out, 1);
  cmd_begin(v);
  record_draw(v, &t, out.buf);
  cmd_submit_wait(v, "draw");
  buf_sync(v, &out, 0);
  long bad = check_pixels(map);
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

int main(void) {
  struct vk v = {0};
  const char *any = getenv("VK_DRAW_ANY_DEVICE");
  setvbuf(stdout, NULL, _IOLBF, 0);
  instance_create(&v);
  device_pick(&v, any != NULL && strcmp(any, "1") == 0);
  device_create(&v);
  long bad = round_draw(&v);
  bad += round_copy(&v);
  vkDestroyFence(v.dev, v.fence, NULL);
  vkFreeCommandBuffers(v.dev, v.pool, 1, &v.cmd);
  vkDestroyCommandPool(v.dev, v.pool, NULL);
  vkDestroyDevice(v.dev, NULL);
  vkDestroyInstance(v.inst, NULL);
  if (bad) return 1;
  printf("vk-draw ok %dx%d device=\"%s\" driverID=%u pixels=%d copy=%u\n", W, H, v.name, v.driver_id, W * H,
         COPY_BYTES);
  return 0;
}

/* vgpu-draw: draws known pixels through DRM/KMS on the e2e guest's virtio-gpu, for display.sh to screendump.
 *
 *   vgpu-draw CASE [--ctl DEV] [--timeout SECONDS]
 *   CASE: modeset | partial | cursor | two-outputs | mode-change | rebind | suspend | repaint
 *
 * rebind: a guest device reset. The virtio_gpu driver is unbound from its virtio device and bound again
 * (sysfs unbind/bind of the device /sys/class/drm/card0/device names): the virtio core resets the device (status
 * 0; QEMU >= 8.2 then sends the backend RESET_DEVICE where negotiated) and the new driver instance starts from
 * nothing, allocating resource ids from 1 again. Then the modeset case on it: `VGPU-E2E: rebind ok WxH`.
 *
 * suspend: the guest suspends to RAM (`mem` into /sys/power/state; QEMU with ICH9-LPC.disable_s3=0) and the
 * write returns once the host's QMP system_wakeup resumed it. QEMU resets the virtio device on wakeup and sends
 * the backend a new display socket; Linux's virtio_gpu has no freeze/restore (6.1 to 7.2), so its queues are
 * gone after resume and the driver is bound again (as in rebind) before it draws quad-b (not quad-a, so that
 * a frame left from before the suspend cannot pass): `VGPU-E2E: suspend ok WxH`.
 *
 * Raw ioctls on /dev/dri/card0 (no libdrm): GETRESOURCES, GETCONNECTOR, GETENCODER, CREATE_DUMB, MAP_DUMB +
 * mmap, ADDFB, SETCRTC, DIRTYFB, CURSOR/CURSOR2. Built static on the host (build-guest-programs.sh).
 *
 * repaint (bench/guest_fps.sh, not a display.sh case): sets Virtual-1 to 1920x1080 from the connector's mode
 * list, then repaints the whole dumb buffer with a new solid colour each iteration and DIRTYFBs the full frame:
 * a warm-up, then a measured period (guest CLOCK_MONOTONIC), and prints
 * `VGPU-E2E: repaint ok <frames> frames in <seconds> s = <fps> fps 1920x1080`. It uses no control tty. The
 * mode is the preferred one instead with vgpu_e2e.repaint_preferred=1 (restart.sh, which needs no particular size).
 * The periods come from the kernel command line, vgpu_e2e.repaint_s= (default 10) and vgpu_e2e.warmup_s=
 * (default 1). DIRTYFB only queues TRANSFER_TO_HOST_2D + RESOURCE_FLUSH; the control queue's size bounds how
 * far the guest runs ahead, so after the warm-up the rate is the backend's (with QEMU's display) sustained one.
 *
 * Protocol with the host (display.sh): after each step the program prints a marker on stdout (the serial
 * console, ttyS0), `VGPU-E2E: <case>[:<step>] ok <details>`, then blocks reading a line from the control
 * tty (--ctl, default /dev/ttyS1, which QEMU connects to a pipe the host writes): `next` goes on, `quit`
 * ends the program. On an error it prints `VGPU-E2E: <case> FAIL <what>: <errno text>` and exits 1. The
 * control tty is opened (raw, no echo, input flushed) before the first marker: the host writes only after a
 * marker, so nothing it sends can be lost to a closed port.
 *
 * The pixels (tests/e2e/ppm_check.py draws the same, keep them in sync):
 *   quad-a / quad-b  four solid quadrants split at (W/2, H/2) and a 1-pixel white border; the X byte of the
 *                    XRGB8888 pixels is 0 (an X channel taken for alpha would show)
 *                    quad-a: TL ff0000, TR 00ff00, BL 0000ff, BR c08040
 *                    quad-b: TL 00ffff, TR ff00ff, BL ffff00, BR 4080c0
 *   gradient         at absolute (x, y): R = 3x mod 256, G = 5y mod 256, B = (x + y) mod 256 xor 0xa5
 *   cursor (ARGB)    64x64; left half x < 32: ffff0000 for y < 32, 00000000 (transparent) below; right half:
 *                    8000ff00 for y < 32, ff0000ff below; the diagonal x == y is ffffffff
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "drm_uapi.h"
#include "e2e_marker.h"

#define MAX_MODES 256
#define MAX_OUTPUTS 16

static int xioctl(int fd, unsigned long req, void *arg) {
  int r;
  do {
    r = ioctl(fd, req, arg);
  } while (r == -1 && (errno == EINTR || errno == EAGAIN));
  return r;
}

/* --- KMS objects ------------------------------------------------------------------------------------------- */

struct output {
  char name[32];
  uint32_t connector_id;
  uint32_t connection;
  uint32_t crtc_id;
  int nmodes;
  struct drm_mode_modeinfo modes[MAX_MODES];
};

struct fb {
  uint32_t width, height, pitch, handle, fb_id;
  uint64_t size;
  uint8_t *map;
};

static int g_fd = -1;
static uint32_t g_crtcs[MAX_OUTPUTS];
static uint32_t g_ncrtcs;
static struct output g_outputs[MAX_OUTPUTS];
static int g_noutputs;

static const char *connection_name(uint32_t c) {
  return c == DRM_MODE_CONNECTED ? "connected" : c == DRM_MODE_DISCONNECTED ? "disconnected" : "unknown";
}

static void probe(void) {
  struct drm_mode_card_res res;
  uint32_t connectors[MAX_OUTPUTS];
  uint32_t used_crtcs = 0;

  g_fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
  if (g_fd < 0) fail("open /dev/dri/card0");
  if (xioctl(g_fd, DRM_IOCTL_SET_MASTER, NULL) != 0) {
    say("%s note: SET_MASTER: %s", g_case, strerror(errno));
  }
  memset(&res, 0, sizeof res);
  if (xioctl(g_fd, DRM_IOCTL_MODE_GETRESOURCES, &res) != 0) fail("GETRESOURCES");
  if (res.count_crtcs > MAX_OUTPUTS || res.count_connectors > MAX_OUTPUTS) {
    errno = 0;
    fail("too many crtcs/connectors (%u/%u)", res.count_crtcs, res.count_connectors);
  }
  g_ncrtcs = res.count_crtcs;
  uint32_t nconn = res.count_connectors;
  memset(&res, 0, sizeof res);
  res.count_crtcs = g_ncrtcs;
  res.crtc_id_ptr = (uintptr_t)g_crtcs;
  res.count_connectors = nconn;
  res.connector_id_ptr = (uintptr_t)connectors;
  if (xioctl(g_fd, DRM_IOCTL_MODE_GETRESOURCES, &res) != 0) fail("GETRESOURCES (ids)");

  for (uint32_t i = 0; i < nconn; i++) {
    struct output *o = &g_outputs[g_noutputs];
    struct drm_mode_get_connector c;
    uint32_t encoders[8];
    memset(o, 0, sizeof *o);
    memset(&c, 0, sizeof c);
    c.connector_id = connectors[i];
    if (xioctl(g_fd, DRM_IOCTL_MODE_GETCONNECTOR, &c) != 0) fail("GETCONNECTOR %u", connectors[i]);
    uint32_t nmodes = c.count_modes > MAX_MODES ? MAX_MODES : c.count_modes;
    uint32_t nenc = c.count_encoders > 8 ? 8 : c.count_encoders;
    memset(&c, 0, sizeof c);
    c.connector_id = connectors[i];
    c.count_modes = nmodes;
    c.modes_ptr = (uintptr_t)o->modes;
    c.count_encoders = nenc;
    c.encoders_ptr = (uintptr_t)encoders;
    if (xioctl(g_fd, DRM_IOCTL_MODE_GETCONNECTOR, &c) != 0) fail("GETCONNECTOR %u (modes)", connectors[i]);
    o->connector_id = c.connector_id;
    o->connection = c.connection;
    o->nmodes = (int)(c.count_modes < nmodes ? c.count_modes : nmodes);
    snprintf(o->name, sizeof o->name, "%s-%u",
             c.connector_type == DRM_MODE_CONNECTOR_VIRTUAL ? "Virtual" : "Other", c.connector_type_id);
    /* The CRTC: the one the current encoder drives, else the first free one the encoders allow. */
    for (uint32_t e = 0; e < nenc && o->crtc_id == 0; e++) {
      struct drm_mode_get_encoder enc = {.encoder_id = encoders[e]};
      if (xioctl(g_fd, DRM_IOCTL_MODE_GETENCODER, &enc) != 0) fail("GETENCODER %u", encoders[e]);
      if (enc.encoder_id == c.encoder_id && enc.crtc_id != 0) {
        for (uint32_t k = 0; k < g_ncrtcs; k++) {
          if (g_crtcs[k] == enc.crtc_id && !(used_crtcs & (1u << k))) {
            o->crtc_id = enc.crtc_id;
            used_crtcs |= 1u << k;
          }
        }
      }
      for (uint32_t k = 0; k < g_ncrtcs && o->crtc_id == 0; k++) {
        if ((enc.possible_crtcs & (1u << k)) && !(used_crtcs & (1u << k))) {
          o->crtc_id = g_crtcs[k];
          used_crtcs |= 1u << k;
        }
      }
    }
    char modes[160] = "";
    for (int m = 0; m < o->nmodes && m < 6; m++) {
      size_t len = strlen(modes);
      snprintf(modes + len, sizeof modes - len, "%s%ux%u%s", m ? " " : "", o->modes[m].hdisplay,
               o->modes[m].vdisplay, (o->modes[m].type & DRM_MODE_TYPE_PREFERRED) ? "*" : "");
    }
    say("%s connector %s id %u %s, crtc %u, %d modes: %s%s", g_case, o->name, o->connector_id,
        connection_name(o->connection), o->crtc_id, o->nmodes, modes, o->nmodes > 6 ? " ..." : "");
    g_noutputs++;
  }
}

static struct output *find_output(const char *name) {
  for (int i = 0; i < g_noutputs; i++) {
    if (strcmp(g_outputs[i].name, name) == 0) return &g_outputs[i];
  }
  return NULL;
}

static struct output *need_output(const char *name) {
  struct output *o = find_output(name);
  errno = 0;
  if (o == NULL) fail("no connector %s (%d connectors)", name, g_noutputs);
  if (o->crtc_id == 0) fail("no free CRTC for %s", name);
  return o;
}

static const struct drm_mode_modeinfo *preferred_mode(const struct output *o) {
  for (int m = 0; m < o->nmodes; m++) {
    if (o->modes[m].type & DRM_MODE_TYPE_PREFERRED) return &o->modes[m];
  }
  return o->nmodes > 0 ? &o->modes[0] : NULL;
}

static void fb_create(struct fb *f, uint32_t w, uint32_t h) {
  struct drm_mode_create_dumb cd = {.width = w, .height = h, .bpp = 32};
  struct drm_mode_map_dumb md;
  struct drm_mode_fb_cmd fc;
  memset(f, 0, sizeof *f);
  if (xioctl(g_fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) != 0) fail("CREATE_DUMB %ux%u", w, h);
  memset(&md, 0, sizeof md);
  md.handle = cd.handle;
  if (xioctl(g_fd, DRM_IOCTL_MODE_MAP_DUMB, &md) != 0) fail("MAP_DUMB");
  void *p = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, (off_t)md.offset);
  if (p == MAP_FAILED) fail("mmap dumb buffer (%llu bytes)", (unsigned long long)cd.size);
  memset(&fc, 0, sizeof fc);
  fc.width = w;
  fc.height = h;
  fc.pitch = cd.pitch;
  fc.bpp = 32;
  fc.depth = 24;
  fc.handle = cd.handle;
  if (xioctl(g_fd, DRM_IOCTL_MODE_ADDFB, &fc) != 0) fail("ADDFB %ux%u", w, h);
  f->width = w;
  f->height = h;
  f->pitch = cd.pitch;
  f->handle = cd.handle;
  f->size = cd.size;
  f->map = p;
  f->fb_id = fc.fb_id;
}

static void fb_destroy(struct fb *f) {
  if (f->map == NULL) return;
  munmap(f->map, f->size);
  xioctl(g_fd, DRM_IOCTL_MODE_RMFB, &f->fb_id);
  struct drm_mode_destroy_dumb dd = {.handle = f->handle};
  xioctl(g_fd, DRM_IOCTL_MODE_DESTROY_DUMB, &dd);
  memset(f, 0, sizeof *f);
}

static inline void put(struct fb *f, uint32_t x, uint32_t y, uint32_t xrgb) {
  *(uint32_t *)(f->map + (size_t)y * f->pitch + (size_t)x * 4) = xrgb;
}

/* --- pixels (mirrored in ppm_check.py) ------------------------------------------------------------------- */

static const uint32_t QUAD_A[4] = {0xff0000, 0x00ff00, 0x0000ff, 0xc08040};
static const uint32_t QUAD_B[4] = {0x00ffff, 0xff00ff, 0xffff00, 0x4080c0};

static void draw_quad(struct fb *f, const uint32_t colours[4]) {
  uint32_t w = f->width, h = f->height;
  for (uint32_t y = 0; y < h; y++) {
    for (uint32_t x = 0; x < w; x++) {
      uint32_t c;
      if (x == 0 || y == 0 || x == w - 1 || y == h - 1) {
        c = 0xffffff;
      } else {
        c = colours[(y >= h / 2 ? 2 : 0) + (x >= w / 2 ? 1 : 0)];
      }
      put(f, x, y, c);
    }
  }
}

static uint32_t gradient(uint32_t x, uint32_t y) {
  uint32_t r = (x * 3) & 0xff, g = (y * 5) & 0xff, b = ((x + y) & 0xff) ^ 0xa5;
  return r << 16 | g << 8 | b;
}

static uint32_t cursor_pixel(uint32_t x, uint32_t y) {
  if (x == y) return 0xffffffff;
  if (x < 32) return y < 32 ? 0xffff0000 : 0x00000000;
  return y < 32 ? 0x8000ff00 : 0xff0000ff;
}

/* --- modesetting ------------------------------------------------------------------------------------------ */

static void set_crtc(const struct output *o, const struct fb *f, const struct drm_mode_modeinfo *mode) {
  struct drm_mode_crtc c;
  uint32_t conn = o->connector_id;
  memset(&c, 0, sizeof c);
  c.crtc_id = o->crtc_id;
  c.fb_id = f->fb_id;
  c.set_connectors_ptr = (uintptr_t)&conn;
  c.count_connectors = 1;
  c.mode = *mode;
  c.mode_valid = 1;
  if (xioctl(g_fd, DRM_IOCTL_MODE_SETCRTC, &c) != 0) {
    fail("SETCRTC %s crtc %u %ux%u", o->name, o->crtc_id, mode->hdisplay, mode->vdisplay);
  }
}

static void dirty(const struct fb *f, uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
  struct drm_clip_rect clip = {.x1 = (unsigned short)x,
                               .y1 = (unsigned short)y,
                               .x2 = (unsigned short)(x + w),
                               .y2 = (unsigned short)(y + h)};
  struct drm_mode_fb_dirty_cmd d = {.fb_id = f->fb_id, .num_clips = 1, .clips_ptr = (uintptr_t)&clip};
  if (xioctl(g_fd, DRM_IOCTL_MODE_DIRTYFB, &d) != 0) fail("DIRTYFB %ux%u+%u+%u", w, h, x, y);
}

/* SETCRTC with a quad-a frame at the connector's preferred mode, then DIRTYFB of the full frame. */
static const struct drm_mode_modeinfo *show_quad(const struct output *o, struct fb *f,
                                                 const struct drm_mode_modeinfo *mode,
                                                 const uint32_t colours[4]) {
  if (mode == NULL) {
    errno = 0;
    fail("%s has no modes", o->name);
  }
  fb_create(f, mode->hdisplay, mode->vdisplay);
  draw_quad(f, colours);
  set_crtc(o, f, mode);
  dirty(f, 0, 0, f->width, f->height);
  return mode;
}

/* --- cases ------------------------------------------------------------------------------------------------ */

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("open %s", path);
  if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) fail("write '%s' to %s", text, path);
  close(fd);
}

/* Waits up to 20 s for /dev/dri/card0 to exist (want 1) or be gone (want 0). */
static void wait_card0(int want) {
  for (int i = 0; i < 200; i++) {
    if ((access("/dev/dri/card0", F_OK) == 0) == want) return;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  errno = 0;
  fail("/dev/dri/card0 did not %s within 20 s", want ? "come back" : "go away");
}

/* The virtio device under card0: the device link itself (virtioN), or, where it names the PCI function, the
 * virtioN folder inside it. */
static void virtio_device_of_card0(char *name, size_t len) {
  char link[256];
  ssize_t n = readlink("/sys/class/drm/card0/device", link, sizeof link - 1);
  if (n <= 0) fail("readlink /sys/class/drm/card0/device");
  link[n] = '\0';
  const char *base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
  if (strncmp(base, "virtio", 6) == 0) {
    snprintf(name, len, "%s", base);
    return;
  }
  DIR *d = opendir("/sys/class/drm/card0/device");
  if (d == NULL) fail("opendir /sys/class/drm/card0/device");
  name[0] = '\0';
  for (struct dirent *e; (e = readdir(d)) != NULL && name[0] == '\0';) {
    if (strncmp(e->d_name, "virtio", 6) == 0 && e->d_name[6] >= '0' && e->d_name[6] <= '9')
      snprintf(name, len, "%s", e->d_name);
  }
  closedir(d);
  errno = 0;
  if (name[0] == '\0') fail("no virtioN device under /sys/class/drm/card0/device (%s)", base);
}

static void rebind_driver(void) {
  char dev[256];
  virtio_device_of_card0(dev, sizeof dev);
  write_file("/sys/bus/virtio/drivers/virtio_gpu/unbind", dev);
  wait_card0(0);
  write_file("/sys/bus/virtio/drivers/virtio_gpu/bind", dev);
  wait_card0(1);
  say("%s note: virtio_gpu unbound from %s and bound again", g_case, dev);
}

static void suspend_to_ram(void) {
  char states[128] = "";
  int fd = open("/sys/power/state", O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open /sys/power/state");
  ssize_t n = read(fd, states, sizeof states - 1);
  close(fd);
  states[n > 0 ? n : 0] = '\0';
  errno = 0;
  if (strstr(states, "mem") == NULL) fail("the kernel offers no suspend to RAM (/sys/power/state: %s)", states);
  say("%s note: suspending to RAM", g_case);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  write_file("/sys/power/state", "mem"); /* returns after resume */
  clock_gettime(CLOCK_MONOTONIC, &t1);
  say("%s note: resumed after %.1f s (guest monotonic clock)", g_case,
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* Virtual-1 at its preferred mode showing PATTERN; the marker gives the mode. */
static void show_preferred(const uint32_t pattern[4]) {
  struct output *o = need_output("Virtual-1");
  struct fb f;
  const struct drm_mode_modeinfo *m = show_quad(o, &f, preferred_mode(o), pattern);
  step_done(NULL, "%ux%u", m->hdisplay, m->vdisplay);
  fb_destroy(&f);
}

static void case_modeset(void) { show_preferred(QUAD_A); }

static void case_after_resume(void) { show_preferred(QUAD_B); }

static void case_partial(void) {
  struct output *o = need_output("Virtual-1");
  struct fb f;
  const struct drm_mode_modeinfo *m = show_quad(o, &f, preferred_mode(o), QUAD_A);
  step_done("base", "%ux%u", m->hdisplay, m->vdisplay);
  const uint32_t rx = 100, ry = 100, rw = 64, rh = 64;
  /* The canary: changed in memory, never reported dirty, so it must not reach the screen. */
  const uint32_t cw = 16, ch = 16, cx = f.width - 200, cy = f.height - 150;
  for (uint32_t y = ry; y < ry + rh; y++) {
    for (uint32_t x = rx; x < rx + rw; x++) put(&f, x, y, gradient(x, y));
  }
  for (uint32_t y = cy; y < cy + ch; y++) {
    for (uint32_t x = cx; x < cx + cw; x++) put(&f, x, y, 0x123456);
  }
  dirty(&f, rx, ry, rw, rh);
  step_done(NULL, "%ux%u+%u+%u canary %ux%u+%u+%u", rw, rh, rx, ry, cw, ch, cx, cy);
  fb_destroy(&f);
}

static void case_cursor(void) {
  struct output *o = need_output("Virtual-1");
  struct fb f, cur;
  const struct drm_mode_modeinfo *m = show_quad(o, &f, preferred_mode(o), QUAD_A);
  struct drm_mode_create_dumb cd = {.width = 64, .height = 64, .bpp = 32};
  if (xioctl(g_fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd) != 0) fail("CREATE_DUMB cursor");
  struct drm_mode_map_dumb md = {.handle = cd.handle};
  if (xioctl(g_fd, DRM_IOCTL_MODE_MAP_DUMB, &md) != 0) fail("MAP_DUMB cursor");
  void *p = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, (off_t)md.offset);
  if (p == MAP_FAILED) fail("mmap cursor");
  memset(&cur, 0, sizeof cur);
  cur.width = 64;
  cur.height = 64;
  cur.pitch = cd.pitch;
  cur.map = p;
  for (uint32_t y = 0; y < 64; y++) {
    for (uint32_t x = 0; x < 64; x++) put(&cur, x, y, cursor_pixel(x, y));
  }
  const int hot_x = 4, hot_y = 6, px = 300, py = 200;
  struct drm_mode_cursor2 c2 = {.flags = DRM_MODE_CURSOR_BO,
                                .crtc_id = o->crtc_id,
                                .width = 64,
                                .height = 64,
                                .handle = cd.handle,
                                .hot_x = hot_x,
                                .hot_y = hot_y};
  if (xioctl(g_fd, DRM_IOCTL_MODE_CURSOR2, &c2) != 0) fail("CURSOR2 set 64x64 hot %d,%d", hot_x, hot_y);
  struct drm_mode_cursor mv = {.flags = DRM_MODE_CURSOR_MOVE, .crtc_id = o->crtc_id, .x = px, .y = py};
  if (xioctl(g_fd, DRM_IOCTL_MODE_CURSOR, &mv) != 0) fail("CURSOR move to %d,%d", px, py);
  step_done(NULL, "%ux%u cursor 64x64 hot %d,%d at %d,%d", m->hdisplay, m->vdisplay, hot_x, hot_y, px, py);
  struct drm_mode_cursor off = {.flags = DRM_MODE_CURSOR_BO, .crtc_id = o->crtc_id};
  xioctl(g_fd, DRM_IOCTL_MODE_CURSOR, &off);
  fb_destroy(&f);
}

static void case_two_outputs(void) {
  struct output *a = need_output("Virtual-1");
  struct output *b = find_output("Virtual-2");
  struct fb fa, fb2;
  errno = 0;
  if (b == NULL) fail("no connector Virtual-2: the device offers one output (QEMU: max_outputs=2)");
  if (b->crtc_id == 0) fail("no free CRTC for Virtual-2");
  const struct drm_mode_modeinfo *ma = preferred_mode(a);
  const struct drm_mode_modeinfo *mb = preferred_mode(b);
  /* A disconnected connector has no modes: drive it with the first one's. */
  if (mb == NULL) mb = ma;
  show_quad(a, &fa, ma, QUAD_A);
  show_quad(b, &fb2, mb, QUAD_B);
  step_done(NULL, "%ux%u %ux%u (Virtual-2 %s)", ma->hdisplay, ma->vdisplay, mb->hdisplay, mb->vdisplay,
            connection_name(b->connection));
  fb_destroy(&fb2);
  fb_destroy(&fa);
}

static void case_mode_change(void) {
  struct output *o = need_output("Virtual-1");
  struct fb f1, f2;
  const struct drm_mode_modeinfo *m1 = show_quad(o, &f1, preferred_mode(o), QUAD_A);
  step_done("base", "%ux%u", m1->hdisplay, m1->vdisplay);
  const struct drm_mode_modeinfo *m2 = NULL;
  for (int i = 0; i < o->nmodes && m2 == NULL; i++) {
    if (o->modes[i].hdisplay == 1024 && o->modes[i].vdisplay == 768) m2 = &o->modes[i];
  }
  for (int i = 0; i < o->nmodes && m2 == NULL; i++) {
    if (o->modes[i].hdisplay != m1->hdisplay || o->modes[i].vdisplay != m1->vdisplay) m2 = &o->modes[i];
  }
  errno = 0;
  if (m2 == NULL) {
    fail("%s lists no mode other than %ux%u (%d mode(s): with EDID the driver offers only the EDID's modes)",
         o->name, m1->hdisplay, m1->vdisplay, o->nmodes);
  }
  show_quad(o, &f2, m2, QUAD_A);
  fb_destroy(&f1);
  step_done(NULL, "%ux%u", m2->hdisplay, m2->vdisplay);
  fb_destroy(&f2);
}

/* vgpu_e2e.<key>=<seconds> from /proc/cmdline, else def. */
static double cmdline_seconds(const char *key, double def) {
  char buf[4096];
  char pat[64];
  FILE *f = fopen("/proc/cmdline", "r");
  if (f == NULL) return def;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  snprintf(pat, sizeof pat, "vgpu_e2e.%s=", key);
  for (char *p = strstr(buf, pat); p != NULL; p = strstr(p + 1, pat)) {
    if (p == buf || p[-1] == ' ') {
      double v = strtod(p + strlen(pat), NULL);
      return v > 0 ? v : def;
    }
  }
  return def;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void repaint_frame(struct fb *f, uint32_t frame) {
  /* A colour per frame that differs from the last in every channel. */
  uint32_t c = ((frame * 37u) & 0xff) << 16 | ((frame * 101u + 64u) & 0xff) << 8 | ((frame * 13u + 128u) & 0xff);
  for (uint32_t y = 0; y < f->height; y++) {
    uint32_t *row = (uint32_t *)(f->map + (size_t)y * f->pitch);
    for (uint32_t x = 0; x < f->width; x++) row[x] = c;
  }
  dirty(f, 0, 0, f->width, f->height);
}

static void case_repaint(void) {
  const uint32_t want_w = 1920, want_h = 1080;
  struct output *o = need_output("Virtual-1");
  const struct drm_mode_modeinfo *m = NULL;
  /* vgpu_e2e.repaint_preferred=1 (restart.sh): the preferred mode, whatever the EDID lists. */
  if (cmdline_seconds("repaint_preferred", 0) > 0) m = preferred_mode(o);
  for (int i = 0; i < o->nmodes && m == NULL; i++) {
    if (o->modes[i].hdisplay == want_w && o->modes[i].vdisplay == want_h) m = &o->modes[i];
  }
  errno = 0;
  if (m == NULL) fail("%s lists no %ux%u mode (%d modes)", o->name, want_w, want_h, o->nmodes);
  const double seconds = cmdline_seconds("repaint_s", 10), warmup = cmdline_seconds("warmup_s", 1);
  struct fb f;
  fb_create(&f, m->hdisplay, m->vdisplay);
  draw_quad(&f, QUAD_A);
  set_crtc(o, &f, m);
  dirty(&f, 0, 0, f.width, f.height);
  uint32_t frame = 0, warm_frames = 0;
  double t0 = mono_s(), t;
  while (mono_s() - t0 < warmup) {
    repaint_frame(&f, ++frame);
    warm_frames++;
  }
  say("repaint:warmup ok %u frames in %.3f s", warm_frames, mono_s() - t0);
  uint64_t frames = 0;
  t0 = mono_s();
  do {
    repaint_frame(&f, ++frame);
    frames++;
    t = mono_s() - t0;
  } while (t < seconds);
  say("repaint ok %llu frames in %.3f s = %.2f fps %ux%u", (unsigned long long)frames, t, (double)frames / t,
      f.width, f.height);
  fb_destroy(&f);
}

int main(int argc, char **argv) {
  const char *ctl = e2e_args(argc, argv, "modeset|partial|cursor|two-outputs|mode-change|rebind|suspend|repaint");
  static const struct {
    const char *name;
    void (*run)(void);
  } cases[] = {{"modeset", case_modeset},
               {"partial", case_partial},
               {"cursor", case_cursor},
               {"two-outputs", case_two_outputs},
               {"mode-change", case_mode_change},
               {"rebind", case_modeset},
               {"suspend", case_after_resume},
               {"repaint", case_repaint}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (strcmp(cases[i].name, g_case) == 0) {
      if (strcmp(g_case, "repaint") != 0) ctl_open(ctl); /* repaint talks to no host */
      if (strcmp(g_case, "suspend") == 0) suspend_to_ram();
      if (strcmp(g_case, "rebind") == 0 || strcmp(g_case, "suspend") == 0) rebind_driver();
      probe();
      cases[i].run();
      say("%s finished", g_case);
      return 0;
    }
  }
  errno = 0;
  fail("unknown case");
}

/* hostile: a misbehaving virtgpu client for the 3D e2e guest (virgl.sh case `hostile`). Raw DRM virtgpu ioctls,
 * no Mesa: garbage command streams, cross-context use of a shared resource, contexts destroyed with work in
 * flight. Errors are expected; what must not happen is a hang (an ioctl or a fence that never returns) or the
 * backend dying. virgl.sh runs `draw` (a well-behaved client) after it to prove the device still works.
 *
 *   hostile [--dev PATH] [--seed N] [--timeout SECONDS]
 *
 * Steps (each ioctl under alarm(timeout): a hang prints `VGPU-E2E: hostile FAIL <ioctl> did not return ...`):
 *   1. opens fd A and fd B on /dev/dri/renderD128 (else card0): two files, two virgl contexts (the kernel
 *      creates a file's context on its first execbuffer or resource ioctl)
 *   2. on A and on B: SUBMIT_3D streams of random words; of random command headers with random payloads; a
 *      header whose length runs past the stream's end; size 0; size 6 (not whole words); 512 KiB of random
 *      words; bad flags, a bad BO handle, a bad pointer. Each with an out-fence (sync_file) that must signal.
 *      (512 KiB: the 6.1 kernel sends a vmalloc'ed stream as one descriptor per page and waits, uninterruptibly,
 *      for that many free descriptors: above ~1 MiB it would hang the guest kernel, not the backend.)
 *   3. a 64x64 BGRA texture on A, exported with PRIME and imported on B; on B: a stream that creates a surface
 *      on it and clears it, transfers to/from host (in and out of bounds), an inline write whose box overruns
 *      its data, a surface on a resource of A that B never imported; each followed by DRM_IOCTL_VIRTGPU_WAIT
 *   4. on A: 8 fenced clears and a transfer, then close(A) at once (the context is destroyed with work in
 *      flight); every out-fence must still signal. The same on a clean fd C (valid work only). Then B uses the
 *      shared texture again and closes.
 *   5. a fresh fd D does one valid fenced clear (`hostile:sanity ok|error ...`, information only), then
 *      `VGPU-E2E: hostile ok <n> ioctls, <m> errors`, exit 0.
 * A fence that does not signal within the timeout, or a WAIT that gives up (EBUSY after the kernel's 15 s), is a
 * FAIL. `VGPU-E2E: hostile SKIP ...` when the device has no 3D (VIRTGPU_PARAM_3D_FEATURES 0).
 *
 * Headers: libdrm-dev's <drm.h> and <virtgpu_drm.h> (build-guest-gl.sh passes -I/usr/include/libdrm); the size
 * checks below pin the ABI the 6.1 guest kernel expects.
 */
#define _GNU_SOURCE
#include <drm.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <virtgpu_drm.h>

#include "../e2e_say.h"

_Static_assert(sizeof(struct drm_virtgpu_execbuffer) == 32, "drm_virtgpu_execbuffer");
_Static_assert(sizeof(struct drm_virtgpu_resource_create) == 56, "drm_virtgpu_resource_create");
_Static_assert(sizeof(struct drm_virtgpu_resource_info) == 16, "drm_virtgpu_resource_info");
_Static_assert(sizeof(struct drm_virtgpu_3d_transfer_to_host) == 36, "drm_virtgpu_3d_transfer_to_host");
_Static_assert(sizeof(struct drm_virtgpu_3d_wait) == 8, "drm_virtgpu_3d_wait");
_Static_assert(sizeof(struct drm_virtgpu_getparam) == 16, "drm_virtgpu_getparam");
_Static_assert(sizeof(struct drm_prime_handle) == 12, "drm_prime_handle");

/* virgl protocol (virglrenderer's virgl_protocol.h) */
#define VIRGL_CMD(cmd, obj, len) ((uint32_t)(cmd) | ((uint32_t)(obj) << 8) | ((uint32_t)(len) << 16))
#define VIRGL_CCMD_CREATE_OBJECT 1
#define VIRGL_CCMD_SET_FRAMEBUFFER_STATE 5
#define VIRGL_CCMD_CLEAR 7
#define VIRGL_CCMD_RESOURCE_INLINE_WRITE 9
#define VIRGL_OBJECT_SURFACE 8
#define VIRGL_FORMAT_B8G8R8A8_UNORM 1
#define PIPE_TEXTURE_2D 2
#define VIRGL_BIND_RENDER_TARGET (1 << 1)
#define VIRGL_BIND_SAMPLER_VIEW (1 << 3)
#define PIPE_CLEAR_COLOR0 (1 << 2)

#define TEX_W 64
#define TEX_H 64
#define MAX_FENCES 64

static unsigned g_timeout = 30;
static const char *g_what = "start";
static int g_ioctls, g_errors, g_fences;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

__attribute__((noreturn)) static void fail(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  say("hostile FAIL %s (after %d ioctls, %d errors)", msg, g_ioctls, g_errors);
  exit(1);
}

static void put(const char *s) {
  ssize_t r = write(STDOUT_FILENO, s, strlen(s));
  (void)r;
}

/* SIGALRM: an ioctl or a wait did not return. Only async-signal-safe calls. */
static void on_alarm(int sig) {
  (void)sig;
  put("VGPU-E2E: hostile FAIL ");
  put(g_what);
  put(" did not return within the per-ioctl timeout (hang)\n");
  _exit(1);
}

static uint32_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return (uint32_t)(g_rng >> 16);
}

/* One ioctl under alarm(); counts it and, on failure, the error (printed). Returns ioctl's result. */
static int xioctl(int fd, unsigned long req, void *arg, const char *what) {
  g_what = what;
  alarm(g_timeout);
  int r = ioctl(fd, req, arg);
  int err = errno;
  alarm(0);
  g_ioctls++;
  if (r < 0) {
    g_errors++;
    say("hostile:err %s: %s", what, strerror(err));
  }
  errno = err;
  return r;
}

/* --- fences -------------------------------------------------------------------------------------------------- */

static int g_pending[MAX_FENCES];
static const char *g_pending_what[MAX_FENCES];
static int g_npending;

static void fence_wait(int fence_fd, const char *what) {
  struct pollfd p = {.fd = fence_fd, .events = POLLIN};
  g_what = what;
  alarm(g_timeout + 5);
  int r = poll(&p, 1, (int)g_timeout * 1000);
  alarm(0);
  if (r == 0) fail("the out-fence of %s did not signal within %u s", what, g_timeout);
  if (r < 0) fail("poll on the out-fence of %s: %s", what, strerror(errno));
  g_fences++;
  close(fence_fd);
}

static void fence_keep(int fence_fd, const char *what) {
  if (fence_fd < 0) return;
  if (g_npending == MAX_FENCES) {
    fence_wait(fence_fd, what);
    return;
  }
  g_pending[g_npending] = fence_fd;
  g_pending_what[g_npending++] = what;
}

static void fence_wait_all(void) {
  for (int i = 0; i < g_npending; i++) fence_wait(g_pending[i], g_pending_what[i]);
  g_npending = 0;
}

/* DRM_IOCTL_VIRTGPU_WAIT on a BO: the kernel gives up with EBUSY after 15 s, which is a hang here. */
static void bo_wait(int fd, uint32_t handle, const char *what) {
  struct drm_virtgpu_3d_wait w = {.handle = handle};
  if (xioctl(fd, DRM_IOCTL_VIRTGPU_WAIT, &w, what) < 0 && errno == EBUSY) {
    fail("%s: the BO is still busy after the kernel's 15 s wait", what);
  }
}

/* --- execbuffer ---------------------------------------------------------------------------------------------- */

/* SUBMIT_3D with an out-fence; the fence goes on the pending list (waited by fence_wait_all). */
static void submit(int fd, const void *cmd, uint32_t size, const uint32_t *bos, uint32_t nbos, const char *what) {
  struct drm_virtgpu_execbuffer eb = {
      .flags = VIRTGPU_EXECBUF_FENCE_FD_OUT,
      .size = size,
      .command = (uintptr_t)cmd,
      .bo_handles = (uintptr_t)bos,
      .num_bo_handles = nbos,
      .fence_fd = -1,
  };
  if (xioctl(fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &eb, what) == 0) fence_keep(eb.fence_fd, what);
}

static void fill_random(uint32_t *w, size_t n) {
  for (size_t i = 0; i < n; i++) w[i] = rnd();
}

/* Random command headers (command 0..63, object 0..15, length 0..31) each followed by its random payload. */
static size_t fill_headers(uint32_t *w, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t len = rnd() % 32;
    if (i + 1 + len > n) break;
    w[i++] = VIRGL_CMD(rnd() % 64, rnd() % 16, len);
    for (uint32_t k = 0; k < len; k++) w[i++] = (rnd() & 3) == 0 ? rnd() % 16 : rnd();
  }
  return i;
}

static void garbage(int fd, const char *who) {
  static uint32_t small[1024];
  static char names[16][64];
  static int nnames;
  char *name;
#define NAME(...) (name = names[nnames++ % 16], snprintf(name, 64, __VA_ARGS__), name)

  for (int i = 0; i < 4; i++) {
    fill_random(small, 256);
    submit(fd, small, 256 * 4, NULL, 0, NAME("%s random words #%d", who, i));
  }
  fence_wait_all();
  for (int i = 0; i < 8; i++) {
    size_t n = fill_headers(small, 1024);
    submit(fd, small, (uint32_t)(n * 4), NULL, 0, NAME("%s random headers #%d", who, i));
  }
  fence_wait_all();
  /* A CREATE_OBJECT(surface) and a CLEAR that claim more words than the stream holds. */
  small[0] = VIRGL_CMD(VIRGL_CCMD_CREATE_OBJECT, VIRGL_OBJECT_SURFACE, 0xffff);
  small[1] = 1;
  small[2] = 1;
  submit(fd, small, 3 * 4, NULL, 0, NAME("%s length past the end", who));
  small[0] = VIRGL_CMD(VIRGL_CCMD_CLEAR, 0, 8);
  small[1] = PIPE_CLEAR_COLOR0;
  small[2] = VIRGL_CMD(VIRGL_CCMD_CLEAR, 0, 1000);
  submit(fd, small, 3 * 4, NULL, 0, NAME("%s clear past the end", who));
  submit(fd, small, 0, NULL, 0, NAME("%s zero length", who));
  submit(fd, NULL, 0, NULL, 0, NAME("%s zero length, null pointer", who));
  submit(fd, small, 6, NULL, 0, NAME("%s 6 bytes", who));
  fence_wait_all();

  uint32_t big_words = (512u << 10) / 4;
  uint32_t *big = malloc(big_words * 4);
  if (big == NULL) fail("malloc");
  fill_random(big, big_words);
  submit(fd, big, big_words * 4, NULL, 0, NAME("%s 512 KiB random", who));
  fence_wait_all();
  free(big);

  /* Refused by the kernel: bad flags, a BO handle that does not exist, a bad pointer. */
  struct drm_virtgpu_execbuffer eb = {.flags = 0x80, .size = 4, .command = (uintptr_t)small, .fence_fd = -1};
  xioctl(fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &eb, NAME("%s bad flags", who));
  uint32_t bad_bo = 0x7fff;
  eb = (struct drm_virtgpu_execbuffer){.size = 4, .command = (uintptr_t)small, .bo_handles = (uintptr_t)&bad_bo,
                                       .num_bo_handles = 1, .fence_fd = -1};
  xioctl(fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &eb, NAME("%s bad BO handle", who));
  eb = (struct drm_virtgpu_execbuffer){.size = 64, .command = 0x10, .fence_fd = -1};
  xioctl(fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &eb, NAME("%s bad pointer", who));
#undef NAME
}

/* --- resources ----------------------------------------------------------------------------------------------- */

struct res {
  uint32_t bo, id;
};

static struct res texture(int fd, const char *what) {
  struct drm_virtgpu_resource_create rc = {
      .target = PIPE_TEXTURE_2D,
      .format = VIRGL_FORMAT_B8G8R8A8_UNORM,
      .bind = VIRGL_BIND_RENDER_TARGET | VIRGL_BIND_SAMPLER_VIEW,
      .width = TEX_W,
      .height = TEX_H,
      .depth = 1,
      .array_size = 1,
      .size = TEX_W * TEX_H * 4,
      .stride = TEX_W * 4,
  };
  if (xioctl(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &rc, what) < 0) fail("%s: %s", what, strerror(errno));
  return (struct res){rc.bo_handle, rc.res_handle};
}

/* A stream: surface `surf` on resource `res_id` (when create), framebuffer = that surface, clear to `rgba`. */
static size_t clear_stream(uint32_t *w, int create, uint32_t surf, uint32_t res_id, uint32_t rgba) {
  size_t n = 0;
  if (create) {
    w[n++] = VIRGL_CMD(VIRGL_CCMD_CREATE_OBJECT, VIRGL_OBJECT_SURFACE, 5);
    w[n++] = surf;
    w[n++] = res_id;
    w[n++] = VIRGL_FORMAT_B8G8R8A8_UNORM;
    w[n++] = 0; /* level */
    w[n++] = 0; /* first | last layer << 16 */
  }
  w[n++] = VIRGL_CMD(VIRGL_CCMD_SET_FRAMEBUFFER_STATE, 0, 3);
  w[n++] = 1; /* nr_cbufs */
  w[n++] = 0; /* no depth surface */
  w[n++] = surf;
  w[n++] = VIRGL_CMD(VIRGL_CCMD_CLEAR, 0, 8);
  w[n++] = PIPE_CLEAR_COLOR0;
  for (int c = 0; c < 4; c++) {
    float f = (float)((rgba >> (8 * c)) & 0xff) / 255.0f;
    memcpy(&w[n++], &f, 4);
  }
  w[n++] = 0; /* depth (a double) */
  w[n++] = 0;
  w[n++] = 0; /* stencil */
  return n;
}

static void transfer(int fd, int to_host, uint32_t bo, struct drm_virtgpu_3d_box box, uint32_t level, uint32_t offset,
                     const char *what) {
  if (to_host) {
    struct drm_virtgpu_3d_transfer_to_host t = {.bo_handle = bo, .box = box, .level = level, .offset = offset};
    xioctl(fd, DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST, &t, what);
  } else {
    struct drm_virtgpu_3d_transfer_from_host t = {.bo_handle = bo, .box = box, .level = level, .offset = offset};
    xioctl(fd, DRM_IOCTL_VIRTGPU_TRANSFER_FROM_HOST, &t, what);
  }
  bo_wait(fd, bo, what);
}

static void cross_context(int fd_a, int fd_b, int *fd_dmabuf, uint32_t *bo_b, struct res *tex_a) {
  static uint32_t w[256];
  *tex_a = texture(fd_a, "A create texture");
  struct res other = texture(fd_a, "A create unshared texture");
  struct drm_prime_handle exp = {.handle = tex_a->bo, .flags = DRM_CLOEXEC | DRM_RDWR, .fd = -1};
  if (xioctl(fd_a, DRM_IOCTL_PRIME_HANDLE_TO_FD, &exp, "A PRIME export") < 0) fail("PRIME export: %s", strerror(errno));
  struct drm_prime_handle imp = {.fd = exp.fd};
  if (xioctl(fd_b, DRM_IOCTL_PRIME_FD_TO_HANDLE, &imp, "B PRIME import") < 0) fail("PRIME import: %s", strerror(errno));
  *fd_dmabuf = exp.fd;
  *bo_b = imp.handle;
  struct drm_virtgpu_resource_info info = {.bo_handle = imp.handle};
  xioctl(fd_b, DRM_IOCTL_VIRTGPU_RESOURCE_INFO, &info, "B resource info");
  say("hostile:step 3 texture res %u (A bo %u) imported on B as bo %u, res %u; unshared res %u", tex_a->id, tex_a->bo,
      imp.handle, info.res_handle, other.id);

  /* B renders into A's texture (legitimate sharing, if its context survived step 2). */
  size_t n = clear_stream(w, 1, 300, tex_a->id, 0xff336699);
  submit(fd_b, w, (uint32_t)(n * 4), bo_b, 1, "B clear of the shared texture");
  fence_wait_all();
  bo_wait(fd_b, *bo_b, "B wait shared texture");
  const struct drm_virtgpu_3d_box full = {0, 0, 0, TEX_W, TEX_H, 1};
  transfer(fd_b, 0, *bo_b, full, 0, 0, "B transfer from host (shared)");
  transfer(fd_b, 1, *bo_b, full, 0, 0, "B transfer to host (shared)");
  transfer(fd_b, 1, *bo_b, (struct drm_virtgpu_3d_box){60, 60, 0, 64, 64, 1}, 0, 0, "B transfer to host past the edge");
  transfer(fd_b, 0, *bo_b, (struct drm_virtgpu_3d_box){0, 0, 0, 0xffffffffu, 0xffffffffu, 1}, 0, 0,
           "B transfer from host huge box");
  transfer(fd_b, 1, *bo_b, full, 7, 0, "B transfer to host level 7");
  transfer(fd_b, 0, *bo_b, full, 0, 0xfffff000u, "B transfer from host huge offset");
  transfer(fd_b, 1, *bo_b, (struct drm_virtgpu_3d_box){0, 0, 5, TEX_W, TEX_H, 0}, 0, 0,
           "B transfer to host empty box, z 5");

  /* An inline write whose box claims far more than the data it carries. */
  n = 0;
  w[n++] = VIRGL_CMD(VIRGL_CCMD_RESOURCE_INLINE_WRITE, 0, 11 + 4);
  w[n++] = tex_a->id;
  w[n++] = 0;              /* level */
  w[n++] = 0;              /* usage */
  w[n++] = TEX_W * 4;      /* stride */
  w[n++] = 0;              /* layer stride */
  w[n++] = 0;              /* x, y, z */
  w[n++] = 0;
  w[n++] = 0;
  w[n++] = 1000; /* w, h, d */
  w[n++] = 1000;
  w[n++] = 1;
  for (int i = 0; i < 4; i++) w[n++] = 0xdeadbeef;
  submit(fd_b, w, (uint32_t)(n * 4), bo_b, 1, "B inline write box overruns its data");
  /* Surfaces on a resource B never imported (A's unshared one) and on one that does not exist. */
  n = clear_stream(w, 1, 301, other.id, 0xff00ff00);
  submit(fd_b, w, (uint32_t)(n * 4), NULL, 0, "B clear of A's unshared texture");
  n = clear_stream(w, 1, 302, 0xdeadbeef, 0xff0000ff);
  submit(fd_b, w, (uint32_t)(n * 4), NULL, 0, "B clear of resource 0xdeadbeef");
  fence_wait_all();
  bo_wait(fd_b, *bo_b, "B wait shared texture after misuse");
  transfer(fd_a, 0, tex_a->bo, full, 0, 0, "A transfer from host after B's use");
}

/* Valid work with fences, then close(fd) at once; the fences stay pending. */
static void close_in_flight(int fd, struct res tex, const char *who) {
  static uint32_t w[64];
  static char all_names[2][10][64];
  char(*names)[64] = all_names[who[0] == 'C'];
  for (int i = 0; i < 8; i++) {
    size_t n = clear_stream(w, i == 0, 400, tex.id, 0xff000000u | rnd());
    snprintf(names[i], sizeof names[i], "%s clear #%d before close", who, i);
    submit(fd, w, (uint32_t)(n * 4), &tex.bo, 1, names[i]);
  }
  snprintf(names[8], sizeof names[8], "%s transfer to host before close", who);
  struct drm_virtgpu_3d_transfer_to_host t = {.bo_handle = tex.bo, .box = {0, 0, 0, TEX_W, TEX_H, 1}};
  xioctl(fd, DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST, &t, names[8]);
  g_what = "close";
  alarm(g_timeout);
  close(fd);
  alarm(0);
}

static int open_dev(const char *dev) {
  const char *path = dev;
  int fd = -1;
  if (path != NULL) {
    fd = open(path, O_RDWR | O_CLOEXEC);
  } else {
    path = "/dev/dri/renderD128";
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      path = "/dev/dri/card0";
      fd = open(path, O_RDWR | O_CLOEXEC);
    }
  }
  if (fd < 0) fail("open %s: %s", path, strerror(errno));
  return fd;
}

int main(int argc, char **argv) {
  const char *dev = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dev") == 0 && i + 1 < argc) {
      dev = argv[++i];
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      g_rng = strtoull(argv[++i], NULL, 0) | 1;
    } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
      g_timeout = (unsigned)strtoul(argv[++i], NULL, 0);
    } else {
      fprintf(stderr, "usage: hostile [--dev PATH] [--seed N] [--timeout SECONDS]\n");
      return 2;
    }
  }
  if (g_timeout < 16) g_timeout = 16; /* above the kernel's own 15 s WAIT */
  struct sigaction sa = {.sa_handler = on_alarm};
  sigaction(SIGALRM, &sa, NULL);
  say("hostile:step seed 0x%llx, timeout %u s per ioctl and fence", (unsigned long long)g_rng, g_timeout);

  /* 1. two files, two contexts */
  int fd_a = open_dev(dev);
  int fd_b = open_dev(dev);
  int has3d = 0;
  struct drm_virtgpu_getparam gp = {.param = VIRTGPU_PARAM_3D_FEATURES, .value = (uintptr_t)&has3d};
  if (xioctl(fd_a, DRM_IOCTL_VIRTGPU_GETPARAM, &gp, "A getparam 3D_FEATURES") < 0 || !has3d) {
    say("hostile SKIP the device has no 3D (VIRTGPU_PARAM_3D_FEATURES %d)", has3d);
    return 0;
  }

  /* 2. garbage on both contexts */
  say("hostile:step 2 garbage streams on A and B");
  garbage(fd_a, "A");
  garbage(fd_b, "B");
  fence_wait_all();
  say("hostile:step 2 done: %d ioctls, %d errors, %d fences signalled", g_ioctls, g_errors, g_fences);

  /* 3. cross-context use */
  int fd_dmabuf = -1;
  uint32_t bo_b = 0;
  struct res tex_a;
  cross_context(fd_a, fd_b, &fd_dmabuf, &bo_b, &tex_a);
  say("hostile:step 3 done: %d ioctls, %d errors, %d fences signalled", g_ioctls, g_errors, g_fences);

  /* 4. contexts destroyed with work in flight: A (after garbage), then a clean C */
  close_in_flight(fd_a, tex_a, "A");
  int fd_c = open_dev(dev);
  close_in_flight(fd_c, texture(fd_c, "C create texture"), "C");
  fence_wait_all();
  const struct drm_virtgpu_3d_box full = {0, 0, 0, TEX_W, TEX_H, 1};
  transfer(fd_b, 0, bo_b, full, 0, 0, "B transfer from host after A closed");
  struct drm_gem_close gc = {.handle = bo_b};
  xioctl(fd_b, DRM_IOCTL_GEM_CLOSE, &gc, "B GEM close");
  close(fd_dmabuf);
  close(fd_b);
  say("hostile:step 4 done: %d ioctls, %d errors, %d fences signalled", g_ioctls, g_errors, g_fences);

  /* 5. a fresh, well-behaved context (information only: virgl.sh's draw case is the real check) */
  int errors_before = g_errors;
  int fd_d = open_dev(dev);
  struct res tex_d = texture(fd_d, "D create texture");
  static uint32_t w[64];
  size_t n = clear_stream(w, 1, 1, tex_d.id, 0xff808080);
  submit(fd_d, w, (uint32_t)(n * 4), &tex_d.bo, 1, "D clear");
  fence_wait_all();
  transfer(fd_d, 0, tex_d.bo, full, 0, 0, "D transfer from host");
  close(fd_d);
  say("hostile:sanity %s", g_errors == errors_before ? "ok" : "error (a fresh context's valid work failed)");

  say("hostile ok %d ioctls, %d errors", g_ioctls, g_errors);
  return 0;
}

/* venus-hostile: a misbehaving Venus client for the e2e guest (run-3d.sh's venus case, step `hostile`). Raw DRM
 * virtgpu ioctls, no Mesa. Errors are expected; what must not happen is a hang (an ioctl or an mmap that never
 * returns) or the backend dying: the venus case's ggml and LLM steps run after it, on the same device.
 *
 *   venus-hostile [--dev PATH] [--files N] [--timeout SECONDS] [--offsets PARAMS_DIR]
 *
 * Steps (each ioctl and mmap under alarm(timeout): a hang prints `VGPU-E2E: venus-hostile FAIL <what> ...`):
 *   1. opens N files (default 20: more than the backend's default cap of 16 Venus contexts) and gives each a
 *      Venus context (CONTEXT_INIT, capset 4, 2 rings): the contexts past the cap are refused by the device
 *      (the guest kernel creates contexts without waiting for the answer, so the ioctl itself succeeds)
 *   2. on every file: a mappable HOST3D blob naming an object the context never made (blob_id 0x7e57 + i),
 *      then DRM_IOCTL_VIRTGPU_MAP and mmap of it: the device refuses the blob, the map of the resource that
 *      does not exist, and the mmap must fail, not hang; a blob with only USE_CROSS_DEVICE (no UUIDs offered)
 *   3. closes every other file with its blob still "mapped" in the kernel's view, then the rest
 *   4. with --offsets (the parameters folder of the guest module vgpu_hostile_map, which rewrites the offsets
 *      the guest's own driver sends in MAP_BLOB and can skip its UNMAP_BLOB; see guest/module): on a new Venus
 *      file, Venus shared-memory blobs (HOST3D, blob_id 0, USE_MAPPABLE: what Mesa's Venus makes its rings
 *      of) mapped at offsets the device must refuse: unaligned, outside the window, wrapping around 2^64, and
 *      on top of a live mapping. Each refusal shows as a failed mmap (the kernel's map state goes to error);
 *      closing each such blob makes the driver send UNMAP_BLOB of a mapping the device never made (refused
 *      too). Then a mapped blob closed with its UNMAP skipped (RESOURCE_UNREF while mapped: the device unmaps
 *      it first), and finally a new blob that must map and hold a pattern, next to the first one whose
 *      pattern must still be there. `VGPU-E2E: venus-hostile offsets ok refused=4 rewritten=4 skipped=1`;
 *      any map the device accepted or refused against expectation is `venus-hostile FAIL offsets: ...`
 *   5. `VGPU-E2E: venus-hostile ok <n> ioctls, <m> errors`, exit 0
 * `VGPU-E2E: venus-hostile SKIP ...` without host-visible memory or context init (nothing to misuse).
 *
 * Headers: libdrm-dev's <drm.h> and <virtgpu_drm.h> (build-guest-gl.sh passes -I/usr/include/libdrm).
 */
#define _GNU_SOURCE
#include <drm.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <virtgpu_drm.h>

#include "virtgpu_uapi.h"

#define CAPSET_VENUS 4
#define BLOB_BYTES (64 * 1024)
#define MAX_FILES 64

static unsigned g_timeout = 30;
static const char *g_what = "start";
static int g_ioctls, g_errors;

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("VGPU-E2E: venus-hostile");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char prefix[] = "VGPU-E2E: venus-hostile FAIL did not return in time: ";
  (void)!write(1, prefix, sizeof(prefix) - 1);
  (void)!write(1, g_what, strlen(g_what));
  (void)!write(1, "\n", 1);
  _exit(1);
}

/* One ioctl under the alarm; counts calls and errors (errors are expected). */
static int xioctl(int fd, unsigned long req, void *arg, const char *what) {
  g_what = what;
  g_ioctls++;
  alarm(g_timeout);
  int r;
  do {
    r = ioctl(fd, req, arg);
  } while (r != 0 && (errno == EINTR || errno == EAGAIN));
  alarm(0);
  if (r != 0) g_errors++;
  return r;
}

static int param(int fd, uint64_t which) {
  int value = 0;
  struct drm_virtgpu_getparam gp = {.param = which, .value = (uintptr_t)&value};
  return xioctl(fd, DRM_IOCTL_VIRTGPU_GETPARAM, &gp, "GETPARAM") == 0 ? value : 0;
}

static int context_init(int fd) {
  struct drm_virtgpu_context_set_param params[] = {
      {VIRTGPU_CONTEXT_PARAM_CAPSET_ID, CAPSET_VENUS},
      {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 2},
  };
  struct drm_virtgpu_context_init init = {.num_params = 2, .ctx_set_params = (uintptr_t)params};
  return xioctl(fd, DRM_IOCTL_VIRTGPU_CONTEXT_INIT, &init, "CONTEXT_INIT (Venus)");
}

/* A HOST3D blob naming `blob_id` with `flags`; its GEM handle, or 0 when the kernel refused it. */
static uint32_t blob(int fd, uint64_t blob_id, uint32_t flags, const char *what) {
  struct drm_virtgpu_resource_create_blob b = {
      .blob_mem = VIRTGPU_BLOB_MEM_HOST3D, .blob_flags = flags, .size = BLOB_BYTES, .blob_id = blob_id};
  return xioctl(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &b, what) == 0 ? b.bo_handle : 0;
}

/* DRM MAP and mmap of a blob: the mapping, or NULL when the device refused it (the mmap fails). */
static uint32_t *map_blob(int fd, uint32_t handle, const char *what) {
  struct drm_virtgpu_map m = {.handle = handle};
  if (xioctl(fd, DRM_IOCTL_VIRTGPU_MAP, &m, what) != 0) return NULL;
  g_what = what;
  g_ioctls++;
  alarm(g_timeout);
  void *p = mmap(NULL, BLOB_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)m.offset);
  alarm(0);
  if (p == MAP_FAILED) {
    g_errors++;
    return NULL;
  }
  return p;
}

/* MAP (an mmap offset) and mmap of `handle`: both may fail, neither may hang. */
static void try_map(int fd, uint32_t handle) {
  uint32_t *p = map_blob(fd, handle, "MAP and mmap of a blob the device refused");
  if (p == NULL) return;
  /* A mapping came back: it must read without a fault the kernel cannot handle (touch one byte). */
  volatile uint8_t *bytes = (volatile uint8_t *)p;
  (void)bytes[0];
  munmap(p, BLOB_BYTES);
}

/* --- step 4: hostile offsets through the guest module ------------------------------------------------------ */

static const char *g_params; /* the module's parameters folder */

static void param_write(const char *name, int value) {
  char path[256], text[16];
  snprintf(path, sizeof path, "%s/%s", g_params, name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  int n = snprintf(text, sizeof text, "%d\n", value);
  if (fd < 0 || write(fd, text, (size_t)n) != n) {
    say(" FAIL offsets: writing %d to %s: %s", value, path, strerror(errno));
    exit(1);
  }
  close(fd);
}

static long param_read(const char *name) {
  char path[256], text[32] = {0};
  snprintf(path, sizeof path, "%s/%s", g_params, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, text, sizeof text - 1) <= 0) {
    say(" FAIL offsets: reading %s: %s", path, strerror(errno));
    exit(1);
  }
  close(fd);
  return strtol(text, NULL, 0);
}

static void gem_close(int fd, uint32_t handle) {
  struct drm_gem_close c = {.handle = handle};
  (void)xioctl(fd, DRM_IOCTL_GEM_CLOSE, &c, "GEM_CLOSE");
}

static void fill(uint32_t *words, uint32_t seed) {
  for (uint32_t i = 0; i < BLOB_BYTES / 4; i++) words[i] = (i + seed) * 2654435761u;
}

static int holds(const uint32_t *words, uint32_t seed) {
  for (uint32_t i = 0; i < BLOB_BYTES / 4; i++) {
    if (words[i] != (i + seed) * 2654435761u) return 0;
  }
  return 1;
}

/* A Venus shared-memory blob, mapped (mode 0) or expected refused (other modes); exits 1 on a surprise. */
static uint32_t shmem_blob(int fd, uint32_t **map, int expect_mapped, const char *what) {
  uint32_t h = blob(fd, 0, VIRTGPU_BLOB_FLAG_USE_MAPPABLE, what);
  if (h == 0) {
    say(" FAIL offsets: CREATE_BLOB of Venus shared memory (%s): %s", what, strerror(errno));
    exit(1);
  }
  *map = map_blob(fd, h, what);
  if ((*map != NULL) != expect_mapped) {
    say(" FAIL offsets: the device %s the MAP_BLOB of %s", *map ? "accepted" : "refused", what);
    exit(1);
  }
  return h;
}

static void settle(void) {
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

static void round_offsets(const char *dev) {
  static const char *const names[] = {"", "an unaligned offset", "an offset outside the window",
                                      "an offset whose end wraps around", "an offset on a live mapping"};
  int fd = open(dev, O_RDWR | O_CLOEXEC);
  if (fd < 0 || context_init(fd) != 0) {
    say(" FAIL offsets: a Venus context on %s: %s", dev, strerror(errno));
    exit(1);
  }
  param_write("mode", 0);
  const long rewritten0 = param_read("rewritten"), skipped0 = param_read("skipped");
  uint32_t *first, *map;
  uint32_t first_handle = shmem_blob(fd, &first, 1, "a first blob, mapped where the driver chose");
  fill(first, 1);
  int refused = 0;
  for (int mode = 1; mode <= 4; mode++) {
    param_write("mode", mode);
    uint32_t h = shmem_blob(fd, &map, 0, names[mode]);
    param_write("mode", 0);
    refused++;
    gem_close(fd, h); /* UNMAP_BLOB of what the device never mapped, then RESOURCE_UNREF */
  }
  /* The kernel frees a closed blob when its last reference goes, and a command in flight holds one until its
   * answer has been handled: let those frees (and their UNMAP_BLOBs) happen before and after skipping. */
  settle();
  uint32_t h = shmem_blob(fd, &map, 1, "a blob unreferenced while mapped");
  munmap(map, BLOB_BYTES);
  settle();
  param_write("mode", 5);
  gem_close(fd, h); /* its UNMAP_BLOB skipped: RESOURCE_UNREF of a mapped blob */
  settle();
  param_write("mode", 0);
  h = shmem_blob(fd, &map, 1, "a blob after all that");
  fill(map, 2);
  const int ok_new = holds(map, 2), ok_first = holds(first, 1);
  munmap(map, BLOB_BYTES);
  gem_close(fd, h);
  munmap(first, BLOB_BYTES);
  gem_close(fd, first_handle);
  close(fd);
  const long rewritten = param_read("rewritten") - rewritten0, skipped = param_read("skipped") - skipped0;
  if (!ok_new || !ok_first || rewritten != 4 || skipped < 1) {
    say(" FAIL offsets: new blob's pattern %s, first blob's %s, %ld maps rewritten (want 4), %ld unmaps skipped "
        "(want at least 1)",
        ok_new ? "ok" : "wrong", ok_first ? "ok" : "wrong", rewritten, skipped);
    exit(1);
  }
  say(" offsets ok refused=%d rewritten=%ld skipped=%ld", refused, rewritten, skipped);
}

int main(int argc, char **argv) {
  const char *dev = "/dev/dri/renderD128";
  int files = 20;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dev") == 0 && i + 1 < argc) dev = argv[++i];
    else if (strcmp(argv[i], "--files") == 0 && i + 1 < argc) files = atoi(argv[++i]);
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) g_timeout = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--offsets") == 0 && i + 1 < argc) g_params = argv[++i];
    else {
      fprintf(stderr, "usage: venus-hostile [--dev PATH] [--files N] [--timeout SECONDS] [--offsets PARAMS_DIR]\n");
      return 2;
    }
  }
  if (files < 1 || files > MAX_FILES) files = 20;
  signal(SIGALRM, on_alarm);
  int fds[MAX_FILES];
  uint32_t handles[MAX_FILES] = {0};
  fds[0] = open(dev, O_RDWR | O_CLOEXEC);
  if (fds[0] < 0) {
    say(" FAIL open %s: %s", dev, strerror(errno));
    return 1;
  }
  if (!param(fds[0], VIRTGPU_PARAM_HOST_VISIBLE) || !param(fds[0], VIRTGPU_PARAM_CONTEXT_INIT)) {
    say(" SKIP the device offers no host-visible memory or no context init");
    return 0;
  }
  /* 1. more Venus contexts than the cap */
  int contexts = 0;
  for (int i = 0; i < files; i++) {
    if (i > 0) fds[i] = open(dev, O_RDWR | O_CLOEXEC);
    if (fds[i] < 0) {
      say(" FAIL open %s (file %d): %s", dev, i, strerror(errno));
      return 1;
    }
    contexts += context_init(fds[i]) == 0;
  }
  /* 2. blobs of objects that do not exist, their maps and mmaps; a cross-device blob without UUIDs */
  for (int i = 0; i < files; i++) {
    handles[i] = blob(fds[i], 0x7e57u + (uint64_t)i, VIRTGPU_BLOB_FLAG_USE_MAPPABLE, "CREATE_BLOB of no object");
    if (handles[i] != 0) try_map(fds[i], handles[i]);
  }
  (void)blob(fds[0], 1, VIRTGPU_BLOB_FLAG_USE_CROSS_DEVICE, "CREATE_BLOB cross-device");
  /* 3. close half with their blobs still open, then the rest */
  for (int i = 0; i < files; i += 2) close(fds[i]);
  for (int i = 1; i < files; i += 2) {
    if (handles[i] != 0) {
      struct drm_gem_close c = {.handle = handles[i]};
      (void)xioctl(fds[i], DRM_IOCTL_GEM_CLOSE, &c, "GEM_CLOSE");
    }
    close(fds[i]);
  }
  /* 4. hostile offsets and an unref while mapped, sent by the guest's own driver */
  if (g_params != NULL) round_offsets(dev);
  say(" ok %d ioctls, %d errors, %d of %d contexts initialised", g_ioctls, g_errors, contexts, files);
  return 0;
}

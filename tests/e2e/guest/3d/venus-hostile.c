/* venus-hostile: a misbehaving Venus client for the e2e guest (run-3d.sh's venus case, step `hostile`). Raw DRM
 * virtgpu ioctls, no Mesa. Errors are expected; what must not happen is a hang (an ioctl or an mmap that never
 * returns) or the backend dying: the venus case's ggml and LLM steps run after it, on the same device.
 *
 *   venus-hostile [--dev PATH] [--files N] [--timeout SECONDS]
 *
 * Steps (each ioctl and mmap under alarm(timeout): a hang prints `VGPU-E2E: venus-hostile FAIL <what> ...`):
 *   1. opens N files (default 20: more than the backend's default cap of 16 Venus contexts) and gives each a
 *      Venus context (CONTEXT_INIT, capset 4, 2 rings): the contexts past the cap are refused by the device
 *      (the guest kernel creates contexts without waiting for the answer, so the ioctl itself succeeds)
 *   2. on every file: a mappable HOST3D blob naming an object the context never made (blob_id 0x7e57 + i),
 *      then DRM_IOCTL_VIRTGPU_MAP and mmap of it: the device refuses the blob, the map of the resource that
 *      does not exist, and the mmap must fail, not hang; a blob with only USE_CROSS_DEVICE (no UUIDs offered)
 *   3. closes every other file with its blob still "mapped" in the kernel's view, then the rest
 *   4. `VGPU-E2E: venus-hostile ok <n> ioctls, <m> errors`, exit 0
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
#include <unistd.h>
#include <virtgpu_drm.h>

#include "virtgpu_uapi.h"

#define CAPSET_VENUS 4
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
      .blob_mem = VIRTGPU_BLOB_MEM_HOST3D, .blob_flags = flags, .size = 64 * 1024, .blob_id = blob_id};
  return xioctl(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &b, what) == 0 ? b.bo_handle : 0;
}

/* MAP (an mmap offset) and mmap of `handle`: both may fail, neither may hang. */
static void try_map(int fd, uint32_t handle) {
  struct drm_virtgpu_map m = {.handle = handle};
  if (xioctl(fd, DRM_IOCTL_VIRTGPU_MAP, &m, "MAP of a blob the device refused") != 0) return;
  g_what = "mmap of a blob the device refused";
  g_ioctls++;
  alarm(g_timeout);
  void *p = mmap(NULL, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)m.offset);
  alarm(0);
  if (p == MAP_FAILED) {
    g_errors++;
    return;
  }
  /* A mapping came back: it must read without a fault the kernel cannot handle (touch one byte). */
  volatile uint8_t *bytes = p;
  (void)bytes[0];
  munmap(p, 64 * 1024);
}

int main(int argc, char **argv) {
  const char *dev = "/dev/dri/renderD128";
  int files = 20;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dev") == 0 && i + 1 < argc) dev = argv[++i];
    else if (strcmp(argv[i], "--files") == 0 && i + 1 < argc) files = atoi(argv[++i]);
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) g_timeout = (unsigned)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: venus-hostile [--dev PATH] [--files N] [--timeout SECONDS]\n");
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
  say(" ok %d ioctls, %d errors, %d of %d contexts initialised", g_ioctls, g_errors, contexts, files);
  return 0;
}

/* share: the guest half of the shared-object check (virgl.sh case `share`). Makes a 2D buffer
 * (DRM_IOCTL_VIRTGPU_RESOURCE_CREATE on a device without virgl: RESOURCE_CREATE_2D + ATTACH_BACKING; not a dumb
 * buffer, which Linux makes a guest blob when the device has RESOURCE_BLOB, and a blob gets no UUID on export
 * unless created USE_CROSS_DEVICE), fills it with a known byte pattern, sends it to the host
 * (DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST: TRANSFER_TO_HOST_2D without virgl), and exports it with PRIME, which makes
 * Linux ask the device for the resource's UUID (RESOURCE_ASSIGN_UUID, VIRTIO_GPU_F_RESOURCE_UUID). The host
 * then has another device import the buffer by that UUID and compares the bytes. When told `next` on stdin
 * the program frees the buffer (RESOURCE_UNREF: the device withdraws the UUID) and, told `next` again, ends.
 *
 *   share [--card /dev/dri/card0] [--timeout SECS]
 *
 * Prints `share: exported WxH pitch P size S` once the UUID was asked for, `share: released` after the free,
 * `share ok` at the end; `share FAIL <why>` and exit status 1 on any error. Byte i of the buffer is
 * share_pattern(i) below; tests/e2e/shared_importer.py computes the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xf86drm.h>

#include "virtgpu_uapi.h"

enum { kWidth = 256, kHeight = 64 };

static uint8_t share_pattern(uint64_t i) { return (uint8_t)((i * 7u) ^ (i >> 7) ^ 0x5a); }

static void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("share FAIL ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  exit(1);
}

/* Waits for a line `next` on stdin (the host's word); 0, or -1 at end of input. */
static int wait_next(void) {
  char line[64];
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "next", 4) == 0) return 0;
  }
  return -1;
}

int main(int argc, char** argv) {
  const char* card = "/dev/dri/card0";
  unsigned timeout = 120;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--card") == 0 && i + 1 < argc) {
      card = argv[++i];
    } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
      timeout = (unsigned)strtoul(argv[++i], NULL, 10);
    } else {
      fprintf(stderr, "usage: share [--card PATH] [--timeout SECS]\n");
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  alarm(timeout); /* a hung ioctl ends the program */

  const int fd = open(card, O_RDWR | O_CLOEXEC);
  if (fd < 0) fail("open %s: %s", card, strerror(errno));

  /* Without virgl, Linux takes target 2 (a 2D texture), one level, layer and sample, and the format as a
   * virtio-gpu format: 2 is B8G8R8X8_UNORM. */
  struct drm_virtgpu_resource_create create = {.target = 2,
                                               .format = 2,
                                               .width = kWidth,
                                               .height = kHeight,
                                               .depth = 1,
                                               .array_size = 1,
                                               .size = kWidth * kHeight * 4,
                                               .stride = kWidth * 4};
  if (drmIoctl(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE, &create) != 0) fail("RESOURCE_CREATE: %s", strerror(errno));
  struct drm_virtgpu_map map = {.handle = create.bo_handle};
  if (drmIoctl(fd, DRM_IOCTL_VIRTGPU_MAP, &map) != 0) fail("VIRTGPU_MAP: %s", strerror(errno));
  const uint32_t pitch = kWidth * 4;
  const uint64_t size = (uint64_t)pitch * kHeight;
  uint8_t* pixels = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map.offset);
  if (pixels == MAP_FAILED) fail("mmap: %s", strerror(errno));
  for (uint64_t i = 0; i < size; ++i) pixels[i] = share_pattern(i);

  struct drm_virtgpu_3d_transfer_to_host xfer = {.bo_handle = create.bo_handle};
  xfer.box.w = kWidth;
  xfer.box.h = kHeight;
  xfer.box.d = 1;
  if (drmIoctl(fd, DRM_IOCTL_VIRTGPU_TRANSFER_TO_HOST, &xfer) != 0) fail("TRANSFER_TO_HOST: %s", strerror(errno));
  struct drm_virtgpu_3d_wait wait = {.handle = create.bo_handle};
  if (drmIoctl(fd, DRM_IOCTL_VIRTGPU_WAIT, &wait) != 0) fail("WAIT: %s", strerror(errno));

  int dmabuf = -1;
  if (drmPrimeHandleToFD(fd, create.bo_handle, DRM_CLOEXEC | DRM_RDWR, &dmabuf) != 0) {
    fail("PRIME export: %s", strerror(errno));
  }
  printf("share: exported %ux%u pitch %u size %llu\n", kWidth, kHeight, pitch, (unsigned long long)size);
  if (wait_next() != 0) fail("no word from the host");

  munmap(pixels, size);
  close(dmabuf);
  struct drm_gem_close gem_close = {.handle = create.bo_handle};
  if (drmIoctl(fd, DRM_IOCTL_GEM_CLOSE, &gem_close) != 0) fail("GEM_CLOSE: %s", strerror(errno));
  /* The GEM object's last reference goes with the handle and the dma-buf: Linux sends RESOURCE_UNREF (from a
   * worker, soon after; the host retries its look-up until the UUID is gone). */
  printf("share: released\n");
  if (wait_next() != 0) fail("no word from the host after the release");
  close(fd);
  printf("share ok %ux%u\n", kWidth, kHeight);
  return 0;
}

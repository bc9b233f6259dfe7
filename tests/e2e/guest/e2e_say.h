/* say(): one `VGPU-E2E: ...` line on stdout (the serial console the host scripts read), flushed at once. Shared
 * by every e2e guest program (e2e_marker.h builds the step protocol on it; 3d/hostile.c uses it alone). */
#ifndef VGPU_E2E_SAY_H
#define VGPU_E2E_SAY_H

#include <stdarg.h>
#include <stdio.h>

__attribute__((format(printf, 1, 2))) static inline void say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("VGPU-E2E: ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

#endif /* VGPU_E2E_SAY_H */

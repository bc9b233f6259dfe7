/* The marker protocol every e2e guest program speaks with the host scripts (display.sh, virgl.sh), shared by
 * vgpu-draw.c and 3d/gl-draw.c: `VGPU-E2E: <case>[:<step>] ok <details>` on stdout (the serial console), then a
 * line from the control tty (`next` goes on, `quit` ends the program); `VGPU-E2E: <case> FAIL <what>[: errno]`
 * and exit 1 on an error. Header-only (static inline): each program is one translation unit.
 *
 *   const char *ctl = e2e_args(argc, argv, "modeset|partial");  // g_case = argv[1], options parsed
 *   ctl_open(ctl);
 *   step_done("base", "%ux%u", w, h);        // marker, then wait for the host
 *   if (fd < 0) fail("open %s", path);        // errno appended when set
 */
#ifndef VGPU_E2E_MARKER_H
#define VGPU_E2E_MARKER_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "e2e_say.h"

static const char* g_case = "?";
static int g_ctl = -1;
static int g_timeout_s = 300;

__attribute__((noreturn, format(printf, 1, 2))) static inline void fail(const char* fmt, ...) {
  int err = errno;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err != 0) {
    say("%s FAIL %s: %s", g_case, msg, strerror(err));
  } else {
    say("%s FAIL %s", g_case, msg);
  }
  exit(1);
}

static inline void ctl_open(const char* dev) {
  struct termios t;
  g_ctl = open(dev, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (g_ctl < 0) fail("open control tty %s", dev);
  if (tcgetattr(g_ctl, &t) != 0) fail("tcgetattr %s", dev);
  cfmakeraw(&t);
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(g_ctl, TCSANOW, &t) != 0) fail("tcsetattr %s", dev);
  tcflush(g_ctl, TCIOFLUSH);
}

/* The command line every e2e guest program takes, `PROG CASE [--ctl DEV] [--timeout S]`: line-buffers stdout,
 * sets g_case (and g_timeout_s), returns the control tty (default /dev/ttyS1). Exits 2 with a usage line naming
 * CASES when there is no case; an unknown option fails the case. */
static inline const char* e2e_args(int argc, char** argv, const char* cases) {
  const char* ctl = "/dev/ttyS1";
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: %s %s [--ctl DEV] [--timeout S]\n", argv[0], cases);
    exit(2);
  }
  g_case = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--ctl") == 0) {
      ctl = argv[i + 1];
    } else if (strcmp(argv[i], "--timeout") == 0) {
      g_timeout_s = atoi(argv[i + 1]);
    } else {
      errno = 0;
      fail("unknown option %s", argv[i]);
    }
  }
  return ctl;
}

/* Prints the step's marker, then waits for the host's `next` (returns) or `quit` (exits 0). */
__attribute__((format(printf, 2, 3))) static inline void step_done(const char* step, const char* fmt, ...) {
  char details[512];
  char line[64];
  size_t n = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(details, sizeof details, fmt, ap);
  va_end(ap);
  if (step != NULL) {
    say("%s:%s ok %s", g_case, step, details);
  } else {
    say("%s ok %s", g_case, details);
  }
  time_t deadline = time(NULL) + g_timeout_s;
  for (;;) {
    struct pollfd p = {.fd = g_ctl, .events = POLLIN};
    int left = (int)(deadline - time(NULL));
    if (left <= 0) {
      errno = 0;
      fail("no word from the host within %d s after %s", g_timeout_s, step ? step : "the last step");
    }
    int r = poll(&p, 1, left * 1000);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("poll control tty");
    if (r == 0) continue;
    char c;
    ssize_t got = read(g_ctl, &c, 1);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) fail("read control tty");
    if (c == '\r' || c == '\n') {
      line[n] = 0;
      if (n == 0) continue;
      if (strcmp(line, "next") == 0) return;
      if (strcmp(line, "quit") == 0) {
        say("%s quit by the host", g_case);
        exit(0);
      }
      say("%s ignoring control line '%s'", g_case, line);
      n = 0;
      continue;
    }
    if (n + 1 < sizeof line) line[n++] = c;
  }
}

#endif /* VGPU_E2E_MARKER_H */

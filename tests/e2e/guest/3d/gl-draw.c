/* gl-draw: renders known geometry with OpenGL ES 2 through EGL on GBM (Mesa) in the 3D e2e guest and scans
 * it out with KMS, for virgl.sh to screendump.
 *
 *   gl-draw info                                 EGL and GL strings; no display
 *   gl-draw draw [--ctl DEV] [--timeout SECONDS] two frames on the first connected connector's preferred mode
 *
 * Runs in the Debian sid guest root against its libEGL.so.1, libGLESv2.so.2, libgbm.so.1 and libdrm.so.2
 * (sonames stable for years). Built on the host (build-guest-gl.sh) with the host's headers and glibc, which is
 * older than sid's: the binary runs there unchanged.
 *
 * Markers on stdout (the serial console), as vgpu-draw.c prints them:
 *   info:  `VGPU-E2E: renderer:egl ...`, `VGPU-E2E: renderer:gl ...`, then `VGPU-E2E: renderer ok <GL_RENDERER>`
 *   draw:  `VGPU-E2E: draw:base ok WxH readback=ok ...` (frame A shown with SETCRTC), waits for `next` on the
 *          control tty, then `VGPU-E2E: draw ok WxH readback=ok flip=pageflip|setcrtc ...` (frame B, shown with
 *          a page flip), waits again. `readback=` is the guest's own glReadPixels check of every pixel
 *          (`bad:N@X,Y:got/want` on a mismatch). Errors: `VGPU-E2E: <case> FAIL <what>[: <errno text>]`.
 *
 * The frames (tests/e2e/ppm_check.py draws the same; keep them in sync): a clear colour, then a rectangle (a
 * triangle strip) and a right triangle, each a solid colour given by a uniform. The triangle with corner
 * (X,Y), width W and height H has the vertices (X,Y), (X+W,Y), (X,Y+H); a pixel (px,py) is inside when
 * px >= X, py >= Y and (2(px-X)+1)*H + (2(py-Y)+1)*W < 2*W*H (its centre strictly inside the hypotenuse;
 * H = 2W puts no pixel centre on it, so every rasteriser agrees). All vertices are on integer pixel edges.
 *   frame A: clear 203040, fill 160,120,320,200 e0c020, tri 700,100,128,256 30d070
 *   frame B: clear 402010, fill 600,400,256,128 20a0e0, tri 100,300,100,200 d03070
 */
#define _GNU_SOURCE
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <errno.h>
#include <fcntl.h>
#include <gbm.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include "../e2e_marker.h"
#include "kms_output.h"

#ifndef EGL_PLATFORM_GBM_KHR
#define EGL_PLATFORM_GBM_KHR 0x31D7
#endif

/* --- the frames (mirrored in ppm_check.py) --------------------------------------------------------------------- */

enum shape_kind { FILL, TRI };
struct shape {
  enum shape_kind kind;
  int x, y, w, h;
  uint32_t rgb;
};
struct frame {
  const char *name;
  uint32_t clear;
  struct shape shapes[2];
};
static const struct frame FRAME_A = {"A", 0x203040, {{FILL, 160, 120, 320, 200, 0xe0c020}, {TRI, 700, 100, 128, 256, 0x30d070}}};
static const struct frame FRAME_B = {"B", 0x402010, {{FILL, 600, 400, 256, 128, 0x20a0e0}, {TRI, 100, 300, 100, 200, 0xd03070}}};

static int shape_covers(const struct shape *s, int px, int py) {
  if (px < s->x || py < s->y || px >= s->x + s->w || py >= s->y + s->h) return 0;
  if (s->kind == FILL) return 1;
  long i = px - s->x, j = py - s->y;
  return (2 * i + 1) * s->h + (2 * j + 1) * s->w < 2L * s->w * s->h;
}

static uint32_t frame_pixel(const struct frame *f, int px, int py) {
  uint32_t c = f->clear;
  for (size_t k = 0; k < sizeof f->shapes / sizeof f->shapes[0]; k++) {
    if (shape_covers(&f->shapes[k], px, py)) c = f->shapes[k].rgb;
  }
  return c;
}

/* --- DRM/KMS ------------------------------------------------------------------------------------------------- */

static void output_probe(struct kms_output *o, const char *card) {
  errno = 0;
  if (kms_output_probe(o, card) != 0) fail("%s", o->error);
}

/* --- EGL + GLES2 ------------------------------------------------------------------------------------------- */

struct gl {
  struct gbm_device *gbm;
  struct gbm_surface *gs;
  EGLDisplay dpy;
  EGLContext ctx;
  EGLSurface surf;
  int w, h;
  GLuint prog, vbo;
  GLint a_pos, u_size, u_colour;
};

static const char *egl_error(void) {
  static char buf[32];
  snprintf(buf, sizeof buf, "EGL error 0x%04x", eglGetError());
  return buf;
}

static void gl_setup(struct gl *g, int drm_fd, int w, int h, uint32_t usage) {
  g->w = w;
  g->h = h;
  g->gbm = gbm_create_device(drm_fd);
  if (g->gbm == NULL) fail("gbm_create_device");
  g->gs = gbm_surface_create(g->gbm, (uint32_t)w, (uint32_t)h, GBM_FORMAT_XRGB8888, usage);
  if (g->gs == NULL) fail("gbm_surface_create %dx%d XRGB8888", w, h);
  errno = 0;
  PFNEGLGETPLATFORMDISPLAYEXTPROC get_platform_display =
      (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
  g->dpy = get_platform_display ? get_platform_display(EGL_PLATFORM_GBM_KHR, g->gbm, NULL)
                                : eglGetDisplay((EGLNativeDisplayType)g->gbm);
  if (g->dpy == EGL_NO_DISPLAY) fail("eglGetPlatformDisplay(GBM): %s", egl_error());
  EGLint major = 0, minor = 0;
  if (!eglInitialize(g->dpy, &major, &minor)) fail("eglInitialize: %s", egl_error());
  if (!eglBindAPI(EGL_OPENGL_ES_API)) fail("eglBindAPI: %s", egl_error());
  static const EGLint cfg_attrs[] = {EGL_SURFACE_TYPE, EGL_WINDOW_BIT, EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8,
                                     EGL_BLUE_SIZE, 8, EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_NONE};
  EGLConfig cfgs[64];
  EGLint n = 0;
  if (!eglChooseConfig(g->dpy, cfg_attrs, cfgs, 64, &n) || n == 0) fail("eglChooseConfig: %s", egl_error());
  EGLConfig cfg = NULL;
  for (EGLint i = 0; i < n; i++) {
    EGLint id = 0;
    if (eglGetConfigAttrib(g->dpy, cfgs[i], EGL_NATIVE_VISUAL_ID, &id) && (uint32_t)id == GBM_FORMAT_XRGB8888) {
      cfg = cfgs[i];
      break;
    }
  }
  if (cfg == NULL) fail("no EGL config with native visual XRGB8888 among %d", n);
  static const EGLint ctx_attrs[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
  g->ctx = eglCreateContext(g->dpy, cfg, EGL_NO_CONTEXT, ctx_attrs);
  if (g->ctx == EGL_NO_CONTEXT) fail("eglCreateContext (ES 2): %s", egl_error());
  g->surf = eglCreateWindowSurface(g->dpy, cfg, (EGLNativeWindowType)g->gs, NULL);
  if (g->surf == EGL_NO_SURFACE) fail("eglCreateWindowSurface: %s", egl_error());
  if (!eglMakeCurrent(g->dpy, g->surf, g->surf, g->ctx)) fail("eglMakeCurrent: %s", egl_error());
}

static GLuint compile(GLenum type, const char *src) {
  GLuint s = glCreateShader(type);
  GLint ok = 0;
  glShaderSource(s, 1, &src, NULL);
  glCompileShader(s);
  glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    char info[512] = "";
    glGetShaderInfoLog(s, sizeof info, NULL, info);
    errno = 0;
    fail("%s shader: %s", type == GL_VERTEX_SHADER ? "vertex" : "fragment", info);
  }
  return s;
}

static void gl_program(struct gl *g) {
  /* Pixel coordinates, origin top left, mapped to clip space. */
  static const char *vs =
      "attribute vec2 pos;\n"
      "uniform vec2 size;\n"
      "void main() {\n"
      "  gl_Position = vec4(pos.x * 2.0 / size.x - 1.0, 1.0 - pos.y * 2.0 / size.y, 0.0, 1.0);\n"
      "}\n";
  static const char *fs =
      "#ifdef GL_FRAGMENT_PRECISION_HIGH\n"
      "precision highp float;\n"
      "#else\n"
      "precision mediump float;\n"
      "#endif\n"
      "uniform vec4 colour;\n"
      "void main() { gl_FragColor = colour; }\n";
  g->prog = glCreateProgram();
  glAttachShader(g->prog, compile(GL_VERTEX_SHADER, vs));
  glAttachShader(g->prog, compile(GL_FRAGMENT_SHADER, fs));
  glLinkProgram(g->prog);
  GLint ok = 0;
  glGetProgramiv(g->prog, GL_LINK_STATUS, &ok);
  if (!ok) {
    char info[512] = "";
    glGetProgramInfoLog(g->prog, sizeof info, NULL, info);
    errno = 0;
    fail("link: %s", info);
  }
  g->a_pos = glGetAttribLocation(g->prog, "pos");
  g->u_size = glGetUniformLocation(g->prog, "size");
  g->u_colour = glGetUniformLocation(g->prog, "colour");
  glGenBuffers(1, &g->vbo);
}

static void set_colour(GLint loc, uint32_t rgb) {
  glUniform4f(loc, (float)((rgb >> 16) & 0xff) / 255.0f, (float)((rgb >> 8) & 0xff) / 255.0f,
              (float)(rgb & 0xff) / 255.0f, 1.0f);
}

static void render(struct gl *g, const struct frame *f) {
  glViewport(0, 0, g->w, g->h);
  glDisable(GL_DITHER);
  glDisable(GL_BLEND);
  glDisable(GL_DEPTH_TEST);
  glDisable(GL_SCISSOR_TEST);
  glClearColor((float)((f->clear >> 16) & 0xff) / 255.0f, (float)((f->clear >> 8) & 0xff) / 255.0f,
               (float)(f->clear & 0xff) / 255.0f, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
  glUseProgram(g->prog);
  glUniform2f(g->u_size, (float)g->w, (float)g->h);
  glBindBuffer(GL_ARRAY_BUFFER, g->vbo);
  glEnableVertexAttribArray((GLuint)g->a_pos);
  for (size_t k = 0; k < sizeof f->shapes / sizeof f->shapes[0]; k++) {
    const struct shape *s = &f->shapes[k];
    float x0 = (float)s->x, y0 = (float)s->y, x1 = (float)(s->x + s->w), y1 = (float)(s->y + s->h);
    float v[8];
    int count;
    GLenum mode;
    if (s->kind == FILL) {
      float q[8] = {x0, y0, x1, y0, x0, y1, x1, y1};
      memcpy(v, q, sizeof q);
      count = 4;
      mode = GL_TRIANGLE_STRIP;
    } else {
      float t[6] = {x0, y0, x1, y0, x0, y1};
      memcpy(v, t, sizeof t);
      count = 3;
      mode = GL_TRIANGLES;
    }
    glBufferData(GL_ARRAY_BUFFER, (GLsizeiptr)(sizeof(float) * 2 * (size_t)count), v, GL_STREAM_DRAW);
    glVertexAttribPointer((GLuint)g->a_pos, 2, GL_FLOAT, GL_FALSE, 0, NULL);
    set_colour(g->u_colour, s->rgb);
    glDrawArrays(mode, 0, count);
  }
  GLenum err = glGetError();
  errno = 0;
  if (err != GL_NO_ERROR) fail("GL error 0x%04x drawing frame %s", err, f->name);
}

/* glReadPixels of the whole frame against the expected one; writes "ok" or "bad:N@X,Y:got/want". */
static int readback(struct gl *g, const struct frame *f, char *out, size_t len) {
  size_t bytes = (size_t)g->w * (size_t)g->h * 4;
  uint8_t *px = malloc(bytes);
  if (px == NULL) fail("malloc %zu", bytes);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadPixels(0, 0, g->w, g->h, GL_RGBA, GL_UNSIGNED_BYTE, px);
  long bad = 0;
  int bx = 0, by = 0;
  uint32_t got_first = 0, want_first = 0;
  for (int row = 0; row < g->h; row++) {
    int y = g->h - 1 - row; /* GL rows go bottom up */
    const uint8_t *p = px + (size_t)row * (size_t)g->w * 4;
    for (int x = 0; x < g->w; x++, p += 4) {
      uint32_t got = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
      uint32_t want = frame_pixel(f, x, y);
      if (got != want) {
        if (bad == 0) {
          bx = x;
          by = y;
          got_first = got;
          want_first = want;
        }
        bad++;
      }
    }
  }
  free(px);
  if (bad == 0) {
    snprintf(out, len, "ok");
  } else {
    snprintf(out, len, "bad:%ld@%d,%d:%06x/%06x", bad, bx, by, got_first, want_first);
  }
  return bad == 0;
}

/* --- cases ------------------------------------------------------------------------------------------------- */

static void case_info(void) {
  struct kms_output o = {0};
  o.fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
  if (o.fd < 0) fail("open /dev/dri/card0");
  struct gl g = {0};
  gl_setup(&g, o.fd, 64, 64, GBM_BO_USE_RENDERING);
  const char *egl_ext = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS); /* client extensions */
  say("renderer:egl vendor=%s version=%s apis=%s", eglQueryString(g.dpy, EGL_VENDOR),
      eglQueryString(g.dpy, EGL_VERSION), eglQueryString(g.dpy, EGL_CLIENT_APIS));
  const char *ext = (const char *)glGetString(GL_EXTENSIONS);
  int n_ext = 0;
  for (const char *p = ext; p && *p; p++) {
    if (*p != ' ' && (p == ext || p[-1] == ' ')) n_ext++;
  }
  say("renderer:gl vendor=%s version=%s glsl=%s extensions=%d egl_platform_gbm=%s", glGetString(GL_VENDOR),
      glGetString(GL_VERSION), glGetString(GL_SHADING_LANGUAGE_VERSION), n_ext,
      egl_ext && strstr(egl_ext, "EGL_KHR_platform_gbm") ? "yes" : "no");
  const char *r = (const char *)glGetString(GL_RENDERER);
  errno = 0;
  if (r == NULL || *r == 0) fail("GL_RENDERER is empty");
  say("renderer ok %s", r);
}

static void show(struct kms_output *o, struct gl *g, struct gbm_bo **bo, uint32_t *fb, int flip, char *how,
                 size_t how_len) {
  if (!eglSwapBuffers(g->dpy, g->surf)) fail("eglSwapBuffers: %s", egl_error());
  *bo = gbm_surface_lock_front_buffer(g->gs);
  if (*bo == NULL) fail("gbm_surface_lock_front_buffer");
  uint32_t handle = gbm_bo_get_handle(*bo).u32, stride = gbm_bo_get_stride(*bo);
  if (drmModeAddFB(o->fd, (uint32_t)g->w, (uint32_t)g->h, 24, 32, stride, handle, fb) != 0)
    fail("drmModeAddFB %dx%d stride %u", g->w, g->h, stride);
  int flipped = 0;
  if (flip) {
    int r = drmModePageFlip(o->fd, o->crtc_id, *fb, DRM_MODE_PAGE_FLIP_EVENT, NULL);
    if (r == 0) {
      struct pollfd p = {.fd = o->fd, .events = POLLIN};
      int pr;
      do {
        pr = poll(&p, 1, 5000);
      } while (pr < 0 && errno == EINTR);
      if (pr <= 0) {
        errno = pr < 0 ? errno : 0;
        fail("no page-flip event within 5 s");
      }
      drmEventContext ev = {.version = 2};
      drmHandleEvent(o->fd, &ev);
      flipped = 1;
      snprintf(how, how_len, "pageflip");
    } else {
      snprintf(how, how_len, "setcrtc(pageflip:%s)", strerror(errno));
    }
  }
  if (!flipped) {
    if (drmModeSetCrtc(o->fd, o->crtc_id, *fb, 0, 0, &o->conn_id, 1, &o->mode) != 0)
      fail("drmModeSetCrtc %s %dx%d", o->name, g->w, g->h);
    if (!flip) snprintf(how, how_len, "setcrtc");
  }
  /* The 2D path needs the damage reported; the kernel flushes the whole plane on a modeset anyway. */
  if (drmModeDirtyFB(o->fd, *fb, NULL, 0) != 0 && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
    fail("drmModeDirtyFB");
}

static void case_draw(void) {
  struct kms_output o = {0};
  output_probe(&o, "/dev/dri/card0");
  struct gl g = {0};
  int w = o.mode.hdisplay, h = o.mode.vdisplay;
  gl_setup(&g, o.fd, w, h, GBM_BO_USE_SCANOUT | GBM_BO_USE_RENDERING);
  gl_program(&g);
  const char *renderer = (const char *)glGetString(GL_RENDERER);
  char rb[96], how[96];
  struct gbm_bo *bo_a = NULL, *bo_b = NULL;
  uint32_t fb_a = 0, fb_b = 0;

  render(&g, &FRAME_A);
  glFinish();
  readback(&g, &FRAME_A, rb, sizeof rb);
  show(&o, &g, &bo_a, &fb_a, 0, how, sizeof how);
  step_done("base", "%dx%d readback=%s flip=%s connector=%s renderer=%s", w, h, rb, how, o.name, renderer);

  render(&g, &FRAME_B);
  glFinish();
  readback(&g, &FRAME_B, rb, sizeof rb);
  show(&o, &g, &bo_b, &fb_b, 1, how, sizeof how);
  drmModeRmFB(o.fd, fb_a);
  gbm_surface_release_buffer(g.gs, bo_a);
  step_done(NULL, "%dx%d readback=%s flip=%s connector=%s renderer=%s", w, h, rb, how, o.name, renderer);
  drmModeRmFB(o.fd, fb_b);
  gbm_surface_release_buffer(g.gs, bo_b);
}

int main(int argc, char **argv) {
  const char *ctl = e2e_args(argc, argv, "info|draw");
  if (strcmp(g_case, "info") == 0) {
    g_case = "renderer";
    case_info();
    return 0;
  }
  if (strcmp(g_case, "draw") == 0) {
    ctl_open(ctl);
    case_draw();
    say("draw finished");
    return 0;
  }
  errno = 0;
  fail("unknown case");
}

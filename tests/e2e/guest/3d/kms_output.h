/* kms_output.h: the first connected connector of a DRM card, its preferred mode and a CRTC that can drive it.
 * Shared by the 3D e2e guest programs that show frames with KMS (gl-draw, vk-draw); header-only, since
 * build-guest-gl.sh builds each program from its one .c file.
 *
 *   struct kms_output o;
 *   if (kms_output_probe(&o, "/dev/dri/card0") != 0) fail("%s", o.error);
 */
#ifndef VGPU_E2E_KMS_OUTPUT_H
#define VGPU_E2E_KMS_OUTPUT_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

struct kms_output {
  int fd;
  uint32_t conn_id, crtc_id;
  drmModeModeInfo mode;
  char name[32];   /* "Virtual-1" */
  char error[128]; /* why kms_output_probe failed */
};

static const char* const KMS_CONN_TYPES[] = {
    "Unknown", "VGA",    "DVI-I", "DVI-D", "DVI-A",   "Composite", "SVIDEO", "LVDS",      "Component", "DIN", "DP",
    "HDMI-A",  "HDMI-B", "TV",    "eDP",   "Virtual", "DSI",       "DPI",    "Writeback", "SPI",       "USB"};

/* The CRTC of a connector: its current encoder's, else the first one an encoder of the connector can drive. */
static uint32_t kms_crtc_of(int fd, const drmModeRes* res, const drmModeConnector* c) {
  uint32_t crtc = 0;
  for (int e = 0; e < c->count_encoders && crtc == 0; e++) {
    drmModeEncoder* enc = drmModeGetEncoder(fd, c->encoders[e]);
    if (enc == NULL) continue;
    if (enc->crtc_id != 0) {
      crtc = enc->crtc_id;
    } else {
      for (int k = 0; k < res->count_crtcs && crtc == 0; k++) {
        if (enc->possible_crtcs & (1u << k)) crtc = res->crtcs[k];
      }
    }
    drmModeFreeEncoder(enc);
  }
  return crtc;
}

/* Opens `card` (o->fd, close it when done) and fills o; 0, or -1 with o->error set (and o->fd closed). */
static int kms_output_probe(struct kms_output* o, const char* card) {
  memset(o, 0, sizeof *o);
  o->fd = open(card, O_RDWR | O_CLOEXEC);
  if (o->fd < 0) {
    snprintf(o->error, sizeof o->error, "open %s: %s", card, strerror(errno));
    return -1;
  }
  drmModeRes* res = drmModeGetResources(o->fd);
  if (res == NULL) {
    snprintf(o->error, sizeof o->error, "drmModeGetResources %s: %s", card, strerror(errno));
    close(o->fd);
    o->fd = -1;
    return -1;
  }
  for (int i = 0; i < res->count_connectors && o->conn_id == 0; i++) {
    drmModeConnector* c = drmModeGetConnector(o->fd, res->connectors[i]);
    if (c == NULL) continue;
    if (c->connection == DRM_MODE_CONNECTED && c->count_modes > 0) {
      o->conn_id = c->connector_id;
      o->mode = c->modes[0];
      for (int m = 0; m < c->count_modes; m++) {
        if (c->modes[m].type & DRM_MODE_TYPE_PREFERRED) {
          o->mode = c->modes[m];
          break;
        }
      }
      const char* type = c->connector_type < sizeof KMS_CONN_TYPES / sizeof KMS_CONN_TYPES[0]
                             ? KMS_CONN_TYPES[c->connector_type]
                             : "?";
      snprintf(o->name, sizeof o->name, "%s-%u", type, c->connector_type_id);
      o->crtc_id = kms_crtc_of(o->fd, res, c);
    }
    drmModeFreeConnector(c);
  }
  drmModeFreeResources(res);
  if (o->conn_id == 0 || o->crtc_id == 0) {
    if (o->conn_id == 0)
      snprintf(o->error, sizeof o->error, "%s: no connected connector with modes", card);
    else
      snprintf(o->error, sizeof o->error, "%s: no CRTC for %s", card, o->name);
    close(o->fd);
    o->fd = -1;
    return -1;
  }
  return 0;
}

#endif

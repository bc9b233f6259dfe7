/* virtgpu_uapi.h: the virtio-gpu DRM uapi of blobs (Linux >= 5.11) and context init (>= 5.16), where Debian 12's
 * libdrm headers (virtgpu_drm.h, included first) predate them; values from the kernel's
 * include/uapi/drm/virtgpu_drm.h. Shared by the 3D e2e guest programs (venus-hostile, vk-draw).
 */
#ifndef VGPU_E2E_VIRTGPU_UAPI_H
#define VGPU_E2E_VIRTGPU_UAPI_H

#include <drm.h>
#include <virtgpu_drm.h>

/* Blobs (Linux >= 5.11) and context init (>= 5.16) uapi, where Debian 12's libdrm headers predate them. */
#ifndef DRM_VIRTGPU_RESOURCE_CREATE_BLOB
#define DRM_VIRTGPU_RESOURCE_CREATE_BLOB 0x0a
#define VIRTGPU_BLOB_MEM_GUEST 0x0001
#define VIRTGPU_BLOB_MEM_HOST3D 0x0002
#define VIRTGPU_BLOB_FLAG_USE_MAPPABLE 0x0001
#define VIRTGPU_BLOB_FLAG_USE_SHAREABLE 0x0002
#define VIRTGPU_BLOB_FLAG_USE_CROSS_DEVICE 0x0004
struct drm_virtgpu_resource_create_blob {
  __u32 blob_mem;
  __u32 blob_flags;
  __u32 bo_handle;
  __u32 res_handle;
  __u64 size;
  __u32 pad;
  __u32 cmd_size;
  __u64 cmd;
  __u64 blob_id;
};
#define DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB \
  DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_RESOURCE_CREATE_BLOB, struct drm_virtgpu_resource_create_blob)
#endif
#ifndef VIRTGPU_PARAM_HOST_VISIBLE
#define VIRTGPU_PARAM_HOST_VISIBLE 4
#endif
#ifndef DRM_VIRTGPU_CONTEXT_INIT
#define DRM_VIRTGPU_CONTEXT_INIT 0x0b
#define VIRTGPU_CONTEXT_PARAM_CAPSET_ID 0x0001
#define VIRTGPU_CONTEXT_PARAM_NUM_RINGS 0x0002
struct drm_virtgpu_context_set_param {
  __u64 param;
  __u64 value;
};
struct drm_virtgpu_context_init {
  __u32 num_params;
  __u32 pad;
  __u64 ctx_set_params;
};
#define DRM_IOCTL_VIRTGPU_CONTEXT_INIT \
  DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_CONTEXT_INIT, struct drm_virtgpu_context_init)
#endif
#ifndef VIRTGPU_PARAM_CONTEXT_INIT
#define VIRTGPU_PARAM_CONTEXT_INIT 6
#endif
_Static_assert(sizeof(struct drm_virtgpu_context_init) == 16, "drm_virtgpu_context_init");
_Static_assert(sizeof(struct drm_virtgpu_resource_create_blob) == 48, "drm_virtgpu_resource_create_blob");

#endif

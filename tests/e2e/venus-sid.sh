#!/usr/bin/env bash
# The Vulkan (Venus) and host-visible memory e2e test, in one command (for ctest): builds or reuses the Debian sid
# root (build-host-root.sh sid: QEMU 11.1.3, virglrenderer 1.3.0 with virgl_render_server, lavapipe), builds our
# binary and runs its unit tests inside it (build-in-root.sh), fetches sid's 7.x guest kernel
# (fetch-sid-kernel.sh), then runs virgl.sh with QEMU and the backend inside the root on the generic vhost-user
# device (config_size=24, room for BLOB_ALIGNMENT's config field) with `--virgl --venus --hostmem SIZE`:
#
#   venus-sid.sh [venus]   renderer: the driver's features show +virgl +resource_blob +host_visible +context_init
#                          +blob_alignment and GL still renders through virgl; venus: vulkaninfo names the Venus
#                          device, vk-draw's pixels, a hostile Venus client, ggml's test-backend-ops and
#                          test-llama-archs pass on it
#   venus-sid.sh igt       renderer as above, and all 11 drm_virtgpu subtests pass with host-visible memory offered
#   venus-sid.sh CASES     any comma separated virgl.sh cases, backend as for venus
#
# Prints virgl.sh's report on stdout and the seconds each stage took on stderr; exits non-zero when a stage fails.
# Needs root (debootstrap once, chroot). Environment: everything virgl.sh, build-host-root.sh and build-in-root.sh
# read; VGPU_E2E_HOSTMEM (default 1G: ggml maps 192 MiB buffers at once; 256M made its 64 MiB-tensor ADD fail), VGPU_ROOT_NO_TESTS=1 to skip the unit tests in the root. The backend
# runs with LP_NUM_THREADS=1 (lavapipe's threads would fight TCG's for 2 cores) unless VGPU_E2E_BACKEND_ENV says
# otherwise.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  -h | --help)
    sed -n '2,21p' "$0" >&2
    exit 2
    ;;
esac
mode="${1:-venus}"
case "${mode}" in
  venus) case_list=renderer,venus ;;
  igt) case_list=renderer,igt ;;
  *) case_list="${mode}" ;;
esac

root_and_binary sid
t="$(now_s)"
"${E2E_DIR}/fetch-sid-kernel.sh" >/dev/null || die "fetch-sid-kernel.sh failed"
t_kernel="$(secs_since "${t}")"
t="$(now_s)"
rc=0
VGPU_E2E_ROOT="${ROOT}" VGPU_E2E_DEVICE=generic VGPU_E2E_CONFIG_SIZE="${VGPU_E2E_CONFIG_SIZE:-24}" \
  VGPU_KERNEL_PKG=linux-image-sid VGPU_E2E_CASES="${case_list}" \
  VGPU_E2E_FEATURES="${VGPU_E2E_FEATURES-+resource_blob +host_visible +context_init +blob_alignment}" \
  VGPU_E2E_BACKEND_ARGS="--venus --hostmem ${VGPU_E2E_HOSTMEM:-1G} ${VGPU_E2E_BACKEND_ARGS:-}" \
  VGPU_E2E_BACKEND_ENV="${VGPU_E2E_BACKEND_ENV:-LP_NUM_THREADS=1}" \
  bash "${E2E_DIR}/virgl.sh" ours "${BINARY}" || rc=$?
log "stages: root ${T_ROOT}s, build and unit tests in the root ${T_BUILD}s, kernel ${t_kernel}s, guest run $(secs_since "${t}")s (exit status ${rc})"
exit "${rc}"

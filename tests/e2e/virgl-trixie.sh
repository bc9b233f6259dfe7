#!/usr/bin/env bash
# The 3D e2e test on QEMU 11.1 and virglrenderer 1.1, in one command (for ctest): builds or reuses the Debian 13
# root (build-host-root.sh), builds our binary and runs its unit tests inside it (build-in-root.sh), then runs
# virgl.sh with QEMU and the backend inside the root, on the generic vhost-user device by default (the guest
# sees +resource_blob +context_init; all 11 drm_virtgpu subtests must pass; draw and kmscube read our
# backend's SIGUSR1 PNGs, see virgl.sh's header).
#
#   virgl-trixie.sh [KIND]      KIND: ours (default) or ours-2d
#
# Prints virgl.sh's report on stdout and the seconds each stage took on stderr; exits non-zero when a stage
# fails. Needs root (debootstrap once, chroot). Environment: everything virgl.sh, build-host-root.sh and
# build-in-root.sh read (VGPU_E2E_DEVICE defaults to generic here; VGPU_ROOT_CMAKE_ARGS, VGPU_ROOT_CTEST_ARGS),
# and VGPU_ROOT_NO_TESTS=1 to skip the unit tests in the root.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

kind="${1:-ours}"
case "${kind}" in
  ours | ours-2d) ;;
  -h | --help)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
  *) die "unknown kind '${kind}' (ours or ours-2d)" ;;
esac

root_and_binary trixie
t="$(now_s)"
rc=0
VGPU_E2E_ROOT="${ROOT}" VGPU_E2E_DEVICE="${VGPU_E2E_DEVICE:-generic}" bash "${E2E_DIR}/virgl.sh" "${kind}" "${BINARY}" || rc=$?
log "stages: root ${T_ROOT}s, build and unit tests in the root ${T_BUILD}s, guest run $(secs_since "${t}")s (exit status ${rc})"
exit "${rc}"

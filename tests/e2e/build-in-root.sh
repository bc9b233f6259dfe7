#!/usr/bin/env bash
# Build vhost-gpu and its unit tests inside a Debian root (build-host-root.sh: trixie, libvirglrenderer 1.1),
# run the unit tests there, and print the host path of the built binary (ROOT/vgpu/build/vhost-gpu; inside the
# root it is /vgpu/build/vhost-gpu).
#
#   build-in-root.sh ROOT [--no-tests]
#
# The working tree (git ls-files -co --exclude-standard: tracked and untracked-but-not-ignored files, so no
# build folders) is synced to ROOT/vgpu/src by content: a new or changed file gets the current time as its
# mtime, an unchanged one keeps its copy's (host mtimes are not kept: a file caught mid-edit could come back
# with an mtime older than its object file); files that left the tree are deleted there. The build folder
# ROOT/vgpu/build stays between runs, so a rebuild compiles only what changed. CMake configures once (Ninja,
# VGPU_ROOT_BUILD_TYPE, default RelWithDebInfo); `ninja vhost-gpu unit_tests` runs under
# `flock /tmp/vgpu-build.lock` (one compile at a time on this machine), then `ctest -L unit` (which includes
# tests/unit/virgl/*, run against the root's libvirglrenderer on Mesa llvmpipe). Every step runs through
# in-root.sh: chroot in a private mount namespace with /proc, /sys, /dev and a tmpfs /tmp, so nothing is ever
# left mounted on the host (no unmount or trap needed), whatever ends the script.
#
# Logs go to stderr; the ctest output and the binary's --print-capabilities are logged too.
# Needs root. Environment: VGPU_ROOT_BUILD_TYPE (first configure), VGPU_ROOT_CMAKE_ARGS (extra configure
# arguments, word-split; when set, CMake runs again with them, and its cache keeps them for later runs: delete
# ROOT/vgpu/build to drop them), VGPU_ROOT_CTEST_ARGS (extra ctest arguments, word-split).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root="${1:-}"
case "${root}" in
  "" | -h | --help)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
run_tests=1
case "${2:-}" in
  "") ;;
  --no-tests) run_tests=0 ;;
  *) die "unknown argument '$2' (use --no-tests or nothing)" ;;
esac
[[ -d "${root}" ]] || die "no root folder ${root} (make one with build-host-root.sh)"
root="$(cd "${root}" && pwd)"
[[ "$(id -u)" == 0 ]] || die "needs root (chroot)"
need_cmd git tar flock unshare chroot
in_root=("${E2E_DIR}/in-root.sh" "${root}")
"${in_root[@]}" -- sh -c 'command -v cmake && command -v ninja && command -v c++' >/dev/null ||
  die "${root} has no cmake, ninja or c++ (not a build-host-root.sh root?)"

repo="$(git -C "${E2E_DIR}" rev-parse --show-toplevel)"
src="${root}/vgpu/src"
bld="${root}/vgpu/build"
mkdir -p "${src}" "${bld}"
cache_lock "build-in-root"

# --- copy the working tree -------------------------------------------------------------------------------------
t="$(now_s)"
e2e_tmpdir
list="${E2E_TMP}/files"
(cd "${repo}" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [[ -f "${f}" || -L "${f}" ]] && printf '%s\0' "${f}"
done) >"${list}"
# Staged first, then only files whose content differs replace the copy, with the current time as their mtime:
# the host's mtimes are not kept, since a file the copy caught mid-edit and compiled may come back later with an
# older mtime than its object file (ninja would keep the stale object).
stage="${root}/vgpu/.stage"
rm -rf -- "${stage}"
mkdir -p "${stage}"
(cd "${repo}" && tar --null -T "${list}" -cf -) | tar -xf - -C "${stage}" --no-same-owner -m
changed=0
while IFS= read -r -d '' f; do
  if ! cmp -s -- "${stage}/${f}" "${src}/${f}"; then
    mkdir -p -- "$(dirname -- "${src}/${f}")"
    mv -f -- "${stage}/${f}" "${src}/${f}"
    changed=$((changed + 1))
  fi
done <"${list}"
rm -rf -- "${stage}"
# Delete what the tree no longer has (a removed source would otherwise stay in CMake's globs).
removed=0
while IFS= read -r -d '' f; do
  rm -f -- "${src}/${f}"
  removed=$((removed + 1))
done < <(comm -z -23 <(cd "${src}" && find . -type f -printf '%P\0' | sort -z) <(sort -z "${list}"))
find "${src}" -mindepth 1 -type d -empty -delete
log "synced $(tr -cd '\0' <"${list}" | wc -c) files of ${repo} to ${src}: ${changed} new or changed, ${removed} removed, in $(secs_since "${t}")s"

# --- configure, build ------------------------------------------------------------------------------------------
t="$(now_s)"
if [[ ! -f "${bld}/build.ninja" || -n "${VGPU_ROOT_CMAKE_ARGS:-}" ]]; then
  # shellcheck disable=SC2206 # word splitting of the extra arguments is intended
  cmake_args=(-S /vgpu/src -B /vgpu/build -G Ninja -DCMAKE_BUILD_TYPE="${VGPU_ROOT_BUILD_TYPE:-RelWithDebInfo}"
    ${VGPU_ROOT_CMAKE_ARGS:-})
  "${in_root[@]}" -- cmake "${cmake_args[@]}" >&2 || die "cmake configure in ${root} failed"
  log "configured in $(secs_since "${t}")s"
fi
t="$(now_s)"
log "waiting for /tmp/vgpu-build.lock, then ninja vhost-gpu unit_tests in ${root}"
# The locked command notes when it got the lock, so that the log tells the wait from the build.
# shellcheck disable=SC2016 # expanded by the inner shell
flock -w 1800 /tmp/vgpu-build.lock bash -c 'printf "%s\n" "${EPOCHREALTIME}" >"$0"; exec "$@"' "${E2E_TMP}/locked" \
  "${in_root[@]}" -- ninja -C /vgpu/build vhost-gpu unit_tests >&2 ||
  die "ninja in ${root} failed, or /tmp/vgpu-build.lock stayed taken for 30 min (a difference of libvirglrenderer's API belongs in src/renderer/virgl/virgl_compat.h)"
log "built in $(secs_since "$(<"${E2E_TMP}/locked")")s after waiting $(awk -v a="${t}" -v b="$(<"${E2E_TMP}/locked")" 'BEGIN { printf "%.2f", b - a }')s for the lock"
grep -E '^VIRGLRENDERER_VERSION:' "${bld}/CMakeCache.txt" >&2 || warn "the build found no libvirglrenderer (no 3D)"
"${in_root[@]}" -- /vgpu/build/vhost-gpu --print-capabilities | tr -d '\n ' | sed 's/^/capabilities: /' >&2
printf '\n' >&2

# --- unit tests --------------------------------------------------------------------------------------------------
if [[ "${run_tests}" == 1 ]]; then
  t="$(now_s)"
  # shellcheck disable=SC2206 # word splitting of the extra arguments is intended
  ctest_args=(--test-dir /vgpu/build -L unit --output-on-failure --timeout 120 ${VGPU_ROOT_CTEST_ARGS:-})
  rc=0
  "${in_root[@]}" -- ctest "${ctest_args[@]}" >&2 || rc=$?
  ((rc == 0)) || die "unit tests failed in ${root} (ctest exit status ${rc})"
  log "unit tests passed in $(secs_since "${t}")s"
fi
printf '%s\n' "${bld}/vhost-gpu"

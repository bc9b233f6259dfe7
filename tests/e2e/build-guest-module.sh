#!/usr/bin/env bash
# Build the e2e guest's kernel module (tests/e2e/guest/module: vgpu_hostile_map, the hostile MAP_BLOB offsets of
# the venus case) for sid's guest kernel and print the path of the .ko.
#
#   build-guest-module.sh
#
# Kbuild against the headers of that very kernel: the sid root (build-host-root.sh sid) holds make and
# linux-headers-amd64 from the same mirror as the kernel fetch-sid-kernel.sh unpacks; the module is built
# there (in-root.sh, `make -C /usr/src/linux-headers-<release> M=...`) with the kernel's own compiler (gcc-16).
# The root's headers must be for the kernel's release; when sid has moved on between the two, the script says
# so and names the refresh (VGPU_KERNEL_REFRESH=1 or VGPU_HOST_ROOT_REFRESH=1). Cached in
# $VGPU_CACHE/guest-module/<hash>/ under a hash of this script, the sources and the release. Needs root.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,12p' "$0"
    exit 0
    ;;
  *) die "no arguments expected (got '$1')" ;;
esac
need_cmd sha256sum
src_dir="${E2E_DIR}/guest/module"
name=vgpu_hostile_map
ktree="$("${E2E_DIR}/fetch-sid-kernel.sh" --root)" || die "fetch-sid-kernel.sh failed"
release="$(find "${ktree}/usr/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n 1)"
[[ -n "${release}" ]] || die "no usr/lib/modules/<release> in ${ktree}"

key="$({
  sha256sum "${BASH_SOURCE[0]}" "${src_dir}/${name}.c" "${src_dir}/Kbuild" | cut -d' ' -f1
  printf '%s\n' "${release}"
} | sha256sum | cut -c1-16)"
cache="${VGPU_CACHE}/guest-module"
out="${cache}/${key}"
if [[ -e "${out}/.complete" ]]; then
  log "cached: ${out}/${name}.ko (${release})"
  printf '%s\n' "${out}/${name}.ko"
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "building the guest module needs root (the sid root, chroot)"
root="$("${E2E_DIR}/build-host-root.sh" sid)" || die "build-host-root.sh sid failed"
headers="/usr/src/linux-headers-${release}"
if [[ ! -e "${root}${headers}/Makefile" ]]; then
  die "the sid root has headers for $(find "${root}/usr/src" -mindepth 1 -maxdepth 1 -name 'linux-headers-*-amd64' -printf '%f ' 2>/dev/null || true)but the guest kernel is ${release}: sid moved on between the two; refresh one of them (VGPU_KERNEL_REFRESH=1 tests/e2e/fetch-sid-kernel.sh, or VGPU_HOST_ROOT_REFRESH=1 tests/e2e/build-host-root.sh sid)"
fi
mkdir -p "${cache}"
cache_lock guest-module
t0="$(now_s)"
rm -rf -- "${out}" "${out}.tmp"
mkdir -p "${out}.tmp"
cp -- "${src_dir}/${name}.c" "${src_dir}/Kbuild" "${out}.tmp/"
"${E2E_DIR}/in-root.sh" "${root}" --bind "${out}.tmp" -- make -s -C "${headers}" M="${out}.tmp" modules \
  >"${out}.tmp/build.log" 2>&1 || {
  tail -n 30 "${out}.tmp/build.log" >&2
  die "building ${name}.ko for ${release} failed"
}
[[ -f "${out}.tmp/${name}.ko" ]] || die "make left no ${name}.ko"
touch "${out}.tmp/.complete"
mv -- "${out}.tmp" "${out}"
cache_keep_newest "${cache}"
log "built ${out}/${name}.ko for ${release} in $(secs_since "${t0}")s"
printf '%s\n' "${out}/${name}.ko"

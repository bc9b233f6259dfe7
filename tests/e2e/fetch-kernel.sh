#!/usr/bin/env bash
# Fetch a Debian 12 guest kernel with apt (never from anywhere else) and unpack it into the cache.
#
#   fetch-kernel.sh            prints the path of the kernel image (vmlinuz)
#   fetch-kernel.sh --root     prints the unpacked package root (boot/, lib/modules/<release>/)
#
# The newest linux-image-6.1.0-<N>-amd64 (signed, else -unsigned) that apt can download is unpacked with
# `dpkg -x` (no install) into $VGPU_CACHE/kernel/<package>_<version>/, and $VGPU_CACHE/kernel/current points at
# it. Once present it is reused without asking apt; VGPU_KERNEL_REFRESH=1 looks for a newer one,
# VGPU_KERNEL_PKG=<package> picks one by name: an image package, or a meta package such as linux-image-6.12-amd64
# (bookworm-backports), which stands for the image it depends on (the newest of that series; remembered as the
# link $VGPU_CACHE/kernel/<meta package>, VGPU_KERNEL_REFRESH=1 asks apt again).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want="vmlinuz"
case "${1:-}" in
  "") ;;
  --root) want="root" ;;
  -h | --help)
    sed -n '2,11p' "$0"
    exit 0
    ;;
  *) die "unknown argument '$1' (use --root or nothing)" ;;
esac

kdir="${VGPU_CACHE}/kernel"
mkdir -p "${kdir}"

# print_result ROOT: the path asked for, after checking the tree is complete.
print_result() {
  local root="$1" vmlinuz
  vmlinuz="$(find "${root}/boot" -maxdepth 1 -name 'vmlinuz-*' -type f | head -n 1)"
  [[ -n "${vmlinuz}" ]] || die "no boot/vmlinuz-* in ${root}"
  if [[ "${want}" == root ]]; then
    printf '%s\n' "${root}"
  else
    printf '%s\n' "${vmlinuz}"
  fi
}

if [[ "${VGPU_KERNEL_REFRESH:-0}" != 1 && -z "${VGPU_KERNEL_PKG:-}" && -e "${kdir}/current/.complete" ]]; then
  root="$(cd "${kdir}/current" && pwd -P)"
  log "cached: $(basename "${root}")"
  print_result "${root}"
  exit 0
fi

# A meta package resolved before: $VGPU_KERNEL_CACHE/<meta> points at its image (VGPU_KERNEL_REFRESH=1 asks apt again).
if [[ "${VGPU_KERNEL_REFRESH:-0}" != 1 && -n "${VGPU_KERNEL_PKG:-}" && -L "${kdir}/${VGPU_KERNEL_PKG}" &&
  -e "${kdir}/${VGPU_KERNEL_PKG}/.complete" ]]; then
  root="$(cd "${kdir}/${VGPU_KERNEL_PKG}" && pwd -P)"
  log "cached: ${VGPU_KERNEL_PKG} = $(basename "${root}")"
  print_result "${root}"
  exit 0
fi

need_cmd apt-cache apt-get dpkg dpkg-deb
cache_lock kernel

# Pick the package: the highest ABI number N with a download candidate; the signed image before -unsigned.
pkg="${VGPU_KERNEL_PKG:-}"
if [[ -z "${pkg}" ]]; then
  mapfile -t names < <(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
    grep -E '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' |
    awk '{ n = $0; sub(/^linux-image-6\.1\.0-/, "", n); sub(/-.*/, "", n); s = ($0 ~ /-unsigned$/) ? 1 : 0; print n, s, $0 }' |
    sort -k1,1nr -k2,2n | awk '{ print $3 }')
  ((${#names[@]} > 0)) || die "apt knows no linux-image-6.1.0-*-amd64 package (is this Debian 12 with 'apt-get update' done?)"
  for n in "${names[@]}"; do
    cand="$(apt-cache policy "${n}" 2>/dev/null | awk '/Candidate:/ { print $2 }')"
    if [[ -n "${cand}" && "${cand}" != "(none)" ]]; then
      pkg="${n}"
      break
    fi
  done
  [[ -n "${pkg}" ]] || die "none of ${names[*]:0:4} ... has a download candidate in apt"
fi
# A meta package (linux-image-6.12-amd64, linux-image-amd64) holds no kernel: take the image it depends on.
if [[ "${pkg}" =~ ^linux-image-([0-9]+\.[0-9]+-)?(cloud-|rt-)?amd64$ ]]; then
  image="$(apt-cache depends "${pkg}" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')"
  [[ -n "${image}" ]] || die "the meta package ${pkg} depends on no linux-image-* package in apt"
  log "${pkg} stands for ${image}"
  meta="${pkg}"
  pkg="${image}"
fi
ver="$(apt-cache policy "${pkg}" 2>/dev/null | awk '/Candidate:/ { print $2 }')"
[[ -n "${ver}" && "${ver}" != "(none)" ]] || die "apt has no candidate for ${pkg}"

target="${kdir}/${pkg}_${ver//:/%3a}"
if [[ -e "${target}/.complete" ]]; then
  log "cached: ${pkg} ${ver}"
else
  log "downloading ${pkg} ${ver} with apt-get download"
  t0="$(now_s)"
  dl="$(mktemp -d "${kdir}/.download.XXXXXX")"
  # Let apt's unprivileged downloader write here (else it warns and falls back to root).
  if [[ "$(id -u)" == 0 ]] && id _apt >/dev/null 2>&1; then
    chown _apt "${dl}"
  fi
  if ! (cd "${dl}" && apt-get download -q "${pkg}=${ver}") >"${dl}/apt.log" 2>&1; then
    cat "${dl}/apt.log" >&2
    rm -rf -- "${dl}"
    die "apt-get download ${pkg}=${ver} failed"
  fi
  deb="$(find "${dl}" -maxdepth 1 -name '*.deb' | head -n 1)"
  [[ -n "${deb}" ]] || die "apt-get download left no .deb in ${dl}"
  log "downloaded $(du -h "${deb}" | cut -f1) in $(secs_since "${t0}")s; unpacking with dpkg -x"
  rm -rf -- "${target}.partial"
  dpkg -x "${deb}" "${target}.partial" || die "dpkg -x ${deb} failed"
  rm -rf -- "${dl}" "${target}"
  touch "${target}.partial/.complete"
  mv -- "${target}.partial" "${target}"
  log "unpacked ${pkg} into ${target} ($(du -sh "${target}" | cut -f1)) in $(secs_since "${t0}")s total"
fi
if [[ -z "${VGPU_KERNEL_PKG:-}" ]]; then
  ln -sfn -- "$(basename "${target}")" "${kdir}/current.tmp"
  mv -T -- "${kdir}/current.tmp" "${kdir}/current"
elif [[ -n "${meta:-}" ]]; then
  ln -sfn -- "$(basename "${target}")" "${kdir}/${meta}.tmp"
  mv -T -- "${kdir}/${meta}.tmp" "${kdir}/${meta}"
fi
print_result "${target}"

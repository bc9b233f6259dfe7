#!/usr/bin/env bash
# Build a Debian 13 (trixie) root holding QEMU 11.1 (trixie-backports) and everything needed to build and run
# vhost-gpu against trixie's libvirglrenderer 1.1, and print its path. Host programs run in it with
# in-root.sh (chroot in a private mount namespace); build-in-root.sh builds our binary there.
#
#   build-trixie-root.sh            prints the root's path (building it when the cache has none or a stale one)
#   build-trixie-root.sh --info     prints the root's record (mirror, package versions, QEMU's apt policy, times)
#
# `debootstrap --variant=minbase trixie` from the Debian mirror of the host's own apt sources (never a host name
# written here; VGPU_TRIXIE_MIRROR overrides), trixie-backports added to its sources, then inside it (chroot)
# `apt-get install --no-install-recommends` of the build and runtime packages below from trixie, and of
# qemu-system-x86 with `-t trixie-backports`; documentation, locales and apt's lists and caches removed.
#
# Cached in $VGPU_CACHE/trixie-root (the root itself; stdout). Its stamp, $VGPU_CACHE/trixie-root/.vgpu-stamp,
# records the suite, the package lists and a hash of the recipe (the functions below): when it differs from
# this script's, the root is built afresh (in $VGPU_CACHE/.trixie-root.build, then swapped in; the old root and
# the build tree build-in-root.sh keeps in it go). With a matching stamp the script only prints the path.
# VGPU_TRIXIE_ROOT_REFRESH=1 rebuilds anyway (trixie-backports moves on). Nothing is mounted on the host: the
# recipe's chroots need no /proc; in-root.sh mounts in a private namespace only. Before deleting a root the
# script refuses to go on while anything is mounted below it.
#
# Needs root (debootstrap, chroot), the host packages debootstrap, and the mirror reachable once.
# Environment: VGPU_TRIXIE_MIRROR, VGPU_TRIXIE_PACKAGES (replaces the trixie list),
# VGPU_TRIXIE_BACKPORTS_PACKAGES (replaces the backports list), VGPU_TRIXIE_ROOT_REFRESH, VGPU_CACHE.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=root
case "${1:-}" in
  "") ;;
  --info) want=info ;;
  -h | --help)
    sed -n '2,25p' "$0"
    exit 0
    ;;
  *) die "unknown argument '$1' (use --info or nothing)" ;;
esac

suite=trixie
# From trixie: the toolchain and the -dev packages of CMakeLists.txt (scripts/install-deps.sh's list without
# clang, the linters and git), Mesa's EGL + llvmpipe for surfaceless virgl, and virgl_render_server (--venus).
# shellcheck disable=SC2206 # word splitting of the override is intended
packages=(${VGPU_TRIXIE_PACKAGES:-cmake ninja-build g++ pkg-config
  libvirglrenderer-dev libepoxy-dev libpixman-1-dev libspdlog-dev libfmt-dev libcli11-dev libexpected-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpng-dev libgbm-dev libdrm-dev
  libegl1 libegl-mesa0 libgl1-mesa-dri virgl-server})
# From trixie-backports: QEMU 11.1 (its vhost-user-test-device-pci passes the backend's feature bits).
# shellcheck disable=SC2206
backports=(${VGPU_TRIXIE_BACKPORTS_PACKAGES:-qemu-system-x86})

root="${VGPU_CACHE}/trixie-root"
stamp="${root}/.vgpu-stamp"
info="${root}/etc/vgpu-trixie-root.txt"

# The Debian mirror of the host's apt sources (deb822 URIs: or one-line deb), as build-guest-root.sh does.
host_mirror() {
  local uri
  uri="$(grep -hoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '{ print $NF }' | grep -E '/debian/?$' | head -n 1 || true)"
  [[ -n "${uri}" ]] || return 1
  printf '%s\n' "${uri%/}"
}

# mounts_below DIR: the mount points at or below DIR (none: prints nothing).
mounts_below() {
  awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

# remove_root DIR: rm -rf, but never through a mount (a leftover bind of /dev or /proc would empty the host's).
remove_root() {
  local dir="$1" m
  [[ -e "${dir}" ]] || return 0
  m="$(mounts_below "${dir}")"
  [[ -z "${m}" ]] || die "refusing to delete ${dir}: mounted below it: ${m//$'\n'/ } (unmount them first)"
  rm -rf --one-file-system -- "${dir}"
}

# --- the recipe (its text is part of the stamp) -------------------------------------------------------------------

# make_root DIR MIRROR LOGDIR: debootstrap, sources, packages, clean-up; writes DIR/etc/vgpu-trixie-root.txt.
make_root() {
  local dir="$1" mirror="$2" logs="$3" t
  t="$(now_s)"
  if ! debootstrap --variant=minbase "${suite}" "${dir}" "${mirror}" >"${logs}/debootstrap.log" 2>&1; then
    tail -n 30 "${logs}/debootstrap.log" >&2
    [[ -f "${dir}/debootstrap/debootstrap.log" ]] && tail -n 30 "${dir}/debootstrap/debootstrap.log" >&2
    die "debootstrap --variant=minbase ${suite} ${dir} ${mirror} failed"
  fi
  t_debootstrap="$(secs_since "${t}")"
  log "debootstrap ${suite}: ${t_debootstrap}s ($(du -sh "${dir}" | cut -f1))"

  # Snapshot mirrors serve Release files past their Valid-Until; no recommends; no services in a chroot.
  cat >"${dir}/etc/apt/apt.conf.d/90vgpu" <<'APT'
Acquire::Check-Valid-Until "false";
Acquire::Languages "none";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
  printf 'deb %s %s-backports main\n' "${mirror}" "${suite}" >"${dir}/etc/apt/sources.list.d/backports.list"
  printf '#!/bin/sh\nexit 101\n' >"${dir}/usr/sbin/policy-rc.d"
  chmod 755 "${dir}/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "${dir}/etc/resolv.conf" 2>/dev/null || true

  local -a ch=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
    chroot "${dir}")
  t="$(now_s)"
  "${ch[@]}" apt-get -q update >"${logs}/apt.log" 2>&1 || {
    tail -n 20 "${logs}/apt.log" >&2
    die "apt-get update in the ${suite} root failed"
  }
  "${ch[@]}" apt-get -q install -y --no-install-recommends "${packages[@]}" >>"${logs}/apt.log" 2>&1 || {
    tail -n 30 "${logs}/apt.log" >&2
    die "apt-get install in the ${suite} root failed (packages: ${packages[*]})"
  }
  t_packages="$(secs_since "${t}")"
  log "trixie packages: ${t_packages}s ($(du -sh "${dir}" | cut -f1))"
  t="$(now_s)"
  "${ch[@]}" apt-get -q install -y --no-install-recommends -t "${suite}-backports" "${backports[@]}" \
    >>"${logs}/apt.log" 2>&1 || {
    tail -n 30 "${logs}/apt.log" >&2
    die "apt-get install -t ${suite}-backports in the ${suite} root failed (packages: ${backports[*]})"
  }
  t_backports="$(secs_since "${t}")"
  log "backports packages: ${t_backports}s ($(du -sh "${dir}" | cut -f1))"

  # Record what is in it (apt-cache policy needs the lists), then drop what nobody reads.
  {
    printf 'suite %s (+%s-backports)\nmirror %s\nbuilt %s\n' "${suite}" "${suite}" "${mirror}" \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # shellcheck disable=SC1091 # the new root's file
    printf 'os %s\n' "$(. "${dir}/etc/os-release" && printf '%s' "${PRETTY_NAME:-?}")"
    printf 'requested %s; from %s-backports: %s\n' "${packages[*]}" "${suite}" "${backports[*]}"
    # shellcheck disable=SC2016 # dpkg-query's format, not shell
    "${ch[@]}" dpkg-query -W -f='package ${Package} ${Version}\n' "${packages[@]}" "${backports[@]}" \
      libvirglrenderer1 libepoxy0 libgallium\* libc6 gcc-\[0-9\]\* 2>/dev/null | grep -v ' $' || true
    printf 'qemu %s\n' "$("${ch[@]}" qemu-system-x86_64 --version 2>&1 | head -n 1)"
    "${ch[@]}" apt-cache policy "${backports[@]}" 2>/dev/null | sed 's/^/policy /'
    printf 'packages-installed %s\n' "$("${ch[@]}" dpkg-query -W -f='.\n' | wc -l)"
  } >"${dir}/etc/vgpu-trixie-root.txt"
  "${ch[@]}" apt-get -q clean >/dev/null 2>&1 || true
  rm -rf -- "${dir}/var/lib/apt/lists/"* "${dir}/var/cache/apt/"*.bin "${dir}/usr/share/doc/"* \
    "${dir}/usr/share/man/"* "${dir}/usr/share/info/"* "${dir}/usr/share/locale/"* "${dir}/var/log/"*.log \
    "${dir}/usr/sbin/policy-rc.d" "${dir}/debootstrap"
}

# --- cache --------------------------------------------------------------------------------------------------------
want_stamp="$(
  printf 'suite %s\npackages %s\nbackports %s\nrecipe %s\n' "${suite}" "${packages[*]}" "${backports[*]}" \
    "$(declare -f make_root | sha256sum | cut -c1-16)"
)"

print_result() {
  if [[ "${want}" == info ]]; then
    cat -- "${info}"
    printf 'root-size-mb %s\n' "$(du -sm --one-file-system "${root}" | cut -f1)"
  else
    printf '%s\n' "${root}"
  fi
}

fresh() {
  [[ "${VGPU_TRIXIE_ROOT_REFRESH:-0}" != 1 && -f "${stamp}" && "$(<"${stamp}")" == "${want_stamp}" ]]
}

if fresh; then
  log "cached: ${root} ($(sed -n 's/^qemu //p' "${info}"); built $(sed -n 's/^built //p' "${info}"))"
  print_result
  exit 0
fi

need_cmd debootstrap chroot sha256sum du awk
[[ "$(id -u)" == 0 ]] || die "building the trixie root needs root (debootstrap, chroot); run as root once, later runs use the cache"
mirror="${VGPU_TRIXIE_MIRROR:-}"
if [[ -z "${mirror}" ]]; then
  mirror="$(host_mirror)" || die "cannot find a Debian mirror (a URI ending in /debian) in /etc/apt sources; set VGPU_TRIXIE_MIRROR"
fi
cache_lock trixie-root
if fresh; then
  log "cached (built by a parallel run): ${root}"
  print_result
  exit 0
fi
if [[ -f "${stamp}" ]]; then
  log "the stamp of ${root} differs from this recipe (or VGPU_TRIXIE_ROOT_REFRESH=1): building afresh"
fi

t0="$(now_s)"
log "building the ${suite} root from ${mirror} (first build: about 1-2 minutes)"
work="${VGPU_CACHE}/.trixie-root.build"
remove_root "${work}"
mkdir -p "${work}/logs"
t_debootstrap="" t_packages="" t_backports=""
make_root "${work}/root" "${mirror}" "${work}/logs"
cp -- "${work}/logs/"*.log "${work}/root/var/log/" 2>/dev/null || true
size_mb="$(du -sm --one-file-system "${work}/root" | cut -f1)"
printf 'times debootstrap %ss, trixie packages %ss, backports %ss, total %ss\nroot-size-mb-built %s\n' \
  "${t_debootstrap}" "${t_packages}" "${t_backports}" "$(secs_since "${t0}")" "${size_mb}" >>"${work}/root/etc/vgpu-trixie-root.txt"
printf '%s\n' "${want_stamp}" >"${work}/root/.vgpu-stamp"
remove_root "${root}"
mv -- "${work}/root" "${root}"
rm -rf -- "${work}"
log "built ${root}: $(sed -n 's/^qemu //p' "${info}"), libvirglrenderer1 $(sed -n 's/^package libvirglrenderer1 //p' "${info}");" \
  "${size_mb} MB; debootstrap ${t_debootstrap}s, packages ${t_packages}s + ${t_backports}s, total $(secs_since "${t0}")s"
print_result

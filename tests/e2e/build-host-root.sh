#!/usr/bin/env bash
# Build a newer Debian root for the host side of the e2e tests (QEMU 11.1 and what builds and runs vhost-gpu
# against that suite's libvirglrenderer) and print its path. Host programs run in it with in-root.sh (chroot
# in a private mount namespace); build-in-root.sh builds our binary there.
#   trixie: Debian 13, QEMU 11.1 from trixie-backports, virglrenderer 1.1 (virgl on QEMU 11.1's generic device).
#   sid:    QEMU 11.1 and virglrenderer 1.3 from sid itself, plus lavapipe (mesa-vulkan-drivers) for Venus and
#           the host-native llama.cpp / ggml Vulkan programs the Venus benchmark compares with. sid's library
#           needs sid's glibc, so the backend that uses it must be built and run in this root.
#
#   build-host-root.sh [SUITE]          prints the root's path (building it when the cache has none or a stale one)
#   build-host-root.sh [SUITE] --info   prints the root's record (mirror, package versions, QEMU's apt policy, times)
#
# SUITE is trixie (default) or sid. `debootstrap --variant=minbase SUITE` from the Debian mirror of the host's
# own apt sources (never a host name written here; VGPU_HOST_ROOT_MIRROR overrides), SUITE-backports added to
# its sources where the suite has them, then inside it (chroot) `apt-get install --no-install-recommends` of
# the packages below (and the backports list with `-t SUITE-backports`); documentation, locales and apt's
# lists and caches removed.
#
# Cached in $VGPU_CACHE/SUITE-root (the root itself; stdout). Its stamp, $VGPU_CACHE/SUITE-root/.vgpu-stamp,
# records the suite, the package lists and a hash of the recipe (the functions below): when it differs from
# this script's, the root is built afresh (in $VGPU_CACHE/.SUITE-root.build, then swapped in; the old root and
# the build tree build-in-root.sh keeps in it go). With a matching stamp the script only prints the path.
# VGPU_HOST_ROOT_REFRESH=1 rebuilds anyway (backports and sid move on). Nothing is mounted on the host: the
# recipe's chroots need no /proc; in-root.sh mounts in a private namespace only. Before deleting a root the
# script refuses to go on while anything is mounted below it.
#
# Needs root (debootstrap, chroot), the host packages debootstrap, and the mirror reachable once.
# Environment: VGPU_HOST_ROOT_MIRROR, VGPU_HOST_ROOT_PACKAGES (replaces the suite's list),
# VGPU_HOST_ROOT_BACKPORTS_PACKAGES (replaces the backports list), VGPU_HOST_ROOT_REFRESH, VGPU_CACHE.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=root suite=trixie
for arg in "$@"; do
  case "${arg}" in
    trixie | sid) suite="${arg}" ;;
    --info) want=info ;;
    -h | --help)
      sed -n '2,31p' "$0"
      exit 0
      ;;
    *) die "unknown argument '${arg}' (use trixie or sid, and --info or nothing)" ;;
  esac
done

# The toolchain and the -dev packages of CMakeLists.txt (scripts/install-deps.sh's list without clang, the
# linters and git), Mesa's EGL + llvmpipe for surfaceless virgl, and virgl_render_server (--venus).
build_packages="cmake ninja-build g++ pkg-config
  libvirglrenderer-dev libepoxy-dev libpixman-1-dev libspdlog-dev libfmt-dev libcli11-dev libexpected-dev
  libgtest-dev libgmock-dev libbenchmark-dev libpng-dev libgbm-dev libdrm-dev
  libegl1 libegl-mesa0 libgl1-mesa-dri virgl-server"
if [[ "${suite}" == trixie ]]; then
  default_packages="${build_packages}"
  # From trixie-backports: QEMU 11.1 (its vhost-user-test-device-pci passes the backend's feature bits).
  default_backports="qemu-system-x86"
else
  # sid has QEMU 11.1 itself; lavapipe for Venus; the host-native side of the Venus benchmark (llama-bench,
  # test-llama-archs, vulkaninfo, ggml's Vulkan backend); xz for the guest kernel's modules; make and the
  # headers of sid's kernel (the guest's) for the hostile Venus test's guest module (build-guest-module.sh).
  default_packages="${build_packages} qemu-system-x86 mesa-vulkan-drivers vulkan-tools
  llama.cpp-tools llama.cpp-tests libggml0-backend-vulkan xz-utils make linux-headers-amd64"
  default_backports=""
fi
# shellcheck disable=SC2206 # word splitting of the override is intended
packages=(${VGPU_HOST_ROOT_PACKAGES:-${default_packages}})
# shellcheck disable=SC2206
backports=(${VGPU_HOST_ROOT_BACKPORTS_PACKAGES:-${default_backports}})

root="${VGPU_CACHE}/${suite}-root"
stamp="${root}/.vgpu-stamp"
info="${root}/etc/vgpu-host-root.txt"

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

# make_root DIR MIRROR LOGDIR: debootstrap, sources, packages, clean-up; writes DIR/etc/vgpu-host-root.txt.
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
  if ((${#backports[@]} > 0)); then
    printf 'deb %s %s-backports main\n' "${mirror}" "${suite}" >"${dir}/etc/apt/sources.list.d/backports.list"
  fi
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
  log "${suite} packages: ${t_packages}s ($(du -sh "${dir}" | cut -f1))"
  t="$(now_s)"
  if ((${#backports[@]} > 0)); then
    "${ch[@]}" apt-get -q install -y --no-install-recommends -t "${suite}-backports" "${backports[@]}" \
      >>"${logs}/apt.log" 2>&1 || {
      tail -n 30 "${logs}/apt.log" >&2
      die "apt-get install -t ${suite}-backports in the ${suite} root failed (packages: ${backports[*]})"
    }
  fi
  t_backports="$(secs_since "${t}")"
  log "backports packages: ${t_backports}s ($(du -sh "${dir}" | cut -f1))"

  # Record what is in it (apt-cache policy needs the lists), then drop what nobody reads.
  {
    printf 'suite %s (backports: %s)\nmirror %s\nbuilt %s\n' "${suite}" "${backports[*]:-none}" "${mirror}" \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # shellcheck disable=SC1091 # the new root's file
    printf 'os %s\n' "$(. "${dir}/etc/os-release" && printf '%s' "${PRETTY_NAME:-?}")"
    printf 'requested %s; from %s-backports: %s\n' "${packages[*]}" "${suite}" "${backports[*]:-}"
    # shellcheck disable=SC2016 # dpkg-query's format, not shell
    "${ch[@]}" dpkg-query -W -f='package ${Package} ${Version}\n' "${packages[@]}" ${backports[@]+"${backports[@]}"} \
      libvirglrenderer1 libepoxy0 libgallium\* libc6 gcc-\[0-9\]\* 2>/dev/null | grep -v ' $' || true
    printf 'qemu %s\n' "$("${ch[@]}" qemu-system-x86_64 --version 2>&1 | head -n 1)"
    "${ch[@]}" apt-cache policy qemu-system-x86 2>/dev/null | sed 's/^/policy /'
    printf 'packages-installed %s\n' "$("${ch[@]}" dpkg-query -W -f='.\n' | wc -l)"
  } >"${dir}/etc/vgpu-host-root.txt"
  "${ch[@]}" apt-get -q clean >/dev/null 2>&1 || true
  rm -rf -- "${dir}/var/lib/apt/lists/"* "${dir}/var/cache/apt/"*.bin "${dir}/usr/share/doc/"* \
    "${dir}/usr/share/man/"* "${dir}/usr/share/info/"* "${dir}/usr/share/locale/"* "${dir}/var/log/"*.log \
    "${dir}/usr/sbin/policy-rc.d" "${dir}/debootstrap"
}

# --- cache --------------------------------------------------------------------------------------------------------
want_stamp="$(
  printf 'suite %s\npackages %s\nbackports %s\nrecipe %s\n' "${suite}" "${packages[*]}" "${backports[*]:-}" \
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
  [[ "${VGPU_HOST_ROOT_REFRESH:-0}" != 1 && -f "${stamp}" && "$(<"${stamp}")" == "${want_stamp}" ]]
}

if fresh; then
  log "cached: ${root} ($(sed -n 's/^qemu //p' "${info}"); built $(sed -n 's/^built //p' "${info}"))"
  print_result
  exit 0
fi

need_cmd debootstrap chroot sha256sum du awk
[[ "$(id -u)" == 0 ]] || die "building the ${suite} root needs root (debootstrap, chroot); run as root once, later runs use the cache"
mirror="${VGPU_HOST_ROOT_MIRROR:-}"
if [[ -z "${mirror}" ]]; then
  mirror="$(host_mirror)" || die "cannot find a Debian mirror (a URI ending in /debian) in /etc/apt sources; set VGPU_HOST_ROOT_MIRROR"
fi
cache_lock "${suite}-root"
if fresh; then
  log "cached (built by a parallel run): ${root}"
  print_result
  exit 0
fi
if [[ -f "${stamp}" ]]; then
  log "the stamp of ${root} differs from this recipe (or VGPU_HOST_ROOT_REFRESH=1): building afresh"
fi

t0="$(now_s)"
log "building the ${suite} root from ${mirror} (first build: about 1-2 minutes)"
work="${VGPU_CACHE}/.${suite}-root.build"
remove_root "${work}"
mkdir -p "${work}/logs"
t_debootstrap="" t_packages="" t_backports=""
make_root "${work}/root" "${mirror}" "${work}/logs"
cp -- "${work}/logs/"*.log "${work}/root/var/log/" 2>/dev/null || true
size_mb="$(du -sm --one-file-system "${work}/root" | cut -f1)"
printf 'times debootstrap %ss, %s packages %ss, backports %ss, total %ss\nroot-size-mb-built %s\n' \
  "${t_debootstrap}" "${suite}" "${t_packages}" "${t_backports}" "$(secs_since "${t0}")" "${size_mb}" \
  >>"${work}/root/etc/vgpu-host-root.txt"
printf '%s\n' "${want_stamp}" >"${work}/root/.vgpu-stamp"
remove_root "${root}"
mv -- "${work}/root" "${root}"
rm -rf -- "${work}"
log "built ${root}: $(sed -n 's/^qemu //p' "${info}"), libvirglrenderer1 $(sed -n 's/^package libvirglrenderer1 //p' "${info}");" \
  "${size_mb} MB; debootstrap ${t_debootstrap}s, packages ${t_packages}s + ${t_backports}s, total $(secs_since "${t0}")s"
print_result

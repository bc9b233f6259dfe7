#!/usr/bin/env bash
# Build the 3D e2e guest's root file system, a Debian sid with Mesa, kmscube, IGT and piglit, as an ext4 image,
# and print the image's path.
#
#   build-guest-root.sh            prints the image path (building it when the cache has none)
#   build-guest-root.sh --root     prints the unpacked root folder the image was made from (building both when
#                                  the cache has no such folder): piglit.sh's vtest reference run chroots into it
#   build-guest-root.sh --info     prints the image's record (suite, mirror, package versions, sizes, times)
#
# `debootstrap --variant=minbase sid` from the Debian mirror of the host's own apt sources (never a host name
# written here; VGPU_GUEST_MIRROR overrides), then `apt-get install --no-install-recommends` of the packages
# below inside the root (chroot), documentation and apt lists removed, then `mke2fs -t ext4 -d ROOT IMG 4G`:
# no loop device, no mount. The guest mounts it read-only (virgl.sh: -drive ...,readonly=on), so one image
# serves parallel runs; the test's own programs travel in the initramfs, not in the image, and a change to
# them never rebuilds it.
#
# Cached in $VGPU_CACHE/guest-root/<key>/ (root.ext4 and info.txt), key = a hash of the suite, the package
# lists, the image size and the recipe (the shell functions below that build the root). The unpacked root is
# kept beside the image as <key>/root (what --root prints; the image and the folder always come from the same
# build); VGPU_GUEST_ROOT_KEEP_DIR=0 deletes it once the image exists, and a later --root then rebuilds both.
# Its users must leave it as it is: piglit.sh chroots into it with in-root.sh (a private tmpfs on /tmp, binds only
# below /tmp).
# sid moves on: VGPU_GUEST_ROOT_REFRESH=1 builds a fresh image under the same key. The 2 newest images are kept,
# the unpacked root of the newest build only.
#
# Needs root (debootstrap, chroot), and the host packages debootstrap and e2fsprogs (mke2fs >= 1.43 for -d).
# Environment: VGPU_GUEST_SUITE (default sid), VGPU_GUEST_MIRROR, VGPU_GUEST_ROOT_SIZE (default 4G: the root
# is about 2.6 GB with piglit), VGPU_GUEST_PACKAGES (replaces the required list), VGPU_GUEST_ROOT_KEEP_DIR
# (default 1), VGPU_CACHE.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=image
case "${1:-}" in
  "") ;;
  --info) want=info ;;
  --root) want=root ;;
  -h | --help)
    sed -n '2,29p' "$0"
    exit 0
    ;;
  *) die "unknown argument '$1' (use --info, --root or nothing)" ;;
esac

suite="${VGPU_GUEST_SUITE:-sid}"
img_size="${VGPU_GUEST_ROOT_SIZE:-4G}"
# Required: Mesa's EGL/GBM/GLES (virgl and llvmpipe drivers are both in libgl1-mesa-dri's libgallium), the
# demos, IGT (drm_virtgpu and the kms_* tests are in igt-gpu-tools-tests, sid only), Vulkan with the Venus ICD
# (mesa-vulkan-drivers), vulkaninfo, llama.cpp's tests and ggml's Vulkan backend (virgl.sh's venus case), piglit and Xvfb (piglit.sh:
# the vtest reference run chroots into the unpacked root and runs piglit's window tests on an Xvfb display).
# shellcheck disable=SC2206 # word splitting of the override is intended
packages=(${VGPU_GUEST_PACKAGES:-libgl1-mesa-dri libegl-mesa0 libegl1 libgbm1 libgles2 libdrm2 mesa-utils kmscube
  igt-gpu-tools igt-gpu-tools-tests piglit xvfb
  mesa-vulkan-drivers vulkan-tools libvulkan1 llama.cpp-tests llama.cpp-tools libggml0-backend-vulkan})
# Installed when the suite has them.
optional=(glmark2-es2-drm)

# --- the recipe (its text is part of the cache key) -------------------------------------------------------------

# make_root DIR MIRROR LOGDIR: debootstrap, packages, clean-up. Writes DIR/etc/vgpu-e2e-root.txt.
make_root() {
  local dir="$1" mirror="$2" logs="$3" t p
  local -a opt=()
  t="$(now_s)"
  if ! debootstrap --variant=minbase "${suite}" "${dir}" "${mirror}" >"${logs}/debootstrap.log" 2>&1; then
    tail -n 30 "${logs}/debootstrap.log" >&2
    [[ -f "${dir}/debootstrap/debootstrap.log" ]] && tail -n 30 "${dir}/debootstrap/debootstrap.log" >&2
    die "debootstrap --variant=minbase ${suite} ${dir} ${mirror} failed"
  fi
  t_debootstrap="$(secs_since "${t}")"
  log "debootstrap ${suite}: ${t_debootstrap}s ($(du -sh "${dir}" | cut -f1))"

  # A snapshot mirror serves Release files past their Valid-Until; no recommends; no services in a chroot.
  cat >"${dir}/etc/apt/apt.conf.d/90vgpu-e2e" <<'APT'
Acquire::Check-Valid-Until "false";
Acquire::Languages "none";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
  printf '#!/bin/sh\nexit 101\n' >"${dir}/usr/sbin/policy-rc.d"
  chmod 755 "${dir}/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "${dir}/etc/resolv.conf" 2>/dev/null || true

  t="$(now_s)"
  local -a ch=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
    chroot "${dir}")
  "${ch[@]}" apt-get -q update >"${logs}/apt.log" 2>&1 || {
    tail -n 20 "${logs}/apt.log" >&2
    die "apt-get update in the ${suite} root failed"
  }
  for p in "${optional[@]}"; do
    if "${ch[@]}" apt-cache show --no-all-versions "${p}" >/dev/null 2>&1; then
      opt+=("${p}")
    else
      note "optional package ${p} is not in ${suite}: left out"
    fi
  done
  "${ch[@]}" apt-get -q install -y --no-install-recommends "${packages[@]}" "${opt[@]}" >>"${logs}/apt.log" 2>&1 || {
    tail -n 30 "${logs}/apt.log" >&2
    die "apt-get install in the ${suite} root failed (packages: ${packages[*]} ${opt[*]})"
  }
  t_packages="$(secs_since "${t}")"
  log "packages: ${t_packages}s ($(du -sh "${dir}" | cut -f1))"

  # Record what is in it, then drop what the guest never reads.
  {
    printf 'suite %s\nmirror %s\nbuilt %s\n' "${suite}" "${mirror}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # shellcheck disable=SC1091 # the new root's file
    printf 'os %s\n' "$(. "${dir}/etc/os-release" && printf '%s' "${PRETTY_NAME:-?}")"
    printf 'requested %s\n' "${packages[*]} ${opt[*]}"
    # shellcheck disable=SC2016 # dpkg-query's format, not shell
    "${ch[@]}" dpkg-query -W -f='package ${Package} ${Version}\n' "${packages[@]}" "${opt[@]}" \
      libgallium-\* libdrm2 libc6 2>/dev/null | grep -v ' $' || true
    printf 'packages-installed %s\n' "$("${ch[@]}" dpkg-query -W -f='.\n' | wc -l)"
  } >"${dir}/etc/vgpu-e2e-root.txt"
  "${ch[@]}" apt-get -q clean >/dev/null 2>&1 || true
  rm -rf -- "${dir}/var/lib/apt/lists/"* "${dir}/var/cache/apt/"*.bin "${dir}/usr/share/doc/"* \
    "${dir}/usr/share/man/"* "${dir}/usr/share/info/"* "${dir}/usr/share/locale/"* "${dir}/var/log/"*.log \
    "${dir}/usr/sbin/policy-rc.d" "${dir}/debootstrap"
  # The guest mounts / read-only and puts tmpfs on /run and /tmp; HOME is /tmp.
  mkdir -p "${dir}/run" "${dir}/tmp" "${dir}/sys/kernel/debug"
}

# make_image DIR IMG: an ext4 image of DIR with no loop device.
make_image() {
  local dir="$1" img="$2"
  mke2fs -q -F -t ext4 -L vgpu-e2e-root -d "${dir}" "${img}" "${img_size}" >&2 || die "mke2fs -d ${dir} failed"
}

# --- cache ------------------------------------------------------------------------------------------------------
key="$({
  printf '%s\n' "${suite}" "${img_size}" "${packages[*]}" "${optional[*]}"
  declare -f make_root make_image
} | sha256sum | cut -c1-16)"
base="${VGPU_CACHE}/guest-root"
out="${base}/${key}"

print_result() {
  case "${want}" in
    info) cat -- "${out}/info.txt" ;;
    root) printf '%s\n' "${out}/root" ;;
    *) printf '%s\n' "${out}/root.ext4" ;;
  esac
}

# cached: the build is complete (and, for --root, its folder was kept).
cached() {
  [[ -e "${out}/.complete" ]] && [[ "${want}" != root || -x "${out}/root/usr/bin/env" ]]
}

if [[ "${VGPU_GUEST_ROOT_REFRESH:-0}" != 1 ]] && cached; then
  log "cached: ${out}/root.ext4 ($(sed -n 's/^os //p' "${out}/info.txt"), $(sed -n 's/^built //p' "${out}/info.txt"))"
  print_result
  exit 0
fi

need_cmd debootstrap chroot mke2fs sha256sum du
[[ "$(id -u)" == 0 ]] || die "building the guest root needs root (debootstrap, chroot); run as root once, later runs use the cache"
mirror="${VGPU_GUEST_MIRROR:-}"
if [[ -z "${mirror}" ]]; then
  mirror="$(host_mirror)" || die "cannot find a Debian mirror (a URI ending in /debian) in /etc/apt sources; set VGPU_GUEST_MIRROR"
fi
cache_lock guest-root
if [[ "${VGPU_GUEST_ROOT_REFRESH:-0}" != 1 ]] && cached; then
  log "cached (built by a parallel run): ${out}/root.ext4"
  print_result
  exit 0
fi

t0="$(now_s)"
log "building the ${suite} guest root from ${mirror} into ${out} (first build: about a minute)"
mkdir -p "${base}"
work="${base}/.build-${key}"
rm -rf -- "${work}"
mkdir -p "${work}/logs"
t_debootstrap="" t_packages=""
make_root "${work}/root" "${mirror}" "${work}/logs"
t="$(now_s)"
make_image "${work}/root" "${work}/root.ext4"
t_image="$(secs_since "${t}")"
root_size="$(du -sm "${work}/root" | cut -f1)"
img_used="$(du -m "${work}/root.ext4" | cut -f1)"
{
  cat "${work}/root/etc/vgpu-e2e-root.txt"
  printf 'root-size-mb %s\nimage %s, %s MB allocated\n' "${root_size}" "${img_size}" "${img_used}"
  printf 'times debootstrap %ss, packages %ss, mke2fs %ss, total %ss\n' "${t_debootstrap}" "${t_packages}" \
    "${t_image}" "$(secs_since "${t0}")"
} >"${work}/info.txt"
if [[ "${VGPU_GUEST_ROOT_KEEP_DIR:-1}" == 0 ]]; then
  rm -rf -- "${work}/root"
fi
touch "${work}/.complete"
rm -rf -- "${out}.old"
[[ ! -e "${out}" ]] || mv -- "${out}" "${out}.old"
mv -- "${work}" "${out}"
rm -rf -- "${out}.old"
# Keep the 2 newest images, and the unpacked root of the newest only (each is about 2.6 GB).
find "${base}" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2- |
  tail -n +2 | while read -r old; do rm -rf -- "${old}/root"; done
find "${base}" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' | sort -rn | tail -n +3 |
  cut -d' ' -f2- | while read -r old; do rm -rf -- "${old}"; done
log "built ${out}/root.ext4: root ${root_size} MB, image ${img_size} (${img_used} MB allocated);" \
  "debootstrap ${t_debootstrap}s, packages ${t_packages}s, mke2fs ${t_image}s, total $(secs_since "${t0}")s"
print_result

#!/usr/bin/env bash
# Fetch Debian sid's guest kernel (7.x: `+blob_alignment`, host-visible memory fixed again after 6.16) with the
# apt of the sid root (build-host-root.sh sid), never from anywhere else, and unpack it into the kernel cache
# in the layout fetch-kernel.sh keeps, under the name linux-image-sid; print what fetch-kernel.sh would.
#
#   fetch-sid-kernel.sh            prints the path of the kernel image (vmlinuz)
#   fetch-sid-kernel.sh --root     prints the unpacked tree (boot/, lib/modules/<release>/)
#
# sid splits a kernel into packages: linux-image-<abi> is empty and depends on linux-binary-<abi> (the image,
# in usr/lib/modules/<release>/vmlinuz), linux-modules-<abi> (the .ko files) and linux-base-<abi> (config,
# modules.builtin). All the linux-* packages linux-image-amd64 depends on are downloaded (`apt-get download`,
# lists and archives on the root's private tmpfs, so the cached root stays as it is), unpacked with dpkg -x
# inside the root, then lib -> usr/lib is linked and boot/vmlinuz-<release> hard-linked, as build-initramfs.sh
# and fetch-kernel.sh expect. Cached in $VGPU_CACHE/kernel/sid_<version>/, with the link
# $VGPU_CACHE/kernel/linux-image-sid; `VGPU_KERNEL_PKG=linux-image-sid fetch-kernel.sh` finds it from then on.
# VGPU_KERNEL_REFRESH=1 asks sid again. Needs root (the sid root, chroot).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want=""
case "${1:-}" in
  "") ;;
  --root) want=--root ;;
  -h | --help)
    sed -n '2,16p' "$0"
    exit 0
    ;;
  *) die "unknown argument '$1' (use --root or nothing)" ;;
esac

kdir="${VGPU_CACHE}/kernel"
link="${kdir}/linux-image-sid"
if [[ "${VGPU_KERNEL_REFRESH:-0}" != 1 && -L "${link}" && -e "${link}/.complete" ]]; then
  VGPU_KERNEL_PKG=linux-image-sid exec "${E2E_DIR}/fetch-kernel.sh" ${want:+"${want}"}
fi

[[ "$(id -u)" == 0 ]] || die "fetching sid's kernel needs root (the sid root, chroot)"
root="$("${E2E_DIR}/build-host-root.sh" sid)" || die "build-host-root.sh sid failed"
mkdir -p "${kdir}"
cache_lock kernel
t0="$(now_s)"
dl="$(mktemp -d "${kdir}/.sid-download.XXXXXX")"
trap 'rm -rf -- "${dl}"' EXIT
# Inside the root: fresh lists on its tmpfs, the image's linux-* dependencies downloaded into ${dl}, each
# unpacked into ${dl}/tree. Prints the version of linux-image-amd64.
# shellcheck disable=SC2016 # expanded by the inner shell
script='set -eu
apt="apt-get -q -o Dir::State::Lists=/tmp/lists -o Dir::Cache=/tmp/cache -o Debug::NoLocking=1"
mkdir -p /tmp/lists/partial /tmp/cache/archives/partial
$apt update >&2
image=$(apt-cache -o Dir::State::Lists=/tmp/lists -o Dir::Cache=/tmp/cache depends linux-image-amd64 |
  awk "\$1 == \"Depends:\" && \$2 ~ /^linux-image-/ { print \$2; exit }")
[ -n "$image" ]
pkgs=$(apt-cache -o Dir::State::Lists=/tmp/lists -o Dir::Cache=/tmp/cache depends "$image" |
  awk "\$1 == \"Depends:\" && \$2 ~ /^linux-(binary|modules|base)-/ { print \$2 }")
cd "$1"
$apt download "$image" $pkgs >&2
mkdir -p tree
for d in ./*.deb; do dpkg -x "$d" tree; done
apt-cache -o Dir::State::Lists=/tmp/lists -o Dir::Cache=/tmp/cache policy linux-image-amd64 |
  awk "/Candidate:/ { print \$2 }"'
log "downloading sid's linux-image-amd64 and its parts with the sid root's apt"
ver="$("${E2E_DIR}/in-root.sh" "${root}" --bind "${dl}" -- sh -c "${script}" sh "${dl}" 2>"${dl}.log")" || {
  tail -n 20 "${dl}.log" >&2
  rm -f -- "${dl}.log"
  die "downloading sid's kernel failed"
}
rm -f -- "${dl}.log"
vmlinuz="$(find "${dl}/tree/usr/lib/modules" -mindepth 2 -maxdepth 2 -name vmlinuz -type f | head -n 1)"
[[ -n "${vmlinuz}" ]] || die "sid's kernel packages hold no usr/lib/modules/<release>/vmlinuz"
release="$(basename "$(dirname "${vmlinuz}")")"
target="${kdir}/sid_${ver//:/%3a}"
rm -rf -- "${target}"
mv -- "${dl}/tree" "${target}"
ln -s usr/lib "${target}/lib"
mkdir -p "${target}/boot"
# A hard link: fetch-kernel.sh looks for a regular file boot/vmlinuz-*.
ln -- "${target}/usr/lib/modules/${release}/vmlinuz" "${target}/boot/vmlinuz-${release}"
touch "${target}/.complete"
ln -sfn -- "$(basename "${target}")" "${link}.tmp"
mv -T -- "${link}.tmp" "${link}"
log "sid kernel ${release} (linux-image-amd64 ${ver}) in ${target} ($(du -sh "${target}" | cut -f1)), $(secs_since "${t0}")s"
rm -rf -- "${dl}" # exec skips the EXIT trap
trap - EXIT
VGPU_KERNEL_PKG=linux-image-sid exec "${E2E_DIR}/fetch-kernel.sh" ${want:+"${want}"}

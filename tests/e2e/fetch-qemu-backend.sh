#!/usr/bin/env bash
# Print the path of QEMU's own C backend, vhost-user-gpu, the reference the e2e test runs against.
#
# Uses /usr/lib/qemu/vhost-user-gpu when it is installed (package qemu-system-gui) and runs. Otherwise it
# fetches, with `apt-get download` (never from anywhere else) and without installing anything, the
# qemu-system-gui package of the same version as the installed qemu-system-x86, plus the libraries that binary
# needs and the host lacks (libvirglrenderer1, libepoxy0 and theirs), unpacks them with `dpkg -x` into
# $VGPU_CACHE/qemu-backend/<version>/ and prints a wrapper there that sets LD_LIBRARY_PATH.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

system=/usr/lib/qemu/vhost-user-gpu
if [[ -x "${system}" ]] && "${system}" --help >/dev/null 2>&1; then
  printf '%s\n' "${system}"
  exit 0
fi

need_cmd apt-get apt-cache dpkg dpkg-query ldd
qver="$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null)" ||
  die "package qemu-system-x86 is not installed; cannot tell which qemu-system-gui matches"
dir="${VGPU_CACHE}/qemu-backend/${qver//:/%3a}"
wrapper="${dir}/vhost-user-gpu"
cache_lock qemu-backend
if [[ -x "${wrapper}" && -e "${dir}/.complete" ]]; then
  log "cached: ${wrapper}"
  printf '%s\n' "${wrapper}"
  exit 0
fi

t0="$(now_s)"
rm -rf -- "${dir}"
mkdir -p "${dir}/debs" "${dir}/root"
pkgs=("qemu-system-gui=${qver}")
for p in libvirglrenderer1 libepoxy0 libva2 libva-drm2 libvulkan1; do
  if ! dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'ok installed'; then
    pkgs+=("${p}")
  fi
done
log "downloading with apt-get download: ${pkgs[*]}"
if [[ "$(id -u)" == 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "${dir}/debs"
fi
if ! (cd "${dir}/debs" && apt-get download -q "${pkgs[@]}") >"${dir}/apt.log" 2>&1; then
  cat "${dir}/apt.log" >&2
  die "apt-get download failed (is bookworm-backports, which has qemu-system-gui ${qver}, in apt's sources?)"
fi
for deb in "${dir}"/debs/*.deb; do
  dpkg -x "${deb}" "${dir}/root" || die "dpkg -x ${deb} failed"
done
bin="${dir}/root/usr/lib/qemu/vhost-user-gpu"
[[ -x "${bin}" ]] || die "qemu-system-gui ${qver} has no usr/lib/qemu/vhost-user-gpu"
libpath="${dir}/root/usr/lib/x86_64-linux-gnu"
missing="$(LD_LIBRARY_PATH="${libpath}" ldd "${bin}" | grep 'not found' || true)"
[[ -z "${missing}" ]] || die "vhost-user-gpu still lacks libraries after unpacking:
${missing}"
cat >"${wrapper}" <<EOF
#!/bin/sh
# QEMU ${qver}'s vhost-user-gpu, unpacked by tests/e2e/fetch-qemu-backend.sh (not installed).
LD_LIBRARY_PATH="${libpath}\${LD_LIBRARY_PATH:+:\${LD_LIBRARY_PATH}}" exec "${bin}" "\$@"
EOF
chmod 755 "${wrapper}"
"${wrapper}" --help >/dev/null 2>&1 || die "${wrapper} --help failed"
rm -rf -- "${dir}/debs"
touch "${dir}/.complete"
log "unpacked QEMU ${qver}'s vhost-user-gpu in $(secs_since "${t0}")s"
printf '%s\n' "${wrapper}"

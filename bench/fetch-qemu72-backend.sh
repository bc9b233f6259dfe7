#!/usr/bin/env bash
# Print the path of QEMU 7.2's vhost-user-gpu (Debian 12's qemu-system-gui), the older reference backend
# vgpu_bench compares against.
#
# QEMU 7.2's qemu-system-gui cannot be installed beside the 10.0 one from bookworm-backports, so this fetches
# the newest 1:7.2* qemu-system-gui with `apt-get download` (never from anywhere else), unpacks it with
# `dpkg -x` into $VGPU_CACHE/qemu72-backend/<version>/ (outside the clone), checks that its libraries resolve
# on this host (Debian 12), writes a wrapper there, and points $VGPU_CACHE/qemu72-backend/current at it.
# vgpu_bench looks for $VGPU_CACHE/qemu72-backend/current/vhost-user-gpu (or takes --qemu72 PATH).
#
#   bench/fetch-qemu72-backend.sh            # prints .../qemu72-backend/1%3a7.2+dfsg-.../vhost-user-gpu
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/e2e/lib.sh"

need_cmd apt-get apt-cache dpkg ldd
# The newest 7.2 build apt knows (bookworm and bookworm-security both carry one).
qver="$(apt-cache madison qemu-system-gui | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep '^1:7\.2' |
  sort -V | tail -n 1 || true)"
[[ -n "${qver}" ]] || die "apt knows no qemu-system-gui 1:7.2* (is Debian 12 bookworm in apt's sources?)"
base="${VGPU_CACHE}/qemu72-backend"
dir="${base}/${qver//:/%3a}"
wrapper="${dir}/vhost-user-gpu"
mkdir -p "${base}"
cache_lock qemu72-backend
if [[ -x "${wrapper}" && -e "${dir}/.complete" ]]; then
  ln -sfn "$(basename "${dir}")" "${base}/current"
  log "cached: ${wrapper}"
  printf '%s\n' "${wrapper}"
  exit 0
fi

t0="$(now_s)"
rm -rf -- "${dir}"
mkdir -p "${dir}/debs" "${dir}/root"
if [[ "$(id -u)" == 0 ]] && id _apt >/dev/null 2>&1; then
  chown _apt "${dir}/debs"
fi
log "downloading with apt-get download: qemu-system-gui=${qver}"
if ! (cd "${dir}/debs" && apt-get download -q "qemu-system-gui=${qver}") >"${dir}/apt.log" 2>&1; then
  cat "${dir}/apt.log" >&2
  die "apt-get download qemu-system-gui=${qver} failed"
fi
for deb in "${dir}"/debs/*.deb; do
  dpkg -x "${deb}" "${dir}/root" || die "dpkg -x ${deb} failed"
done
bin="${dir}/root/usr/lib/qemu/vhost-user-gpu"
[[ -x "${bin}" ]] || die "qemu-system-gui ${qver} has no usr/lib/qemu/vhost-user-gpu"
libpath="${dir}/root/usr/lib/x86_64-linux-gnu"
missing="$(LD_LIBRARY_PATH="${libpath}" ldd "${bin}" | grep 'not found' || true)"
[[ -z "${missing}" ]] || die "QEMU ${qver}'s vhost-user-gpu lacks libraries on this host (install them):
${missing}"
cat >"${wrapper}" <<EOF
#!/bin/sh
# QEMU ${qver}'s vhost-user-gpu, unpacked by bench/fetch-qemu72-backend.sh (not installed).
LD_LIBRARY_PATH="${libpath}\${LD_LIBRARY_PATH:+:\${LD_LIBRARY_PATH}}" exec "${bin}" "\$@"
EOF
chmod 755 "${wrapper}"
"${wrapper}" --help >/dev/null 2>&1 || die "${wrapper} --help failed"
rm -rf -- "${dir}/debs"
echo "${qver}" >"${dir}/VERSION"
touch "${dir}/.complete"
ln -sfn "$(basename "${dir}")" "${base}/current"
log "unpacked QEMU ${qver}'s vhost-user-gpu in $(secs_since "${t0}")s"
printf '%s\n' "${wrapper}"

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

need_cmd dpkg-query
qver="$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null)" ||
  die "package qemu-system-x86 is not installed; cannot tell which qemu-system-gui matches"
# The libraries vhost-user-gpu needs that the host may lack come along.
pkgs=("qemu-system-gui=${qver}")
for p in libvirglrenderer1 libepoxy0 libva2 libva-drm2 libvulkan1; do
  if ! dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'ok installed'; then
    pkgs+=("${p}")
  fi
done
cache_lock qemu-backend
qemu_backend_unpack "${VGPU_CACHE}/qemu-backend/${qver//:/%3a}" "${qver}" tests/e2e/fetch-qemu-backend.sh "${pkgs[@]}"

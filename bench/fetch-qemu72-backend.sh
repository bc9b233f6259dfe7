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

need_cmd apt-cache
# The newest 7.2 build apt knows (bookworm and bookworm-security both carry one).
qver="$(apt-cache madison qemu-system-gui | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep '^1:7\.2' |
  sort -V | tail -n 1 || true)"
[[ -n "${qver}" ]] || die "apt knows no qemu-system-gui 1:7.2* (is Debian 12 bookworm in apt's sources?)"
base="${VGPU_CACHE}/qemu72-backend"
dir="${base}/${qver//:/%3a}"
mkdir -p "${base}"
cache_lock qemu72-backend
qemu_backend_unpack "${dir}" "${qver}" bench/fetch-qemu72-backend.sh "qemu-system-gui=${qver}"
ln -sfn "$(basename "${dir}")" "${base}/current"

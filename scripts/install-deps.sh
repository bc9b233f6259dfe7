#!/usr/bin/env bash
# Installs every build, test and e2e dependency of vhost-gpu as named Debian 12 packages.
# Idempotent: when everything is already installed it only checks and returns in about a second.
# Usage (as root): scripts/install-deps.sh [--no-e2e]
set -euo pipefail

want_e2e=1
for arg in "$@"; do
  case "$arg" in
    --no-e2e) want_e2e=0 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

# Build, unit/integration tests, fuzzers (clang + libclang-rt), formatting and linting.
build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  clang clang-14 libclang-rt-14-dev clang-format clang-tidy
  libcli11-dev libspdlog-dev libfmt-dev libexpected-dev libpixman-1-dev libpng-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libvirglrenderer-dev libepoxy-dev virgl-server libegl1 libegl-mesa0 libgl1-mesa-dri
  libegl-dev libgles-dev libgbm-dev libdrm-dev libvulkan-dev
  linux-libc-dev
)
# End-to-end: a busybox initramfs and a Debian kernel run under QEMU 10.0 (bookworm-backports), and QEMU's
# own C backend (/usr/lib/qemu/vhost-user-gpu, package qemu-system-gui) to check the tests against.
# The 3D tests boot a Debian sid root with Mesa, made with debootstrap into an ext4 image (e2fsprogs).
e2e_host_pkgs=(busybox-static cpio gzip python3 xz-utils debootstrap e2fsprogs)
e2e_backports_pkgs=(qemu-system-x86 qemu-system-gui)

backports_list=/etc/apt/sources.list.d/vhost-gpu-bookworm-backports.sources

missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

# The Debian mirror this host already uses (never a host name written into the project).
host_mirror() {
  local uri
  uri=$(grep -hoE '^(URIs:|deb)\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  [ -n "$uri" ] || { echo "install-deps: cannot find the Debian mirror in /etc/apt sources" >&2; exit 1; }
  echo "${uri%/}"
}

qemu_is_backports() {
  local p v
  for p in "${e2e_backports_pkgs[@]}"; do
    v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
    [[ "$v" == *bpo* ]] || return 1
  done
}

need=($(missing "${build_pkgs[@]}"))
if [ "$want_e2e" = 1 ]; then
  need+=($(missing "${e2e_host_pkgs[@]}"))
fi
need_backports=0
if [ "$want_e2e" = 1 ] && ! qemu_is_backports; then need_backports=1; fi

if [ ${#need[@]} -eq 0 ] && [ "$need_backports" = 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ "$need_backports" = 1 ] && [ ! -f "$backports_list" ]; then
  mirror=$(host_mirror)
  cat > "$backports_list" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update
if [ ${#need[@]} -gt 0 ]; then
  apt-get install -y --no-install-recommends "${need[@]}"
fi
if [ "$need_backports" = 1 ]; then
  apt-get install -y --no-install-recommends -t bookworm-backports "${e2e_backports_pkgs[@]}"
fi
echo "install-deps: done"

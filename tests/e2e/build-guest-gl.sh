#!/usr/bin/env bash
# Build the 3D e2e guest's GL programs (tests/e2e/guest/3d/*.c, with the headers they share there and
# the guest/*.h they share with vgpu-draw.c) and print the folder that holds them (lib.sh's build_guest_programs).
#
#   build-guest-gl.sh
#
# Dynamic x86-64 binaries for the Debian sid guest root (build-guest-root.sh): compiled with the host's gcc and
# headers (EGL/egl.h, GLES2/gl2.h, gbm.h, xf86drm.h, vulkan/vulkan.h: packages libegl-dev libgles-dev
# libgbm-dev libdrm-dev libvulkan-dev), linked against libEGL.so.1, libGLESv2.so.2, libgbm.so.1, libdrm.so.2
# and libvulkan.so.1 (as needed), whose sonames sid has too; the
# host's glibc (Debian 12, 2.36) is older than sid's, so they run there. They travel in the initramfs, not in
# the root image. Cached in $VGPU_CACHE/guest-gl/<hash>/ under a hash of this script, lib.sh, the sources, the
# headers and the compiler's version; CC overrides the compiler.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for h in EGL/egl.h GLES2/gl2.h gbm.h xf86drm.h vulkan/vulkan.h; do
  [[ -e "/usr/include/${h}" || -e "/usr/include/libdrm/${h}" ]] ||
    die "/usr/include/${h} missing: apt-get install libegl-dev libgles-dev libgbm-dev libdrm-dev libvulkan-dev"
done
# shellcheck disable=SC2054 # -Wl,--as-needed is one linker option, not a list
build_guest_programs guest-gl "needs gcc and libegl-dev libgles-dev libgbm-dev libdrm-dev libvulkan-dev" \
  "$(find "${E2E_DIR}/guest/3d" -maxdepth 1 -name '*.c' -printf '%p\n' | LC_ALL=C sort)" -- \
  -O2 -std=gnu11 -Wall -Wextra -Werror -I/usr/include/libdrm -- -Wl,--as-needed -lEGL -lGLESv2 -lgbm -ldrm -lvulkan

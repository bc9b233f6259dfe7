#!/usr/bin/env bash
# Build the 3D e2e guest's GL programs (tests/e2e/guest/3d/*.c, with the headers they share there and
# guest/e2e_marker.h, e2e_say.h) and print the folder that holds them.
#
#   build-guest-gl.sh
#
# Dynamic x86-64 binaries for the Debian sid guest root (build-guest-root.sh): compiled with the host's gcc and
# headers (EGL/egl.h, GLES2/gl2.h, gbm.h, xf86drm.h, vulkan/vulkan.h: packages libegl-dev libgles-dev
# libgbm-dev libdrm-dev libvulkan-dev), linked against libEGL.so.1, libGLESv2.so.2, libgbm.so.1, libdrm.so.2
# and libvulkan.so.1 (as needed), whose sonames sid has too; the
# host's glibc (Debian 12, 2.36) is older than sid's, so they run there. They travel in the initramfs, not in
# the root image. Cached in $VGPU_CACHE/guest-gl/<hash>/ under a hash of this script, the sources and the
# compiler's version; CC overrides the compiler.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cc="${CC:-gcc}"
need_cmd "${cc}" sha256sum strip
src_dir="${E2E_DIR}/guest/3d"
mapfile -t sources < <(find "${src_dir}" -maxdepth 1 -name '*.c' -printf '%p\n' | LC_ALL=C sort)
((${#sources[@]} > 0)) || die "no guest GL programs in ${src_dir}"
mapfile -t headers < <(find "${src_dir}" -maxdepth 1 -name '*.h' -printf '%p\n' | LC_ALL=C sort)
headers+=("${E2E_DIR}/guest/e2e_marker.h" "${E2E_DIR}/guest/e2e_say.h") # shared with vgpu-draw.c
for h in EGL/egl.h GLES2/gl2.h gbm.h xf86drm.h vulkan/vulkan.h; do
  [[ -e "/usr/include/${h}" || -e "/usr/include/libdrm/${h}" ]] ||
    die "/usr/include/${h} missing: apt-get install libegl-dev libgles-dev libgbm-dev libdrm-dev libvulkan-dev"
done
cflags=(-O2 -std=gnu11 -Wall -Wextra -Werror -I/usr/include/libdrm)
# shellcheck disable=SC2054 # -Wl,--as-needed is one linker option, not a list
libs=(-Wl,--as-needed -lEGL -lGLESv2 -lgbm -ldrm -lvulkan)

t0="$(now_s)"
key="$({
  sha256sum "${BASH_SOURCE[0]}" "${sources[@]}" "${headers[@]}" | cut -d' ' -f1
  "${cc}" --version | head -n 1
  printf '%s\n' "${cflags[*]} ${libs[*]}"
} | sha256sum | cut -c1-16)"
root="${VGPU_CACHE}/guest-gl"
out="${root}/${key}"
[[ -e "${out}/.complete" ]] || cache_lock guest-gl
if [[ -e "${out}/.complete" ]]; then
  log "cached: ${out} ($(find "${out}" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f '))"
  printf '%s\n' "${out}"
  exit 0
fi

rm -rf -- "${out}" "${out}.tmp"
mkdir -p "${out}.tmp"
for src in "${sources[@]}"; do
  name="$(basename "${src}" .c)"
  "${cc}" "${cflags[@]}" -o "${out}.tmp/${name}" "${src}" "${libs[@]}" ||
    die "compiling ${src} failed (needs gcc and libegl-dev libgles-dev libgbm-dev libdrm-dev libvulkan-dev)"
  strip "${out}.tmp/${name}"
done
touch "${out}.tmp/.complete"
mv -- "${out}.tmp" "${out}"
cache_keep_newest "${root}"
log "built ${out} ($(find "${out}" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f ')) in $(secs_since "${t0}")s"
printf '%s\n' "${out}"

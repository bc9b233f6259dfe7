#!/usr/bin/env bash
# Build the e2e guest programs (tests/e2e/guest/*.c: static x86-64 binaries, raw DRM ioctls, no libdrm) and
# print the folder that holds them (one binary per .c file, named after it).
#
#   build-guest-programs.sh
#
# Built with the host's gcc (`-static -O2`, glibc's static libc: package libc6-dev), stripped. Cached in
# $VGPU_CACHE/guest-programs/<hash>/ under a hash of this script, the sources (guest/*.c, guest/*.h) and the
# compiler's version; CC overrides the compiler.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cc="${CC:-gcc}"
need_cmd "${cc}" sha256sum strip
src_dir="${E2E_DIR}/guest"
mapfile -t sources < <(find "${src_dir}" -maxdepth 1 -name '*.c' -printf '%p\n' | LC_ALL=C sort)
((${#sources[@]} > 0)) || die "no guest programs in ${src_dir}"
cflags=(-static -O2 -std=gnu11 -Wall -Wextra -Werror)

t0="$(now_s)"
key="$({
  sha256sum "${BASH_SOURCE[0]}" "${src_dir}"/*.c "${src_dir}"/*.h 2>/dev/null | cut -d' ' -f1
  "${cc}" --version | head -n 1
  printf '%s\n' "${cflags[*]}"
} | sha256sum | cut -c1-16)"
root="${VGPU_CACHE}/guest-programs"
out="${root}/${key}"
[[ -e "${out}/.complete" ]] || cache_lock guest-programs
if [[ -e "${out}/.complete" ]]; then
  log "cached: ${out} ($(find "${out}" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f '))"
  printf '%s\n' "${out}"
  exit 0
fi

rm -rf -- "${out}" "${out}.tmp"
mkdir -p "${out}.tmp"
for src in "${sources[@]}"; do
  name="$(basename "${src}" .c)"
  "${cc}" "${cflags[@]}" -I "${src_dir}" -o "${out}.tmp/${name}" "${src}" ||
    die "compiling ${src} failed (needs gcc and a static libc: apt-get install libc6-dev)"
  strip "${out}.tmp/${name}"
done
touch "${out}.tmp/.complete"
mv -- "${out}.tmp" "${out}"
cache_keep_newest "${root}"
log "built ${out} ($(find "${out}" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f ')) in $(secs_since "${t0}")s"
printf '%s\n' "${out}"

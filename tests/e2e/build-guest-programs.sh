#!/usr/bin/env bash
# Build the e2e guest programs (tests/e2e/guest/*.c: static x86-64 binaries, raw DRM ioctls, no libdrm) and
# print the folder that holds them (one binary per .c file, named after it; lib.sh's build_guest_programs).
#
#   build-guest-programs.sh
#
# Built with the host's gcc (`-static -O2`, glibc's static libc: package libc6-dev), stripped. Cached in
# $VGPU_CACHE/guest-programs/<hash>/ under a hash of this script, lib.sh, the sources (guest/*.c, guest/*.h) and the
# compiler's version; CC overrides the compiler.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

src_dir="${E2E_DIR}/guest"
build_guest_programs guest-programs "needs gcc and a static libc: apt-get install libc6-dev" \
  "$(find "${src_dir}" -maxdepth 1 -name '*.c' -printf '%p\n' | LC_ALL=C sort)" -- \
  -static -O2 -std=gnu11 -Wall -Wextra -Werror -I "${src_dir}"

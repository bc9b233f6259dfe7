#!/usr/bin/env bash
# Builds vhost-gpu and runs the whole test suite: formatting and lint checks, unit + integration + e2e tests,
# the same unit and integration tests under ASan+UBSan, and every libFuzzer target for a bounded time.
# Run scripts/install-deps.sh first (README command 2 does both). Exits non-zero on any failure.
#
# Environment: VGPU_FUZZ_SECONDS (default 60) per fuzzer; VGPU_SKIP_STAGES="lint asan fuzz" to skip stages
# while iterating locally (CI never sets it); VGPU_CACHE for the e2e cache (default /var/cache/vhost-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
fuzz_seconds=${VGPU_FUZZ_SECONDS:-60}
skip=" ${VGPU_SKIP_STAGES:-} "
stage() { printf '\n==== %s ====\n' "$*"; }
skipped() { [[ "$skip" == *" $1 "* ]] && echo "(skipped: VGPU_SKIP_STAGES)"; }

if ! skipped lint; then
  stage "format check (clang-format)"
  scripts/lint.sh format
  stage "layering check (docs/layers.txt)"
  scripts/lint.sh layers
fi

stage "build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$jobs"

stage "unit, integration and e2e tests (build/)"
ctest --test-dir build --output-on-failure -j"$jobs"

if ! skipped lint; then
  stage "clang-tidy"
  scripts/lint.sh tidy build
fi

if ! skipped asan; then
  stage "unit and integration tests under ASan+UBSan (build-asan/)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DVGPU_SANITIZE=ON >/dev/null
  ninja -C build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -L 'unit|integration'
fi

if ! skipped fuzz; then
  stage "libFuzzer targets, ${fuzz_seconds}s each (build-fuzz/)"
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DVGPU_FUZZ=ON -DVGPU_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
  ninja -C build-fuzz -j"$jobs"
  ctest --test-dir build-fuzz --output-on-failure -L fuzz -j"$jobs"
fi

stage "all stages passed"

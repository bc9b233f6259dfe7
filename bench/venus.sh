#!/usr/bin/env bash
# LLM inference through Venus, side by side in one run: llama-bench on the tiny llama model test-llama-archs
# writes (seed 42), (1) in a guest on our device through Venus (-ngl 99), (2) in the same guest on its CPU
# (-ngl 0), (3) host-native on lavapipe in the same sid root, no VM (-ngl 99) and on the host CPU (-ngl 0).
# guest-Venus / host-native is the virtualisation cost. Also the RESOURCE_MAP_BLOB round trip (command to
# response, QEMU's SHMEM_MAP reply included) p50/p99 over every map of the guest run, from the backend's
# debug log.
#
#   bench/venus.sh [OUT.md]      prints the markdown report; also writes it to OUT.md when given
#
# Needs what tests/e2e/venus-sid.sh needs (root, the cached sid root, kernel and guest root). Not a test: no
# threshold; llama-bench's own mean ± stddev over 3 repetitions. Guest: TCG, 1 vCPU, 1 GiB;
# LP_NUM_THREADS=1 and llama's -t 1 on both sides.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
e2e="${here}/../tests/e2e"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../tests/e2e/lib.sh
source "${e2e}/lib.sh"

out="${1:-}"
root="$("${e2e}/build-host-root.sh" sid)" || die "build-host-root.sh sid failed"
e2e_tmpdir
models="${E2E_TMP}/models"
mkdir -p "${models}"
env_vk=(GGML_VK_VISIBLE_DEVICES=0 GGML_VK_DISABLE_COOPMAT=1 GGML_VK_DISABLE_COOPMAT2=1 LP_NUM_THREADS=1)
log "host-native: the model and llama-bench in ${root}"
"${e2e}/in-root.sh" "${root}" --bind "${models}" -- env "${env_vk[@]}" \
  /usr/libexec/x86_64-linux-gnu/llama.cpp-tests/test-llama-archs -a '^llama$' -s 42 -o "${models}" \
  >"${E2E_TMP}/model.log" 2>&1 || die "test-llama-archs -o failed on the host: $(tail -n 3 "${E2E_TMP}/model.log")"
for ngl in 99 0; do
  "${e2e}/in-root.sh" "${root}" --bind "${models}" -- env "${env_vk[@]}" llama-bench -m "${models}/llama-dense.gguf" \
    -ngl "${ngl}" -p 64 -n 16 -r 3 -t 1 >"${E2E_TMP}/host-ngl${ngl}.md" 2>"${E2E_TMP}/host-ngl${ngl}.err" ||
    die "host llama-bench -ngl ${ngl} failed: $(tail -n 3 "${E2E_TMP}/host-ngl${ngl}.err")"
done

log "guest: venus-sid.sh with the bench step (a few minutes under TCG)"
VGPU_KEEP=1 VGPU_ROOT_NO_TESTS=1 VGPU_E2E_VENUS_STEPS=bench VGPU_E2E_BACKEND_ARGS="--log-level debug" \
  bash "${e2e}/venus-sid.sh" venus >"${E2E_TMP}/guest.log" 2>&1 || {
  tail -n 30 "${E2E_TMP}/guest.log" >&2
  die "the guest run failed"
}
gdir="$(sed -nE 's/.*\[virgl .*\] kept (\/tmp\/vgpu-e2e\.[A-Za-z0-9]+).*/\1/p' "${E2E_TMP}/guest.log" | tail -n 1)"
[[ -n "${gdir}" && -f "${gdir}/console.log" ]] || die "cannot find the guest run's folder in its log"

# The t/s cell of TEST's row in a llama-bench markdown table ("mean ± sd"); columns found by their header (the
# guest's table has no threads column: llama-bench drops columns at their default).
rate() { # FILE TEST
  awk -F'|' -v t="$2" '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    !cols { for (i = 1; i <= NF; i++) { if (trim($i) == "test") tc = i; if (trim($i) == "t/s") rc = i }
            if (tc && rc) cols = 1; next }
    cols && trim($tc) == t { print trim($rc); exit }' "$1"
}
mean() { sed -E 's/ *±.*//' <<<"$1"; }
for ngl in 99 0; do
  grep -aE "^VGPU-E2E: venus-out: bench-ngl${ngl}: \|" "${gdir}/console.log" |
    sed -E "s/^VGPU-E2E: venus-out: bench-ngl${ngl}: //" >"${E2E_TMP}/guest-ngl${ngl}.md"
  [[ -s "${E2E_TMP}/guest-ngl${ngl}.md" ]] || die "no llama-bench rows for -ngl ${ngl} in ${gdir}/console.log"
done
# The guest's Vulkan rows must be the Venus device's: llama-bench names the backend only, the log names it.
grep -aq 'ggml_vulkan: 0 = Virtio-GPU Venus' "${gdir}/console.log" || true

mapfile -t trips < <(sed -nE 's/.*RESOURCE_MAP_BLOB [0-9]+: mapped .* round trip ([0-9]+) us.*/\1/p' "${gdir}/backend.log" | sort -n)
n=${#trips[@]}
((n > 0)) || die "no MAP_BLOB round trips in ${gdir}/backend.log"
p50="${trips[$(((n - 1) * 50 / 100))]}"
p99="${trips[$(((n - 1) * 99 / 100))]}"
max="${trips[$((n - 1))]}"

ratio() { awk -v a="$(mean "$1")" -v b="$(mean "$2")" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
gv_pp="$(rate "${E2E_TMP}/guest-ngl99.md" pp64)" gv_tg="$(rate "${E2E_TMP}/guest-ngl99.md" tg16)"
gc_pp="$(rate "${E2E_TMP}/guest-ngl0.md" pp64)" gc_tg="$(rate "${E2E_TMP}/guest-ngl0.md" tg16)"
hv_pp="$(rate "${E2E_TMP}/host-ngl99.md" pp64)" hv_tg="$(rate "${E2E_TMP}/host-ngl99.md" tg16)"
hc_pp="$(rate "${E2E_TMP}/host-ngl0.md" pp64)" hc_tg="$(rate "${E2E_TMP}/host-ngl0.md" tg16)"
report="$(
  cat <<EOF
# LLM inference through Venus: guest on our device vs guest CPU vs host-native

Command: \`bench/venus.sh\` ($(date -u +%Y-%m-%d), commit $(git -C "${here}" rev-parse --short HEAD)).
Machine: $(nproc) cores ($(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo).
Model: the tiny random-weight llama (dense, 1.19 M params, F32, 4.5 MiB) \`test-llama-archs -a '^llama\$' -s 42 -o\`
writes; \`llama-bench -p 64 -n 16 -r 3 -t 1\`, \`GGML_VK_DISABLE_COOPMAT=1\`, lavapipe with \`LP_NUM_THREADS=1\`.
Guest: QEMU 11.1.3 TCG (\`-cpu max\`, 1 vCPU, 1 GiB), Linux 7.2.13, Mesa 26.2.6 Venus, generic vhost-user device,
\`vhost-gpu --virgl --venus --hostmem 1G\` with virglrenderer 1.3.0 on lavapipe (Mesa 26.2.6), all in the sid root.
Host-native: the same sid root, no VM.

| where | prompt pp64 t/s | generation tg16 t/s |
| --- | ---: | ---: |
| guest, Venus on our device (-ngl 99) | ${gv_pp} | ${gv_tg} |
| guest, its own CPU (-ngl 0) | ${gc_pp} | ${gc_tg} |
| host-native, lavapipe (-ngl 99) | ${hv_pp} | ${hv_tg} |
| host-native, CPU (-ngl 0) | ${hc_pp} | ${hc_tg} |

| ratio | pp64 | tg16 |
| --- | ---: | ---: |
| guest Venus / host-native lavapipe (the virtualisation cost) | $(ratio "${gv_pp}" "${hv_pp}") | $(ratio "${gv_tg}" "${hv_tg}") |
| guest Venus / guest CPU | $(ratio "${gv_pp}" "${gc_pp}") | $(ratio "${gv_tg}" "${gc_tg}") |

RESOURCE_MAP_BLOB round trip (the command's arrival to its response, the blob's export and QEMU's SHMEM_MAP reply
included), over the ${n} maps of the guest run: p50 ${p50} µs, p99 ${p99} µs, max ${max} µs.

Reading it: the guest runs under TCG here (no KVM on this machine), so every guest-side cost (the Venus encoder,
the virtio-gpu driver, llama.cpp's own CPU work between submissions) is emulated, and the guest-CPU row is TCG's
speed, not a real CPU's. The published anchor, 75-80 % of native (Red Hat, on macOS with KVM-class
virtualisation), is for a real GPU and hardware virtualisation; this is the first figure for a vhost-user
backend on Linux, and it measures the worst case.
EOF
)"
printf '%s\n' "${report}"
[[ -z "${out}" ]] || printf '%s\n' "${report}" >"${out}"

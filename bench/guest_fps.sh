#!/usr/bin/env bash
# Guest-level repaint benchmark: the e2e guest (tests/e2e: Debian 12's kernel, busybox initramfs, QEMU under TCG)
# runs `vgpu-draw repaint`, which sets 1920x1080 on Virtual-1 and repaints the full dumb buffer with a new colour
# and a full-frame DIRTYFB in a loop (warm-up, then a measured period by the guest clock), once on our backend and
# once on QEMU's C backend, in one run. Prints a markdown table: backend, frames, seconds, fps, ours/theirs.
#
#   bench/guest_fps.sh [OURS_BINARY] [--output FILE]
#
# OURS_BINARY defaults to build/vhost-gpu; --output FILE also appends the table (with the command and the
# machine) to FILE. TCG slows both backends alike (the guest's fill of 8 MB per frame is emulated); compare the
# ratio, not the fps.
#
# Environment:
#   VGPU_QEMU             QEMU binary (default qemu-system-x86_64; >= 8)
#   GUEST_FPS_THEIRS      QEMU's C backend (default /usr/lib/qemu/vhost-user-gpu, else fetch-qemu-backend.sh's)
#   GUEST_FPS_SECONDS     measured seconds (default 10); GUEST_FPS_WARMUP warm-up seconds (default 1)
#   GUEST_FPS_BACKENDS    which to run, in order (default "ours qemu-c")
#   VGPU_E2E_ACCEL        tcg (default) or kvm
#   VGPU_E2E_TIMEOUT      seconds from QEMU's start to the guest's first marker (default 120)
#   VGPU_KEEP=1           keep the temp dir (consoles and logs)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../tests/e2e/lib.sh
source "${repo}/tests/e2e/lib.sh"

cmdline="bench/guest_fps.sh $*"
usage_lines=2,11
parse_args "output" "$@"
ours="${repo}/build/vhost-gpu"
((${#args[@]} == 0)) || ours="${args[-1]}"
output="${opt_val[output]:-}"
need_backend "${ours}"
backend_kind qemu-c "${GUEST_FPS_THEIRS:-/usr/lib/qemu/vhost-user-gpu}" qemu-c
theirs="${backend_bin}"
seconds="${GUEST_FPS_SECONDS:-10}"
warmup="${GUEST_FPS_WARMUP:-1}"
read -r -a backends <<<"${GUEST_FPS_BACKENDS:-ours qemu-c}"
qemu="${VGPU_QEMU:-qemu-system-x86_64}"
qver="$(qemu_check_version "${qemu}" 8)"
boot_timeout="${VGPU_E2E_TIMEOUT:-120}"
accel="${VGPU_E2E_ACCEL:-tcg}"
set_accel_args "${accel}"
need_cmd python3 timeout setsid head stdbuf grep awk

busy="$(pgrep -af 'ninja|ctest|qemu-system|vgpu_bench' | grep -v "^$$ " | cut -c1-120 || true)"
[[ -z "${busy}" ]] || warn "other heavy processes are running; the numbers will be noisy:"$'\n'"${busy}"
load_before="$(cat /proc/loadavg)"

guest_boot_files --draw
e2e_tmpdir
tmp="${E2E_TMP}"

declare -A fps=() frames=() secs=() bin=()
bin[ours]="${ours}"
bin[qemu-c]="${theirs}"

# run_one KIND: one boot, the guest repaints, the marker gives frames, seconds and fps.
run_one() {
  local k="$1" dir="${tmp}/$1"
  mkdir -p "${dir}"
  local console="${dir}/console.log" backend_log="${dir}/backend.log" qemu_log="${dir}/qemu.log" backend_alive
  local sock="${dir}/gpu.sock" qmp_sock="${dir}/qmp.sock"
  : >"${console}"
  local budget=$((boot_timeout + ${seconds%.*} + ${warmup%.*} + 60))
  backend_start "${k}" "$((budget - 30))" "${sock}" 0 "${bin[${k}]}" --socket-path "${sock}" || return 1
  qemu_base_args 512M "${sock}" "" "vhost-user-gpu-pci,chardev=gpu,id=gpu0,max_outputs=1"
  qemu_args+=(-kernel "${kernel}" -initrd "${initrd}"
    -append "console=ttyS0 panic=-1 vgpu_e2e.cases=repaint vgpu_e2e.repaint_s=${seconds} vgpu_e2e.warmup_s=${warmup} vgpu_e2e.hold=${budget}")
  bg_start "qemu ${k}" "${qemu_log}" 5M "${budget}" "${qemu}" "${qemu_args[@]}"
  local rc=0 line
  wait_for_line "${console}" '^VGPU-E2E: (repaint (ok|FAIL)|case repaint exit)' "${budget}" "${qemu_log}" || rc=$?
  line="$(grep -aE '^VGPU-E2E: repaint ok ' "${console}" | head -n 1 | tr -d '\r' || true)"
  boot_stop 0
  if [[ -z "${line}" ]]; then
    log "${k}: no repaint result (wait status ${rc})"
    show_boot_logs "${k}"
    return 1
  fi
  # VGPU-E2E: repaint ok <frames> frames in <seconds> s = <fps> fps 1920x1080
  read -r _ _ _ "frames[${k}]" _ _ "secs[${k}]" _ _ "fps[${k}]" _ <<<"${line}"
  log "${k}: $(grep -aE '^VGPU-E2E: repaint:warmup ok' "${console}" | tr -d '\r' | head -n 1 | sed 's/^VGPU-E2E: //'); ${line#VGPU-E2E: }"
}

failed=0
for k in "${backends[@]}"; do
  [[ -n "${bin[${k}]:-}" ]] || die "unknown backend '${k}' (ours, qemu-c)"
  run_one "${k}" || failed=1
done
load_after="$(cat /proc/loadavg)"

ratio="—"
if [[ -n "${fps[ours]:-}" && -n "${fps[qemu-c]:-}" ]]; then
  ratio="$(awk -v a="${fps[ours]}" -v b="${fps[qemu-c]}" 'BEGIN { printf "%.2f×", a / b }')"
fi
table="$({
  printf '| backend | binary | frames | seconds | fps ↑ | ours/qemu-c |\n|---|---|---:|---:|---:|---:|\n'
  for k in "${backends[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "${k}" "${bin[${k}]}" "${frames[${k}]:-—}" "${secs[${k}]:-—}" \
      "${fps[${k}]:-FAIL}" "$([[ "${k}" == ours ]] && echo "${ratio}" || echo —)"
  done
})"
printf '\n%s\n' "${table}"
if [[ -n "${output}" ]]; then
  {
    # shellcheck disable=SC2016 # the backquotes are markdown
    printf '\nCommand: `%s` (%s UTC)\n\n' "${cmdline% }" "$(date -u '+%Y-%m-%d %H:%M')"
    printf -- '- QEMU %s, accel %s, guest 512 MiB, Linux %s; %s logical cores; 1920x1080 repaints: %s s warm-up, %s s measured (guest clock)\n' \
      "${qver}" "${accel}" "$(basename "${kernel}" | sed 's/^vmlinuz-//')" "$(nproc)" "${warmup}" "${seconds}"
    printf -- '- load average before / after: %s / %s\n\n' "${load_before}" "${load_after}"
    printf '%s\n' "${table}"
  } >>"${output}"
  log "appended to ${output}"
fi
exit "${failed}"

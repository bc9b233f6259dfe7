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
ours="${repo}/build/vhost-gpu"
output=""
while (($# > 0)); do
  case "$1" in
    --output)
      (($# >= 2)) || die "--output needs a file"
      output="$2"
      shift 2
      ;;
    --output=*)
      output="${1#*=}"
      shift
      ;;
    -h | --help)
      sed -n '2,11p' "$0" >&2
      exit 2
      ;;
    -*) die "unknown option $1" ;;
    *)
      ours="$1"
      shift
      ;;
  esac
done
[[ -x "${ours}" ]] || die "our backend '${ours}' is not an executable (not built?)"
theirs="${GUEST_FPS_THEIRS:-/usr/lib/qemu/vhost-user-gpu}"
if [[ ! -x "${theirs}" ]]; then
  theirs="$("${E2E_DIR}/fetch-qemu-backend.sh")" || die "fetch-qemu-backend.sh failed"
fi
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

kernel="$("${E2E_DIR}/fetch-kernel.sh")" || die "fetch-kernel.sh failed"
progs="$("${E2E_DIR}/build-guest-programs.sh")" || die "build-guest-programs.sh failed"
initrd="$("${E2E_DIR}/build-initramfs.sh" --add "${progs}/vgpu-draw=/bin/vgpu-draw" \
  "$("${E2E_DIR}/fetch-kernel.sh" --root 2>/dev/null)")" || die "build-initramfs.sh failed"
e2e_tmpdir
tmp="${E2E_TMP}"

declare -A fps=() frames=() secs=() bin=()
bin[ours]="${ours}"
bin[qemu-c]="${theirs}"

# run_one KIND: one boot, the guest repaints, the marker gives frames, seconds and fps.
run_one() {
  local k="$1" dir="${tmp}/$1"
  mkdir -p "${dir}"
  local console="${dir}/console.log" backend_log="${dir}/backend.log" qemu_log="${dir}/qemu.log"
  local sock="${dir}/gpu.sock" qmp_sock="${dir}/qmp.sock"
  : >"${console}"
  local budget=$((boot_timeout + ${seconds%.*} + ${warmup%.*} + 60))
  bg_start "backend ${k}" "${backend_log}" 5M $((budget + 30)) "${bin[${k}]}" --socket-path "${sock}"
  wait_for_socket "${sock}" 15 "${backend_log}" || {
    show_tail "backend log (${k})" "${backend_log}"
    return 1
  }
  # shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
  local -a qemu_args=(
    "${accel_args[@]}"
    -m 512M
    -object memory-backend-memfd,id=mem,size=512M,share=on
    -machine q35,memory-backend=mem
    -nodefaults -no-user-config -display none -vga none
    -serial "file:${console}" -monitor none
    -qmp "unix:${qmp_sock},server=on,wait=off"
    -chardev "socket,id=gpu,path=${sock}"
    -device "vhost-user-gpu-pci,chardev=gpu,id=gpu0,max_outputs=1"
    -kernel "${kernel}" -initrd "${initrd}"
    -append "console=ttyS0 panic=-1 vgpu_e2e.cases=repaint vgpu_e2e.repaint_s=${seconds} vgpu_e2e.warmup_s=${warmup} vgpu_e2e.hold=${budget}"
    -no-reboot
  )
  bg_start "qemu ${k}" "${qemu_log}" 5M "${budget}" "${qemu}" "${qemu_args[@]}"
  local rc=0 line
  wait_for_line "${console}" '^VGPU-E2E: (repaint (ok|FAIL)|case repaint exit)' "${budget}" "${qemu_log}" || rc=$?
  line="$(grep -aE '^VGPU-E2E: repaint ok ' "${console}" | head -n 1 | tr -d '\r' || true)"
  if bg_running "${qemu_log}"; then
    qmp "${qmp_sock}" quit >/dev/null 2>&1 || true
  fi
  bg_stop "${qemu_log}" 3
  bg_stop "${backend_log}" 3
  if [[ -z "${line}" ]]; then
    log "${k}: no repaint result (wait status ${rc})"
    show_tail "guest console (${k})" "${console}" 30
    show_tail "backend log (${k})" "${backend_log}" 20
    show_tail "QEMU log (${k})" "${qemu_log}" 10
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

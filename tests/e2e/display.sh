#!/usr/bin/env bash
# End-to-end display test: Linux guest programs draw through DRM/KMS on the vhost-user GPU, the host checks
# the pixels of QMP screendumps (binary PPM), every pixel, tolerance 0.
#
#   display.sh ours BINARY [--screenshot PATH]       our backend (e.g. build/vhost-gpu)
#   display.sh qemu-c [BINARY] [--screenshot PATH]   QEMU's C backend, the reference
#
# Cases (VGPU_E2E_CASES, default all, in this order):
#   modeset      Virtual-1 at its preferred mode (must be VGPU_E2E_SIZE, 1280x800), quad-a pattern, full DIRTYFB
#   partial      after a checked quad-a frame, a 64x64 gradient at (100,100) is drawn and only that clip is
#                reported (DIRTYFB); a 16x16 canary drawn elsewhere but not reported must not reach the screen
#   cursor       a 64x64 ARGB cursor (CURSOR2, hotspot 4,6) moved to (300,200): the frame must stay quad-a, and
#                the backend must send QEMU CURSOR_UPDATE with exactly the drawn image and hotspot and leave the
#                cursor at (300,200) (seen by vu_proxy.py on the display channel; QEMU's screendump never
#                contains the cursor). Needs the proxy: with VGPU_E2E_PROXY=0 it is no default case, and
#                asking for it is an error
#   two-outputs  with 2 outputs (QEMU max_outputs=2; ours also --outputs 2), Virtual-1 shows quad-a, Virtual-2
#                quad-b; screendump device gpu0 head 0 and head 1
#   mode-change  after a checked frame at the preferred mode, SETCRTC to 1024x768 (VGPU_E2E_MODE2) with a new
#                quad-a frame: the screendump must be 1024x768
#   rebind       a guest device reset: virtio_gpu unbound from the device and bound again (the virtio core
#                resets the device; QEMU sends the backend RESET_DEVICE), then the modeset case on the new
#                driver instance, whose resource ids start from 1 again: quad-a at the preferred mode, and
#                vu_proxy.py must have seen QEMU send RESET_DEVICE. Not a default case for qemu-c: QEMU's C
#                backend dies there (see default_cases below)
#   suspend      guest suspend to RAM (S3; QEMU runs with ICH9-LPC.disable_s3=0): once QMP query-status says
#                `suspended` the host sends system_wakeup. QEMU resets the device on wakeup and hands the backend
#                a new display socket (vu_proxy.py must record a second GPU_SET_SOCKET); the guest binds
#                virtio_gpu again (Linux's driver has no freeze/restore) and draws quad-b at the preferred mode,
#                which must reach the screen through the new socket. Not a default case for qemu-c (its backend asserts on
#                the second socket)
# The cases that need one output share one boot, two-outputs boots again with two.
#
# Prints a PASS/FAIL table (stdout) and the time from QEMU's start to the first correct screendump; exits 0
# only when every selected case passed. --screenshot PATH writes the modeset screendump as a PNG.
#
# Environment:
#   VGPU_E2E_CASES        cases to run (space or comma separated)
#   VGPU_QEMU             QEMU binary (default qemu-system-x86_64; >= 8)
#   VGPU_E2E_TIMEOUT      seconds from QEMU's start to the first case's marker (default 120)
#   VGPU_E2E_STEP_TIMEOUT seconds for each later marker and for each screendump check (default 30)
#   VGPU_E2E_SIZE         expected preferred mode (default 1280x800); VGPU_E2E_MODE2 the mode-change target
#   VGPU_E2E_ACCEL        tcg (default) or kvm
#   VGPU_E2E_BACKEND_ARGS extra backend arguments (word-split)
#   VGPU_E2E_PROXY        1 (default): put vu_proxy.py between QEMU and the backend (the cursor case reads its
#                         record); 0: connect them directly (no cursor case; rebind and suspend check no events)
#   VGPU_KEEP=1           keep the temp dir (console, logs, screendumps, proxy events)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage_lines=2,6 # sed -n '2,6p': the command lines above
parse_args "screenshot" "$@"
((${#args[@]} <= 2)) || usage
kind="${args[0]:-}"
binary="${args[1]:-}"
screenshot="${opt_val[screenshot]:-}"
[[ -n "${kind}" ]] || usage
[[ -z "${screenshot}" || "${screenshot}" == /* ]] || screenshot="${PWD}/${screenshot}"

all_cases="modeset partial cursor two-outputs mode-change rebind suspend"
use_proxy="${VGPU_E2E_PROXY:-1}"
# QEMU's C backend dies on rebind (SIGPIPE on the display socket QEMU replaced, after `vg_sock_fd_read: runtime
# check failed`) and on suspend, so its reference run leaves those cases out unless asked for. The cursor case
# reads the display channel through vu_proxy.py: without it, it is no default case.
default_cases="${all_cases}"
[[ "${kind}" != qemu-c ]] || default_cases="modeset partial cursor two-outputs mode-change"
[[ "${use_proxy}" == 1 ]] || default_cases="${default_cases/cursor /}"
select_cases "${all_cases}" "${default_cases}"
[[ "${use_proxy}" == 1 || " ${cases[*]} " != *" cursor "* ]] ||
  die "the cursor case reads the display channel through vu_proxy.py: it needs VGPU_E2E_PROXY=1"

# --- backend kinds ----------------------------------------------------------------------------------------------
backend_kind "${kind}" "${binary}" "ours qemu-c"
binary="${backend_bin}"
need_backend "${binary}"

qemu="${VGPU_QEMU:-qemu-system-x86_64}"
qver="$(qemu_check_version "${qemu}" 8)"
need_cmd python3 timeout setsid head stdbuf grep awk mkfifo
boot_timeout="${VGPU_E2E_TIMEOUT:-120}"
step_timeout="${VGPU_E2E_STEP_TIMEOUT:-30}"
size="${VGPU_E2E_SIZE:-1280x800}"
mode2="${VGPU_E2E_MODE2:-1024x768}"
accel="${VGPU_E2E_ACCEL:-tcg}"
set_accel_args "${accel}"
check_py="${E2E_DIR}/ppm_check.py"
log "backend: ${kind} ${binary}; QEMU ${qver}, accel ${accel}; cases: ${cases[*]}; proxy: ${use_proxy}"

# --- guest kernel, programs and initramfs --------------------------------------------------------------------------
t="$(now_s)"
guest_boot_files --draw
t_prep="$(secs_since "${t}")"

e2e_tmpdir
tmp="${E2E_TMP}"

# --- results ------------------------------------------------------------------------------------------------------
results_init "${cases[@]}"
t_first_match=""
t_qemu_first=""
case_note() { # CASE MESSAGE: keep the first useful detail of a passing case
  [[ -n "${detail[$1]:-}" ]] || detail[$1]="$2"
}

# --- one boot -----------------------------------------------------------------------------------------------------
# Globals of the current boot: dir, console, qmp_sock, backend_log, qemu_log, proxy_log, events, ctl_fd, t_qemu
# (lib.sh's boot functions use them).

# wait_run_state STATE SECS: 0 once QMP query-status reports STATE, 1 when time ran out or QEMU ended.
wait_run_state() {
  local want="$1" deadline=$(($(date +%s) + $2)) got
  while bg_running "${qemu_log}" && (($(date +%s) < deadline)); do
    got="$(qmp "${qmp_sock}" query-status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || true)"
    [[ "${got}" != "${want}" ]] || return 0
    sleep 0.5
  done
  return 1
}

# display_sockets: how many display channels QEMU has handed the backend so far (vu_proxy.py's events).
display_sockets() {
  proto_count vu GPU_SET_SOCKET
}


# check_frame CASE LABEL WxH [--device D --head N] -- DRAW...: poll screendumps until the frame matches.
check_frame() {
  local c="$1" label="$2" sz="$3" out rc msg
  shift 3
  local -a extra=()
  while (($# > 0)) && [[ "$1" != -- ]]; do
    extra+=("$1")
    shift
  done
  shift
  local -a draws=()
  local d
  for d in "$@"; do
    draws+=(--draw "${d}")
  done
  out="${dir}/${label}.ppm"
  rc=0
  msg="$(python3 "${check_py}" poll --qmp "${qmp_sock}" --out "${out}" "${extra[@]}" --timeout "${step_timeout}" \
    --size "${sz}" "${draws[@]}" --save-expected "${dir}/${label}.expected.ppm" 2>&1)" || rc=$?
  if ((rc == 0)); then
    log "${c}: ${label}: ${msg}"
    if [[ -z "${t_first_match}" ]]; then
      t_first_match="$(awk -v a="${t_qemu_first}" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.2f", b - a }')"
      log "first correct screendump ${t_first_match}s after QEMU started (${label})"
    fi
    return 0
  fi
  case_fail "${c}" "${label}: ${msg}"
  return 1
}

# size_ok CASE WHAT GOT WANT
size_ok() {
  if [[ "$3" != "$4" ]]; then
    case_fail "$1" "$2 is $3, expected $4"
    return 1
  fi
}

run_case() {
  local c="$1" w rc
  result[${c}]=RUNNING
  case "${c}" in
    modeset)
      if wait_marker modeset "" "${first_wait}"; then
        w="${marker%% *}"
        size_ok modeset "the preferred mode" "${w}" "${size}" || true
        check_frame modeset modeset "${w}" -- quad-a || true
        if [[ -s "${dir}/modeset.ppm" ]]; then
          screenshot_src="${dir}/modeset.ppm"
        fi
        next_step
      else
        case_fail modeset "guest: ${marker}"
      fi
      ;;
    partial)
      if wait_marker partial base "${first_wait}"; then
        w="${marker%% *}"
        check_frame partial partial-base "${w}" -- quad-a || true
        next_step
        if wait_marker partial "" "${step_timeout}"; then
          # marker: WxH+X+Y canary ...
          local r="${marker%% *}" rw rh rx ry
          IFS='x+' read -r rw rh rx ry <<<"${r}"
          check_frame partial partial "${w}" -- quad-a "gradient:${rx},${ry},${rw},${rh}" || true
          next_step
        else
          case_fail partial "guest: ${marker}"
        fi
      else
        case_fail partial "guest: ${marker}"
      fi
      ;;
    cursor)
      if wait_marker cursor "" "${first_wait}"; then
        # marker: WxH cursor 64x64 hot X,Y at X,Y
        w="${marker%% *}"
        local hot pos out
        hot="$(sed -nE 's/.* hot ([0-9]+,[0-9]+) .*/\1/p' <<<"${marker}")"
        pos="$(sed -nE 's/.* at ([0-9]+,[0-9]+).*/\1/p' <<<"${marker}")"
        check_frame cursor cursor-frame "${w}" -- quad-a || true
        rc=0
        out="$(python3 "${check_py}" cursor --events "${events}" --scanout 0 --hot "${hot}" --pos "${pos}" \
          --timeout "${step_timeout}" 2>&1)" || rc=$?
        if ((rc == 0)); then
          log "cursor: display channel: ${out}"
          case_note cursor "${out}"
        else
          case_fail cursor "display channel: ${out}"
        fi
        next_step
      else
        case_fail cursor "guest: ${marker}"
      fi
      ;;
    two-outputs)
      if wait_marker two-outputs "" "${first_wait}"; then
        # marker: W1xH1 W2xH2 (Virtual-2 STATE)
        local w2
        read -r w w2 _ <<<"${marker}"
        case_note two-outputs "guest: ${marker}"
        check_frame two-outputs two-outputs-head0 "${w}" --device gpu0 --head 0 -- quad-a || true
        check_frame two-outputs two-outputs-head1 "${w2}" --device gpu0 --head 1 -- quad-b || true
        next_step
      else
        case_fail two-outputs "guest: ${marker}"
      fi
      ;;
    mode-change)
      if wait_marker mode-change base "${first_wait}"; then
        w="${marker%% *}"
        check_frame mode-change mode-change-base "${w}" -- quad-a || true
        next_step
        if wait_marker mode-change "" "${step_timeout}"; then
          w="${marker%% *}"
          size_ok mode-change "the second mode" "${w}" "${mode2}" || true
          check_frame mode-change mode-change "${w}" -- quad-a || true
          next_step
        else
          case_fail mode-change "guest: ${marker}"
        fi
      else
        case_fail mode-change "guest: ${marker}"
      fi
      ;;
    rebind)
      if wait_marker rebind "" "${first_wait}"; then
        w="${marker%% *}"
        size_ok rebind "the preferred mode" "${w}" "${size}" || true
        check_frame rebind rebind "${w}" -- quad-a || true
        # The protocol event: QEMU asked the backend to reset (vu_proxy.py saw RESET_DEVICE). That the backend
        # did is in the frame: the new driver numbers its resources from 1 again, which a device that kept the
        # old ones would refuse, and nothing would reach the screen.
        if [[ "${use_proxy}" == 1 ]]; then
          if (($(proto_count vu RESET_DEVICE) > 0)); then
            log "rebind: QEMU sent the backend RESET_DEVICE; the new driver's frame is exact"
          else
            case_fail rebind "QEMU sent the backend no RESET_DEVICE (vu_proxy.py events)"
          fi
        fi
        case_note rebind "$({ grep -a '^VGPU-E2E: rebind note: ' "${console}" || true; } | head -n 1 | tr -d '\r' | sed 's/^VGPU-E2E: rebind note: //')"
        next_step
      else
        case_fail rebind "guest: ${marker}"
      fi
      ;;
    suspend)
      [[ "${use_proxy}" == 1 ]] || note "suspend: VGPU_E2E_PROXY=0, the new display socket is not counted"
      if ! wait_run_state suspended "${first_wait}"; then
        case_fail suspend "QEMU never reported the guest suspended (query-status) within ${first_wait}s"
      else
        local sockets_before
        sockets_before="$(display_sockets)"
        log "suspend: the guest is suspended (QMP query-status); ${sockets_before} display socket(s) so far; system_wakeup"
        qmp "${qmp_sock}" system_wakeup >/dev/null || case_fail suspend "QMP system_wakeup failed"
        if wait_marker suspend "" $((step_timeout * 2)); then
          w="${marker%% *}"
          size_ok suspend "the preferred mode" "${w}" "${size}" || true
          check_frame suspend suspend "${w}" -- quad-b || true
          if [[ "${use_proxy}" == 1 ]] && (($(display_sockets) <= sockets_before)); then
            case_fail suspend "QEMU handed the backend no new display socket on resume ($(display_sockets) in all)"
          fi
          case_note suspend "$({ grep -a '^VGPU-E2E: suspend note: resumed' "${console}" || true; } | head -n 1 | tr -d '\r' | sed 's/^VGPU-E2E: suspend note: //'); display sockets ${sockets_before} -> $(display_sockets)"
          next_step
        else
          case_fail suspend "guest after resume: ${marker}"
        fi
      fi
      ;;
  esac
  if [[ "${result[${c}]}" == RUNNING ]]; then
    result[${c}]=PASS
    when[${c}]="$(secs_since "${t_qemu}")"
  fi
  first_wait="${step_timeout}"
}

# boot NAME OUTPUTS CASE...
boot() {
  local name="$1" outputs="$2" c
  shift 2
  dir="${tmp}/${name}"
  mkdir -p "${dir}"
  console="${dir}/console.log"
  qmp_sock="${dir}/qmp.sock"
  backend_log="${dir}/backend.log"
  qemu_log="${dir}/qemu.log"
  proxy_log="${dir}/proxy.log"
  events="${dir}/events.jsonl"
  local sock="${dir}/gpu.sock" ctl="${dir}/ctl"
  : >"${console}"
  : >"${events}"

  local -a bcmd=("${binary}" --socket-path "${sock}")
  if [[ "${kind}" == ours && "${outputs}" -gt 1 ]]; then
    bcmd+=(--outputs "${outputs}")
  fi
  # shellcheck disable=SC2206 # word splitting of the extra arguments is intended
  bcmd+=(${VGPU_E2E_BACKEND_ARGS:-})
  local budget=$((boot_timeout + (${#@} * 3 + 2) * step_timeout))
  if ! backend_start "${name}" "${budget}" "${sock}" "${use_proxy}" env "${backend_env[@]}" "${bcmd[@]}"; then
    fail_all "the backend or vu_proxy.py did not start" "$@"
    return 0
  fi
  guest_ctl_open "${ctl}"
  local cases_arg
  cases_arg="$(IFS=,; echo "$*")"
  qemu_base_args 512M "${qemu_sock}" "${ctl}" "vhost-user-gpu-pci,chardev=gpu,id=gpu0,max_outputs=${outputs}"
  qemu_args+=(-global ICH9-LPC.disable_s3=0 -kernel "${kernel}" -initrd "${initrd}"
    -append "console=ttyS0 panic=-1 vgpu_e2e.cases=${cases_arg} vgpu_e2e.step_timeout=$((step_timeout * 3 + 60)) vgpu_e2e.hold=$((budget + 30))")
  t_qemu="$(now_s)"
  [[ -n "${t_qemu_first}" ]] || t_qemu_first="${t_qemu}"
  bg_start "qemu (${name})" "${qemu_log}" 5M "${budget}" "${qemu}" "${qemu_args[@]}"

  first_wait="${boot_timeout}"
  for c in "$@"; do
    if ! boot_alive; then
      case_fail "${c}" "not run: $(boot_ended)"
      continue
    fi
    run_case "${c}"
  done
  if boot_alive; then
    wait_for_line "${console}" '^VGPU-E2E: done' 15 "${qemu_log}" || warn "guest did not reach 'VGPU-E2E: done'"
  fi

  # Wrap up: the backend must have survived, without a crash; QEMU quits through QMP.
  boot_stop "${use_proxy}"
  guest_ctl_close
  local failed=0 problem
  while IFS= read -r problem; do
    fail_all "${problem}" "$@"
  done < <(boot_problems "")
  for c in "$@"; do
    [[ "${result[${c}]}" == PASS ]] || failed=1
  done
  if ((failed)); then
    log "boot '${name}' had failures; logs follow"
    show_boot_logs "${name}"
    if [[ "${use_proxy}" == 1 ]]; then
      log "display channel messages (${name}): $(python3 -c '
import collections, json, sys
c = collections.Counter()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("dir") == "gpu" and "req" in e:
        c[str(e["req"])] += 1
print(", ".join("%s %d" % kv for kv in c.most_common()) or "none")
' "${events}")"
    fi
  fi
}

# --- run --------------------------------------------------------------------------------------------------------
declare -a single=() dual=()
for c in "${cases[@]}"; do
  if [[ "${c}" == two-outputs ]]; then
    dual+=("${c}")
  else
    single+=("${c}")
  fi
done
screenshot_src=""
((${#single[@]} == 0)) || boot one-output 1 "${single[@]}"
((${#dual[@]} == 0)) || boot two-outputs 2 "${dual[@]}"

if [[ -n "${screenshot}" ]]; then
  if [[ -n "${screenshot_src}" && -s "${screenshot_src}" ]]; then
    python3 "${check_py}" topng "${screenshot_src}" "${screenshot}" >/dev/null &&
      log "screenshot (modeset screendump) written to ${screenshot}"
  else
    warn "--screenshot: no modeset screendump to save (case modeset not run or no screendump taken)"
  fi
fi

# --- report ------------------------------------------------------------------------------------------------------
failures=0
for c in "${cases[@]}"; do
  [[ "${result[${c}]}" == PASS ]] || failures=$((failures + 1))
done
{
  printf '\ndisplay e2e (%s, QEMU %s, %s)\n' "${kind}" "${qver}" "${accel}"
  printf '%-12s %-7s %-9s %s\n' case result "time [s]" detail
  for c in "${cases[@]}"; do
    printf '%-12s %-7s %-9s %s\n' "${c}" "${result[${c}]}" "${when[${c}]:--}" "$(cut -c1-240 <<<"${detail[${c}]:-}")"
  done
  printf 'time: QEMU start to first correct screendump %s; preparation %ss; total %ss\n' \
    "${t_first_match:-never}${t_first_match:+s}" "${t_prep}" "$(e2e_elapsed)"
  printf '(case times: seconds from the start of that case'"'"'s boot to its last check)\n'
} | tee "${tmp}/report.txt"
finish "${failures}" "DISPLAY FAILED (${failures} of ${#cases[@]} cases; backend ${kind})" \
  "DISPLAY PASSED (${#cases[@]} cases; backend ${kind})" "screendumps, expected frames, logs"

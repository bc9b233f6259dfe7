#!/usr/bin/env bash
# Frontend restarts: one daemon, QEMU killed with SIGKILL in the middle of rendering, again and again; the daemon
# must log each loss, free everything (no file descriptor or memory growth) and give every new QEMU with a new
# guest a working GPU.
#
#   restart.sh BINARY [--rounds N] [--fd]
#
# The daemon starts once: on a socket path, or (--fd) systemd-style, on a listening socket this script creates
# and passes as fd 3 (`--fd 3`, socket activation). Then N rounds (default 10): QEMU (vhost-user-gpu-pci, TCG)
# boots the e2e guest (busybox initramfs, Debian 12's kernel), whose `vgpu-draw repaint` repaints its screen as
# fast as it can; once it has been rendering for a second (`repaint:warmup ok`), QEMU is killed (SIGKILL), and
# the daemon must drop the connection (its socket fds back to the idle count, read from /proc/PID/fd) and wait
# for the next one. After each round the daemon's open file
# descriptors (/proc/PID/fd) and resident memory (VmRSS) are sampled. A last boot runs `vgpu-draw modeset` and
# its frame must be exactly quad-a in a QMP screendump.
#
# Passes when: every round's guest rendered, the daemon survived every kill and dropped each connection, its fd
# count after every round equals the count after round 1 (the first connection may open lasting fds), its
# VmRSS after the last round is at most VGPU_E2E_RSS_SLACK_KB (default 16384) above that after round 2 (round 1
# warms allocator caches), the last frame is exact, and the log has no sanitizer report or crash. Prints a
# table of the samples.
#
# Environment: VGPU_QEMU, VGPU_E2E_TIMEOUT (seconds per boot to the marker, default 120), VGPU_E2E_BACKEND_ARGS,
# VGPU_E2E_RSS_SLACK_KB, VGPU_KEEP=1 (keep the temp dir).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage_lines=2,24
parse_args "rounds fd!" "$@"
binary=""
((${#args[@]} == 0)) || binary="${args[-1]}"
rounds="${opt_val[rounds]:-10}"
activation=path
[[ -z "${opt_val[fd]:-}" ]] || activation=fd
[[ -n "${binary}" ]] || die "usage: restart.sh BINARY [--rounds N] [--fd]"
need_backend "${binary}"
[[ "${rounds}" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number, not '${rounds}'"
qemu="${VGPU_QEMU:-qemu-system-x86_64}"
qver="$(qemu_check_version "${qemu}" 8)"
need_cmd python3 setsid awk
boot_timeout="${VGPU_E2E_TIMEOUT:-120}"
rss_slack_kb="${VGPU_E2E_RSS_SLACK_KB:-16384}"

set_accel_args tcg
guest_boot_files --draw
e2e_tmpdir
dir="${E2E_TMP}"
sock="${dir}/gpu.sock"
backend_log="${dir}/backend.log"
failures=()
fail_round() { # MESSAGE
  log "FAIL: $1"
  failures+=("$1")
}

# --- the daemon, once ------------------------------------------------------------------------------------------------
# shellcheck disable=SC2206 # word splitting of the extra arguments is intended
extra=(${VGPU_E2E_BACKEND_ARGS:-})
budget=$(((rounds + 1) * (boot_timeout + 30) + 60))
if [[ "${activation}" == fd ]]; then
  # A listening socket on fd 3, then exec: what systemd's socket activation hands a service.
  bg_start backend "${backend_log}" 5M "${budget}" python3 -c '
import os, socket, sys
path, binary = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.execv(binary, [binary, "--fd", "3"] + sys.argv[3:])
' "${sock}" "${binary}" "${extra[@]}"
else
  bg_start backend "${backend_log}" 5M "${budget}" "${binary}" --socket-path "${sock}" "${extra[@]}"
fi
wait_for_socket "${sock}" 15 "${backend_log}" || {
  show_tail "backend log" "${backend_log}"
  die "the daemon did not create its socket"
}
pid="$(bg_pid "${backend_log}" "$(basename "${binary}")")"
[[ -n "${pid}" ]] || die "no $(basename "${binary}") process in the backend's group"
fds() { find "/proc/${pid}/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/${pid}/status" 2>/dev/null || echo 0; }
# The daemon's sockets, as the kernel lists its fds: idle (before any frontend) only the listening one, or the
# inherited fd with --fd; a connected frontend adds its connection (and QEMU's display and back-end channels).
sockets() { find "/proc/${pid}/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l; }
idle_sockets="$(sockets)"
log "daemon pid ${pid} (${activation}); ${rounds} rounds; QEMU ${qver}; at start: $(fds) fds, $(rss_kb) kB RSS"

# boot NAME CASE REPAINT_S: starts QEMU for one guest; sets console, qemu_log, qmp_sock, ctl_fd.
boot() {
  local name="$1" case_name="$2" repaint_s="$3" ctl
  console="${dir}/${name}.console" qemu_log="${dir}/${name}.qemu.log" qmp_sock="${dir}/${name}.qmp" ctl="${dir}/${name}.ctl"
  : >"${console}"
  guest_ctl_open "${ctl}"
  qemu_base_args 512M "${sock}" "${ctl}"
  qemu_args+=(-kernel "${kernel}" -initrd "${initrd}"
    -append "console=ttyS0 panic=-1 vgpu_e2e.cases=${case_name} vgpu_e2e.repaint_s=${repaint_s} vgpu_e2e.repaint_preferred=1 vgpu_e2e.warmup_s=1 vgpu_e2e.step_timeout=60 vgpu_e2e.hold=$((boot_timeout + 30))")
  bg_start "qemu ${name}" "${qemu_log}" 1M $((boot_timeout + 60)) "${qemu}" "${qemu_args[@]}"
}

# --- rounds: boot, render, SIGKILL ---------------------------------------------------------------------------------
declare -a sample_fds=() sample_rss=()
for ((r = 1; r <= rounds; r++)); do
  t="$(now_s)"
  boot "round${r}" repaint 600
  if ! wait_for_line "${console}" '^VGPU-E2E: repaint:warmup ok' "${boot_timeout}" "${qemu_log}"; then
    fail_round "round ${r}: the guest never rendered ($(grep -aE 'VGPU-E2E: .*FAIL' "${console}" | head -n 1 | tr -d '\r'))"
  fi
  sleep "0.$((RANDOM % 9 + 1))" # somewhere in the middle of a frame
  qpid="$(bg_pid "${qemu_log}" "$(basename "${qemu}")")"
  [[ -n "${qpid}" ]] && kill -KILL "${qpid}" 2>/dev/null
  bg_stop "${qemu_log}" 2
  guest_ctl_close
  # The daemon notices the loss once it is back in its event loop (with --virgl it may first finish the
  # commands the guest had queued): wait up to 30 s until it has closed the frontend's connection and the
  # channels that came with it, seen in its fd table, not in its log wording.
  for ((i = 0; i < 300; i++)); do
    (($(sockets) <= idle_sockets)) && break
    bg_running "${backend_log}" || break
    sleep 0.1
  done
  held="$(sockets)"
  ((held <= idle_sockets)) ||
    fail_round "round ${r}: 30 s after QEMU died the daemon still holds ${held} sockets (${idle_sockets} when idle): the frontend's connection was not dropped"
  bg_running "${backend_log}" || {
    fail_round "round ${r}: the daemon ended (exit status $(bg_rc "${backend_log}"))"
    break
  }
  sleep 0.5 # let the daemon finish tearing the session down
  sample_fds+=("$(fds)")
  sample_rss+=("$(rss_kb)")
  log "round ${r}: rendered and killed in $(secs_since "${t}")s; daemon ${sample_fds[-1]} fds, ${sample_rss[-1]} kB RSS"
done

# --- a last guest must get a working GPU -----------------------------------------------------------------------------
if bg_running "${backend_log}"; then
  boot final modeset 0
  if wait_for_line "${console}" '^VGPU-E2E: modeset (ok|FAIL)' "${boot_timeout}" "${qemu_log}" &&
    grep -aq '^VGPU-E2E: modeset ok' "${console}"; then
    size="$(grep -a '^VGPU-E2E: modeset ok' "${console}" | head -n 1 | tr -d '\r' | awk '{ print $4 }')"
    if msg="$(python3 "${E2E_DIR}/ppm_check.py" poll --qmp "${qmp_sock}" --out "${dir}/final.ppm" --timeout 30 \
      --size "${size}" --draw quad-a 2>&1)"; then
      log "final guest: ${msg}"
    else
      fail_round "final guest: ${msg}"
    fi
    next_step
  else
    fail_round "final guest: no modeset ($(grep -aE 'VGPU-E2E: .*FAIL' "${console}" | head -n 1 | tr -d '\r'))"
  fi
  qemu_quit 2
  guest_ctl_close
fi

# --- verdict -------------------------------------------------------------------------------------------------------
if ((${#sample_fds[@]} > 0)); then
  for ((i = 0; i < ${#sample_fds[@]}; i++)); do
    ((sample_fds[i] == sample_fds[0])) || fail_round "after round $((i + 1)) the daemon has ${sample_fds[i]} fds, after round 1 ${sample_fds[0]}"
  done
  if ((${#sample_rss[@]} >= 2)); then
    growth=$((sample_rss[-1] - sample_rss[1]))
    ((growth <= rss_slack_kb)) || fail_round "VmRSS grew by ${growth} kB from round 2 to round ${#sample_rss[@]} (slack ${rss_slack_kb} kB)"
  fi
fi
if crash_line "${backend_log}" >/dev/null; then
  fail_round "backend log: $(crash_line "${backend_log}" | cut -c1-200)"
fi
bg_stop "${backend_log}" 3

printf '\nrestart e2e (%s, %s activation, QEMU %s, tcg): %d rounds of boot, render, SIGKILL\n' \
  "$(basename "${binary}")" "${activation}" "${qver}" "${rounds}"
printf 'round  fds  VmRSS[kB]\n'
for ((i = 0; i < ${#sample_fds[@]}; i++)); do
  printf '%5d  %3d  %9d\n' "$((i + 1))" "${sample_fds[i]}" "${sample_rss[i]}"
done
if ((${#failures[@]} > 0)); then
  log "RESTART FAILED: ${failures[*]}"
  exit 1
fi
log "RESTART PASSED: ${rounds} kills survived, fds steady at ${sample_fds[0]}, VmRSS ${sample_rss[0]} -> ${sample_rss[-1]} kB, the last guest's frame exact"

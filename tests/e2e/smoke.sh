#!/usr/bin/env bash
# End-to-end smoke test: a Debian 12 kernel boots under QEMU (TCG) on a vhost-user GPU backend.
#
#   smoke.sh ours BINARY       our backend (e.g. build/vhost-gpu)
#   smoke.sh qemu-c [BINARY]   QEMU's C backend (default, or when BINARY is missing: fetch-qemu-backend.sh's)
#
# Asserts: QEMU completed vhost-user negotiation with the backend (the virtio device reached DRIVER_OK with a
# vhost-user device behind it, per QMP x-query-virtio-status); the guest's virtio_gpu driver bound (its
# `[drm] features:` and `Initialized virtio_gpu` lines, /dev/dri/card0); the backend received the first
# control command, GET_DISPLAY_INFO (`ours` must log `command GET_DISPLAY_INFO`; QEMU's backend logs
# `VIRTIO_GPU_CMD_GET_DISPLAY_INFO` when run with G_MESSAGES_DEBUG=all, which this script sets); the backend
# was still running when the guest finished, and its log has no sanitizer report. Exit status 0 only when all
# hold. (With EDID offered, the driver's first command is GET_EDID; GET_DISPLAY_INFO follows at once.)
#
# Environment:
#   VGPU_QEMU            QEMU binary (default qemu-system-x86_64 from PATH; must be >= 8)
#   VGPU_E2E_TIMEOUT     seconds for the guest to finish (default 120)
#   VGPU_E2E_ACCEL       tcg (default) or kvm (real hardware only: nested KVM here cannot boot the kernel)
#   VGPU_E2E_BACKEND_ARGS extra arguments for the backend (word-split)
#   VGPU_E2E_FIRST_CMD   extended regex the backend log must match to prove GET_DISPLAY_INFO arrived
#   VGPU_KEEP=1          keep the temp dir with all logs
#   VGPU_CACHE           cache root (see lib.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  sed -n '2,5p' "$0" >&2
  exit 2
}

kind="${1:-}"
binary="${2:-}"
[[ -n "${kind}" ]] || usage

# --- backend kinds: command line, environment and the proof that GET_DISPLAY_INFO arrived ----------------------
declare -a backend_cmd=()
declare -a backend_env=()
declare -a ours_args=()
first_cmd_re=""       # regex on the backend log
first_cmd_required=0  # 1: the backend log must match first_cmd_re
case "${kind}" in
  ours)
    [[ -n "${binary}" ]] || die "usage: smoke.sh ours BINARY (e.g. build/vhost-gpu)"
    # Each command is logged at debug level as "controlq: command <NAME>".
    ours_args=(--log-level debug)
    first_cmd_re='command GET_DISPLAY_INFO'
    first_cmd_required=1
    ;;
  qemu-c)
    if [[ -n "${binary}" && ! -x "${binary}" ]]; then
      note "${binary} is not there (package qemu-system-gui is not installed); using fetch-qemu-backend.sh's copy"
      binary=""
    fi
    if [[ -z "${binary}" ]]; then
      binary="$("${E2E_DIR}/fetch-qemu-backend.sh")" || die "fetch-qemu-backend.sh failed"
    fi
    # With GLib debug messages on, QEMU's backend logs each command as "<type> VIRTIO_GPU_CMD_<NAME>".
    backend_env=(G_MESSAGES_DEBUG=all)
    first_cmd_re='VIRTIO_GPU_CMD_GET_DISPLAY_INFO'
    first_cmd_required=1
    ;;
  -h | --help) usage ;;
  *) die "unknown backend kind '${kind}' (use 'ours' or 'qemu-c')" ;;
esac
if [[ -n "${VGPU_E2E_FIRST_CMD:-}" ]]; then
  first_cmd_re="${VGPU_E2E_FIRST_CMD}"
  first_cmd_required=1
fi
[[ -x "${binary}" ]] || die "backend binary '${binary}' does not exist or is not executable (not built yet?)"
# shellcheck disable=SC2206 # word splitting of the extra arguments is intended
backend_cmd=("${binary}" --socket-path "@SOCK@" "${ours_args[@]}" ${VGPU_E2E_BACKEND_ARGS:-})

qemu="${VGPU_QEMU:-qemu-system-x86_64}"
qver="$(qemu_check_version "${qemu}" 8)"
need_cmd python3 timeout setsid head stdbuf grep awk
timeout_s="${VGPU_E2E_TIMEOUT:-120}"
accel="${VGPU_E2E_ACCEL:-tcg}"
set_accel_args "${accel}"
log "backend: ${kind} ${binary}; QEMU ${qver} (${qemu}), accel ${accel}, cache ${VGPU_CACHE}"

# --- guest kernel and initramfs --------------------------------------------------------------------------------
t="$(now_s)"
kernel="$("${E2E_DIR}/fetch-kernel.sh")" || die "fetch-kernel.sh failed"
t_kernel="$(secs_since "${t}")"
t="$(now_s)"
initrd="$("${E2E_DIR}/build-initramfs.sh" "$("${E2E_DIR}/fetch-kernel.sh" --root 2>/dev/null)")" ||
  die "build-initramfs.sh failed"
t_initrd="$(secs_since "${t}")"

e2e_tmpdir
tmp="${E2E_TMP}"
sock="${tmp}/gpu.sock"
qmp_sock="${tmp}/qmp.sock"
console="${tmp}/console.log"
backend_log="${tmp}/backend.log"
qemu_log="${tmp}/qemu.log"
backend_cmd=("${backend_cmd[@]/@SOCK@/${sock}}")

# --- backend (the socket server) first, then QEMU --------------------------------------------------------------
bg_start backend "${backend_log}" 5M $((timeout_s + 60)) env "${backend_env[@]}" "${backend_cmd[@]}"
wait_for_socket "${sock}" 15 "${backend_log}" || {
  show_tail "backend log" "${backend_log}"
  die "the backend did not create its socket ${sock}"
}

# shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
qemu_args=(
  "${accel_args[@]}"
  -m 512M
  -object memory-backend-memfd,id=mem,size=512M,share=on
  -machine q35,memory-backend=mem
  -nodefaults -no-user-config -display none -vga none
  -serial "file:${console}" -monitor none
  -qmp "unix:${qmp_sock},server=on,wait=off"
  -chardev "socket,id=gpu,path=${sock}"
  -device vhost-user-gpu-pci,chardev=gpu,id=gpu0
  -kernel "${kernel}" -initrd "${initrd}"
  -append "console=ttyS0 panic=-1 vgpu_e2e.hold=$((timeout_s + 30))"
  -no-reboot
)
t_qemu="$(now_s)"
bg_start qemu "${qemu_log}" 5M $((timeout_s + 15)) "${qemu}" "${qemu_args[@]}"

# --- wait for the guest: note when the driver's first [drm] line appears, stop at the init's "done" -------------
t_drm=""
guest_done=0
backend_gone=""
deadline=$(($(date +%s) + timeout_s))
while true; do
  # A backend that ended mid-boot fails the test anyway: give the guest 3 s to print its errors, then stop.
  if [[ -z "${backend_gone}" ]] && ! bg_running "${backend_log}"; then
    backend_gone="$(date +%s)"
    warn "the backend ended while the guest was booting (exit status $(bg_rc "${backend_log}"))"
  fi
  if [[ -n "${backend_gone}" ]] && (($(date +%s) >= backend_gone + 3)); then
    break
  fi
  if [[ -z "${t_drm}" ]] && grep -aqF '[drm]' "${console}" 2>/dev/null; then
    t_drm="$(secs_since "${t_qemu}")"
    log "guest printed its first [drm] line ${t_drm}s after QEMU started"
  fi
  if grep -aqF 'VGPU-E2E: done' "${console}" 2>/dev/null; then
    guest_done=1
    break
  fi
  if ! bg_running "${qemu_log}"; then
    break
  fi
  if (($(date +%s) >= deadline)); then
    warn "guest did not finish within ${timeout_s}s"
    break
  fi
  sleep 0.05
done
t_guest="$(secs_since "${t_qemu}")"
if [[ "${guest_done}" == 1 ]]; then
  log "guest finished ${t_guest}s after QEMU started"
else
  t_guest="never (QEMU ran ${t_guest}s)"
fi

# --- host-side state while QEMU still runs ----------------------------------------------------------------------
backend_alive=0
bg_running "${backend_log}" && backend_alive=1
virtio_status="${tmp}/virtio-status.json"
if bg_running "${qemu_log}"; then
  if virtio_list="$(qmp "${qmp_sock}" x-query-virtio)"; then
    path="$(python3 -c '
import json, sys
devs = [d["path"] for d in json.loads(sys.argv[1]) if d.get("name") == "virtio-gpu"]
print(devs[0] if devs else "")
' "${virtio_list}")"
    if [[ -n "${path}" ]]; then
      qmp "${qmp_sock}" x-query-virtio-status "{\"path\": \"${path}\"}" >"${virtio_status}" ||
        warn "QMP x-query-virtio-status failed"
    else
      warn "QMP x-query-virtio lists no virtio-gpu device: ${virtio_list}"
    fi
    qmp "${qmp_sock}" quit >/dev/null 2>&1 || true
  else
    warn "QEMU does not answer QMP"
  fi
  if [[ ! -s "${console}" ]]; then
    warn "the guest printed nothing: QEMU never started it; it is probably still waiting for a vhost-user reply" \
      "from the backend (device realize sends GET_FEATURES, GET_PROTOCOL_FEATURES, ... before the guest runs)"
  fi
fi
for ((i = 0; i < 100; i++)); do
  bg_running "${qemu_log}" || break
  sleep 0.1
done
bg_stop "${qemu_log}" 5
qemu_rc="$(bg_rc "${qemu_log}")"
bg_stop "${backend_log}" 5
backend_rc="$(bg_rc "${backend_log}")"

# --- assertions --------------------------------------------------------------------------------------------------
failures=0
pass() { log "PASS: $*"; }
fail() {
  log "FAIL: $*"
  failures=$((failures + 1))
}

if grep -aqE 'vhost initialization failed|requires kvm|vhost-user.*(fail|error)' "${qemu_log}"; then
  fail "QEMU reported a vhost-user error: $(grep -aE 'vhost' "${qemu_log}" | head -n 3 | tr '\n' ' ')"
fi
[[ "${qemu_rc}" == 0 ]] || warn "QEMU exit status: ${qemu_rc:-killed}"

# 1. vhost-user negotiation completed.
if [[ -s "${virtio_status}" ]] && negotiation="$(python3 - "${virtio_status}" 2>&1 <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
vd = s.get("vhost-dev")
statuses = s.get("status", {}).get("statuses", [])
problems = []
if not vd:
    problems.append("no vhost device behind virtio-gpu")
if not any("DRIVER_OK" in x for x in statuses):
    problems.append("device status lacks DRIVER_OK: %s" % statuses)
if vd and not vd.get("protocol-features", {}).get("protocols"):
    problems.append("no vhost-user protocol features negotiated")
if problems:
    sys.exit("; ".join(problems))
feats = [f.split(":")[0] for f in s.get("guest-features", {}).get("dev-features", [])]
protos = [p.split(":")[0] for p in vd["protocol-features"]["protocols"]]
print("status %s; guest features %s; protocol features %s; %d vqs" % (
    "+".join(x.split(":")[0].replace("VIRTIO_CONFIG_S_", "") for x in statuses),
    ",".join(feats) or "(none)", ",".join(p.replace("VHOST_USER_PROTOCOL_F_", "") for p in protos),
    vd.get("nvqs", 0)))
PY
)"; then
  pass "vhost-user negotiation completed (${negotiation})"
else
  fail "vhost-user negotiation not confirmed by QMP x-query-virtio-status${negotiation:+: ${negotiation}}"
fi

# 2. The guest's virtio_gpu driver bound.
grep -aqF 'VGPU-E2E: modules loaded' "${console}" || fail "guest could not load its modules"
if grep -aqE '\[drm\] features:' "${console}" && grep -aqE 'Initialized virtio_gpu' "${console}"; then
  pass "guest virtio_gpu bound: $(grep -aE '\[drm\] features:' "${console}" | head -n 2 | sed -E 's/^.*\[drm\] //' | tr '\n' ' ')"
else
  fail "guest never printed '[drm] features:' and 'Initialized virtio_gpu'"
fi
if grep -aqF 'VGPU-E2E: card0 present' "${console}"; then
  pass "guest has /dev/dri/card0"
else
  fail "guest has no /dev/dri/card0"
fi
if grep -aqF 'VGPU-E2E: FAIL' "${console}"; then
  fail "guest init reported: $(grep -aF 'VGPU-E2E: FAIL' "${console}" | head -n 3 | tr '\n' ' ')"
fi
[[ "${guest_done}" == 1 ]] || fail "guest init never reached 'VGPU-E2E: done'"

# 3. The backend received GET_DISPLAY_INFO.
connector="$(grep -aE 'VGPU-E2E: connector ' "${console}" | head -n 1 | sed 's/.*VGPU-E2E: //' || true)"
if [[ -n "${first_cmd_re}" ]]; then
  if grep -aqE -- "${first_cmd_re}" "${backend_log}"; then
    pass "backend received GET_DISPLAY_INFO (its log matches '${first_cmd_re}')"
  elif [[ "${first_cmd_required}" == 1 ]]; then
    fail "backend log never matched '${first_cmd_re}' (GET_DISPLAY_INFO did not arrive, or was not logged)"
  else
    note "backend log does not match '${first_cmd_re}'"
  fi
else
  note "${kind} backend does not log commands: GET_DISPLAY_INFO not asserted from its log;" \
    "guest side: ${connector:-no connector seen}"
fi

# 4. The backend survived the boot, and sanitizers (when built in) found nothing.
if [[ "${backend_alive}" == 1 ]]; then
  pass "backend was still running when the guest finished"
else
  fail "backend had ended before the guest finished (exit status ${backend_rc:-unknown})"
fi
if crash_line "${backend_log}" >/dev/null; then
  fail "backend log: $(crash_line "${backend_log}" | cut -c1-200)"
fi

# --- report ----------------------------------------------------------------------------------------------------
guest_drm_ts="$(grep -aE '^\[ *[0-9]+\.[0-9]+\] \[drm\]' "${console}" | head -n 1 | sed -E 's/^\[ *([0-9.]+)\].*/\1/' || true)"
drm_time="never"
[[ -n "${t_drm}" ]] && drm_time="${t_drm}s (guest clock ${guest_drm_ts:-?}s)"
[[ "${guest_done}" == 1 ]] && t_guest="${t_guest}s"
log "times: kernel fetch ${t_kernel}s, initramfs ${t_initrd}s, QEMU start to first [drm] line ${drm_time}," \
  "to guest done ${t_guest}, total $(e2e_elapsed)s"
if ((failures > 0)); then
  show_tail "guest console" "${console}" 60
  show_tail "backend log" "${backend_log}" 40
  show_tail "QEMU log" "${qemu_log}" 20
  [[ "${VGPU_KEEP:-0}" == 1 ]] || note "rerun with VGPU_KEEP=1 to keep ${tmp}"
  log "SMOKE FAILED (${failures} failed assertions; backend ${kind})"
  exit 1
fi
log "SMOKE PASSED (backend ${kind})"

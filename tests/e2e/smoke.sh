#!/usr/bin/env bash
# End-to-end smoke test: a Debian 12 kernel boots under QEMU (TCG) on a vhost-user GPU backend.
#
#   smoke.sh ours BINARY       our backend (e.g. build/vhost-gpu)
#   smoke.sh qemu-c [BINARY]   QEMU's C backend (default, or when BINARY is missing: fetch-qemu-backend.sh's)
#
# Asserts: QEMU completed vhost-user negotiation with the backend (the virtio device reached DRIVER_OK with a
# vhost-user device behind it, per QMP x-query-virtio-status); the guest's virtio_gpu driver bound (its
# `[drm] features:` and `Initialized virtio_gpu` lines, /dev/dri/card0); the backend received the guest's
# GET_DISPLAY_INFO, which a vhost-user-gpu backend answers by asking QEMU for the layout on the display channel
# (VHOST_USER_GPU_GET_DISPLAY_INFO, recorded by vu_proxy.py, which sits between QEMU and the backend: more such
# requests than the backend sends unasked when it gets the channel); the backend was still running when the guest
# finished, and its log has no sanitizer report. Exit status 0 only when all hold. (With EDID offered, the
# driver's first command is GET_EDID; GET_DISPLAY_INFO follows at once.)
#
# Environment:
#   VGPU_QEMU            QEMU binary (default qemu-system-x86_64 from PATH; must be >= 8)
#   VGPU_E2E_TIMEOUT     seconds for the guest to finish (default 120)
#   VGPU_E2E_ACCEL       tcg (default) or kvm (real hardware only: nested KVM here cannot boot the kernel)
#   VGPU_E2E_BACKEND_ARGS extra arguments for the backend (word-split)
#   VGPU_KEEP=1          keep the temp dir with all logs and vu_proxy.py's record (events.jsonl)
#   VGPU_CACHE           cache root (see lib.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage_lines=2,5
parse_args "" "$@"
kind="${args[0]:-}"
binary="${args[1]:-}"
[[ -n "${kind}" ]] || usage

# --- backend kinds ---------------------------------------------------------------------------------------------
backend_kind "${kind}" "${binary}" "ours qemu-c"
binary="${backend_bin}"
need_backend "${binary}"
# GET_DISPLAY_INFO requests a backend sends QEMU on the display channel before the guest asks: ours refreshes the
# layout once when it gets the channel (SocketDisplay), QEMU's backend only when the guest asks.
unasked_display_info=0
[[ "${kind}" != ours ]] || unasked_display_info=1

qemu="${VGPU_QEMU:-qemu-system-x86_64}"
qver="$(qemu_check_version "${qemu}" 8)"
need_cmd python3 timeout setsid head stdbuf grep awk
timeout_s="${VGPU_E2E_TIMEOUT:-120}"
accel="${VGPU_E2E_ACCEL:-tcg}"
set_accel_args "${accel}"
log "backend: ${kind} ${binary}; QEMU ${qver} (${qemu}), accel ${accel}, cache ${VGPU_CACHE}"

# --- guest kernel and initramfs --------------------------------------------------------------------------------
t="$(now_s)"
guest_boot_files ""
t_prep="$(secs_since "${t}")"

e2e_tmpdir
tmp="${E2E_TMP}"
sock="${tmp}/gpu.sock"
qmp_sock="${tmp}/qmp.sock"
console="${tmp}/console.log"
backend_log="${tmp}/backend.log"
qemu_log="${tmp}/qemu.log"
proxy_log="${tmp}/proxy.log"
events="${tmp}/events.jsonl"

# --- backend (the socket server) first, vu_proxy.py, then QEMU ---------------------------------------------------
# shellcheck disable=SC2086 # word splitting of the extra arguments is intended
backend_start "" "${timeout_s}" "${sock}" 1 env "${backend_env[@]}" "${binary}" --socket-path "${sock}" \
  ${VGPU_E2E_BACKEND_ARGS:-} || die "the backend or vu_proxy.py did not start"
qemu_base_args 512M "${qemu_sock}" ""
qemu_args+=(-kernel "${kernel}" -initrd "${initrd}" -append "console=ttyS0 panic=-1 vgpu_e2e.hold=$((timeout_s + 30))")
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
  else
    warn "QEMU does not answer QMP"
  fi
  if [[ ! -s "${console}" ]]; then
    warn "the guest printed nothing: QEMU never started it; it is probably still waiting for a vhost-user reply" \
      "from the backend (device realize sends GET_FEATURES, GET_PROTOCOL_FEATURES, ... before the guest runs)"
  fi
fi
boot_stop 1
qemu_rc="$(bg_rc "${qemu_log}")"

# --- assertions --------------------------------------------------------------------------------------------------
failures=0
pass() { log "PASS: $*"; }
fail() {
  log "FAIL: $*"
  failures=$((failures + 1))
}

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

# 3. The backend received GET_DISPLAY_INFO: it asked QEMU for the layout on the display channel (vu_proxy.py).
asked="$(proto_count gpu GET_DISPLAY_INFO)"
if ((asked > unasked_display_info)); then
  pass "backend received GET_DISPLAY_INFO (it sent QEMU ${asked} display-channel GET_DISPLAY_INFO, ${unasked_display_info} of them unasked)"
else
  fail "backend never asked QEMU for the display layout for the guest (${asked} display-channel GET_DISPLAY_INFO, ${unasked_display_info} sent unasked; GET_DISPLAY_INFO did not arrive)"
fi

# 4. The backend survived the boot, sanitizers (when built in) found nothing, QEMU started the device.
if [[ "${backend_alive}" == 1 ]]; then
  pass "backend was still running when the guest finished"
fi
while IFS= read -r problem; do
  fail "${problem}"
done < <(boot_problems 'vhost initialization failed|requires kvm|vhost-user.*(fail|error)')

# --- report ----------------------------------------------------------------------------------------------------
guest_drm_ts="$(grep -aE '^\[ *[0-9]+\.[0-9]+\] \[drm\]' "${console}" | head -n 1 | sed -E 's/^\[ *([0-9.]+)\].*/\1/' || true)"
drm_time="never"
[[ -n "${t_drm}" ]] && drm_time="${t_drm}s (guest clock ${guest_drm_ts:-?}s)"
[[ "${guest_done}" == 1 ]] && t_guest="${t_guest}s"
log "times: kernel and initramfs ${t_prep}s, QEMU start to first [drm] line ${drm_time}," \
  "to guest done ${t_guest}, total $(e2e_elapsed)s"
((failures == 0)) || show_boot_logs ""
finish "${failures}" "SMOKE FAILED (${failures} failed assertions; backend ${kind})" "SMOKE PASSED (backend ${kind})"

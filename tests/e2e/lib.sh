# shellcheck shell=bash
# Shared helpers for the e2e scripts. Source it; do not run it.
#
#   E2E_DIR            this folder
#   VGPU_CACHE         cache root (default /var/cache/vhost-gpu, or ~/.cache/vhost-gpu when that is not
#                      writable); holds kernels, initramfs images and unpacked packages, never the clone
#   log/note/warn/die  messages on stderr, prefixed with the script name and seconds since it started
#   cache_lock         serialise cache writers (parallel ctest)
#   e2e_tmpdir         sets E2E_TMP, a private temp dir removed on exit unless VGPU_KEEP=1
#   bg_start           run a command in the background in its own process group, output capped, killed on exit
#   bg_pid             the PID of one named process of such a group (to signal it alone)
#   wait_for_socket    wait until a unix socket exists (and its owner still lives)
#   qmp                one QMP command through python3's stdlib
#   backend_kind       ours / ours-2d / qemu-c / qemu-c-virgl -> the binary and its environment
#   select_cases       VGPU_E2E_CASES, checked against a script's cases
#   guest_boot_files   the guest kernel and the busybox initramfs (with vgpu-draw)
#   qemu_base_args     the QEMU command line every e2e boot shares
#   backend_start      the backend, and vu_proxy.py in front of it; boot_stop ends a boot, boot_problems judges it
#   results_init       the per-case PASS/FAIL table of display.sh and virgl.sh (case_fail, case_skip)

if [[ -n "${_VGPU_E2E_LIB:-}" ]]; then
  return 0
fi
_VGPU_E2E_LIB=1

# shellcheck disable=SC2034 # used by the scripts that source this file
E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_NAME="$(basename "$0" .sh)"
E2E_T0="${EPOCHREALTIME}"

# --- messages -------------------------------------------------------------------------------------------------

# Seconds since the script started, 3 decimals.
e2e_elapsed() {
  awk -v a="${E2E_T0}" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.3f", b - a }'
}

log() { printf '[%s %7ss] %s\n' "${E2E_NAME}" "$(e2e_elapsed)" "$*" >&2; }
note() { log "note: $*"; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

# now_s: wall clock in seconds with microseconds (for durations: "$(secs_since "$t")").
now_s() { printf '%s\n' "${EPOCHREALTIME}"; }
secs_since() { awk -v a="$1" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.2f", b - a }'; }

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "required command '$c' not found in PATH"
  done
}

# --- cache ----------------------------------------------------------------------------------------------------

e2e_cache_dir() {
  local dir="${VGPU_CACHE:-}"
  if [[ -z "${dir}" ]]; then
    dir=/var/cache/vhost-gpu
    if ! mkdir -p "${dir}" 2>/dev/null || [[ ! -w "${dir}" ]]; then
      dir="${XDG_CACHE_HOME:-${HOME}/.cache}/vhost-gpu"
    fi
  fi
  mkdir -p "${dir}" || die "cannot create cache dir ${dir} (set VGPU_CACHE)"
  [[ -w "${dir}" ]] || die "cache dir ${dir} is not writable (set VGPU_CACHE)"
  printf '%s\n' "${dir}"
}
VGPU_CACHE="$(e2e_cache_dir)"
export VGPU_CACHE

# The Debian mirror of the host's apt sources (deb822 URIs: or one-line deb), as scripts/install-deps.sh does
# (build-guest-root.sh, build-host-root.sh). Prints it without a trailing slash; returns 1 when there is none.
host_mirror() {
  local uri
  uri="$(grep -hoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '{ print $NF }' | grep -E '/debian/?$' | head -n 1 || true)"
  [[ -n "${uri}" ]] || return 1
  printf '%s\n' "${uri%/}"
}

# root_and_binary SUITE: the cached Debian root of build-host-root.sh SUITE and our tree built (and, unless
# VGPU_ROOT_NO_TESTS=1, unit-tested) in it by build-in-root.sh; sets ROOT, BINARY and the seconds each took,
# T_ROOT and T_BUILD (virgl-trixie.sh, venus-sid.sh).
# shellcheck disable=SC2034 # ROOT, BINARY, T_ROOT and T_BUILD are the callers' to read
root_and_binary() {
  local t
  t="$(now_s)"
  ROOT="$("${E2E_DIR}/build-host-root.sh" "$1")" || die "build-host-root.sh $1 failed"
  T_ROOT="$(secs_since "${t}")"
  t="$(now_s)"
  local -a no_tests=()
  [[ "${VGPU_ROOT_NO_TESTS:-0}" != 1 ]] || no_tests=(--no-tests)
  BINARY="$("${E2E_DIR}/build-in-root.sh" "${ROOT}" "${no_tests[@]}")" || die "build-in-root.sh failed"
  T_BUILD="$(secs_since "${t}")"
}

# cache_lock NAME: hold an exclusive lock on $VGPU_CACHE/.lock-NAME until this shell exits, so that parallel
# runs (ctest -j) do not fetch or build the same thing at once.
cache_lock() {
  local fd
  need_cmd flock
  exec {fd}>"${VGPU_CACHE}/.lock-$1"
  flock -w 900 "${fd}" || die "timed out waiting for the cache lock ${VGPU_CACHE}/.lock-$1"
}

# cache_keep_newest DIR [N]: removes all but the N (default 3) newest build folders in DIR (half-built *.tmp
# folders are left to the build that owns them).
cache_keep_newest() {
  find "$1" -mindepth 1 -maxdepth 1 -type d ! -name '*.tmp' -printf '%T@ %p\n' | sort -rn | tail -n +$((${2:-3} + 1)) |
    cut -d' ' -f2- | while read -r old; do rm -rf -- "${old}"; done
}

# --- temp dir and background processes ------------------------------------------------------------------------

E2E_TMP=""
declare -a E2E_BG_PIDFILES=()

# Process groups started by bg_start are sent TERM, then KILL; then the temp dir goes.
e2e_cleanup() {
  local rc=$? pidfile pgid i
  for pidfile in "${E2E_BG_PIDFILES[@]}"; do
    [[ -s "${pidfile}" ]] || continue
    pgid="$(<"${pidfile}")"
    kill -TERM -- "-${pgid}" 2>/dev/null || true
  done
  for pidfile in "${E2E_BG_PIDFILES[@]}"; do
    [[ -s "${pidfile}" ]] || continue
    pgid="$(<"${pidfile}")"
    for ((i = 0; i < 50; i++)); do
      kill -0 -- "-${pgid}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-${pgid}" 2>/dev/null || true
  done
  if [[ -n "${E2E_TMP}" && -d "${E2E_TMP}" ]]; then
    if [[ "${VGPU_KEEP:-0}" == 1 ]]; then
      log "kept ${E2E_TMP}"
    else
      rm -rf -- "${E2E_TMP}"
    fi
  fi
  return "${rc}"
}
trap e2e_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# e2e_tmpdir: create (once) a private temp dir in E2E_TMP, removed on exit. Call it directly, not in $(...),
# or the cleanup never learns of it. Short path: unix socket names are limited to 107 bytes.
e2e_tmpdir() {
  if [[ -z "${E2E_TMP}" ]]; then
    E2E_TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-e2e.XXXXXX")"
  fi
}

# bg_start NAME LOG CAP_BYTES TIMEOUT_S CMD...
# Runs CMD (stdout+stderr) into LOG, capped at CAP_BYTES (a flooding process dies of SIGPIPE), bounded by
# TIMEOUT_S, in a new session so that cleanup can end it and everything it started. Writes LOG.pgid, and
# LOG.rc with CMD's exit status when it ends (124: timed out, 141: killed by the log cap).
# Call it directly (not in $(...)): it registers the process group for cleanup in this shell.
bg_start() {
  local name="$1" logf="$2" cap="$3" secs="$4"
  shift 4
  rm -f -- "${logf}.rc" "${logf}.pgid"
  E2E_BG_PIDFILES+=("${logf}.pgid")
  # shellcheck disable=SC2016 # expanded by the inner shell
  # A TERM to the group ends the command; the shell (trap) and head (ignore) outlive it to flush the log
  # and record the exit status. KILL ends them all. head writes through stdio: stdbuf -o0 makes it write
  # what it reads at once, so that the log can be read while the command runs.
  setsid bash -c '
    echo "$$" >"$1.pgid"
    logf="$1" cap="$2" secs="$3"
    shift 3
    trap : TERM
    timeout --foreground -k 5 "${secs}" "$@" </dev/null 2>&1 | (
      trap "" TERM
      exec stdbuf -o0 head -c "${cap}" >"${logf}"
    )
    echo "${PIPESTATUS[0]}" >"${logf}.rc"
  ' bg "${logf}" "${cap}" "${secs}" "$@" &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s "${logf}.pgid" ]] && break
    sleep 0.02
  done
  [[ -s "${logf}.pgid" ]] || die "could not start ${name}"
  log "started ${name} (pgid $(<"${logf}.pgid")): $*"
}

# bg_running LOG: true while the command started with that LOG has not ended.
bg_running() {
  local logf="$1"
  [[ ! -e "${logf}.rc" ]] && [[ -s "${logf}.pgid" ]] && kill -0 -- "-$(<"${logf}.pgid")" 2>/dev/null
}

# bg_rc LOG: the exit status, or empty while running / when killed before it could be recorded.
bg_rc() {
  local logf="$1"
  if [[ -s "${logf}.rc" ]]; then
    cat -- "${logf}.rc"
  fi
}

# bg_pid LOG NAME: the PID of the process named NAME (its comm, 15 characters at most) among those started with
# bg_start ... LOG (its process group); empty when there is none. For signals meant for that one process only
# (SIGUSR1 would end timeout, the shell and head of the group).
bg_pid() {
  local logf="$1" name="${2:0:15}"
  [[ -s "${logf}.pgid" ]] || return 0
  ps -e -o pid=,pgid=,comm= | awk -v g="$(<"${logf}.pgid")" -v n="${name}" '$2 == g && $3 == n { print $1; exit }'
}

# proc_cpu_s PID: the CPU seconds (user + system) PID has used so far; empty when there is no such process.
proc_cpu_s() {
  local pid="$1" stat
  [[ -n "${pid}" && -r "/proc/${pid}/stat" ]] || return 0
  stat="$(<"/proc/${pid}/stat")" || return 0
  # Fields after the command name (which may hold spaces, hence the cut at the last ')'): utime is the 12th.
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($12 + $13) / hz }' <<<"${stat##*) }"
}

# bg_stop LOG [GRACE_S]: TERM the process group, KILL it after GRACE_S (default 5).
bg_stop() {
  local logf="$1" grace="${2:-5}" pgid i
  [[ -s "${logf}.pgid" ]] || return 0
  pgid="$(<"${logf}.pgid")"
  kill -TERM -- "-${pgid}" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 -- "-${pgid}" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-${pgid}" 2>/dev/null || true
}

# wait_for_socket PATH TIMEOUT_S [LOG]: wait until PATH is a socket; fail early when the process that should
# create it (started with bg_start ... LOG) has ended.
wait_for_socket() {
  local path="$1" secs="$2" logf="${3:-}" deadline
  deadline=$(($(date +%s) + secs))
  while [[ ! -S "${path}" ]]; do
    if [[ -n "${logf}" ]] && ! bg_running "${logf}"; then
      log "the process that should create ${path} has ended (exit status: $(bg_rc "${logf}"))"
      return 1
    fi
    if (($(date +%s) >= deadline)); then
      log "timed out after ${secs}s waiting for socket ${path}"
      return 1
    fi
    sleep 0.05
  done
}

# wait_for_line FILE REGEX TIMEOUT_S [LOG]: wait until FILE has a line matching the extended REGEX; fail on
# timeout or when the process started with LOG ends first (checked once more after it ended).
wait_for_line() {
  local file="$1" re="$2" secs="$3" logf="${4:-}" deadline
  deadline=$(($(date +%s) + secs))
  while true; do
    if [[ -f "${file}" ]] && grep -Eaq -- "${re}" "${file}"; then
      return 0
    fi
    if [[ -n "${logf}" ]] && ! bg_running "${logf}"; then
      [[ -f "${file}" ]] && grep -Eaq -- "${re}" "${file}" && return 0
      return 2
    fi
    if (($(date +%s) >= deadline)); then
      return 1
    fi
    sleep 0.05
  done
}

# show_tail TITLE FILE [LINES]: print the last lines of a log to stderr, framed.
show_tail() {
  local title="$1" file="$2" lines="${3:-40}"
  {
    printf -- '----- %s: %s (last %s lines) -----\n' "${title}" "${file}" "${lines}"
    if [[ -f "${file}" ]]; then
      tail -n "${lines}" -- "${file}" | cut -c1-300
    else
      printf '(missing)\n'
    fi
    printf -- '----- end of %s -----\n' "${title}"
  } >&2
}

# --- QMP ------------------------------------------------------------------------------------------------------

# qmp SOCKET COMMAND [ARGUMENTS_JSON]: runs one command on a fresh connection and prints its "return" value as
# JSON; exits non-zero (message on stderr) on a QMP error, a closed connection or a 10 s timeout.
qmp() {
  python3 - "$@" <<'PY'
import json, socket, sys

path, cmd = sys.argv[1], sys.argv[2]
args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(10)
try:
    sock.connect(path)
except OSError as e:
    sys.exit(f"qmp: cannot connect to {path}: {e}")
f = sock.makefile("rwb")

def recv():
    while True:
        line = f.readline()
        if not line:
            sys.exit("qmp: connection closed by QEMU")
        msg = json.loads(line)
        if "event" not in msg:
            return msg

def call(name, arguments=None):
    req = {"execute": name}
    if arguments is not None:
        req["arguments"] = arguments
    f.write(json.dumps(req).encode() + b"\n")
    f.flush()
    msg = recv()
    if "error" in msg:
        sys.exit(f"qmp: {name}: {msg['error'].get('class')}: {msg['error'].get('desc')}")
    return msg.get("return")

try:
    if "QMP" not in recv():
        sys.exit("qmp: no greeting")
    call("qmp_capabilities")
    print(json.dumps(call(cmd, args)))
except socket.timeout:
    sys.exit(f"qmp: timed out on {cmd}")
PY
}

# --- the guest's marker protocol (guest/e2e_marker.h) ---------------------------------------------------------
# For a script that boots one guest at a time and sets these globals for it: console (the serial log),
# qemu_log and backend_log (bg_start logs), ctl_fd (the write end of the guest's control port).

# boot_alive: both QEMU and the backend still run.
# shellcheck disable=SC2154 # the globals above are the sourcing script's
boot_alive() {
  bg_running "${qemu_log}" && bg_running "${backend_log}"
}

# console_line REGEX: the first console line matching REGEX, without the carriage return.
# shellcheck disable=SC2154 # the globals above are the sourcing script's
console_line() {
  local line
  line="$(grep -aE -- "$1" "${console}" | head -n 1 || true)"
  printf '%s\n' "${line%$'\r'}"
}

# wait_marker CASE STEP TIMEOUT: 0 when `VGPU-E2E: CASE[:STEP] ok ...` is on the console (its details in marker),
# 3 on `VGPU-E2E: CASE SKIP ...`, 1 when the guest reported the case failed or moved on (the line in marker),
# 2 when time ran out or QEMU/the backend ended.
marker=""
# shellcheck disable=SC2154 # the globals above are the sourcing script's
wait_marker() {
  local c="$1" step="$2" secs="$3" name deadline line
  name="${c}${step:+:${step}}"
  deadline=$(($(date +%s) + secs))
  while true; do
    line="$(console_line "^VGPU-E2E: ${name} ok( |\$)")"
    if [[ -n "${line}" ]]; then
      marker="${line#*ok }"
      [[ "${marker}" != "${line}" ]] || marker=""
      return 0
    fi
    line="$(console_line "^VGPU-E2E: ${c} SKIP")"
    if [[ -n "${line}" ]]; then
      marker="${line#*SKIP }"
      return 3
    fi
    line="$(console_line "^VGPU-E2E: (${c} FAIL|case ${c} exit)|^VGPU-E2E: (FAIL|done)")"
    if [[ -n "${line}" ]]; then
      # The ok line may have landed between the greps above (a fast case prints it and `case X exit` together).
      grep -aqE "^VGPU-E2E: ${name} ok( |\$)" "${console}" && continue
      marker="${line#VGPU-E2E: }"
      return 1
    fi
    if ! boot_alive; then
      bg_running "${backend_log}" || marker="the backend ended (exit status $(bg_rc "${backend_log}"))"
      bg_running "${qemu_log}" || marker="QEMU ended (exit status $(bg_rc "${qemu_log}"))"
      grep -aqE "^VGPU-E2E: ${name} ok( |\$)" "${console}" && continue
      return 2
    fi
    if (($(date +%s) >= deadline)); then
      marker="no '${name} ok' marker within ${secs}s"
      return 2
    fi
    sleep 0.05
  done
}

# next_step: let the guest go on.
# shellcheck disable=SC2154 # the globals above are the sourcing script's
next_step() {
  printf 'next\n' >&"${ctl_fd}" || warn "cannot write to the guest's control port"
}


# --- QEMU -----------------------------------------------------------------------------------------------------

# set_accel_args ACCEL: the QEMU accelerator options of VGPU_E2E_ACCEL into the array accel_args (tcg with
# -cpu max, kvm with -cpu host); dies on anything else.
set_accel_args() {
  # shellcheck disable=SC2034 # accel_args is for the sourcing script
  case "$1" in
    tcg) accel_args=(-accel tcg -cpu max) ;;
    kvm) accel_args=(-accel kvm -cpu host) ;;
    *) die "VGPU_E2E_ACCEL must be tcg or kvm, not '$1'" ;;
  esac
}

# A sanitizer report or a crash, in a backend's log (every e2e script checks the same). C's assert() prints
# "Assertion `x' failed"; GLib's non-fatal g_return_if_fail criticals ("assertion 'x' failed", which QEMU's C
# backend logs on cursor updates for resources it does not know) are not crashes and do not match.
crash_re='ERROR: (Address|Leak|Memory|Thread|UndefinedBehavior)Sanitizer|runtime error:|Segmentation fault|SIGSEGV|SIGABRT|Aborted|core dumped|terminate called|Assertion .*failed'
# crash_line LOG: the first line of LOG that matches crash_re (exit 0), or nothing (exit 1).
crash_line() {
  grep -aE -m 1 "${crash_re}" "$1"
}

# qemu_check_version BINARY MIN_MAJOR [WRAPPER...]: die unless BINARY is a QEMU of at least that major version;
# prints it. With a WRAPPER (e.g. in-root.sh ROOT --), BINARY runs as `WRAPPER... BINARY --version`.
qemu_check_version() {
  local bin="$1" min="$2" line ver major
  shift 2
  if (($# == 0)); then
    command -v "${bin}" >/dev/null 2>&1 || die "QEMU '${bin}' not found (need QEMU >= ${min}; Debian 12: apt-get install -t bookworm-backports qemu-system-x86)"
  fi
  line="$("$@" "${bin}" --version 2>/dev/null | head -n 1)" || true
  ver="$(sed -nE 's/.*version ([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/p' <<<"${line}")"
  [[ -n "${ver}" ]] || die "cannot read a version from '${bin} --version': ${line}"
  major="${ver%%.*}"
  if ((major < min)); then
    die "${bin} is QEMU ${ver}; need >= ${min}: QEMU 7.2 refuses vhost-user under TCG ('vhost initialization failed: requires kvm'). On Debian 12: apt-get install -t bookworm-backports qemu-system-x86"
  fi
  printf '%s\n' "${ver}"
}

# --- backends ---------------------------------------------------------------------------------------------------

# backend_kind KIND BINARY KINDS: checks KIND against KINDS (space separated: ours ours-2d qemu-c qemu-c-virgl, the
# script's) and sets backend_bin, the binary to run, and backend_env, VAR=VALUE words for its environment.
# ours/ours-2d: our daemon, BINARY (required). qemu-c/qemu-c-virgl: QEMU's C backend, BINARY when it is an
# executable, else fetch-qemu-backend.sh's; GLib's debug messages on (G_MESSAGES_DEBUG=all: its log shows each
# command, for whoever debugs a run). Which options a kind adds (--virgl) is the script's to say.
# shellcheck disable=SC2034 # backend_bin and backend_env are the sourcing script's
backend_kind() {
  local kind="$1" bin="$2" kinds="$3"
  [[ " ${kinds} " == *" ${kind} "* ]] || die "unknown backend kind '${kind}' (use ${kinds// /, })"
  backend_env=()
  case "${kind}" in
    ours | ours-2d)
      [[ -n "${bin}" ]] || die "usage: ${E2E_NAME}.sh ${kind} BINARY (e.g. build/vhost-gpu)"
      ;;
    qemu-c | qemu-c-virgl)
      if [[ -z "${bin}" || ! -x "${bin}" ]]; then
        [[ -z "${bin}" ]] || note "${bin} is not there (package qemu-system-gui?); using fetch-qemu-backend.sh's"
        bin="$("${E2E_DIR}/fetch-qemu-backend.sh")" || die "fetch-qemu-backend.sh failed"
      fi
      backend_env=(G_MESSAGES_DEBUG=all)
      ;;
  esac
  backend_bin="${bin}"
}

# need_backend BINARY: dies unless BINARY is an executable.
need_backend() {
  [[ -x "$1" ]] || die "backend binary '$1' does not exist or is not executable (not built yet?)"
}

# select_cases ALL DEFAULT: the cases of VGPU_E2E_CASES (space or comma separated; DEFAULT when unset) into the
# array cases, in the order given; dies on a case not in ALL (space separated) and on an empty selection.
select_cases() {
  local all=" $1 " c
  read -r -a cases <<<"$(tr ',' ' ' <<<"${VGPU_E2E_CASES:-$2}")"
  for c in "${cases[@]}"; do
    [[ "${all}" == *" ${c} "* ]] || die "unknown case '${c}' (cases: $1)"
  done
  ((${#cases[@]} > 0)) || die "VGPU_E2E_CASES selects no case"
}

# --- guest and QEMU ---------------------------------------------------------------------------------------------

# guest_boot_files [--draw]: sets kernel (fetch-kernel.sh, Debian 12's) and initrd (build-initramfs.sh's busybox
# initramfs for it; with --draw, the guest programs of build-guest-programs.sh in it: /bin/vgpu-draw).
# shellcheck disable=SC2034 # kernel and initrd are the sourcing script's
guest_boot_files() {
  local -a add=()
  if [[ "${1:-}" == --draw ]]; then
    local progs
    progs="$("${E2E_DIR}/build-guest-programs.sh")" || die "build-guest-programs.sh failed"
    add=(--add "${progs}/vgpu-draw=/bin/vgpu-draw")
  fi
  kernel="$("${E2E_DIR}/fetch-kernel.sh")" || die "fetch-kernel.sh failed"
  initrd="$("${E2E_DIR}/build-initramfs.sh" "${add[@]}" "$("${E2E_DIR}/fetch-kernel.sh" --root 2>/dev/null)")" ||
    die "build-initramfs.sh failed"
}

# qemu_base_args MEM GPU_SOCKET CTL [DEVICE]: the QEMU options every e2e boot shares, into the array qemu_args:
# accel_args (set_accel_args first), MEM of guest RAM in a shared memfd (vhost-user maps it: share=on), q35, no
# default devices and no display, the serial console into $console, with CTL (not empty) a second serial port on
# the pipes CTL.in/CTL.out (the guest's control port, guest_ctl_open), QMP on $qmp_sock, the chardev `gpu` on
# GPU_SOCKET and the device DEVICE on it (default vhost-user-gpu-pci,chardev=gpu,id=gpu0). The caller appends
# the kernel, initramfs and command line.
# shellcheck disable=SC2154 # console and qmp_sock are the sourcing script's
qemu_base_args() {
  local mem="$1" gpu_sock="$2" ctl="$3" device="${4:-vhost-user-gpu-pci,chardev=gpu,id=gpu0}"
  # shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
  qemu_args=(
    "${accel_args[@]}"
    -m "${mem}"
    -object "memory-backend-memfd,id=mem,size=${mem},share=on"
    -machine q35,memory-backend=mem
    -nodefaults -no-user-config -display none -vga none
    -serial "file:${console}"
  )
  [[ -z "${ctl}" ]] || qemu_args+=(-serial "pipe:${ctl}")
  qemu_args+=(-monitor none -qmp "unix:${qmp_sock},server=on,wait=off" -chardev "socket,id=gpu,path=${gpu_sock}"
    -device "${device}" -no-reboot)
}

# guest_ctl_open CTL: makes the pipes CTL.in and CTL.out of the guest's control port (QEMU -serial pipe:CTL) and
# opens ctl_fd (next_step writes `next` there) and ctl_out_fd (holds the other pipe open: the port is raw and
# silent). guest_ctl_close closes both.
guest_ctl_open() {
  rm -f -- "$1.in" "$1.out"
  mkfifo -- "$1.in" "$1.out"
  exec {ctl_fd}<>"$1.in" {ctl_out_fd}<>"$1.out"
}
guest_ctl_close() {
  exec {ctl_fd}>&- {ctl_out_fd}>&-
}

# --- one boot: start, end, judge ----------------------------------------------------------------------------------
# Globals of the current boot (besides console, qemu_log, qmp_sock above): backend_log, proxy_log and events
# (vu_proxy.py's log and its record of the protocol), qemu_sock (where QEMU connects), backend_alive.

# backend_start NAME TIMEOUT_S SOCKET USE_PROXY CMD...: starts the backend CMD (listening on SOCKET) into
# $backend_log; with USE_PROXY=1 then vu_proxy.py in front of it on SOCKET's folder's proxy.sock, recording every
# vhost-user request and display-channel message into $events. Sets qemu_sock, the socket QEMU must connect to.
# Returns 1, with the failing log's tail shown, when either has no socket within 15 s.
# shellcheck disable=SC2154 # events and proxy_log are the sourcing script's
backend_start() {
  local name="$1" secs="$2" sock="$3" use_proxy="$4"
  shift 4
  bg_start "backend${name:+ (${name})}" "${backend_log}" 5M $((secs + 60)) "$@"
  if ! wait_for_socket "${sock}" 15 "${backend_log}"; then
    show_tail "backend log" "${backend_log}"
    log "the backend did not create its socket ${sock}"
    return 1
  fi
  qemu_sock="${sock}"
  [[ "${use_proxy}" == 1 ]] || return 0
  qemu_sock="$(dirname "${sock}")/proxy.sock"
  : >>"${events}"
  bg_start "vu_proxy${name:+ (${name})}" "${proxy_log}" 1M $((secs + 45)) \
    python3 "${E2E_DIR}/vu_proxy.py" --listen "${qemu_sock}" --backend "${sock}" --log "${events}"
  if ! wait_for_socket "${qemu_sock}" 15 "${proxy_log}"; then
    show_tail "proxy log" "${proxy_log}"
    log "vu_proxy.py did not start"
    return 1
  fi
}

# qemu_quit [GRACE_S]: asks QEMU to quit through QMP, gives it 5 s, then stops what is left (TERM, KILL after
# GRACE_S, default 3).
qemu_quit() {
  local i
  if bg_running "${qemu_log}"; then
    qmp "${qmp_sock}" quit >/dev/null 2>&1 || true
  fi
  for ((i = 0; i < 50; i++)); do
    bg_running "${qemu_log}" || break
    sleep 0.1
  done
  bg_stop "${qemu_log}" "${1:-3}"
}

# boot_stop USE_PROXY: the end of a boot: sets backend_alive (1: the backend still ran), quits QEMU, stops the
# backend and, with USE_PROXY=1, vu_proxy.py.
boot_stop() {
  backend_alive=0
  bg_running "${backend_log}" && backend_alive=1
  qemu_quit 3
  bg_stop "${backend_log}" 3
  [[ "$1" != 1 ]] || bg_stop "${proxy_log}" 2
}

# boot_ended: why QEMU or the backend no longer runs (empty while both do).
boot_ended() {
  bg_running "${backend_log}" || printf 'the backend ended (exit status %s) ' "$(bg_rc "${backend_log}")"
  bg_running "${qemu_log}" || printf 'QEMU ended (exit status %s)' "$(bg_rc "${qemu_log}")"
}

# boot_problems [QEMU_RE]: after boot_stop, one line per host-side check the boot failed: the backend had ended
# before the end, its log has a sanitizer report or a crash (crash_line), QEMU could not start the vhost-user
# device (its log matches QEMU_RE, default vhost_fail_re). Prints nothing when all hold.
vhost_fail_re='vhost initialization failed|requires kvm|vhost_backend_init failed'
boot_problems() {
  [[ "${backend_alive}" == 1 ]] || echo "the backend ended during the boot (exit status $(bg_rc "${backend_log}"))"
  if crash_line "${backend_log}" >/dev/null; then
    echo "backend log: $(crash_line "${backend_log}" | cut -c1-200)"
  fi
  if grep -aqE "${1:-${vhost_fail_re}}" "${qemu_log}"; then
    echo "QEMU: $(grep -aE 'vhost' "${qemu_log}" | head -n 3 | tr '\n' ' ')"
  fi
}

# show_boot_logs NAME: the tails of the guest console, backend and QEMU logs (and vu_proxy.py's, when it ran).
show_boot_logs() {
  show_tail "guest console${1:+ ($1)}" "${console}" 60
  show_tail "backend log${1:+ ($1)}" "${backend_log}" 30
  show_tail "QEMU log${1:+ ($1)}" "${qemu_log}" 15
  [[ ! -s "${proxy_log:-}" ]] || show_tail "vu_proxy log${1:+ ($1)}" "${proxy_log}" 10
}

# proto_count DIR REQ: how many messages REQ vu_proxy.py recorded in $events on channel DIR (vu: the frontend's
# vhost-user requests; gpu: the backend's display-channel messages to QEMU).
proto_count() {
  grep -ac "\"dir\": \"$1\", \"req\": \"$2\"" "${events}" || true
}

# --- per-case results (display.sh, virgl.sh) ----------------------------------------------------------------------

# results_init CASE...: the tables result (NOT RUN, RUNNING, PASS, FAIL, SKIP), detail and when, per case.
# shellcheck disable=SC2034 # the tables are the sourcing script's
results_init() {
  declare -gA result=() detail=() when=()
  local c
  for c in "$@"; do
    result[${c}]="NOT RUN"
  done
}

# case_fail CASE MESSAGE: the case failed; its first failure is its detail.
case_fail() {
  log "FAIL ${1}: ${2}"
  if [[ "${result[$1]}" != FAIL ]]; then
    result[$1]=FAIL
    detail[$1]="$2"
  fi
}

# case_marker_failed CASE RC: after wait_marker returned RC (not 0): SKIP on 3 (the guest's reason as detail),
# else the case fails with the guest's marker.
# shellcheck disable=SC2034 # detail is the sourcing script's
case_marker_failed() {
  if (($2 == 3)); then
    result[$1]=SKIP
    detail[$1]="${marker}"
  else
    case_fail "$1" "guest: ${marker}"
  fi
}

# fail_all MESSAGE CASE...: every CASE failed with MESSAGE.
fail_all() {
  local msg="$1" c
  shift
  for c in "$@"; do case_fail "${c}" "${msg}"; done
}

# --- QEMU's C backend, unpacked ----------------------------------------------------------------------------------

# qemu_backend_unpack DIR VERSION BY PKG...: prints DIR/vhost-user-gpu, a wrapper that runs the vhost-user-gpu of
# qemu-system-gui VERSION with the libraries beside it (a comment names the script BY). Unless DIR already holds a
# complete one: `apt-get download` of PKG... (never from anywhere else, nothing installed), `dpkg -x` into
# DIR/root, a check that the binary's libraries resolve and that the wrapper runs. Hold a cache_lock around it.
qemu_backend_unpack() {
  local dir="$1" ver="$2" by="$3" deb missing t0
  local bin="$1/root/usr/lib/qemu/vhost-user-gpu" libpath="$1/root/usr/lib/x86_64-linux-gnu" wrapper="$1/vhost-user-gpu"
  shift 3
  if [[ -x "${wrapper}" && -e "${dir}/.complete" ]]; then
    log "cached: ${wrapper}"
    printf '%s\n' "${wrapper}"
    return 0
  fi
  need_cmd apt-get dpkg ldd
  t0="$(now_s)"
  rm -rf -- "${dir}"
  mkdir -p "${dir}/debs" "${dir}/root"
  log "downloading with apt-get download: $*"
  if [[ "$(id -u)" == 0 ]] && id _apt >/dev/null 2>&1; then
    chown _apt "${dir}/debs"
  fi
  if ! (cd "${dir}/debs" && apt-get download -q "$@") >"${dir}/apt.log" 2>&1; then
    cat "${dir}/apt.log" >&2
    die "apt-get download $* failed (is the suite that has qemu-system-gui ${ver} in apt's sources?)"
  fi
  for deb in "${dir}"/debs/*.deb; do
    dpkg -x "${deb}" "${dir}/root" || die "dpkg -x ${deb} failed"
  done
  [[ -x "${bin}" ]] || die "qemu-system-gui ${ver} has no usr/lib/qemu/vhost-user-gpu"
  missing="$(LD_LIBRARY_PATH="${libpath}" ldd "${bin}" | grep 'not found' || true)"
  [[ -z "${missing}" ]] || die "QEMU ${ver}'s vhost-user-gpu lacks libraries on this host (install them):
${missing}"
  cat >"${wrapper}" <<WRAPPER
#!/bin/sh
# QEMU ${ver}'s vhost-user-gpu, unpacked by ${by} (not installed).
LD_LIBRARY_PATH="${libpath}\${LD_LIBRARY_PATH:+:\${LD_LIBRARY_PATH}}" exec "${bin}" "\$@"
WRAPPER
  chmod 755 "${wrapper}"
  "${wrapper}" --help >/dev/null 2>&1 || die "${wrapper} --help failed"
  rm -rf -- "${dir}/debs"
  echo "${ver}" >"${dir}/VERSION"
  touch "${dir}/.complete"
  log "unpacked QEMU ${ver}'s vhost-user-gpu in $(secs_since "${t0}")s"
  printf '%s\n' "${wrapper}"
}

# --- guest programs -----------------------------------------------------------------------------------------------

# build_guest_programs CACHE_NAME HINT SOURCES -- FLAGS... [-- LIBS...]: compiles each C file of SOURCES (a
# newline-separated list; one program each, named after it) with $CC (default gcc) and FLAGS (then LIBS),
# strips it, into $VGPU_CACHE/CACHE_NAME/<key>/ and prints that folder. The key hashes the calling script, the
# sources, every header beside them and guest/*.h, the compiler's version and the flags: a cached build is
# reused. HINT says which packages a failed compile needs.
build_guest_programs() {
  local name="$1" hint="$2" src
  local -a sources guest_headers flags=() libs=()
  mapfile -t sources <<<"$3"
  shift 4
  while (($# > 0)) && [[ "$1" != -- ]]; do
    flags+=("$1")
    shift
  done
  (($# == 0)) || libs=("${@:2}")
  local cc="${CC:-gcc}"
  need_cmd "${cc}" sha256sum strip
  [[ -n "${sources[0]:-}" ]] || die "no guest programs to build"
  mapfile -t guest_headers < <(for src in "${sources[@]}"; do dirname "${src}"; done | sort -u |
    while read -r d; do find "${d}" -maxdepth 1 -name '*.h'; done
    find "${E2E_DIR}/guest" -maxdepth 1 -name '*.h' | LC_ALL=C sort -u)
  local t0 key root out
  t0="$(now_s)"
  key="$({
    sha256sum "$0" "${BASH_SOURCE[0]}" "${sources[@]}" "${guest_headers[@]}" | cut -d' ' -f1
    "${cc}" --version | head -n 1
    printf '%s\n' "${flags[*]} ${libs[*]}"
  } | sha256sum | cut -c1-16)"
  root="${VGPU_CACHE}/${name}"
  out="${root}/${key}"
  [[ -e "${out}/.complete" ]] || cache_lock "${name}"
  if [[ -e "${out}/.complete" ]]; then
    log "cached: ${out} ($(find "${out}" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f '))"
    printf '%s\n' "${out}"
    return 0
  fi
  rm -rf -- "${out}" "${out}.tmp"
  mkdir -p "${out}.tmp"
  for src in "${sources[@]}"; do
    "${cc}" "${flags[@]}" -o "${out}.tmp/$(basename "${src}" .c)" "${src}" "${libs[@]}" ||
      die "compiling ${src} failed (${hint})"
    strip "${out}.tmp/$(basename "${src}" .c)"
  done
  touch "${out}.tmp/.complete"
  mv -- "${out}.tmp" "${out}"
  cache_keep_newest "${root}"
  log "built ${out} ($(find "${out}" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -printf '%f ')) in $(secs_since "${t0}")s"
  printf '%s\n' "${out}"
}

# --- command lines ------------------------------------------------------------------------------------------------

# usage: prints the lines usage_lines (sed's N,M) of the script's header on stderr and exits 2.
usage() {
  sed -n "${usage_lines:-2,3}p" "$0" >&2
  exit 2
}

# parse_args OPTIONS ARGS...: a script's command line: positional words into the array args, `--NAME VALUE` and
# `--NAME=VALUE` for each NAME of OPTIONS (space separated; NAME! is a flag without value, set to 1) into the
# table opt_val. -h/--help prints the usage; another option dies.
# shellcheck disable=SC2034 # args and opt_val are the sourcing script's
parse_args() {
  local known=" $1 " name
  shift
  args=()
  declare -gA opt_val=()
  while (($# > 0)); do
    case "$1" in
      -h | --help) usage ;;
      --*=*)
        name="${1%%=*}"
        name="${name#--}"
        [[ "${known}" == *" ${name} "* ]] || die "unknown option ${1%%=*}"
        opt_val[${name}]="${1#*=}"
        ;;
      --*)
        name="${1#--}"
        if [[ "${known}" == *" ${name}! "* ]]; then
          opt_val[${name}]=1
        elif [[ "${known}" == *" ${name} "* ]]; then
          (($# >= 2)) || die "$1 needs a value"
          opt_val[${name}]="$2"
          shift
        else
          die "unknown option $1"
        fi
        ;;
      -*) die "unknown option $1" ;;
      *) args+=("$1") ;;
    esac
    shift
  done
}

# finish FAILURES FAILED PASSED [KEPT]: a test's last line: with FAILURES > 0 a hint to keep the temp dir (KEPT:
# what it holds), then FAILED and exit 1; else PASSED.
finish() {
  if (($1 > 0)); then
    [[ "${VGPU_KEEP:-0}" == 1 ]] || note "rerun with VGPU_KEEP=1 to keep ${E2E_TMP}${4:+ ($4)}"
    log "$2"
    exit 1
  fi
  log "$3"
}

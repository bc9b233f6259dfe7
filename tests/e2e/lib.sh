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

#!/bin/bash
# Runs a list of piglit tests (tests/e2e/piglit/tests.txt) a few programs at a time and prints one marker line
# per test. The same script serves both sides of piglit.sh: the guest of virgl.sh's `piglit` case (run-3d.sh
# calls it from /run/vgpu-e2e/, PIGLIT_PLATFORM=gbm, our device) and the vtest reference run on the host (chroot
# into the same Debian sid root, PIGLIT_PLATFORM=surfaceless_egl, GALLIUM_DRIVER=virpipe, virgl_test_server).
#
#   piglit-run.sh [-j N] [-t SECS] [-w PLATFORM] [-o FILE] LIST
#
#   -j N      programs at a time (default 2). Tests whose command has no `-fbo` (piglit runs them alone: they
#             draw to the window system's buffer) run alone here too
#   -w PLAT   PIGLIT_PLATFORM for those window tests (default: the environment's); the vtest run gives x11_egl
#             (an Xvfb display: surfaceless_egl has no windows and aborts them)
#   -t SECS   per-test limit (default 120): the test gets SIGTERM, 5 s later SIGKILL
#   -o FILE   also write the results there, one line per test: `result<TAB>seconds<TAB>detail<TAB>name`
#   LIST      lines `name<TAB>command`; `#` comments and blank lines are skipped. The command is split on blanks
#             (no quoting: piglit's commands have none) and run with env, so leading VAR=value words work
#
# Markers on stdout (the prefix is `VGPU-E2E: `, what virgl.sh and piglit.sh read):
#   piglit:renderer <GL_RENDERER>                   piglit's glinfo on the same platform, before the tests
#   piglit:start tests=N jobs=J timeout=T
#   piglit:result <index> <result> <seconds> <name> one per test, in the order they end
#   piglit:out <index> <line>                       the last lines of the output of a test that did not pass,
#                                                   warn or skip (at most 6 lines, 200 characters each)
#   piglit ok total=N pass=N fail=N skip=N warn=N crash=N seconds=S
# The result comes from the test's final `PIGLIT: {"result": "..."}` line (pass, fail, skip, warn; anything else
# is fail). Without such a line: crash when a signal ended the test, else fail. A test that ran out of time
# is a crash whatever it printed (detail `timeout`); one killed by a signal after its result line keeps the
# result (detail `signal N`).
#
# The environment passes through (PIGLIT_PLATFORM, GALLIUM_DRIVER, ...); tests run in a fresh folder under
# ${TMPDIR:-/tmp}, with stdin from /dev/null.
set -uo pipefail

jobs=2 limit=120 outfile="" wplatform="${PIGLIT_PLATFORM:-}"
usage() {
  sed -n '7,16p' "$0" >&2
  exit 2
}
while getopts 'j:t:w:o:h' opt; do
  case "${opt}" in
    j) jobs="${OPTARG}" ;;
    t) limit="${OPTARG}" ;;
    w) wplatform="${OPTARG}" ;;
    o) outfile="${OPTARG}" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
(($# == 1)) || usage
list="$1"
[[ -r "${list}" ]] || {
  echo "piglit-run: cannot read ${list}" >&2
  exit 2
}
[[ "${jobs}" =~ ^[1-9][0-9]*$ && "${limit}" =~ ^[1-9][0-9]*$ ]] || usage

say() { echo "VGPU-E2E: $*"; }
now() { echo "${EPOCHREALTIME}"; }
elapsed() { awk -v a="$1" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }

names=() cmds=()
while IFS=$'\t' read -r name cmd; do
  [[ -z "${name}" || "${name}" == \#* ]] && continue
  [[ -n "${cmd:-}" ]] || {
    echo "piglit-run: ${list}: no command for '${name}'" >&2
    exit 2
  }
  names+=("${name}")
  cmds+=("${cmd}")
done <"${list}"

work="$(mktemp -d "${TMPDIR:-/tmp}/piglit-run.XXXXXX")"
[[ -z "${outfile}" ]] || : >"${outfile}"
bindir=/usr/lib/x86_64-linux-gnu/piglit/bin

# The renderer the tests will get: piglit's glinfo on the same platform and environment.
renderer="$(cd "${work}" && timeout -k 5 "${limit}" "${bindir}/glinfo" -auto </dev/null 2>&1 |
  sed -n 's/^GL_RENDERER = //p' | head -n 1)"
say "piglit:renderer ${renderer:-none (glinfo printed no GL_RENDERER)}"
say "piglit:start tests=${#names[@]} jobs=${jobs} timeout=${limit}"

declare -A pid_index=() counts=()
declare -a started=()
t_all="$(now)"

# finish PID STATUS: interpret the test that ran as PID.
finish() {
  local pid="$1" rc="$2" i out line result detail secs
  i="${pid_index[${pid}]}"
  unset "pid_index[${pid}]"
  secs="$(elapsed "${started[${i}]}")"
  out="${work}/${i}.out"
  line="$(grep -a '^PIGLIT: .*"result"' "${out}" | tail -n 1)"
  result="$(sed -nE 's/.*"result" *: *"([a-z-]+)".*/\1/p' <<<"${line}")"
  detail=""
  case "${result}" in
    pass | fail | skip | warn) ;;
    "") result="" ;;
    *)
      detail="result ${result}"
      result=fail
      ;;
  esac
  if ((rc == 124 || rc == 137)); then
    result=crash
    detail="timeout"
  elif ((rc > 128)); then
    detail="${detail:+${detail}, }signal $((rc - 128))"
    [[ -n "${result}" ]] || result=crash
  elif [[ -z "${result}" ]]; then
    result=fail
    detail="no result line, exit status ${rc}"
  fi
  counts[${result}]=$((${counts[${result}]:-0} + 1))
  say "piglit:result ${i} ${result} ${secs} ${names[${i}]}"
  case "${result}" in
    pass | warn | skip) ;;
    *)
      grep -av '^PIGLIT: ' "${out}" | grep -av '^[[:space:]]*$' | tail -n 6 | cut -c1-200 |
        sed "s/^/VGPU-E2E: piglit:out ${i} /"
      [[ -z "${detail}" ]] || say "piglit:out ${i} (${detail})"
      ;;
  esac
  [[ -z "${outfile}" ]] || printf '%s\t%s\t%s\t%s\n' "${result}" "${secs}" "${detail}" "${names[${i}]}" >>"${outfile}"
  rm -f -- "${out}"
}

# reap: wait for one test to end.
reap() {
  local pid rc
  # (stderr: no "Aborted"/"Segmentation fault" job notes on the console; the result says it)
  wait -n -p pid "${!pid_index[@]}" 2>/dev/null
  rc=$?
  [[ -n "${pid:-}" ]] || return 0
  finish "${pid}" "${rc}"
}

for i in "${!names[@]}"; do
  read -r -a argv <<<"${cmds[${i}]}"
  alone=1
  [[ " ${argv[*]} " != *" -fbo "* ]] || alone=0
  if ((alone)); then
    argv=("PIGLIT_PLATFORM=${wplatform}" "${argv[@]}")
    while ((${#pid_index[@]} > 0)); do reap; done
  else
    while ((${#pid_index[@]} >= jobs)); do reap; done
  fi
  started[i]="$(now)"
  (cd "${work}" && exec timeout -k 5 "${limit}" env -- "${argv[@]}" </dev/null >"${work}/${i}.out" 2>&1) &
  pid_index[$!]="${i}"
  if ((alone)); then
    reap
  fi
done
while ((${#pid_index[@]} > 0)); do reap; done

say "piglit ok total=${#names[@]} pass=${counts[pass]:-0} fail=${counts[fail]:-0} skip=${counts[skip]:-0}" \
  "warn=${counts[warn]:-0} crash=${counts[crash]:-0} seconds=$(elapsed "${t_all}")"
rm -rf -- "${work}"

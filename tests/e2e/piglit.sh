#!/usr/bin/env bash
# piglit through our device, compared with the same tests through vtest (issue 11): the list of
# tests/e2e/piglit/tests.txt runs a few programs at a time (guest/3d/piglit-run.sh) in the Debian sid root of
# build-guest-root.sh, once as a guest on our backend and once on the host against virglrenderer's own
# virgl_test_server; any test that passes through vtest and not through our device fails the run.
#
#   piglit.sh vtest                 the reference: chroot into the unpacked sid root (build-guest-root.sh --root,
#                                   in-root.sh), the root's Mesa with GALLIUM_DRIVER=virpipe (the vtest client;
#                                   GL_RENDERER must say virgl) against the host's virgl_test_server
#                                   (--use-egl-surfaceless: Debian 12's virglrenderer on llvmpipe, one server
#                                   process per client); PIGLIT_PLATFORM=surfaceless_egl, and x11_egl on a private
#                                   Xvfb for the window tests (no -fbo), which surfaceless_egl aborts
#   piglit.sh ours BINARY           our device: virgl.sh ours BINARY with the cases `renderer piglit` (QEMU, TCG,
#                                   vhost-user-gpu-pci by default; PIGLIT_PLATFORM=gbm in the guest)
#   piglit.sh compare               compare.py on the results in VGPU_PIGLIT_OUT (both sides run before)
#   piglit.sh all BINARY            vtest, ours, compare (ctest's e2e.piglit)
#
# Results go to VGPU_PIGLIT_OUT (default a new /tmp/vgpu-piglit.XXXXXX, kept; printed at the end):
#   vtest/results.txt, ours/results.txt   one line per test: result<TAB>seconds<TAB>detail<TAB>name
#   vtest/console.log                     the runner's markers (with the output of failing tests)
#   vtest/server.log                      virgl_test_server's log
#   ours/console.log, ours/backend.log    the guest console and our backend's log
#   ours/kernel-errors.txt                the guest kernel's `response 0x.. (command 0x..)` lines, counted
#   ours/status.txt                       the virgl.sh piglit case's verdict (backend alive, no crash)
#   compare.txt, report.md                the comparison (stdout) and the markdown report (VGPU_PIGLIT_MD)
# Exit status: vtest and ours 0 when the side ran to its end (test results are compare's to judge); compare
# and all: compare.py's (1 on a test that passes or warns through vtest but not on our device, a crash of ours
# that vtest does not have, a test with no result, or a backend that died or crashed).
#
# Environment:
#   VGPU_PIGLIT_OUT           the results folder (see above)
#   VGPU_PIGLIT_LIST          the test list (default tests/e2e/piglit/tests.txt)
#   VGPU_PIGLIT_JOBS          programs at a time, both sides (default 2)
#   VGPU_PIGLIT_TEST_TIMEOUT  seconds per test, both sides (default 120; a timeout is a crash)
#   VGPU_PIGLIT_TIMEOUT       seconds for a whole side (default 1500)
#   VGPU_PIGLIT_ALLOW         a file of test names (one a line) whose differences do not fail; default none
#   VGPU_PIGLIT_MD            where compare writes the markdown report (default VGPU_PIGLIT_OUT/report.md)
#   VGPU_VTEST_SERVER         the vtest server (default virgl_test_server, package virgl-server)
#   the ours side takes virgl.sh's knobs too (VGPU_E2E_DEVICE, VGPU_E2E_BACKEND_ARGS, VGPU_KEEP, ...)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage_lines=7,18
mode="${1:-}"
binary="${2:-}"
case "${mode}" in
  vtest | compare) ;;
  ours | all) [[ -n "${binary}" ]] || die "usage: piglit.sh ${mode} BINARY (e.g. build/vhost-gpu)" ;;
  *) usage ;;
esac

list="${VGPU_PIGLIT_LIST:-${E2E_DIR}/piglit/tests.txt}"
[[ -r "${list}" ]] || die "no test list ${list}"
list="$(cd "$(dirname "${list}")" && pwd)/$(basename "${list}")"
jobs="${VGPU_PIGLIT_JOBS:-2}"
test_timeout="${VGPU_PIGLIT_TEST_TIMEOUT:-120}"
side_timeout="${VGPU_PIGLIT_TIMEOUT:-1500}"
[[ "${jobs}" =~ ^[1-9][0-9]*$ ]] || die "VGPU_PIGLIT_JOBS must be a positive number"
ntests="$(grep -cvE '^(#|[[:space:]]*$)' "${list}")"
out="${VGPU_PIGLIT_OUT:-}"
if [[ -z "${out}" ]]; then
  [[ "${mode}" != compare ]] || die "piglit.sh compare needs VGPU_PIGLIT_OUT (the folder of both runs)"
  out="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-piglit.XXXXXX")"
fi
mkdir -p -- "${out}"
out="$(cd "${out}" && pwd)"

# --- the vtest reference ----------------------------------------------------------------------------------------
run_vtest() {
  local server="${VGPU_VTEST_SERVER:-virgl_test_server}" root tmp sock res t0 r
  need_cmd "${server}" unshare chroot
  [[ "$(id -u)" == 0 ]] || die "the vtest run needs root (chroot into the guest root through in-root.sh)"
  root="$("${E2E_DIR}/build-guest-root.sh" --root)" || die "build-guest-root.sh --root failed"
  res="${out}/vtest"
  rm -rf -- "${res}"
  mkdir -p -- "${res}"
  e2e_tmpdir
  tmp="${E2E_TMP}"
  # Below /tmp the folder lands on the root's private tmpfs (in-root.sh): nothing is created in the kept root.
  [[ "${tmp}" == /tmp/* ]] || warn "TMPDIR is not below /tmp: in-root.sh leaves an empty ${tmp} in ${root}"
  cp -- "${E2E_DIR}/guest/3d/piglit-run.sh" "${tmp}/piglit-run.sh"
  cp -- "${list}" "${tmp}/tests.txt"
  sock="${tmp}/vtest.sock"
  # virglrenderer 0.10.4's server takes the path only as --socket-path=PATH: with a space it reads PATH as a
  # replay file and exits ("No such file or directory").
  bg_start vtest-server "${res}/server.log" 20M $((side_timeout + 60)) \
    "${server}" --use-egl-surfaceless "--socket-path=${sock}"
  wait_for_socket "${sock}" 15 "${res}/server.log" || {
    show_tail "virgl_test_server log" "${res}/server.log"
    die "virgl_test_server did not create ${sock}"
  }
  # Inside the root: a private Xvfb (no TCP, no abstract socket: only the root's own /tmp/.X11-unix) for the
  # window tests, then the runner; Xvfb ends with it.
  cat >"${tmp}/inner.sh" <<'INNER'
# in the root: inner.sh DIR JOBS TIMEOUT (written by piglit.sh)
Xvfb -displayfd 3 -nolisten tcp -nolisten local -screen 0 1280x800x24 3>/tmp/xvfb.display >/tmp/xvfb.log 2>&1 &
xpid=$!
for ((i = 0; i < 100; i++)); do [[ -s /tmp/xvfb.display ]] && break; sleep 0.1; done
DISPLAY=":$(head -n 1 /tmp/xvfb.display 2>/dev/null)"
export DISPLAY
[[ "${DISPLAY}" != ":" ]] || echo "piglit.sh: Xvfb did not start: $(tail -n 3 /tmp/xvfb.log)" >&2
bash "$1/piglit-run.sh" -j "$2" -t "$3" -w x11_egl -o "$1/results.txt" "$1/tests.txt"
rc=$?
kill "${xpid}" 2>/dev/null
wait "${xpid}" 2>/dev/null
exit "${rc}"
INNER
  log "vtest: ${ntests} tests, ${jobs} at a time, ${test_timeout}s each, in ${root}"
  t0="$(now_s)"
  bg_start piglit-vtest "${res}/console.log" 20M "${side_timeout}" \
    "${E2E_DIR}/in-root.sh" "${root}" --bind "${tmp}" -- env HOME=/tmp MESA_SHADER_CACHE_DISABLE=true \
    PIGLIT_PLATFORM=surfaceless_egl GALLIUM_DRIVER=virpipe LIBGL_ALWAYS_SOFTWARE=1 VTEST_SOCKET_NAME="${sock}" \
    bash "${tmp}/inner.sh" "${tmp}" "${jobs}" "${test_timeout}"
  local last=0 n
  while bg_running "${res}/console.log"; do
    sleep 2
    n="$(grep -c '^VGPU-E2E: piglit:result ' "${res}/console.log" || true)"
    if ((n >= last + 100)); then
      log "vtest: ${n} of ${ntests} done"
      last="${n}"
    fi
  done
  t0="$(secs_since "${t0}")"
  [[ ! -e "${tmp}/results.txt" ]] || cp -- "${tmp}/results.txt" "${res}/results.txt"
  bg_stop "${res}/server.log" 3
  r="$(sed -n 's/^VGPU-E2E: piglit:renderer //p' "${res}/console.log" | head -n 1)"
  log "vtest: GL_RENDERER '${r}'"
  [[ "${r}" == *virgl* ]] || die "vtest: the tests did not render through vtest (GL_RENDERER '${r}'); see ${res}/console.log"
  grep -q '^VGPU-E2E: piglit ok ' "${res}/console.log" || {
    show_tail "vtest runner" "${res}/console.log" 20
    die "vtest: the runner did not finish (exit status $(bg_rc "${res}/console.log"))"
  }
  log "vtest: $(sed -n 's/^VGPU-E2E: piglit ok //p' "${res}/console.log") (wall ${t0}s)"
  printf 'wall %s\nrenderer %s\n' "${t0}" "${r}" >"${res}/summary.txt"
}

# --- our device -------------------------------------------------------------------------------------------------
run_ours() {
  local res="${out}/ours" t0 rc=0
  rm -rf -- "${res}"
  mkdir -p -- "${res}"
  log "ours: ${ntests} tests, ${jobs} at a time, ${test_timeout}s each, backend ${binary}"
  t0="$(now_s)"
  VGPU_E2E_CASES="renderer piglit" VGPU_E2E_PIGLIT_LIST="${list}" VGPU_E2E_PIGLIT_JOBS="${jobs}" \
    VGPU_E2E_PIGLIT_TEST_TIMEOUT="${test_timeout}" VGPU_E2E_PIGLIT_TIMEOUT="${side_timeout}" \
    VGPU_E2E_PIGLIT_DIR="${res}" bash "${E2E_DIR}/virgl.sh" ours "${binary}" || rc=$?
  t0="$(secs_since "${t0}")"
  # The report is committed: a binary of this tree is named by its path in the tree (build/vhost-gpu).
  local src shown="${binary}" bindir
  src="$(cd "${E2E_DIR}/../.." && pwd)"
  if bindir="$(cd "$(dirname "${binary}")" 2>/dev/null && pwd)"; then shown="${bindir}/$(basename "${binary}")"; fi
  shown="${shown#"${src}/"}"
  printf 'wall %s\nvirgl.sh %s\nbackend %s (built %s; source tree at %s)\n' "${t0}" "${rc}" "${shown}" \
    "$(date -u -r "${binary}" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo '?')" \
    "$(git -C "${E2E_DIR}" rev-parse --short HEAD 2>/dev/null || echo '?')" >"${res}/summary.txt"
  log "ours: virgl.sh exit status ${rc} (wall ${t0}s); $(sed -n 's/^VGPU-E2E: piglit ok //p' "${res}/console.log" 2>/dev/null | tr -d '\r' | head -n 1)"
  [[ -e "${res}/results.txt" ]] || die "ours: no results (virgl.sh exit status ${rc})"
}

# --- compare ------------------------------------------------------------------------------------------------------
run_compare() {
  local root_info md rc=0
  md="${VGPU_PIGLIT_MD:-${out}/report.md}"
  [[ -e "${out}/vtest/results.txt" ]] || die "no ${out}/vtest/results.txt (run piglit.sh vtest first)"
  [[ -e "${out}/ours/results.txt" ]] || die "no ${out}/ours/results.txt (run piglit.sh ours BINARY first)"
  root_info="$("${E2E_DIR}/build-guest-root.sh" --info 2>/dev/null || true)"
  local -a info=(
    "date=$(date -u +%Y-%m-%d)"
    "piglit=$(sed -n 's/^package piglit //p' <<<"${root_info}")"
    "guest root=$(sed -n 's/^os //p' <<<"${root_info}"), Mesa $(sed -n 's/^package libgl1-mesa-dri //p' <<<"${root_info}")"
    "host=$(. /etc/os-release && echo "${PRETTY_NAME}"), virglrenderer $(dpkg-query -W -f='${Version}' libvirglrenderer1 2>/dev/null || echo '?'), $(nproc) cores"
    "jobs=${jobs} programs at a time, ${test_timeout} s per test"
    "vtest=$(sed -n 's/^VGPU-E2E: piglit ok //p' "${out}/vtest/console.log" 2>/dev/null | head -n 1); wall $(sed -n 's/^wall //p' "${out}/vtest/summary.txt" 2>/dev/null) s; GL_RENDERER $(sed -n 's/^renderer //p' "${out}/vtest/summary.txt" 2>/dev/null)"
    "ours=$(tr -d '\r' <"${out}/ours/console.log" 2>/dev/null | sed -n 's/^VGPU-E2E: piglit ok //p' | head -n 1); wall $(sed -n 's/^wall //p' "${out}/ours/summary.txt" 2>/dev/null) s (boot included); GL_RENDERER $(tr -d '\r' <"${out}/ours/console.log" 2>/dev/null | sed -n 's/^VGPU-E2E: piglit:renderer //p' | head -n 1)"
    "our backend=$(sed -n 's/^backend //p' "${out}/ours/summary.txt" 2>/dev/null)"
    "guest kernel errors=$(awk '/ suppressed / { next } { printf "%s%s x%s", sep, substr($0, index($0, $2)), $1; sep = "; " }
      END { if (sep == "") printf "none" }' "${out}/ours/kernel-errors.txt" 2>/dev/null) (console lines; the kernel rate-limits them)"
  )
  local -a extra=()
  [[ -z "${VGPU_PIGLIT_ALLOW:-}" ]] || extra=(--allow "${VGPU_PIGLIT_ALLOW}")
  local -a info_args=()
  local kv
  for kv in "${info[@]}"; do info_args+=(--info "${kv}"); done
  python3 "${E2E_DIR}/piglit/compare.py" "${out}/vtest/results.txt" "${out}/ours/results.txt" --list "${list}" \
    --ours-status "${out}/ours/status.txt" --md "${md}" "${info_args[@]}" "${extra[@]}" |
    tee "${out}/compare.txt" || rc=$?
  log "report: ${md}; results in ${out}"
  return "${rc}"
}

need_cmd python3
case "${mode}" in
  vtest) run_vtest ;;
  ours) run_ours ;;
  compare) run_compare ;;
  all)
    run_vtest
    run_ours
    run_compare
    ;;
esac
log "results in ${out}"

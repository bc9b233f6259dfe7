#!/bin/bash
# PID 1 of the 3D e2e guest after switch_root into the Debian sid root (build-guest-root.sh); virgl.sh's
# initramfs copies it to /run/vgpu-e2e/init, next to gl-draw and busybox (for poweroff).
#
# Runs each case of the kernel command line's vgpu_e2e.cases=a,b,... in turn and prints `VGPU-E2E: ...` markers
# on the console (ttyS0); steps that need the host (screendumps) wait for `next` on ttyS1, as vgpu-draw does:
#   renderer  gl-draw info: EGL/GL strings, `renderer ok <GL_RENDERER>`
#   hostile   hostile (guest/3d/hostile.c): garbage streams, cross-context use, contexts closed with work in
#             flight; `hostile ok <n> ioctls, <m> errors` (errors expected; a hang is `hostile FAIL ...`)
#   draw      gl-draw draw: two frames of known geometry, `draw:base ok ...`, `draw ok ...`
#   kmscube   kmscube runs until the host has seen it on screen: `kmscube:running ok ...`, `kmscube ok exit=N`
#   igt       every subtest of IGT's drm_virtgpu, one run each: `igt:<subtest> SUCCESS|FAIL|SKIP|... <reason>`,
#             then `igt ok success=N fail=N skip=N other=N`
#   glmark2   glmark2-es2-drm on the scenes of vgpu_e2e.glmark2=scene:opt=v,scene...: `glmark2 ok score=N`
#   venus     Vulkan through Venus, on the Venus ICD only (VK_DRIVER_FILES=virtio_icd.json: no silent fallback to
#             lavapipe): `venus:vulkaninfo device="..." driver=...` (vulkaninfo --summary), `venus:draw ...`
#             (vk-draw: rendering read back through host-visible memory, every pixel), `venus:scanout ...`
#             (vk-draw scanout: the frame shown with KMS as a blob scanout the host checks in the backend's
#             frames between `venus:scanout shown WxH ...` and `next`), `venus:hostile ...`
#             (venus-hostile: more Venus contexts than the backend's cap, blobs of no object, their maps, files
#             closed with blobs open; with the guest module vgpu_hostile_map, MAP_BLOB at unaligned, outside,
#             wrapping and overlapping offsets, UNMAP_BLOB of what was never mapped and RESOURCE_UNREF while
#             mapped, sent by the guest's own driver; errors expected, no hang), `venus:ggml ...`
#             (test-backend-ops -b Vulkan0 on vgpu_e2e.ggml_ops, default ADD,MUL_MAT, cases whose params match
#             vgpu_e2e.ggml_params, default the f32 ones: 316 cases; every one must pass on the Venus device),
#             `venus:llama ...` (test-llama-archs -a '^llama$': a tiny LLM on the Venus device and on the CPU,
#             outputs within its 1e-4 bound; the Venus rows must say OK), then `venus ok` or `venus FAIL <steps>`.
#             ggml runs without cooperative-matrix shaders (GGML_VK_DISABLE_COOPMAT*): lavapipe's emulation of
#             them misses test-backend-ops' MUL_MAT bound on the host itself, no VM involved
#   share     share (guest/3d/share.c): a 2D buffer with a known pattern exported with PRIME (the driver asks
#             for its UUID); `share:exported WxH pitch P size S` asks the host to import it by UUID from another
#             device, `next`; the buffer freed, `share:released` asks the host to check the UUID is gone, `next`;
#             then `share ok ...`
#   piglit    piglit-run.sh (next to this script) on the list piglit-tests.txt, PIGLIT_PLATFORM=gbm,
#             vgpu_e2e.piglit_jobs programs at a time (default 2), vgpu_e2e.piglit_timeout seconds per test
#             (default 120): `piglit:result ...` per test, then `piglit ok total=N pass=N ...`
# A case that cannot run prints `VGPU-E2E: <case> SKIP <why>`; failures `VGPU-E2E: <case> FAIL <what>`.
# Then `VGPU-E2E: done`, a wait of vgpu_e2e.hold seconds, and power-off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp XDG_RUNTIME_DIR=/run/vgpu-e2e/xdg MESA_SHADER_CACHE_DISABLE=true LC_ALL=C.UTF-8 TERM=dumb
E=/run/vgpu-e2e
bb="${E}/busybox"
IGT_DIR=/usr/libexec/igt-gpu-tools

say() { echo "VGPU-E2E: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

mkdir -p "${XDG_RUNTIME_DIR}"
chmod 700 "${XDG_RUNTIME_DIR}"
# devtmpfs has no /dev/fd (bash's process substitution needs it), /dev/shm or /dev/pts; IGT reads debugfs.
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd
for i in 0:stdin 1:stdout 2:stderr; do [[ -e "/dev/${i#*:}" ]] || ln -s "/proc/self/fd/${i%%:*}" "/dev/${i#*:}"; done
mkdir -p /dev/shm /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true

cases="" hold=0 step_timeout=300 glmark2_scenes="" hostile_seed="" piglit_jobs=2 piglit_timeout=120
ggml_ops=ADD,MUL_MAT ggml_params='^type(_a=f32,type_b)?=f32,' venus_steps=vulkaninfo,draw,scanout,hostile,ggml,llama vn_debug=
read -r -a cmdline </proc/cmdline
for arg in "${cmdline[@]}"; do
  case "${arg}" in
    vgpu_e2e.cases=*) cases="${arg#*=}" ;;
    vgpu_e2e.hold=*) hold="${arg#*=}" ;;
    vgpu_e2e.step_timeout=*) step_timeout="${arg#*=}" ;;
    vgpu_e2e.glmark2=*) glmark2_scenes="${arg#*=}" ;;
    vgpu_e2e.hostile_seed=*) hostile_seed="${arg#*=}" ;;
    vgpu_e2e.piglit_jobs=*) piglit_jobs="${arg#*=}" ;;
    vgpu_e2e.piglit_timeout=*) piglit_timeout="${arg#*=}" ;;
    vgpu_e2e.ggml_ops=*) ggml_ops="${arg#*=}" ;;
    vgpu_e2e.ggml_params=*) ggml_params="${arg#*=}" ;;
    vgpu_e2e.venus_steps=*) venus_steps="${arg#*=}" ;;
    vgpu_e2e.vn_debug=*) vn_debug="${arg#*=}" ;;
  esac
done

os="$(. /etc/os-release && echo "${PRETTY_NAME}")"
mesa="$(sed -n 's/^package libgallium-[^ ]* //p; s/^package libgl1-mesa-dri //p' /etc/vgpu-e2e-root.txt 2>/dev/null | head -n 1)"
say "root ok ${os}; mesa ${mesa:-?}; guest uptime $(uptime_s) s"

# ctl_open: fd 3 on the control port, raw, before the marker the host answers (input to a closed port is lost).
ctl_open() {
  exec 3<>/dev/ttyS1
  stty raw -echo <&3
}
ctl_wait() { # waits for `next` (0) or gives up after step_timeout (1)
  local line
  while IFS= read -r -t "${step_timeout}" line <&3; do
    line="${line%$'\r'}"
    [[ "${line}" == next || "${line}" == quit ]] && return 0
  done
  return 1
}
ctl_close() { exec 3<&-; }

case_renderer() {
  "${E}/gl-draw" info
}

case_hostile() {
  # The program's own alarm() ends a hung ioctl; timeout is the last resort (a task stuck in the kernel).
  timeout -k 5 "${step_timeout}" "${E}/hostile" ${hostile_seed:+--seed "${hostile_seed}"}
  local rc=$?
  ((rc == 0)) || say "hostile FAIL exit status ${rc}"
  return "${rc}"
}

case_draw() {
  "${E}/gl-draw" draw --timeout "${step_timeout}"
}

case_kmscube() {
  command -v kmscube >/dev/null || {
    say "kmscube SKIP kmscube is not installed"
    return 0
  }
  local log=/tmp/kmscube.log pid i rc renderer early=0
  ctl_open
  # kmscube ends when its stdin becomes readable ("user interrupted!"); a background job's stdin is /dev/null,
  # always readable. A FIFO held open for writing by this shell never is, until a line is written to it.
  held_start /tmp/kmscube.in "${log}" kmscube -D /dev/dri/card0
  # It prints its GL strings once EGL is up; the host then screendumps until the cube shows and moves.
  wait_log "${log}" 'renderer'
  if ! kill -0 "${pid}" 2>/dev/null; then
    wait "${pid}"
    rc=$?
    grep -vE '^ *(client extensions|display extensions|extensions):' "${log}" |
      sed 's/^/VGPU-E2E: kmscube-log: /' | tail -n 20
    say "kmscube FAIL kmscube ended at once with status ${rc}"
    exec 4>&-
    ctl_close
    return 1
  fi
  renderer="$(sed -n 's/^ *renderer: *//p' "${log}" | head -n 1)"
  say "kmscube:running ok pid=${pid} renderer=${renderer}"
  ctl_wait || say "kmscube: no word from the host within ${step_timeout} s"
  if ! kill -0 "${pid}" 2>/dev/null; then
    early=1
  fi
  echo quit >&4
  for ((i = 0; i < 50; i++)); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${pid}" 2>/dev/null
  wait "${pid}"
  rc=$?
  exec 4>&-
  grep -vE '^ *(client extensions|display extensions|extensions):' "${log}" | sed 's/^/VGPU-E2E: kmscube-log: /' |
    tail -n 12
  if ((early)); then
    say "kmscube FAIL kmscube ended (status ${rc}) before the host had seen it"
  elif ((rc != 0)); then
    say "kmscube FAIL exit status ${rc} (expected 0: 'user interrupted!' on its stdin)"
  else
    say "kmscube ok exit=${rc}"
  fi
  ctl_close
}

# igt_one SUBTEST: runs it alone; prints `igt:<subtest> RESULT reason`.
igt_one() {
  local s="$1" out rc result reason
  out="$(timeout -k 5 120 "${IGT_DIR}/drm_virtgpu" --run-subtest "${s}" 2>&1)"
  rc=$?
  result="$(sed -nE "s/^Subtest ${s}: ([A-Z]+).*/\\1/p" <<<"${out}" | tail -n 1)"
  if [[ -z "${result}" ]]; then
    case "${rc}" in
      0) result=SUCCESS ;;
      77) result=SKIP ;;
      78 | 124 | 137) result=TIMEOUT ;;
      *) result="FAIL(exit ${rc})" ;;
    esac
  fi
  # The reason: IGT's requirement or assertion lines, without their "[time] (test:pid) CRITICAL: " prefix.
  reason="$(grep -E 'Test requirement:|Failed assertion:|Last errno:|CRITICAL: |Received signal' <<<"${out}" |
    grep -vE 'Test (assertion failure|requirement not met) (in )?function' |
    sed -E 's/^\[[0-9.]+\] \([^)]*\) //; s/^CRITICAL: //' | awk '!seen[$0]++' | head -n 4 | paste -sd';' -)"
  case "${result}" in
    SUCCESS) reason="" ;;
    SKIP) ;;
    *) grep -vE '^(IGT-Version|Using IGT_SRANDOM|Starting subtest|Opened device)|igt_core-INFO: +#' <<<"${out}" |
         tail -n 12 | sed "s/^/VGPU-E2E: igt-log:${s}: /" ;;
  esac
  say "igt:${s} ${result} $(cut -c1-220 <<<"${reason}")"
  igt_counts["${result%%(*}"]=$((${igt_counts["${result%%(*}"]:-0} + 1))
}

case_igt() {
  local t="${IGT_DIR}/drm_virtgpu" s
  [[ -x "${t}" ]] || {
    say "igt SKIP ${t} is not installed (package igt-gpu-tools-tests)"
    return 0
  }
  local -a subtests
  mapfile -t subtests < <("${t}" --list-subtests 2>/dev/null)
  ((${#subtests[@]} > 0)) || {
    say "igt FAIL ${t} --list-subtests listed nothing"
    return 1
  }
  say "igt:list ${subtests[*]}"
  declare -gA igt_counts=()
  for s in "${subtests[@]}"; do
    igt_one "${s}"
  done
  say "igt ok success=${igt_counts[SUCCESS]:-0} fail=${igt_counts[FAIL]:-0} skip=${igt_counts[SKIP]:-0}" \
    "other=$((${#subtests[@]} - ${igt_counts[SUCCESS]:-0} - ${igt_counts[FAIL]:-0} - ${igt_counts[SKIP]:-0}))"
}

case_glmark2() {
  command -v glmark2-es2-drm >/dev/null || {
    say "glmark2 SKIP glmark2-es2-drm is not installed (not in this suite)"
    return 0
  }
  local -a args=() scene
  local log=/tmp/glmark2.log rc score
  if [[ -n "${glmark2_scenes}" ]]; then
    for scene in ${glmark2_scenes//,/ }; do args+=(-b "${scene}"); done
  fi
  # The host samples the backend's CPU time at this marker and at the result, for CPU time per frame.
  say "glmark2:start ok scenes=${glmark2_scenes:-default}"
  timeout -k 5 $((step_timeout * 2)) glmark2-es2-drm "${args[@]}" >"${log}" 2>&1
  rc=$?
  grep -E 'GL_RENDERER|GL_VERSION|FPS|FrameTime|Score|^\[' "${log}" | sed 's/^/VGPU-E2E: glmark2-log: /' | tail -n 20
  score="$(sed -nE 's/.*glmark2 Score: *([0-9]+).*/\1/p' "${log}" | tail -n 1)"
  if [[ -n "${score}" && "${rc}" == 0 ]]; then
    say "glmark2 ok score=${score} renderer=$(sed -nE 's/.*GL_RENDERER: *//p' "${log}" | head -n 1)"
  else
    tail -n 10 "${log}" | sed 's/^/VGPU-E2E: glmark2-log: /'
    say "glmark2 FAIL exit status ${rc}, score '${score}'"
  fi
}

case_piglit() {
  [[ -x /usr/lib/x86_64-linux-gnu/piglit/bin/shader_runner ]] || {
    say "piglit SKIP piglit is not installed in this root"
    return 0
  }
  [[ -r "${E}/piglit-tests.txt" ]] || {
    say "piglit FAIL no test list ${E}/piglit-tests.txt in the initramfs"
    return 1
  }
  # gbm: EGL on the render node, no window system; tests without -fbo draw to a gbm surface.
  PIGLIT_PLATFORM=gbm WAFFLE_GBM_DEVICE=/dev/dri/renderD128 \
    bash "${E}/piglit-run.sh" -j "${piglit_jobs}" -t "${piglit_timeout}" "${E}/piglit-tests.txt"
}

# venus_run STEP TIMEOUT CMD...: runs one step of the venus case with its output in /tmp/venus-STEP.log;
# prints its last lines as venus-log markers when it fails. Returns the command's status.
venus_run() {
  local step="$1" limit="$2" rc
  shift 2
  local t0
  t0="$(uptime_s)"
  timeout -k 10 "${limit}" "$@" >"/tmp/venus-${step}.log" 2>&1
  rc=$?
  venus_report "${step}" "${t0}" "${rc}"
}

# held_start FIFO LOG CMD...: CMD in the background, its output in LOG and its stdin on the FIFO, which this shell
# holds open for writing on fd 4: CMD reads no end of file until a line is written there. Sets pid.
held_start() {
  local fifo="$1" log="$2"
  shift 2
  rm -f "${fifo}"
  mkfifo "${fifo}"
  exec 4<>"${fifo}"
  "$@" <&4 >"${log}" 2>&1 &
  pid=$!
}

# wait_log LOG REGEX: until LOG has a line matching REGEX, $pid has ended or step_timeout has passed.
wait_log() {
  local i
  for ((i = 0; i < step_timeout * 10; i++)); do
    grep -q "$2" "$1" && break
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
}

# venus_judged STEP VERDICT CMD...: venus_run STEP (4 step timeouts) CMD...; when it ran, VERDICT reads its log
# (/tmp/venus-STEP.log), says `venus:STEP ok ...` or `venus:STEP FAIL ...` and returns non-zero on the latter.
venus_judged() {
  local step="$1" verdict="$2"
  shift 2
  venus_run "${step}" $((step_timeout * 4)) "$@" && "${verdict}"
}

# ggml_verdict: test-backend-ops ran on the Venus device and every case passed.
ggml_verdict() {
  local passed
  passed="$(sed -nE 's/^ *([0-9]+)\/([0-9]+) tests passed.*/\1 \2/p' /tmp/venus-ggml.log | tail -n 1)"
  if grep -qE 'Device description: Virtio-GPU Venus' /tmp/venus-ggml.log &&
    grep -qE 'Backend Vulkan0: .*OK' /tmp/venus-ggml.log && [[ -n "${passed}" ]] &&
    ((${passed% *} > 0 && ${passed% *} == ${passed#* })); then
    say "venus:ggml ok passed=${passed% *}/${passed#* } ops=${ggml_ops}"
  else
    say "venus:ggml FAIL the Venus device did not run and pass every case (${passed:-no count})"
    return 1
  fi
}

# llama_verdict: test-llama-archs has Venus rows, all OK, and its summary says every test passed.
llama_verdict() {
  local venus_rows venus_ok
  venus_rows="$(grep -cE '^\|.*llama\|.*Venus' /tmp/venus-llama.log || true)"
  venus_ok="$(grep -E '^\|.*llama\|.*Venus' /tmp/venus-llama.log | grep -vc 'FAIL' || true)"
  if ((venus_rows > 0 && venus_ok == venus_rows)) && grep -qE '^Summary: all [0-9]+ test\(s\) passed' /tmp/venus-llama.log; then
    say "venus:llama ok venus_rows=${venus_rows} $(grep -E '^Summary' /tmp/venus-llama.log | tail -n 1)"
  else
    say "venus:llama FAIL Venus rows ${venus_rows}, of them OK ${venus_ok}; $(grep -E '^Summary' /tmp/venus-llama.log | tail -n 1)"
    return 1
  fi
}

# venus_report STEP T0 RC: the step's time marker, then its log's last lines as venus-log markers (RC != 0) or
# the lines matching VENUS_KEEP_RE as venus-out markers. Returns RC.
venus_report() {
  local step="$1" t0="$2" rc="$3"
  say "venus:${step}:time $(awk -v a="${t0}" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s exit=${rc}"
  if ((rc != 0)); then
    # What went wrong (errors and the failing cases with the lines before them), then how it ended.
    grep -aiE -B3 'error|fail|abort|lost|out of' "/tmp/venus-${step}.log" | grep -avE '\): .*OK' | head -n 30 |
      sed "s/^/VGPU-E2E: venus-log: ${step}: /"
    tail -n 15 "/tmp/venus-${step}.log" | sed "s/^/VGPU-E2E: venus-log: ${step}: /"
  else
    grep -aE "${VENUS_KEEP_RE:-.}" "/tmp/venus-${step}.log" | tail -n 20 | sed "s/^/VGPU-E2E: venus-out: ${step}: /"
  fi
  return "${rc}"
}

# The `scanout` step: vk-draw scanout shows its Vulkan frame through an exported dma-buf (a blob scanout) and
# holds it; `venus:scanout shown WxH ...` asks the host to check the backend's frame, `next` on the control port
# says it has (or gave up: the host fails the case then), and the program ends.
venus_scanout() {
  local log=/tmp/venus-scanout.log pid i rc t0
  t0="$(uptime_s)"
  ctl_open
  held_start /tmp/vk-scanout.in "${log}" timeout -k 10 "${step_timeout}" "${E}/vk-draw" scanout
  wait_log "${log}" '^vk-draw: shown '
  if grep -q '^vk-draw: shown ' "${log}"; then
    say "venus:scanout shown $(sed -n 's/^vk-draw: shown //p' "${log}" | head -n 1)"
    ctl_wait || say "venus:scanout: no word from the host within ${step_timeout} s"
  fi
  echo next >&4
  wait "${pid}"
  rc=$?
  exec 4>&-
  ctl_close
  VENUS_KEEP_RE='^vk-draw' venus_report scanout "${t0}" "${rc}" || return 1
  say "venus:scanout $(grep -E '^vk-draw scanout ok' "${log}" | tail -n 1)"
}

# The `hostile` step: venus-hostile, and with the guest module vgpu_hostile_map (virgl.sh puts it in the
# initramfs for this kernel) its round of hostile MAP_BLOB offsets and an unref while mapped, which the
# guest's own driver sends: `venus:hostile ok ...; offsets ok refused=4 ...; kernel: map errors N, unmap errors M`
# (the kernel's error lines are rate limited: a lower bound).
venus_hostile() {
  local ko="${E}/vgpu_hostile_map.ko" params=/sys/module/vgpu_hostile_map/parameters rc=0 errs
  local -a offsets=()
  if [[ -r "${ko}" ]]; then
    if ! "${bb}" insmod "${ko}" >/tmp/insmod.log 2>&1; then
      say "venus:hostile FAIL insmod vgpu_hostile_map: $(tr '\n' ' ' </tmp/insmod.log) $(dmesg | grep -a vgpu_hostile_map | tail -n 1)"
      return 1
    fi
    offsets=(--offsets "${params}")
  fi
  VENUS_KEEP_RE='venus-hostile' venus_run hostile "${step_timeout}" "${E}/venus-hostile" --files 20 "${offsets[@]}" || rc=1
  [[ -z "${offsets[*]}" ]] || "${bb}" rmmod vgpu_hostile_map || say "venus:hostile: rmmod vgpu_hostile_map failed"
  grep -q '^VGPU-E2E: venus-hostile ok' /tmp/venus-hostile.log || rc=1
  if [[ -n "${offsets[*]}" ]] && ! grep -q '^VGPU-E2E: venus-hostile offsets ok' /tmp/venus-hostile.log; then
    say "venus:hostile FAIL no hostile offsets round: $(grep -a 'venus-hostile FAIL' /tmp/venus-hostile.log | tail -n 1)"
    rc=1
  fi
  ((rc == 0)) || return 1
  errs="kernel: map errors $(dmesg | grep -ac '(command 0x208)'), unmap errors $(dmesg | grep -ac '(command 0x209)')"
  say "venus:hostile $(sed -n 's/^VGPU-E2E: venus-hostile //p' /tmp/venus-hostile.log | tail -n 1)${offsets[*]:+; $(sed -n 's/^VGPU-E2E: venus-hostile //p' /tmp/venus-hostile.log | grep '^offsets ok')}; ${errs}"
}

case_venus() {
  local icd=/usr/share/vulkan/icd.d/virtio_icd.json tests=/usr/libexec/x86_64-linux-gnu/llama.cpp-tests
  local -a failed=()
  [[ -r "${icd}" ]] || {
    say "venus FAIL ${icd} is missing (package mesa-vulkan-drivers)"
    return 1
  }
  # The Venus ICD and nothing else: with lavapipe visible, a broken Venus would fall back to it silently.
  export VK_DRIVER_FILES="${icd}"
  # ggml skips CPU-type Vulkan devices and Venus on lavapipe reports one: name the device. Cooperative matrices
  # off (see above).
  export GGML_VK_VISIBLE_DEVICES=0 GGML_VK_DISABLE_COOPMAT=1 GGML_VK_DISABLE_COOPMAT2=1
  # Mesa's Venus driver says why it gave up (VN_DEBUG=init,result) when asked (vgpu_e2e.vn_debug=...).
  [[ -z "${vn_debug}" ]] || export VN_DEBUG="${vn_debug}"
  if [[ ",${venus_steps}," == *,vulkaninfo,* ]]; then
    local name driver api
    if VENUS_KEEP_RE='deviceName|driverID|apiVersion|driverInfo' venus_run vulkaninfo "${step_timeout}" \
      vulkaninfo --summary; then
      name="$(sed -nE 's/^[[:space:]]*deviceName[[:space:]]*= *//p' /tmp/venus-vulkaninfo.log | head -n 1)"
      driver="$(sed -nE 's/^[[:space:]]*driverID[[:space:]]*= *//p' /tmp/venus-vulkaninfo.log | head -n 1)"
      api="$(sed -nE 's/^[[:space:]]*apiVersion[[:space:]]*= *//p' /tmp/venus-vulkaninfo.log | head -n 1)"
      say "venus:vulkaninfo device=\"${name}\" driver=${driver} api=${api}"
      [[ "${name}" == *Venus* && "${driver}" == DRIVER_ID_MESA_VENUS* ]] || failed+=(vulkaninfo)
    else
      failed+=(vulkaninfo)
    fi
  fi
  if [[ ",${venus_steps}," == *,draw,* ]]; then
    if venus_run draw "${step_timeout}" "${E}/vk-draw"; then
      say "venus:draw $(grep -E '^vk-draw ok' /tmp/venus-draw.log | tail -n 1)"
    else
      failed+=(draw)
    fi
  fi
  [[ ",${venus_steps}," != *,scanout,* ]] || venus_scanout || failed+=(scanout)
  # A misbehaving Venus client (more contexts than the backend's cap, blobs of objects that do not exist, their
  # maps and mmaps, files closed with blobs open): errors expected, no hang; ggml and the LLM run after it.
  if [[ ",${venus_steps}," == *,hostile,* ]]; then
    venus_hostile || failed+=(hostile)
  fi
  if [[ ",${venus_steps}," == *,ggml,* ]]; then
    # Passing means: the Venus device ran the cases (not skipped as absent), and every one of them passed.
    VENUS_KEEP_RE='ggml_vulkan: 0|Device description|tests passed|Backend Vulkan0|backends passed' \
      venus_judged ggml ggml_verdict "${tests}/test-backend-ops" -b Vulkan0 -o "${ggml_ops}" -p "${ggml_params}" ||
      failed+=(ggml)
  fi
  if [[ ",${venus_steps}," == *,llama,* ]]; then
    # Its table has a row per device and model config: the Venus rows must be there and OK against the CPU.
    VENUS_KEEP_RE='ggml_vulkan: 0|Model arch|\|.*llama|Summary' \
      venus_judged llama llama_verdict "${tests}/test-llama-archs" -a '^llama$' -s 42 || failed+=(llama)
  fi
  # bench/venus.sh's step (not a check): the tiny model test-llama-archs writes, timed by llama-bench on the
  # Venus device (-ngl 99) and on the guest's CPU (-ngl 0); its markdown rows come out as venus-out lines.
  if [[ ",${venus_steps}," == *,bench,* ]]; then
    rm -rf /tmp/models && mkdir -p /tmp/models
    if venus_run bench-model "${step_timeout}" "${tests}/test-llama-archs" -a '^llama$' -s 42 -o /tmp/models; then
      local ngl
      for ngl in 99 0; do
        VENUS_KEEP_RE='^\|' venus_run "bench-ngl${ngl}" $((step_timeout * 4)) llama-bench -m /tmp/models/llama-dense.gguf \
          -ngl "${ngl}" -p 64 -n 16 -r 3 -t 1 || failed+=("bench-ngl${ngl}")
      done
    else
      failed+=(bench-model)
    fi
  fi
  if ((${#failed[@]} > 0)); then
    say "venus FAIL ${failed[*]}"
    return 1
  fi
  say "venus ok steps=${venus_steps}"
}

# The `share` case: the program holds its exported buffer until the host has imported it through another device
# (`share:exported ...`, then `next`), frees it, and waits again while the host checks the UUID is withdrawn.
case_share() {
  local log=/tmp/share.log pid rc i
  ctl_open
  rm -f /tmp/share.in
  mkfifo /tmp/share.in
  exec 4<>/tmp/share.in
  timeout -k 10 "${step_timeout}" "${E}/share" --timeout "${step_timeout}" <&4 >"${log}" 2>&1 &
  pid=$!
  for line in exported released; do
    for ((i = 0; i < step_timeout * 10; i++)); do
      grep -q "^share: ${line}" "${log}" && break
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    grep -q "^share: ${line}" "${log}" || break
    say "share:$(sed -n "s/^share: \(${line}.*\)/\1/p" "${log}" | head -n 1)"
    ctl_wait || say "share:${line}: no word from the host within ${step_timeout} s"
    echo next >&4
  done
  wait "${pid}"
  rc=$?
  exec 4>&-
  ctl_close
  sed 's/^/VGPU-E2E: share-log: /' "${log}" | tail -n 5
  if ((rc == 0)) && grep -q '^share ok' "${log}"; then
    say "$(grep '^share ok' "${log}" | head -n 1)"
    return 0
  fi
  say "share FAIL exit status ${rc}: $(grep -E '^share FAIL' "${log}" | head -n 1)"
  return 1
}

for c in ${cases//,/ }; do
  say "case ${c} start (guest uptime $(uptime_s) s)"
  case "${c}" in
    renderer | hostile | draw | kmscube | igt | glmark2 | piglit | venus | share) "case_${c}" ;;
    *) say "${c} FAIL unknown case" ;;
  esac
  say "case ${c} exit $? (guest uptime $(uptime_s) s)"
done
say "done"
if [[ "${hold}" -gt 0 ]] 2>/dev/null; then
  sleep "${hold}"
fi
sync
"${bb}" poweroff -f
echo o >/proc/sysrq-trigger
sleep 10

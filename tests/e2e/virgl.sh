#!/usr/bin/env bash
# End-to-end 3D test: a Debian sid guest with Mesa renders with OpenGL ES through virgl on the vhost-user GPU
# backend under QEMU (TCG); the host checks the GL strings, the pixels of QMP screendumps, kmscube on screen,
# IGT's drm_virtgpu subtests and optionally a glmark2 score.
#
#   virgl.sh ours BINARY            our backend with --virgl: the guest must render with virgl
#   virgl.sh ours-2d BINARY         our backend without --virgl: the guest renders with llvmpipe
#   virgl.sh qemu-c [BINARY]        QEMU's C backend, 2D (llvmpipe in the guest)
#   virgl.sh qemu-c-virgl [BINARY]  QEMU's C backend with --virgl (needs a host render node: dies without one)
#
# The device (VGPU_E2E_DEVICE):
#   gpu      (default) -device vhost-user-gpu-pci: QEMU makes the guest's feature set itself (VIRGL and EDID when
#            the backend offers them, never RESOURCE_BLOB or CONTEXT_INIT) and shows the frames (QMP screendump)
#   generic  QEMU's generic vhost-user device (vhost-user-test-device-pci, QEMU 11.1; 10.0's vhost-user-device-pci
#            is not user-creatable), virtio-id=16,num_vqs=2,config_size=VGPU_E2E_CONFIG_SIZE (16, the size of
#            struct virtio_gpu_config; 24 makes our backend refuse GET_CONFIG and the guest sees 0 scanouts and 0
#            capsets), with a guest kernel that knows IGT's context-init parameters (VGPU_KERNEL_PKG, default
#            linux-image-6.12-amd64 from bookworm-backports: 6.1 refuses DEBUG_NAME with EINVAL); the backend's
#            feature bits and config space reach the guest
#            (the driver's features line must also show VGPU_E2E_FEATURES, for virgl kinds +resource_blob
#            +context_init; igt requires all 11 subtests). It has no display channel (no GPU_SET_SOCKET): our
#            backend keeps its frames in its headless display and QMP screendump never shows them, so `draw` and
#            `kmscube` are ADAPTED for ours/ours-2d: their frames come from the PNG our backend writes on SIGUSR1
#            (--screenshot-dir in the temp dir; ppm_check.py --backend-pid), with the same pixel checks. For the
#            qemu-c kinds they are SKIPPED after their guest-side checks (no frames to read).
# QEMU 11.1 and virglrenderer 1.1 (VGPU_E2E_ROOT=DIR, a root of build-host-root.sh): QEMU (VGPU_QEMU, a name or
# path inside DIR) and, for ours/ours-2d, the backend run inside DIR through in-root.sh (chroot in a private mount
# namespace; the temp dir and $VGPU_CACHE bound at the same paths); BINARY is what build-in-root.sh printed
# (DIR/vgpu/build/vhost-gpu) or its path inside DIR. QEMU's C backend (qemu-c kinds), and ours with
# VGPU_E2E_BACKEND_IN_ROOT=0 (a host-built binary, Debian 12's virglrenderer 0.10.4), run on the host.
#   VGPU_E2E_ROOT="$(tests/e2e/build-host-root.sh)" VGPU_E2E_DEVICE=generic \
#     tests/e2e/virgl.sh ours "$(tests/e2e/build-in-root.sh "${VGPU_E2E_ROOT}")"
#
# Cases (VGPU_E2E_CASES, default "renderer hostile draw kmscube igt" for virgl kinds, "renderer draw kmscube igt"
# for 2D kinds, in this order; glmark2 and piglit on request):
#   renderer  GL_RENDERER (EGL on GBM, GLES 2) matches VGPU_E2E_RENDERER_RE (virgl kinds: 'virgl'; 2D kinds:
#             'llvmpipe|softpipe'); the driver's `[drm] features:` line has +virgl (virgl kinds; -virgl for 2D),
#             and for virgl kinds `number of cap sets:` >= 1 with each `cap set` line listed
#   hostile   guest/3d/hostile.c misbehaves with raw virtgpu ioctls (garbage SUBMIT_3D streams on two contexts, a
#             PRIME-shared texture used and misused from the other context, contexts closed with fenced work in
#             flight); every ioctl and out-fence must return (alarm() per ioctl). Passes on `hostile ok N ioctls,
#             M errors` with the backend alive and no sanitizer report or crash in its log; the `draw` after it
#             shows the device still works. SKIP on a 2D device
#   draw      gl-draw renders frame A (clear, rectangle, triangle), scanout with SETCRTC, then frame B with a
#             page flip; each must match the guest's own glReadPixels and the screendump, every pixel (the
#             mode must be VGPU_E2E_SIZE, 1280x800)
#   kmscube   kmscube runs; screendumps must show at least 16 colours and change (the cube turns)
#   igt       every subtest of IGT's drm_virtgpu (drm-virtgpu-*), each run alone; prints their table. Fails on a
#             FAIL, TIMEOUT or crash unless the subtest is in VGPU_E2E_IGT_ALLOW_FAIL, and when a subtest of
#             VGPU_E2E_IGT_REQUIRE did not pass (defaults below, per kind)
#   glmark2   glmark2-es2-drm on VGPU_E2E_GLMARK2 scenes (comma separated, default
#             "build:duration=3,texture:duration=3"): prints the score; SKIP when the root has no glmark2
#   share     resource sharing across devices (run-3d.sh's case_share, guest/3d/share.c): the guest PRIME-exports a
#             2D buffer with a known pattern, so its driver asks for the resource's UUID (RESOURCE_ASSIGN_UUID);
#             our backend must announce it to QEMU (SHARED_OBJECT_ADD on the backend request channel, which
#             vu_proxy.py records: the case always runs through the proxy). On the generic device (QEMU
#             11.1) a second vhost-user device (vhost-user-test-device-pci, virtio-id 30) whose backend is
#             shared_importer.py looks the UUID up through QEMU (SHARED_OBJECT_LOOKUP; QEMU asks us with
#             GET_SHARED_OBJECT) and must read back exactly the guest's bytes when QEMU passes an fd on; QEMU
#             11.1.3 answers the look-up 0 and drops the fd (its bug, see share_case), which passes only when our
#             backend's GET_SHARED_OBJECT reply carried the fd (recorded by the proxy); after the guest frees the
#             buffer the look-up must fail
#             (SHARED_OBJECT_REMOVE). ours/ours-2d only; on vhost-user-gpu-pci (QEMU 10.0 has no generic
#             device) only the announcement is checked
#   venus     Vulkan through Venus (run-3d.sh's case_venus, on the Venus ICD only): vulkaninfo must name the
#             `Virtio-GPU Venus` device with DRIVER_ID_MESA_VENUS, vk-draw's pixels must all match, its frame
#             shown through a blob scanout (an exported Venus dma-buf on KMS) must be the backend's frame (the
#             SIGUSR1 PNG, pixel by pixel: frames from the backend only), ggml's
#             test-backend-ops (VGPU_E2E_GGML_OPS, default ADD,MUL_MAT; VGPU_E2E_GGML_PARAMS, default the f32
#             cases) and test-llama-archs (a tiny LLM, GPU against CPU) must pass on the Venus device (run-3d.sh
#             checks the device ran them); the driver must print `[drm] Host memory window` and the backend stay
#             alive; venus-hostile (more contexts than the cap, blobs of no object, maps of them) must end
#             without a hang before ggml and the LLM run, and, through the guest module vgpu_hostile_map
#             (build-guest-module.sh), the guest's own driver's MAP_BLOBs at unaligned, outside, wrapping and
#             overlapping offsets must fail, its UNMAP of what was never mapped and its unref of a mapped blob
#             must not harm later maps. Needs the sid backend root and kernel: venus-sid.sh
#             sets them up. VGPU_E2E_VENUS_STEPS picks steps (default vulkaninfo,draw,scanout,hostile,ggml,llama); VGPU_E2E_VENUS_TIMEOUT bounds the case (1800 s);
#             VGPU_E2E_VN_DEBUG sets the guest's VN_DEBUG (Mesa's Venus driver says why it gives up: init,result)
#   piglit    the piglit tests of VGPU_E2E_PIGLIT_LIST (tests/e2e/piglit/tests.txt) through guest/3d/piglit-run.sh,
#             PIGLIT_PLATFORM=gbm, VGPU_E2E_PIGLIT_JOBS programs at a time; writes the per-test results
#             (`result<TAB>seconds<TAB>detail<TAB>name`) to VGPU_E2E_PIGLIT_DIR/results.txt with copies of the
#             console and backend logs and the count of the guest kernel's `response 0x.. (command 0x..)` errors
#             (kernel-errors.txt). Passes when every test ran (test results are piglit.sh's to judge: it compares
#             them with a vtest run), GL_RENDERER matches VGPU_E2E_RENDERER_RE and the backend did not crash
#
# The guest: Debian 12's kernel (fetch-kernel.sh), the busybox initramfs (build-initramfs.sh, plus virtio_blk,
# ext4 and crc32c_generic) and a read-only ext4 disk with Debian sid and Mesa (build-guest-root.sh). The
# initramfs loads the modules, prints the driver's lines, mounts the disk and switch_roots into run-3d.sh
# (guest/3d/), which runs the cases with the same marker protocol as display.sh (`VGPU-E2E: <case>[:<step>] ok`,
# the host answers `next` on the second serial port).
#
# Prints a PASS/FAIL/SKIP table (stdout) with per case its duration in the guest and the time since QEMU
# started, the IGT table, and the times from QEMU's start to switch_root and to the root's first marker;
# exits 0 only when no selected case failed.
#
# Environment:
#   VGPU_E2E_CASES        cases (space or comma separated)
#   VGPU_QEMU             QEMU binary (default qemu-system-x86_64; >= 8)
#   VGPU_E2E_TIMEOUT      seconds from QEMU's start to the root's first marker (default 240)
#   VGPU_E2E_STEP_TIMEOUT seconds for each later marker and screendump check (default 120)
#   VGPU_E2E_IGT_TIMEOUT  seconds for the whole igt case (default 600)
#   VGPU_E2E_SIZE         expected mode (default 1280x800)
#   VGPU_E2E_MEM          guest memory (default 1G)
#   VGPU_E2E_RENDERER_RE  extended regex GL_RENDERER must match (default per kind, see above)
#   VGPU_E2E_IGT_REQUIRE  subtests that must pass, space separated, drm-virtgpu- prefix optional. Default: virgl
#                         kinds getparam get-caps resource-create resource-info map execbuffer 3d-wait
#                         3d-transfer-to-host 3d-transfer-from-host; 2D kinds getparam resource-create
#                         resource-info map 3d-wait 3d-transfer-to-host
#   VGPU_E2E_IGT_ALLOW_FAIL subtests whose FAIL does not fail the case. Default: virgl kinds resource-create-blob
#                         context-init (vhost-user-gpu-pci never offers the guest RESOURCE_BLOB or CONTEXT_INIT);
#                         2D kinds also execbuffer 3d-transfer-from-host get-caps
#   VGPU_E2E_GLMARK2      glmark2 scenes
#   VGPU_E2E_PIGLIT_LIST  piglit: the test list (default tests/e2e/piglit/tests.txt)
#   VGPU_E2E_PIGLIT_JOBS  piglit: programs at a time (default 2)
#   VGPU_E2E_PIGLIT_TEST_TIMEOUT  piglit: seconds per test (default 120)
#   VGPU_E2E_PIGLIT_TIMEOUT  piglit: seconds for the whole case (default 1500)
#   VGPU_E2E_PIGLIT_DIR   piglit: where its results go (default the temp dir: kept with VGPU_KEEP=1)
#   VGPU_E2E_HOSTILE_SEED seed of hostile's random streams (default: the program's fixed seed; the case prints it)
#   VGPU_E2E_ACCEL        tcg (default) or kvm
#   VGPU_E2E_BACKEND_ARGS extra backend arguments (word-split)
#   VGPU_E2E_BACKEND_ENV  extra VAR=VALUE words for the backend's environment (word-split; e.g. LP_NUM_THREADS=1)
#   VGPU_E2E_PROXY        1: put vu_proxy.py between QEMU and the backend and keep its record of the display
#                         and backend request channels (events.jsonl); default 0, but always 1 with the share case
#   VGPU_KEEP=1           keep the temp dir (console, logs, screendumps)
#   VGPU_E2E_DEVICE       gpu (default) or generic, see above
#   VGPU_E2E_ROOT         run QEMU (and our backend) inside this root, see above
#   VGPU_E2E_BACKEND_IN_ROOT=0  with VGPU_E2E_ROOT: our backend runs on the host (BINARY a host binary)
#   VGPU_E2E_CONFIG_SIZE  generic device: its config_size (default 16)
#   VGPU_E2E_FEATURES     tokens the driver's `[drm] features:` line must have besides +virgl/-virgl (default:
#                         generic device with a virgl kind "+resource_blob +context_init", else none)
#   VGPU_E2E_BLOB=0       generic device, virgl kinds: the backend does not offer RESOURCE_BLOB yet: the defaults
#                         become "+context_init", all subtests but resource-create-blob required, and it may fail
set -euo pipefail
# (Over 600 lines on purpose: one boot runs every case, and each case's host-side check lives next to the others;
# the shared machinery is lib.sh's.)
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage_lines=6,9 # sed -n '6,9p': the kinds above
parse_args "" "$@"
kind="${args[0]:-}"
binary="${args[1]:-}"
[[ -n "${kind}" ]] || usage
case "${kind}" in
  ours | qemu-c-virgl) default_cases="renderer hostile draw kmscube igt" ;;
  *) default_cases="renderer draw kmscube igt" ;;
esac
select_cases "renderer hostile draw kmscube igt glmark2 piglit venus share" "${default_cases}"

# --- backend kinds ---------------------------------------------------------------------------------------------
backend_kind "${kind}" "${binary}" "ours ours-2d qemu-c qemu-c-virgl"
binary="${backend_bin}"
declare -a backend_extra=()
virgl=0
if [[ "${kind}" == ours || "${kind}" == qemu-c-virgl ]]; then
  virgl=1
  backend_extra=(--virgl)
fi
device="${VGPU_E2E_DEVICE:-gpu}"
case "${device}" in
  gpu | generic) ;;
  *) die "VGPU_E2E_DEVICE must be gpu or generic, not '${device}'" ;;
esac
# QEMU (and our backend) inside a root of build-host-root.sh: in-root.sh, the paths they use bound in later.
root="${VGPU_E2E_ROOT:-}"
backend_in_root=0
declare -a in_root=()
if [[ -n "${root}" ]]; then
  [[ -d "${root}" ]] || die "VGPU_E2E_ROOT=${root} is not a folder (make one with build-host-root.sh)"
  root="$(cd "${root}" && pwd)"
  in_root=("${E2E_DIR}/in-root.sh" "${root}")
  if [[ ("${kind}" == ours || "${kind}" == ours-2d) && "${VGPU_E2E_BACKEND_IN_ROOT:-1}" == 1 ]]; then
    backend_in_root=1
    binary="${binary#"${root}"}" # a host path below the root: its path inside
    [[ -x "${root}${binary}" ]] || die "backend binary '${binary}' is not in ${root} (build it with build-in-root.sh)"
  fi
fi
((backend_in_root)) || need_backend "${binary}"
# Where draw and kmscube read frames: QMP screendumps (vhost-user-gpu-pci), our backend's SIGUSR1 PNGs (generic
# device: QEMU has no display for it), or nowhere (generic device, QEMU's backend).
frames=qmp
if [[ "${device}" == generic ]]; then
  case "${kind}" in
    ours | ours-2d) frames=backend ;;
    *) frames=none ;;
  esac
fi
# IGT drm_virtgpu subtests (named drm-virtgpu-<name>; the lists may leave the prefix out). vhost-user-gpu-pci
# never passes RESOURCE_BLOB or CONTEXT_INIT to the guest (E2E.md), so those two fail with any backend; a 2D
# device also fails the ones that need a 3D context or a capset (measured with QEMU's C backend).
# The generic device passes the backend's features: with virgl every subtest must pass (resource-create-blob only
# once the backend offers RESOURCE_BLOB, VGPU_E2E_BLOB).
# expect RENDERER_RE FEATURES REQUIRE ALLOW_FAIL: the defaults of VGPU_E2E_RENDERER_RE, VGPU_E2E_FEATURES,
# VGPU_E2E_IGT_REQUIRE and VGPU_E2E_IGT_ALLOW_FAIL for this kind and device.
expect() {
  renderer_re="${VGPU_E2E_RENDERER_RE:-$1}"
  features_req="${VGPU_E2E_FEATURES-$2}"
  igt_require="${VGPU_E2E_IGT_REQUIRE-$3}"
  igt_allow_fail="${VGPU_E2E_IGT_ALLOW_FAIL-$4}"
}
igt_3d="getparam get-caps resource-create resource-info map execbuffer 3d-wait 3d-transfer-to-host 3d-transfer-from-host"
if [[ "${virgl}" == 1 && "${device}" == generic ]]; then
  if [[ "${VGPU_E2E_BLOB:-1}" == 0 ]]; then
    expect virgl "+context_init" "${igt_3d} context-init" "resource-create-blob"
  else
    expect virgl "+resource_blob +context_init" "${igt_3d} context-init resource-create-blob" ""
  fi
elif [[ "${virgl}" == 1 ]]; then
  expect virgl "" "${igt_3d}" "resource-create-blob context-init"
else
  expect 'llvmpipe|softpipe' "" "getparam resource-create resource-info map 3d-wait 3d-transfer-to-host" \
    "execbuffer 3d-transfer-from-host resource-create-blob get-caps context-init"
fi
igt_require=" $(sed -E 's/(^| )drm-virtgpu-/\1/g' <<<"${igt_require}") "
igt_allow_fail=" $(sed -E 's/(^| )drm-virtgpu-/\1/g' <<<"${igt_allow_fail}") "

qemu="${VGPU_QEMU:-qemu-system-x86_64}"
declare -a qemu_probe=()
((${#in_root[@]} == 0)) || qemu_probe=("${in_root[@]}" --)
qver="$(qemu_check_version "${qemu}" 8 "${qemu_probe[@]}")"
# shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
device_args=(-device vhost-user-gpu-pci,chardev=gpu,id=gpu0)
if [[ "${device}" == generic ]]; then
  # `-device help` lists the user-creatable devices: 11.1's vhost-user-test-device-pci; 10.0 has a
  # vhost-user-device-pci, but refuses it on the command line ("expects a pluggable device type").
  generic_name="$("${qemu_probe[@]}" "${qemu}" -device help 2>/dev/null |
    grep -oE '"vhost-user-(test-)?device-pci"' | tr -d '"' | head -n 1 || true)"
  [[ -n "${generic_name}" ]] || die "QEMU ${qver} offers no generic vhost-user device (vhost-user-test-device-pci, QEMU 11.1: VGPU_E2E_ROOT=\"\$(tests/e2e/build-host-root.sh)\")"
  device_args=(-device "${generic_name},chardev=gpu,id=gpu0,virtio-id=16,num_vqs=2,config_size=${VGPU_E2E_CONFIG_SIZE:-16}")
  # IGT's context-init passes VIRTGPU_CONTEXT_PARAM_DEBUG_NAME, which Linux 6.1 refuses (EINVAL): a newer kernel.
  export VGPU_KERNEL_PKG="${VGPU_KERNEL_PKG:-linux-image-6.12-amd64}"
fi
need_cmd python3 timeout setsid head stdbuf grep awk mkfifo
boot_timeout="${VGPU_E2E_TIMEOUT:-240}"
step_timeout="${VGPU_E2E_STEP_TIMEOUT:-120}"
igt_timeout="${VGPU_E2E_IGT_TIMEOUT:-600}"
venus_timeout=0
venus_steps="${VGPU_E2E_VENUS_STEPS:-vulkaninfo,draw,scanout,hostile,ggml,llama}"
[[ " ${cases[*]} " != *" venus "* ]] || venus_timeout="${VGPU_E2E_VENUS_TIMEOUT:-1800}"
size="${VGPU_E2E_SIZE:-1280x800}"
mem="${VGPU_E2E_MEM:-1G}"
use_proxy="${VGPU_E2E_PROXY:-0}"
# The share case's oracle is the protocol: the UUID we announce and the fd we hand QEMU, as vu_proxy.py saw them.
[[ " ${cases[*]} " != *" share "* ]] || use_proxy=1
glmark2_scenes="${VGPU_E2E_GLMARK2:-build:duration=3,texture:duration=3}"
piglit_list="${VGPU_E2E_PIGLIT_LIST:-${E2E_DIR}/piglit/tests.txt}"
piglit_jobs="${VGPU_E2E_PIGLIT_JOBS:-2}"
piglit_test_timeout="${VGPU_E2E_PIGLIT_TEST_TIMEOUT:-120}"
piglit_timeout=0
if [[ " ${cases[*]} " == *" piglit "* ]]; then
  piglit_timeout="${VGPU_E2E_PIGLIT_TIMEOUT:-1500}"
  [[ -r "${piglit_list}" ]] || die "no piglit test list ${piglit_list} (VGPU_E2E_PIGLIT_LIST)"
  [[ "${piglit_jobs}" =~ ^[1-9][0-9]*$ ]] || die "VGPU_E2E_PIGLIT_JOBS must be a positive number"
fi
accel="${VGPU_E2E_ACCEL:-tcg}"
set_accel_args "${accel}"
check_py="${E2E_DIR}/ppm_check.py"
log "backend: ${kind} ${binary}${root:+ (QEMU$( ((backend_in_root)) && echo " and the backend") in ${root})}; QEMU ${qver}, accel ${accel}; device ${device_args[1]%%,*}; frames from ${frames}; cases: ${cases[*]}; expect GL_RENDERER =~ /${renderer_re}/${features_req:+ and features ${features_req}}"

# --- guest kernel, initramfs, root ------------------------------------------------------------------------------
t="$(now_s)"
kernel="$("${E2E_DIR}/fetch-kernel.sh")" || die "fetch-kernel.sh failed"
kernel_root="$("${E2E_DIR}/fetch-kernel.sh" --root 2>/dev/null)" || die "fetch-kernel.sh --root failed"
gl="$("${E2E_DIR}/build-guest-gl.sh")" || die "build-guest-gl.sh failed"
# ext4 needs crc32c through crc32c_generic up to 6.x; 7.x has it in the crc32c library ext4 depends on itself.
modules="virtio_blk ext4"
if find "${kernel_root}/lib/modules" -name 'crc32c_generic.ko*' -print -quit 2>/dev/null | grep -q .; then
  modules="virtio_blk crc32c_generic ext4"
fi
# The venus case's hostile step loads a module into sid's guest kernel (guest/module: hostile MAP_BLOB offsets).
declare -a guest_module=()
if [[ " ${cases[*]} " == *" venus "* && ",${venus_steps}," == *,hostile,* ]]; then
  ko="$("${E2E_DIR}/build-guest-module.sh")" || die "build-guest-module.sh failed"
  guest_module=(--add "${ko}=/vgpu-e2e-root/vgpu_hostile_map.ko")
fi
initrd="$(VGPU_E2E_MODULES="${modules}" "${E2E_DIR}/build-initramfs.sh" "${guest_module[@]}" \
  --add "${gl}/gl-draw=/vgpu-e2e-root/gl-draw" --add "${gl}/hostile=/vgpu-e2e-root/hostile" --add "${gl}/vk-draw=/vgpu-e2e-root/vk-draw" --add "${gl}/venus-hostile=/vgpu-e2e-root/venus-hostile" --add "${gl}/share=/vgpu-e2e-root/share" --add "${E2E_DIR}/guest/3d/run-3d.sh=/vgpu-e2e-root/init" \
  --add "${E2E_DIR}/guest/3d/piglit-run.sh=/vgpu-e2e-root/piglit-run.sh" --add "${piglit_list}=/vgpu-e2e-root/piglit-tests.txt" \
  "${kernel_root}")" || die "build-initramfs.sh failed"
t_root="$(now_s)"
rootimg="$("${E2E_DIR}/build-guest-root.sh")" || die "build-guest-root.sh failed"
t_root="$(secs_since "${t_root}")"
t_prep="$(secs_since "${t}")"

e2e_tmpdir
tmp="${E2E_TMP}"
dir="${tmp}"
console="${dir}/console.log"
piglit_dir="${VGPU_E2E_PIGLIT_DIR:-${dir}/piglit}"
if [[ " ${cases[*]} " == *" piglit "* ]]; then
  mkdir -p -- "${piglit_dir}"
  piglit_dir="$(cd "${piglit_dir}" && pwd)"
  rm -f -- "${piglit_dir}/results.txt" "${piglit_dir}/status.txt"
fi
qmp_sock="${dir}/qmp.sock"
backend_log="${dir}/backend.log"
qemu_log="${dir}/qemu.log"
proxy_log="${dir}/proxy.log"
importer_log="${dir}/importer.log"
importer_events="${dir}/importer.jsonl"
events="${dir}/events.jsonl"
: >"${console}"

# --- results -----------------------------------------------------------------------------------------------------
results_init "${cases[@]}"
declare -A took=()
case_note() { # CASE MESSAGE: append to a case's details
  detail[$1]="${detail[$1]:+${detail[$1]}; }$2"
}

# frame_source: sets frame_args, ppm_check.py's arguments for taking frames (QMP, or our backend's SIGUSR1 PNGs).
declare -a frame_args=()
frame_source() {
  if [[ "${frames}" == backend ]]; then
    local pid
    pid="$(bg_pid "${backend_log}" "$(basename "${binary}")")"
    [[ -n "${pid}" ]] || warn "no process $(basename "${binary}") in the backend's group"
    frame_args=(--backend-pid "${pid:-0}" --backend-log "${backend_log}" --png "${shots}/scanout-0.png")
  else
    frame_args=(--qmp "${qmp_sock}")
  fi
}

# check_frame CASE LABEL WxH DRAW...: poll screendumps until the frame matches.
check_frame() {
  local c="$1" label="$2" sz="$3" out rc msg d
  shift 3
  local -a draws=()
  for d in "$@"; do
    draws+=(--draw "${d}")
  done
  out="${dir}/${label}.ppm"
  rc=0
  frame_source
  msg="$(python3 "${check_py}" poll "${frame_args[@]}" --out "${out}" --timeout "${step_timeout}" \
    --size "${sz}" "${draws[@]}" --save-expected "${dir}/${label}.expected.ppm" 2>&1)" || rc=$?
  if ((rc == 0)); then
    log "${c}: ${label}: ${msg}"
    return 0
  fi
  case_fail "${c}" "${label}: ${msg}"
  return 1
}

# field NAME DETAILS: the value of NAME=... in a marker's details.
field() {
  sed -nE "s/^(.* )?$1=([^ ]*).*/\\2/p" <<<"$2"
}

# guest_uptime REGEX: the guest's uptime printed in the first console line matching REGEX.
guest_uptime() {
  console_line "$1" | sed -nE 's/.*(uptime|after) ([0-9.]+) s.*/\2/p'
}

# piglit_collect: the piglit case's per-test results from the console into piglit_dir/results.txt (the format
# of piglit-run.sh -o); checks the renderer and the backend log.
piglit_collect() {
  local r n expected ran
  r="$(console_line '^VGPU-E2E: piglit:renderer ' | sed 's/^VGPU-E2E: piglit:renderer //')"
  [[ "${r}" =~ ${renderer_re} ]] || case_fail piglit "piglit's GL_RENDERER '${r}' does not match /${renderer_re}/"
  # `piglit:result <index> <result> <seconds> <name>` and `piglit:out <index> (<detail>)`.
  { grep -aE '^VGPU-E2E: piglit:(result|out) ' "${console}" || true; } | tr -d '\r' | awk '
    $2 == "piglit:out" && $4 ~ /^\(/ { d = $0; sub(/^[^(]*\(/, "", d); sub(/\)$/, "", d); detail[$3] = d; next }
    $2 == "piglit:result" { n++; idx[n] = $3; res[n] = $4; secs[n] = $5; name = $0
      for (i = 1; i <= 5; i++) sub(/^[^ ]+ /, "", name); nm[n] = name }
    END { for (i = 1; i <= n; i++) printf "%s\t%s\t%s\t%s\n", res[i], secs[i], detail[idx[i]], nm[i] }
  ' >"${piglit_dir}/results.txt"
  ran="$(wc -l <"${piglit_dir}/results.txt")"
  expected="$(grep -cvE '^(#|[[:space:]]*$)' "${piglit_list}")"
  ((ran == expected)) || case_fail piglit "${ran} of ${expected} tests have a result"
  # The guest kernel's virtio-gpu error replies (rate limited by the kernel: a lower bound).
  {
    { grep -aoE 'response 0x[0-9a-f]+ \(command 0x[0-9a-f]+\)' "${console}" || true; } | sort | uniq -c | sort -rn
    n="$({ grep -aoE '[0-9]+ callbacks suppressed' "${console}" || true; } | awk '{ s += $1 } END { print s + 0 }')"
    printf '%7s suppressed by the kernel'"'"'s rate limit (callbacks suppressed)\n' "${n}"
  } >"${piglit_dir}/kernel-errors.txt"
  case_note piglit "${marker}; ${ran}/${expected} results in ${piglit_dir}/results.txt; kernel errors: $(awk '
    / suppressed / { next } { s += $1 } END { print s + 0 }' "${piglit_dir}/kernel-errors.txt")"
  if crash_line "${backend_log}" >/dev/null; then
    case_fail piglit "backend log: $(crash_line "${backend_log}" | cut -c1-200)"
  fi
}

# venus_scanout_check SECS: the venus case's scanout step, from the host. vk-draw shows its W x H frame (blue;
# red at W/8,H/8 W/4 x H/4; green at W/2,H/4 W/3 x H/2, as vk-draw.c draws it) through a blob scanout; the
# backend's frame must be exactly that. The guest goes on when told `next` (or after its own timeout).
venus_scanout_check() {
  local secs="$1" shown w h
  wait_for_line "${console}" '^VGPU-E2E: (venus:scanout shown |venus FAIL|case venus exit|FAIL|done)' "${secs}" \
    "${qemu_log}" || true
  shown="$(console_line '^VGPU-E2E: venus:scanout shown ' | sed 's/^VGPU-E2E: venus:scanout shown //')"
  if [[ -z "${shown}" ]]; then
    case_fail venus "scanout: the guest never showed its Vulkan frame ($(grep -aE '^VGPU-E2E: venus-log: scanout' "${console}" | tail -n 3 | sed 's/^VGPU-E2E: venus-log: //' | tr '\n' '|' | cut -c1-300))"
    return 0
  fi
  w="${shown%%x*}" h="${shown#*x}" h="${h%% *}"
  if [[ "${frames}" != backend ]]; then
    case_fail venus "scanout: no frames to check (the venus case needs our backend's PNGs)"
  else
    check_frame venus vk-scanout "${w}x${h}" "fill:0,0,${w},${h}:0000ff" \
      "fill:$((w / 8)),$((h / 8)),$((w / 4)),$((h / 4)):ff0000" "fill:$((w / 2)),$((h / 4)),$((w / 3)),$((h / 2)):00ff00" &&
      log "venus: scanout ${shown}: the backend's frame matches"
  fi
  next_step
}

# importer_lookup UUID SIZE: one SHARED_OBJECT_LOOKUP by shared_importer.py; prints its JSON result line.
importer_lookup() {
  local n i
  n="$(grep -c '"event": "lookup"' "${importer_events}" 2>/dev/null || true)"
  printf 'lookup %s %s\n' "$1" "$2" >&"${importer_fd}"
  for ((i = 0; i < 150; i++)); do
    (($(grep -c '"event": "lookup"' "${importer_events}" 2>/dev/null || echo 0) > ${n:-0})) && break
    sleep 0.1
  done
  { grep '"event": "lookup"' "${importer_events}" 2>/dev/null || true; } | tail -n 1
}

# share_case SECS: the host half of the share case (see the header).
share_case() {
  local secs="$1" shown uuid size res i
  wait_for_line "${console}" '^VGPU-E2E: (share:exported |share FAIL|case share exit|FAIL|done)' "${secs}" "${qemu_log}" || true
  shown="$(console_line '^VGPU-E2E: share:exported ' | sed 's/^VGPU-E2E: share:exported //')"
  if [[ -z "${shown}" ]]; then
    case_fail share "the guest never exported its buffer ($(console_line '^VGPU-E2E: share' | cut -c1-200))"
    return 0
  fi
  size="${shown##* size }"
  size="${size%%[^0-9]*}"
  # The UUID the guest got, as our backend announced it to QEMU: the first SHARED_OBJECT_ADD on the backend
  # request channel (the guest exports one buffer).
  for ((i = 0; i < 50; i++)); do
    uuid="$(grep -aoE '"req": "SHARED_OBJECT_ADD", "uuid": "[0-9a-f-]{36}"' "${events}" | head -n 1 | grep -oE '[0-9a-f-]{36}')"
    [[ -z "${uuid}" ]] || break
    sleep 0.1
  done
  if [[ -z "${uuid}" ]]; then
    case_fail share "the backend sent QEMU no SHARED_OBJECT_ADD for the guest's PRIME export (backend request channel: $(grep -a '"dir": "backend-req"' "${events}" | head -n 3 | tr '\n' '|' | cut -c1-300); log: $(grep -aE 'RESOURCE_ASSIGN_UUID|not offered to other devices|SHARED_OBJECT' "${backend_log}" | head -n 2 | tr '\n' '|' | cut -c1-300))"
  elif ((use_importer == 0)); then
    case_note share "exported ${shown}; announced ${uuid}; no importing device on ${device_args[1]%%,*} (QEMU ${qver})"
  else
    res="$(importer_lookup "${uuid}" "${size}")"
    log "share: look-up of ${uuid} by the second device: ${res}"
    if [[ "${res}" == *'"fd": true'* ]]; then
      if [[ "${res}" == *'"match": true'* ]]; then
        case_note share "exported ${shown}; ${uuid} imported by a second device through QEMU ${qver}, ${size} bytes identical"
      else
        case_fail share "the second device imported ${uuid} but its bytes differ from the guest's: ${res}"
      fi
    elif [[ "${res}" == *'"reply": 0,'* ]] && grep -aq '"dir": "vu-reply", "req": "GET_SHARED_OBJECT", "fds": 1,' "${events}"; then
      # QEMU 11.1.3 asked us (GET_SHARED_OBJECT, without the UUID: one bug), got the fd and answered the importer
      # 0 without it: vhost_user_backend_handle_shared_object_lookup hands the fd to the importer's main chardev
      # (qemu_chr_fe_set_msgfds) instead of the reply on the backend channel, and QEMU's next write there sets
      # its own fds (none), which drops it. Measured: with the importer started (virtio-rng) and the VM stopped
      # after the look-up, GET_VRING_BASE came without it. No fd can reach the importer: what is ours is checked.
      case_note share "exported ${shown}; ${uuid}: QEMU ${qver} took the buffer's fd from us (GET_SHARED_OBJECT) and answered the second device 0 without it (QEMU bug: the fd goes to that device's chardev, not the reply, and is dropped)"
    else
      case_fail share "the second device's look-up of ${uuid} through QEMU failed: ${res:-no answer from shared_importer.py}; our GET_SHARED_OBJECT replies: $(grep -a '"req": "GET_SHARED_OBJECT"' "${events}" | head -n 2 | tr '\n' '|' | cut -c1-300)"
    fi
  fi
  next_step
  wait_for_line "${console}" '^VGPU-E2E: (share:released|share FAIL|case share exit|FAIL|done)' "${step_timeout}" "${qemu_log}" || true
  if [[ -n "$(console_line '^VGPU-E2E: share:released')" && -n "${uuid}" && "${use_importer}" == 1 ]]; then
    # RESOURCE_UNREF comes from the guest's worker soon after the free: look until the UUID is gone (5 s).
    for ((i = 0; i < 10; i++)); do
      res="$(importer_lookup "${uuid}" 0)"
      [[ "${res}" == *'"fd": true'* ]] || break
      sleep 0.5
    done
    if [[ "${res}" == *'"fd": true'* ]]; then
      case_fail share "${uuid} can still be imported after the guest freed its buffer: ${res}"
    else
      log "share: after the free, the look-up of ${uuid} fails: ${res}"
      case_note share "withdrawn on free (look-up reply $(sed -nE 's/.*"reply": (-?[0-9]+).*/\1/p' <<<"${res}"))"
    fi
  fi
  next_step
  local rc=0
  wait_marker share "" "${step_timeout}" || rc=$?
  ((rc == 0)) || case_fail share "guest: ${marker}"
  bg_running "${backend_log}" || case_fail share "the backend ended (exit status $(bg_rc "${backend_log}"))"
}

declare -a igt_rows=()
run_case() {
  local c="$1" w rc rb first_wait="$2"
  result[${c}]=RUNNING
  case "${c}" in
    renderer)
      rc=0
      wait_marker renderer "" "${first_wait}" || rc=$?
      if ((rc == 0)); then
        local r="${marker}" feats capsets ncap egl gls
        egl="$(console_line '^VGPU-E2E: renderer:egl ' | sed 's/^VGPU-E2E: renderer:egl //')"
        gls="$(console_line '^VGPU-E2E: renderer:gl ' | sed 's/^VGPU-E2E: renderer:gl //')"
        feats="$({ grep -aE '\[drm\] features:' "${console}" || true; } |
          sed -E 's/.*\[drm\] features: *//; s/\r$//' | sort -u | tr '\n' ' ')"
        ncap="$({ grep -aE '\[drm\] number of cap sets:' "${console}" || true; } | head -n 1 |
          sed -E 's/.*cap sets: *([0-9]+).*/\1/')"
        capsets="$({ grep -aE '\[drm\] cap set [0-9]+:' "${console}" || true; } |
          sed -E 's/.*\[drm\] cap set //; s/\r$//' | sort -u | tr '\n' ';')"
        log "renderer: GL_RENDERER '${r}'; ${gls}; EGL ${egl}"
        log "renderer: driver features: ${feats:-none}; cap sets: ${ncap:-?} ${capsets}"
        detail[renderer]="GL_RENDERER=${r}; features ${feats:-none}; cap sets ${ncap:-?}${capsets:+ (${capsets%;})}"
        [[ "${r}" =~ ${renderer_re} ]] || case_fail renderer "GL_RENDERER '${r}' does not match /${renderer_re}/"
        if [[ "${virgl}" == 1 ]]; then
          [[ "${feats}" == *+virgl* ]] || case_fail renderer "the driver did not see virgl: features ${feats:-none}"
          [[ "${ncap:-0}" -ge 1 ]] || case_fail renderer "the driver lists no cap sets (number of cap sets: ${ncap:-none})"
        elif [[ -n "${feats}" && "${feats}" != *-virgl* ]]; then
          case_fail renderer "2D backend, but the driver sees virgl: ${feats}"
        fi
        local tok
        for tok in ${features_req}; do
          [[ " ${feats} " == *" ${tok} "* ]] || case_fail renderer "the driver's features lack ${tok}: ${feats:-none}"
        done
      else
        case_marker_failed renderer "${rc}"
      fi
      ;;
    venus)
      rc=0
      [[ ",${venus_steps}," != *,scanout,* ]] || venus_scanout_check "$((first_wait + venus_timeout))"
      wait_marker venus "" "$((first_wait + venus_timeout))" || rc=$?
      local vk draw ggml llama window
      vk="$(console_line '^VGPU-E2E: venus:vulkaninfo ' | sed 's/^VGPU-E2E: venus:vulkaninfo //')"
      draw="$(console_line '^VGPU-E2E: venus:draw ' | sed 's/^VGPU-E2E: venus:draw //')"
      local hostile
      hostile="$(console_line '^VGPU-E2E: venus:hostile ' | sed 's/^VGPU-E2E: venus:hostile //')"
      ggml="$(console_line '^VGPU-E2E: venus:ggml ' | sed 's/^VGPU-E2E: venus:ggml //')"
      llama="$(console_line '^VGPU-E2E: venus:llama ' | sed 's/^VGPU-E2E: venus:llama //')"
      window="$({ grep -aE '\[drm\] Host memory window' "${console}" || true; } | head -n 1 | sed -E 's/.*\[drm\] //; s/\r$//')"
      detail[venus]="${vk:-no vulkaninfo}; ${window:-no host memory window}${hostile:+; hostile: ${hostile}}"
      case_note venus "$(grep -aE '^VGPU-E2E: venus:[a-z]+:time ' "${console}" | sed -E 's/^VGPU-E2E: venus:([a-z]+):time ([0-9.]+) s.*/\1 \2s/' | tr '\n' ' ')"
      log "venus: ${vk}; draw: ${draw:-none}; ggml: ${ggml:-none}; llama: ${llama:-none}; ${window:-no host memory window}"
      if ((rc == 3)); then
        result[venus]=SKIP
        detail[venus]="${marker}"
      elif ((rc != 0)); then
        case_fail venus "guest: ${marker}; $(grep -aE '^VGPU-E2E: venus-log: ' "${console}" | tail -n 4 | sed 's/^VGPU-E2E: venus-log: //' | tr '\n' '|' | cut -c1-400)"
      fi
      [[ -n "${window}" ]] || case_fail venus "the driver printed no '[drm] Host memory window' (no host-visible region)"
      [[ "${vk}" == *'Virtio-GPU Venus'*DRIVER_ID_MESA_VENUS* || " ${VGPU_E2E_VENUS_STEPS:-vulkaninfo} " != *vulkaninfo* ]] ||
        case_fail venus "vulkaninfo shows no Venus device: ${vk:-nothing}"
      bg_running "${backend_log}" || case_fail venus "the backend ended (exit status $(bg_rc "${backend_log}"))"
      if crash_line "${backend_log}" >/dev/null; then
        case_fail venus "backend log: $(crash_line "${backend_log}" | cut -c1-200)"
      fi
      ;;
    hostile)
      rc=0
      wait_marker hostile "" "${first_wait}" || rc=$?
      if ((rc == 0)); then
        case_note hostile "${marker}; $(console_line '^VGPU-E2E: hostile:sanity ' | sed 's/^VGPU-E2E: hostile://')"
        sleep 0.5 # let a crash the last commands caused show
        if ! bg_running "${backend_log}"; then
          case_fail hostile "the backend ended (exit status $(bg_rc "${backend_log}")) after the hostile program"
        fi
        # Its PRIME share of a texture makes Linux ask for the buffer's UUID (VIRTIO_GPU_F_RESOURCE_UUID).
        if [[ "${kind}" == ours ]]; then
          if grep -aq 'RESOURCE_ASSIGN_UUID [0-9]*: [0-9a-f-]\{36\}' "${backend_log}"; then
            log "hostile: the guest's PRIME export got a UUID: $(grep -ao 'RESOURCE_ASSIGN_UUID [0-9]*: [0-9a-f-]*' "${backend_log}" | head -n 1)"
          else
            case_fail hostile "the guest's PRIME export sent no RESOURCE_ASSIGN_UUID (VIRTIO_GPU_F_RESOURCE_UUID not passed?)"
          fi
        fi
      else
        case_marker_failed hostile "${rc}"
      fi
      if crash_line "${backend_log}" >/dev/null; then
        case_fail hostile "backend log: $(crash_line "${backend_log}" | cut -c1-200)"
      fi
      ;;
    draw)
      rc=0
      wait_marker draw base "${first_wait}" || rc=$?
      if ((rc == 0)); then
        w="${marker%% *}"
        rb="$(field readback "${marker}")"
        [[ "${w}" == "${size}" ]] || case_fail draw "the mode is ${w}, expected ${size}"
        [[ "${rb}" == ok ]] || case_fail draw "frame A: the guest's glReadPixels differs: ${rb}"
        [[ "${frames}" == none ]] || check_frame draw draw-a "${w}" gl-a || true
        next_step
        rc=0
        wait_marker draw "" "${step_timeout}" || rc=$?
        if ((rc == 0)); then
          w="${marker%% *}"
          rb="$(field readback "${marker}")"
          [[ "${rb}" == ok ]] || case_fail draw "frame B: the guest's glReadPixels differs: ${rb}"
          [[ "${frames}" == none ]] || check_frame draw draw-b "${w}" gl-b || true
          case_note draw "${w}, readback ok, frame B by $(field flip "${marker}"), renderer $(sed -nE 's/.* renderer=//p' <<<"${marker}")"
          next_step
        else
          case_fail draw "guest: ${marker}"
        fi
      else
        case_fail draw "guest: ${marker}"
      fi
      ;;
    kmscube)
      rc=0
      wait_marker kmscube running "${first_wait}" || rc=$?
      if ((rc == 0)); then
        local out
        rc=0
        if [[ "${frames}" != none ]]; then
          frame_source
          out="$(python3 "${check_py}" busy "${frame_args[@]}" --out "${dir}/kmscube.ppm" --size "${size}" \
            --min-colours 16 --timeout "${step_timeout}" 2>&1)" || rc=$?
        fi
        if [[ "${frames}" == none ]]; then
          :
        elif ((rc == 0)); then
          log "kmscube: ${out}"
          case_note kmscube "$(sed -nE 's/.* renderer=//p' <<<"${marker}"); ${out#*: }"
        else
          case_fail kmscube "screendumps: ${out}"
        fi
        next_step
        rc=0
        wait_marker kmscube "" "${step_timeout}" || rc=$?
        ((rc == 0)) || case_fail kmscube "guest: ${marker}"
      else
        case_marker_failed kmscube "${rc}"
      fi
      ;;
    igt)
      rc=0
      wait_marker igt "" "$((first_wait > igt_timeout ? first_wait : igt_timeout))" || rc=$?
      if ((rc == 0 || rc == 1 || rc == 2)); then
        local line s res reason
        local -A seen=()
        while IFS= read -r line; do
          line="${line%$'\r'}"
          line="${line#VGPU-E2E: igt:}"
          s="${line%% *}"
          line="${line#* }"
          res="${line%% *}"
          reason="${line#"${res}"}"
          reason="${reason# }"
          [[ "${s}" != list ]] || continue
          s="${s#drm-virtgpu-}"
          local expect=""
          [[ "${igt_require}" != *" ${s} "* ]] || expect="required"
          [[ "${igt_allow_fail}" != *" ${s} "* ]] || expect="may fail"
          igt_rows+=("$(printf '%-22s %-8s %-9s %s' "${s}" "${res}" "${expect:--}" "${reason}")")
          seen[${s}]="${res}"
          if [[ "${res}" != SUCCESS && "${res}" != SKIP && "${igt_allow_fail}" != *" ${s} "* ]]; then
            case_fail igt "${s}: ${res} ${reason}"
          fi
        done < <(grep -aE '^VGPU-E2E: igt:[a-z0-9-]+ ' "${console}" || true)
        for s in ${igt_require}; do
          [[ "${seen[${s}]:-}" == SUCCESS ]] || case_fail igt "${s} must pass, got ${seen[${s}]:-no result}"
        done
        if ((rc == 0)); then
          case_note igt "${marker}"
        else
          case_fail igt "guest: ${marker}"
        fi
      else
        case_marker_failed igt "${rc}"
      fi
      ;;
    glmark2)
      rc=0
      local bpid qpid b0="" q0="" t0=""
      bpid="$(bg_pid "${backend_log}" "$(basename "${binary}")")"
      qpid="$(bg_pid "${qemu_log}" qemu-system-x86_64)"
      if wait_marker glmark2 start "$((first_wait + step_timeout))"; then
        b0="$(proc_cpu_s "${bpid}")"
        q0="$(proc_cpu_s "${qpid}")"
        t0="$(now_s)"
      fi
      wait_marker glmark2 "" "$((first_wait + 3 * step_timeout))" || rc=$?
      if ((rc == 0)); then
        case_note glmark2 "${marker}"
        # Host CPU per frame: the processes' CPU seconds over the run / the frames glmark2 drew (FPS x duration
        # of each scene, in the order the scenes ran).
        local frames b1 q1
        b1="$(proc_cpu_s "${bpid}")"
        q1="$(proc_cpu_s "${qpid}")"
        frames="$({ grep -aE '^VGPU-E2E: glmark2-log: .*FPS: *[0-9]' "${console}" || true; } | sed -nE 's/.*FPS: *([0-9.]+).*/\1/p' |
          awk -v scenes="${glmark2_scenes}" 'BEGIN { n = split(scenes, s, ","); for (i = 1; i <= n; i++) {
              d[i] = 10; if (match(s[i], /duration=[0-9.]+/)) d[i] = substr(s[i], RSTART + 9, RLENGTH - 9) + 0 } }
            { f += $1 * (NR in d ? d[NR] : 10) } END { printf "%d", f }')"
        if [[ -n "${b0}" && -n "${b1}" && "${frames:-0}" -gt 0 ]]; then
          local per
          per="$(awk -v b="$(awk -v x="${b1}" -v y="${b0}" 'BEGIN { print x - y }')" \
            -v q="$(awk -v x="${q1:-0}" -v y="${q0:-0}" 'BEGIN { print x - y }')" -v f="${frames}" \
            -v w="$(secs_since "${t0}")" 'BEGIN { printf "host CPU per frame: backend %.2f ms, QEMU %.2f ms (%d frames, %.1f s wall; backend %.2f s, QEMU %.2f s CPU)", b * 1000 / f, q * 1000 / f, f, w, b, q }')"
          log "glmark2: ${per}"
          case_note glmark2 "${per}"
        fi
      else
        case_marker_failed glmark2 "${rc}"
      fi
      ;;
    share) share_case "${first_wait}" ;;
    piglit)
      rc=0
      wait_marker piglit "" "$((first_wait + piglit_timeout))" || rc=$?
      if ((rc == 3)); then
        result[piglit]=SKIP
        detail[piglit]="${marker}"
      else
        ((rc == 0)) || case_fail piglit "guest: ${marker}"
        piglit_collect
      fi
      ;;
  esac
  if [[ "${result[${c}]}" == RUNNING ]]; then
    result[${c}]=PASS
    if [[ "${frames}" == none && (${c} == draw || ${c} == kmscube) ]]; then
      result[${c}]=SKIP
      case_note "${c}" "no frames to check: QEMU has no display for the generic device and only our backend writes PNGs (guest side passed)"
    fi
  fi
  when[${c}]="$(secs_since "${t_qemu}")"
  # The guest's own duration of the case, from its uptime at `case X start` and `case X exit`.
  wait_for_line "${console}" "^VGPU-E2E: case ${c} exit" 10 "${qemu_log}" || true
  local a b
  a="$(guest_uptime "^VGPU-E2E: case ${c} start")"
  b="$(guest_uptime "^VGPU-E2E: case ${c} exit")"
  if [[ -n "${a}" && -n "${b}" ]]; then
    took[${c}]="$(awk -v a="${a}" -v b="${b}" 'BEGIN { printf "%.1f", b - a }')"
  fi
}

# --- boot ----------------------------------------------------------------------------------------------------------
sock="${dir}/gpu.sock"
ctl="${dir}/ctl"
shots="${dir}/shots"
if [[ "${frames}" == backend ]]; then
  mkdir -p "${shots}"
  backend_extra+=(--screenshot-dir "${shots}")
fi
# shellcheck disable=SC2206 # word splitting of the extra arguments is intended
bcmd=("${binary}" --socket-path "${sock}" "${backend_extra[@]}" ${VGPU_E2E_BACKEND_ARGS:-})
# shellcheck disable=SC2206
backend_env+=(${VGPU_E2E_BACKEND_ENV:-})
((backend_in_root == 0)) || bcmd=("${in_root[@]}" --bind "${dir}" -- env "${backend_env[@]}" "${bcmd[@]}")
budget=$((boot_timeout + igt_timeout + piglit_timeout + venus_timeout + (${#cases[@]} * 4 + 2) * step_timeout))
backend_start "" "${budget}" "${sock}" "${use_proxy}" env "${backend_env[@]}" "${bcmd[@]}" ||
  die "the backend or vu_proxy.py did not start"
# The share case's importing device (generic device only: QEMU 10.0 has no user-creatable generic device).
declare -a importer_args=()
use_importer=0
if [[ " ${cases[*]} " == *" share "* && "${device}" == generic && ("${kind}" == ours || "${kind}" == ours-2d) ]]; then
  use_importer=1
  bg_start importer "${importer_log}" 1M $((budget + 45)) \
    python3 "${E2E_DIR}/shared_importer.py" --socket "${dir}/importer.sock" --control "${dir}/importer.ctl" \
    --log "${importer_events}"
  wait_for_socket "${dir}/importer.sock" 15 "${importer_log}" || die "shared_importer.py did not start"
  exec {importer_fd}<>"${dir}/importer.ctl"
  # shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
  importer_args=(-chardev "socket,id=importer,path=${dir}/importer.sock"
    -device "${generic_name},chardev=importer,id=importer0,virtio-id=30,num_vqs=1,config_size=0")
fi
guest_ctl_open "${ctl}"
cases_arg="$(IFS=,; echo "${cases[*]}")"
qemu_base_args "${mem}" "${qemu_sock}" "${ctl}" "${device_args[1]}"
qemu_args+=(
  "${importer_args[@]}"
  -drive "file=${rootimg},if=virtio,format=raw,readonly=on"
  -kernel "${kernel}" -initrd "${initrd}"
  -append "console=ttyS0 panic=-1 quiet vgpu_e2e.root=/dev/vda vgpu_e2e.cases=${cases_arg} vgpu_e2e.step_timeout=$((step_timeout * 3 + 60)) vgpu_e2e.glmark2=${glmark2_scenes} vgpu_e2e.piglit_jobs=${piglit_jobs} vgpu_e2e.piglit_timeout=${piglit_test_timeout} ${VGPU_E2E_GGML_OPS:+ vgpu_e2e.ggml_ops=${VGPU_E2E_GGML_OPS}}${VGPU_E2E_GGML_PARAMS:+ vgpu_e2e.ggml_params=${VGPU_E2E_GGML_PARAMS}} vgpu_e2e.venus_steps=${venus_steps}${VGPU_E2E_VN_DEBUG:+ vgpu_e2e.vn_debug=${VGPU_E2E_VN_DEBUG}}${VGPU_E2E_HOSTILE_SEED:+ vgpu_e2e.hostile_seed=${VGPU_E2E_HOSTILE_SEED}} vgpu_e2e.hold=$((budget + 30))"
)
t_qemu="$(now_s)"
qcmd=("${qemu}")
((${#in_root[@]} == 0)) || qcmd=("${in_root[@]}" --bind "${dir}" --ro-bind "${VGPU_CACHE}" -- "${qemu}")
bg_start qemu "${qemu_log}" 5M "${budget}" "${qcmd[@]}" "${qemu_args[@]}"

# Boot milestones, seen from the host.
t_switch="" t_rootok=""
rc=0
wait_for_line "${console}" '^VGPU-E2E: (switch_root|FAIL)' "${boot_timeout}" "${qemu_log}" || rc=$?
if grep -aqE '^VGPU-E2E: switch_root' "${console}"; then
  t_switch="$(secs_since "${t_qemu}")"
  log "switch_root ${t_switch}s after QEMU started (guest uptime $(guest_uptime '^VGPU-E2E: switch_root') s)"
  wait_for_line "${console}" '^VGPU-E2E: root ok' "${boot_timeout}" "${qemu_log}" || true
  if grep -aqE '^VGPU-E2E: root ok' "${console}"; then
    t_rootok="$(secs_since "${t_qemu}")"
    log "root: $(console_line '^VGPU-E2E: root ok' | sed 's/^VGPU-E2E: root ok //') (${t_rootok}s after QEMU started)"
  fi
fi

if [[ -z "${t_rootok}" ]]; then
  for c in "${cases[@]}"; do
    case_fail "${c}" "not run: the guest never reached its root ($(console_line '^VGPU-E2E: .*FAIL' | sed 's/^VGPU-E2E: //')$(boot_alive || echo " QEMU or the backend ended"))"
  done
else
  first_wait="${boot_timeout}"
  for c in "${cases[@]}"; do
    if ! boot_alive; then
      case_fail "${c}" "not run: $(boot_ended)"
      continue
    fi
    log "case ${c}"
    run_case "${c}" "${first_wait}"
    log "case ${c}: ${result[${c}]} (${when[${c}]}s after QEMU started)"
    first_wait="${step_timeout}"
  done
  if boot_alive; then
    wait_for_line "${console}" '^VGPU-E2E: done' 30 "${qemu_log}" || warn "guest did not reach 'VGPU-E2E: done'"
  fi
fi

# Wrap up: the backend must have survived, without a crash; QEMU quits through QMP.
boot_stop "${use_proxy}"
if ((use_importer)); then
  printf 'quit\n' >&"${importer_fd}" || true
  bg_stop "${importer_log}" 2
  exec {importer_fd}>&-
fi
guest_ctl_close
while IFS= read -r problem; do
  fail_all "${problem}" "${cases[@]}"
done < <(boot_problems "")

# The piglit case's verdict and logs beside its results (piglit.sh reads status.txt).
if [[ " ${cases[*]} " == *" piglit "* ]]; then
  cp -f -- "${console}" "${piglit_dir}/console.log"
  cp -f -- "${backend_log}" "${piglit_dir}/backend.log"
  printf 'result %s\nbackend %s\ndetail %s\n' "${result[piglit]}" \
    "$( ((backend_alive)) && echo "alive at the end" || echo "ended (exit status $(bg_rc "${backend_log}"))")" \
    "${detail[piglit]:-}" >"${piglit_dir}/status.txt"
fi

# --- report ------------------------------------------------------------------------------------------------------
failures=0
for c in "${cases[@]}"; do
  [[ "${result[${c}]}" == PASS || "${result[${c}]}" == SKIP ]] || failures=$((failures + 1))
done
{
  printf '\nvirgl e2e (%s on %s, QEMU %s%s, %s, guest kernel %s; root: %s)\n' "${kind}" "${device_args[1]%%,*}" \
    "${qver}" "${root:+ in ${root}}" "${accel}" "${kernel##*/vmlinuz-}" \
    "$(sed -n 's/^os //p' "$(dirname "${rootimg}")/info.txt" 2>/dev/null), Mesa $(sed -n 's/^package libgl1-mesa-dri //p' "$(dirname "${rootimg}")/info.txt" 2>/dev/null)"
  printf '%-9s %-7s %-9s %-9s %s\n' case result "guest[s]" "at[s]" detail
  for c in "${cases[@]}"; do
    printf '%-9s %-7s %-9s %-9s %s\n' "${c}" "${result[${c}]}" "${took[${c}]:--}" "${when[${c}]:--}" \
      "$(cut -c1-300 <<<"${detail[${c}]:-}")"
  done
  if ((${#igt_rows[@]} > 0)); then
    printf '\nIGT drm_virtgpu (%s)\n' "${kind}"
    printf '%-22s %-8s %-9s %s\n' subtest result expected reason
    printf '%s\n' "${igt_rows[@]}" | cut -c1-260
  fi
  printf 'time: QEMU start to switch_root %s, to the root'"'"'s first marker %s; preparation %ss (root image %ss); total %ss\n' \
    "${t_switch:-never}${t_switch:+s}" "${t_rootok:-never}${t_rootok:+s}" "${t_prep}" "${t_root}" "$(e2e_elapsed)"
  printf '(guest[s]: the case'"'"'s duration by the guest clock; at[s]: seconds from QEMU'"'"'s start to its last check)\n'
} | tee "${tmp}/report.txt"
((failures == 0)) || show_boot_logs ""
finish "${failures}" "VIRGL E2E FAILED (${failures} of ${#cases[@]} cases; backend ${kind})" \
  "VIRGL E2E PASSED (${#cases[@]} cases; backend ${kind})" "console, screendumps, logs"

#!/usr/bin/env bash
# Build the e2e guest's initramfs (gzip'd newc cpio) and print its path.
#
#   build-initramfs.sh [--add SRC=DST]... [KERNEL_ROOT]
#
# KERNEL_ROOT is an unpacked Debian kernel package (default: `fetch-kernel.sh --root`). The image holds
# busybox-static (/bin/busybox), virtio_pci + virtio-gpu and every module they depend on, in load order (read
# from each .ko's .modinfo `depends=`: the package has no modules.dep), and an /init that loads them, prints
# `VGPU-E2E: ...` markers and the kernel's drm/virtio_gpu lines on the serial console, and powers off.
# Kernel command line knobs read by /init: vgpu_e2e.hold=SECONDS (wait before powering off, so the host can
# query QEMU; the host ends the VM earlier with QMP quit), vgpu_e2e.wait=SECONDS (how long to wait for
# /dev/dri/card0, default 30).
# vgpu_e2e.cases=A,B,... (display.sh): after the report, run `/bin/vgpu-draw CASE` for each case in turn
# (vgpu_e2e.step_timeout=SECONDS is passed on as its --timeout), then print `VGPU-E2E: done`.
# vgpu_e2e.root=DEV (virgl.sh): after the report, instead of the cases, wait for the block device DEV (e.g.
# /dev/vda; modules virtio_blk ext4 crc32c_generic), mount it read-only at /newroot, put tmpfs on its /run and
# /tmp, copy the initramfs's /vgpu-e2e-root/ (files added with --add SRC=/vgpu-e2e-root/NAME) and busybox to
# its /run/vgpu-e2e/, move /dev, /proc and /sys into it, print `VGPU-E2E: switch_root ...` and
# `exec switch_root /newroot INIT` (vgpu_e2e.rootinit=INIT, default /run/vgpu-e2e/init).
# --add SRC=DST copies the file SRC into the image at DST (an absolute path; mode kept), e.g. the guest
# programs of build-guest-programs.sh: --add "$dir/vgpu-draw=/bin/vgpu-draw".
# Extra modules (and their dependencies): VGPU_E2E_MODULES="virtio_blk ext4".
# Cached in $VGPU_CACHE/initramfs/ under a hash of this script, busybox, the modules, VGPU_E2E_MODULES and the
# added files (names and bytes).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_cmd python3 cpio gzip sha256sum find sort
busybox="${VGPU_BUSYBOX:-/bin/busybox}"
[[ -x "${busybox}" ]] || die "${busybox} not found: install busybox-static (apt-get install busybox-static)"
if command -v file >/dev/null 2>&1 && ! file -bL "${busybox}" | grep -q 'statically linked'; then
  die "${busybox} is not statically linked: install busybox-static"
fi

declare -a extra=()
while (($# > 0)); do
  case "$1" in
    --add)
      (($# >= 2)) || die "--add needs SRC=DST"
      [[ "$2" == *=/* ]] || die "--add $2: expected SRC=/ABSOLUTE/DST"
      [[ -f "${2%%=*}" ]] || die "--add $2: ${2%%=*} is not a file"
      extra+=("$2")
      shift 2
      ;;
    --add=*)
      set -- --add "${1#--add=}" "${@:2}"
      ;;
    -*) die "unknown option $1 (usage: build-initramfs.sh [--add SRC=DST]... [KERNEL_ROOT])" ;;
    *) break ;;
  esac
done
kroot="${1:-}"
if [[ -z "${kroot}" ]]; then
  kroot="$("${E2E_DIR}/fetch-kernel.sh" --root)"
fi
[[ -d "${kroot}/lib/modules" ]] || die "${kroot} has no lib/modules: not an unpacked kernel package"
mapfile -t releases < <(find "${kroot}/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
((${#releases[@]} == 1)) || die "expected one release under ${kroot}/lib/modules, found: ${releases[*]:-none}"
krel="${releases[0]}"
moddir="${kroot}/lib/modules/${krel}"

roots="virtio_pci virtio-gpu ${VGPU_E2E_MODULES:-}"

t0="$(now_s)"
# Resolve modules: prints "name<TAB>path" in load order (dependencies first); built-in modules are skipped.
resolve_py='
import os, struct, sys

moddir, roots = sys.argv[1], sys.argv[2].split()
norm = lambda n: n.replace("-", "_")
index = {}
for dirpath, _, files in os.walk(os.path.join(moddir, "kernel")):
    for f in files:
        for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
            if f.endswith(ext):
                index[norm(f[: -len(ext)])] = os.path.join(dirpath, f)
builtin = set()
bpath = os.path.join(moddir, "modules.builtin")
if os.path.exists(bpath):
    for line in open(bpath):
        base = os.path.basename(line.strip())
        if base.endswith(".ko"):
            builtin.add(norm(base[:-3]))

def read_ko(path):
    if path.endswith(".xz"):
        import lzma
        return lzma.open(path).read()
    if path.endswith(".gz"):
        import gzip
        return gzip.open(path).read()
    if path.endswith(".zst"):
        import subprocess
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    return open(path, "rb").read()

def modinfo(data, path):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit(f"{path}: not a 64-bit little-endian ELF object")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def sh(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size
    _, stroff, _ = sh(shstrndx)
    for i in range(shnum):
        name, off, size = sh(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] == b".modinfo":
            fields = {}
            for kv in data[off:off + size].split(b"\0"):
                if b"=" in kv:
                    k, v = kv.decode(errors="replace").split("=", 1)
                    fields.setdefault(k, v)
            return fields
    sys.exit(f"{path}: no .modinfo section")

order, state = [], {}
def visit(name, chain):
    name = norm(name)
    if state.get(name) == "done" or name in builtin:
        return
    if state.get(name) == "busy":
        sys.exit("dependency cycle: " + " -> ".join(chain + [name]))
    if name not in index:
        who = chain[-1] if chain else "the request"
        sys.exit(f"module {name} not found under {moddir} (needed by {who})")
    state[name] = "busy"
    info = modinfo(read_ko(index[name]), index[name])
    for dep in filter(None, info.get("depends", "").split(",")):
        visit(dep, chain + [name])
    state[name] = "done"
    order.append(name)

for r in roots:
    visit(r, [])
for n in order:
    print(f"{n}\t{index[n]}")
'
resolved="$(python3 -c "${resolve_py}" "${moddir}" "${roots}")" || die "module resolution failed for: ${roots}"
mapfile -t mods <<<"${resolved}"

# The cache key: this script (it holds /init), busybox, the kernel release, and every module's bytes.
key="$({
  sha256sum "${BASH_SOURCE[0]}" "${busybox}" | cut -d' ' -f1
  printf '%s\n' "${krel}" "${roots}"
  for m in "${mods[@]}"; do
    printf '%s ' "${m%%$'\t'*}"
    sha256sum "${m#*$'\t'}" | cut -d' ' -f1
  done
  for e in "${extra[@]}"; do
    printf '%s %s ' "${e#*=}" "$(stat -c %a -- "${e%%=*}")"
    sha256sum "${e%%=*}" | cut -d' ' -f1
  done
} | sha256sum | cut -c1-16)"
outdir="${VGPU_CACHE}/initramfs"
out="${outdir}/initramfs-${krel}-${key}.cpio.gz"
[[ -s "${out}" ]] || cache_lock initramfs
if [[ -s "${out}" ]]; then
  log "cached: $(basename "${out}") (${#mods[@]} modules, resolved in $(secs_since "${t0}")s)"
  printf '%s\n' "${out}"
  exit 0
fi

log "building $(basename "${out}") with modules: $(printf '%s ' "${mods[@]%%$'\t'*}")"
mkdir -p "${outdir}"
e2e_tmpdir
stage="${E2E_TMP}/stage"
mkdir -p "${stage}"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc/vgpu-e2e,lib/modules}
cp -- "${busybox}" "${stage}/bin/busybox"
if [[ "$(id -u)" == 0 ]]; then
  mknod -m 600 "${stage}/dev/console" c 5 1
fi
: >"${stage}/etc/vgpu-e2e/modules"
for m in "${mods[@]}"; do
  name="${m%%$'\t'*}" src="${m#*$'\t'}"
  case "${src}" in
    *.ko.xz) xz -dc -- "${src}" >"${stage}/lib/modules/${name}.ko" ;;
    *.ko.zst) zstd -qdc -- "${src}" >"${stage}/lib/modules/${name}.ko" ;;
    *.ko.gz) gzip -dc -- "${src}" >"${stage}/lib/modules/${name}.ko" ;;
    *) cp -- "${src}" "${stage}/lib/modules/${name}.ko" ;;
  esac
  printf '%s\n' "${name}" >>"${stage}/etc/vgpu-e2e/modules"
done
for e in "${extra[@]}"; do
  dst="${stage}${e#*=}"
  mkdir -p -- "$(dirname "${dst}")"
  cp -p -- "${e%%=*}" "${dst}"
done

cat >"${stage}/init" <<'INIT'
#!/bin/busybox sh
# vhost-gpu e2e guest init (generated by tests/e2e/build-initramfs.sh)
/bin/busybox mkdir -p /dev /proc /sys /tmp
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys

say() { echo "VGPU-E2E: $*"; }
say "init started, kernel $(uname -r)"

hold=0
wait_s=30
cases=""
step_timeout=300
root_dev=""
root_init=/run/vgpu-e2e/init
for arg in $(cat /proc/cmdline); do
  case "${arg}" in
    vgpu_e2e.hold=*) hold="${arg#*=}" ;;
    vgpu_e2e.wait=*) wait_s="${arg#*=}" ;;
    vgpu_e2e.cases=*) cases="$(echo "${arg#*=}" | tr , ' ')" ;;
    vgpu_e2e.step_timeout=*) step_timeout="${arg#*=}" ;;
    vgpu_e2e.root=*) root_dev="${arg#*=}" ;;
    vgpu_e2e.rootinit=*) root_init="${arg#*=}" ;;
  esac
done

ok=1
while read -r m; do
  if ! insmod "/lib/modules/${m}.ko"; then
    say "FAIL insmod ${m}"
    ok=0
  fi
done </etc/vgpu-e2e/modules
if [ "${ok}" = 1 ]; then say "modules loaded"; fi

i=0
probe_failed=0
while [ ! -e /dev/dri/card0 ] && [ "${i}" -lt $((wait_s * 10)) ]; do
  if [ $((i % 5)) = 4 ] && dmesg | grep -qE 'virtio_gpu: probe of .* failed'; then
    probe_failed=1
    break
  fi
  usleep 100000
  i=$((i + 1))
done
if [ -e /dev/dri/card0 ]; then
  say "card0 present after $((i * 100)) ms"
elif [ "${probe_failed}" = 1 ]; then
  say "FAIL no /dev/dri/card0: $(dmesg | grep -E 'virtio_gpu: probe of .* failed' | head -n 1)"
else
  say "FAIL no /dev/dri/card0 after ${wait_s} s"
fi
# Let the driver finish its probe (display info, EDID, fbdev) before reporting.
usleep 300000

dmesg | grep -iE '\[drm\]|virtio[-_]gpu|virtio_pci|virtio-pci' | sed 's/^/VGPU-E2E: dmesg: /'
for c in /sys/class/drm/card0-*; do
  [ -e "${c}/status" ] || continue
  say "connector ${c##*/card0-} $(cat "${c}/status") modes: $(head -n 3 "${c}/modes" | tr '\n' ' ')"
done
[ -e /dev/fb0 ] && say "fb0 present: $(cat /sys/class/graphics/fb0/name 2>/dev/null)"
if [ -n "${root_dev}" ]; then
  i=0
  while [ ! -b "${root_dev}" ] && [ "${i}" -lt $((wait_s * 10)) ]; do
    usleep 100000
    i=$((i + 1))
  done
  mkdir -p /newroot
  if [ ! -b "${root_dev}" ]; then
    say "FAIL no block device ${root_dev} after ${wait_s} s"
  elif ! mount -t ext4 -o ro "${root_dev}" /newroot; then
    say "FAIL mount -t ext4 -o ro ${root_dev}: $(dmesg | grep -iE 'ext4|EXT4-fs|crc32c' | tail -n 2 | tr '\n' ' ')"
  elif ! mount -t tmpfs -o mode=755 tmpfs /newroot/run || ! mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp; then
    say "FAIL tmpfs on /newroot/run or /newroot/tmp"
  else
    mkdir -p /newroot/run/vgpu-e2e
    [ -d /vgpu-e2e-root ] && cp -a /vgpu-e2e-root/. /newroot/run/vgpu-e2e/
    cp /bin/busybox /newroot/run/vgpu-e2e/busybox
    if [ ! -x "/newroot${root_init}" ]; then
      say "FAIL ${root_init} is not an executable in the new root"
    else
      mount -o move /dev /newroot/dev && mount -o move /proc /newroot/proc && mount -o move /sys /newroot/sys
      say "switch_root to ${root_dev} (${root_init}) after $(cut -d' ' -f1 /newroot/proc/uptime) s"
      exec switch_root /newroot "${root_init}"
    fi
  fi
fi
for c in ${cases}; do
  if [ ! -x /bin/vgpu-draw ]; then
    say "${c} FAIL /bin/vgpu-draw is not in the initramfs"
    continue
  fi
  say "case ${c} start"
  /bin/vgpu-draw "${c}" --timeout "${step_timeout}"
  say "case ${c} exit $?"
done
say "done"
if [ "${hold}" -gt 0 ] 2>/dev/null; then
  sleep "${hold}"
fi
poweroff -f
INIT
chmod 755 "${stage}/init"

(cd "${stage}" && find . -mindepth 1 -print | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
  gzip -6 -n >"${out}.tmp"
mv -- "${out}.tmp" "${out}"
# Keep the 3 newest images (older ones come from earlier versions of this script or of the modules).
find "${outdir}" -maxdepth 1 -name 'initramfs-*.cpio.gz' -printf '%T@ %p\n' | sort -rn | tail -n +4 |
  cut -d' ' -f2- | while read -r old; do rm -f -- "${old}"; done
log "built $(basename "${out}") ($(du -h "${out}" | cut -f1)) in $(secs_since "${t0}")s"
printf '%s\n' "${out}"

#!/usr/bin/env bash
# Run a command inside a Debian root (build-host-root.sh's) with chroot, in a private mount namespace: the
# root gets /proc, /sys, /dev and a fresh tmpfs on /tmp, plus host paths bound at the same path, so file
# names on the command line mean the same inside and out. Nothing is mounted in the host's namespace: the
# mounts end with the command, even when it is killed (no unmount, no trap needed).
#
#   in-root.sh ROOT [--bind PATH]... [--ro-bind PATH]... [--] CMD [ARG...]
#
# PATH may be a folder or a file (a socket's folder, a disk image, a kernel); a path below /tmp lands on the
# root's tmpfs, elsewhere its mount point is created in the root (an empty folder or file, left there).
# The command runs with a clean environment (PATH, HOME=/root, LC_ALL=C.UTF-8; prefix `env VAR=...` for more),
# under the same PID as this script (unshare, chroot and env all exec): a timeout or a signal (SIGUSR1 to our
# backend) reaches the command itself. Needs root and util-linux's unshare.
#
# Example: in-root.sh "$(build-host-root.sh)" --bind /tmp/x -- qemu-system-x86_64 --version
set -euo pipefail

die() {
  printf 'in-root: %s\n' "$*" >&2
  exit 125
}

root="${1:-}"
[[ -n "${root}" ]] || die "usage: in-root.sh ROOT [--bind PATH]... [--ro-bind PATH]... [--] CMD [ARG...]"
shift
root="$(cd "${root}" && pwd)" || die "no root folder ${1:-}"
[[ -x "${root}/usr/bin/env" ]] || die "${root} is not a Debian root (no usr/bin/env)"
declare -a binds=()
while (($# > 0)); do
  case "$1" in
    --bind | --ro-bind)
      (($# >= 2)) || die "$1 needs a PATH"
      [[ "$2" == /* ]] || die "$1 $2: the path must be absolute"
      [[ -e "$2" ]] || die "$1 $2: no such file or folder"
      binds+=("${1#--}" "$2")
      shift 2
      ;;
    --)
      shift
      break
      ;;
    -*) die "unknown option '$1'" ;;
    *) break ;;
  esac
done
(($# > 0)) || die "no command given"
[[ "$(id -u)" == 0 ]] || die "needs root (unshare --mount, chroot)"

# shellcheck disable=SC2016 # expanded by the inner shell, inside the new mount namespace
exec unshare --mount --propagation private -- bash -c '
  set -e
  root="$1" n="$2"
  shift 2
  mount -t proc proc "${root}/proc"
  mount --rbind /sys "${root}/sys"
  mount --rbind /dev "${root}/dev"
  mount -t tmpfs -o mode=1777,size=25% tmpfs "${root}/tmp"
  while ((n > 0)); do
    how="$1" src="$2"
    shift 2
    n=$((n - 1))
    dst="${root}${src}"
    if [[ -d "${src}" ]]; then
      mkdir -p -- "${dst}"
    else
      mkdir -p -- "$(dirname -- "${dst}")"
      [[ -e "${dst}" ]] || : >"${dst}"
    fi
    mount --bind -- "${src}" "${dst}"
    if [[ "${how}" == ro-bind ]]; then
      mount -o remount,bind,ro -- "${dst}"
    fi
  done
  exec chroot "${root}" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LC_ALL=C.UTF-8 "$@"
' in-root "${root}" "$((${#binds[@]} / 2))" "${binds[@]}" "$@"

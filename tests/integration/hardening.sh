#!/usr/bin/env bash
# Checks that a built binary carries the hardening CMakeLists.txt asks for (VGPU_HARDEN), from the ELF itself:
#
#   hardening.sh BINARY
#
#   PIE             ELF type DYN with DT_FLAGS_1 PIE (the whole image is randomised with ASLR)
#   full RELRO      a GNU_RELRO segment and BIND_NOW (every relocation resolved at start, then read-only)
#   NX stack        GNU_STACK without the execute bit
#   stack protector __stack_chk_fail imported (-fstack-protector-strong put canaries in)
#   fortify         at least one __*_chk libc function imported (_FORTIFY_SOURCE replaced calls it could check)
#   CET             main starts with endbr64 (our code is built with -fcf-protection). The binary's own
#                   x86 IBT/SHSTK property note is reported, not required: the linker sets it only when every
#                   object has it, and Debian 12's C start files (Scrt1.o, crti.o, crtn.o) do not.
# Prints one PASS/FAIL line per check; exits 0 only when all pass.
set -euo pipefail

binary="${1:-}"
[[ -n "${binary}" && -f "${binary}" ]] || {
  sed -n '4p' "$0" >&2
  exit 2
}
for tool in readelf objdump; do
  command -v "${tool}" >/dev/null || {
    echo "hardening.sh: ${tool} is missing (Debian package binutils)" >&2
    exit 2
  }
done

failures=0
# check NAME DETAIL COMMAND...: PASS when COMMAND succeeds.
check() {
  local name="$1" detail="$2"
  shift 2
  if "$@"; then
    printf 'PASS  %-16s %s\n' "${name}" "${detail}"
  else
    printf 'FAIL  %-16s %s\n' "${name}" "${detail}"
    failures=$((failures + 1))
  fi
}
matches() { grep -qE "$1" <<<"$2"; }

header="$(readelf -hW "${binary}")"
dynamic="$(readelf -dW "${binary}")"
segments="$(readelf -lW "${binary}")"
imports="$(readelf --dyn-syms -W "${binary}")"
notes="$(readelf -nW "${binary}")"
main_start="$(objdump -d --no-show-raw-insn --disassemble=main "${binary}" | grep -m1 -A1 '<main>:' | tail -n 1)"
stack_flags="$(awk '/GNU_STACK/ { print $(NF - 1) }' <<<"${segments}")"
chk_functions="$(grep -oE '__[a-z0-9_]+_chk' <<<"${imports}" | grep -v '^__stack_chk' | sort -u | tr '\n' ' ' || true)"

pie() { matches 'Type: +DYN' "${header}" && matches 'FLAGS_1.*PIE' "${dynamic}"; }
full_relro() { matches 'GNU_RELRO' "${segments}" && matches '(BIND_NOW|Flags:.* NOW)' "${dynamic}"; }
nx_stack() { [[ -n "${stack_flags}" && "${stack_flags}" != *E* ]]; }

check PIE "$(grep -oE 'Type: +[A-Z]+' <<<"${header}" | tr -s ' '), $(grep -oE 'Flags:.*' <<<"${dynamic}" | head -n 1)" pie
check "full RELRO" "GNU_RELRO segment and BIND_NOW" full_relro
check "NX stack" "GNU_STACK ${stack_flags:-missing}" nx_stack
check "stack protector" "imports __stack_chk_fail" matches '__stack_chk_fail' "${imports}"
check fortify "checked calls: ${chk_functions:-none}" test -n "${chk_functions}"
check CET "main starts with: $(sed -E 's/^ *[0-9a-f]+:\s*//' <<<"${main_start}")" matches 'endbr64' "${main_start}"
if grep -qE 'x86 feature:.*IBT' <<<"${notes}"; then
  echo "note  CET property   the binary is marked IBT/SHSTK"
else
  echo "note  CET property   the binary is not marked IBT/SHSTK (an object without it was linked in, e.g. the C start files)"
fi
((failures == 0))

#!/usr/bin/env bash
# scripts/check-layering.sh [TABLE]: fails when a file under src/ includes a header its folder may not
# (`#include "folder/file.h"`), by the allowed-edges table TABLE (default docs/layers.txt). Prints one line
# per offending include (file:line, what, and what the folder may include) and exits 1; exits 0 when clean.
set -euo pipefail
cd "$(dirname "$0")/.."
table="${1:-docs/layers.txt}"
[[ -f "${table}" ]] || { echo "check-layering: no table ${table}" >&2; exit 2; }

declare -A allowed=()
while IFS= read -r line; do
  line="${line%%#*}"
  [[ "${line}" =~ ^[[:space:]]*$ ]] && continue
  if [[ ! "${line}" =~ ^[[:space:]]*([A-Za-z0-9_/.]+):(.*)$ ]]; then
    echo "check-layering: ${table}: cannot read '${line}' (expected 'folder: allowed ...')" >&2
    exit 2
  fi
  allowed["${BASH_REMATCH[1]}"]="$(xargs <<<"${BASH_REMATCH[2]}")"
done <"${table}"

bad=0
checked=0
while IFS= read -r file; do
  folder="$(dirname "${file#src/}")"
  if [[ -z "${allowed[${folder}]+set}" ]]; then
    echo "${file}: folder '${folder}' has no line in ${table}: add one (its allowed includes)"
    bad=1
    continue
  fi
  read -r -a ok <<<"${allowed[${folder}]}"
  while IFS=: read -r lineno header; do
    checked=$((checked + 1))
    target="$(dirname "${header}")"
    [[ "${target}" == "${folder}" ]] && continue
    pass=0
    for entry in "${ok[@]}"; do
      if [[ "${entry}" == "${target}" || "${entry}" == "${header}" ]]; then
        pass=1
        break
      fi
    done
    if ((pass == 0)); then
      echo "${file}:${lineno}: includes ${header}, but ${folder} may include only: ${allowed[${folder}]:-nothing}" \
        "(and its own headers)"
      bad=1
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "${file}" |
    sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1:\2/')
done < <(find src -type f \( -name '*.cc' -o -name '*.h' \) | LC_ALL=C sort)

if ((checked == 0)); then
  echo "check-layering: no includes found under $(pwd)/src" >&2
  exit 2
fi
if ((bad)); then
  echo "check-layering: includes outside the allowed edges of ${table} (see docs/ARCHITECTURE.md, \"Layers\")" >&2
  exit 1
fi
echo "check-layering: clean (${checked} includes, ${#allowed[@]} folders)"

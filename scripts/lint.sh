#!/usr/bin/env bash
# scripts/lint.sh format          : fail if clang-format would change any C++ file (fix: scripts/lint.sh fix)
# scripts/lint.sh fix             : reformat every C++ file in place
# scripts/lint.sh tidy BUILD_DIR  : clang-tidy (.clang-tidy) on every src/ file, using BUILD_DIR's compile db
# scripts/lint.sh layers          : fail if a src/ folder includes what docs/layers.txt does not allow
set -euo pipefail
cd "$(dirname "$0")/.."

cxx_files() { git ls-files --cached --others --exclude-standard -- '*.cc' '*.h'; }

case "${1:-}" in
  format)
    cxx_files | xargs clang-format --dry-run -Werror
    echo "clang-format: clean"
    ;;
  fix)
    cxx_files | xargs clang-format -i
    ;;
  layers)
    scripts/check-layering.sh
    ;;
  tidy)
    build=${2:?usage: lint.sh tidy BUILD_DIR}
    [ -f "$build/compile_commands.json" ] || { echo "lint: $build/compile_commands.json missing" >&2; exit 1; }
    git ls-files --cached --others --exclude-standard -- 'src/*.cc' |
      xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet
    echo "clang-tidy: clean"
    ;;
  *)
    sed -n '2,5p' "$0" >&2
    exit 2
    ;;
esac

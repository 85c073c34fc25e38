#!/usr/bin/env bash
# Formatting in CI: every tracked C++/CUDA file must be as clang-format-14 writes it (the repo's
# .clang-format). Prints the files that are not and exits 1; `tools/check_format.sh --fix` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
command -v "$CLANG_FORMAT" >/dev/null || { echo "check_format: $CLANG_FORMAT not found (tools/setup.sh installs it)" >&2; exit 1; }
mapfile -t files < <(git ls-files -co --exclude-standard '*.cpp' '*.hpp' '*.cu' '*.cuh' | grep -v '^fuzz/seeds/')
if [ "${1:-}" = "--fix" ]; then
  "$CLANG_FORMAT" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$CLANG_FORMAT" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ from clang-format (run tools/check_format.sh --fix):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check_format: ${#files[@]} C++/CUDA files formatted"

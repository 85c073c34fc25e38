#!/usr/bin/env bash
# The test suite must fail on wrong values, NaN included. One op is broken (ReLU's CPU forward returns NaN),
# the op registry (its runner with the elementwise entries, where ReLU is declared: test_ops_elementwise)
# and the gradient checks are built with it, and both must fail, naming the NaN. A comparison that ignored
# NaN (std::max(diff, NaN) keeps diff) passed here.
#
# Where the suite's build folder exists (BUILD_DIR, default build: CI runs this after tools/test.sh), the
# line is broken in place and only what depends on it is rebuilt there (the compiled CPU backend's
# elementwise unit and the two programs), then the file is restored (a trap, also on failure or Ctrl-C):
# the work tools/test.sh did is not done again. Without a build folder, a copy of the tree is built.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
BUILD=${BUILD_DIR:-build}
t0=$SECONDS
logs=$(mktemp -d)
rel=include/resnet/backend/cpu/elementwise.hpp
if [ -f "$BUILD/CMakeCache.txt" ] && [ -z "${MUTATION_DIR:-}" ]; then
  in_place=1
  work=$(pwd)
  build=$BUILD
  backup="$logs/elementwise.hpp.orig"
  cp -p "$rel" "$backup"
  # Restore the file (its new time stamp makes the next build recompile what it touched) and remove the two
  # broken programs, so that no later ctest run can pick them up before a build.
  trap 'cp "$backup" "$rel" && touch "$rel"; rm -f "$build/tests/test_ops_elementwise" "$build/tests/test_gradcheck"; rm -rf "$logs"' EXIT
else
  in_place=0
  work=${MUTATION_DIR:-$(mktemp -d)}
  build="$work/build"
  trap 'rm -rf "$work" "$logs"' EXIT
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work"
fi
target="$work/$rel"
before='py[i] = load(px[i]) > 0 ? px[i] : T(0);'
after='py[i] = std::numeric_limits<T>::quiet_NaN();'
grep -qF "$before" "$target" || { echo "mutation_check: the ReLU forward line to break is gone from $target" >&2; exit 1; }
BEFORE=$before AFTER=$after perl -pi -e 's/\Q$ENV{BEFORE}\E/$ENV{AFTER}/; s/^#include <cmath>$/#include <cmath>\n#include <limits>/' "$target"
grep -qF "$after" "$target"
if [ "$in_place" = 0 ]; then
  cmake -S "$work" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRESNET_CUDA=OFF -DRESNET_BUILD_EXAMPLES=OFF \
    -DRESNET_BUILD_BENCHMARKS=OFF >/dev/null
fi
cmake --build "$build" --target test_ops_elementwise test_gradcheck -j "$JOBS" >/dev/null
echo "mutation_check: rebuilt with the broken line in $((SECONDS - t0)) s ($([ "$in_place" = 1 ] && echo "in place, in $build" || echo "a copy of the tree"))"
status=0
for t in "test_ops_elementwise [grad],[fast]" "test_gradcheck"; do
  set -- $t
  if "$build/tests/$1" ${2:-} >"$logs/$1.log" 2>&1; then
    echo "mutation_check: FAILED: $1 passed with ReLU returning NaN" >&2
    status=1
  elif ! grep -qiE "nan|not finite" "$logs/$1.log"; then
    echo "mutation_check: FAILED: $1 failed, but without naming the NaN:" >&2
    tail -n 30 "$logs/$1.log" >&2
    status=1
  else
    echo "mutation_check: $1 fails with ReLU returning NaN ($(grep -cE 'FAILED' "$logs/$1.log") failures), as it must"
  fi
done
exit $status

#!/usr/bin/env bash
# The test suite must fail on wrong values, NaN included. A copy of the tree is made with one op broken
# (ReLU's CPU forward returns NaN), the op registry (its runner with the elementwise entries, where ReLU is
# declared: test_ops_elementwise) and the gradient checks are built from it, and both must fail, naming
# the NaN. A comparison that ignored NaN (std::max(diff, NaN) keeps diff) passed here.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
work=${MUTATION_DIR:-$(mktemp -d)}
trap 'rm -rf "$work"' EXIT
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work"
target="$work/include/resnet/backend/cpu/elementwise.hpp"
before='py[i] = load(px[i]) > 0 ? px[i] : T(0);'
after='py[i] = std::numeric_limits<T>::quiet_NaN();'
grep -qF "$before" "$target" || { echo "mutation_check: the ReLU forward line to break is gone from $target" >&2; exit 1; }
BEFORE=$before AFTER=$after perl -pi -e 's/\Q$ENV{BEFORE}\E/$ENV{AFTER}/; s/^#include <cmath>$/#include <cmath>\n#include <limits>/' "$target"
grep -qF "$after" "$target"
cmake -S "$work" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DRESNET_CUDA=OFF -DRESNET_BUILD_EXAMPLES=OFF \
  -DRESNET_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$work/build" --target test_ops_elementwise test_gradcheck -j "$JOBS" >/dev/null
status=0
for t in "test_ops_elementwise [grad],[fast]" "test_gradcheck"; do
  set -- $t
  if "$work/build/tests/$1" ${2:-} >"$work/$1.log" 2>&1; then
    echo "mutation_check: FAILED: $1 passed with ReLU returning NaN" >&2
    status=1
  elif ! grep -qiE "nan|not finite" "$work/$1.log"; then
    echo "mutation_check: FAILED: $1 failed, but without naming the NaN:" >&2
    tail -n 30 "$work/$1.log" >&2
    status=1
  else
    echo "mutation_check: $1 fails with ReLU returning NaN ($(grep -cE 'FAILED' "$work/$1.log") failures), as it must"
  fi
done
exit $status

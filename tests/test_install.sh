#!/usr/bin/env bash
# The packaging promise: another CMake project can use resnet after `cmake --install` (find_package) and
# from a source checkout (add_subdirectory). Usage: test_install.sh SOURCE_DIR BUILD_DIR [MPIRUN]
# With MPIRUN (the build has resnet::dist), the consumer also asks for the dist component and runs 2 ranks.
set -euo pipefail
src=$1
build=$2
MPIRUN=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
for mode in package subdirectory; do
  cmake -S "$src/tests/consumer" -B "$work/$mode" -DCMAKE_BUILD_TYPE=Release -DCONSUMER_MODE=$mode \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DRESNET_SOURCE_DIR="$src" \
    -DCONSUMER_WANTS_DIST=$([ -n "$MPIRUN" ] && echo ON || echo OFF) >"$work/$mode.log" 2>&1 ||
    { cat "$work/$mode.log"; exit 1; }
  cmake --build "$work/$mode" -j 2 >>"$work/$mode.log" 2>&1 || { cat "$work/$mode.log"; exit 1; }
  compiled=$("$work/$mode/consumer")
  header_only=$("$work/$mode/consumer_header_only")
  echo "[$mode] $compiled"
  # Same weights and data; the installed library is built with the package's flags (-march=native under
  # RESNET_NATIVE), the header-only unit with the consumer's, so sums round differently, and BatchNorm over
  # the 2 values of the last stage amplifies that in the steps after. The first forward must agree closely.
  awk -v a="$compiled" -v b="$header_only" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    d = x[3] - y[3]; if (d < 0) d = -d;
    exit !(x[3] ~ /^[0-9]+\.[0-9]+$/ && y[3] ~ /^[0-9]+\.[0-9]+$/ && d <= 1e-3 * x[3]) }' ||
    { echo "compiled and header-only modes differ: '$compiled' vs '$header_only'"; exit 1; }
  echo "[$mode] header-only: $header_only"
  # resnet::dist, where this build has it: the package's config finds MPI and defines it.
  if [ -x "$work/$mode/consumer_dist" ]; then
    [ -n "$MPIRUN" ] || { echo "consumer_dist was built but no mpirun was given"; exit 1; }
    out=$(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$MPIRUN" --oversubscribe --bind-to none -np 2 \
      "$work/$mode/consumer_dist")
    echo "$out"
    [ "$(grep -c 'of 2 (mpi): sum 3$' <<<"$out")" = 2 ] || { echo "[$mode] resnet::dist: both ranks should sum to 3"; exit 1; }
  elif [ -n "$MPIRUN" ]; then
    echo "[$mode] this build has MPI but the consumer found no resnet::dist"; exit 1
  fi
done
# The installed package must carry the headers and config, not the build tree's paths.
test -f "$work/prefix/include/resnet/resnet.hpp"
test -f "$work/prefix/lib/libresnet.a" || test -f "$work/prefix/lib64/libresnet.a"
! grep -rq "$build" "$work/prefix/lib/cmake/resnet" || { echo "installed config refers to the build tree"; exit 1; }
echo "install test passed"

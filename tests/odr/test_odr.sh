#!/usr/bin/env bash
# Units built with and without CUDA in one program:
#  1. two units that only use the library link, and each runs its own build's inline code;
#  2. a library type passed from a unit of one build to a unit of the other fails at link time, and the
#     linker's message names both ABI namespaces' types.
# Usage: test_odr.sh SOURCE_DIR [CXX]
set -euo pipefail
src=$1
cxx=${2:-c++}
here="$src/tests/odr"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-std=c++17 -O0 -I"$src/include")
"$cxx" "${flags[@]}" -DRESNET_WITH_CUDA=1 -DUNIT=cuda_unit -c "$here/unit.cpp" -o "$work/cuda_unit.o"
"$cxx" "${flags[@]}" -DUNIT=cpu_unit -c "$here/unit.cpp" -o "$work/cpu_unit.o"
"$cxx" "${flags[@]}" -DRESNET_WITH_CUDA=1 -c "$here/fake_cuda.cpp" -o "$work/fake_cuda.o"
"$cxx" "${flags[@]}" -c "$here/main.cpp" -o "$work/main.o"
"$cxx" "$work/main.o" "$work/cuda_unit.o" "$work/cpu_unit.o" "$work/fake_cuda.o" -o "$work/mixed"
"$work/mixed"

"$cxx" "${flags[@]}" -DRESNET_WITH_CUDA=1 -c "$here/cross_def.cpp" -o "$work/cross_def.o"
"$cxx" "${flags[@]}" -c "$here/cross_use.cpp" -o "$work/cross_use.o"
if "$cxx" "$work/cross_use.o" "$work/cross_def.o" "$work/fake_cuda.o" -o "$work/cross" 2>"$work/link.log"; then
  echo "FAILED: a Tensor of a build without CUDA was accepted by a function of a build with CUDA"
  exit 1
fi
grep -q "without_cuda::Tensor" "$work/link.log" || { echo "FAILED: the link error does not name the ABI:"; cat "$work/link.log"; exit 1; }
echo "mixing builds across a function boundary fails at link time:"
grep -m1 "undefined reference" "$work/link.log" || true
echo "ODR test passed"

#!/usr/bin/env bash
# The CUDA backend's packaging promise (docs/CUDA.md): after `cmake --install`, a plain C++ project uses
# resnet::cuda through find_package, and a g++ command line links it by hand. Both programs are built here
# and run (they print the device count and, with a GPU, compare a small network step with the CPU).
# Usage: test_cuda_install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/lib/libresnet_cuda.a"
test -f "$work/prefix/lib/cmake/resnet/resnetCudaTargets.cmake"

# 1. find_package(resnet) and target_link_libraries(... resnet::cuda)
cmake -S "$src/tests/cuda/consumer" -B "$work/cmake" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake" -j 2 >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
echo "[find_package] $("$work/cmake/cuda_consumer" | tr '\n' ' ')"

# 2. plain g++, as docs/CUDA.md writes it: the libraries' folders come from this build's cache
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
CUDART_DIR=$(dirname "$(cache CUDA_cudart_LIBRARY)")
CUDNN_DIR=$(dirname "$(cache CUDNN_LIBRARY)")
g++ -std=c++17 -O1 -fopenmp -DRESNET_WITH_CUDA=1 -I"$work/prefix/include" "$src/tests/cuda/consumer/main.cpp" \
  -L"$work/prefix/lib" -lresnet_cuda -L"$CUDNN_DIR" -L"$CUDART_DIR" -lcudnn -lcublas -lcudart -ldl \
  -Wl,-rpath,"$CUDNN_DIR":"$CUDART_DIR" -o "$work/gxx_consumer"
echo "[g++] $("$work/gxx_consumer" | tr '\n' ' ')"
echo "CUDA install test passed"

#!/usr/bin/env bash
# Builds everything and runs the whole test suite, CTEST_JOBS tests at a time (default: one per core).
# `ctest --test-dir build -L quick` runs the quick tier.
#
# The CUDA library (nvcc, 2-3 minutes of a 2-core build) is built in a new build directory only where a GPU
# answers (`nvidia-smi -L`) or when asked: RESNET_CUDA=ON compiles it without a GPU too (the GPU tests then
# still skip), RESNET_CUDA=OFF never. Without it the GPU tests are listed and skip, as on a machine without
# nvcc. An existing build directory keeps what it was configured with.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
CUDA=()
if [ -n "${RESNET_CUDA:-}" ]; then
  CUDA=(-DRESNET_CUDA="$RESNET_CUDA")
elif [ ! -f "$BUILD/CMakeCache.txt" ] && ! nvidia-smi -L >/dev/null 2>&1; then
  echo "test.sh: no GPU answers nvidia-smi: building without the CUDA library (RESNET_CUDA=ON builds it)"
  CUDA=(-DRESNET_CUDA=OFF)
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release "${CUDA[@]}"
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j "${CTEST_JOBS:-$JOBS}"

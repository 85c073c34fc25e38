#!/usr/bin/env bash
# Builds everything (the CUDA code too, compile-only, when nvcc is present) and runs the whole test suite,
# CTEST_JOBS tests at a time (default: one per core). `ctest --test-dir build -L quick` runs the quick tier.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j "${CTEST_JOBS:-$JOBS}"

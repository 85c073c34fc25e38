#!/usr/bin/env bash
# Hardening checks, run by CI after the normal build and tests:
#  1. the tests where memory errors would hide, built and run under AddressSanitizer +
#     UndefinedBehaviorSanitizer (gcc; SAN_TESTS): the tensor core, the tape and hooks, every op of the
#     registry (CPU kernels, their vectorised and NHWC/bf16 paths, and the CUDA kernels' bodies on the
#     simulator), the file readers and image decoding, the loader's threads, the optimizers, DataParallel on
#     thread ranks, the Trainer and its parts, and the upload ring's bookkeeping. Whole-network, packaging,
#     ONNX and Python interop tests are left to tools/test.sh: they run the same kernels at larger sizes and
#     cost most of the sanitizer build's time;
#  2. the libFuzzer targets in fuzz/ (clang-14) for the safetensors reader and image decoding, FUZZ_SECONDS
#     each, both at once (one per core), starting from seed corpora generated at build time.
# Any sanitizer report, fuzzer crash, leak, timeout or out-of-memory fails the script; a fuzzer's crashing
# input is kept under $FUZZ_BUILD/artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
SAN_BUILD=${SAN_BUILD_DIR:-build-sanitize}
SAN_TESTS=${SAN_TESTS:-"test_tensor test_compare test_gradcheck test_grad_hooks test_ops test_cpu_fast test_contracts
  test_optim test_step_state test_io test_data test_image_decode test_data_parallel test_trainer test_trainer_parts
  test_dist_local test_staging_ring"}
FUZZ_BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
CLANGXX=${CLANGXX:-clang++-14}
CLANG=${CLANG:-clang-14}
t0=$SECONDS
# Wall time so far, and the CPU time of everything run so far (on a busy machine, CPU / cores is the fairer
# estimate of what a dedicated CI machine needs).
phase() {
  local cpu tmp
  tmp=$(mktemp)
  times >"$tmp"  # in this shell: `times` in a $(...) subshell would not see our children
  cpu=$(tail -n 1 "$tmp" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
  rm -f "$tmp"
  echo "ci_hardening: $1 ($((SECONDS - t0)) s wall, ${cpu} s CPU so far)"
}

# ---- 1. the tests under ASan + UBSan ----
# Without MPI (RESNET_DIST=OFF): OpenMPI's runtime leaves allocations at MPI_Finalize that LeakSanitizer
# reports in any MPI program (a 5-line MPI_Allreduce program fails so under mpirun). DataParallel and
# SyncBatchNorm still run here, on the thread ranks of test_data_parallel.
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# -g1 (line tables only): a report still names file and line, and the build takes 578 s instead of 768 s
# with full -g (2-core Xeon, 2026-12-02, the same 15 programs; their tests 161 s against 194 s).
cmake -S . -B "$SAN_BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g1" \
  -DCMAKE_CXX_FLAGS="$SAN_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DRESNET_BUILD_EXAMPLES=OFF -DRESNET_BUILD_BENCHMARKS=OFF -DRESNET_CUDA=OFF -DRESNET_DIST=OFF >/dev/null
read -r -a san_targets <<<"$(echo $SAN_TESTS)"
# One target over the set (RESNET_BUILD_TEST_SET), so make builds the programs in parallel.
cmake "$SAN_BUILD" -DRESNET_BUILD_TEST_SET="$(echo $SAN_TESTS | tr ' ' ';')" >/dev/null
cmake --build "$SAN_BUILD" -j "$JOBS" --target resnet_test_set
phase "sanitizer build done (${#san_targets[@]} programs)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# test_ops runs as several ctest entries, one per part of the registry (tests/CMakeLists.txt).
san_ctests=$(echo $SAN_TESTS | sed 's/\btest_ops\b/test_ops_registry test_ops_grad test_ops_fast test_ops_nhwc test_ops_bf16 test_ops_sim/')
ctest --test-dir "$SAN_BUILD" --output-on-failure -j "$JOBS" -R "^($(echo $san_ctests | tr ' ' '|'))\$"
phase "tests under ASan + UBSan passed"

# ---- 2. fuzzing ----
if ! command -v "$CLANGXX" >/dev/null; then
  echo "ci_hardening: $CLANGXX not found (tools/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S fuzz -B "$FUZZ_BUILD" -DCMAKE_C_COMPILER="$CLANG" -DCMAKE_CXX_COMPILER="$CLANGXX" >/dev/null
cmake --build "$FUZZ_BUILD" -j "$JOBS"
phase "fuzz targets built"
mkdir -p "$FUZZ_BUILD/artifacts"
run_fuzzer() {  # name seed-subdir [extra flags...]
  local name=$1 seeds=$2
  shift 2
  local corpus="$FUZZ_BUILD/corpus/$name"
  rm -rf "$corpus" && mkdir -p "$corpus"
  "$FUZZ_BUILD/$name" -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_BUILD/artifacts/$name-" "$@" "$corpus" "$FUZZ_BUILD/seeds/$seeds" \
    >"$FUZZ_BUILD/$name.log" 2>&1
}
run_fuzzer fuzz_safetensors safetensors -dict=fuzz/safetensors.dict &
pid_st=$!
run_fuzzer fuzz_image_decode images &
pid_img=$!
status=0
for job in "fuzz_safetensors:$pid_st" "fuzz_image_decode:$pid_img"; do
  name=${job%%:*}
  if wait "${job##*:}"; then
    echo "ci_hardening: $name: $(grep -E '^Done [0-9]+ runs' "$FUZZ_BUILD/$name.log" || echo 'done'), no failure"
  else
    status=1
    echo "ci_hardening: $name FAILED; the end of its log ($FUZZ_BUILD/$name.log):" >&2
    tail -n 60 "$FUZZ_BUILD/$name.log" >&2
  fi
done
phase "fuzzing finished"
exit $status

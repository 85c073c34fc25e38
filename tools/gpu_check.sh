#!/usr/bin/env bash
# The GPU proof: on a machine with an NVIDIA GPU, build resnet with the CUDA backend, run every test (the
# GPU suite included), the benchmarks (bench_block, and bench_train when present), and the GPU tests once
# under compute-sanitizer. Logs go to $OUT when it is set (else build-gpu/logs). Exit status: 0 when
# everything passed, 1 when a step failed (every step still runs), 2 when the machine cannot build at all.
#
#   tools/gpu_check.sh            everything (bench_block at all batch sizes)
#   QUICK=1 tools/gpu_check.sh    smaller benchmark runs
#   BUILD_DIR=... JOBS=... CUDA_ARCHS="90" CUDNN_ROOT=... PYTHON=...   to override what it finds
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD_DIR:-$ROOT/build-gpu}
LOGS=${OUT:-$BUILD/logs}
JOBS=${JOBS:-$(nproc)}
mkdir -p "$LOGS"
SUMMARY=$LOGS/summary.txt
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
failed=0
step() {  # step NAME LOGFILE COMMAND...: runs, logs, records PASS/FAIL with the time taken
  local name=$1 log=$2
  shift 2
  local t0=$SECONDS
  echo "== $name (log: $log)"
  "$@" >"$log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then note "PASS  $name ($((SECONDS - t0)) s)"; else note "FAIL  $name (exit $rc, $((SECONDS - t0)) s, see $log)"; failed=1; tail -n 30 "$log"; fi
  return $rc
}

# ---------------------------------------------------------------- what this run relies on
note "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
if command -v nvidia-smi >/dev/null; then
  note "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
  DRIVER_CUDA=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)
  note "driver supports CUDA ${DRIVER_CUDA:-?}"
  CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')
else
  note "nvidia-smi: NOT FOUND (no NVIDIA driver?): the GPU tests will report that they skipped"
  CC=""
fi

PYTHONS=()
[ -n "${PYTHON:-}" ] && PYTHONS+=("$PYTHON")
PYTHONS+=(/usr/bin/python3 python3)
wheel_dir() {  # wheel_dir MODULE: folder of an nvidia.* pip package, from any Python that has it
  local py d
  for py in "${PYTHONS[@]}"; do
    command -v "$py" >/dev/null || continue
    d=$("$py" -c "import $1 as m; print(list(m.__path__)[0])" 2>/dev/null) && [ -d "$d" ] && { echo "$d"; return 0; }
  done
  return 1
}

NVCC=""
for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null)" "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc \
  $(ls -d /usr/local/cuda-*/bin/nvcc 2>/dev/null | sort -V -r); do
  [ -n "$c" ] && [ -x "$c" ] && { NVCC=$c; break; }
done
if [ -z "$NVCC" ] && d=$(wheel_dir nvidia.cuda_nvcc); then [ -x "$d/bin/nvcc" ] && NVCC=$d/bin/nvcc; fi
if [ -z "$NVCC" ]; then
  note "nvcc: NOT FOUND (looked on PATH, CUDA_HOME, /usr/local/cuda*, the nvidia-cuda-nvcc wheel): install the CUDA toolkit"
  exit 2
fi
NVCC_VERSION=$("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
note "nvcc: $NVCC (CUDA $NVCC_VERSION)"
if [ -n "${DRIVER_CUDA:-}" ] && [ "${NVCC_VERSION%%.*}" -gt "${DRIVER_CUDA%%.*}" ] 2>/dev/null; then
  note "WARNING: nvcc is CUDA $NVCC_VERSION but the driver supports only CUDA $DRIVER_CUDA: programs will fail to start kernels"
fi
CUDA_ROOT=$(dirname "$(dirname "$NVCC")")

CUDNN_HINT=${CUDNN_ROOT:-}
if [ -z "$CUDNN_HINT" ]; then
  for d in "$CUDA_ROOT" "$CUDA_ROOT/targets/x86_64-linux"; do
    [ -f "$d/include/cudnn_version.h" ] && { CUDNN_HINT=$d; break; }
  done
fi
if [ -z "$CUDNN_HINT" ] && d=$(wheel_dir nvidia.cudnn); then CUDNN_HINT=$d; fi
if [ -z "$CUDNN_HINT" ] || [ ! -f "$CUDNN_HINT/include/cudnn_version.h" ]; then
  note "cuDNN: NOT FOUND (looked in CUDNN_ROOT, the toolkit, the nvidia-cudnn wheel of ${PYTHONS[*]}): pip install nvidia-cudnn-cu12 or set CUDNN_ROOT"
  exit 2
fi
CUDNN_VERSION=$(awk '/define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", sep, $3; sep="."}' "$CUDNN_HINT/include/cudnn_version.h")
note "cuDNN: $CUDNN_VERSION in $CUDNN_HINT"
TORCH=""
for py in "${PYTHONS[@]}"; do
  command -v "$py" >/dev/null || continue
  v=$("$py" -c "import torch; print(torch.__version__, 'cuda', torch.version.cuda, 'available' if torch.cuda.is_available() else 'not available')" 2>/dev/null) && { TORCH="$py: torch $v"; break; }
done
note "PyTorch: ${TORCH:-not found (bench_train will skip its baseline)}"

# Libraries that live only in pip wheels must be found at run time too.
LIBS=$CUDNN_HINT/lib
for m in nvidia.cublas nvidia.cuda_runtime; do d=$(wheel_dir $m) && LIBS=$LIBS:$d/lib; done
export LD_LIBRARY_PATH=$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ARCHS=${CUDA_ARCHS:-80-real;90${CC:+;$CC}}
note "building in $BUILD for CUDA architectures $ARCHS with $JOBS jobs"

# ---------------------------------------------------------------- build and test
step "configure" "$LOGS/configure.log" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRESNET_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" -DCUDNN_ROOT="$CUDNN_HINT" || { cat "$SUMMARY"; exit 2; }
step "build" "$LOGS/build.log" cmake --build "$BUILD" -j "$JOBS" || { cat "$SUMMARY"; exit 2; }
step "runtime report" "$LOGS/runtime.log" "$BUILD/tests/cuda/test_cuda" "cuda: runtime report*"
cat "$LOGS/runtime.log" | sed -n '1,12p'
step "GPU test suite (test_cuda, TF32 off)" "$LOGS/test_cuda.log" env RESNET_TF32=0 "$BUILD/tests/cuda/test_cuda" -d yes
if grep -q "SKIPPED" "$LOGS/test_cuda.log"; then note "WARNING: GPU tests SKIPPED: $(grep -m1 SKIPPED "$LOGS/test_cuda.log")"; failed=1; fi
step "every test (ctest)" "$LOGS/ctest.log" ctest --test-dir "$BUILD" --output-on-failure -j 4

# ---------------------------------------------------------------- benchmarks
if [ -n "${QUICK:-}" ]; then BB_FLAGS=(--device cuda --quick); else BB_FLAGS=(--device cuda); fi
step "bench_block" "$LOGS/bench_block.log" "$BUILD/benchmarks/bench_block" "${BB_FLAGS[@]}" --csv "$LOGS/bench_block.csv"
if [ -x "$BUILD/benchmarks/bench_train" ]; then
  TRAIN_PY=()
  [ -n "$TORCH" ] && TRAIN_PY=(--python "${TORCH%%:*}") || TRAIN_PY=(--no-torch)
  if [ -n "${QUICK:-}" ]; then BT=(--arch resnet18,resnet50 --batch 32 --size 224); else BT=(--arch resnet18,resnet34,resnet50 --batch 32,64,128 --size 224); fi
  step "bench_train" "$LOGS/bench_train.log" "$BUILD/benchmarks/bench_train" --device cuda --dtype float32,float16,bfloat16 \
    "${BT[@]}" "${TRAIN_PY[@]}" --csv "$LOGS/bench_train.csv"
else
  note "bench_train: not built (skipped)"
fi

# ---------------------------------------------------------------- compute-sanitizer
SAN=""
for c in "$(command -v compute-sanitizer 2>/dev/null)" "$CUDA_ROOT/bin/compute-sanitizer" "$CUDA_ROOT/compute-sanitizer/compute-sanitizer"; do
  [ -n "$c" ] && [ -x "$c" ] && { SAN=$c; break; }
done
if [ -n "$SAN" ]; then
  # memcheck over the whole GPU suite; racecheck and initcheck over the kernel tests (the networks are slow there).
  step "compute-sanitizer memcheck" "$LOGS/sanitizer_memcheck.log" "$SAN" --tool memcheck --error-exitcode 9 \
    env RESNET_TF32=0 "$BUILD/tests/cuda/test_cuda"
  step "compute-sanitizer racecheck" "$LOGS/sanitizer_racecheck.log" "$SAN" --tool racecheck --error-exitcode 9 \
    env RESNET_TF32=0 RESNET_CUDNN_SEARCH=heuristic "$BUILD/tests/cuda/test_cuda" "~[net]"
  step "compute-sanitizer initcheck" "$LOGS/sanitizer_initcheck.log" "$SAN" --tool initcheck --error-exitcode 9 \
    env RESNET_TF32=0 RESNET_CUDNN_SEARCH=heuristic "$BUILD/tests/cuda/test_cuda" "~[net]"
else
  note "compute-sanitizer: NOT FOUND (looked on PATH and in $CUDA_ROOT): sanitizer runs skipped"
  failed=1
fi

echo
echo "======== summary ($SUMMARY)"
cat "$SUMMARY"
exit $failed

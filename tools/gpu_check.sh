#!/usr/bin/env bash
# The GPU proof, in one call of at most BUDGET_S seconds (560 by default: a 600 s device call less start-up).
# Every step has a time cap and the whole run the budget, so a hang cannot eat a scarce GPU lease. The
# phases run in this order, most important first:
#
#   default    what a user gets on one GPU with no switch set that has changed since the last GPU run:
#              test_cuda_sync --gpu (the step's device-side state, upload_async with and without the ring,
#              the ring past 64 MiB, eval-mode BatchNorm's backward), then train_catsdogs on ResNet-18 with
#              BatchNorm (the Trainer): two short epochs with evaluation stopped after the first (a
#              checkpoint with device-side counters), a resume into device state, eval, predict with folded
#              BatchNorm against unfolded, and the NaN stop in eager mode
#   sanitizer  compute-sanitizer memcheck on test_cuda_sync's GPU cases, racecheck on the reduction kernels
#              (BatchNorm on every path)
#   suite      the rest of the GPU suite: test_cuda --gpu, test_ops --gpu, test_cuda_graph --gpu, NCCL
#   timings    a short bench_train
# and, only when named in PHASES: bench (bench_block and the full bench_train), baselines (against PyTorch),
# train (a long train_catsdogs run on TRAIN_DATA), extra (op timings, whole networks with every BatchNorm
# switch on).
#
#   tools/gpu_check.sh --plan              print the phases, each step's cap and their sum; runs nothing, needs
#                                          no GPU; exits 1 when the sum exceeds BUDGET_S
#   tools/gpu_check.sh                     build here (cmake, nvcc, cuDNN, Catch2, OpenBLAS, stb needed), then run
#   PREBUILT=.gpu tools/gpu_check.sh       run the programs tools/gpu_pack.sh packed on another machine
#
# Settings (environment):
#   PHASES=default,sanitizer,suite,timings     which phases run (the default; `tests` is an old name of suite)
#   BUDGET_S=N                             seconds for everything (default 560); steps are cut to fit
#   SMOKE_DATA=DIR                         the default phase's small image folder (default .gpu/data/smoke, made
#                                          by gpu_pack.sh; built here: made by smoke_make_images)
#   BASELINE_ARCHS, BASELINE_BATCHES, BASELINE_SIZE, BASELINE_STEPS   the baselines phase's table
#                                          (default resnet18,resnet50 x 128,256 at 224 px, 20 steps)
#   QUICK=1                                smaller runs in the bench phase
#   BENCH_BLOCK_ARGS="..."                 bench_block's flags (default: every ResNet-50 shape, batch 32-256)
#   BENCH_TRAIN_ARGS="..."                 bench_train's shapes in the bench phase (default: ResNet-18/34/50,
#                                          batch 64/128, 224 px, float32/float16/bfloat16)
#   TRAIN_ARGS="..."                       train_catsdogs flags for the train phase (--data, --out are added)
#   TRAIN_DATA=DIR                         dataset for the train phase (default .gpu/data/catsdogs-128)
#   BUILD_DIR, JOBS, CUDA_ARCHS, CUDNN_ROOT, PYTHON    override what it finds
#
# Output: $OUT (else build-gpu/logs) gets summary.txt and logs.tar.gz (every log and CSV, refreshed after
# each step, so a run cut short still returns what it did). Exit status: 0 when every step passed, 1 when
# one failed or was skipped (the others still run), 2 when nothing can run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$SECONDS
BUDGET=${BUDGET_S:-560}
PLAN=""
[ "${1:-}" = "--plan" ] && PLAN=1
PHASES=",${PHASES:-default,sanitizer,suite,timings},"
PHASES=${PHASES//,tests,/,suite,}
failed=0
PHASE=""
left() { echo $((BUDGET - (SECONDS - T0))); }

if [ -n "$PLAN" ]; then
  # The plan: every step below is listed with its cap instead of run (steps that depend on what a run finds,
  # such as PyTorch or a checkpoint, are listed as if found), in the order a run takes them.
  PLANNED=0
  SUMMARY=/dev/null
  LOGS=$(mktemp -d)
  trap 'rm -rf "$LOGS"' EXIT
  note() { :; }
  pack_logs() { :; }
  step() {
    printf '  %-10s %4d s  %s\n' "$PHASE" "$3" "$1"
    PLANNED=$((PLANNED + $3))
    return 0
  }
  p=${PHASES#,}
  echo "gpu_check plan: phases ${p%,}; each step's cap in seconds, in the order the steps run"
  TEST_SYNC=test_cuda_sync TEST_GRAPH=test_cuda_graph TEST_CUDA=test_cuda TEST_OPS=test_ops TRAIN=train_catsdogs
  BENCH_BLOCK=bench_block BENCH_TRAIN=bench_train TEST_NCCL=test_nccl_group MAKE_IMAGES=smoke_make_images
  TORCH=plan PY=python3 OUTDIR=$LOGS
else
  OUTDIR=${OUT:-${BUILD_DIR:-$ROOT/build-gpu}/logs}
  LOGS=$(mktemp -d)
  mkdir -p "$OUTDIR"
  SUMMARY=$OUTDIR/summary.txt
  : >"$SUMMARY"
  note() { echo "$*" | tee -a "$SUMMARY"; }
  pack_logs() { tar -C "$LOGS" -czf "$OUTDIR/logs.tar.gz" . 2>/dev/null; }
  # step NAME LOG CAP COMMAND...: runs COMMAND for at most min(CAP, budget left - 10 s), logs it, records
  # PASS/FAIL/TIMEOUT with the seconds taken.
  step() {
    local name=$1 log=$LOGS/$2 cap=$3
    shift 3
    local limit rc t0=$SECONDS
    limit=$(($(left) - 10))
    [ "$limit" -gt "$cap" ] && limit=$cap
    if [ "$limit" -lt 5 ]; then
      note "SKIP  $name (budget spent)"
      failed=1
      return 1
    fi
    echo "== [$PHASE] $name (limit ${limit} s, log: $(basename "$log"))"
    timeout -k 5 "$limit" "$@" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
      note "PASS  $name ($((SECONDS - t0)) s)"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      note "TIMEOUT $name (cut at $limit s, see $(basename "$log"))"
      failed=1
      tail -n 20 "$log"
    else
      note "FAIL  $name (exit $rc, $((SECONDS - t0)) s, see $(basename "$log"))"
      failed=1
      tail -n 40 "$log"
    fi
    pack_logs
    return $rc
  }
fi
# A GPU program run with --gpu exits 77 (skipped) without a device; here a skip is a failure.
skipped() {  # skipped LOG NAME
  [ -z "$PLAN" ] && grep -q "SKIPPED" "$LOGS/$1" 2>/dev/null && { note "WARNING: $2 SKIPPED: $(grep -m1 SKIPPED "$LOGS/$1")"; failed=1; }
  return 0
}
# ---------------------------------------------------------------- what this run relies on
if [ -z "$PLAN" ]; then
note "gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), budget ${BUDGET} s, phases ${PHASES//,/ }"
if command -v nvidia-smi >/dev/null; then
  note "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ';')"
  DRIVER_CUDA=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)
  note "driver supports CUDA ${DRIVER_CUDA:-?}"
  CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')
else
  note "nvidia-smi: NOT FOUND (no NVIDIA driver?): the GPU tests will report that they skipped"
  CC=""
fi
note "cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

PYTHONS=()
[ -n "${PYTHON:-}" ] && PYTHONS+=("$PYTHON")
PYTHONS+=(python3 /usr/bin/python3)
PY=""
TORCH=""
for py in "${PYTHONS[@]}"; do
  command -v "$py" >/dev/null || continue
  v=$("$py" -c "import torch; print(torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'available' if torch.cuda.is_available() else 'not available')" 2>/dev/null) &&
    { PY=$(command -v "$py"); TORCH="$v"; break; }
done
if [ -n "$TORCH" ]; then note "PyTorch: $PY: torch $TORCH"; else note "PyTorch: not found (bench_train skips its baseline)"; fi

# Folders that hold a shared library: the toolkit first, then the pip wheels (where cuDNN often lives).
lib_dir() {  # lib_dir SONAME
  local d
  for d in ${CUDA_HOME:-/usr/local/cuda}/lib64 ${CUDA_HOME:-/usr/local/cuda}/lib /usr/local/cuda*/lib64 \
    /usr/local/cuda*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/$1" ] && { echo "$d"; return 0; }
  done
  [ -n "$PY" ] || return 1
  d=$("$PY" -c "import site,sys; print(' '.join(site.getsitepackages()+[site.getusersitepackages()]))" 2>/dev/null)
  find $d -maxdepth 5 -name "$1" -printf '%h\n' 2>/dev/null | head -n 1 | grep . && return 0
  return 1
}
cuda_libs=""
for so in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcudart.so.13; do
  if d=$(lib_dir $so); then
    note "$so: $d"
    case ":$cuda_libs:" in *":$d:"*) ;; *) cuda_libs=${cuda_libs:+$cuda_libs:}$d ;; esac
  else
    note "$so: NOT FOUND"
  fi
done
export LD_LIBRARY_PATH=$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---------------------------------------------------------------- the programs: prebuilt or built here
if [ -n "${PREBUILT:-}" ]; then
  BIN=$(mktemp -d)
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$PREBUILT/pack.tar.xz" "$BIN" ||
    { note "cannot unpack $PREBUILT/pack.tar.xz (run tools/gpu_pack.sh first)"; exit 2; }
  note "prebuilt programs of commit $(tr '\n' ' ' <"$BIN/commit")from $PREBUILT/pack.tar.xz"
  # Only the packed libraries this machine lacks: a packed libz or libgomp must not shadow a newer one that
  # Python (the PyTorch baseline) needs.
  mkdir -p "$BIN/needed"
  for f in "$BIN"/lib/*; do
    ldconfig -p | grep -q "$(basename "$f") " || ln -s "$f" "$BIN/needed/"
  done
  export LD_LIBRARY_PATH=$BIN/needed:$LD_LIBRARY_PATH
  TEST_SYNC=$BIN/bin/test_cuda_sync TEST_GRAPH=$BIN/bin/test_cuda_graph
  TEST_CUDA=$BIN/bin/test_cuda TEST_OPS=$BIN/bin/test_ops BENCH_BLOCK=$BIN/bin/bench_block BENCH_TRAIN=$BIN/bin/bench_train
  TRAIN=$BIN/bin/train_catsdogs
  TEST_NCCL=$BIN/bin/test_nccl_group
  [ -d "$BIN/ompi" ] && export OPAL_PREFIX=$BIN/ompi  # the packed OpenMPI (gpu_pack.sh)
  for p in "$BIN"/bin/*; do
    missing=$(ldd "$p" | grep "not found")
    [ -z "$missing" ] || { note "$(basename "$p") lacks libraries: $missing"; exit 2; }
  done
else
  NVCC=""
  for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null)" "${CUDA_HOME:-/nonexistent}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    [ -n "$c" ] && [ -x "$c" ] && { NVCC=$c; break; }
  done
  [ -n "$NVCC" ] || { note "nvcc: NOT FOUND (looked on PATH, CUDA_HOME, /usr/local/cuda): install the CUDA toolkit"; exit 2; }
  note "nvcc: $NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
  CUDNN_HINT=${CUDNN_ROOT:-}
  if [ -z "$CUDNN_HINT" ] && d=$(lib_dir libcudnn.so.9); then CUDNN_HINT=$(dirname "$d"); fi
  BUILD=${BUILD_DIR:-$ROOT/build-gpu}
  ARCHS=${CUDA_ARCHS:-80-real;90${CC:+;$CC}}
  note "building in $BUILD for CUDA architectures $ARCHS"
  step "configure" configure.log 600 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRESNET_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$NVCC" "-DCMAKE_CUDA_ARCHITECTURES=$ARCHS" ${CUDNN_HINT:+-DCUDNN_ROOT="$CUDNN_HINT"} ||
    { cat "$SUMMARY"; exit 2; }
  step "build" build.log 3000 cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" || { cat "$SUMMARY"; exit 2; }
  TEST_SYNC=$BUILD/tests/cuda/test_cuda_sync TEST_GRAPH=$BUILD/tests/test_cuda_graph
  TEST_CUDA=$BUILD/tests/cuda/test_cuda TEST_OPS=$BUILD/tests/test_ops BENCH_BLOCK=$BUILD/benchmarks/bench_block
  BENCH_TRAIN=$BUILD/benchmarks/bench_train TRAIN=$BUILD/examples/train_catsdogs
  TEST_NCCL=$BUILD/tests/dist/test_nccl_group
  MAKE_IMAGES=$BUILD/tests/smoke_make_images
fi
fi  # not --plan

# ---------------------------------------------------------------- default: what a user gets, first
# Everything here is on by default on one GPU and has changed since the last GPU run (NOTES.md, "The default
# GPU path"): the optimizer's step state on the device, BatchNorm's batch counter and eval-mode invstd on the
# device, the Trainer's device-side loss sums and skip flag. Each of these steps fails loudly.
train_smoke() {  # train_smoke TRAIN DATA RUN: two epochs, stopped after the first (a checkpoint)
  "$1" train --data "$2" --arch resnet18 --size 112 --batch 8 --epochs 2 --seed 7 --log-every 5 --workers 2 \
    --device cuda --out "$3" --stop-after-epoch 1 || return 1
  test -s "$3/last.safetensors" || { echo "no last.safetensors after epoch 1"; return 1; }
}
resume_smoke() {  # resume_smoke TRAIN DATA RUN: resume into the device state, finish epoch 2, check counters
  "$1" train --resume "$3/last.safetensors" --data "$2" --device cuda | tee "$3/resume.out" || return 1
  [ "$(grep -c . "$3/metrics.csv")" = 3 ] || { echo "metrics.csv should hold a header and 2 epochs:"; cat "$3/metrics.csv"; return 1; }
  grep -qE '^epoch 2 av_test_acc: [0-9.]+$' "$3/resume.out" || { echo "no epoch 2 evaluation line"; return 1; }
  # Every BatchNorm counted its batches on the device, across the checkpoint and the resume: 2 epochs of
  # 120 images in batches of 8.
  python3 - "$3/last.safetensors" 30 <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
counts = {k: struct.unpack("<q", data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][0] + 8])[0]
          for k, v in header.items() if k.endswith("num_batches_tracked")}
print(f"{len(counts)} num_batches_tracked: {sorted(set(counts.values()))}")
sys.exit(0 if len(counts) == 20 and set(counts.values()) == {int(sys.argv[2])} else 1)
PY
}
eval_smoke() {  # eval_smoke TRAIN DATA RUN: the checkpoint on the GPU reproduces the run's last accuracy
  # Within one image of 40: eval batches differently from the run's evaluation, and cuDNN may pick another
  # algorithm for another batch size, which can flip a near tie; a broken checkpoint is off by far more.
  local acc
  acc=$(sed -n 's/^epoch 2 av_test_acc: \([0-9.]*\)$/\1/p' "$3/resume.out")
  "$1" eval --weights "$3/last.safetensors" --data "$2" --device cuda | tee "$3/eval.out" || return 1
  got=$(sed -n 's/^test images: 40 av_test_loss: [0-9.]* av_test_acc: \([0-9.]*\)$/\1/p' "$3/eval.out")
  [ -n "$got" ] && [ -n "$acc" ] || { echo "no accuracy to compare (run: '$acc', eval: '$got')"; return 1; }
  awk -v a="$acc" -v b="$got" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.026) }' ||
    { echo "eval's accuracy $got differs from the run's epoch 2 accuracy $acc by more than one image"; return 1; }
}
predict_smoke() {  # predict_smoke TRAIN DATA RUN: folded BatchNorm (the default) answers as unfolded
  local imgs
  imgs=$(find "$2/test" -type f | LC_ALL=C sort | sed -n '1p;$p')
  "$1" predict --weights "$3/last.safetensors" --device cuda --fuse on $imgs | tee "$3/fused.out" || return 1
  "$1" predict --weights "$3/last.safetensors" --device cuda --fuse off $imgs | tee "$3/unfused.out" || return 1
  [ "$(grep -c '^this picture might be: ' "$3/fused.out")" = 2 ] || { echo "predict should answer twice"; return 1; }
  # The same class, and the same score to the printed rounding (one unit of 0.001 for a value on the edge).
  paste -d' ' <(grep '^this picture' "$3/fused.out") <(grep '^this picture' "$3/unfused.out") |
    awk '{ d = $8 - $16; if (d < 0) d = -d; if ($5 != $13 || d > 0.0011) bad = 1 } END { exit bad }' ||
    { echo "folded BatchNorm answers differently from unfolded"; return 1; }
}
nan_smoke() {  # nan_smoke TRAIN DATA RUN: a loss driven to NaN by --lr 1e30 stops eagerly with exit 3
  local rc=0
  "$1" train --data "$2" --arch resnet18 --size 112 --batch 8 --epochs 2 --lr 1e30 \
    --seed 7 --workers 2 --device cuda --out "$3" >"$3.out" 2>&1 || rc=$?
  cat "$3.out"
  [ $rc = 3 ] || { echo "exit $rc, expected 3"; return 1; }
  grep -qE 'the loss is (NaN|infinite) at epoch 1' "$3.out" || return 1
  grep -qE "no checkpoint was written yet" "$3.out" || return 1
}
# A step's command is a program (timeout runs programs, not functions): bash with the functions above.
SMOKE_FNS="set -uo pipefail; $(declare -f train_smoke resume_smoke eval_smoke predict_smoke nan_smoke)"
if [[ $PHASES == *,default,* ]]; then
  PHASE=default
  step "runtime report" runtime.log 10 "$TEST_CUDA" "cuda: runtime report*" -s
  [ -z "$PLAN" ] && grep -A12 "resnet::cuda" "$LOGS/runtime.log" | head -n 14
  step "default step state, uploads, ring past 64 MiB, eval-mode BN (test_cuda_sync --gpu)" test_cuda_sync.log 60 \
    env RESNET_TF32=0 "$TEST_SYNC" --gpu -d yes
  skipped test_cuda_sync.log test_cuda_sync
  SMOKE=${SMOKE_DATA:-${PREBUILT:+$PREBUILT/data/smoke}}
  if [ -z "$PLAN" ] && [ -z "$SMOKE" ]; then
    SMOKE=$(mktemp -d)/smoke
    "$MAKE_IMAGES" "$SMOKE" 60 20 >/dev/null
  fi
  if [ -z "$PLAN" ] && [ ! -d "$SMOKE/train" ]; then
    note "FAIL  no image folder for the Trainer steps at '$SMOKE' (tools/gpu_pack.sh makes .gpu/data/smoke)"
    failed=1
  fi
  RUN=plan
  [ -z "$PLAN" ] && RUN=$(mktemp -d)/run  # outside $LOGS: checkpoints stay out of logs.tar.gz
  export RESNET_CUDNN_SEARCH=heuristic  # the same algorithms in every process: eval reproduces training
  step "Trainer: ResNet-18 + BN, epoch 1 of 2 with evaluation, checkpoint" train_stop.log 45 \
    bash -c "$SMOKE_FNS; train_smoke \"\$@\"" train_smoke "$TRAIN" "$SMOKE" "$RUN"
  step "Trainer: resume into device state, epoch 2, BN counters" train_resume.log 35 bash -c "$SMOKE_FNS; resume_smoke \"\$@\"" resume_smoke "$TRAIN" "$SMOKE" "$RUN"
  step "eval of the checkpoint (GPU)" eval.log 20 bash -c "$SMOKE_FNS; eval_smoke \"\$@\"" eval_smoke "$TRAIN" "$SMOKE" "$RUN"
  step "predict, folded BatchNorm vs unfolded (GPU)" predict.log 25 bash -c "$SMOKE_FNS; predict_smoke \"\$@\"" predict_smoke "$TRAIN" "$SMOKE" "$RUN"
  step "NaN stop in eager mode (exit 3, last good checkpoint)" train_nan.log 35 bash -c "$SMOKE_FNS; nan_smoke \"\$@\"" nan_smoke "$TRAIN" "$SMOKE" "$RUN-nan"
  unset RESNET_CUDNN_SEARCH
  [ -z "$PLAN" ] && cp "$RUN"/metrics.csv "$LOGS/smoke_metrics.csv" 2>/dev/null
fi

# ---------------------------------------------------------------- compute-sanitizer, on those first
if [[ $PHASES == *,sanitizer,* ]]; then
  PHASE=sanitizer
  SAN=compute-sanitizer
  if [ -z "$PLAN" ]; then
    SAN=""
    for c in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
      [ -n "$c" ] && [ -x "$c" ] && { SAN=$c; break; }
    done
  fi
  if [ -n "$SAN" ]; then
    # The default path's new kernels and copies (step state, counters, loss sums, invstd, the ring): every GPU
    # case of test_cuda_sync under memcheck. Run by tag without --gpu: a hidden case named explicitly runs,
    # and without a device it fails, never passes.
    step "memcheck: test_cuda_sync's GPU cases" sanitizer_memcheck.log 100 "$SAN" --tool memcheck --error-exitcode 9 \
      env RESNET_TF32=0 RESNET_CUDNN_SEARCH=heuristic "$TEST_SYNC" "[gpu]"
    # The reduction kernels: BatchNorm on every path (multi-pass, half packs, single pass, clusters), where a
    # missing barrier would race.
    step "racecheck: BatchNorm reductions (test_cuda)" sanitizer_racecheck.log 70 "$SAN" --tool racecheck --error-exitcode 9 \
      env RESNET_TF32=0 "$TEST_CUDA" "cuda: fused BatchNorm*"
  else
    note "compute-sanitizer: NOT FOUND: sanitizer runs skipped"
    failed=1
  fi
fi

# ---------------------------------------------------------------- the rest of the suite
if [[ $PHASES == *,suite,* ]]; then
  PHASE=suite
  # The GPU cases are hidden behind --gpu, which exits 77 (skipped) without a device: a skip is a failure here.
  step "GPU test suite (test_cuda --gpu, TF32 off)" test_cuda.log 50 env RESNET_TF32=0 "$TEST_CUDA" --gpu -d yes
  skipped test_cuda.log test_cuda
  [ -z "$PLAN" ] && grep -E "^test cases|^All tests" "$LOGS/test_cuda.log" | tail -n 1 | sed 's/^/      /' | tee -a "$SUMMARY"
  # Every op of the registry on the GPU against the CPU backend, every dtype (tests/ops).
  step "op registry on the GPU (test_ops --gpu, TF32 off)" test_ops.log 35 env RESNET_TF32=0 "$TEST_OPS" --gpu
  skipped test_ops.log test_ops
  # CUDA graphs replay what eager runs do (bit for bit in double); off by default.
  step "CUDA graphs (test_cuda_graph --gpu)" test_cuda_graph.log 20 env RESNET_TF32=0 "$TEST_GRAPH" --gpu -d yes
  skipped test_cuda_graph.log test_cuda_graph
  # NCCL: every collective, float to bfloat16, on a world of one (MPI's singleton start-up).
  if [ -n "$PLAN" ] || [ -x "${TEST_NCCL:-}" ]; then
    step "NCCL process group, world of one (test_nccl_group)" test_nccl.log 15 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$TEST_NCCL"
    skipped test_nccl.log test_nccl_group
  else
    note "WARNING: no test_nccl_group (build without MPI?): the NCCL group is untested"
  fi
  if [ -z "$PLAN" ] && [ -z "${PREBUILT:-}" ]; then step "every test (ctest)" ctest.log 1800 ctest --test-dir "$BUILD" --output-on-failure -j 4; fi
fi

# ---------------------------------------------------------------- timings
if [[ $PHASES == *,timings,* ]]; then
  PHASE=timings
  step "bench_train ResNet-50 batch 128 224 px float32/bfloat16 (defaults)" bench_train_quick.log 30 \
    "$BENCH_TRAIN" --device cuda --arch resnet50 --batch 128 --size 224 --dtype float32,bfloat16 --mode train \
    --no-torch --steps 10 --warmup 3 --csv "$LOGS/bench_train_quick.csv"
  [ -z "$PLAN" ] && grep -E '^resnet' "$LOGS/bench_train_quick.log" | sed 's/^/      /' | tee -a "$SUMMARY"
fi

# ---------------------------------------------------------------- extra (only when asked)
if [[ $PHASES == *,extra,* ]]; then
  PHASE=extra
  step "op registry timings" test_ops_time.log 120 "$TEST_OPS" "[.time]"
  # The suite's BatchNorm cases switch every path on themselves; the whole networks run the library's
  # default, so run them once more with every BatchNorm switch on.
  step "whole networks, BN single pass + clusters + half packs on" test_cuda_bn_on.log 300 env RESNET_TF32=0 \
    RESNET_BN_SINGLE_PASS=1 RESNET_BN_CLUSTERS=1 RESNET_CUDA_HALF_PACKS=1 "$TEST_CUDA" --gpu "[net]"
  step "test_cuda_sync with the staging ring on everywhere" test_cuda_sync_ring.log 120 env RESNET_TF32=0 \
    RESNET_CUDA_STAGING=1 "$TEST_SYNC" --gpu -d yes
fi

# ---------------------------------------------------------------- benchmarks (only when asked)
if [[ $PHASES == *,bench,* ]]; then
  PHASE=bench
  if [ -n "${BENCH_BLOCK_ARGS:-}" ]; then read -r -a BB <<<"$BENCH_BLOCK_ARGS"; elif [ -n "${QUICK:-}" ]; then BB=(--quick); else BB=(); fi
  step "bench_block" bench_block.log 600 "$BENCH_BLOCK" --device cuda "${BB[@]}" --csv "$LOGS/bench_block.csv"
  # Least / median / largest per dtype and pass, into the summary (the per-row table is in the logs).
  [ -z "$PLAN" ] && [ -s "$LOGS/bench_block.csv" ] && python3 "$ROOT/tools/bench_block_summary.py" "$LOGS/bench_block.csv" | tee -a "$SUMMARY"
  if [ -n "$TORCH" ]; then BASE=(--python "$PY" --torch-script "$ROOT/benchmarks/torch_train.py"); else BASE=(--no-torch); fi
  if [ -n "${BENCH_TRAIN_ARGS:-}" ]; then
    read -r -a BT <<<"$BENCH_TRAIN_ARGS"
  elif [ -n "${QUICK:-}" ]; then
    BT=(--arch resnet18,resnet50 --batch 64 --size 224 --dtype float32,bfloat16)
  else
    BT=(--arch resnet18,resnet34,resnet50 --batch 64,128 --size 224 --dtype float32,float16,bfloat16)
  fi
  step "bench_train" bench_train.log 900 "$BENCH_TRAIN" --device cuda "${BT[@]}" "${BASE[@]}" --csv "$LOGS/bench_train.csv"
  # Whole networks with each BatchNorm path, back to back, every switch set explicitly (the library's
  # default is the multi-pass kernels; the single pass and the clusters are off until this run measures
  # them: benchmarks/RESULTS.md, "Kernel policy").
  if [ -z "${QUICK:-}" ]; then
    AB=(--device cuda --arch resnet18,resnet50 --batch 128 --size 224 --dtype float32,bfloat16 --mode train --no-torch)
    step "bench_train, BN single pass on" bench_train_bn_on.log 300 env RESNET_BN_SINGLE_PASS=1 RESNET_BN_CLUSTERS=0 "$BENCH_TRAIN" "${AB[@]}" --csv "$LOGS/bench_train_bn_on.csv"
    step "bench_train, BN single pass off" bench_train_bn_off.log 300 env RESNET_BN_SINGLE_PASS=0 RESNET_BN_CLUSTERS=0 "$BENCH_TRAIN" "${AB[@]}" --csv "$LOGS/bench_train_bn_off.csv"
    step "bench_train, BN clusters on" bench_train_bn_cluster.log 300 env RESNET_BN_SINGLE_PASS=1 RESNET_BN_CLUSTERS=1 "$BENCH_TRAIN" "${AB[@]}" --csv "$LOGS/bench_train_bn_cluster.csv"
    [ -z "$PLAN" ] && paste -d' ' <(grep -E '^resnet' "$LOGS/bench_train_bn_on.log" | awk '{print $1, $2, $3, $5, "single-pass", $7}') \
      <(grep -E '^resnet' "$LOGS/bench_train_bn_off.log" | awk '{print "multi-pass", $7}') \
      <(grep -E '^resnet' "$LOGS/bench_train_bn_cluster.log" | awk '{print "clusters", $7}') |
      sed 's/^/      img\/s /' | tee -a "$SUMMARY"
  fi
fi

# ---------------------------------------------------------------- baselines
# One table, same run: PyTorch eager NCHW, channels_last, autocast bfloat16 in channels_last and (where the
# installed PyTorch has it) torch.compile of the last; ours NCHW and NHWC (RESNET_CUDA_NHWC=1), CUDA graphs
# off and on, float32 and bfloat16. Rows go to baselines.csv (who,arch,batch,size,variant,dtype,images_per_s)
# and the summary gets ours-best / PyTorch-best per dtype.
if [[ $PHASES == *,baselines,* ]]; then
  PHASE=baselines
  BL_ARCHS=${BASELINE_ARCHS:-resnet18,resnet50}
  BL_BATCHES=${BASELINE_BATCHES:-128,256}
  BL_SIZE=${BASELINE_SIZE:-224}
  BL_STEPS=${BASELINE_STEPS:-20}
  BL_CSV=$LOGS/baselines.csv
  echo "who,arch,batch,size,variant,dtype,images_per_s" >"$BL_CSV"
  for arch in ${BL_ARCHS//,/ }; do
    for batch in ${BL_BATCHES//,/ }; do
      if [ -n "$TORCH" ]; then
        for variant in eager-nchw:float32: eager-cl:float32:--channels-last autocast-cl:bfloat16:--channels-last \
          compile-autocast-cl:bfloat16:--channels-last+--compile; do
          name=${variant%%:*} rest=${variant#*:}
          dtype=${rest%%:*} flags=${rest#*:}
          log=torch_${arch}_${batch}_${name}.log
          step "torch $arch batch $batch $name" "$log" 300 "$PY" "$ROOT/benchmarks/torch_train.py" --device cuda \
            --arch "$arch" --batch "$batch" --size "$BL_SIZE" --dtype "$dtype" --steps "$BL_STEPS" --warmup 5 ${flags//+/ }
          r=$(sed -n 's/^RESULT images_per_s=\([0-9.]*\).*/\1/p' "$LOGS/$log" 2>/dev/null)
          [ -n "$r" ] && echo "torch,$arch,$batch,$BL_SIZE,$name,$dtype,$r" >>"$BL_CSV"
          grep -m1 '^SKIP' "$LOGS/$log" 2>/dev/null | sed "s/^/      torch $name: /" | tee -a "$SUMMARY"
        done
      fi
      for fmt in nchw nhwc; do
        for graph in off on; do
          log=ours_${arch}_${batch}_${fmt}_graph-${graph}.log
          step "ours $arch batch $batch $fmt graphs $graph" "$log" 300 env RESNET_CUDA_NHWC=$([ $fmt = nhwc ] && echo 1 || echo 0) \
            "$BENCH_TRAIN" --device cuda --no-torch --mode train --arch "$arch" --batch "$batch" --size "$BL_SIZE" \
            --dtype float32,bfloat16 --memory-format "$fmt" --cuda-graph "$graph" --steps "$BL_STEPS" --warmup 5 \
            --csv "$LOGS/ours_${arch}_${batch}_${fmt}_${graph}.csv"
          [ -s "$LOGS/ours_${arch}_${batch}_${fmt}_${graph}.csv" ] &&
            awk -F, -v g="$graph" -v f="$fmt" 'NR > 1 && $1 == "ours" { print "ours," $2 "," $3 "," $4 "," f "-graph-" g "," $6 "," $7 }' \
              "$LOGS/ours_${arch}_${batch}_${fmt}_${graph}.csv" >>"$BL_CSV"
        done
      done
    done
  done
  python3 - "$BL_CSV" <<'PY' | tee -a "$SUMMARY"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
keys = sorted({(r["arch"], int(r["batch"])) for r in rows})
for arch, batch in keys:
    mine = [r for r in rows if r["arch"] == arch and int(r["batch"]) == batch]
    print(f"      {arch} batch {batch}: " + "  ".join(f'{r["who"]}:{r["variant"]}:{r["dtype"]}={float(r["images_per_s"]):.0f}' for r in mine))
    for dtype in ("float32", "bfloat16"):
        ours = [float(r["images_per_s"]) for r in mine if r["who"] == "ours" and r["dtype"] == dtype]
        theirs = [float(r["images_per_s"]) for r in mine if r["who"] == "torch" and r["dtype"] == dtype]
        if ours and theirs:
            print(f"      {arch} batch {batch} {dtype}: ours best {max(ours):.0f} img/s, PyTorch best {max(theirs):.0f}: {max(ours) / max(theirs):.2f}x")
PY
  pack_logs
fi

# ---------------------------------------------------------------- train_catsdogs
if [[ $PHASES == *,train,* ]]; then
  PHASE=train
  DATA=${TRAIN_DATA:-$ROOT/.gpu/data/catsdogs-128}
  read -r -a TA <<<"${TRAIN_ARGS:---arch resnet18 --size 112 --eval-size 128 --eval-crop 1.0 --epochs 30 --batch 128 --seed 1}"
  RUN=plan
  [ -z "$PLAN" ] && RUN=$(mktemp -d)/run
  note "train_catsdogs train --data $DATA ${TA[*]} --device cuda"
  step "train_catsdogs" train.log 3000 "$TRAIN" train --data "$DATA" "${TA[@]}" --device cuda --out "$RUN"
  best=plan
  if [ -z "$PLAN" ]; then
    cp "$RUN"/metrics.csv "$RUN"/curves.svg "$LOGS/" 2>/dev/null
    grep -E "av_test_acc|images/s" "$LOGS/train.log" | tail -n 4
    best=$(ls -t "$RUN" 2>/dev/null | grep '^epoch' | head -n 1)
    note "      best checkpoint: ${best:-none}"
  fi
  if [ -n "$best" ]; then
    # The checkpoint loads back onto the GPU: eval must reproduce the logged accuracy; predict two images.
    step "train_catsdogs eval (GPU)" train_eval.log 120 "$TRAIN" eval --data "$DATA" --weights "$RUN/$best" --device cuda
    [ -z "$PLAN" ] && tail -n 2 "$LOGS/train_eval.log" | sed 's/^/      /' | tee -a "$SUMMARY"
    imgs=$(find "$DATA/test" -name '*.jpg' 2>/dev/null | sort | sed -n '1p;$p')
    step "train_catsdogs predict (GPU)" train_predict.log 60 "$TRAIN" predict --weights "$RUN/$best" --device cuda $imgs
    [ -z "$PLAN" ] && sed 's/^/      /' "$LOGS/train_predict.log" | tail -n 3 | tee -a "$SUMMARY"
  fi
  pack_logs
fi

if [ -n "$PLAN" ]; then
  echo "sum of caps: $PLANNED s, budget $BUDGET s: $([ "$PLANNED" -le "$BUDGET" ] && echo fits || echo "DOES NOT FIT")"
  [ "$PLANNED" -le "$BUDGET" ]
  exit $?
fi
pack_logs
echo
echo "======== summary ($SUMMARY; every log in $OUTDIR/logs.tar.gz) after $((SECONDS - T0)) s"
cat "$SUMMARY"
exit $failed

#!/usr/bin/env bash
# The GPU proof: on a machine with an NVIDIA GPU, run the GPU test suite, the tests under compute-sanitizer,
# the benchmarks (bench_block, bench_train beside PyTorch) and, when asked, a train_catsdogs run. Every step
# has a time limit, and the whole run a budget, so a hang cannot eat a scarce GPU lease.
#
#   tools/gpu_check.sh                     build here (cmake, nvcc, cuDNN, Catch2, OpenBLAS, stb needed), then run
#   PREBUILT=.gpu tools/gpu_check.sh       run the programs tools/gpu_pack.sh packed on another machine
#
# Settings (environment):
#   PHASES=tests,sanitizer,bench,baselines,train   which phases run (default: tests,sanitizer,bench)
#   BASELINE_ARCHS, BASELINE_BATCHES, BASELINE_SIZE, BASELINE_STEPS   the baselines phase's table
#                                          (default resnet18,resnet50 x 128,256 at 224 px, 20 steps)
#   BUDGET_S=N                             seconds for everything (default 3000); steps are cut to fit
#   SAN_TOOLS="memcheck racecheck initcheck"   compute-sanitizer tools to run
#   QUICK=1                                smaller benchmark runs
#   BENCH_BLOCK_ARGS="..."                 bench_block's flags (default: every ResNet-50 shape, batch 32-256)
#   BENCH_TRAIN_ARGS="..."                 bench_train's shapes (default: ResNet-18/34/50, batch 64/128, 224 px,
#                                          float32/float16/bfloat16); add --torch-channels-last for that baseline
#   TRAIN_ARGS="..."                       train_catsdogs flags for the train phase (--data, --out are added)
#   TRAIN_DATA=DIR                         dataset for the train phase (default .gpu/data/catsdogs-128)
#   BUILD_DIR, JOBS, CUDA_ARCHS, CUDNN_ROOT, PYTHON    override what it finds
#
# Output: $OUT (else build-gpu/logs) gets summary.txt and logs.tar.gz (every log and CSV, refreshed after
# each step, so a run cut short still returns what it did). Exit status: 0 when every step passed, 1 when
# one failed (the others still run), 2 when nothing can run.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$SECONDS
BUDGET=${BUDGET_S:-3000}
PHASES=",${PHASES:-tests,sanitizer,bench},"
OUTDIR=${OUT:-${BUILD_DIR:-$ROOT/build-gpu}/logs}
LOGS=$(mktemp -d)
mkdir -p "$OUTDIR"
SUMMARY=$OUTDIR/summary.txt
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
pack_logs() { tar -C "$LOGS" -czf "$OUTDIR/logs.tar.gz" . 2>/dev/null; }
failed=0
left() { echo $((BUDGET - (SECONDS - T0))); }
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
  echo "== $name (limit ${limit} s, log: $(basename "$log"))"
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

# ---------------------------------------------------------------- what this run relies on
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
fi

# ---------------------------------------------------------------- tests
if [[ $PHASES == *,tests,* ]]; then
  step "runtime report" runtime.log 60 "$TEST_CUDA" "cuda: runtime report*" -s
  grep -A12 "resnet::cuda" "$LOGS/runtime.log" | head -n 14
  # The GPU cases are hidden behind --gpu, which exits 77 (skipped) without a device: a skip is a failure here.
  step "GPU test suite (test_cuda --gpu, TF32 off)" test_cuda.log 300 env RESNET_TF32=0 "$TEST_CUDA" --gpu -d yes
  if grep -q "SKIPPED" "$LOGS/test_cuda.log"; then note "WARNING: GPU tests SKIPPED: $(grep -m1 SKIPPED "$LOGS/test_cuda.log")"; failed=1; fi
  grep -E "^test cases|^All tests" "$LOGS/test_cuda.log" | tail -n 1 | sed 's/^/      /' | tee -a "$SUMMARY"
  # Every op of the registry on the GPU against the CPU backend, every dtype (tests/ops), then its timings.
  step "op registry on the GPU (test_ops --gpu, TF32 off)" test_ops.log 300 env RESNET_TF32=0 "$TEST_OPS" --gpu
  if grep -q "SKIPPED" "$LOGS/test_ops.log"; then note "WARNING: op registry SKIPPED"; failed=1; fi
  grep -E "^test cases|^All tests" "$LOGS/test_ops.log" | tail -n 1 | sed 's/^/      /' | tee -a "$SUMMARY"
  step "op registry timings" test_ops_time.log 120 "$TEST_OPS" "[.time]"
  # The suite's BatchNorm cases switch every path on themselves; the whole networks run the library's
  # default (multi-pass), so run them once more with the single pass and the clusters on.
  step "whole networks, BN single pass + clusters on" test_cuda_bn_on.log 300 env RESNET_TF32=0 RESNET_BN_SINGLE_PASS=1 RESNET_BN_CLUSTERS=1 "$TEST_CUDA" --gpu "[net]"
  # Issue 17: no host synchronisation inside a steady training step; CUDA graphs replay what eager runs do
  # (bit for bit in double). The NHWC kernels' GPU cases are in test_ops --gpu and test_cuda --gpu above.
  for t in "host syncs per steady step (test_cuda_sync --gpu):$TEST_SYNC:test_cuda_sync.log" \
    "CUDA graphs (test_cuda_graph --gpu):$TEST_GRAPH:test_cuda_graph.log"; do
    IFS=: read -r tname tbin tlog <<<"$t"
    step "$tname" "$tlog" 300 env RESNET_TF32=0 "$tbin" --gpu -d yes
    if grep -q "SKIPPED" "$LOGS/$tlog"; then note "WARNING: $tname SKIPPED"; failed=1; fi
  done
  # NCCL (issue 13): every collective, float to bfloat16, on a world of one (MPI's singleton start-up).
  if [ -x "${TEST_NCCL:-}" ]; then
    step "NCCL process group, world of one (test_nccl_group)" test_nccl.log 120 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$TEST_NCCL"
    if grep -q "SKIPPED" "$LOGS/test_nccl.log"; then note "WARNING: NCCL test SKIPPED"; failed=1; fi
  else
    note "WARNING: no test_nccl_group (build without MPI?): the NCCL group is untested"
  fi
  if [ -z "${PREBUILT:-}" ]; then step "every test (ctest)" ctest.log 1800 ctest --test-dir "$BUILD" --output-on-failure -j 4; fi
fi

# ---------------------------------------------------------------- compute-sanitizer
if [[ $PHASES == *,sanitizer,* ]]; then
  SAN=""
  for c in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
    [ -n "$c" ] && [ -x "$c" ] && { SAN=$c; break; }
  done
  if [ -n "$SAN" ]; then
    # The op tests under memcheck, racecheck and initcheck (the whole networks are too slow there; the
    # out-of-memory test fails a cudaMalloc on purpose, which memcheck would report).
    for tool in ${SAN_TOOLS:-memcheck racecheck initcheck}; do
      step "compute-sanitizer $tool" sanitizer_$tool.log 240 "$SAN" --tool $tool --error-exitcode 9 \
        env RESNET_TF32=0 RESNET_CUDNN_SEARCH=heuristic "$TEST_CUDA" --gpu "~[net]~[oom]"
    done
  else
    note "compute-sanitizer: NOT FOUND: sanitizer runs skipped"
    failed=1
  fi
fi

# ---------------------------------------------------------------- benchmarks
if [[ $PHASES == *,bench,* ]]; then
  if [ -n "${BENCH_BLOCK_ARGS:-}" ]; then read -r -a BB <<<"$BENCH_BLOCK_ARGS"; elif [ -n "${QUICK:-}" ]; then BB=(--quick); else BB=(); fi
  step "bench_block" bench_block.log 600 "$BENCH_BLOCK" --device cuda "${BB[@]}" --csv "$LOGS/bench_block.csv"
  # Least / median / largest per dtype and pass, into the summary (the per-row table is in the logs).
  [ -s "$LOGS/bench_block.csv" ] && python3 "$ROOT/tools/bench_block_summary.py" "$LOGS/bench_block.csv" | tee -a "$SUMMARY"
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
    paste -d' ' <(grep -E '^resnet' "$LOGS/bench_train_bn_on.log" | awk '{print $1, $2, $3, $5, "single-pass", $7}') \
      <(grep -E '^resnet' "$LOGS/bench_train_bn_off.log" | awk '{print "multi-pass", $7}') \
      <(grep -E '^resnet' "$LOGS/bench_train_bn_cluster.log" | awk '{print "clusters", $7}') |
      sed 's/^/      img\/s /' | tee -a "$SUMMARY"
  fi
fi

# ---------------------------------------------------------------- baselines (issue 17)
# One table, same run: PyTorch eager NCHW, channels_last, autocast bfloat16 in channels_last and (where the
# installed PyTorch has it) torch.compile of the last; ours NCHW and NHWC (RESNET_CUDA_NHWC=1), CUDA graphs
# off and on, float32 and bfloat16. Rows go to baselines.csv (who,arch,batch,size,variant,dtype,images_per_s)
# and the summary gets ours-best / PyTorch-best per dtype.
if [[ $PHASES == *,baselines,* ]]; then
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
          r=$(sed -n 's/^RESULT images_per_s=\([0-9.]*\).*/\1/p' "$LOGS/$log")
          [ -n "$r" ] && echo "torch,$arch,$batch,$BL_SIZE,$name,$dtype,$r" >>"$BL_CSV"
          grep -m1 '^SKIP' "$LOGS/$log" | sed "s/^/      torch $name: /" | tee -a "$SUMMARY"
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
  DATA=${TRAIN_DATA:-$ROOT/.gpu/data/catsdogs-128}
  read -r -a TA <<<"${TRAIN_ARGS:---arch resnet18 --size 112 --eval-size 128 --eval-crop 1.0 --epochs 30 --batch 128 --seed 1}"
  RUN=$(mktemp -d)/run
  note "train_catsdogs train --data $DATA ${TA[*]} --device cuda"
  step "train_catsdogs" train.log 3000 "$TRAIN" train --data "$DATA" "${TA[@]}" --device cuda --out "$RUN"
  cp "$RUN"/metrics.csv "$RUN"/curves.svg "$LOGS/" 2>/dev/null
  grep -E "av_test_acc|images/s" "$LOGS/train.log" | tail -n 4
  best=$(ls -t "$RUN" | grep '^epoch' | head -n 1)
  note "      best checkpoint: ${best:-none}"
  if [ -n "$best" ]; then
    # The checkpoint loads back onto the GPU: eval must reproduce the logged accuracy; predict two images.
    step "train_catsdogs eval (GPU)" eval.log 120 "$TRAIN" eval --data "$DATA" --weights "$RUN/$best" --device cuda
    tail -n 2 "$LOGS/eval.log" | sed 's/^/      /' | tee -a "$SUMMARY"
    imgs=$(find "$DATA/test" -name '*.jpg' | sort | sed -n '1p;$p')
    step "train_catsdogs predict (GPU)" predict.log 60 "$TRAIN" predict --weights "$RUN/$best" --device cuda $imgs
    sed 's/^/      /' "$LOGS/predict.log" | tail -n 3 | tee -a "$SUMMARY"
  fi
  pack_logs
fi

pack_logs
echo
echo "======== summary ($SUMMARY; every log in $OUTDIR/logs.tar.gz) after $((SECONDS - T0)) s"
cat "$SUMMARY"
exit $failed

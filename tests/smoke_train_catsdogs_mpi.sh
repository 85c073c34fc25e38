#!/usr/bin/env bash
# smoke_train_catsdogs_mpi.sh TRAIN_CATSDOGS SMOKE_MAKE_IMAGES [MPIRUN]
#
# train_catsdogs over 2 MPI ranks on a tiny synthetic set (ResNet-18 at 32x32, 48 training and 16 test
# images, global batch 8 = 2 x 4): one log (no line twice), the first line naming the world and each rank's
# device, one set of files; the run saved by 2 ranks finishes on 1 (no mpirun); Ctrl-C on one rank stops
# both at the same step (that run all-reduces its gradients in bfloat16); a global batch the ranks cannot split is refused. Exit 77 (skipped) without mpirun.
set -euo pipefail
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
BIN=$(abspath "$1")
MAKE_IMAGES=$(abspath "$2")
MPIRUN=${3:-$(command -v mpirun || true)}
[ -n "$MPIRUN" ] && [ -x "$MPIRUN" ] || { echo "SKIPPED: mpirun not found (apt-get install openmpi-bin)"; exit 77; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/smoke_catsdogs_mpi.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok: $*"; }
expect_in() { grep -qE -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks /$2/"; }; }

export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
MPI=("$MPIRUN" --allow-run-as-root --oversubscribe --bind-to none -np 2)
DATA=$WORK/data
"$MAKE_IMAGES" "$DATA" 24 8 >/dev/null
COMMON=(--data "$DATA" --arch resnet18 --size 32 --batch 8 --epochs 2 --seed 3 --threads 1 --workers 0 --log-every 2)

# ---- 2 ranks, stopped after epoch 1 ----
timeout 120 "${MPI[@]}" "$BIN" train "${COMMON[@]}" --out "$WORK/M" --stop-after-epoch 1 >"$WORK/M.log" 2>"$WORK/M.err" ||
  { cat "$WORK/M.log" "$WORK/M.err" >&2; fail "the 2-rank run exited $?"; }
cat "$WORK/M.log"
head -n 1 "$WORK/M.log" | grep -qE "^train_catsdogs: resnet18 .* on world 2 \(mpi.*\): rank 0 cpu.*, rank 1 cpu" ||
  fail "the first line should name the world of 2 and each rank's device"
expect_in "$WORK/M.log" "global batch 8 = 2 x 4"
dups=$(sort "$WORK/M.log" | uniq -d)
[ -z "$dups" ] || fail "lines printed more than once (by several ranks?): $dups"
[ "$(grep -c '^epoch 1 av_train_loss: ' "$WORK/M.log")" = 1 ] || fail "epoch 1's summary should appear once"
for b in 2 4 6; do expect_in "$WORK/M.log" "^\[epoch 1, batch $b\] loss: [0-9]+\.[0-9]{3}$"; done
expect_in "$WORK/M.log" "^epoch 1 av_test_acc: [01]\.[0-9]{3}$"
ok "one log in the seed's formats, naming both ranks"
[ -s "$WORK/M/last.safetensors" ] || fail "no last.safetensors"
[ "$(ls "$WORK/M" | grep -cE '^epoch1\+loss[0-9.]+\+acc[01]\.[0-9]{3}\+lr[0-9.]+\.safetensors$')" = 1 ] || fail "expected one epoch-1 checkpoint: $(ls "$WORK/M")"
[ "$(wc -l <"$WORK/M/metrics.csv")" = 2 ] || fail "metrics.csv should hold epoch 1 once"
[ -z "$(ls -a "$WORK/M" | grep -E '\.tmp\.|write_test')" ] || fail "temporary files left: $(ls -a "$WORK/M")"
[ "$(ls "$WORK/M" | wc -l)" = 4 ] || fail "one set of files expected, got: $(ls "$WORK/M")"
ok "one set of files: $(ls "$WORK/M" | tr '\n' ' ')"

# ---- the same run finishes on 1 rank, without mpirun ----
timeout 120 "$BIN" train --resume "$WORK/M/last.safetensors" --data "$DATA" --threads 1 --workers 0 >"$WORK/R.log" 2>"$WORK/R.err" ||
  { cat "$WORK/R.log" "$WORK/R.err" >&2; fail "resuming on 1 rank exited $?"; }
expect_in "$WORK/R.log" "^resuming .*last.safetensors at epoch 2, batch 1 \(step 6\)"
expect_in "$WORK/R.log" "^epoch 2 av_test_acc: [01]\.[0-9]{3}$"
[ "$(wc -l <"$WORK/M/metrics.csv")" = 3 ] || fail "after the resume metrics.csv should hold 2 epochs"
[ "$(grep -c '^epoch 1 ' "$WORK/R.log")" = 0 ] || fail "the resumed run repeated epoch 1"
ok "a run saved by 2 ranks resumes on 1"

# ---- Ctrl-C on rank 1 alone: both ranks stop after the same step, rank 0 writes last, exit 130 ----
timeout 120 "${MPI[@]}" "$BIN" train "${COMMON[@]}" --epochs 3 --log-every 1 --bf16-gradients on --out "$WORK/C" >"$WORK/C.log" 2>"$WORK/C.err" &
job=$!
for _ in $(seq 1 600); do
  grep -q '^\[epoch 1, batch 2\]' "$WORK/C.log" 2>/dev/null && break
  sleep 0.1
done
rank1=""
for p in $(pgrep -f -- "--out $WORK/C" || true); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && rank1=$p
done
[ -n "$rank1" ] || fail "rank 1's process not found"
kill -INT "$rank1"
rc=0
wait $job || rc=$?
[ "$rc" = 130 ] || { cat "$WORK/C.err" >&2; fail "Ctrl-C on rank 1 ended the job with $rc, expected 130"; }
expect_in "$WORK/C.err" "^train_catsdogs: interrupted at step [0-9]+; wrote .*C/last.safetensors"
step=$(sed -n 's/^train_catsdogs: interrupted at step \([0-9]*\);.*/\1/p' "$WORK/C.err")
[ "$(grep -c '^\[epoch' "$WORK/C.log")" = "$step" ] || fail "rank 0 logged $(grep -c '^\[epoch' "$WORK/C.log") steps but stopped at $step"
[ -s "$WORK/C/last.safetensors" ] || fail "no last.safetensors after Ctrl-C"
expect_in "$WORK/C.log" "global batch 8 = 2 x 4, bfloat16 gradients"
ok "Ctrl-C on one rank stops both after step $step; last written"

# ---- a global batch 2 ranks cannot split ----
rc=0
timeout 60 "${MPI[@]}" "$BIN" train "${COMMON[@]}" --batch 9 --out "$WORK/X" >"$WORK/X.log" 2>"$WORK/X.err" || rc=$?
[ "$rc" != 0 ] || fail "--batch 9 over 2 ranks should fail"
[ "$rc" != 124 ] || fail "--batch 9 over 2 ranks hung"
expect_in "$WORK/X.err" "--batch 9 \(the global batch\) does not split evenly over 2 ranks"
[ ! -e "$WORK/X" ] || fail "the refused run created its output folder"
ok "--batch 9 over 2 ranks is refused (exit $rc)"
echo "smoke_train_catsdogs_mpi: all checks passed in $((SECONDS - START)) s"

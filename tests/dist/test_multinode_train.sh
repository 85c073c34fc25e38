#!/usr/bin/env bash
# test_multinode_train.sh TRAIN_CATSDOGS SMOKE_MAKE_IMAGES [train|dies|partition]...
#
# train_catsdogs on 2 hosts (network namespaces joined by a veth link, tools/netns_cluster.sh; the data and
# --out on the file system both see, as on a shared file system), 1 rank each, ResNet-18 at 32 px on a tiny
# generated image folder:
#   train:     one log, one set of files; the run saved by 2 hosts finishes on 1 host (no mpirun);
#   dies:      every process of host 2 SIGKILLed mid-run (a machine that dies): the job ends non-zero
#              within 60 s;
#   partition: host 2's cable unplugged mid-run after epoch 1 was saved: the job ends within
#              RESNET_DIST_TIMEOUT_S + 30 s, non-zero, naming the rank and the call that waited; the files
#              written before still load (eval) and resume.
# With no scenario named, all three. Exit 77 (skipped) without root/namespaces or mpirun.
set -euo pipefail
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
BIN=$(abspath "$1")
MAKE_IMAGES=$(abspath "$2")
shift 2
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(train dies partition)
# A short timeout, so that the partition is noticed within the test's time.
export RESNET_DIST_TIMEOUT_S=10
# shellcheck source=multinode_lib.sh
source "$(dirname "$0")/multinode_lib.sh"
[ -x "$BIN" ] || fail "no train_catsdogs program $BIN"
cluster_up 2

DATA=$WORK/data
"$MAKE_IMAGES" "$DATA" 24 8 >/dev/null
COMMON=(--data "$DATA" --arch resnet18 --size 32 --batch 8 --seed 3 --threads 1 --workers 0 --log-every 1)
TWO_HOSTS=("${MPI[@]}" -H "$H1:1,$H2:1" -np 2)

# start_long_run NAME: a 2-host run that would take minutes, in the background (pid in $job).
start_long_run() {
  timeout 300 "${TWO_HOSTS[@]}" "$BIN" train "${COMMON[@]}" --epochs 500 --out "$WORK/$1" >"$WORK/$1.log" 2>"$WORK/$1.err" &
  job=$!
}
# finish_within NAME SECONDS: wait for the job; sets rc and elapsed (from now), fails if it outlives SECONDS.
finish_within() {
  local t0=$SECONDS
  for _ in $(seq 1 $(($2 * 10))); do
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$job" 2>/dev/null; then
    cat "$WORK/$1.log" "$WORK/$1.err" >&2
    fail "$1: the job still runs $2 s later"
  fi
  rc=0
  wait "$job" || rc=$?
  elapsed=$((SECONDS - t0))
  cat "$WORK/$1.err"
}

scenario_train() {
  timeout 120 "${TWO_HOSTS[@]}" "$BIN" train "${COMMON[@]}" --epochs 2 --stop-after-epoch 1 --log-every 2 \
    --out "$WORK/M" >"$WORK/M.log" 2>"$WORK/M.err" || { cat "$WORK/M.log" "$WORK/M.err" >&2; fail "the 2-host run exited $?"; }
  cat "$WORK/M.log"
  head -n 1 "$WORK/M.log" | grep -qE "^train_catsdogs: resnet18 .* on world 2 \(mpi.*\): rank 0 cpu.*, rank 1 cpu" ||
    fail "the first line should name the world of 2 and each rank's device"
  expect_in "$WORK/M.log" "global batch 8 = 2 x 4"
  local dups
  dups=$(sort "$WORK/M.log" | uniq -d)
  [ -z "$dups" ] || fail "lines printed more than once (by both hosts?): $dups"
  [ "$(grep -c '^epoch 1 av_train_loss: ' "$WORK/M.log")" = 1 ] || fail "epoch 1's summary should appear once"
  expect_in "$WORK/M.log" "^epoch 1 av_test_acc: [01]\.[0-9]{3}$"
  [ "$(ls "$WORK/M" | grep -cE '^epoch1\+.*\.safetensors$')" = 1 ] || fail "expected one epoch-1 checkpoint: $(ls "$WORK/M")"
  [ "$(wc -l <"$WORK/M/metrics.csv")" = 2 ] || fail "metrics.csv should hold epoch 1 once"
  [ -z "$(ls -a "$WORK/M" | grep -E '\.tmp\.|write_test')" ] || fail "temporary files left: $(ls -a "$WORK/M")"
  [ "$(ls "$WORK/M" | wc -l)" = 4 ] || fail "one set of files expected, got: $(ls "$WORK/M")"
  ok "2 hosts: one log, one set of files: $(ls "$WORK/M" | tr '\n' ' ')"
  timeout 120 "$CLUSTER" exec "$H1" "$BIN" train --resume "$WORK/M/last.safetensors" --data "$DATA" --threads 1 --workers 0 \
    >"$WORK/R.log" 2>"$WORK/R.err" || { cat "$WORK/R.log" "$WORK/R.err" >&2; fail "resuming on 1 host exited $?"; }
  expect_in "$WORK/R.log" "^resuming .*last.safetensors at epoch 2, batch 1 \(step 6\)"
  expect_in "$WORK/R.log" "^epoch 2 av_test_acc: [01]\.[0-9]{3}$"
  [ "$(wc -l <"$WORK/M/metrics.csv")" = 3 ] || fail "after the resume metrics.csv should hold 2 epochs"
  ok "the run saved by 2 hosts finishes on 1 host"
}

scenario_dies() {
  start_long_run D
  wait_for "$WORK/D.log" '^\[epoch 1, batch 2\]' 120 || { cat "$WORK/D.log" "$WORK/D.err" >&2; fail "dies: the run never reached batch 2"; }
  "$CLUSTER" kill "$H2"
  finish_within D 60
  [ "$rc" != 0 ] || fail "dies: the job exited 0 after $H2 died"
  [ "$rc" != 124 ] || fail "dies: the job hung until timeout"
  ok "$H2 SIGKILLed mid-run: the job ended with exit $rc after $elapsed s"
}

scenario_partition() {
  start_long_run P
  wait_for "$WORK/P.log" '^epoch 1 av_test_acc' 120 || { cat "$WORK/P.log" "$WORK/P.err" >&2; fail "partition: the run never finished epoch 1"; }
  wait_for "$WORK/P.log" '^\[epoch 2, batch 2\]' 60 || { cat "$WORK/P.log" "$WORK/P.err" >&2; fail "partition: the run never reached epoch 2"; }
  "$CLUSTER" link "$H2" down
  finish_within P $((RESNET_DIST_TIMEOUT_S + 30))
  [ "$rc" != 0 ] || fail "partition: the job exited 0 although $H2 was cut off"
  [ "$rc" != 124 ] || fail "partition: the job hung until timeout"
  # Rank 0 (on host 1, with mpirun) names the collective it waited in and for how long.
  grep -qE "on rank 0 of 2 has not completed after [0-9.]+ ?s" "$WORK/P.err" ||
    fail "partition: no message naming rank 0 and the call that waited"
  ok "$H2 cut off mid-run: the job ended with exit $rc after $elapsed s: $(grep -m1 -oE 'MPI_[A-Za-z]+ \(.*\) on rank 0 of 2 has not completed after [0-9.]+ ?s' "$WORK/P.err")"
  # The cut-off host cleans up by itself too: its rank times out as well, and its daemon, which cannot
  # reach mpirun, gives up and ends what it started (nothing left to hold the host's GPUs or ports).
  local left=""
  for _ in $(seq 1 300); do
    left=$(ip netns pids "$H2")
    [ -n "$left" ] || break
    sleep 0.1
  done
  [ -z "$left" ] || fail "partition: processes still run on $H2 30 s after the job ended: $(ps -o pid=,args= -p "$(echo $left | tr ' ' ,)" | cut -c1-80)"
  ok "$H2, cut off, ended its own processes"
  "$CLUSTER" link "$H2" up
  local ckpt
  ckpt=$(ls "$WORK/P" | grep -E '^epoch1\+.*\.safetensors$')
  for f in last.safetensors "$ckpt"; do
    timeout 60 "$CLUSTER" exec "$H1" "$BIN" eval --weights "$WORK/P/$f" --data "$DATA" --threads 1 >"$WORK/E.log" 2>&1 ||
      { cat "$WORK/E.log" >&2; fail "partition: $f, written before the cut, does not load"; }
  done
  timeout 120 "$CLUSTER" exec "$H1" "$BIN" train --resume "$WORK/P/last.safetensors" --data "$DATA" --threads 1 --workers 0 \
    --stop-after-epoch 2 >"$WORK/PR.log" 2>&1 || { cat "$WORK/PR.log" >&2; fail "partition: resuming last.safetensors on 1 host failed"; }
  expect_in "$WORK/PR.log" "^resuming .*last.safetensors at epoch 2"
  ok "what was written before the cut loads (eval of last and $ckpt) and resumes on 1 host"
}

for s in "${SCENARIOS[@]}"; do
  case $s in
    train | dies | partition) "scenario_$s" ;;
    *) fail "unknown scenario '$s' (train, dies, partition)" ;;
  esac
done
echo "test_multinode_train (${SCENARIOS[*]}): all checks passed in $((SECONDS - START)) s"

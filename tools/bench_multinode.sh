#!/usr/bin/env bash
# bench_multinode.sh BUILD_DIR OUT_DIR     (then: tools/scaling_model.py --compare OUT_DIR)
#
# ResNet-18 data-parallel training on 2 hosts x 1 rank (tools/netns_cluster.sh: namespaces joined by a veth
# link, mpirun over TCP) with the link shaped to 1, 2.5 and 10 Gbit/s and unshaped, against what
# tools/scaling_model.py predicts for the same link and the same measured compute. Per link and round:
#   link:    one TCP stream's payload rate host 1 -> host 2 (what the link carries with the CPUs idle);
#   comm:    bench_dist at 32 px (compute ~5% of the step): MPI busy ms/step = the buckets' all-reduce alone;
#   compute: the same two ranks' work as two lone processes at once (no communication, both cores busy as
#            in the 2-rank run), the slower one's step, just before and just after the 2-host run (a pair
#            more than 10% apart means the machine's speed changed: the run is repeated, 3 tries);
#   train:   bench_dist at 128 px, batch 16 (8 a rank): step ms, the ms/step rank 0's backward waited for
#            the all-reduce, the exposed communication (per step the least any rank waited: the last rank
#            to end its backward waits for the network alone), and MPI busy;
# with 25 MiB buckets on every link, 5 MiB on 1 Gbit/s, and bfloat16 gradients (half the bytes) on 1 Gbit/s. Rounds (ROUNDS, default 2) go over all of it in
# turn, so that a change in the machine's load hits every link. Then dp_timeline: when each gradient is
# final in one rank's step (two at once, as the ranks run); then tools/bench_link_allreduce.sh (each link's
# all-reduce alone). Writes OUT_DIR/measured.csv, OUT_DIR/timeline.csv and OUT_DIR/alone.csv. Needs root;
# run it on an otherwise idle machine.
set -euo pipefail
BUILD=${1:?usage: bench_multinode.sh BUILD_DIR OUT_DIR}
DIR=${2:?usage: bench_multinode.sh BUILD_DIR OUT_DIR}
# Under a real-time policy (chrt -f) each rank's compute thread never yields its core to the communication
# thread, so nothing overlaps: every all-reduce waits for the backward pass to end (measured: the exposed
# time equals MPI's busy time). The ranks must run as users run them.
if chrt -p $$ 2>/dev/null | grep -q 'SCHED_FIFO\|SCHED_RR'; then
  echo "bench_multinode.sh: runs under a real-time policy ($(chrt -p $$ | head -n 1)); run it without chrt" >&2
  exit 2
fi
mkdir -p "$DIR"
OUT=$DIR/measured.csv
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-8}
BENCH=$BUILD/benchmarks/bench_dist
TIMELINE=$BUILD/tests/dist/dp_timeline
[ -x "$BENCH" ] && [ -x "$TIMELINE" ] || { echo "bench_multinode.sh: build bench_dist and dp_timeline in $BUILD first" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=$ROOT/tools/netns_cluster.sh
export RESNET_NETNS_PREFIX=rnbench
H1=${RESNET_NETNS_PREFIX}1 H2=${RESNET_NETNS_PREFIX}2
trap '"$CLUSTER" down' EXIT
"$CLUSTER" down
"$CLUSTER" up 2 >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
eval "FLAGS=($("$CLUSTER" mpi-flags))"
MPI=("$CLUSTER" exec "$H1" mpirun "${FLAGS[@]}" --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -H "$H1:1,$H2:1" -np 2)
COMMON=(--arch resnet18 --threads 1 --steps "$STEPS" --warmup 3)

stream_gbit() {
  "$CLUSTER" exec "$H2" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.2", 5001)); s.listen(1)
c, _ = s.accept(); got, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t0 is None: t0 = time.time()
    got += len(b)
print(f"{got * 8 / (time.time() - t0) / 1e9:.3f}")' >/tmp/bench_multinode.tput &
  local server=$!
  for _ in $(seq 1 50); do "$CLUSTER" exec "$H2" ss -ltn | grep -q ':5001 ' && break; sleep 0.1; done
  "$CLUSTER" exec "$H1" python3 -c '
import socket
c = socket.create_connection(("198.18.0.2", 5001)); buf = b"x" * (1 << 20)
for _ in range(150): c.sendall(buf)
c.close()'
  wait "$server"
  cat /tmp/bench_multinode.tput
}

# The compute alone, right before each 2-host run it is paired with: the slower of the two lone ranks.
compute_ms() {
  local a
  a=$("$CLUSTER" exec "$H1" "$BENCH" "${COMMON[@]}" --size 128 --batch 8 --bucket-mb "$1" --bf16-gradients "$2" &
    "$CLUSTER" exec "$H2" "$BENCH" "${COMMON[@]}" --size 128 --batch 8 --bucket-mb "$1" --bf16-gradients "$2"
    wait)
  echo "$a" | sed -n 's/.*step \([0-9.]*\) ms.*/\1/p' | sort -n | tail -1
}
ms() { sed -n "s/.*$1 \([0-9.]*\) ms.*/\1/p"; }

echo "link,bucket_mb,bf16,round,stream_gbit,comm_busy_ms,compute_ms,step_ms,wait_ms,exposed_ms,busy_ms" >"$OUT"
for round in $(seq 1 "$ROUNDS"); do
  # 25 MiB buckets (the default) on every link; 5 MiB and bfloat16 gradients on the slowest, where the
  # all-reduce takes longer than the backward pass.
  for run in 1gbit:25:off 1gbit:5:off 1gbit:25:on 1gbit:5:on 2500mbit:25:off 10gbit:25:off none:25:off; do
    IFS=: read -r link bucket bf16 <<<"$run"
    ARGS=(--bucket-mb "$bucket" --bf16-gradients "$bf16")
    # The compute alone just before and just after the 2-host run: a pair more than 10% apart means the
    # machine's speed changed meanwhile (other load), and the run is repeated (3 tries).
    for try in 1 2 3; do
      "$CLUSTER" rate none
      before=$(compute_ms "$bucket" "$bf16")
      "$CLUSTER" rate "$link"
      gbit=$(stream_gbit)
      c=$("${MPI[@]}" "$BENCH" "${COMMON[@]}" --size 32 --batch 4 "${ARGS[@]}" 2>&1 | grep '^bench_dist')
      t=$("${MPI[@]}" "$BENCH" "${COMMON[@]}" --size 128 --batch 16 "${ARGS[@]}" 2>&1 | grep '^bench_dist')
      "$CLUSTER" rate none
      after=$(compute_ms "$bucket" "$bf16")
      echo "round $round, $link, $bucket MiB buckets, bfloat16 gradients $bf16, try $try: stream $gbit Gbit/s; compute alone $before / $after ms; $c; $t" >&2
      awk -v a="$before" -v b="$after" 'BEGIN { exit !(a < 1.1 * b && b < 1.1 * a) }' && break
    done
    compute=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.1f", (a + b) / 2 }')
    echo "$link,$bucket,$bf16,$round,$gbit,$(echo "$c" | ms "MPI busy"),$compute,$(echo "$t" | ms step),$(echo "$t" | ms "waiting for all-reduce"),$(echo "$t" | ms exposed),$(echo "$t" | ms "MPI busy")" >>"$OUT"
  done
done
"$CLUSTER" rate none
"$CLUSTER" exec "$H2" "$TIMELINE" --batch 8 --size 128 >/dev/null &
"$CLUSTER" exec "$H1" "$TIMELINE" --batch 8 --size 128 >"$DIR/timeline.csv"
wait
head -n 1 "$DIR/timeline.csv" >&2
# Last, each link's all-reduce alone at the buckets' sizes (alone.csv): the model's link input.
"$CLUSTER" down
trap - EXIT
"$ROOT/tools/bench_link_allreduce.sh" "$BUILD" "$DIR"
echo "bench_multinode.sh: wrote $OUT and $DIR/timeline.csv ($(lscpu | sed -n 's/^Model name: *//p'), $(getconf _NPROCESSORS_ONLN) cores)" >&2

#!/usr/bin/env bash
# bench_link_allreduce.sh BUILD_DIR OUT_DIR     (tools/bench_multinode.sh runs it last)
#
# The all-reduce alone on each link tools/bench_multinode.sh trains over: 2 hosts x 1 rank
# (tools/netns_cluster.sh), bench_allreduce_skew at the sizes of ResNet-18's gradient buckets, float32 and
# bfloat16, the last rank joining at once and 20 ms late. tools/scaling_model.py --compare fits each link's
# all-reduce cost from these rows (what a collective costs, the link's rate; the shaper's burst is known) and
# checks that a late joiner waits no less than a punctual one (nothing is sent before every rank has joined).
# Writes OUT_DIR/alone.csv. Needs root; run it on an otherwise idle machine.
set -euo pipefail
BUILD=${1:?usage: bench_link_allreduce.sh BUILD_DIR OUT_DIR}
DIR=${2:?usage: bench_link_allreduce.sh BUILD_DIR OUT_DIR}
mkdir -p "$DIR"
OUT=$DIR/alone.csv
BENCH=$BUILD/benchmarks/bench_allreduce_skew
[ -x "$BENCH" ] || { echo "bench_link_allreduce.sh: build bench_allreduce_skew in $BUILD first" >&2; exit 1; }
BENCH=$(cd "$(dirname "$BENCH")" && pwd)/$(basename "$BENCH")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=$ROOT/tools/netns_cluster.sh
export RESNET_NETNS_PREFIX=rnlink
H1=${RESNET_NETNS_PREFIX}1 H2=${RESNET_NETNS_PREFIX}2
trap '"$CLUSTER" down' EXIT
"$CLUSTER" down
"$CLUSTER" up 2 >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
eval "FLAGS=($("$CLUSTER" mpi-flags))"
MPI=("$CLUSTER" exec "$H1" mpirun "${FLAGS[@]}" --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY -H "$H1:1,$H2:1" -np 2)

echo "link,float_mb,bf16,wire_mb,skew_ms,early_ms,late_ms" >"$OUT"
for link in none 10gbit 2500mbit 1gbit; do
  "$CLUSTER" rate "$link"
  # Float32 megabytes of the buckets ResNet-18 makes with 25 and 5 MiB bucket caps (tools/scaling_model.py).
  for run in 0.53:off 1.52:off 4.8:off 9.44:off 25.29:off 1.52:on 9.44:on 25.29:on; do
    IFS=: read -r mb bf16 <<<"$run"
    "${MPI[@]}" "$BENCH" --mb "$mb" --bf16 "$bf16" --skew-ms 0,20 --steps 7 --warmup 2 2>&1 | grep '^bench_allreduce_skew' |
      tee /dev/stderr |
      sed -n "s/^bench_allreduce_skew \([0-9.]*\) MB.*skew \([0-9.]*\) ms: early rank \([0-9.]*\) ms, late rank \([0-9.]*\) ms/\1,\2,\3,\4/p" |
      while IFS=, read -r wire skew early late; do echo "$link,$mb,$bf16,$wire,$skew,$early,$late" >>"$OUT"; done
  done
done
"$CLUSTER" rate none
echo "bench_link_allreduce.sh: wrote $OUT ($(lscpu | sed -n 's/^Model name: *//p'), $(getconf _NPROCESSORS_ONLN) cores)" >&2

#!/usr/bin/env bash
# bench_dist.sh BENCH_DIST [bench_dist flags...]
#
# The CPU data-parallel comparison, in one invocation: the same global batch trained as
# 1 rank x 2 threads and as 2 ranks x 1 thread (mpirun), alternating ROUNDS times (default 2) so a change in
# the machine's load hits both, then the ratio of their best rates. Run it on an otherwise idle machine
# (chrt -f 10 where permitted).
set -euo pipefail
BIN=$1
shift
ROUNDS=${ROUNDS:-2}
command -v mpirun >/dev/null || { echo "bench_dist.sh: mpirun not found (tools/setup.sh installs openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
best1=0
best2=0
rate() { sed -n 's/.*: \([0-9.]*\) img\/s.*/\1/p'; }
for r in $(seq "$ROUNDS"); do
  line1=$(OMP_NUM_THREADS=2 "$BIN" --threads 2 "$@")
  echo "$line1"
  line2=$(mpirun --oversubscribe -np 2 -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY --bind-to none "$BIN" --threads 1 "$@")
  echo "$line2"
  best1=$(echo "$line1" | rate | awk -v b="$best1" '{ print ($1 > b) ? $1 : b }')
  best2=$(echo "$line2" | rate | awk -v b="$best2" '{ print ($1 > b) ? $1 : b }')
done
echo "bench_dist.sh: best of $ROUNDS: 1 rank x 2 threads $best1 img/s, 2 ranks x 1 thread $best2 img/s: $(awk -v a="$best2" -v b="$best1" 'BEGIN { printf "%.2f", a / b }')x"

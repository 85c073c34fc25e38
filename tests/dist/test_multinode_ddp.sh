#!/usr/bin/env bash
# test_multinode_ddp.sh TEST_DDP BENCH_DIST RANKS_PER_HOST
#
# Data parallelism across 2 hosts (network namespaces joined by a veth link, tools/netns_cluster.sh) with
# RANKS_PER_HOST ranks on each, started by mpirun through the rsh agent as on real machines:
# 1. test_ddp: SyncBatchNorm and BN-free nets on 2 x RANKS_PER_HOST ranks equal one process with the whole
#    batch to 1e-10 in double (its own CHECKs), with the ranks' hostnames showing two machines;
# 2. the bytes went over TCP on the link: mpirun allows only the tcp BTL between hosts (self and vader reach
#    no other host), and one training step of ResNet-18 (bench_dist: 46.8 MB broadcast at construction, then
#    46.8 MB all-reduced) grows each host's link counters by at least those bytes in each direction;
# 3. with --bf16-gradients on, an all-reduce moves half those bytes (0.4-0.6 of float32's).
# Exit 77 (skipped) without root/namespaces or mpirun.
set -euo pipefail
TEST_DDP=$1 BENCH_DIST=$2 PER_HOST=$3
# shellcheck source=multinode_lib.sh
source "$(dirname "$0")/multinode_lib.sh"
[ -x "$TEST_DDP" ] || fail "no test program $TEST_DDP"
[ -x "$BENCH_DIST" ] || fail "no bench_dist program $BENCH_DIST"
[[ "$PER_HOST" =~ ^[12]$ ]] || fail "RANKS_PER_HOST must be 1 or 2, not '$PER_HOST'"
NP=$((2 * PER_HOST))
cluster_up 2

# ---- equivalence, with the ranks on two machines ----
timeout 120 "${MPI[@]}" -H "$H1:$PER_HOST,$H2:$PER_HOST" -np "$NP" --map-by node --tag-output \
  sh -c 'echo "rank $OMPI_COMM_WORLD_RANK on $(hostname)"' >"$WORK/where.log" 2>&1 || { cat "$WORK/where.log"; fail "mpirun across 2 hosts failed"; }
cat "$WORK/where.log"
[ "$(grep -c " on $H1\$" "$WORK/where.log")" = "$PER_HOST" ] && [ "$(grep -c " on $H2\$" "$WORK/where.log")" = "$PER_HOST" ] ||
  fail "expected $PER_HOST rank(s) on each of $H1 and $H2"
timeout 120 "${MPI[@]}" -H "$H1:$PER_HOST,$H2:$PER_HOST" -np "$NP" "$TEST_DDP" --use-colour no >"$WORK/ddp.log" 2>&1 ||
  { cat "$WORK/ddp.log"; fail "test_ddp on 2 hosts x $PER_HOST rank(s) failed"; }
expect_in "$WORK/ddp.log" "All tests passed"
ok "test_ddp on 2 hosts x $PER_HOST rank(s): $(grep -m1 'All tests passed' "$WORK/ddp.log")"

# ---- the bytes between hosts go over the link ----
# ResNet-18 with 1000 classes: 11,689,512 float32 parameters.
S=$((11689512 * 4))
rx1=$(rx_bytes "$H1") tx1=$(tx_bytes "$H1") rx2=$(rx_bytes "$H2") tx2=$(tx_bytes "$H2")
timeout 120 "${MPI[@]}" -H "$H1:$PER_HOST,$H2:$PER_HOST" -np "$NP" "$BENCH_DIST" --arch resnet18 --size 32 \
  --batch $((2 * NP)) --steps 1 --warmup 0 >"$WORK/bench.log" 2>&1 || { cat "$WORK/bench.log"; fail "bench_dist on 2 hosts failed"; }
cat "$WORK/bench.log"
expect_in "$WORK/bench.log" "^bench_dist resnet18 batch $((2 * NP)) .*: $NP rank\(s\) x 1 thread"
d_rx1=$(($(rx_bytes "$H1") - rx1)) d_tx1=$(($(tx_bytes "$H1") - tx1))
d_rx2=$(($(rx_bytes "$H2") - rx2)) d_tx2=$(($(tx_bytes "$H2") - tx2))
echo "link bytes during one ResNet-18 step: $H1 rx $d_rx1 tx $d_tx1, $H2 rx $d_rx2 tx $d_tx2 (parameters: $S bytes)"
# H2 receives rank 0's parameters (broadcast) and, in the all-reduce, what H1's ranks summed: each >= S.
[ "$d_rx2" -ge $((2 * S)) ] || fail "$H2 received $d_rx2 bytes on its link, less than broadcast + all-reduce ($((2 * S)))"
# H1 receives at least the all-reduce's half of every gradient reduced on H2 and all of the result share.
[ "$d_rx1" -ge "$S" ] || fail "$H1 received $d_rx1 bytes on its link, less than one all-reduce ($S)"
ok "the link carried the broadcast and the all-reduce: $H2 rx $((d_rx2 / 1000000)) MB, $H1 rx $((d_rx1 / 1000000)) MB"

# ---- bfloat16 gradients: the all-reduce's bytes halve ----
# The broadcast at construction crosses the link once or twice depending on where the ranks sit, so the
# all-reduce's bytes are the difference between runs of 3 and 1 steps (two all-reduces).
step_rx() {  # ARGS...: H2's received bytes during a bench_dist run
  local before
  before=$(rx_bytes "$H2")
  timeout 120 "${MPI[@]}" -H "$H1:$PER_HOST,$H2:$PER_HOST" -np "$NP" "$BENCH_DIST" --arch resnet18 --size 32 \
    --batch $((2 * NP)) --warmup 0 "$@" >"$WORK/bench_rx.log" 2>&1 || { cat "$WORK/bench_rx.log"; fail "bench_dist $* on 2 hosts failed"; }
  echo $(($(rx_bytes "$H2") - before))
}
wide=$((($(step_rx --steps 3) - $(step_rx --steps 1)) / 2))
narrow=$((($(step_rx --steps 3 --bf16-gradients on) - $(step_rx --steps 1 --bf16-gradients on)) / 2))
expect_in "$WORK/bench_rx.log" "bfloat16 gradients"
echo "$H2 rx per all-reduce: float32 gradients $wide bytes, bfloat16 $narrow"
[ $((narrow * 10)) -ge $((wide * 4)) ] && [ $((narrow * 10)) -le $((wide * 6)) ] ||
  fail "the bfloat16 all-reduce moved $narrow bytes into $H2, not about half of float32's $wide"
ok "bfloat16 gradients: an all-reduce moves $((narrow / 1000000)) MB into $H2 instead of $((wide / 1000000))"
echo "test_multinode_ddp ($PER_HOST per host): all checks passed in $((SECONDS - START)) s"

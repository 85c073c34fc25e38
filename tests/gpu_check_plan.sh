#!/usr/bin/env bash
# gpu_check_plan.sh SOURCE_DIR: tools/gpu_check.sh --plan, on any machine (no GPU): the one-call GPU check
# lists its steps in the promised order (the default path first: test_cuda_sync and the Trainer steps, then
# the sanitizers, the rest of the suite, the timings), their caps sum to no more than the 560 s budget, and a
# smaller budget is refused.
set -euo pipefail
SRC=$1
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
out=$(env -u PHASES -u BUDGET_S "$SRC/tools/gpu_check.sh" --plan) || fail "--plan exited $? with the default budget:
$out"
echo "$out"
sum=$(echo "$out" | sed -n 's/^sum of caps: \([0-9]*\) s, budget \([0-9]*\) s.*/\1/p')
budget=$(echo "$out" | sed -n 's/^sum of caps: \([0-9]*\) s, budget \([0-9]*\) s.*/\2/p')
[ -n "$sum" ] || fail "no 'sum of caps' line"
[ "$budget" = 560 ] || fail "the default budget is $budget s, expected 560"
[ "$sum" -le 560 ] || fail "the caps sum to $sum s, over 560"
# The listed caps add up to the printed sum.
added=$(echo "$out" | awk '$2 ~ /^[0-9]+$/ && $3 == "s" { t += $2 } END { print t }')
[ "$added" = "$sum" ] || fail "the steps' caps add to $added, the plan says $sum"
# Phases in order, each present.
phases=$(echo "$out" | awk '$2 ~ /^[0-9]+$/ && $3 == "s" { print $1 }' | uniq | tr '\n' ' ')
[ "$phases" = "default sanitizer suite timings " ] || fail "phases in the order '$phases'"
# The default path's steps come first, test_cuda_sync before the Trainer, each Trainer step present.
steps=$(echo "$out" | awk '$2 ~ /^[0-9]+$/ && $3 == "s"' | cut -c 22-)
first=$(echo "$steps" | sed -n '2p')
[[ $first == *test_cuda_sync* ]] || fail "the second step is '$first', expected test_cuda_sync"
for want in "epoch 1 of 2 with evaluation, checkpoint" "resume into device state" "eval of the checkpoint" \
  "folded BatchNorm" "NaN stop" "memcheck" "racecheck"; do
  echo "$steps" | grep -qF "$want" || fail "no step '$want'"
done
# Over budget: refused.
if env BUDGET_S=300 "$SRC/tools/gpu_check.sh" --plan >/dev/null; then fail "a 300 s budget was accepted"; fi
echo "ok: $sum s of caps in a 560 s budget"

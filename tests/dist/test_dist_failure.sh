#!/bin/sh
# A rank that dies or hangs ends the whole job with a non-zero exit in bounded time.
# usage: test_dist_failure.sh MPIEXEC NUMPROC_FLAG WORKER MODE
# Runs `MPIEXEC NUMPROC_FLAG 2 WORKER MODE` under `timeout 90` and requires: exit code != 0, elapsed < 60 s,
# and (hang) the timeout message naming the call and the rank.
set -u
mpiexec=$1 npflag=$2 worker=$3 mode=$4
if [ ! -x "$mpiexec" ]; then echo "SKIPPED: no mpiexec ($mpiexec)"; exit 77; fi
if [ ! -x "$worker" ]; then echo "FAIL: no worker program $worker"; exit 1; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
[ "$mode" = hang ] && export RESNET_DIST_TIMEOUT_S=3
log=$(mktemp)
start=$(date +%s)
timeout 90 "$mpiexec" "$npflag" 2 "$worker" "$mode" >"$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$log"
echo "test_dist_failure ($mode): exit code $rc after ${elapsed} s"
fail=0
if [ "$rc" -eq 0 ]; then echo "FAIL: the job exited 0 although rank 1 failed"; fail=1; fi
if [ "$rc" -eq 124 ] || [ "$elapsed" -ge 60 ]; then echo "FAIL: the job did not end within 60 s"; fail=1; fi
if ! grep -q "dist_failure_worker: rank 1 fails ($mode)" "$log"; then echo "FAIL: rank 1 never reached its failure"; fail=1; fi
if grep -q "finished, which it must not" "$log"; then echo "FAIL: a rank ran to the end"; fail=1; fi
if [ "$mode" = hang ] && ! grep -q "MPI_Iallreduce (all_reduce (average) of float32\[1023\] on cpu) on rank 0 of 2 has not completed after" "$log"; then
  echo "FAIL: no timeout message naming the call and rank 0"; fail=1
fi
rm -f "$log"
exit $fail

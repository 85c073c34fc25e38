#!/usr/bin/env bash
# test_multinode_srun.sh TEST_DDP TRAIN_CATSDOGS SMOKE_MAKE_IMAGES
#
# Slurm on 2 hosts (network namespaces joined by a veth link, tools/netns_cluster.sh): a slurmctld on host 1,
# a slurmd on each, munge for their credentials; then `srun --nodes 2 --ntasks-per-node 1 --mpi=pmix`, as
# on a real cluster without mpirun: srun places one task on each host, and test_ddp started by it (MPI_Init
# through Slurm's PMIx, TCP between the hosts) equals one process with the whole batch to 1e-10, and
# train_catsdogs started by it trains as one job of 2 ranks (one log naming srun, one set of files).
# Exit 77 (skipped) without root/namespaces, mpirun, or Slurm (slurmctld, slurmd, srun, munged: Debian's
# slurmctld slurmd slurm-client munge, which tools/setup.sh installs).
set -euo pipefail
TEST_DDP=$1 BIN=$2 MAKE_IMAGES=$3
for tool in slurmctld slurmd srun munged; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not found (apt-get install slurmctld slurmd slurm-client munge)"; exit 77; }
done
[ -r /etc/munge/munge.key ] || { echo "SKIPPED: no /etc/munge/munge.key (the munge package makes one)"; exit 77; }
# slurmd needs a cgroup plugin; the hosts get cgroup v1 hierarchies mounted for it (below). A machine with
# cgroup v2 alone would need slurmd's cgroup/v2 set up (with systemd or IgnoreSystemd): not done here.
grep -qE '^[0-9]+:[a-z,]*cpu[a-z,]*:' /proc/self/cgroup ||
  { echo "SKIPPED: no cgroup v1 cpu hierarchy (cgroup v2 only); this test mounts v1 hierarchies for slurmd"; exit 77; }
# shellcheck source=multinode_lib.sh
source "$(dirname "$0")/multinode_lib.sh"
[ -x "$TEST_DDP" ] || fail "no test program $TEST_DDP"
[ -x "$BIN" ] && [ -x "$MAKE_IMAGES" ] || fail "no train_catsdogs ($BIN) or smoke_make_images ($MAKE_IMAGES)"
cluster_up 2

# Everything Slurm keeps on disk under $WORK, per host where the hosts would otherwise collide (they share
# the file system, /tmp included). Daemons run inside the hosts, so `down` ends them.
S=$WORK/slurm
mkdir -p "$S/ctld" "$S/$H1/spool" "$S/$H2/spool" "$S/$H1/pmix" "$S/$H2/pmix" "$S/pmix" "$S/munge"
chmod 755 "$WORK" "$S"  # munged runs as munge and must reach its socket directory
chown munge:munge "$S/munge"
cat >"$S/slurm.conf" <<EOF
ClusterName=rntest
SlurmctldHost=$H1(198.18.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$S/ctld
SlurmctldPidFile=$S/ctld/slurmctld.pid
SlurmctldLogFile=$S/ctld/slurmctld.log
SlurmdSpoolDir=$S/%n/spool
SlurmdPidFile=$S/%n/slurmd.pid
SlurmdLogFile=$S/%n/slurmd.log
ReturnToService=2
MpiDefault=none
NodeName=$H1 NodeAddr=198.18.0.1 CPUs=$(getconf _NPROCESSORS_ONLN) State=UNKNOWN
NodeName=$H2 NodeAddr=198.18.0.2 CPUs=$(getconf _NPROCESSORS_ONLN) State=UNKNOWN
PartitionName=all Nodes=ALL Default=YES MaxTime=10 State=UP OverSubscribe=FORCE
EOF
# The machine's cgroups are v1 (or hybrid, which Slurm 22.05 refuses as v2); slurmd's cgroup plugin needs one.
echo "CgroupPlugin=cgroup/v1" >"$S/cgroup.conf"
# PMIx's per-step client directories have fixed names under this base: one per host, or they collide.
echo "PMIxCliTmpDirBase=$S/pmix" >"$S/mpi.conf"
export SLURM_CONF=$S/slurm.conf
# Slurm's daemons asked to stop reap their own helpers (slurmscriptd, slurmstepd); SIGKILLed by `down` they
# would leave them to PID 1, which on some machines never reaps them.
stop_slurm() {
  "$CLUSTER" exec "$H1" timeout 5 scontrol shutdown >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do
    [ -z "$(jobs -pr)" ] && break
    sleep 0.1
  done
  cleanup
}
trap stop_slurm EXIT

# The daemons stay in the foreground as this script's children (background jobs), so that when `down`
# SIGKILLs everything on the hosts this shell reaps them (a daemon that forked away would be left to an
# init that may never reap it).
"$CLUSTER" exec "$H1" setpriv --reuid=munge --regid=munge --init-groups munged -F --socket="$S/munge/munge.socket" \
  --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" --seed-file="$S/munge/munged.seed" &
for _ in $(seq 1 50); do [ -S "$S/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$S/munge/munge.socket" ] || fail "munged did not start: $(cat "$S/munge/munged.log" 2>/dev/null)"
"$CLUSTER" exec "$H1" slurmctld -D -f "$SLURM_CONF" &
for h in "$H1" "$H2"; do
  # `ip netns exec` remounted /sys for the namespace, which hides the machine's cgroup hierarchies: mount
  # them again in the host's own mount namespace; and give the host its own PMIx directory.
  "$CLUSTER" exec "$h" sh -c "set -e
    mount -t tmpfs cgroup_root /sys/fs/cgroup
    for c in cpu cpuacct cpuset memory devices freezer pids; do
      mkdir -p /sys/fs/cgroup/\$c; mount -t cgroup -o \$c cgroup /sys/fs/cgroup/\$c
    done
    mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    mount --bind $S/$h/pmix $S/pmix
    exec slurmd -D -f $SLURM_CONF -N $h" &
done
wait_idle() {
  for _ in $(seq 1 100); do
    [ "$("$CLUSTER" exec "$H1" sinfo -h -o '%D %t' 2>/dev/null)" = "2 idle" ] && return 0
    sleep 0.2
  done
  "$CLUSTER" exec "$H1" sinfo >&2 || true
  cat "$S/ctld/slurmctld.log" "$S/$H2/slurmd.log" >&2
  return 1
}
wait_idle || fail "the 2 Slurm nodes never became idle"
ok "slurmctld on $H1, slurmd on $H1 and $H2: $("$CLUSTER" exec "$H1" sinfo -h -o '%D nodes %t %N')"

# --quiet: a job that waits for the previous one's resources (a busy machine) would otherwise print srun's
# "queued and waiting" lines into the program's log.
SRUN=("$CLUSTER" exec "$H1" timeout 120 srun --quiet --nodes 2 --ntasks-per-node 1)
"${SRUN[@]}" hostname >"$WORK/where.log" 2>&1 || { cat "$WORK/where.log"; fail "srun hostname failed"; }
[ "$(sort "$WORK/where.log" | tr '\n' ' ')" = "$H1 $H2 " ] || fail "srun placed its 2 tasks on: $(tr '\n' ' ' <"$WORK/where.log")"
ok "srun --nodes 2 runs one task on each host"

export OMPI_MCA_btl=tcp,vader,self OMPI_MCA_btl_tcp_if_include=198.18.0.0/24
"${SRUN[@]}" --mpi=pmix "$TEST_DDP" --use-colour no >"$WORK/ddp.log" 2>&1 || { cat "$WORK/ddp.log"; fail "test_ddp under srun on 2 hosts failed"; }
[ "$(grep -c 'All tests passed' "$WORK/ddp.log")" = 2 ] || { cat "$WORK/ddp.log"; fail "expected both ranks to pass"; }
ok "test_ddp under srun --mpi=pmix on 2 hosts: $(grep -m1 'All tests passed' "$WORK/ddp.log")"
"$MAKE_IMAGES" "$WORK/data" 8 4 >/dev/null
"${SRUN[@]}" --mpi=pmix "$BIN" train --data "$WORK/data" --arch resnet18 --size 32 --batch 8 --epochs 1 --threads 1 \
  --workers 0 --out "$WORK/run" >"$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; fail "train_catsdogs under srun failed"; }
grep -v "^srun: " "$WORK/train.log" | head -n 1 | grep -qE "on world 2 \(mpi, launched by srun\): rank 0 cpu on $H1, rank 1 cpu on $H2" ||
  { cat "$WORK/train.log"; fail "the first line should name a world of 2 launched by srun, one rank on each host"; }
[ "$(grep -c '^epoch 1 av_test_acc: ' "$WORK/train.log")" = 1 ] || fail "epoch 1's test accuracy should be logged once"
[ -s "$WORK/run/last.safetensors" ] || fail "no last.safetensors"
ok "train_catsdogs under srun on 2 hosts: $(grep -v "^srun: " "$WORK/train.log" | head -n 1 | grep -oE 'on world 2 .*rank 1 cpu on [a-z0-9]+')"
echo "test_multinode_srun: all checks passed in $((SECONDS - START)) s"

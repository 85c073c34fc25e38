# Sourced by the multinode tests: a cluster of namespaced hosts (tools/netns_cluster.sh) that is always
# taken down, mpirun started on the first host with every byte between hosts over TCP, and checks.
#
#   source multinode_lib.sh; cluster_up N [--rate R]; MPI=(...) run as "${MPI[@]}" -H ... -np ... PROGRAM
#
# Exit 77 (skipped) where this machine cannot make namespaces (not root, no CAP_SYS_ADMIN) or lacks mpirun.
# shellcheck shell=bash disable=SC2034  # H2, START, MPI, ... are for the scripts that source this
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=$ROOT/tools/netns_cluster.sh
# The tests' own prefix (never a cluster someone made by hand with the default one); ctest runs them one at
# a time (RESOURCE_LOCK netns), and each takes down what a killed predecessor left before starting.
export RESNET_NETNS_PREFIX=rntest
H1=${RESNET_NETNS_PREFIX}1 H2=${RESNET_NETNS_PREFIX}2
START=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/multinode.XXXXXX")

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok: $*"; }
cleanup() {
  "$CLUSTER" down || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v mpirun >/dev/null || { echo "SKIPPED: mpirun not found (apt-get install openmpi-bin)"; exit 77; }
"$CLUSTER" check || exit 77

# OpenMPI refuses root without these; one thread per rank (2 cores in CI); a collective that waits longer
# than RESNET_DIST_TIMEOUT_S names itself and aborts the job.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export RESNET_DIST_TIMEOUT_S=${RESNET_DIST_TIMEOUT_S:-60}
eval "FLAGS=($("$CLUSTER" mpi-flags))"
# mpirun runs on the first host, as on a login node that is one of the machines.
MPI=("$CLUSTER" exec "$H1" mpirun "${FLAGS[@]}" --oversubscribe --bind-to none -x OMP_NUM_THREADS
  -x OMP_WAIT_POLICY -x RESNET_DIST_TIMEOUT_S)

cluster_up() {
  "$CLUSTER" down
  "$CLUSTER" up "$@"
}
rx_bytes() { "$CLUSTER" bytes "$1" | awk '{print $1}'; }
tx_bytes() { "$CLUSTER" bytes "$1" | awk '{print $2}'; }
expect_in() { grep -qE -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks /$2/"; }; }

# wait_for FILE REGEX SECONDS: until a line matches (0) or the time is up (1).
wait_for() {
  for _ in $(seq 1 $(($3 * 10))); do
    grep -qE -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

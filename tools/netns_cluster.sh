#!/usr/bin/env bash
# netns_cluster.sh: several machines on one Linux machine, for multi-node runs without several machines.
#
#   tools/netns_cluster.sh check                     # can this machine make the cluster? (exit 77 + why if not)
#   tools/netns_cluster.sh up N [--rate RATE]         # hosts rnhost1..rnhostN on one private switch
#   tools/netns_cluster.sh down                       # remove all of it (idempotent; kills what still runs there)
#   tools/netns_cluster.sh exec HOST CMD [ARGS...]    # run CMD on HOST (its network, its hostname)
#   tools/netns_cluster.sh rsh HOST CMD-STRING...     # OpenMPI's launch agent: like `ssh HOST CMD-STRING`
#   tools/netns_cluster.sh rate RATE|none             # shape every host's outgoing link (tbf), e.g. 1gbit
#   tools/netns_cluster.sh kill HOST                  # SIGKILL every process on HOST (a machine that dies)
#   tools/netns_cluster.sh link HOST up|down          # plug / unplug HOST's cable (a partition)
#   tools/netns_cluster.sh bytes HOST                 # "RX_BYTES TX_BYTES" of HOST's link
#   tools/netns_cluster.sh mpi-flags                  # mpirun flags: launch through `rsh`, all bytes over TCP
#
# Each host is a network namespace (its own interfaces, addresses, routes, sockets) entered with a fresh
# UTS namespace named after it (its own hostname); file systems and process ids are the machine's, which
# stands in for a shared file system. Host i has eth0 = 198.18.0.i/24 (the benchmarking range, RFC 2544),
# cabled by a veth pair to a bridge that lives in one more namespace (the switch), so the link is seen by
# these namespaces only; there is no default route and nothing leaves the machine. /etc/netns/HOST/hosts
# (bind-mounted as /etc/hosts by `ip netns exec`) makes the host names resolve as on a real cluster.
# Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); RESNET_NETNS_PREFIX (default rnhost) names everything.
set -euo pipefail

PREFIX=${RESNET_NETNS_PREFIX:-rnhost}
SWITCH=${PREFIX}-sw
SUBNET=198.18.0
TCP_RETRIES2=${RESNET_NETNS_TCP_RETRIES2:-5}
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

die() {
  echo "netns_cluster.sh: $*" >&2
  exit 1
}
usage() { sed -n '2,14p' "$SELF" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# The hosts that exist now, in order (rnhost1, rnhost2, ...).
hosts() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" | sort -V || true; }
need_host() {
  [[ "$1" =~ ^${PREFIX}[0-9]+$ ]] || die "'$1' is not a host name (${PREFIX}1, ${PREFIX}2, ...)"
  ip netns list | awk '{print $1}' | grep -qx -- "$1" || die "no host '$1' (is the cluster up? hosts: $(hosts | tr '\n' ' '))"
}

# Why this machine cannot make namespaces, or nothing.
why_not() {
  if [ "$(id -u)" != 0 ]; then echo "network namespaces need root (running as uid $(id -u))"; return; fi
  for tool in ip tc unshare; do
    command -v "$tool" >/dev/null || { echo "'$tool' not found (iproute2, util-linux)"; return; }
  done
  local probe=${PREFIX}-probe$$
  if ! ip netns add "$probe" 2>/dev/null; then echo "'ip netns add' fails here (no CAP_SYS_ADMIN in a container?)"; return; fi
  if ! ip netns exec "$probe" unshare --uts true 2>/dev/null; then
    ip netns del "$probe" 2>/dev/null || true
    echo "'unshare --uts' fails here"
    return
  fi
  ip netns del "$probe"
}

# tbf on eth0's egress of every host: each direction of a link is shaped once, at its sender.
# The bucket holds 2 ms at the rate (at least 128 KiB, two of the 64 KiB TSO segments veth sends).
shape() {
  local rate=$1 h
  if [ "$rate" = none ]; then
    for h in $(hosts); do ip netns exec "$h" tc qdisc del dev eth0 root 2>/dev/null || true; done
    return
  fi
  local bps
  bps=$(rate_bits "$rate") || die "--rate '$rate' is not a rate (e.g. 1gbit, 2500mbit, 10gbit)"
  local burst=$((bps / 8 / 500))
  [ "$burst" -ge 131072 ] || burst=131072
  for h in $(hosts); do
    ip netns exec "$h" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
  done
}
rate_bits() {
  local n unit
  [[ "$1" =~ ^([0-9]+(\.[0-9]+)?)([kmg]?)bit$ ]] || return 1
  n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[3]}
  case $unit in
    k) awk -v n="$n" 'BEGIN { printf "%d", n * 1e3 }' ;;
    m) awk -v n="$n" 'BEGIN { printf "%d", n * 1e6 }' ;;
    g) awk -v n="$n" 'BEGIN { printf "%d", n * 1e9 }' ;;
    *) awk -v n="$n" 'BEGIN { printf "%d", n }' ;;
  esac
}

cmd_down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}([0-9]+|-sw|-probe[0-9]+)$" || true); do
    # Processes keep a namespace (and its sockets) alive after its name is gone: end them first.
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf /etc/netns/"${PREFIX}"[0-9]*
  rmdir /etc/netns 2>/dev/null || true  # made by up; kept if anything else uses it
}

cmd_up() {
  [ $# -ge 1 ] || usage
  local n=$1 rate=""
  shift
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up: N must be a number of hosts from 1 to 200, not '$n'"
  while [ $# -gt 0 ]; do
    case $1 in
      --rate) [ $# -ge 2 ] || die "--rate needs a value (e.g. 10gbit)"; rate=$2; shift 2 ;;
      *) die "up: unknown argument '$1'" ;;
    esac
  done
  [ -z "$rate" ] || rate_bits "$rate" >/dev/null || die "--rate '$rate' is not a rate (e.g. 1gbit, 2500mbit, 10gbit)"
  local why
  why=$(why_not)
  [ -z "$why" ] || die "$why"
  [ -z "$(hosts)" ] || die "a cluster with prefix $PREFIX is up already (hosts: $(hosts | tr '\n' ' ')); run down first"
  ip netns add "$SWITCH"
  ip -n "$SWITCH" link add br0 type bridge
  ip -n "$SWITCH" link set br0 up
  local i h
  for i in $(seq 1 "$n"); do
    h=${PREFIX}$i
    ip netns add "$h"
    # Made inside the namespaces: no end of the cable is ever in the machine's own namespace.
    ip link add eth0 netns "$h" type veth peer name "port$i" netns "$SWITCH"
    ip -n "$SWITCH" link set "port$i" master br0 up
    ip -n "$h" link set lo up
    ip -n "$h" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$h" link set eth0 up
    # A connection whose peer stopped answering is given up after ~13 s of retransmissions, not Linux's
    # default ~15 min (tcp_retries2 = 15): that is what lets mpirun, whose kill order to the daemon of a
    # host cut off is never acknowledged, end the job. Cluster machines need the same (docs/MULTINODE.md).
    ip netns exec "$h" sysctl -q -w net.ipv4.tcp_retries2="$TCP_RETRIES2"
    mkdir -p "/etc/netns/$h"
  done
  for i in $(seq 1 "$n"); do
    {
      echo "127.0.0.1 localhost"
      for j in $(seq 1 "$n"); do echo "$SUBNET.$j ${PREFIX}$j"; done
    } >"/etc/netns/${PREFIX}$i/hosts"
  done
  [ -z "$rate" ] || shape "$rate"
  # Every host reaches every other before anyone relies on it: a connection to a closed port is refused
  # at once by a host that is there (no ping needed).
  for i in $(seq 1 "$n"); do
    for j in $(seq 1 "$n"); do
      [ "$i" = "$j" ] && continue
      local answer
      answer=$(ip netns exec "${PREFIX}$i" timeout 5 bash -c "exec 3<>/dev/tcp/$SUBNET.$j/9" 2>&1 || true)
      [[ "$answer" == *refused* ]] || die "${PREFIX}$i cannot reach $SUBNET.$j: ${answer:-no answer in 5 s}"
    done
  done
  echo "netns_cluster.sh: $n host(s) up: $(hosts | tr '\n' ' ')on $SUBNET.0/24${rate:+, links shaped to $rate}"
}

cmd_exec() {
  [ $# -ge 2 ] || usage
  local h=$1
  shift
  need_host "$h"
  # A fresh UTS namespace per command, named after the host: gethostname() is what MPI matches -H against.
  exec ip netns exec "$h" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$h" "$@"
}

# OpenMPI calls `AGENT HOST orted ARGS...` and expects ssh's behaviour: the words joined by spaces and run by
# the remote shell (the arguments carry quotes meant for that shell).
cmd_rsh() {
  [ $# -ge 2 ] || usage
  local h=$1
  shift
  cmd_exec "$h" sh -c "$*"
}

case ${1:-} in
  check)
    why=$(why_not)
    if [ -n "$why" ]; then echo "SKIPPED: $why"; exit 77; fi
    ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  exec) shift; cmd_exec "$@" ;;
  rsh) shift; cmd_rsh "$@" ;;
  rate)
    [ $# -eq 2 ] || usage
    [ -n "$(hosts)" ] || die "rate: no cluster is up"
    shape "$2"
    ;;
  kill)
    [ $# -eq 2 ] || usage
    need_host "$2"
    pids=$(ip netns pids "$2")
    [ -z "$pids" ] || kill -9 $pids
    echo "netns_cluster.sh: killed $(echo $pids | wc -w) process(es) on $2"
    ;;
  link)
    [ $# -eq 3 ] || usage
    [ "$3" = up ] || [ "$3" = down ] || die "link: '$3' is neither up nor down"
    need_host "$2"
    # The switch's port: the host keeps its address and sockets, as when a cable or a switch fails.
    ip -n "$SWITCH" link set "port${2#"$PREFIX"}" "$3"
    ;;
  bytes)
    [ $# -eq 2 ] || usage
    need_host "$2"
    echo "$(ip netns exec "$2" cat /sys/class/net/eth0/statistics/rx_bytes) $(ip netns exec "$2" cat /sys/class/net/eth0/statistics/tx_bytes)"
    ;;
  mpi-flags)
    # tcp between hosts (vader, shared memory, only among the ranks of one host, as on real machines);
    # the daemons' control traffic (oob) and the data (btl) both on the cluster's link; TCP keepalives
    # on the control connections so that a daemon whose link is gone is noticed in ~20 s, not hours.
    echo "--mca plm_rsh_agent '$SELF rsh' --mca plm_rsh_no_tree_spawn 1 --mca btl tcp,vader,self" \
      "--mca btl_tcp_if_include $SUBNET.0/24 --mca oob_tcp_if_include $SUBNET.0/24" \
      "--mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 5"
    ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac

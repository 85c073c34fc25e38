#!/usr/bin/env bash
# test_netns_cluster.sh: tools/netns_cluster.sh makes hosts that look like separate machines and leaves
# nothing behind: each host has its own hostname and address, resolves the others by name, reaches them
# over the private link only (no default route, no address of the link in the machine's own namespace);
# --rate shapes the link (a TCP stream at 1gbit runs at 0.85-1.0 Gbit/s of payload); kill ends a host's
# processes; link down cuts it off; bad input is refused naming the problem; down removes every namespace
# and file, and is idempotent. Exit 77 (skipped) without root/namespaces.
set -euo pipefail
# shellcheck source=multinode_lib.sh
source "$(dirname "$0")/multinode_lib.sh"

# ---- bad input, before anything exists ----
refused() {  # refused REGEX CMD...: CMD fails and says REGEX
  local out rc=0
  out=$("${@:2}" 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "'${*:2}' should fail"
  [[ "$out" =~ $1 ]] || fail "'${*:2}' said '$out', expected /$1/"
}
refused "N must be a number of hosts" "$CLUSTER" up zero
refused "'5gbps' is not a rate" "$CLUSTER" up 2 --rate 5gbps
refused "no host '${RESNET_NETNS_PREFIX}1'" "$CLUSTER" exec "${RESNET_NETNS_PREFIX}1" true
refused "is not a host name" "$CLUSTER" exec somehost true
ok "bad input refused"

cluster_up 3 --rate 1gbit
H3=${RESNET_NETNS_PREFIX}3
refused "is up already" "$CLUSTER" up 2
for i in 1 2 3; do
  h=${RESNET_NETNS_PREFIX}$i
  [ "$("$CLUSTER" exec "$h" hostname)" = "$h" ] || fail "$h's hostname is $("$CLUSTER" exec "$h" hostname)"
  [ "$("$CLUSTER" exec "$h" ip -4 -o addr show dev eth0 | awk '{print $4}')" = "198.18.0.$i/24" ] || fail "$h's address"
  [ -z "$("$CLUSTER" exec "$h" ip route show default)" ] || fail "$h has a default route"
done
[ "$("$CLUSTER" exec "$H1" getent hosts "${RESNET_NETNS_PREFIX}3" | awk '{print $1}')" = 198.18.0.3 ] ||
  fail "${RESNET_NETNS_PREFIX}3 does not resolve on $H1"
! ip -4 -o addr | grep -q '198\.18\.0\.' || fail "the machine's own namespace has an address on the cluster's link"
[ "$(hostname)" != "$H1" ] || fail "exec changed the machine's own hostname"
# The rsh agent runs a command string as ssh does (one string, for the remote shell).
[ "$("$CLUSTER" rsh "$H2" 'echo "$(hostname)"' ' and more')" = "$H2 and more" ] || fail "rsh does not run its words as one command"
ok "3 hosts, each its own hostname and address, names resolve, no route out"

# ---- shaping: one TCP stream from host 1 to host 2 ----
tput() {
  "$CLUSTER" exec "$H2" python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.2", 5001)); s.listen(1)
c, _ = s.accept(); got, t0 = 0, None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t0 is None: t0 = time.time()
    got += len(b)
print(f"{got * 8 / (time.time() - t0) / 1e9:.3f}")' >"$WORK/tput" &
  local server=$!
  for _ in $(seq 1 50); do
    "$CLUSTER" exec "$H2" ss -ltn | grep -q ':5001 ' && break
    sleep 0.1
  done
  "$CLUSTER" exec "$H1" python3 -c '
import socket
c = socket.create_connection(("198.18.0.2", 5001)); buf = b"x" * (1 << 20)
for _ in range(60): c.sendall(buf)
c.close()'
  wait "$server"
  cat "$WORK/tput"
}
gbit=$(tput)
awk -v g="$gbit" 'BEGIN { exit !(g >= 0.85 && g <= 1.0) }' || fail "at --rate 1gbit a TCP stream ran at $gbit Gbit/s"
ok "--rate 1gbit: a TCP stream carries $gbit Gbit/s of payload"

# ---- kill and link ----
"$CLUSTER" exec "$H3" sleep 300 &
sleeper=$!
for _ in $(seq 1 50); do [ -n "$(ip netns pids "$H3")" ] && break; sleep 0.1; done
[ -n "$(ip netns pids "$H3")" ] || fail "no process on $H3"
"$CLUSTER" kill "$H3" >/dev/null
rc=0
wait "$sleeper" || rc=$?
[ "$rc" = 137 ] || fail "kill: the process on $H3 ended with $rc, not SIGKILL (137)"
[ -z "$(ip netns pids "$H3")" ] || fail "kill left processes on $H3"
"$CLUSTER" link "$H2" down
answer=$("$CLUSTER" exec "$H1" timeout 3 bash -c 'exec 3<>/dev/tcp/198.18.0.2/9' 2>&1 || true)
[[ "$answer" != *refused* ]] || fail "$H2 still answers with its link down"
"$CLUSTER" link "$H2" up
ok "kill ends a host's processes (SIGKILL); link down cuts a host off"

# ---- down leaves nothing, twice ----
"$CLUSTER" down
"$CLUSTER" down
[ -z "$(ip netns list | grep -E "^${RESNET_NETNS_PREFIX}")" ] || fail "down left namespaces: $(ip netns list)"
[ -z "$(ls -d /etc/netns/"${RESNET_NETNS_PREFIX}"* 2>/dev/null)" ] || fail "down left /etc/netns files"
ok "down leaves nothing (and is idempotent)"
echo "test_netns_cluster: all checks passed in $((SECONDS - START)) s"

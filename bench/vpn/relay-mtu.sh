#!/usr/bin/env bash
# (Not part of bench/run-all: it prints facts, not a ratio against a baseline.)
# What a narrow link BETWEEN TWO RELAYS does to the VPN (docs/vpn.md "MTU", docs/benchmarks.md "VPN"): neither end of
# the tunnel has that link, so neither sees its MTU. Layout (own namespaces, removed at exit):
#   rm-hub: bridge 10.94.0.0/24, the manager (10.94.0.1)
#   rm-a (10.94.0.2, node a + vpn-client) -- bridge -- rm-b (10.94.0.3; relay b, listening on 10.95.0.1)
#   rm-b == point-to-point veth 10.95.0.0/24, MTU $NARROW == rm-c (relay c, 10.95.0.2 and 10.94.0.4 on the bridge)
#   rm-c -- bridge -- rm-d (10.94.0.5, node d + vpn-server --no-nat; iperf3 and ping target 10.66.0.1)
# Route a > b > c > d; only b-c is narrow. (b reaches c at c's listen address on the bridge, c reaches b over the
# narrow link: the direction d > a, c > b, is the narrow one; iperf3 -R sends that way.) It prints the tunnel MTU the client chose, whether full-size don't-fragment
# pings cross, IP fragments made and reassembled at b/c, ICMP errors sent by b/c, whether relay b turned UDP GSO off,
# and iperf3 through the tunnel with b-c narrow and then at 1500. Needs root, iperf3, python3, `dotnet build -c Release`.
# Usage: sudo bench/vpn/relay-mtu.sh    (NARROW=1300 SECS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
NARROW=${NARROW:-1300}
SECS=${SECS:-5}
SK=(dotnet src/Skywire/bin/Release/net10.0/skywire.dll)
RUN=run/vpn-relay-mtu
NS=(rm-hub rm-a rm-b rm-c rm-d)
mkdir -p "$RUN"
down() {
  for f in "$RUN"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -f "$RUN"/*.pid
}
down
trap down EXIT

for n in "${NS[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n rm-hub link add br0 type bridge
ip -n rm-hub addr add 10.94.0.1/24 dev br0
ip -n rm-hub link set br0 up
i=2
for n in a b c d; do
  ip link add "rm-$n" type veth peer name "rm-$n-br"
  ip link set "rm-$n" netns "rm-$n"
  ip link set "rm-$n-br" netns rm-hub
  ip -n rm-hub link set "rm-$n-br" master br0 up
  ip -n "rm-$n" addr add "10.94.0.$i/24" dev "rm-$n"
  ip -n "rm-$n" link set "rm-$n" up
  i=$((i + 1))
done
ip link add rm-bc type veth peer name rm-cb
ip link set rm-bc netns rm-b
ip link set rm-cb netns rm-c
ip -n rm-b addr add 10.95.0.1/24 dev rm-bc
ip -n rm-c addr add 10.95.0.2/24 dev rm-cb
ip -n rm-b link set rm-bc mtu "$NARROW" up
ip -n rm-c link set rm-cb mtu "$NARROW" up
ip -n rm-a route add 10.95.0.0/24 via 10.94.0.3   # a reaches b's link address over the bridge (1500)

start() { # start NAME NAMESPACE ARGS...
  local name=$1 ns=$2; shift 2
  ip netns exec "$ns" "${SK[@]}" "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}
wait_for() { # wait_for FILE TEXT
  for _ in $(seq 1 120); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}
[ -f "$RUN/manager.json" ] || "${SK[@]}" keygen --out "$RUN/manager.json" >/dev/null
start manager rm-hub manager --key "$RUN/manager.json" --listen 10.94.0.1:5999
wait_for "$RUN/manager.log" "listening on"
M=$(grep -o 'manager [0-9a-f]\{66\}' "$RUN/manager.log" | head -1 | cut -d' ' -f2)@10.94.0.1:5999
start node-a rm-a node --manager "$M" --key "$RUN/a.json" --app-token-file "$RUN/a.token" --listen 10.94.0.2:7000 --apps 127.0.0.1:7010
start node-b rm-b node --manager "$M" --key "$RUN/b.json" --app-token-file "$RUN/b.token" --listen 10.95.0.1:7001 --apps 127.0.0.1:7011
start node-c rm-c node --manager "$M" --key "$RUN/c.json" --app-token-file "$RUN/c.token" --listen 10.94.0.4:7002 --apps 127.0.0.1:7012
start node-d rm-d node --manager "$M" --key "$RUN/d.json" --app-token-file "$RUN/d.token" --listen 10.94.0.5:7003 --apps 127.0.0.1:7013
for n in a b c d; do wait_for "$RUN/node-$n.log" "apps 127.0.0.1"; done
key() { grep -o 'node [0-9a-f]\{66\}' "$RUN/node-$1.log" | head -1 | cut -d' ' -f2; }
cli() { ip netns exec rm-hub "${SK[@]}" cli --manager "$M" --key "$RUN/manager.json" "$@"; }
# c opens c-b, so it dials b's address on the narrow link (and b answers c there)
cli link "$(key a)" "$(key b)" >/dev/null; cli link "$(key c)" "$(key b)" >/dev/null; cli link "$(key c)" "$(key d)" >/dev/null
for _ in $(seq 1 120); do [ "$(cli links | grep -c ' up ')" -ge 6 ] && break; sleep 0.5; done

start vpn-server rm-d app vpn-server --node-apps 127.0.0.1:7013 --token-file "$RUN/d.token" --no-nat --no-ipv6
wait_for "$RUN/vpn-server.log" "vpn-server ready"
start vpn-client rm-a app vpn-client --node-apps 127.0.0.1:7010 --token-file "$RUN/a.token"
wait_for "$RUN/vpn-client.log" "vpn-client up"
MTU=$(grep -o 'mtu [0-9]*' "$RUN/vpn-client.log" | head -1 | cut -d' ' -f2)
for _ in $(seq 1 60); do ip netns exec rm-a ping -c 1 -W 1 10.66.0.1 >/dev/null 2>&1 && break; sleep 0.5; done

snmp() { # snmp NS GROUP FIELD: a counter from /proc/net/snmp
  ip netns exec "$1" awk -v g="$2:" -v f="$3" '$1 == g && !h {for (i = 2; i <= NF; i++) c[i] = $i; h = 1; next} $1 == g && h {for (i = 2; i <= NF; i++) if (c[i] == f) print $i}' /proc/net/snmp
}
counters() { echo "b: FragCreates $(snmp rm-b Ip FragCreates) OutDestUnreachs $(snmp rm-b Icmp OutDestUnreachs); c: ReasmOKs $(snmp rm-c Ip ReasmOKs) FragCreates $(snmp rm-c Ip FragCreates) OutDestUnreachs $(snmp rm-c Icmp OutDestUnreachs); a: InDestUnreachs $(snmp rm-a Icmp InDestUnreachs)"; }

echo "relay-to-relay link b-c MTU $NARROW, a-b and c-d 1500; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "how b and c reach each other: b sends to $(grep -o 'Link to [0-9a-f]* up ([0-9.:]*)' "$RUN/node-b.log" | grep "$(key c)" | grep -o '([0-9.:]*)'), c sends to $(grep -o 'Link to [0-9a-f]* up ([0-9.:]*)' "$RUN/node-c.log" | grep "$(key b)" | grep -o '([0-9.:]*)') (10.95.0.x: the narrow link)"
grep "vpn-client up" "$RUN/vpn-client.log" | sed 's/.*vpn-client up/vpn-client up/'
cli routes | tail -n +1
echo "before:           $(counters)"
ip netns exec rm-a ping -M do -s $((MTU - 28)) -c 20 -i 0.05 -q 10.66.0.1 | grep -E 'transmitted|rtt'
echo "after 20 pings:   $(counters)"
ip netns exec rm-d iperf3 -s -1 -B 10.66.0.1 >/dev/null 2>&1 &
sleep 1
ip netns exec rm-a iperf3 -c 10.66.0.1 -R -t "$SECS" -J >"$RUN/narrow.json" 2>&1 || true
echo "after iperf3 -R:  $(counters)"
grep -q "GSO send refused" "$RUN/node-b.log" && echo "relay b: UDP GSO turned off" || echo "relay b: UDP GSO still on"
grep -q "GSO send refused" "$RUN/node-c.log" && echo "relay c: UDP GSO turned off" || echo "relay c: UDP GSO still on"
ip -n rm-b link set rm-bc mtu 1500; ip -n rm-c link set rm-cb mtu 1500
ip netns exec rm-d iperf3 -s -1 -B 10.66.0.1 >/dev/null 2>&1 &
sleep 1
ip netns exec rm-a iperf3 -c 10.66.0.1 -R -t "$SECS" -J >"$RUN/wide.json" 2>&1 || true
python3 - "$RUN/narrow.json" "$RUN/wide.json" "$NARROW" <<'EOF'
import json, sys
for path, what in ((sys.argv[1], f"b-c at {sys.argv[3]}"), (sys.argv[2], "b-c at 1500 (relay b's GSO as it was left)")):
    try:
        r = json.load(open(path))
        recv = r["end"]["sum_received"]
        print(f"iperf3 -R (d sends to a: data crosses c > b) through the tunnel, {what}: {recv['bytes'] / recv['seconds'] / 1e6:.0f} MB/s, retransmits {r['end']['sum_sent'].get('retransmits', '-')}")
    except Exception as e:
        print(f"iperf3 {what}: failed ({e})")
EOF
echo "load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

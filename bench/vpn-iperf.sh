#!/usr/bin/env bash
# VPN throughput, RTT and CPU (docs/benchmarks.md "VPN"), ours beside tinc and OpenVPN in ONE run, on the namespace
# layout of samples/vpn-netns.sh: sky-a (client host) and sky-d (exit host) on a bridge in sky-hub (10.90.0.0/24),
# relays b and c in sky-hub. Every tunnel runs between sky-a and sky-d; iperf3's server listens on the far end of
# each tunnel in sky-d:
#   veth + bridge underlay     10.90.0.3   (no tunnel: the ceiling)
#   skywire VPN, 3 hops        10.66.0.1   (a > b > c > d, the vpn-server's TUN address)
#   skywire VPN, 1 hop         10.66.0.1   (a > d: a direct link added, the vpn-client restarted)
#   skywire VPN, 1 hop, offloads off (SKYWIRE_VPN_OFFLOAD=0: one packet per TUN read/write, as before issue 14.4)
#   skywire VPN in the node, 1 hop (both apps inside their nodes: `skywire node --vpn-server/--vpn-client`)
#   tinc 1.0 (router mode, aes-256-cbc + hmac-sha256, UDP)          10.91.0.2
#   OpenVPN 2.6 (p2p TLS, AES-256-GCM, UDP, no DCO)                10.92.0.2
# CPU is the user+system time of the tunnel's own processes (both ends, relays and apps for ours) during the run,
# divided by the bytes received. Needs root, iperf3, tinc, openvpn, openssl, python3 and what samples/vpn-netns.sh
# needs; `dotnet build -c Release` first. Usage: sudo bench/vpn-iperf.sh   (SECS=8 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-8}
RUN=run/vpn-demo
B=$RUN/bench
SK=(dotnet src/Skywire/bin/Release/net10.0/skywire.dll)
for tool in iperf3 tincd openvpn openssl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install iperf3 tinc openvpn openssl python3)" >&2; exit 2; }
done

cleanup() {
  for f in "$B"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  samples/vpn-netns.sh --down
  rm -rf "$B"
}
trap cleanup EXIT
samples/vpn-netns.sh --keep >/dev/null
mkdir -p "$B"

bg() { # bg NAME NAMESPACE CMD...: background process, pid in $B/NAME.pid, output in $B/NAME.log
  local name=$1 ns=$2; shift 2
  ip netns exec "$ns" "$@" >"$B/$name.log" 2>&1 &
  echo $! >"$B/$name.pid"
}
wait_ping() { # wait_ping ADDR: until the tunnel answers
  for _ in $(seq 1 120); do ip netns exec sky-a ping -c 1 -W 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "no answer from $1 through the tunnel" >&2; exit 1
}

# ---- tinc 1.0: router mode between a (10.91.0.1) and d (10.91.0.2), RSA keys made here
for n in a d; do
  dir=$B/tinc-$n
  mkdir -p "$dir/hosts"
  { echo "Name = $n"; echo "Mode = router"; echo "Interface = tinc$n"; echo "AddressFamily = ipv4"; } >"$dir/tinc.conf"
  [ "$n" = a ] && echo "ConnectTo = d" >>"$dir/tinc.conf"
  addr=$([ "$n" = a ] && echo 10.90.0.2 || echo 10.90.0.3)
  tun=$([ "$n" = a ] && echo 10.91.0.1 || echo 10.91.0.2)
  { echo "Address = $addr"; echo "Subnet = $tun/32"; echo "Cipher = aes-256-cbc"; echo "Digest = sha256"; } >"$dir/hosts/$n"
  printf '#!/bin/sh\nip addr add %s/24 dev "$INTERFACE"\nip link set "$INTERFACE" up\n' "$tun" >"$dir/tinc-up"
  chmod +x "$dir/tinc-up"
  tincd -c "$dir" -K2048 </dev/null >/dev/null 2>&1
done
cp "$B/tinc-a/hosts/a" "$B/tinc-d/hosts/a"
cp "$B/tinc-d/hosts/d" "$B/tinc-a/hosts/d"
bg tinc-d sky-d tincd -c "$B/tinc-d" -D --pidfile="$B/tinc-d.tincpid"
bg tinc-a sky-a tincd -c "$B/tinc-a" -D --pidfile="$B/tinc-a.tincpid"

# ---- OpenVPN 2.6: point-to-point TLS with pinned self-signed certificates, AES-256-GCM, a (10.92.0.1) <-> d (10.92.0.2)
for n in a d; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=ovpn-$n" \
    -keyout "$B/ovpn-$n.key" -out "$B/ovpn-$n.crt" >/dev/null 2>&1
done
fp() { openssl x509 -in "$B/ovpn-$1.crt" -noout -fingerprint -sha256 | cut -d= -f2; }
OVPN=(openvpn --dev tun --proto udp --data-ciphers AES-256-GCM --disable-dco --dh none --verb 1 --ping 10)
bg ovpn-d sky-d "${OVPN[@]}" --tls-server --lport 1194 --ifconfig 10.92.0.2 10.92.0.1 \
  --cert "$B/ovpn-d.crt" --key "$B/ovpn-d.key" --peer-fingerprint "$(fp a)"
bg ovpn-a sky-a "${OVPN[@]}" --tls-client --remote 10.90.0.3 1194 --ifconfig 10.92.0.1 10.92.0.2 \
  --cert "$B/ovpn-a.crt" --key "$B/ovpn-a.key" --peer-fingerprint "$(fp d)"

wait_ping 10.66.0.1
wait_ping 10.91.0.2
wait_ping 10.92.0.2

pids_of() { # pids_of ours|tinc|ovpn|none
  case $1 in
    ours) for n in node-a node-b node-c node-d vpn-server vpn-client; do cat "$RUN/$n.pid"; done ;;
    tinc) cat "$B/tinc-a.pid" "$B/tinc-d.pid" ;;
    ovpn) cat "$B/ovpn-a.pid" "$B/ovpn-d.pid" ;;
  esac
}
ticks() { # total user+system clock ticks of the pids on stdin
  local t=0 p
  while read -r p; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

iperf_row() { # iperf_row NAME ADDR PROCS [iperf3 client args]
  local name=$1 addr=$2 procs=$3; shift 3
  ip netns exec sky-d iperf3 -s -1 -B "$addr" >/dev/null 2>&1 &
  local spid=$!
  for _ in $(seq 1 50); do ip netns exec sky-d ss -ltn | grep -q "$addr:5201" && break; sleep 0.1; done
  local before after
  before=$(pids_of "$procs" | ticks)
  ip netns exec sky-a iperf3 -c "$addr" -t "$SECS" -J "$@" >"$B/iperf.json" 2>&1 || true
  after=$(pids_of "$procs" | ticks)
  wait "$spid" 2>/dev/null || true
  python3 - "$B/iperf.json" "$name" "$((after - before))" "$HZ" "$procs" "$B/values.tsv" <<'EOF'
import json, sys
path, name, ticks, hz, procs, values = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
try:
    r = json.load(open(path))
    recv = r["end"]["sum_received"]
    mbs = recv["bytes"] / recv["seconds"] / 1e6
    retr = r["end"]["sum_sent"].get("retransmits", "-")
    cpu = f"{ticks / hz / (recv['bytes'] / 1e9):.1f}" if procs != "none" and recv["bytes"] else "-"
    print(f"| {name} | {mbs:.0f} | {retr} | {cpu} |")
    with open(values, "a") as f:
        f.write(f"{name}\t{mbs:.1f}\t{cpu}\n")
except Exception as e:  # an iperf3 error: show it in the table rather than stop the run
    print(f"| {name} | failed: {str(e)[:60]} | - | - |")
EOF
}
rtt() { # rtt NAME ADDR
  local r
  r=$(ip netns exec sky-a ping -c 50 -i 0.05 -q "$2" | awk '/rtt/ {split($0, a, "= "); split(a[2], b, "/"); printf "%s / %s", b[1], b[2]}')
  printf 'ping: %s\tping\t%s\n' "$1" "${r#* / }" >>"$B/values.tsv"
  printf '| %s | %s ms |\n' "$1" "$r"
}

echo "VPN benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), iperf3 TCP ${SECS} s"
echo
echo "| path (sky-a > sky-d) | MB/s (receiver) | TCP retransmits | CPU s per GB (tunnel processes) |"
echo "|---|---:|---:|---:|"
iperf_row "veth + bridge underlay" 10.90.0.3 none
iperf_row "skywire VPN, 3 hops (a > b > c > d)" 10.66.0.1 ours
iperf_row "skywire VPN, 3 hops, 4 streams" 10.66.0.1 ours -P 4
iperf_row "tinc 1.0.36 (aes-256-cbc + sha256)" 10.91.0.2 tinc
iperf_row "tinc, 4 streams" 10.91.0.2 tinc -P 4
iperf_row "OpenVPN 2.6 (AES-256-GCM, no DCO)" 10.92.0.2 ovpn
iperf_row "OpenVPN, 4 streams" 10.92.0.2 ovpn -P 4
rtt3=$(rtt "skywire VPN, 3 hops" 10.66.0.1)

# ---- one hop: a direct link a-d, and the vpn-client dials again so its session takes the new shortest route
M=$(grep -o 'manager [0-9a-f]\{66\}' "$RUN/manager.log" | head -1 | cut -d' ' -f2)@10.90.0.1:5999
key() { grep -o 'node [0-9a-f]\{66\}' "$RUN/node-$1.log" | head -1 | cut -d' ' -f2; }
cli() { ip netns exec sky-hub "${SK[@]}" cli --manager "$M" --key "$RUN/manager.json" "$@"; }
cli link "$(key a)" "$(key d)" >/dev/null
for _ in $(seq 1 120); do [ "$(cli links | grep -c ' up ')" -ge 8 ] && break; sleep 0.5; done
# node a's session to d keeps its route while it lives: restart node a and the client for a fresh session
kill "$(cat "$RUN/vpn-client.pid")"; wait_gone() { while kill -0 "$1" 2>/dev/null; do sleep 0.2; done; }
wait_gone "$(cat "$RUN/vpn-client.pid")"
kill "$(cat "$RUN/node-a.pid")"; wait_gone "$(cat "$RUN/node-a.pid")"
ip netns exec sky-a "${SK[@]}" node --manager "$M" --key "$RUN/a.json" --app-token-file "$RUN/a.token" --listen 10.90.0.2:7000 \
  --apps 127.0.0.1:7010 >"$RUN/node-a.log" 2>&1 &
echo $! >"$RUN/node-a.pid"
for _ in $(seq 1 120); do grep -q "apps 127.0.0.1" "$RUN/node-a.log" && break; sleep 0.5; done
for _ in $(seq 1 120); do [ "$(cli links | grep -c ' up ')" -ge 8 ] && break; sleep 0.5; done
ip netns exec sky-a "${SK[@]}" app vpn-client --node-apps 127.0.0.1:7010 --token-file "$RUN/a.token" --route 10.90.9.0/24 \
  >"$RUN/vpn-client.log" 2>&1 &
echo $! >"$RUN/vpn-client.pid"
for _ in $(seq 1 120); do grep -q "vpn-client up" "$RUN/vpn-client.log" && break; sleep 0.5; done
wait_ping 10.66.0.1
iperf_row "skywire VPN, 1 hop (a > d)" 10.66.0.1 ours
iperf_row "skywire VPN, 1 hop, 4 streams" 10.66.0.1 ours -P 4
rtt1=$(rtt "skywire VPN, 1 hop" 10.66.0.1)

# ---- the same 1 hop with the TUN offloads off (both apps restarted with SKYWIRE_VPN_OFFLOAD=0): before/after
for n in vpn-client vpn-server; do kill "$(cat "$RUN/$n.pid")"; wait_gone "$(cat "$RUN/$n.pid")"; done
SKYWIRE_VPN_OFFLOAD=0 ip netns exec sky-d "${SK[@]}" app vpn-server --node-apps 127.0.0.1:7013 --token-file "$RUN/d.token" \
  --allow "$(key a)" >"$RUN/vpn-server.log" 2>&1 &
echo $! >"$RUN/vpn-server.pid"
for _ in $(seq 1 120); do grep -q "vpn-server ready" "$RUN/vpn-server.log" && break; sleep 0.5; done
# (--server: the tracker may still be dropping the old server's name when the client asks; see docs/benchmarks.md "VPN")
SKYWIRE_VPN_OFFLOAD=0 ip netns exec sky-a "${SK[@]}" app vpn-client --node-apps 127.0.0.1:7010 --token-file "$RUN/a.token" \
  --route 10.90.9.0/24 --server "$(key d)/vpn-server" >"$RUN/vpn-client.log" 2>&1 &
echo $! >"$RUN/vpn-client.pid"
for _ in $(seq 1 120); do grep -q "vpn-client up" "$RUN/vpn-client.log" && break; sleep 0.5; done
wait_ping 10.66.0.1
iperf_row "skywire VPN, 1 hop, offloads off" 10.66.0.1 ours
iperf_row "skywire VPN, 1 hop, offloads off, 4 streams" 10.66.0.1 ours -P 4

# ---- the same 1 hop with both apps inside their nodes' processes (`skywire node --vpn-server/--vpn-client`): the
# packets go TUN thread > session > UDP send, and UDP receive thread > session > TUN, without the app API connection
# and its threads (docs/vpn.md "In the node's process"). Nodes a and d restart with the apps in them.
# a-b is withdrawn first, so the restarted client's first dial cannot take a > b > c > d while a-d is not up yet.
cli unlink "$(key a)" "$(key b)" >/dev/null
for n in vpn-client vpn-server node-a node-d; do kill "$(cat "$RUN/$n.pid")"; wait_gone "$(cat "$RUN/$n.pid")"; done
ip netns exec sky-d "${SK[@]}" node --manager "$M" --key "$RUN/d.json" --app-token-file "$RUN/d.token" --listen 10.90.0.3:7003 \
  --apps 127.0.0.1:7013 --vpn-server "--allow $(key a)" >"$RUN/node-d.log" 2>&1 &
echo $! >"$RUN/node-d.pid"
for _ in $(seq 1 120); do grep -q "vpn-server ready" "$RUN/node-d.log" && break; sleep 0.5; done
ip netns exec sky-a "${SK[@]}" node --manager "$M" --key "$RUN/a.json" --app-token-file "$RUN/a.token" --listen 10.90.0.2:7000 \
  --apps 127.0.0.1:7010 --vpn-client "--route 10.90.9.0/24 --server $(key d)/vpn-server" >"$RUN/node-a.log" 2>&1 &
echo $! >"$RUN/node-a.pid"
for _ in $(seq 1 120); do grep -q "vpn-client up" "$RUN/node-a.log" && break; sleep 0.5; done
: >"$RUN/vpn-client.pid"; : >"$RUN/vpn-server.pid" # both apps are in the nodes now (pids_of reads empty files)
wait_ping 10.66.0.1
grep -q "inside the node's process" "$RUN/node-a.log" || echo "warning: node a does not say its tunnel is in process" >&2
iperf_row "skywire VPN in the node, 1 hop" 10.66.0.1 ours
iperf_row "skywire VPN in the node, 1 hop, 4 streams" 10.66.0.1 ours -P 4
rttn=$(rtt "skywire VPN in the node, 1 hop" 10.66.0.1)

echo
echo "| path | ping min / avg (50 pings) |"
echo "|---|---:|"
rtt "veth + bridge underlay" 10.90.0.3
echo "$rtt3"
echo "$rtt1"
rtt "skywire VPN, 1 hop, offloads off" 10.66.0.1
echo "$rttn"
rtt "tinc" 10.91.0.2
rtt "OpenVPN" 10.92.0.2
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "routes after the 1-hop step (manager view):"
cli routes || true

# RESULT lines for bench/run-all (bench/README.md): ours against each baseline, from the rows above.
val() { # val ROWNAME COLUMN(2 = MB/s or ping avg, 3 = CPU s/GB); ping rows are named "ping: NAME"
  awk -F'\t' -v n="$1" -v c="$2" '$1 == n && $2 != "ping" {print $c} $1 == n && $2 == "ping" {print $3}' "$B/values.tsv" | tail -1
}
result() { # result ID OURS BASELINE UNIT BETTER
  [ -n "$2" ] && [ -n "$3" ] && [ "$2" != "-" ] && [ "$3" != "-" ] && echo "RESULT name=$1 ours=$2 baseline=$3 unit=$4 better=$5"
  return 0
}
o1=$(val "skywire VPN, 1 hop (a > d)" 2) o4=$(val "skywire VPN, 1 hop, 4 streams" 2) o3=$(val "skywire VPN, 3 hops (a > b > c > d)" 2)
t1=$(val "tinc 1.0.36 (aes-256-cbc + sha256)" 2) t4=$(val "tinc, 4 streams" 2)
v1=$(val "OpenVPN 2.6 (AES-256-GCM, no DCO)" 2) v4=$(val "OpenVPN, 4 streams" 2)
result vpn-1hop-1stream-vs-openvpn "$o1" "$v1" MB/s higher
result vpn-1hop-1stream-vs-tinc "$o1" "$t1" MB/s higher
result vpn-1hop-4streams-vs-openvpn "$o4" "$v4" MB/s higher
result vpn-1hop-4streams-vs-tinc "$o4" "$t4" MB/s higher
result vpn-3hop-1stream-vs-openvpn "$o3" "$v1" MB/s higher
result vpn-1hop-1stream-offloads-vs-off "$o1" "$(val "skywire VPN, 1 hop, offloads off" 2)" MB/s higher
result vpn-1hop-1stream-vs-veth "$o1" "$(val "veth + bridge underlay" 2)" MB/s higher
result vpn-1hop-cpu-per-gb-vs-openvpn "$(val "skywire VPN, 1 hop (a > d)" 3)" "$(val "OpenVPN 2.6 (AES-256-GCM, no DCO)" 3)" s/GB lower
result vpn-1hop-ping-avg-vs-tinc "$(val "ping: skywire VPN, 1 hop" 2)" "$(val "ping: tinc" 2)" ms lower
n1=$(val "skywire VPN in the node, 1 hop" 2) n4=$(val "skywire VPN in the node, 1 hop, 4 streams" 2)
result vpn-innode-1hop-1stream-vs-openvpn "$n1" "$v1" MB/s higher
result vpn-innode-1hop-1stream-vs-tinc "$n1" "$t1" MB/s higher
result vpn-innode-1hop-4streams-vs-openvpn "$n4" "$v4" MB/s higher
result vpn-innode-1hop-4streams-vs-tinc "$n4" "$t4" MB/s higher
result vpn-innode-1hop-ping-avg-vs-tinc "$(val "ping: skywire VPN in the node, 1 hop" 2)" "$(val "ping: tinc" 2)" ms lower
result vpn-innode-1hop-cpu-per-gb-vs-openvpn "$(val "skywire VPN in the node, 1 hop" 3)" "$(val "OpenVPN 2.6 (AES-256-GCM, no DCO)" 3)" s/GB lower
result vpn-innode-vs-app-api-1hop-ping-avg "$(val "ping: skywire VPN in the node, 1 hop" 2)" "$(val "ping: skywire VPN, 1 hop" 2)" ms lower

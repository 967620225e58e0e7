#!/usr/bin/env bash
# VPN throughput and RTT (docs/benchmarks.md "VPN"): iperf3 and ping through the 3-hop tunnel of
# samples/vpn-netns.sh (a > b > c > d > web) and, in the same run, over the bare underlay (a > d across the bridge).
# Needs root, iperf3 and what samples/vpn-netns.sh needs; `dotnet build -c Release` first.
# tinc and OpenVPN are not part of this script yet (issue 14 item 7 asks for them in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-8}
trap 'samples/vpn-netns.sh --down' EXIT
samples/vpn-netns.sh --keep >/dev/null

run_iperf() { # NAME SERVER_NS SERVER_ADDR [iperf3 client args]
  local name=$1 sns=$2 addr=$3; shift 3
  ip netns exec "$sns" iperf3 -s -1 -B "$addr" >/dev/null 2>&1 &
  local spid=$!
  sleep 1
  local out
  out=$(ip netns exec sky-a iperf3 -c "$addr" -t "$SECS" -f M "$@" 2>&1 | grep -E 'receiver' | tail -1)
  wait "$spid" 2>/dev/null || true
  printf '| %s | %s |\n' "$name" "$(echo "$out" | awk '{for(i=1;i<=NF;i++) if ($i=="MBytes/sec") print $(i-1)" MB/s"}')"
}
rtt() { # NAME ADDR
  local avg
  avg=$(ip netns exec sky-a ping -c 20 -i 0.1 -q "$2" | awk -F/ '/rtt/ {print $5}')
  printf '| %s | %s ms |\n' "$1" "$avg"
}

echo "| path | iperf3 TCP (1 stream, ${SECS} s, receiver) |"
echo "|---|---:|"
run_iperf "veth + bridge underlay (a > d)" sky-d 10.90.0.3
run_iperf "skywire VPN, 3 hops (a > b > c > d > web)" sky-web 10.90.9.2
run_iperf "skywire VPN, 3 hops, 4 streams" sky-web 10.90.9.2 -P 4
echo
echo "| path | ping avg |"
echo "|---|---:|"
rtt "veth + bridge underlay" 10.90.0.3
rtt "skywire VPN, 3 hops" 10.90.9.2

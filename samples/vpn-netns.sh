#!/usr/bin/env bash
# The VPN end to end on one machine (docs/vpn.md): network namespaces stand in for hosts.
#   sky-a    node a + vpn-client            (the user's machine)
#   sky-hub  a bridge, the manager, relay nodes b and c
#   sky-d    node d + vpn-server with NAT   (the exit)
#   sky-web  a web server reachable only behind d (10.90.9.2 and fd78:9::2)
# Route: a > b > c > d (3 hops), IPv4 and IPv6 through the tunnel. Needs root, iproute2, nftables, curl, python3, and `dotnet build -c Release` first.
# Usage: sudo samples/vpn-netns.sh          (sets up, fetches the page through the tunnel, tears everything down)
#        sudo samples/vpn-netns.sh --keep   (leaves it running; `samples/vpn-netns.sh --down` removes it)
set -euo pipefail
cd "$(dirname "$0")/.."
SK=(dotnet src/Skywire/bin/Release/net10.0/skywire.dll)
RUN=run/vpn-demo
NS=(sky-hub sky-a sky-d sky-web)

down() {
  for f in "$RUN"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  for n in "${NS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -f "$RUN"/*.pid
}
if [ "${1:-}" = "--down" ]; then down; exit 0; fi
[ -f "${SK[1]}" ] || { echo "build first: dotnet build -c Release" >&2; exit 2; }
mkdir -p "$RUN"
down
trap '[ "${1:-}" = "--keep" ] || down' EXIT

# Namespaces: a and d on a bridge in sky-hub (10.90.0.0/24), web behind d (10.90.9.0/24).
for n in "${NS[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n sky-hub link add br0 type bridge
ip -n sky-hub addr add 10.90.0.1/24 dev br0
ip -n sky-hub link set br0 up
i=2
for n in a d; do
  ip link add "sky-$n" type veth peer name "sky-$n-br"
  ip link set "sky-$n" netns "sky-$n"
  ip link set "sky-$n-br" netns sky-hub
  ip -n sky-hub link set "sky-$n-br" master br0 up
  ip -n "sky-$n" addr add "10.90.0.$i/24" dev "sky-$n"
  ip -n "sky-$n" link set "sky-$n" up
  i=$((i + 1))
done
ip link add sky-web type veth peer name sky-web-d
ip link set sky-web netns sky-web
ip link set sky-web-d netns sky-d
ip -n sky-d addr add 10.90.9.1/24 dev sky-web-d
ip -n sky-d link set sky-web-d up
ip -n sky-web addr add 10.90.9.2/24 dev sky-web
ip -n sky-web link set sky-web up
ip -n sky-d addr add fd78:9::1/64 dev sky-web-d nodad
ip -n sky-web addr add fd78:9::2/64 dev sky-web nodad
ip -n sky-web route add default via fd78:9::1

start() { # start NAME NAMESPACE ARGS...: runs skywire in the background, output in $RUN/NAME.log
  local name=$1 ns=$2; shift 2
  ip netns exec "$ns" "${SK[@]}" "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}
wait_for() { # wait_for FILE TEXT
  for _ in $(seq 1 120); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

[ -f "$RUN/manager.json" ] || "${SK[@]}" keygen --out "$RUN/manager.json" >/dev/null
start manager sky-hub manager --key "$RUN/manager.json" --listen 10.90.0.1:5999
wait_for "$RUN/manager.log" "listening on"
MKEY=$(grep -o 'manager [0-9a-f]\{66\}' "$RUN/manager.log" | head -1 | cut -d' ' -f2)
M="$MKEY@10.90.0.1:5999"
start node-a sky-a   node --manager "$M" --key "$RUN/a.json" --app-token-file "$RUN/a.token" --listen 10.90.0.2:7000 --apps 127.0.0.1:7010
start node-b sky-hub node --manager "$M" --key "$RUN/b.json" --app-token-file "$RUN/b.token" --listen 10.90.0.1:7001 --apps 127.0.0.1:7011
start node-c sky-hub node --manager "$M" --key "$RUN/c.json" --app-token-file "$RUN/c.token" --listen 10.90.0.1:7002 --apps 127.0.0.1:7012
start node-d sky-d   node --manager "$M" --key "$RUN/d.json" --app-token-file "$RUN/d.token" --listen 10.90.0.3:7003 --apps 127.0.0.1:7013
for n in a b c d; do wait_for "$RUN/node-$n.log" "apps 127.0.0.1"; done
key() { grep -o 'node [0-9a-f]\{66\}' "$RUN/node-$1.log" | head -1 | cut -d' ' -f2; }
A=$(key a) B=$(key b) C=$(key c) D=$(key d)
cli() { ip netns exec sky-hub "${SK[@]}" cli --manager "$M" --key "$RUN/manager.json" "$@"; }
cli link "$A" "$B"; cli link "$B" "$C"; cli link "$C" "$D"
for _ in $(seq 1 120); do [ "$(cli links | grep -c ' up ')" -ge 6 ] && break; sleep 0.5; done

start vpn-server sky-d app vpn-server --node-apps 127.0.0.1:7013 --token-file "$RUN/d.token" --allow "$A"
wait_for "$RUN/vpn-server.log" "vpn-server ready"
start vpn-client sky-a app vpn-client --node-apps 127.0.0.1:7010 --token-file "$RUN/a.token" --route 10.90.9.0/24 --route fd78:9::/64
wait_for "$RUN/vpn-client.log" "vpn-client up"
mkdir -p "$RUN/www"; echo "hello from the web namespace, through the vpn" >"$RUN/www/index.html"
ip netns exec sky-web python3 -m http.server --bind :: 8000 --directory "$RUN/www" >"$RUN/web.log" 2>&1 &
echo $! >"$RUN/web.pid"
wait_for "$RUN/web.log" "Serving HTTP"

grep "vpn-client up" "$RUN/vpn-client.log"
ip netns exec sky-a ping -c 3 -W 5 10.90.9.2
ip netns exec sky-a curl -sS --retry 5 --retry-connrefused http://10.90.9.2:8000/
ip netns exec sky-a ping -6 -c 3 -W 5 fd78:9::2
ip netns exec sky-a curl -sS --retry 5 --retry-connrefused 'http://[fd78:9::2]:8000/'
cli routes
if [ "${1:-}" = "--keep" ]; then
  echo "running; try: sudo ip netns exec sky-a curl http://10.90.9.2:8000/ (or http://[fd78:9::2]:8000/)   remove with: sudo $0 --down"
fi

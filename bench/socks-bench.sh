#!/usr/bin/env bash
# SOCKS benchmark: download throughput and connection set-up latency through
#   skywire socks-client -> mesh (1 hop, 3 hops) -> socks-server   (in-process manager + nodes, encrypted UDP links on loopback)
#   skywire socks-client -> loopback TCP tunnel -> socks-server      (the SOCKS layer alone, no mesh)
#   microsocks (direct)                              (Debian package microsocks)
#   ssh -D against a throwaway sshd on loopback      (Debian packages openssh-server, openssh-client)
#   no proxy                                         (the ceiling)
# Usage: bench/socks-bench.sh [SIZE_MB=1024] [LATENCY_COUNT=500] [RUNS=3]
# Every process this script starts is stopped by its pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mb=${1:-1024}
latency_count=${2:-500}
runs=${3:-3}
size=$((size_mb * 1024 * 1024))

for tool in curl microsocks /usr/sbin/sshd ssh ssh-keygen python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install curl microsocks openssh-server openssh-client python3)" >&2; exit 1; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # wait until 127.0.0.1:$1 accepts, at most 20 s
  for _ in $(seq 1 200); do
    python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; return 1
}
read_port() { # wait for "PORT n" in file $1
  for _ in $(seq 1 1200); do
    if grep -q '^PORT ' "$1" 2>/dev/null; then awk '/^PORT /{print $2; exit}' "$1"; return 0; fi
    sleep 0.1
  done
  echo "no PORT line in $1" >&2; return 1
}

# SOCKS_BENCH_HELPER=path/to/Skywire.SocksBench.dll runs another build (e.g. a copy of the one before a change) unbuilt.
helper=${SOCKS_BENCH_HELPER:-}
if [ -z "$helper" ]; then
  echo "building bench/Skywire.SocksBench ..." >&2
  dotnet build bench/Skywire.SocksBench -c Release -v quiet -nologo >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
  helper=bench/Skywire.SocksBench/bin/Release/net10.0/Skywire.SocksBench.dll
fi

dotnet "$helper" http >"$tmp/http.out" 2>&1 & pids+=($!)
http_port=$(read_port "$tmp/http.out")
dotnet "$helper" stack >"$tmp/stack.out" 2>&1 & pids+=($!)
skywire_port=$(read_port "$tmp/stack.out")
dotnet "$helper" mesh 1 >"$tmp/mesh1.out" 2>&1 & pids+=($!)
mesh1_port=$(read_port "$tmp/mesh1.out")
dotnet "$helper" mesh 3 >"$tmp/mesh3.out" 2>&1 & pids+=($!)
mesh3_port=$(read_port "$tmp/mesh3.out")

microsocks_port=$(free_port)
microsocks -i 127.0.0.1 -p "$microsocks_port" >"$tmp/microsocks.log" 2>&1 & pids+=($!)
wait_port "$microsocks_port"

# A throwaway sshd on loopback: own host key, own authorized key, no PAM; stopped on exit.
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/user_key"
cp "$tmp/user_key.pub" "$tmp/authorized_keys"
sshd_port=$(free_port)
cat >"$tmp/sshd_config" <<CONF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $tmp/host_key
AuthorizedKeysFile $tmp/authorized_keys
PidFile $tmp/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
CONF
/usr/sbin/sshd -D -f "$tmp/sshd_config" -E "$tmp/sshd.log" & pids+=($!)
wait_port "$sshd_port"
sshd_socks_port=$(free_port)
ssh -N -D "127.0.0.1:$sshd_socks_port" -i "$tmp/user_key" -p "$sshd_port" \
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR \
  "$(id -un)@127.0.0.1" & pids+=($!)
wait_port "$sshd_socks_port"

url="http://127.0.0.1:$http_port/bytes/$size"
download() { # $1 = proxy port or "none"; prints best MB/s over $runs runs
  local best=0 args=()
  [ "$1" != none ] && args=(--socks5-hostname "127.0.0.1:$1")
  for _ in $(seq 1 "$runs"); do
    local speed
    speed=$(curl -sS "${args[@]}" -o /dev/null -w '%{speed_download}' "$url")
    best=$(python3 -c "print(max($best, $speed/1e6))")
  done
  printf '%.0f' "$best"
}
latency() { dotnet "$helper" latency "127.0.0.1:$1" "127.0.0.1:$http_port" "$latency_count"; }

echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(uname -r), .NET $(dotnet --version)"
echo "download: ${size_mb} MiB from a local HTTP server, best of $runs; latency: $latency_count sequential SOCKS5 CONNECTs (TCP connect + greeting + request, until the success reply) to a local TCP port"
echo
direct=$(download none)
echo "| path | download MB/s | vs direct | CONNECT set-up latency |"
echo "|---|---|---|---|"
echo "| direct (no proxy) | $direct | 1.00 | - |"
results=()
for entry in "skywire socks, mesh 1 hop:$mesh1_port" "skywire socks, mesh 3 hops:$mesh3_port" \
    "skywire socks, loopback TCP tunnel (no mesh):$skywire_port" "microsocks:$microsocks_port" "ssh -D:$sshd_socks_port"; do
  name=${entry%:*}; port=${entry##*:}
  mbps=$(download "$port")
  ratio=$(python3 -c "print(f'{$mbps/$direct:.2f}')")
  lat=$(latency "$port")
  echo "| $name | $mbps | $ratio | $lat |"
  results+=("$mbps ${lat#*p50_us=}")   # "MB/s p50 ..." per path, in the order above
done

# Machine-readable results for bench/run-all (format: bench/README.md): mesh paths against ssh -D (index 4) and microsocks (3).
read -r m1_mbps m1_p50 _ <<<"${results[0]}"; read -r m3_mbps m3_p50 _ <<<"${results[1]}"
read -r ms_mbps ms_p50 _ <<<"${results[3]}"; read -r ssh_mbps ssh_p50 _ <<<"${results[4]}"
echo
echo "RESULT name=socks-download-1hop-vs-ssh-D ours=$m1_mbps baseline=$ssh_mbps unit=MB/s better=higher"
echo "RESULT name=socks-download-3hop-vs-ssh-D ours=$m3_mbps baseline=$ssh_mbps unit=MB/s better=higher"
echo "RESULT name=socks-download-1hop-vs-microsocks ours=$m1_mbps baseline=$ms_mbps unit=MB/s better=higher"
echo "RESULT name=socks-connect-p50-1hop-vs-ssh-D ours=$m1_p50 baseline=$ssh_p50 unit=us better=lower"
echo "RESULT name=socks-connect-p50-3hop-vs-ssh-D ours=$m3_p50 baseline=$ssh_p50 unit=us better=lower"

#!/usr/bin/env bash
# Messenger throughput and latency (issue 19.6) beside a plain TCP relay, in one run:
#   ours:     `skywire messenger` (one process), N sender/receiver client pairs (MessengerClient: Noise XK channel to
#             the messenger, end-to-end session envelopes), 1 KiB messages, closed loop with W messages in flight per pair
#             (WINDOW may be a comma list, e.g. 8,32: each window is measured in turn and gets its own RESULT lines);
#   baseline: a minimal plain TCP relay (no crypto, the same hub-and-frames shape; Skywire.MessengerBench relay),
#             driven by the same load program.
# Rounds are interleaved (messenger, relay, messenger, relay, ...); medians are reported. Then the connection
# capacity: the messenger's RSS before and after N idle authenticated clients.
# Usage: bench/messenger-bench.sh [PAIRS] [MESSAGES_PER_PAIR] [ROUNDS] [IDLE_CLIENTS] [WINDOW[,WINDOW...]]
# In a closed loop the mean latency is (messages in flight) / rate (Little's law): a p99 goal is only measurable with a
# window small enough that PAIRS x WINDOW / rate is well under it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pairs=${1:-16} messages=${2:-20000} rounds=${3:-3} idle=${4:-2000} windows=${5:-64}
sw="$root/src/Skywire/bin/Release/net10.0/skywire.dll"
mb="$root/bench/Skywire.MessengerBench/bin/Release/net10.0/Skywire.MessengerBench.dll"
[ -f "$sw" ] && [ -f "$mb" ] || { echo "messenger-bench: build first: dotnet build -c Release" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/messenger-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_line() { # file pattern
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "messenger-bench: no '$2' in $1:" >&2; cat "$1" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

start_messenger() {
  dotnet "$sw" messenger --listen 127.0.0.1:0 --key "$work/m.key" --rate 100000000 --burst 100000000 >"$work/m.out" 2>&1 &
  mpid=$!; pids+=("$mpid")
  wait_line "$work/m.out" '^messenger .* listening on'
  maddr=$(awk '/^messenger .* listening on/ {print $2 "@" $5; exit}' "$work/m.out")
}
start_relay() {
  dotnet "$mb" relay --listen 127.0.0.1:0 >"$work/r.out" 2>&1 &
  rpid=$!; pids+=("$rpid")
  wait_line "$work/r.out" '^relay listening on'
  raddr=$(awk '/^relay listening on/ {print $4; exit}' "$work/r.out")
}
hz=$(getconf CLK_TCK)
run_load() { # target address serverpid -> prints "rate p50 p99 servercpu_per_100k"
  local before after line
  before=$(cpu_ticks "$3")
  line=$(dotnet "$mb" load --target "$1" --address "$2" --pairs "$pairs" --messages "$messages" --window "$window" --size 1024)
  after=$(cpu_ticks "$3")
  echo "  $line server_cpu=$(awk -v t=$((after - before)) -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}')s" >&2
  awk -v l="$line" -v t=$((after - before)) -v hz="$hz" -v n=$((pairs * messages)) 'BEGIN {
    split(l, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
    gsub("/s", "", v["rate"]); gsub("ms", "", v["p50"]); gsub("ms", "", v["p99"]);
    printf "%s %s %s %.3f\n", v["rate"], v["p50"], v["p99"], (t / hz) / n * 100000 }'
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

col() { awk -v c="$2" '{print $c}' "$1" | median; }
results=()
IFS=, read -r -a window_list <<<"$windows"
for window in "${window_list[@]}"; do
  [[ $window =~ ^[1-9][0-9]*$ ]] || { echo "messenger-bench: WINDOW must be positive integers (got '$window')" >&2; exit 2; }
  echo "messenger-bench: $pairs pairs x $messages messages of 1 KiB, window $window ($((pairs * window)) in flight), $rounds interleaved rounds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  : >"$work/ours"; : >"$work/base"
  for r in $(seq "$rounds"); do
    start_messenger; echo "round $r: messenger" >&2; run_load messenger "$maddr" "$mpid" >>"$work/ours"; kill "$mpid"; wait "$mpid" 2>/dev/null || true
    start_relay; echo "round $r: plain TCP relay" >&2; run_load relay "$raddr" "$rpid" >>"$work/base"; kill "$rpid"; wait "$rpid" 2>/dev/null || true
  done

  printf '\nwindow %-21s %14s %10s %10s %22s\n' "$window" "messages/s" "p50 ms" "p99 ms" "server CPU s / 100k msg"
  printf '%-28s %14.0f %10.2f %10.2f %22.3f\n' "messenger (ours)" "$(col "$work/ours" 1)" "$(col "$work/ours" 2)" "$(col "$work/ours" 3)" "$(col "$work/ours" 4)"
  printf '%-28s %14.0f %10.2f %10.2f %22.3f\n' "plain TCP relay (baseline)" "$(col "$work/base" 1)" "$(col "$work/base" 2)" "$(col "$work/base" 3)" "$(col "$work/base" 4)"
  # The first window keeps the historical RESULT names; further windows get a -windowN suffix.
  suffix=""; [ ${#results[@]} -eq 0 ] || suffix="-window$window"
  results+=("RESULT name=messenger-1k-msgs-per-s$suffix ours=$(col "$work/ours" 1) baseline=$(col "$work/base" 1) unit=msg/s better=higher")
  results+=("RESULT name=messenger-1k-p99-ms$suffix ours=$(col "$work/ours" 3) baseline=$(col "$work/base" 3) unit=ms better=lower")
  results+=("RESULT name=messenger-server-cpu-per-100k$suffix ours=$(col "$work/ours" 4) baseline=$(col "$work/base" 4) unit=cpu-s better=lower")
done

# Connection capacity: idle authenticated clients (each proved its key: Noise XK + signed hello).
start_messenger
sleep 1
rss0=$(rss_kb "$mpid")
mkfifo "$work/hold"
dotnet "$mb" idle --address "$maddr" --clients "$idle" <"$work/hold" >"$work/idle.out" 2>&1 &
ipid=$!; pids+=("$ipid")
exec 3>"$work/hold"
wait_line "$work/idle.out" '^idle clients='
sleep 2
rss1=$(rss_kb "$mpid")
exec 3>&-
wait "$ipid" 2>/dev/null || true
idle=$(awk -F'[= ]' '/^idle clients=/ {print $3; exit}' "$work/idle.out")
per=$(awk -v a="$rss0" -v b="$rss1" -v n="$idle" 'BEGIN {printf "%.1f", (n > 0) ? (b - a) / n : 0}')
pergb=$(awk -v p="$per" 'BEGIN {printf "%.0f", (p > 0) ? 1048576 / p : 0}')
echo "capacity: $idle idle authenticated clients: messenger RSS ${rss0} kB -> ${rss1} kB, ${per} kB per client, ~${pergb} clients per GB" >&2

printf '%s\n' "${results[@]}"

#!/usr/bin/env bash
# Cluster-wide queries vs a local daemon (issue 16 item 6), one run on this machine, everything on loopback:
#   a primary and 2 agents (3 hosts) with N apps each, beside a standalone daemon with N apps;
#   la (viscript cli and GET /api/processes) of the whole cluster (3 x N rows) vs the standalone daemon (N rows);
#   ru of an agent's app through the primary (HOST:ID) vs ru of a local app.
# Prints a markdown table, then RESULT lines (bench/README.md): ours = the cluster query, baseline = the same query to the
# standalone daemon (issue 16 goal: a cluster-wide la within 2x a local one).
# Apps are /bin/sleep (not signal clients: la and ru read the supervisors' tables and /proc).
# Needs: dotnet, curl, python3, bc. Usage: bench/viscript-cluster.sh [N] [RUNS]   (defaults 100 and 20).
# Starts and stops its own daemons (by pid) and leaves nothing running. Prints a markdown table.
set -euo pipefail
N=${1:-100}
RUNS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/viscript-cluster-bench.XXXXXX)
DLL="$ROOT/src/Viscript/bin/Release/net10.0/viscript.dll"
PIDS=()
VISCRIPT_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export VISCRIPT_TOKEN
AUTH=(-H "Authorization: Bearer $VISCRIPT_TOKEN")

for tool in dotnet curl python3 bc; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }; done

cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

dotnet build "$ROOT/src/Viscript" -c Release -v q -nologo >/dev/null

cat > "$WORK/config.yaml" <<YAML
apps:
  sl:
    path: /bin/sleep
    default_args: ["3600"]
    stop_timeout: 5s
YAML

# start NAME ARGS...: a headless daemon on loopback port 0; sets URL_<NAME>.
start() {
  local name=$1; shift
  mkdir -p "$WORK/$name"
  dotnet "$DLL" --headless --no-repl --config "$WORK/config.yaml" --signal 127.0.0.1:0 --control 127.0.0.1:0 \
    --logs "$WORK/$name/logs" "$@" > "$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1200); do grep -q '^viscript: signal' "$WORK/$name.out" && break; sleep 0.05; done
  local url; url=$(sed -n 's/^viscript: signal .* control \(http[^ ]*\) pid .*/\1/p' "$WORK/$name.out")
  [[ -n "$url" ]] || { cat "$WORK/$name.out" >&2; exit 1; }
  printf -v "URL_$name" '%s' "$url"
}
launch() { # URL: N apps over one keep-alive connection
  local reqs=(); for i in $(seq "$N"); do [[ $i -gt 1 ]] && reqs+=(--next); reqs+=(-s -o /dev/null "${AUTH[@]}" -H 'content-type: application/json' -d '{"app":"sl"}' "$1/api/processes"); done
  curl "${reqs[@]}"
}
running() { curl -s "${AUTH[@]}" "$1/api/processes" | grep -o '"state":"Running"' | wc -l; }
wait_for() { # DESCRIPTION COMMAND...: until the command succeeds, at most 300 s
  local what=$1; shift; local deadline=$(( $(date +%s) + 300 ))
  until "$@"; do [[ $(date +%s) -lt $deadline ]] || { echo "timed out: $what" >&2; exit 1; }; sleep 0.1; done
}

for h in main a1 a2; do dotnet "$DLL" key --cluster-key "$WORK/$h.key" > "$WORK/$h.pub"; done
printf 'a1 %s\na2 %s\n' "$(cat "$WORK/a1.pub")" "$(cat "$WORK/a2.pub")" > "$WORK/agents.allow"
start main --name main --cluster-key "$WORK/main.key" --agents 127.0.0.1:0 --agents-allow "$WORK/agents.allow"
AGENTS=$(sed -n "s/^viscript: cluster primary 'main' agents \([^ ]*\) key .*/\1/p" "$WORK/main.out")
for h in a1 a2; do start "$h" --cluster-key "$WORK/$h.key" --join "$AGENTS" --primary-key "$(cat "$WORK/main.pub")"; done
start solo
wait_for "agents connected" bash -c "[[ \$(curl -s -H 'Authorization: Bearer $VISCRIPT_TOKEN' $URL_main/api/hosts | grep -o '\"state\":\"connected\"' | wc -l) -eq 2 ]]"
for u in "$URL_main" "$URL_a1" "$URL_a2" "$URL_solo"; do launch "$u"; done
wait_for "3 x $N running on the primary" bash -c "[[ \$(curl -s -H 'Authorization: Bearer $VISCRIPT_TOKEN' $URL_main/api/processes | grep -o '\"state\":\"Running\"' | wc -l) -eq $((3 * N)) ]]"
wait_for "$N running on the standalone daemon" bash -c "[[ \$(curl -s -H 'Authorization: Bearer $VISCRIPT_TOKEN' $URL_solo/api/processes | grep -o '\"state\":\"Running\"' | wc -l) -eq $N ]]"

# time LABEL COMMAND...: mean/min/max seconds over RUNS runs after 2 warm-ups (output discarded, must succeed).
declare -A MEAN MIN MAX
time_it() {
  local label=$1; shift; local ts=()
  for _ in 1 2; do "$@" >/dev/null; done
  for _ in $(seq "$RUNS"); do
    local t0; t0=$(date +%s.%N); "$@" >/dev/null; ts+=("$(echo "$(date +%s.%N) - $t0" | bc)")
  done
  MEAN[$label]=$(printf '%s\n' "${ts[@]}" | awk '{s+=$1} END {printf "%.4f", s/NR}')
  MIN[$label]=$(printf '%s\n' "${ts[@]}" | sort -n | head -1)
  MAX[$label]=$(printf '%s\n' "${ts[@]}" | sort -n | tail -1)
}
[[ $(dotnet "$DLL" cli --control "$URL_main" la | grep -c ' Running ') -eq $((3 * N)) ]] || { echo "cluster la does not show $((3 * N)) running rows" >&2; exit 1; }
time_it "cli la, local daemon ($N apps)" dotnet "$DLL" cli --control "$URL_solo" la
time_it "cli la, cluster (3 hosts x $N apps)" dotnet "$DLL" cli --control "$URL_main" la
time_it "GET /api/processes, local daemon ($N apps)" curl -sf "${AUTH[@]}" "$URL_solo/api/processes"
time_it "GET /api/processes, cluster (3 hosts x $N apps)" curl -sf "${AUTH[@]}" "$URL_main/api/processes"
time_it "ru, local app" curl -sf -X POST "${AUTH[@]}" "$URL_solo/api/processes/1/ru"
time_it "ru, agent's app through the primary (a1:1)" curl -sf -X POST "${AUTH[@]}" "$URL_main/api/processes/a1:1/ru"

echo "| Query | Mean | Min | Max |"
echo "|---|---:|---:|---:|"
for l in "cli la, local daemon ($N apps)" "cli la, cluster (3 hosts x $N apps)" "GET /api/processes, local daemon ($N apps)" "GET /api/processes, cluster (3 hosts x $N apps)" "ru, local app" "ru, agent's app through the primary (a1:1)"; do
  printf '| %s | %.1f ms | %.1f ms | %.1f ms |\n' "$l" "$(echo "${MEAN[$l]} * 1000" | bc)" "$(echo "${MIN[$l]} * 1000" | bc)" "$(echo "${MAX[$l]} * 1000" | bc)"
done
# Issue 16's goal: a cluster-wide la within 2x a local one. Baseline = the same query to the standalone daemon.
result() { # NAME OURS_LABEL BASELINE_LABEL
  printf 'RESULT name=%s ours=%.1f baseline=%.1f unit=ms better=lower\n' "$1" "$(echo "${MEAN[$2]} * 1000" | bc)" "$(echo "${MEAN[$3]} * 1000" | bc)"
}
echo
result "viscript-cluster-cli-la-3x${N}-vs-local-${N}" "cli la, cluster (3 hosts x $N apps)" "cli la, local daemon ($N apps)"
result "viscript-cluster-api-processes-3x${N}-vs-local-${N}" "GET /api/processes, cluster (3 hosts x $N apps)" "GET /api/processes, local daemon ($N apps)"
result "viscript-cluster-remote-ru-vs-local" "ru, agent's app through the primary (a1:1)" "ru, local app"

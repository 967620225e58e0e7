#!/usr/bin/env bash
# viscript vs supervisord, side by side in one run on this machine:
#   1. launch N apps until each is up (viscript: registered over signal; supervisord: RUNNING with startsecs=0)
#   2. status of N running apps: the CLIs (viscript cli la / supervisorctl status) and the APIs (one HTTP request each)
#   3. per-app resource query for all N apps over one keep-alive connection
#      (viscript ru = /proc + signal TOP round trip; supervisord getProcessInfo = its own bookkeeping)
# Every app is bench/viscript/signal-client.py (a signal client; under supervisord it has no signal env and just sleeps).
# Needs: dotnet, curl, python3, supervisor and hyperfine (apt-get install -y supervisor hyperfine).
# Usage: bench/viscript-vs-supervisord.sh [N] [ROUNDS]      (defaults 100 and 3). Prints a markdown summary.
set -euo pipefail
N=${1:-100}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/viscript-bench.XXXXXX)
CLIENT="$ROOT/bench/viscript/signal-client.py"
VISCRIPT_DLL="$ROOT/src/Viscript/bin/Release/net10.0/viscript.dll"
VPID=""
SUPCONF="$WORK/supervisord.conf"

for tool in dotnet curl python3 supervisord supervisorctl hyperfine; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y supervisor hyperfine curl)" >&2; exit 1; }
done

cleanup() {
  if [[ -n "$VPID" ]] && kill -0 "$VPID" 2>/dev/null; then
    kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true
  fi
  if [[ -f "$WORK/supervisord.pid" ]]; then
    local spid; spid=$(cat "$WORK/supervisord.pid")
    supervisorctl -c "$SUPCONF" shutdown >/dev/null 2>&1 || kill -TERM "$spid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  fi
  cp "$WORK/viscript.out" /tmp/viscript-bench-daemon.out 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dotnet build "$ROOT/src/Viscript" -c Release -v q -nologo >/dev/null

# ---------- viscript ----------
cat > "$WORK/viscript.yaml" <<YAML
apps:
  py:
    path: $CLIENT
    stop_timeout: 5s
YAML

start_viscript() {
  dotnet "$VISCRIPT_DLL" --headless --no-repl --config "$WORK/viscript.yaml" --signal 127.0.0.1:0 --control 127.0.0.1:0 --logs "$WORK/logs" > "$WORK/viscript.out" 2>&1 &
  VPID=$!
  for _ in $(seq 600); do grep -q '^viscript: signal' "$WORK/viscript.out" && break; sleep 0.05; done
  URL=$(sed -n 's/^viscript: signal .* control \(http[^ ]*\) pid .*/\1/p' "$WORK/viscript.out")
  [[ -n "$URL" ]] || { cat "$WORK/viscript.out" >&2; exit 1; }
}
stop_viscript() { kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true; VPID=""; }

registered() { curl -s "$URL/api/processes" | grep -o '"signalRegistered":true' | wc -l; }

declare -a V_SPAWN V_REG S_START
for r in $(seq "$ROUNDS"); do
  start_viscript
  curl -s -o /dev/null "$URL/api/processes" # first request pays Kestrel's warm-up, outside the timing
  t0=$(now)
  # One curl, one keep-alive connection, N POSTs (--next separates the requests).
  reqs=(); for i in $(seq "$N"); do [[ $i -gt 1 ]] && reqs+=(--next); reqs+=(-s -o /dev/null -H 'content-type: application/json' -d '{"app":"py"}' "$URL/api/processes"); done
  curl "${reqs[@]}"
  t1=$(now)
  deadline=$(( $(date +%s) + 300 ))
  while [[ $(registered) -lt $N ]]; do
    [[ $(date +%s) -lt $deadline ]] || { echo "viscript: only $(registered)/$N registered after 300 s" >&2; exit 1; }
    sleep 0.01
  done
  t2=$(now)
  V_SPAWN+=("$(echo "$t1 - $t0" | bc)"); V_REG+=("$(echo "$t2 - $t0" | bc)")
  if [[ $r -lt $ROUNDS ]]; then stop_viscript; fi
done
# The last daemon keeps its N registered apps for the status and ru measurements.

# ---------- supervisord ----------
SPORT=$(free_port)
cat > "$SUPCONF" <<CONF
[unix_http_server]
file=$WORK/supervisor.sock
[inet_http_server]
port=127.0.0.1:$SPORT
[supervisord]
logfile=$WORK/supervisord.log
pidfile=$WORK/supervisord.pid
childlogdir=$WORK
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$WORK/supervisor.sock
[program:py]
command=$CLIENT
process_name=%(program_name)s_%(process_num)03d
numprocs=$N
autostart=false
startsecs=0
stopwaitsecs=5
CONF
supervisord -c "$SUPCONF"
# "status" exits non-zero while programs are stopped; "pid" answers as soon as supervisord serves.
for _ in $(seq 300); do supervisorctl -c "$SUPCONF" pid >/dev/null 2>&1 && break || sleep 0.1; done
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  supervisorctl -c "$SUPCONF" start 'py:*' >/dev/null
  t1=$(now)
  S_START+=("$(echo "$t1 - $t0" | bc)")
  [[ $(supervisorctl -c "$SUPCONF" status | grep -c RUNNING) -eq $N ]] || { echo "supervisord: not all RUNNING" >&2; exit 1; }
  if [[ $r -lt $ROUNDS ]]; then supervisorctl -c "$SUPCONF" stop 'py:*' >/dev/null; fi
done

# ---------- status and ru over N running apps ----------
xml() { printf '<?xml version="1.0"?><methodCall><methodName>%s</methodName><params>%s</params></methodCall>' "$1" "$2"; }
xml supervisor.getAllProcessInfo "" > "$WORK/all.xml"
{
  echo "#!/usr/bin/env bash"
  printf 'exec curl -s -o /dev/null -X POST'
  for i in $(seq "$N"); do printf ' %s/api/processes/%d/ru' "$URL" "$i"; done
  echo
} > "$WORK/v-ru.sh"
{
  echo "#!/usr/bin/env bash"
  printf 'exec curl -s -o /dev/null -H content-type:text/xml'
  first=1
  for i in $(seq "$N"); do
    name=$(printf 'py:py_%03d' "$i")
    [[ $first -eq 1 ]] || printf ' --next -H content-type:text/xml'
    first=0
    printf " --data-binary '%s' http://127.0.0.1:%s/RPC2" "$(xml supervisor.getProcessInfo "<param><value><string>$name</string></value></param>")" "$SPORT"
  done
  echo
} > "$WORK/s-info.sh"
chmod +x "$WORK/v-ru.sh" "$WORK/s-info.sh"
# Sanity: viscript ru answers with heap figures (signal TOP went through).
curl -s -X POST "$URL/api/processes/1/ru" | grep -q '"heapAlloc":1048576' || { echo "viscript ru without signal figures: $(curl -s -X POST "$URL/api/processes/1/ru")" >&2; exit 1; }

hyperfine --warmup 2 --runs 15 --export-markdown "$WORK/status.md" --export-json "$WORK/status.json" -N \
  -n "viscript cli la" "dotnet $VISCRIPT_DLL cli --control $URL la" \
  -n "supervisorctl status" "supervisorctl -c $SUPCONF status" \
  -n "viscript GET /api/processes" "curl -s -o /dev/null $URL/api/processes" \
  -n "supervisord getAllProcessInfo" "curl -s -o /dev/null -H content-type:text/xml --data-binary @$WORK/all.xml http://127.0.0.1:$SPORT/RPC2" \
  -n "viscript ru x$N" "bash $WORK/v-ru.sh" \
  -n "supervisord getProcessInfo x$N" "bash $WORK/s-info.sh" >&2

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
vs=$(printf %.3f "$(median "${V_SPAWN[@]}")"); vr=$(printf %.3f "$(median "${V_REG[@]}")"); ss=$(printf %.3f "$(median "${S_START[@]}")")
echo
echo "## Viscript vs supervisord"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Command: \`bench/viscript-vs-supervisord.sh $N $ROUNDS\` ($(supervisord -v | head -1 | sed 's/^/supervisord /'), hyperfine $(hyperfine --version | cut -d' ' -f2))."
echo
echo "Launch $N apps (median of $ROUNDS rounds):"
echo
echo "| | seconds |"
echo "|---|---|"
echo "| viscript: $N x POST /api/processes (spawned) | $vs |"
echo "| viscript: ... until all $N registered over signal | $vr |"
echo "| supervisord: supervisorctl start 'py:*' (startsecs=0, RUNNING) | $ss |"
echo "| ratio supervisord / viscript-registered | $(printf %.2f "$(echo "scale=4; $ss / $vr" | bc)") |"
echo
echo "All rounds (s): viscript spawned ${V_SPAWN[*]}; viscript registered ${V_REG[*]}; supervisord ${S_START[*]}"
echo
echo "Status and resource queries with $N apps running:"
echo
cat "$WORK/status.md"

# Machine-readable results for bench/run-all (format: bench/README.md).
echo
echo "RESULT name=viscript-launch-${N}-registered-vs-supervisord ours=$vr baseline=$ss unit=s better=lower"
python3 - "$WORK/status.json" "$N" <<'PY'
import json, sys
mean = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
n = sys.argv[2]
for name, ours, base in (("cli-status", "viscript cli la", "supervisorctl status"),
                         ("api-status", "viscript GET /api/processes", "supervisord getAllProcessInfo"),
                         (f"per-app-query-x{n}", f"viscript ru x{n}", f"supervisord getProcessInfo x{n}")):
    print(f"RESULT name=viscript-{name}-vs-supervisord ours={mean[ours] * 1000:.1f} baseline={mean[base] * 1000:.1f} unit=ms better=lower")
PY

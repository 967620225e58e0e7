#!/usr/bin/env bash
# viscript vs supervisord, side by side in one run on this machine (issue 19.3):
#   1. launch N apps in one call until each is up: `viscript-cli s -n N py` until all N registered over signal,
#      against `supervisorctl start all` (RUNNING with startsecs=0)
#   2. status of N running apps through the CLIs: viscript-cli la (NativeAOT), viscript cli la (the same client on
#      the JIT, for reference) and supervisorctl status; then the same again with the machine loaded by 2 busy loops
#      per core (the "loaded" rows)
#   3. the APIs: one HTTP request each, and a per-app resource query for all N apps over one keep-alive connection
#      (viscript ru = /proc + signal TOP round trip; supervisord getProcessInfo = its own bookkeeping)
# Every app is bench/viscript/signal-client.py (a signal client; under supervisord it has no signal env and just sleeps).
# Needs: dotnet, clang + zlib1g-dev (NativeAOT viscript-cli), curl, python3, supervisor and hyperfine
# (apt-get install -y clang zlib1g-dev supervisor hyperfine curl).
# Usage: bench/viscript-vs-supervisord.sh [N] [ROUNDS]      (defaults 100 and 3). Prints a markdown summary.
set -euo pipefail
N=${1:-100}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/viscript-bench.XXXXXX)
CLIENT="$ROOT/bench/viscript/signal-client.py"
OUT="$ROOT/src/Viscript/bin/Release/net10.0"
VISCRIPT_DLL="$OUT/viscript.dll"
VCLI="$OUT/viscript-cli"
VPID=""
SPINNERS=()
SUPCONF="$WORK/supervisord.conf"

for tool in dotnet curl python3 supervisord supervisorctl hyperfine; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y supervisor hyperfine curl)" >&2; exit 1; }
done

stop_spinners() {
  for p in "${SPINNERS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SPINNERS[@]}"; do wait "$p" 2>/dev/null || true; done
  SPINNERS=()
}
cleanup() {
  stop_spinners
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

# The Release build of src/Viscript also compiles viscript-cli ahead of time when clang is installed.
dotnet build "$ROOT/src/Viscript" -c Release -v q -nologo >/dev/null
if [[ $(stat -c %s "$VCLI") -gt 1000000 ]]; then CLI_KIND="NativeAOT"; else CLI_KIND="JIT (no clang: not compiled ahead of time)"; fi

# A known token, so that curl can call the authenticated control API too.
python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$WORK/token"; chmod 600 "$WORK/token"
AUTH="Authorization: Bearer $(cat "$WORK/token")"

# ---------- viscript ----------
cat > "$WORK/viscript.yaml" <<YAML
apps:
  py:
    path: $CLIENT
    stop_timeout: 5s
YAML

start_viscript() {
  dotnet "$VISCRIPT_DLL" --headless --no-repl --config "$WORK/viscript.yaml" --signal 127.0.0.1:0 --control 127.0.0.1:0 \
    --token-file "$WORK/token" --logs "$WORK/logs" > "$WORK/viscript.out" 2>&1 &
  VPID=$!
  for _ in $(seq 600); do grep -q '^viscript: signal' "$WORK/viscript.out" && break; sleep 0.05; done
  URL=$(sed -n 's/^viscript: signal .* control \(http[^ ]*\) pid .*/\1/p' "$WORK/viscript.out")
  [[ -n "$URL" ]] || { cat "$WORK/viscript.out" >&2; exit 1; }
}
stop_viscript() { kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true; VPID=""; }
vcli() { "$VCLI" --control "$URL" --token-file "$WORK/token" "$@"; }

registered() { curl -s -H "$AUTH" "$URL/api/processes" | grep -o '"signalRegistered":true' | wc -l; }

declare -a V_CALL V_REG S_START
for r in $(seq "$ROUNDS"); do
  start_viscript
  vcli la >/dev/null # first request pays Kestrel's warm-up, outside the timing
  t0=$(now)
  vcli s -n "$N" py >/dev/null
  t1=$(now)
  deadline=$(( $(date +%s) + 300 ))
  while [[ $(registered) -lt $N ]]; do
    [[ $(date +%s) -lt $deadline ]] || { echo "viscript: only $(registered)/$N registered after 300 s" >&2; exit 1; }
    sleep 0.01
  done
  t2=$(now)
  V_CALL+=("$(echo "$t1 - $t0" | bc)"); V_REG+=("$(echo "$t2 - $t0" | bc)")
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
  supervisorctl -c "$SUPCONF" start all >/dev/null
  t1=$(now)
  S_START+=("$(echo "$t1 - $t0" | bc)")
  [[ $(supervisorctl -c "$SUPCONF" status | grep -c RUNNING) -eq $N ]] || { echo "supervisord: not all RUNNING" >&2; exit 1; }
  if [[ $r -lt $ROUNDS ]]; then supervisorctl -c "$SUPCONF" stop all >/dev/null; fi
done

# ---------- status and ru over N running apps ----------
xml() { printf '<?xml version="1.0"?><methodCall><methodName>%s</methodName><params>%s</params></methodCall>' "$1" "$2"; }
xml supervisor.getAllProcessInfo "" > "$WORK/all.xml"
{
  echo "#!/usr/bin/env bash"
  printf 'exec curl -s -o /dev/null -X POST -H "%s"' "$AUTH"
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
curl -s -X POST -H "$AUTH" "$URL/api/processes/1/ru" | grep -q '"heapAlloc":1048576' || { echo "viscript ru without signal figures: $(curl -s -X POST -H "$AUTH" "$URL/api/processes/1/ru")" >&2; exit 1; }

status_bench() { # $1 = markdown file, $2 = json file
  hyperfine --warmup 2 --runs 15 --export-markdown "$1" --export-json "$2" -N \
    -n "viscript-cli la" "$VCLI --control $URL --token-file $WORK/token la" \
    -n "viscript cli la (JIT)" "dotnet $VISCRIPT_DLL cli --control $URL --token-file $WORK/token la" \
    -n "supervisorctl status" "supervisorctl -c $SUPCONF status" >&2
}
LOAD_IDLE=$(cut -d' ' -f1-3 /proc/loadavg)
status_bench "$WORK/status.md" "$WORK/status.json"
hyperfine --warmup 2 --runs 15 --export-markdown "$WORK/api.md" --export-json "$WORK/api.json" -N \
  -n "viscript GET /api/processes" "curl -s -o /dev/null -H '$AUTH' $URL/api/processes" \
  -n "supervisord getAllProcessInfo" "curl -s -o /dev/null -H content-type:text/xml --data-binary @$WORK/all.xml http://127.0.0.1:$SPORT/RPC2" \
  -n "viscript ru x$N" "bash $WORK/v-ru.sh" \
  -n "supervisord getProcessInfo x$N" "bash $WORK/s-info.sh" >&2
# Loaded: two busy loops per core beside whatever else runs.
for _ in $(seq $(( 2 * $(nproc) ))); do (while :; do :; done) & SPINNERS+=($!); done
sleep 1
LOAD_BUSY=$(cut -d' ' -f1-3 /proc/loadavg)
status_bench "$WORK/status-loaded.md" "$WORK/status-loaded.json"
stop_spinners

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
vc=$(printf %.3f "$(median "${V_CALL[@]}")"); vr=$(printf %.3f "$(median "${V_REG[@]}")"); ss=$(printf %.3f "$(median "${S_START[@]}")")
echo
echo "## Viscript vs supervisord"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $LOAD_IDLE (loaded rows: $LOAD_BUSY)."
echo "Command: \`bench/viscript-vs-supervisord.sh $N $ROUNDS\` ($(supervisord -v | head -1 | sed 's/^/supervisord /'), hyperfine $(hyperfine --version | cut -d' ' -f2), viscript-cli $CLI_KIND)."
echo
echo "Launch $N apps in one call (median of $ROUNDS rounds):"
echo
echo "| | seconds |"
echo "|---|---|"
echo "| viscript: viscript-cli s -n $N py (answered: all spawned) | $vc |"
echo "| viscript: ... until all $N registered over signal | $vr |"
echo "| supervisord: supervisorctl start all (startsecs=0, RUNNING) | $ss |"
echo "| ratio viscript-registered / supervisord | $(printf %.2f "$(echo "scale=4; $vr / $ss" | bc)") |"
echo
echo "All rounds (s): viscript answered ${V_CALL[*]}; viscript registered ${V_REG[*]}; supervisord ${S_START[*]}"
echo
echo "Status with $N apps running, as the machine is (load $LOAD_IDLE):"
echo
cat "$WORK/status.md"
echo
echo "The same with 2 busy loops per core added (load $LOAD_BUSY):"
echo
cat "$WORK/status-loaded.md"
echo
echo "APIs with $N apps running:"
echo
cat "$WORK/api.md"

# Machine-readable results for bench/run-all (format: bench/README.md).
echo
echo "RESULT name=viscript-launch-${N}-registered-vs-supervisord ours=$vr baseline=$ss unit=s better=lower"
python3 - "$WORK/status.json" "$WORK/status-loaded.json" "$WORK/api.json" "$N" <<'PY'
import json, sys
def means(path):
    return {r["command"]: r["mean"] for r in json.load(open(path))["results"]}
idle, busy, api = means(sys.argv[1]), means(sys.argv[2]), means(sys.argv[3])
n = sys.argv[4]
rows = (("cli-status", idle, "viscript-cli la", "supervisorctl status"),
        ("cli-status-loaded", busy, "viscript-cli la", "supervisorctl status"),
        ("api-status", api, "viscript GET /api/processes", "supervisord getAllProcessInfo"),
        (f"per-app-query-x{n}", api, f"viscript ru x{n}", f"supervisord getProcessInfo x{n}"))
for name, m, ours, base in rows:
    print(f"RESULT name=viscript-{name}-vs-supervisord ours={m[ours] * 1000:.1f} baseline={m[base] * 1000:.1f} unit=ms better=lower")
PY

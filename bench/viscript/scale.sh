#!/usr/bin/env bash
# Viscript at scale and its start-up, beside supervisord in the same run (issue 19 items 4 and 7):
#   1. start-up: `viscript` exec until its control API answers (GET /api/info), against supervisord exec until
#      `supervisorctl pid` answers; median of ROUNDS
#   2. N apps (default 1 000) under one daemon: `viscript-cli s -n N py` until all N registered over signal, against
#      `supervisorctl start all` (numprocs=N, startsecs=0); then, with the N apps running: viscript-cli la, ru of one
#      app, the GUI's two reads (GET /api/processes for the table, GET /api/samples for the charts) and
#      supervisorctl status; memory per app (daemon RSS with N apps minus with none, divided by N) for both.
# Every app is bench/viscript/signal-client.py (under supervisord it has no signal env and just sleeps).
# Needs what bench/viscript-vs-supervisord.sh needs. Usage: bench/viscript/scale.sh [N] [ROUNDS]  (1000 3)
set -euo pipefail
N=${1:-1000}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/viscript-scale.XXXXXX)
CLIENT="$ROOT/bench/viscript/signal-client.py"
OUT="$ROOT/src/Viscript/bin/Release/net10.0"
VCLI="$OUT/viscript-cli"
VPID=""
SUPCONF="$WORK/supervisord.conf"

for tool in dotnet curl python3 supervisord supervisorctl hyperfine; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y supervisor hyperfine curl)" >&2; exit 1; }
done
cleanup() {
  if [[ -n "$VPID" ]] && kill -0 "$VPID" 2>/dev/null; then kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true; fi
  if [[ -f "$WORK/supervisord.pid" ]]; then
    local spid; spid=$(cat "$WORK/supervisord.pid")
    supervisorctl -c "$SUPCONF" shutdown >/dev/null 2>&1 || kill -TERM "$spid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

dotnet build "$ROOT/src/Viscript" -c Release -v q -nologo >/dev/null
python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$WORK/token"; chmod 600 "$WORK/token"
AUTH="Authorization: Bearer $(cat "$WORK/token")"
cat > "$WORK/viscript.yaml" <<YAML
apps:
  py:
    path: $CLIENT
    stop_timeout: 5s
YAML

# ---------- 1. start-up ----------
declare -a V_UP S_UP
for r in $(seq "$ROUNDS"); do
  port=$(free_port)
  t0=$(now)
  "$OUT/viscript" --headless --no-repl --config "$WORK/viscript.yaml" --signal 127.0.0.1:0 --control "127.0.0.1:$port" \
    --token-file "$WORK/token" --logs "$WORK/logs" > "$WORK/viscript.out" 2>&1 &
  VPID=$!
  until curl -s -o /dev/null -f -H "$AUTH" "http://127.0.0.1:$port/api/info"; do
    kill -0 "$VPID" 2>/dev/null || { cat "$WORK/viscript.out" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(now)
  V_UP+=("$(echo "$t1 - $t0" | bc)")
  if [[ $r -lt $ROUNDS ]]; then kill -TERM "$VPID"; wait "$VPID" 2>/dev/null || true; VPID=""; fi
done
URL="http://127.0.0.1:$port"
IDLE_KIB=$(rss_kib "$VPID")

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
minfds=$(( N * 4 + 1024 ))
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$WORK/supervisor.sock
[program:py]
command=$CLIENT
process_name=%(program_name)s_%(process_num)04d
numprocs=$N
autostart=false
startsecs=0
stopwaitsecs=5
stdout_logfile=NONE
stderr_logfile=NONE
CONF
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  supervisord -c "$SUPCONF"
  until supervisorctl -c "$SUPCONF" pid >/dev/null 2>&1; do sleep 0.005; done
  t1=$(now)
  S_UP+=("$(echo "$t1 - $t0" | bc)")
  if [[ $r -lt $ROUNDS ]]; then
    spid=$(cat "$WORK/supervisord.pid"); supervisorctl -c "$SUPCONF" shutdown >/dev/null
    for _ in $(seq 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
  fi
done
SPID=$(cat "$WORK/supervisord.pid")
S_IDLE_KIB=$(rss_kib "$SPID")

# ---------- 2. N apps ----------
registered() { curl -s -H "$AUTH" "$URL/api/processes" | grep -o '"signalRegistered":true' | wc -l; }
t0=$(now)
"$VCLI" --control "$URL" --token-file "$WORK/token" s -n "$N" py >/dev/null
t1=$(now)
deadline=$(( $(date +%s) + 600 ))
while [[ $(registered) -lt $N ]]; do
  [[ $(date +%s) -lt $deadline ]] || { echo "viscript: only $(registered)/$N registered after 600 s" >&2; exit 1; }
  sleep 0.05
done
t2=$(now)
V_CALL=$(echo "$t1 - $t0" | bc); V_REG=$(echo "$t2 - $t0" | bc)

t0=$(now)
supervisorctl -c "$SUPCONF" start all >/dev/null
t1=$(now)
S_START=$(echo "$t1 - $t0" | bc)
[[ $(supervisorctl -c "$SUPCONF" status | grep -c RUNNING) -eq $N ]] || { echo "supervisord: not all RUNNING" >&2; exit 1; }

sleep 2 # let both settle before reading memory
FULL_KIB=$(rss_kib "$VPID"); S_FULL_KIB=$(rss_kib "$SPID")
MID=$(( N / 2 ))
hyperfine --warmup 2 --runs 10 --export-markdown "$WORK/lat.md" --export-json "$WORK/lat.json" -N \
  -n "viscript-cli la" "$VCLI --control $URL --token-file $WORK/token la" \
  -n "viscript-cli ru $MID" "$VCLI --control $URL --token-file $WORK/token ru $MID" \
  -n "GUI table: GET /api/processes" "curl -s -o /dev/null -H '$AUTH' $URL/api/processes" \
  -n "GUI charts: GET /api/samples" "curl -s -o /dev/null -H '$AUTH' $URL/api/samples" \
  -n "supervisorctl status" "supervisorctl -c $SUPCONF status" \
  -n "supervisorctl status py:py_$(printf %04d $MID)" "supervisorctl -c $SUPCONF status py:py_$(printf %04d $MID)" >&2

vu=$(printf %.3f "$(median "${V_UP[@]}")"); su=$(printf %.3f "$(median "${S_UP[@]}")")
per_app=$(( (FULL_KIB - IDLE_KIB) / N )); s_per_app=$(( (S_FULL_KIB - S_IDLE_KIB) / N ))
echo
echo "## Viscript at scale ($N apps) and start-up, vs supervisord"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Command: \`bench/viscript/scale.sh $N $ROUNDS\` ($(supervisord -v | head -1 | sed 's/^/supervisord /'))."
echo
echo "| | viscript | supervisord |"
echo "|---|---:|---:|"
echo "| start-up: exec until the control API answers (median of $ROUNDS; s) | $vu | $su |"
echo "| launch $N apps in one call until all registered (s) | $(printf %.2f "$V_REG") (call answered after $(printf %.2f "$V_CALL")) | $(printf %.2f "$S_START") (start all, RUNNING) |"
echo "| daemon RSS, idle / with $N apps (MiB) | $(( IDLE_KIB / 1024 )) / $(( FULL_KIB / 1024 )) | $(( S_IDLE_KIB / 1024 )) / $(( S_FULL_KIB / 1024 )) |"
echo "| daemon memory per managed app (KiB) | $per_app | $s_per_app |"
echo
echo "With $N apps running:"
echo
cat "$WORK/lat.md"
echo
echo "RESULT name=viscript-startup-vs-supervisord ours=$vu baseline=$su unit=s better=lower"
echo "RESULT name=viscript-launch-${N}-registered-vs-supervisord ours=$V_REG baseline=$S_START unit=s better=lower"
echo "RESULT name=viscript-memory-per-app-${N}-vs-supervisord ours=$per_app baseline=$s_per_app unit=KiB better=lower"
python3 - "$WORK/lat.json" "$N" <<'PY'
import json, sys
m = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
print(f"RESULT name=viscript-cli-status-{sys.argv[2]}-vs-supervisord ours={m['viscript-cli la'] * 1000:.1f} baseline={m['supervisorctl status'] * 1000:.1f} unit=ms better=lower")
PY

#!/usr/bin/env bash
# Mesh throughput with metering on vs off (issue 15 item 8), in one run: bench/mesh/meshbench.py over 3 hops
# (a->b->c->d, the built executables on loopback), first without a ledger, then with `manager --ledger` (terms,
# receipts every 4 MiB, spend authorizations, caps), alternating ROUNDS times; the median of each is reported.
# Usage: bench/metering-bench.sh [MIB [ROUNDS [MANAGER-ARG...]]]   (default 200 MiB, 2 rounds; bench/run-all runs 5; e.g. --window=67108864
# to run the metered rounds with another window than the manager's default). Needs python3.
# Prints a RESULT line (bench/README.md): ours = metered, baseline = unmetered.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mb=${1:-200}
rounds=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
extra=()
for arg in "$@"; do extra+=("--manager-arg=$arg"); done
command -v python3 >/dev/null || { echo "metering-bench: needs python3 (apt-get install python3)" >&2; exit 1; }
off=() on=()
row() { grep -E '^\| skywire, 3 hops' | head -1 | awk -F'|' '{gsub(/ /,"",$3); sub(/±.*/,"",$3); print $3}'; }
for ((i = 1; i <= rounds; i++)); do
  out=$(python3 "$root/bench/mesh/meshbench.py" --paths 3hop --mb "$mb" --pings 200 --warmup-mb 20)
  echo "$out" | grep -E '^\| skywire' || true
  off+=("$(echo "$out" | row)")
  out=$(python3 "$root/bench/mesh/meshbench.py" --paths 3hop --mb "$mb" --pings 200 --warmup-mb 20 --metering "${extra[@]}")
  echo "$out" | grep -E '^\| skywire' || true
  on+=("$(echo "$out" | row)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
m_off=$(median "${off[@]}")
m_on=$(median "${on[@]}")
echo
echo "3 hops, $mb MiB, $rounds round(s): unmetered ${off[*]} MB/s (median $m_off), metered ${on[*]} MB/s (median $m_on)"
echo "RESULT name=mesh-3hop-throughput-metered-vs-unmetered ours=$m_on baseline=$m_off unit=MB/s better=higher"

#!/usr/bin/env bash
# The manager's state on etcd vs the embedded store (issue 17), one run on this machine: registrations per second and
# route set-ups per second with 1 and 2 managers, the time from a manager's death to its nodes being served by the
# other, and route computation on a BIG-node registry loaded from etcd. Starts its own 1-member etcd on free loopback
# ports (Debian's etcd-server) and stops it by pid. Needs: dotnet, etcd.
# Usage: bench/store-bench.sh [NODES] [ROUTES] [BIG]   (defaults 500, 300, 100000). Prints a table and RESULT lines.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || { echo "missing etcd (apt-get install etcd-server)" >&2; exit 1; }
dotnet build "$ROOT/bench/Skywire.Benchmarks" -c Release -v q -nologo >/dev/null
exec dotnet "$ROOT/bench/Skywire.Benchmarks/bin/Release/net10.0/Skywire.Benchmarks.dll" store "${1:-500}" "${2:-300}" "${3:-100000}"

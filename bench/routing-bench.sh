#!/usr/bin/env bash
# Routing at scale (issue 19.5): shortest path + two link-disjoint alternates on a random 100 000-node, ~300 000-link
# graph, incremental link updates, re-routing 10 000 routes after a link dies; CPU time against the issue's goals
# (100 ms, 2 s). Usage: bench/routing-bench.sh [NODES=100000] [ROUTES=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build bench/Skywire.Benchmarks -c Release -v quiet -nologo >/dev/null
exec dotnet bench/Skywire.Benchmarks/bin/Release/net10.0/Skywire.Benchmarks.dll routing-quick "${1:-100000}" "${2:-10000}"

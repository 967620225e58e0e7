#!/usr/bin/env bash
# Parallel streams through the mesh (issue 19.2: "8 parallel streams scale"): bench/mesh/meshbench.py with N streams
# at once (MiB in all per run), interleaved rounds over direct loopback TCP, ssh -D, 1 hop and 3 hops.
# Usage: bench/mesh-streams.sh [STREAMS=8] [MB=256] [ROUNDS=3]   (after dotnet build -c Release)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/mesh/meshbench.py --streams "${1:-8}" --mb "${2:-256}" --repeat "${3:-3}" --pings 0 --warmup-mb 16

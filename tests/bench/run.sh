#!/bin/bash
# Runs tether's benchmarks and prints each figure as a ratio against a baseline measured in
# the same run.  Usage: tests/bench/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
[ -x "$build/tether" ] && [ -x "$build/tests/bench/spawnbench" ] || {
    cmake -S . -B "$build" >/dev/null && cmake --build "$build" -j"$(nproc)" >/dev/null; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TETHER_CONFIG="$tmp/tether.json"
echo '{}' >"$TETHER_CONFIG"
runs=${BENCH_RUNS:-300}

echo "== launch overhead (target: ratio <= 1.3)"
# The audit trail on tmpfs: what is measured is tether, not the disk's fsync.
"$build/tests/bench/spawnbench" "$runs" \
    "tether run" "$build/tether" run --policy policies/allow-all.lua --audit /dev/shm/tether-bench.$$ -- /bin/true :: \
    "env" /usr/bin/env /bin/true
"$build/tests/bench/spawnbench" "$runs" \
    "tether run, audit on $(df --output=fstype "$tmp" | tail -1)" "$build/tether" run --policy policies/allow-all.lua --audit "$tmp/audit.jsonl" -- /bin/true :: \
    "env" /usr/bin/env /bin/true
rm -f /dev/shm/tether-bench.$$

echo "== Lua decisions per second (target: >= 100000/s)"
"$build/tether" measure --compact -- /bin/true >"$tmp/input.json"
"$build/tests/bench/bench_lua" policies/default.lua "$tmp/input.json" 2

#!/bin/bash
# Quick start, part 1: install what is missing, build, and show tether's main job with the
# embedded Lua engine: an allowed launch, a denied launch, and the audit records they left.
set -euo pipefail
cd "$(dirname "$0")/.."

contrib/setup.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

demo=$(mktemp -d /tmp/tether-demo.XXXXXX)
audit="$demo/audit.jsonl"
export TETHER_CONFIG="$demo/tether.json"
cat >"$TETHER_CONFIG" <<JSON
{"labels": {"region": "eu-de", "cluster": "demo"}, "audit": {"path": "$audit"}}
JSON

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { say "$*"; set +e; "$@"; rc=$?; set -e; echo "(exit status $rc)"; }

echo "tether demo: node configuration $TETHER_CONFIG, audit trail $audit"
echo "The built-in default policy allows executables that root owns and only root can change."

run build/tether run -- uname -sr

cp /bin/echo "$demo/echo"
chmod 0777 "$demo/echo"
run build/tether run -- "$demo/echo" "this line is never printed"

echo
echo "Geofencing: policies/geofence.lua allows only approved executables in regions eu-de,"
echo "eu-fr and eu-nl.  Approve uname by its sha256, then launch it in two regions."
sha=$(sha256sum "$(command -v uname)" | cut -d' ' -f1)
sed "s|-- \[\"<64 hex digits>\"\] = \"description\",|[\"$sha\"] = \"uname\",|" \
    policies/geofence.lua >"$demo/geofence.lua"
run build/tether run --policy "$demo/geofence.lua" -- uname -m
sed -i 's/"eu-de"/"us-east"/' "$TETHER_CONFIG"
run build/tether run --policy "$demo/geofence.lua" -- uname -m

say "cat $audit"
cat "$audit"
run build/tether audit verify "$audit"
rm -rf "$demo"

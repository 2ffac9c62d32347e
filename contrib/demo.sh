#!/bin/bash
# Quick start, part 1: install what is missing, build, and show tether's main job with the
# embedded Lua engine: an allowed launch, a denied launch, geofencing, an encrypted OCI image
# that runs in eu-de and not in us-east and leaves nothing of itself on disk, and the audit
# records they left.
set -euo pipefail
cd "$(dirname "$0")/.."

contrib/setup.sh demo
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

echo
echo "An encrypted OCI image: a busybox tree with a secret file, encrypted by skopeo (ocicrypt,"
echo "JWE to an RSA key) and signed by a release key (cosign's format).  policies/image-eu.lua"
echo "releases its key (eu-app) only in eu-* regions and only for an image the release key signed."
sed -i 's/"us-east"/"eu-de"/' "$TETHER_CONFIG"
marker="TETHER-DEMO-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$demo/rootfs/bin" "$demo/rootfs/data" "$demo/keys"
cp /bin/busybox "$demo/rootfs/bin/busybox"
ln -s busybox "$demo/rootfs/bin/cat"
echo "$marker: the customer database" >"$demo/rootfs/data/secret.txt"
python3 contrib/oci-image.py layout "$demo/rootfs" "$demo/plain" app /bin/cat /data/secret.txt
chmod 0700 "$demo/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$demo/keys/eu-app.pem" 2>/dev/null
chmod 0600 "$demo/keys/eu-app.pem"
openssl pkey -in "$demo/keys/eu-app.pem" -pubout -out "$demo/eu-app.pub.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$demo/release.key" 2>/dev/null
openssl pkey -in "$demo/release.key" -pubout -out "$demo/release.pub"
run skopeo --insecure-policy copy -q --encryption-key "jwe:$demo/eu-app.pub.pem" \
    "oci:$demo/plain:app" "oci:$demo/image:app"
python3 contrib/oci-image.py sign "$demo/image" app "$demo/release.key" localhost/app
rm -rf "$demo/rootfs" "$demo/plain" # the plaintext is gone from the disk: only the encrypted image is left
sed "s|/etc/tether/signers/release.pub|$demo/release.pub|" policies/image-eu.lua >"$demo/image-eu.lua"
cat >"$TETHER_CONFIG" <<JSON
{"labels": {"region": "eu-de", "cluster": "demo"}, "audit": {"path": "$audit"},
 "keystore": "$demo/keys", "trusted_image_signers": ["$demo/release.pub"]}
JSON
stamp="$demo/stamp"
touch "$stamp"
sleep 0.1
run build/tether run --policy "$demo/image-eu.lua" --image "oci:$demo/image:app"
sed -i 's/"eu-de"/"us-east"/' "$TETHER_CONFIG"
run build/tether run --policy "$demo/image-eu.lua" --image "oci:$demo/image:app"

say "# every file changed on a disk file system since the image ran, searched for $marker"
out=$(readlink -f /proc/$$/fd/1 || true)
err=$(readlink -f /proc/$$/fd/2 || true)
hits=0 scanned=0
while read -r mnt; do
    while IFS= read -r -d '' f; do
        scanned=$((scanned + 1))
        [ "$f" = "$out" ] || [ "$f" = "$err" ] && continue # the demo's own output, if saved
        if grep -qF "$marker" "$f" 2>/dev/null; then
            echo "found in $f"
            hits=$((hits + 1))
        fi
    done < <(find "$mnt" -xdev -type f -newer "$stamp" -size -64M -print0 2>/dev/null)
done < <(findmnt -rn -o TARGET,FSTYPE | awk '$2 ~ /^(ext[234]|xfs|btrfs|f2fs|vfat|overlay)$/ {print $1}')
echo "$scanned files searched, $hits holding the image's plaintext"

say "cat $audit"
cat "$audit"
run build/tether audit verify "$audit"
rm -rf "$demo"

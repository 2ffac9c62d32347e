#!/bin/bash
# Installs the Debian packages tether needs: `setup.sh build` for building, `setup.sh test`
# for building and running every test, `setup.sh demo` for contrib/demo.sh (building, and what
# its encrypted image needs).  Only what is missing is installed.
set -euo pipefail

build_pkgs=(gcc make cmake pkg-config libssl-dev libcurl4-openssl-dev libcjson-dev libcap-dev
            libseccomp-dev liblua5.4-dev libarchive-dev libsystemd-dev nettle-dev)
test_pkgs=(python3 clang libclang-rt-14-dev clang-format lua5.4 util-linux openssl curl runc crun
           dbus-daemon python3-dbus python3-gi python3-jwt python3-cryptography skopeo podman prometheus
           dpkg-dev lintian systemd nodejs npm)

demo_pkgs=(skopeo busybox-static openssl python3 findutils)

case "${1:-build}" in
build) want=("${build_pkgs[@]}") ;;
demo) want=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
*) echo "usage: $0 build|test|demo" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    # Node.js may come from elsewhere (NodeSource's nodejs carries its own npm, which Debian's
    # npm package conflicts with): a working npm is enough.
    if [ "$p" = nodejs ] || [ "$p" = npm ]; then
        command -v npm >/dev/null 2>&1 && continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root, or install them" >&2
    exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

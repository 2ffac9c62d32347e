#!/bin/bash
# Verifies a tether identity token (ES256 JWT) with openssl alone, and prints its claims.
#
#   contrib/identity/verify-openssl.sh NODE-PUBLIC-KEY.pem TOKEN-FILE
#
# NODE-PUBLIC-KEY.pem is the public half of the node's identity key, as
# `openssl pkey -in <keystore>/<identity.key>.pem -pubout` prints it (the same key that
# `tether identity jwks` prints as a JWK).  Checks the signature only: the caller checks the
# claims (aud, exp, and the facts under "tether") against what it expects.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 PUBLIC-KEY.pem TOKEN-FILE" >&2; exit 2; }
pub=$1
IFS=. read -r header payload signature <"$2" || true # a token file need not end in a newline
[ -n "${signature:-}" ] || { echo "$0: not a JWT (header.payload.signature)" >&2; exit 1; }
b64url_decode() { # base64url without padding, as JWS writes it (RFC 7515)
    local s=${1//-/+}
    s=${s//_//}
    case $((${#s} % 4)) in 2) s="$s==" ;; 3) s="$s=" ;; esac
    printf '%s' "$s" | base64 -d
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
b64url_decode "$header" | grep -q '"alg":"ES256"' || { echo "$0: not ES256" >&2; exit 1; }
# JWS carries ECDSA's r and s as 32 bytes each; openssl wants them as a DER SEQUENCE.
hex=$(b64url_decode "$signature" | od -An -v -tx1 | tr -d ' \n')
[ ${#hex} -eq 128 ] || { echo "$0: an ES256 signature is 64 bytes" >&2; exit 1; }
printf 'asn1=SEQUENCE:sig\n[sig]\nr=INTEGER:0x%s\ns=INTEGER:0x%s\n' "${hex:0:64}" "${hex:64}" \
    >"$tmp/sig.conf"
openssl asn1parse -genconf "$tmp/sig.conf" -out "$tmp/sig.der" >/dev/null
printf '%s.%s' "$header" "$payload" >"$tmp/signed"
openssl dgst -sha256 -verify "$pub" -signature "$tmp/sig.der" "$tmp/signed" >&2
b64url_decode "$payload"
echo

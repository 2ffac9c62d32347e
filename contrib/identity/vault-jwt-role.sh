#!/bin/sh
# HashiCorp Vault's JWT auth method configured to accept tether identity tokens (configuration
# only: no Vault server runs in tether's tests).  A workload logs in with the token it reads
# from $TETHER_IDENTITY and gets a Vault token for the `db-read` policy, only when the token
# was signed by a node key, names Vault as its audience, and says the workload runs in eu-de
# as the approved image.
#
#   vault write auth/jwt/login role=eu-app jwt=@"$TETHER_IDENTITY"
set -eu
vault auth enable jwt
# The nodes' public keys (openssl pkey -in <keystore>/<identity.key>.pem -pubout), one PEM
# each, comma-separated; or jwks_url pointing at a service that serves `tether identity jwks`.
vault write auth/jwt/config jwt_validation_pubkeys=@/etc/vault/tether-nodes.pem
# Claims are matched by JSON pointer: /tether/region is the token's "tether": {"region"}.
vault write auth/jwt/role/eu-app - <<'JSON'
{
  "role_type": "jwt",
  "bound_audiences": ["vault"],
  "user_claim": "sub",
  "bound_claims": {
    "/tether/region": "eu-de",
    "/tether/image_digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000"
  },
  "claim_mappings": {"/tether/machine_id": "machine_id", "jti": "token_id"},
  "token_policies": ["db-read"],
  "token_ttl": "5m",
  "token_max_ttl": "15m"
}
JSON

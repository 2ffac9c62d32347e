# An OPA policy for a secrets service: it releases the database password only to a workload
# whose tether identity token verifies against the node keys, names this service as its
# audience, has not expired, and says the workload runs in region eu-de as one image digest.
#
# Query: POST /v1/data/tether/release with {"input": {"token": "<the JWT>"}}.
# Data:  data.tether.jwks, the JSON text `tether identity jwks` prints for each node (a JWK
#        Set; concatenate the nodes' "keys" arrays), and data.secrets.db, the secret.
#
# Written so that no undefined value can reach an allow: every read has a default.
package tether.release

import rego.v1

# The image this secret belongs to, and where it may be used.
approved_digest := "sha256:0000000000000000000000000000000000000000000000000000000000000000"

approved_region := "eu-de"

default jwks := ""

jwks := data.tether.jwks if is_string(data.tether.jwks)

default token := ""

token := t if {
	t := object.get(input, "token", "")
	is_string(t)
}

# [valid, header, payload]: decode_verify checks the signature, exp, nbf and aud.
default verified := [false, {}, {}]

verified := io.jwt.decode_verify(token, {"cert": jwks, "aud": "vault"}) if {
	jwks != ""
	token != ""
}

default facts := {}

facts := object.get(verified[2], "tether", {})

default allow := false

allow if {
	verified[0] == true
	object.get(facts, "region", null) == approved_region
	object.get(facts, "image_digest", null) == approved_digest
}

default result := {"allow": false}

default secret := null

secret := data.secrets.db if is_string(data.secrets.db)

result := {"allow": true, "secret": secret} if allow

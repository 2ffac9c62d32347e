# Who may query OPA (with --authorization=basic).  tether authenticates with a bearer token
# (--authentication=token): the token's sha256 is listed here, never the token itself.
# Make one with:  umask 077; openssl rand -base64 32 > token
#                 printf %s "$(cat token)" | sha256sum | cut -d' ' -f1
# (tether sends the token without its trailing newline, so hash it without one)
package system.authz

import rego.v1

default allow := false

# sha256 of each accepted token (of the token text, without a trailing newline).
token_sha256 := {
	# "<64 hex digits>",
}

allow if {
	input.path == ["health"]
}

allow if {
	input.method == "POST"
	input.path[0] == "v1"
	input.path[1] == "data"
	input.path[2] == "tether"
	crypto.sha256(input.identity) in token_sha256
}

# Twin of image-eu.lua: release an image's key only on nodes whose region label starts with
# "eu-", and only for an image that carries a signature verified by one of the named signers
# and made over this image's manifest digest, with the key image_key.  A workload that is not
# an image is refused.
#
# It decides exactly as image-eu.lua on every input.  Every value is read with field(), which
# gives null for a member that is missing, null, or whose parent is not an object (what Lua
# sees as nil), and has a default, so that an undefined value never allows.
package tether

import rego.v1

# The key released to an image allowed here (image_key in image-eu.lua).
image_key := "eu-app"

# The key files (entries of trusted_image_signers) whose signatures this policy accepts.
named_signers := {"/etc/tether/signers/release.pub"}

# Member k of x when x is an object, else null.
field(x, k) := v if {
	is_object(x)
	v := object.get(x, k, null)
} else := null

default region := null

region := field(field(field(input, "host"), "labels"), "region")

default image := null

image := field(input, "image")

# A table to Lua: an object or an array (Lua cannot tell an empty one of either apart).
default image_table := false

image_table if is_object(image)

image_table if is_array(image)

default sigs := null

sigs := field(image, "signatures")

default region_eu := false

region_eu if {
	is_string(region)
	startswith(region, "eu-")
}

# One signature counts: verified, over this image's digest, by a named signer.  Arrays and
# objects are both iterated, as Lua's pairs() does.
default signed := false

signed if {
	is_array(sigs)
	some s in sigs
	counts(s)
}

signed if {
	is_object(sigs)
	some s in sigs
	counts(s)
}

counts(s) if {
	field(s, "verified") == true
	field(s, "digest_matches") == true
	signer := field(s, "signer")
	is_string(signer)
	signer in named_signers
}

reasons contains "this node has no region label" if region == null

reasons contains "this node's region label is not a string" if {
	region != null
	not is_string(region)
}

reasons contains sprintf("region %s is not in the EU", [region]) if {
	is_string(region)
	not region_eu
}

reasons contains "the workload is not an image" if not image_table

reasons contains "the image has no verified signature by a named signer" if {
	image_table
	not signed
}

default allow := false

allow if {
	region_eu
	signed
	image_table
	count(reasons) == 0
}

default decision := {"allow": false, "reasons": ["the image-eu policy could not decide on this input"]}

decision := {"allow": false, "reasons": reasons} if {
	not allow
} else := {
	"allow": true,
	"reasons": [sprintf("signed image released in region %s", [region])],
	"key": {"id": image_key},
}

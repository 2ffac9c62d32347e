# Twin of geofence.lua: allow a workload only on nodes in an allowed region, and only when
# its executable is one of a known set (by sha256).  The region comes from the node
# configuration's labels.  Edit the two values below (or move them into OPA data).
#
# It decides exactly as geofence.lua on every input.  Every value is read with field(),
# which gives null for a member that is missing, null, or whose parent is not an object
# (what Lua sees as nil), and has a default; every value's type is checked before it is
# used.  allow holds only when each check has passed by itself and no reason was found.
package tether

import rego.v1

allowed_regions := {"eu-de", "eu-fr", "eu-nl"}

# sha256 of each approved executable, e.g. from `sha256sum /usr/bin/true`.
allowed_sha256 := {
	# "<64 hex digits>": "description",
}

# Member k of x when x is an object, else null.
field(x, k) := v if {
	is_object(x)
	v := object.get(x, k, null)
} else := null

default region := null

region := field(field(field(input, "host"), "labels"), "region")

default exe := null

exe := field(field(input, "workload"), "exe")

default sha := null

sha := field(exe, "sha256")

default path := null

path := field(exe, "path")

# How the reasons name the executable.
default name := "the executable"

name := path if is_string(path)

default region_allowed := false

region_allowed if {
	is_string(region)
	region in allowed_regions
}

# A member whose value is null is no member, as in Lua.  object.get, not
# allowed_sha256[sha]: the type checker may refuse to index an empty object literal.
default sha_allowed := false

sha_allowed if {
	is_string(sha)
	object.get(allowed_sha256, sha, null) != null
}

reasons contains "this node has no region label" if region == null

reasons contains "this node's region label is not a string" if {
	region != null
	not is_string(region) # region is never undefined: it has a default
}

reasons contains sprintf("region %s is not an allowed region", [region]) if {
	is_string(region)
	not region_allowed
}

reasons contains "the executable's sha256 could not be measured" if {
	not is_string(sha) # sha is never undefined: it has a default
}

reasons contains sprintf("%s (sha256 %s) is not on the allowlist", [name, sha]) if {
	is_string(sha)
	not sha_allowed
}

default allow := false

allow if {
	region_allowed
	sha_allowed
	count(reasons) == 0
}

default decision := {"allow": false, "reasons": ["the geofence policy could not decide on this input"]}

decision := {"allow": false, "reasons": reasons} if {
	not allow
} else := {
	"allow": true,
	"reasons": [sprintf("%s approved in region %s", [name, region])],
}

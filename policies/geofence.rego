# Twin of geofence.lua: allow a workload only on nodes in an allowed region, and only when
# its executable is one of a known set (by sha256).  The region comes from the node
# configuration's labels.  Edit the two values below (or move them into OPA data).
package tether

import rego.v1

allowed_regions := {"eu-de", "eu-fr", "eu-nl"}

# sha256 of each approved executable, e.g. from `sha256sum /usr/bin/true`.
allowed_sha256 := {
	# "<64 hex digits>": "description",
}

region := input.host.labels.region

sha := input.workload.exe.sha256

deny_reasons contains "this node has no region label" if not region

deny_reasons contains sprintf("region %s is not an allowed region", [region]) if {
	region
	not allowed_regions[region]
}

deny_reasons contains "the executable's sha256 could not be measured" if not is_string(sha)

deny_reasons contains sprintf("%s (sha256 %s) is not on the allowlist", [input.workload.exe.path, sha]) if {
	is_string(sha)
	not allowed_sha256[sha]
}

decision := {"allow": false, "reasons": deny_reasons} if {
	count(deny_reasons) > 0
} else := {
	"allow": true,
	"reasons": [sprintf("%s approved in region %s", [input.workload.exe.path, region])],
}

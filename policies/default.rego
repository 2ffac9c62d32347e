# Twin of default.lua (same meaning, for OPA): allow an executable only when root owns it and
# nobody else can change it, and confine what is allowed: the default seccomp filter,
# no_new_privs, and no capabilities for a workload that is not root.
#
# Query: POST /v1/data/tether/decision {"input": <tether's input document>}
package tether

import rego.v1

exe := input.workload.exe

hook if input.tether.phase == "hook"

deny_reasons contains "the default policy does not judge containers: configure a container policy (policies/README.md)" if hook

measured if {
	is_object(exe)
	not hook
}

deny_reasons contains "the executable could not be measured" if not measured

deny_reasons contains sprintf("%s is owned by uid %d, not root", [exe.path, exe.owner_uid]) if {
	measured
	exe.owner_uid != 0
}

deny_reasons contains sprintf("%s is group-writable (mode %04o)", [exe.path, exe.mode]) if {
	measured
	bits.and(exe.mode, 16) != 0 # 0020
}

deny_reasons contains sprintf("%s is world-writable (mode %04o)", [exe.path, exe.mode]) if {
	measured
	bits.and(exe.mode, 2) != 0 # 0002
}

confine := {"seccomp": "default", "no_new_privs": true} if {
	input.workload.user.uid == 0
} else := {"seccomp": "default", "no_new_privs": true, "capabilities": []}

decision := {"allow": false, "reasons": deny_reasons} if {
	count(deny_reasons) > 0
} else := {
	"allow": true,
	"reasons": [sprintf("%s is owned by root and writable only by root", [exe.path])],
} if {
	is_object(input.container)
} else := {
	"allow": true,
	"reasons": [sprintf("%s is owned by root and writable only by root", [exe.path])],
	"confine": confine,
}

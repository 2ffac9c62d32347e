# Twin of default.lua (same meaning, for OPA): allow an executable only when root owns it and
# nobody else can change it (a script's interpreter too), deny a workload whose environment sets a loader variable such
# as LD_PRELOAD, and confine what is allowed: the default seccomp filter, no_new_privs, and
# no capabilities for a workload that is not root.
#
# Query: POST /v1/data/tether/decision {"input": <tether's input document>}
#
# It decides exactly as default.lua on every input.  Every value is read with field(),
# which gives null for a member that is missing, null, or whose parent is not an object
# (what Lua sees as nil), and has a default, so that no rule here is ever undefined; every
# value's type is checked before it is used.  allow holds only when each check has passed
# by itself and no reason was found: an undefined or ill-typed value can only deny.
package tether

import rego.v1

# Environment variables that load code into a dynamically linked program: every LD_*
# variable that glibc drops for setuid programs (its "unsecvars"), GCONV_PATH (iconv loads
# modules from it) and GETCONF_DIR (getconf executes programs from it).
loader_variables := {
	"GCONV_PATH",
	"GETCONF_DIR",
	"LD_AUDIT",
	"LD_DEBUG_OUTPUT",
	"LD_DYNAMIC_WEAK",
	"LD_HWCAP_MASK",
	"LD_LIBRARY_PATH",
	"LD_ORIGIN_PATH",
	"LD_PRELOAD",
	"LD_PROFILE",
	"LD_SHOW_AUXV",
	"LD_USE_LOAD_BIAS",
}

# Member k of x when x is an object, else null.
field(x, k) := v if {
	is_object(x)
	v := object.get(x, k, null)
} else := null

# x as an integer when it is a whole number from 0 to top (what Lua gets as an integer),
# else null.  The result is written as an integer (1000.0 becomes 1000), so that sprintf's
# %d prints it as Lua's string.format does; format_int gives the exact digits, where
# floor() may give 1e+06.
whole(x, top) := n if {
	is_number(x)
	x >= 0
	x <= top
	n := to_number(format_int(x, 10))
	n == x
} else := null

# A member of an env_names array is a name, or null (a hole, which Lua does not see).
name_or_hole(x) if is_string(x)

name_or_hole(x) if x == null

# An env_names value is a list of names, as Lua sees one: null (absent), an empty object
# (Lua cannot tell {} from []) or an array of names and nulls.
names_ok(v) if v == null

names_ok(v) if {
	is_object(v)
	count(v) == 0
}

names_ok(v) if {
	is_array(v)
	every x in v {
		name_or_hole(x)
	}
}

# The loader variables that an env_names value names.
loaders_in(v) := {x | some x in v; is_string(x); x in loader_variables} if {
	is_array(v)
} else := set()

default phase := null

phase := field(field(input, "tether"), "phase")

default workload := null

workload := field(input, "workload")

default exe := null

exe := field(workload, "exe")

default path := null

path := field(exe, "path")

default owner_uid := null

owner_uid := whole(field(exe, "owner_uid"), 4294967295)

default mode := null

mode := whole(field(exe, "mode"), 4095) # 07777

# A script runs as its interpreter, which must pass the same checks.
default interp := null

interp := field(exe, "interpreter")

default interp_path := null

interp_path := field(interp, "path")

default interp_owner := null

interp_owner := whole(field(interp, "owner_uid"), 4294967295)

default interp_mode := null

interp_mode := whole(field(interp, "mode"), 4095)

default user_uid := null

user_uid := whole(field(field(workload, "user"), "uid"), 4294967295)

default env_names := null

env_names := field(workload, "env_names")

default container := null

container := field(input, "container")

default container_env_names := null

container_env_names := field(field(container, "process"), "env_names")

# Whether a list of names is known to be whole: env_truncated must be false itself.
default env_whole := false

env_whole if field(workload, "env_truncated") == false

default container_env_whole := false

container_env_whole if field(field(container, "process"), "env_truncated") == false

default hook := false

hook if phase == "hook"

default measured := false

measured if is_string(path)

reasons contains "the default policy does not judge containers: configure a container policy (policies/README.md)" if hook

reasons contains "the executable could not be measured" if {
	not hook
	not measured
}

reasons contains sprintf("the owner of %s could not be measured", [path]) if {
	not hook
	measured
	owner_uid == null
}

reasons contains sprintf("%s is owned by uid %d, not root", [path, owner_uid]) if {
	not hook
	measured
	is_number(owner_uid)
	owner_uid != 0
}

reasons contains sprintf("the mode of %s could not be measured", [path]) if {
	not hook
	measured
	mode == null
}

reasons contains sprintf("%s is group-writable (mode %04o)", [path, mode]) if {
	not hook
	measured
	is_number(mode)
	bits.and(mode, 16) != 0 # 0020
}

reasons contains sprintf("%s is world-writable (mode %04o)", [path, mode]) if {
	not hook
	measured
	is_number(mode)
	bits.and(mode, 2) != 0 # 0002
}

reasons contains sprintf("the interpreter of %s could not be measured", [path]) if {
	not hook
	measured
	interp != null
	not is_string(interp_path)
}

reasons contains sprintf("the owner of the interpreter %s could not be measured", [interp_path]) if {
	not hook
	measured
	is_string(interp_path)
	interp_owner == null
}

reasons contains sprintf("the interpreter %s is owned by uid %d, not root", [interp_path, interp_owner]) if {
	not hook
	measured
	is_string(interp_path)
	is_number(interp_owner)
	interp_owner != 0
}

reasons contains sprintf("the mode of the interpreter %s could not be measured", [interp_path]) if {
	not hook
	measured
	is_string(interp_path)
	interp_mode == null
}

reasons contains sprintf("the interpreter %s is group-writable (mode %04o)", [interp_path, interp_mode]) if {
	not hook
	measured
	is_string(interp_path)
	is_number(interp_mode)
	bits.and(interp_mode, 16) != 0 # 0020
}

reasons contains sprintf("the interpreter %s is world-writable (mode %04o)", [interp_path, interp_mode]) if {
	not hook
	measured
	is_string(interp_path)
	is_number(interp_mode)
	bits.and(interp_mode, 2) != 0 # 0002
}

# No interpreter, or one that passes every check.
default interp_ok := false

interp_ok if interp == null

interp_ok if {
	is_string(interp_path)
	interp_owner == 0
	is_number(interp_mode)
	bits.and(interp_mode, 18) == 0 # 0022
}

reasons contains "workload.env_names is not a list of names" if {
	not hook
	not names_ok(env_names)
}

reasons contains sprintf("the environment sets %s, a loader variable the default policy refuses", [name]) if {
	not hook
	names_ok(env_names)
	some name in loaders_in(env_names)
}

reasons contains "workload.env_names is not known to be whole (env_truncated is not false): a loader variable may be among the names left out" if {
	not hook
	env_names != null
	not env_whole
}

reasons contains "container.process.env_names is not known to be whole (env_truncated is not false): a loader variable may be among the names left out" if {
	not hook
	container_env_names != null
	not container_env_whole
}

reasons contains "container.process.env_names is not a list of names" if {
	not hook
	not names_ok(container_env_names)
}

reasons contains sprintf("the container's environment sets %s, a loader variable the default policy refuses", [name]) if {
	not hook
	names_ok(container_env_names)
	some name in loaders_in(container_env_names)
}

# Each check passed, by itself, and no reason was found.
default allow := false

allow if {
	not hook
	measured
	owner_uid == 0
	is_number(mode)
	bits.and(mode, 18) == 0 # 0022
	interp_ok
	names_ok(env_names)
	count(loaders_in(env_names)) == 0
	names_ok(container_env_names)
	count(loaders_in(container_env_names)) == 0
	count(reasons) == 0
}

confine := {"seccomp": "default", "no_new_privs": true} if {
	user_uid == 0
} else := {"seccomp": "default", "no_new_privs": true, "capabilities": []}

default decision := {"allow": false, "reasons": ["the default policy could not decide on this input"]}

decision := {"allow": false, "reasons": reasons} if {
	not allow
} else := {
	"allow": true,
	"reasons": [sprintf("%s is owned by root and writable only by root", [path])],
} if {
	# A container runtime (tether run --bundle) confines the container itself.
	container != null
} else := {
	"allow": true,
	"reasons": [sprintf("%s is owned by root and writable only by root", [path])],
	"confine": confine,
}

# Twin of allow-all.lua: allow every workload.  For trying tether out; never for production.
# The decision is a constant, so it is defined for every input, as the Lua one is.
package tether

import rego.v1

decision := {"allow": true, "reasons": ["allow-all policy"]}

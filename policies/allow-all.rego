# Twin of allow-all.lua: allow every workload.  For trying tether out; never for production.
package tether

import rego.v1

decision := {"allow": true, "reasons": ["allow-all policy"]}

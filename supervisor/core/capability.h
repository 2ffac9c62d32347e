/* Capability names, as capabilities(7) spells them without "CAP_" and as libcap's
 * cap_to_name() prints them: "net_bind_service".  A table of tether's own, so that a start
 * maps no libcap for 41 strings (bubblewrap keeps its own too); tests/unit/test_capability.c
 * holds it to libcap's. */
#pragma once

/* The name of capability cap, or NULL for one this build does not know. */
const char *capability_name(int cap);

/* The capability that name names (lower case, no "cap_"), or -1. */
int capability_from_name(const char *name);

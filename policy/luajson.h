/* Conversion between JSON documents and plain Lua values: tables, strings, numbers and
 * booleans only, never userdata; JSON null is nil, so it reads as an absent field. */
#pragma once

#include <cjson/cJSON.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#define LUAJSON_MAX_DEPTH 64

/* Pushes j as fresh tables.  It may raise a Lua error (memory, depth): call it in
 * protected mode. */
void luajson_push(lua_State *L, const cJSON *j);

/* Converts the value at idx; on failure returns NULL and *why names the path at fault
 * (free it).  Raises no Lua error.  Arrays are tables with exactly the keys 1..n; other
 * tables need string keys; an empty table becomes {}. */
cJSON *luajson_to_json(lua_State *L, int idx, char **why);

/* The same within a budget: the document may cost at most max_bytes (every value counts
 * NODE_BYTES plus its text, each time it is referenced), and the conversion gives up after
 * deadline_ns (CLOCK_MONOTONIC; 0: no deadline). */
cJSON *luajson_to_json_within(lua_State *L, int idx, size_t max_bytes, uint64_t deadline_ns,
                              char **why);

/* Conversion between JSON documents and plain Lua values: tables, strings, numbers and
 * booleans only, never userdata; JSON null is nil, so it reads as an absent field. */
#pragma once

#include <cjson/cJSON.h>
#include <lua.h>

#define LUAJSON_MAX_DEPTH 64

/* Pushes j as fresh tables.  It may raise a Lua error (memory, depth): call it in
 * protected mode. */
void luajson_push(lua_State *L, const cJSON *j);

/* Converts the value at idx; on failure returns NULL and *why names the path at fault
 * (free it).  Raises no Lua error.  Arrays are tables with exactly the keys 1..n; other
 * tables need string keys; an empty table becomes {}. */
cJSON *luajson_to_json(lua_State *L, int idx, char **why);

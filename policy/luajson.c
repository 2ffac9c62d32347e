/* JSON <-> Lua values (see luajson.h). */
#define _GNU_SOURCE
#include "luajson.h"

#include <lauxlib.h>
#include <math.h>
#include <string.h>

#include "../supervisor/core/util.h"

void luajson_push(lua_State *L, const cJSON *j)
{
    luaL_checkstack(L, 4, "input too deeply nested");
    if (cJSON_IsObject(j)) {
        lua_createtable(L, 0, cJSON_GetArraySize(j));
        const cJSON *c;
        cJSON_ArrayForEach (c, j) {
            if (cJSON_IsNull(c))
                continue;
            luajson_push(L, c);
            lua_setfield(L, -2, c->string);
        }
    } else if (cJSON_IsArray(j)) {
        lua_createtable(L, cJSON_GetArraySize(j), 0);
        lua_Integer i = 1;
        const cJSON *c;
        cJSON_ArrayForEach (c, j) {
            luajson_push(L, c);
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        /* Integral values become Lua integers so that policies can use them with bit
         * operators (mode & 0x12) and as table keys. */
        if (d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else {
        lua_pushnil(L);
    }
}

struct conv {
    lua_State *L;
    char path[256];
    char *why;
    size_t bytes, max_bytes; /* what the document costs so far, and its cap */
    uint64_t deadline_ns;    /* 0: none */
    unsigned nodes;
};

/* Every value costs its node and its text.  A string the result names many times is paid for
 * every time: that is what the JSON document, and everything after it, pays. */
#define NODE_BYTES 64

static bool charge(struct conv *c, size_t len)
{
    c->bytes += NODE_BYTES + len;
    if (c->bytes > c->max_bytes)
        return false;
    if (c->deadline_ns != 0 && (++c->nodes & 1023) == 0 && time_mono_ns() > c->deadline_ns)
        return false;
    return true;
}

static cJSON *fail(struct conv *c, const char *what)
{
    if (c->why == NULL)
        c->why = xasprintf("`%s`: %s", c->path[0] ? c->path : "(result)", what);
    return NULL;
}

/* Appends a path element; returns the old length to restore. */
static size_t path_push_key(struct conv *c, const char *key)
{
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, "%s%s", n ? "." : "", key);
    return n;
}

static size_t path_push_index(struct conv *c, lua_Integer i)
{
    size_t n = strlen(c->path);
    snprintf(c->path + n, sizeof c->path - n, "[%lld]", (long long)i - 1);
    return n;
}

static cJSON *convert(struct conv *c, int idx, int depth);

/* The table at idx is an array when its keys are exactly 1..n, n > 0. */
static int table_kind(lua_State *L, int idx, size_t *count)
{
    size_t n = 0;
    bool all_int = true, all_str = true;
    lua_Integer lo = LUA_MAXINTEGER, hi = LUA_MININTEGER;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        n++;
        if (lua_type(L, -2) == LUA_TSTRING) {
            all_int = false;
        } else if (lua_isinteger(L, -2)) {
            all_str = false;
            lua_Integer k = lua_tointeger(L, -2);
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        } else {
            all_int = all_str = false;
        }
        lua_pop(L, 1);
    }
    *count = n;
    if (n == 0)
        return 'o';
    /* n distinct integer keys, all within 1..n, are exactly 1..n. */
    if (all_int && lo == 1 && hi == (lua_Integer)n)
        return 'a';
    return all_str ? 'o' : 0;
}

static cJSON *convert_table(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    if (depth >= LUAJSON_MAX_DEPTH)
        return fail(c, "nested too deeply (or a table that contains itself)");
    if (!lua_checkstack(L, 4))
        return fail(c, "out of Lua stack");

    size_t n;
    int kind = table_kind(L, idx, &n);
    if (kind == 0)
        return fail(c, "a table with keys that are neither all strings nor 1..n");

    if (kind == 'a') {
        cJSON *arr = cJSON_CreateArray();
        for (lua_Integer i = 1; i <= (lua_Integer)n; i++) {
            lua_rawgeti(L, idx, i);
            size_t old = path_push_index(c, i);
            cJSON *v = convert(c, lua_gettop(L), depth + 1);
            c->path[old] = '\0';
            lua_pop(L, 1);
            if (v == NULL) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON_AddItemToArray(arr, v);
        }
        return arr;
    }

    cJSON *obj = cJSON_CreateObject();
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen);
        size_t old = path_push_key(c, key);
        cJSON *v = strlen(key) != klen ? fail(c, "a key with a NUL byte")
                                       : convert(c, lua_gettop(L), depth + 1);
        c->path[old] = '\0';
        lua_pop(L, 1);
        if (v == NULL) {
            lua_pop(L, 1);
            cJSON_Delete(obj);
            return NULL;
        }
        cJSON_AddItemToObject(obj, key, v);
    }
    json_sort_keys(obj); /* Lua's table order is not an order: make the output stable */
    return obj;
}

static cJSON *convert(struct conv *c, int idx, int depth)
{
    lua_State *L = c->L;
    size_t len = 0;
    if (lua_type(L, idx) == LUA_TSTRING)
        lua_tolstring(L, idx, &len);
    if (!charge(c, len))
        return fail(c, c->bytes > c->max_bytes ? "the result exceeds the memory budget"
                                               : "the result exceeds the time budget");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return cJSON_CreateNull();
    case LUA_TBOOLEAN:
        return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return cJSON_CreateNumber((double)lua_tointeger(L, idx));
        if (!isfinite(lua_tonumber(L, idx)))
            return fail(c, "a number that is not finite");
        return cJSON_CreateNumber(lua_tonumber(L, idx));
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len)
            return fail(c, "a string with a NUL byte");
        return cJSON_CreateString(s);
    }
    case LUA_TTABLE:
        return convert_table(c, idx, depth);
    default: {
        char what[64];
        snprintf(what, sizeof what, "a %s value has no JSON form", luaL_typename(L, idx));
        return fail(c, what);
    }
    }
}

cJSON *luajson_to_json(lua_State *L, int idx, char **why)
{
    return luajson_to_json_within(L, idx, SIZE_MAX, 0, why);
}

cJSON *luajson_to_json_within(lua_State *L, int idx, size_t max_bytes, uint64_t deadline_ns,
                              char **why)
{
    struct conv c = {.L = L, .max_bytes = max_bytes, .deadline_ns = deadline_ns};
    cJSON *j = convert(&c, lua_absindex(L, idx), 0);
    if (j == NULL)
        *why = c.why;
    return j;
}

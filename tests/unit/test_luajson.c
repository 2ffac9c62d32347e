/* Unit tests for JSON <-> Lua conversion (policy/luajson.c): what a policy sees of its input,
 * and which results convert back to JSON, with errors that name the path at fault. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <string.h>

#include "../../policy/luajson.h"
#include "test.h"

#define TOSTR_(x) #x
#define TOSTR(x) TOSTR_(x)
#define LONG_KEY "a_rather_long_key_name_of_forty_characters"

/* head followed by n copies of elem. */
static char *repeat(const char *head, const char *elem, int n)
{
    size_t len = strlen(head) + (size_t)n * strlen(elem);
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    strcpy(s, head);
    for (int i = 0; i < n; i++)
        strcat(s, elem);
    return s;
}

static int push_cfn(lua_State *L)
{
    luajson_push(L, lua_touserdata(L, 1));
    return 1;
}

/* Pushes j in protected mode and stores it in the global name. */
static bool push_global(lua_State *L, const char *name, const cJSON *j)
{
    lua_pushcfunction(L, push_cfn);
    lua_pushlightuserdata(L, (void *)j);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        printf("# luajson_push raised: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    lua_setglobal(L, name);
    return true;
}

/* Runs a Lua chunk that returns a boolean: whether it returned true. */
static bool lua_true(lua_State *L, const char *code)
{
    int top = lua_gettop(L);
    bool ok = false;
    if (luaL_dostring(L, code) != LUA_OK)
        printf("# lua error: %s\n", lua_tostring(L, -1));
    else
        ok = lua_gettop(L) == top + 1 && lua_isboolean(L, -1) && lua_toboolean(L, -1);
    lua_settop(L, top);
    return ok;
}

#define LUA_CHECK(L, code) CHECK(lua_true(L, code), "lua: %s", code)

/* The value a Lua chunk returns, converted; *why as luajson_to_json leaves it. */
static cJSON *from_lua(lua_State *L, const char *code, char **why)
{
    *why = NULL;
    int top = lua_gettop(L);
    if (luaL_dostring(L, code) != LUA_OK) {
        printf("# lua error: %s\n", lua_tostring(L, -1));
        lua_settop(L, top);
        return NULL;
    }
    int before = lua_gettop(L);
    cJSON *j = luajson_to_json(L, -1, why);
    CHECK(lua_gettop(L) == before, "the stack is as it was after converting `%s`", code);
    lua_settop(L, top);
    return j;
}

/* code returns a value that converts to the JSON text want. */
static void converts(lua_State *L, const char *code, const char *want)
{
    char *why = NULL;
    cJSON *j = from_lua(L, code, &why);
    cJSON *w = cJSON_Parse(want);
    CHECK(j != NULL && w != NULL && cJSON_Compare(j, w, true), "`%s` converts to %s (%s)", code,
          want, why ? why : "no error");
    if (j != NULL && !cJSON_Compare(j, w, true)) {
        char *got = cJSON_PrintUnformatted(j);
        printf("#   got: %s\n", got);
        free(got);
    }
    cJSON_Delete(w);
    cJSON_Delete(j);
    free(why);
}

/* code returns a value that does not convert; the message names path and says what. */
static void fails(lua_State *L, const char *code, const char *path, const char *what)
{
    char *why = NULL;
    cJSON *j = from_lua(L, code, &why);
    char *want_path = NULL;
    if (asprintf(&want_path, "`%s`:", path) < 0)
        want_path = NULL;
    CHECK(j == NULL, "`%s` does not convert", code);
    CHECK(why != NULL && want_path != NULL && strncmp(why, want_path, strlen(want_path)) == 0 &&
              strstr(why, what) != NULL,
          "`%s`: message names %s and says `%s` (got: %s)", code, want_path, what,
          why ? why : "(none)");
    if (j != NULL) {
        char *got = cJSON_PrintUnformatted(j);
        printf("#   converted to: %s\n", got);
        free(got);
    }
    free(want_path);
    free(why);
    cJSON_Delete(j);
}

static lua_State *fresh_state(void)
{
    lua_State *L = luaL_newstate();
    if (L != NULL)
        luaL_openlibs(L);
    return L;
}

static void test_push(void)
{
    lua_State *L = fresh_state();
    cJSON *doc = cJSON_Parse("{\"obj\": {\"a\": 1, \"b\": \"x\", \"c\": {\"d\": true}},"
                             " \"arr\": [10, 20, 30],"
                             " \"int\": 42, \"neg\": -7, \"zero\": 0, \"three\": 3.0,"
                             " \"exp\": 1e3, \"big\": 9007199254740992,"
                             " \"float\": 1.5, \"negf\": -0.25, \"huge\": 1e300,"
                             " \"nul\": null, \"t\": true, \"f\": false,"
                             " \"s\": \"h\\u00e9 \\\"q\\\"\", \"es\": \"\","
                             " \"empty_obj\": {}, \"empty_arr\": [],"
                             " \"holes\": [1, null, 3],"
                             " \"nested\": [[1, 2], [{\"k\": null, \"y\": \"z\"}]]}");
    CHECK(doc != NULL, "push: the document parses");
    CHECK(push_global(L, "doc", doc), "push: luajson_push in protected mode");

    LUA_CHECK(L, "return type(doc) == 'table' and type(doc.obj) == 'table'");
    LUA_CHECK(L, "return doc.obj.a == 1 and doc.obj.b == 'x' and doc.obj.c.d == true");
    LUA_CHECK(L, "local n = 0; for _ in pairs(doc.obj) do n = n + 1 end; return n == 3");
    LUA_CHECK(L, "return type(doc.arr) == 'table' and #doc.arr == 3");
    LUA_CHECK(L, "return doc.arr[1] == 10 and doc.arr[2] == 20 and doc.arr[3] == 30");
    LUA_CHECK(L, "return doc.arr[0] == nil and doc.arr[4] == nil");
    LUA_CHECK(L, "return math.type(doc.int) == 'integer' and doc.int == 42");
    LUA_CHECK(L, "return math.type(doc.neg) == 'integer' and doc.neg == -7");
    LUA_CHECK(L, "return math.type(doc.zero) == 'integer' and doc.zero == 0");
    LUA_CHECK(L, "return math.type(doc.three) == 'integer' and doc.three == 3");
    LUA_CHECK(L, "return math.type(doc.exp) == 'integer' and doc.exp == 1000");
    LUA_CHECK(L, "return math.type(doc.big) == 'integer' and doc.big == 9007199254740992");
    LUA_CHECK(L, "return math.type(doc.arr[2]) == 'integer'");
    LUA_CHECK(L, "return (doc.int & 0xf) == 10 and ({[42] = 'k'})[doc.int] == 'k'");
    LUA_CHECK(L, "return math.type(doc.float) == 'float' and doc.float == 1.5");
    LUA_CHECK(L, "return math.type(doc.negf) == 'float' and doc.negf == -0.25");
    LUA_CHECK(L, "return math.type(doc.huge) == 'float' and doc.huge == 1e300");
    LUA_CHECK(L, "return doc.nul == nil and rawget(doc, 'nul') == nil");
    LUA_CHECK(L, "for k in pairs(doc) do if k == 'nul' then return false end end; return true");
    LUA_CHECK(L, "return doc.t == true and doc.f == false and type(doc.f) == 'boolean'");
    LUA_CHECK(L, "return doc.s == 'h\\u{e9} \"q\"' and doc.es == ''");
    LUA_CHECK(L, "return type(doc.empty_obj) == 'table' and next(doc.empty_obj) == nil");
    LUA_CHECK(L, "return type(doc.empty_arr) == 'table' and next(doc.empty_arr) == nil");
    LUA_CHECK(L, "return doc.holes[1] == 1 and doc.holes[2] == nil and doc.holes[3] == 3");
    LUA_CHECK(L, "return doc.nested[1][2] == 2 and doc.nested[2][1].y == 'z'");
    LUA_CHECK(L, "return doc.nested[2][1].k == nil and doc.nested[2][2] == nil");
    LUA_CHECK(L, "return getmetatable(doc) == nil and getmetatable(doc.arr) == nil");
    cJSON_Delete(doc);

    /* Values other than objects push as themselves. */
    cJSON *s = cJSON_CreateString("plain");
    CHECK(push_global(L, "str", s), "push: a string");
    LUA_CHECK(L, "return str == 'plain'");
    cJSON_Delete(s);
    cJSON *n = cJSON_CreateNull();
    CHECK(push_global(L, "nothing", n), "push: null");
    LUA_CHECK(L, "return nothing == nil");
    cJSON_Delete(n);
    cJSON *a = cJSON_Parse("[true, 2.5, \"x\"]");
    CHECK(push_global(L, "list", a), "push: an array");
    LUA_CHECK(L, "return #list == 3 and list[1] == true and list[2] == 2.5 and list[3] == 'x'");
    cJSON_Delete(a);

    /* Each push is a fresh table: a policy changing its input changes nothing else. */
    cJSON *o = cJSON_Parse("{\"k\": [1]}");
    CHECK(push_global(L, "one", o) && push_global(L, "two", o), "push: twice");
    LUA_CHECK(L, "one.k[1] = 99; one.new = 1; return two.k[1] == 1 and two.new == nil");
    cJSON *k0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "k"), 0);
    CHECK(k0 != NULL && k0->valuedouble == 1, "push: the JSON document is unchanged");
    cJSON_Delete(o);

    lua_close(L);
}

static void test_round_trip(void)
{
    lua_State *L = fresh_state();
    cJSON *doc =
        cJSON_Parse("{\"name\": \"web\", \"n\": 3, \"f\": 2.5, \"neg\": -12, \"ok\": true,"
                    " \"no\": false, \"s\": \"h\\u00e9 \\u2713 \\\"q\\\" \\\\\","
                    " \"list\": [1, \"two\", 3.5, {\"k\": \"v\"}, [1, [2, [3]]]],"
                    " \"obj\": {\"inner\": {\"deep\": [{\"a\": 1}, {\"b\": [true, false]}]}},"
                    " \"empty\": {}, \"big\": 4294967296, \"small\": 0.001}");
    CHECK(doc != NULL, "round trip: the document parses");
    CHECK(push_global(L, "doc", doc), "round trip: pushed");
    lua_getglobal(L, "doc");
    char *why = NULL;
    cJSON *back = luajson_to_json(L, -1, &why);
    lua_pop(L, 1);
    CHECK(back != NULL && cJSON_Compare(doc, back, true), "round trip: equal (%s)",
          why ? why : "no error");
    const cJSON *n = cJSON_GetObjectItem(back, "n");
    CHECK(cJSON_IsNumber(n) && n->valuedouble == 3, "round trip: an integer stays 3");
    const cJSON *list = cJSON_GetObjectItem(back, "list");
    CHECK(cJSON_IsArray(list) && cJSON_GetArraySize(list) == 5,
          "round trip: the list stays a list");
    const cJSON *empty = cJSON_GetObjectItem(back, "empty");
    CHECK(cJSON_IsObject(empty) && empty->child == NULL, "round trip: {} stays {}");
    cJSON_Delete(back);
    free(why);

    /* A document with null fields comes back without them. */
    cJSON *with_null = cJSON_Parse("{\"a\": 1, \"b\": null, \"c\": {\"d\": null}}");
    CHECK(push_global(L, "wn", with_null), "nulls: pushed");
    lua_getglobal(L, "wn");
    back = luajson_to_json(L, -1, &why);
    lua_pop(L, 1);
    cJSON *want = cJSON_Parse("{\"a\": 1, \"c\": {}}");
    CHECK(back != NULL && cJSON_Compare(back, want, true), "nulls: absent after the round trip");
    cJSON_Delete(want);
    cJSON_Delete(back);
    cJSON_Delete(with_null);

    cJSON_Delete(doc);
    lua_close(L);
}

static void test_to_json(void)
{
    lua_State *L = fresh_state();

    converts(L, "return {}", "{}");
    converts(L, "return {a = {}, b = {{}}}", "{\"a\": {}, \"b\": [{}]}");
    converts(L, "return {1, 2, 3}", "[1, 2, 3]");
    converts(L, "return {[1] = 'a', [2] = 'b'}", "[\"a\", \"b\"]");
    converts(L, "local t = {}; t[2] = 'b'; t[1] = 'a'; return t", "[\"a\", \"b\"]");
    converts(L, "return {x = 1, y = 'z', t = true, f = false}",
             "{\"x\": 1, \"y\": \"z\", \"t\": true, \"f\": false}");
    converts(L, "return {n = 1.5, i = 7, m = -3, e = 2^10}",
             "{\"n\": 1.5, \"i\": 7, \"m\": -3, \"e\": 1024}");
    converts(L, "return {a = nil, b = 1}", "{\"b\": 1}");
    converts(L, "return 'text'", "\"text\"");
    converts(L, "return 42", "42");
    converts(L, "return nil", "null");
    converts(L, "return false", "false");
    converts(L, "return {x = {{y = 1}, {y = 2}}}", "{\"x\": [{\"y\": 1}, {\"y\": 2}]}");
    converts(L, "return {['with space'] = 1, ['1'] = 2}", "{\"with space\": 1, \"1\": 2}");

    /* A value below the top of the stack, by a negative index. */
    CHECK(luaL_dostring(L, "return {k = 'v'}") == LUA_OK, "a table to convert");
    lua_pushinteger(L, 5);
    char *why = NULL;
    cJSON *j = luajson_to_json(L, -2, &why);
    cJSON *w = cJSON_Parse("{\"k\": \"v\"}");
    CHECK(j != NULL && cJSON_Compare(j, w, true), "a negative index below the top");
    CHECK(lua_gettop(L) == 2 && lua_tointeger(L, -1) == 5, "the stack is untouched");
    lua_settop(L, 0);
    cJSON_Delete(w);
    cJSON_Delete(j);
    free(why);

    lua_close(L);
}

static void test_to_json_errors(void)
{
    lua_State *L = fresh_state();

    /* Tables that are neither arrays nor maps. */
    fails(L, "return {a = {b = {1, 2, x = 3}}}", "a.b", "neither all strings nor 1..n");
    fails(L, "return {1, 2, x = 3}", "(result)", "neither all strings nor 1..n");
    fails(L, "return {a = {[true] = 1}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {[1.5] = 1}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {['x'] = 1, [2] = 2}}", "a", "neither all strings nor 1..n");

    /* Arrays with holes. */
    fails(L, "return {a = {1, nil, 3}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {[1] = 1, [3] = 3}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {nil, 2}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {[2] = 'x'}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {[0] = 'x', [1] = 'y'}}", "a", "neither all strings nor 1..n");
    fails(L, "local t = {1, 2, 3}; t[2] = nil; return {a = t}", "a",
          "neither all strings nor 1..n");
    /* A hole with an extra integer key outside 1..n: the count of keys equals the border
     * that lua_rawlen finds, but the keys are not 1..n. */
    fails(L, "return {a = {1, nil, 3, [10] = 4}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {1, nil, 3, [0] = 0}}", "a", "neither all strings nor 1..n");
    fails(L, "return {a = {1, nil, 3, [-1] = 'x'}}", "a", "neither all strings nor 1..n");

    /* Values with no JSON form. */
    fails(L, "return {a = {f = function() end}}", "a.f", "function");
    fails(L, "return {a = {f = print}}", "a.f", "a function value has no JSON form");
    fails(L, "return print", "(result)", "a function value has no JSON form");
    fails(L, "return {co = coroutine.create(function() end)}", "co", "a thread value");
    fails(L, "return {u = io.stdout}", "u", "a userdata value has no JSON form");
    fails(L, "return {x = 0/0}", "x", "a number that is not finite");
    fails(L, "return {x = {y = math.huge}}", "x.y", "a number that is not finite");
    fails(L, "return {x = {-math.huge}}", "x[0]", "a number that is not finite");
    fails(L, "return {s = 'a\\0b'}", "s", "a string with a NUL byte");
    fails(L, "return {['a\\0b'] = 1}", "a", "a key with a NUL byte");
    fails(L, "return 'a\\0'", "(result)", "a string with a NUL byte");

    /* Paths through arrays of objects are 0-based, as in JSON Pointer and jq. */
    fails(L, "return {x = {{y = 1}, {y = 2}, {y = print}}}", "x[2].y", "function");
    fails(L, "return {x = {{}, {{z = {1, {w = 0/0}}}}}}", "x[1][0].z[1].w", "not finite");

    /* A table that holds itself stops at the depth limit, with the whole path (cut short at
     * 255 characters) to the table at that depth. */
    char *p = repeat("t", ".t", LUAJSON_MAX_DEPTH - 1);
    fails(L, "local t = {}; t.t = t; return t", p, "nested too deeply");
    free(p);
    p = repeat("a", "[0]", LUAJSON_MAX_DEPTH - 1);
    fails(L, "local t = {}; t[1] = t; return {a = t}", p, "nested too deeply");
    free(p);
    p = repeat("b.a", ".b.a", LUAJSON_MAX_DEPTH / 2 - 1);
    fails(L, "local a, b = {}, {}; a.b = b; b.a = a; return a", p, "nested too deeply");
    free(p);
    p = repeat(LONG_KEY, "." LONG_KEY, LUAJSON_MAX_DEPTH - 1);
    p[255] = '\0';
    fails(L, "local t = {}; t." LONG_KEY " = t; return t", p, "nested too deeply");
    free(p);

    /* LUAJSON_MAX_DEPTH nested tables convert; one more does not. */
    char *why = NULL;
    cJSON *j = from_lua(L,
                        "local t = 1; for i = 1, " TOSTR(LUAJSON_MAX_DEPTH) " do t = {t} end;"
                                                                            " return t",
                        &why);
    CHECK(j != NULL, "%d nested tables convert (%s)", LUAJSON_MAX_DEPTH, why ? why : "no error");
    cJSON_Delete(j);
    free(why);
    j = from_lua(L,
                 "local t = 1; for i = 1, " TOSTR(LUAJSON_MAX_DEPTH) " + 1 do t = {t} end;"
                                                                     " return t",
                 &why);
    CHECK(j == NULL && why && strstr(why, "nested too deeply"), "%d nested tables refused (%s)",
          LUAJSON_MAX_DEPTH + 1, why ? why : "converted");
    cJSON_Delete(j);
    free(why);

    lua_close(L);
}

int main(void)
{
    test_push();
    test_round_trip();
    test_to_json();
    test_to_json_errors();
    return test_done();
}

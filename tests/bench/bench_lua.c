/* In-process Lua decisions per second on an input document (target: at least 100,000/s),
 * against a baseline measured in the same run: the bare call of the same policy on an input
 * table built once, without the JSON conversion and the decision's validation.
 *
 *   bench_lua POLICY.lua INPUT.json [SECONDS] */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../policy/luajson.h"
#include "../../policy/policy.h"
#include "../../supervisor/core/util.h"

static int push_input(lua_State *L)
{
    luajson_push(L, lua_touserdata(L, 1));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    double seconds = argc > 3 ? atof(argv[3]) : 2.0;
    char *ptext, *itext;
    size_t plen, ilen;
    tether_error_t err = NULL;
    cJSON *input;
    struct policy *p;
    if (read_file(argv[1], 1 << 20, &ptext, &plen, &err) < 0 ||
        read_file(argv[2], 1 << 24, &itext, &ilen, &err) < 0 ||
        json_parse(itext, ilen, &input, &err) < 0 ||
        policy_lua_open(argv[1], ptext, plen, NULL, &p, &err) < 0) {
        fprintf(stderr, "bench_lua: %s\n", err->msg);
        return 1;
    }

    /* tether's path: JSON -> fresh tables -> decide -> JSON -> validated decision. */
    uint64_t n = 0, t0 = time_mono_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    struct decision d = {.ttl_s = -1};
    while (time_mono_ns() < end) {
        for (int i = 0; i < 1000; i++, n++) {
            policy_decide(p, input, &d);
            if (!d.allow) {
                fprintf(stderr, "bench_lua: the policy denied: %s\n", d.reasons[0]);
                return 1;
            }
            decision_clear(&d);
        }
    }
    double rate = n / ((time_mono_ns() - t0) / 1e9);

    /* Baseline: the same policy's decide() on one prebuilt input table. */
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_loadbuffer(L, ptext, plen, "policy");
    lua_call(L, 0, 0);
    lua_pushcfunction(L, push_input);
    lua_pushlightuserdata(L, input);
    lua_call(L, 1, 1);
    int input_idx = lua_gettop(L);
    uint64_t m = 0;
    t0 = time_mono_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    while (time_mono_ns() < end) {
        for (int i = 0; i < 1000; i++, m++) {
            lua_getglobal(L, "decide");
            lua_pushvalue(L, input_idx);
            lua_call(L, 1, 1);
            lua_pop(L, 1);
        }
    }
    double base = m / ((time_mono_ns() - t0) / 1e9);
    printf("lua decisions: %.0f/s (target >= 100000: %s); bare decide() calls: %.0f/s; "
           "ratio %.2f\n",
           rate, rate >= 100000 ? "met" : "NOT met", base, rate / base);
    lua_close(L);
    policy_free(p);
    cJSON_Delete(input);
    free(ptext);
    free(itext);
    return 0;
}

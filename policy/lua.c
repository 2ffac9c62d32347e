/* The embedded Lua engine: a policy defines decide(input) and runs in a sandbox with a
 * chosen set of libraries, text-only loading, a capped heap, and an instruction and time
 * budget that the policy cannot catch and carry on from. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/log.h"
#include "../supervisor/core/util.h"
#include "luajson.h"
#include "policy.h"

const struct lua_limits policy_lua_default_limits = {
    .memory_bytes = 32u << 20,
    .instructions = 20u * 1000 * 1000,
    .time_ms = 1000,
};

/* The hook runs every HOOK_STEP instructions while within budget. */
#define HOOK_STEP 1000
#define WATCHDOG_SIGNAL (SIGRTMAX - 1)

struct lua_policy {
    struct policy base;
    lua_State *L;
    struct lua_limits limits;
    size_t mem_used;
    int decide_ref;
    uint64_t steps;
    uint64_t deadline_ns;
    const char *exhausted; /* which budget ran out in this evaluation, or NULL */
};

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_policy *lp = ud;
    if (ptr == NULL)
        osize = 0; /* then osize only tells the kind of object */
    if (nsize == 0) {
        free(ptr);
        lp->mem_used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > lp->limits.memory_bytes - lp->mem_used)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p != NULL)
        lp->mem_used = lp->mem_used - osize + nsize;
    return p;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    void *ud;
    lua_getallocf(L, &ud);
    struct lua_policy *lp = ud;
    if (lp->exhausted == NULL) {
        lp->steps += HOOK_STEP;
        if (lp->steps > lp->limits.instructions)
            lp->exhausted = "instruction budget";
        else if (time_mono_ns() > lp->deadline_ns)
            lp->exhausted = "time budget";
        else
            return;
        /* From now on every instruction raises again, so a pcall in the policy that catches
         * this error cannot run a single instruction more (as redis does). */
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "policy exceeded its %s", lp->exhausted);
}

/* The last resort.  The hook runs between VM instructions only, so a library call that never
 * returns (a pathological string.find pattern) is beyond it; when an evaluation overruns its
 * time budget twice over, tether stops, closed: nothing has been started on its word. */
static void watchdog_fire(int sig)
{
    (void)sig;
    static const char msg[] = "tether: the policy overran its time budget inside a library "
                              "call; stopping\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(125);
}

static void watchdog_set(uint64_t ms)
{
    static timer_t timer;
    static bool ready;
    if (!ready) {
        /* A real-time signal of its own: SIGALRM belongs to whoever embeds the engine
         * (libFuzzer's -timeout uses it). */
        struct sigaction sa = {.sa_handler = watchdog_fire};
        struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = WATCHDOG_SIGNAL};
        if (sigaction(WATCHDOG_SIGNAL, &sa, NULL) < 0 ||
            timer_create(CLOCK_MONOTONIC, &sev, &timer) < 0)
            return;
        ready = true;
    }
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
    timer_settime(timer, 0, &its, NULL);
}

static void budget_arm(struct lua_policy *lp)
{
    lp->steps = 0;
    lp->exhausted = NULL;
    lp->deadline_ns = time_mono_ns() + lp->limits.time_ms * 1000000u;
    lua_sethook(lp->L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
    watchdog_set(2 * lp->limits.time_ms + 500);
}

static void budget_disarm(struct lua_policy *lp)
{
    lua_sethook(lp->L, NULL, 0, 0);
    watchdog_set(0);
}

/* print() goes to the debug log, never to the workload's stdout. */
static int sandbox_print(lua_State *L)
{
    int n = lua_gettop(L); /* before luaL_buffinit, which may push a placeholder */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_debug("policy: %s", lua_tostring(L, -1));
    return 0;
}

/* setmetatable() as the base library's, but a metatable with __gc is refused: Lua runs
 * finalizers with hooks off, where the budget cannot reach. */
static int sandbox_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE && lua_getfield(L, 2, "__gc") != LUA_TNIL)
        return luaL_error(L, "__gc metamethods are not allowed in policies");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int panic(lua_State *L)
{
    log_error("lua panic: %s", lua_tostring(L, -1));
    abort();
}

/* Only these libraries: no io, os, package, debug or coroutine (linit.c explains the
 * pattern).  From base, the functions that reach files or compile code are removed. */
static int sandbox_open(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* xpcall is gone because Lua runs a message handler with hooks off, so a loop in one
     * would escape the budget; pcall does the same job. */
    static const char *const removed[] = {"dofile",         "loadfile", "load", "require",
                                          "collectgarbage", "xpcall",   NULL};
    for (const char *const *name = removed; *name; name++) {
        lua_pushnil(L);
        lua_setglobal(L, *name);
    }
    lua_pushcfunction(L, sandbox_print);
    lua_setglobal(L, "print");
    lua_pushcfunction(L, sandbox_setmetatable);
    lua_setglobal(L, "setmetatable");

    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump"); /* bytecode out is a step towards bytecode in */
    lua_pop(L, 1);

    /* Lock the globals' metatable: setmetatable(_G, ...) is an error. */
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    return 0;
}

/* The message of a failed call: a string, or the type of a non-string error object (a
 * __tostring metamethod is not run outside the budget). */
static const char *error_text(lua_State *L, int status)
{
    if (status == LUA_ERRMEM)
        return "not enough memory";
    if (lua_type(L, -1) == LUA_TSTRING)
        return lua_tostring(L, -1);
    return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
}

static int run_error(struct lua_policy *lp, int status, const char *what, tether_error_t *err)
{
    if (lp->exhausted != NULL)
        error_set(err, 0, "%s: policy exceeded its %s", what, lp->exhausted);
    else if (status == LUA_ERRMEM)
        error_set(err, 0, "%s: policy exceeded its memory limit of %zu bytes", what,
                  lp->limits.memory_bytes);
    else
        error_set(err, 0, "%s: %s", what, error_text(lp->L, status));
    lua_settop(lp->L, 0);
    lua_gc(lp->L, LUA_GCCOLLECT);
    return -1;
}

static int decide_protected(lua_State *L)
{
    const cJSON *input = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)lua_tointeger(L, 2));
    luajson_push(L, input);
    lua_call(L, 1, 1);
    return 1;
}

static int lua_evaluate(struct policy *p, const cJSON *input, cJSON **doc, cJSON **info,
                        tether_error_t *err)
{
    (void)info;
    struct lua_policy *lp = (struct lua_policy *)p;
    lua_State *L = lp->L;

    lua_settop(L, 0);
    lua_pushcfunction(L, decide_protected);
    lua_pushlightuserdata(L, (void *)input);
    lua_pushinteger(L, lp->decide_ref);
    budget_arm(lp);
    int status = lua_pcall(L, 2, 1, 0);
    if (status != LUA_OK) {
        budget_disarm(lp);
        return run_error(lp, status, "decide", err);
    }
    if (!lua_istable(L, -1)) {
        budget_disarm(lp);
        error_set(err, 0, "decide() must return a table, not %s", luaL_typename(L, -1));
        lua_settop(L, 0);
        return -1;
    }
    /* The conversion is the policy's work too: the same budget of memory and time, so a
     * result that names one large string many times cannot cost more than the policy may. */
    char *why = NULL;
    *doc = luajson_to_json_within(L, -1, lp->limits.memory_bytes, lp->deadline_ns, &why);
    budget_disarm(lp);
    lua_settop(L, 0);
    if (*doc == NULL) {
        error_set(err, 0, "decide() returned a value with no JSON form: %s", why);
        free(why);
        return -1;
    }
    return 0;
}

static void lua_policy_free(struct policy *p)
{
    struct lua_policy *lp = (struct lua_policy *)p;
    if (lp->L != NULL)
        lua_close(lp->L);
    free(lp);
}

static const struct policy_ops lua_ops = {
    .engine = "lua",
    .evaluate = lua_evaluate,
    .free = lua_policy_free,
};

int policy_lua_open(const char *name, const char *text, size_t len, const struct lua_limits *limits,
                    struct policy **out, tether_error_t *err)
{
    struct lua_policy *lp = xcalloc(1, sizeof *lp);
    lp->base.ops = &lua_ops;
    lp->base.source = xstrdup(name);
    lp->limits = limits ? *limits : policy_lua_default_limits;
    lp->decide_ref = LUA_NOREF;
    struct policy *p = &lp->base;
    /* The watchdog's own bound (2 x time_ms + 500), and a second to spare. */
    p->bound_ms = 2 * lp->limits.time_ms + 1500;

    lp->L = lua_newstate(sandbox_alloc, lp);
    if (lp->L == NULL) {
        policy_free(p);
        return error_set(err, 0, "policy `%s`: cannot create a Lua state", name);
    }
    lua_State *L = lp->L;
    lua_atpanic(L, panic);

    /* Open the libraries in protected mode: the memory cap applies from the start. */
    budget_arm(lp);
    lua_pushcfunction(L, sandbox_open);
    int status = lua_pcall(L, 0, 0, 0);
    cleanup_free char *chunkname = xasprintf("@%s", name);
    if (status == LUA_OK)
        status = luaL_loadbufferx(L, text, len, chunkname, "t");
    if (status == LUA_OK)
        status = lua_pcall(L, 0, 0, 0);
    budget_disarm(lp);
    if (status != LUA_OK) {
        run_error(lp, status, "load", err);
        policy_free(p);
        return error_wrap(err, "policy `%s`", name);
    }

    lua_getglobal(L, "decide");
    if (!lua_isfunction(L, -1)) {
        policy_free(p);
        return error_set(err, 0, "policy `%s`: it does not define function decide(input)", name);
    }
    lp->decide_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    *out = p;
    return 0;
}

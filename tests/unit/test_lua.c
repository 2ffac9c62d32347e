/* The Lua engine: decisions come back through the contract, and every way out of the
 * sandbox ends in a deny with a reason, quickly, without a crash. */
#define _GNU_SOURCE
#include <string.h>

#include "../../policy/policy.h"
#include "../../supervisor/core/util.h"
#include "test.h"

static cJSON *input;

/* Opens a policy from text and decides once on the shared input. */
static int decide(const char *text, const struct lua_limits *lim, struct decision *d,
                  char **load_err)
{
    struct policy *p = NULL;
    tether_error_t err = NULL;
    *d = (struct decision){.ttl_s = -1};
    if (policy_lua_open("test.lua", text, strlen(text), lim, &p, &err) < 0) {
        *load_err = strdup(err->msg);
        error_free(&err);
        return -1;
    }
    policy_decide(p, input, d);
    policy_free(p);
    return 0;
}

static int reason_has(const struct decision *d, const char *needle)
{
    for (size_t i = 0; i < d->n_reasons; i++)
        if (strstr(d->reasons[i], needle) != NULL)
            return 1;
    return 0;
}

/* A policy body that must be denied at decide time with a reason containing `why`. */
static void denied(const char *name, const char *body, const char *why)
{
    char *text = xasprintf("function decide(input)\n%s\nreturn {allow = true}\nend\n", body);
    struct decision d;
    char *load_err = NULL;
    uint64_t t0 = time_mono_ns();
    int r = decide(text, NULL, &d, &load_err);
    uint64_t ms = (time_mono_ns() - t0) / 1000000;
    CHECK(r == 0 && !d.allow && reason_has(&d, why), "%s is denied (%s), in %llu ms", name,
          r == 0 && d.n_reasons ? d.reasons[0] : load_err, (unsigned long long)ms);
    decision_clear(&d);
    free(load_err);
    free(text);
}

int main(void)
{
    input = cJSON_Parse("{\"host\":{\"labels\":{\"region\":\"eu-de\"}},"
                        "\"workload\":{\"exe\":{\"path\":\"/bin/true\",\"owner_uid\":0,"
                        "\"mode\":493},\"sealed\":null}}");

    struct decision d;
    char *load_err = NULL;

    /* The contract both ways. */
    CHECK(decide("function decide(i) return {allow = i.host.labels.region == 'eu-de', "
                 "reasons = {'in ' .. i.host.labels.region}, ttl_s = 30} end",
                 NULL, &d, &load_err) == 0 &&
              d.allow && d.n_reasons == 1 && strcmp(d.reasons[0], "in eu-de") == 0 && d.ttl_s == 30,
          "a policy reads the input and its decision comes back");
    decision_clear(&d);
    CHECK(
        decide(
            "function decide(i) return {allow = (i.workload.sealed == nil) and "
            "math.type(i.workload.exe.mode) == 'integer' and i.workload.exe.mode & 0x12 == 0} end",
            NULL, &d, &load_err) == 0 &&
            d.allow,
        "null reaches Lua as nil, integers as integers");
    decision_clear(&d);
    CHECK(decide("function decide(i) i.host = nil; return {allow = false, reasons = {}} end", NULL,
                 &d, &load_err) == 0 &&
              !d.allow,
          "an empty reasons table is a list");
    decision_clear(&d);
    {
        /* The same policy twice: what the first call did to its input is not seen by the
         * second. */
        const char *mut = "function decide(i) local had = i.host ~= nil; i.host = nil\n"
                          "return {allow = had} end";
        struct policy *mp = NULL;
        tether_error_t merr = NULL;
        struct decision d2 = {.ttl_s = -1};
        CHECK(policy_lua_open("mut.lua", mut, strlen(mut), NULL, &mp, &merr) == 0, "opens");
        policy_decide(mp, input, &d);
        policy_decide(mp, input, &d2);
        CHECK(d.allow && d2.allow, "each evaluation gets a fresh copy of the input");
        decision_clear(&d);
        decision_clear(&d2);
        policy_free(mp);
    }
    CHECK(decide("function decide(i) return {allow = 'yes'} end", NULL, &d, &load_err) == 0 &&
              !d.allow && reason_has(&d, "`allow`"),
          "a wrong type is a deny naming the field");
    decision_clear(&d);
    CHECK(decide("function decide(i) return {allow = true, confine = print} end", NULL, &d,
                 &load_err) == 0 &&
              !d.allow && reason_has(&d, "`confine`"),
          "a function in the decision is a deny naming the field");
    decision_clear(&d);
    CHECK(decide("function decide(i) return true end", NULL, &d, &load_err) == 0 && !d.allow &&
              reason_has(&d, "must return a table"),
          "a decision that is not a table is a deny");
    decision_clear(&d);

    /* Load errors are errors, not decisions. */
    CHECK(decide("function decide(i) return {allow = true}", NULL, &d, &load_err) < 0 &&
              strstr(load_err, "test.lua") != NULL,
          "a syntax error fails to load, naming the file (%s)", load_err);
    free(load_err), load_err = NULL;
    CHECK(decide("x = 1", NULL, &d, &load_err) < 0 && strstr(load_err, "decide") != NULL,
          "a policy without decide() fails to load (%s)", load_err);
    free(load_err), load_err = NULL;
    CHECK(decide("\x1bLua\x54", NULL, &d, &load_err) < 0 && strstr(load_err, "binary") != NULL,
          "a bytecode policy is refused (%s)", load_err);
    free(load_err), load_err = NULL;
    CHECK(decide("while true do end", NULL, &d, &load_err) < 0 &&
              strstr(load_err, "budget") != NULL,
          "an endless top level is stopped (%s)", load_err);
    free(load_err), load_err = NULL;

    /* The sandbox: each escape ends in a deny with a reason. */
    denied("io.open", "io.open('/etc/shadow')", "io");
    denied("os.execute", "os.execute('touch /tmp/pwned')", "os");
    denied("require", "require('os')", "require");
    denied("dofile", "dofile('/etc/passwd')", "dofile");
    denied("loadfile", "loadfile('/etc/passwd')", "loadfile");
    denied("load of bytecode", "load('\\27Lua')", "load");
    denied("string.dump", "string.dump(decide)", "dump");
    denied("debug", "debug.getregistry()", "debug");
    denied("package", "package.loadlib('libc.so.6', 'system')", "package");
    denied("setmetatable(_G)", "setmetatable(_G, {__index = function() return os end})",
           "protected metatable");
    denied("a string.rep memory bomb", "local s = string.rep('x', 1 << 30)", "memory limit");
    denied("a growing table", "local t = {} for i = 1, 1e9 do t[i] = i end", "");
    /* Whichever budget runs out first (on a slow or emulated machine the second may come
     * before 20 million instructions); each alone is checked below. */
    denied("an infinite loop", "while true do end", "budget");
    denied("pcall swallowing the budget error",
           "while true do pcall(function() while true do end end) end", "budget");
    /* Lua runs message handlers and finalizers with hooks off: neither may be defined. */
    denied("xpcall with a looping handler",
           "xpcall(function() while true do end end, function() while true do end end)", "xpcall");
    denied("a looping __gc finalizer",
           "setmetatable({}, {__gc = function() while true do end end})", "__gc");
    denied("setmetatable on a protected table", "setmetatable(_G, nil)", "protected metatable");
    denied("a budget error caught in a to-be-closed handler",
           "local x <close> = setmetatable({}, {__close = function() while true do end end})\n"
           "while true do end",
           "budget");
    denied("error with a table", "error({})", "error object is a table");
    denied("deep recursion", "local function f(n) return f(n + 1) + 1 end f(1)", "");

    /* The budget is per evaluation, and the state stays usable after a denial. */
    struct lua_limits small = policy_lua_default_limits;
    small.instructions = 100000;
    struct policy *p = NULL;
    tether_error_t err = NULL;
    const char *text = "n = 0\nfunction decide(i) n = n + 1\n"
                       "if n == 1 then while true do end end\nreturn {allow = true} end";
    CHECK(policy_lua_open("budget.lua", text, strlen(text), &small, &p, &err) == 0, "opens");
    policy_decide(p, input, &d);
    CHECK(!d.allow && reason_has(&d, "instruction budget"), "first evaluation runs out of budget");
    decision_clear(&d);
    policy_decide(p, input, &d);
    CHECK(d.allow, "the next evaluation has a fresh budget");
    decision_clear(&d);
    policy_free(p);

    /* The time budget alone: instructions enough for an hour, 200 ms of time. */
    struct lua_limits timed = policy_lua_default_limits;
    timed.instructions = UINT64_MAX / 2;
    timed.time_ms = 200;
    text = "function decide(i) while true do end end";
    CHECK(policy_lua_open("timed.lua", text, strlen(text), &timed, &p, &err) == 0, "opens");
    policy_decide(p, input, &d);
    CHECK(!d.allow && reason_has(&d, "time budget"), "a loop runs out of its time budget");
    decision_clear(&d);
    policy_free(p);

    /* The built-in default policy. */
    CHECK(policy_lua_open("builtin:default", policy_default_lua, policy_default_lua_len, NULL, &p,
                          &err) == 0,
          "the default policy loads");
    policy_decide(p, input, &d);
    CHECK(d.allow, "default: a root-owned 0755 executable is allowed");
    decision_clear(&d);
    cJSON *exe = cJSON_GetObjectItem(cJSON_GetObjectItem(input, "workload"), "exe");
    cJSON_ReplaceItemInObject(exe, "mode", cJSON_CreateNumber(0777));
    cJSON_ReplaceItemInObject(exe, "owner_uid", cJSON_CreateNumber(1000));
    policy_decide(p, input, &d);
    CHECK(!d.allow && reason_has(&d, "not root") && reason_has(&d, "group-writable") &&
              reason_has(&d, "world-writable"),
          "default: a user-owned 0777 executable is denied with each reason");
    decision_clear(&d);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(input, "workload"), "exe", cJSON_CreateNull());
    policy_decide(p, input, &d);
    CHECK(!d.allow && reason_has(&d, "could not be measured"),
          "default: an unmeasured executable is denied");
    decision_clear(&d);
    policy_free(p);

    cJSON_Delete(input);
    return test_done();
}

/* Policy engines behind one interface, and the decision they must return (DESIGN.md,
 * "Decision").  Whatever goes wrong inside an engine becomes a deny with a reason. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../supervisor/core/error.h"

struct decision {
    bool allow;
    char **reasons;
    size_t n_reasons;
    cJSON *doc;       /* the document the engine returned, or NULL */
    const cJSON *key; /* members of doc, or NULL when absent or null */
    const cJSON *confine;
    const cJSON *monitor;
    int64_t ttl_s; /* -1 when absent */
};

struct policy;

struct policy_ops {
    const char *engine; /* "lua", "opa" */
    /* Returns the decision document, or -1 with err when no decision could be had. */
    int (*evaluate)(struct policy *p, const cJSON *input, cJSON **doc, tether_error_t *err);
    void (*free)(struct policy *p);
};

struct policy {
    const struct policy_ops *ops;
    char *source; /* "builtin:default", a file, a URL: for messages and the audit trail */
};

/* Evaluates and validates; never fails: an engine error is a deny whose reason says why. */
void policy_decide(struct policy *p, const cJSON *input, struct decision *out);
void policy_free(struct policy *p);
#define cleanup_policy __attribute__((cleanup(policy_freep)))
static inline void policy_freep(struct policy **p)
{
    policy_free(*p);
}

/* Validates a decision document (taken over).  A wrong type is a deny naming the field. */
void decision_parse(cJSON *doc, struct decision *out);
/* Makes out a deny with one reason. */
void decision_deny(struct decision *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The normalised decision, as `tether eval` prints it. */
cJSON *decision_to_json(const struct decision *d);
/* "r1; r2" */
char *decision_reasons_joined(const struct decision *d);
void decision_clear(struct decision *d);

/* --- the Lua engine (lua.c) --- */

struct lua_limits {
    size_t memory_bytes;   /* the Lua state's heap */
    uint64_t instructions; /* VM instructions per evaluation */
    uint64_t time_ms;      /* wall-clock time per evaluation */
};
extern const struct lua_limits policy_lua_default_limits;

/* Compiles a policy (text only, never bytecode) and runs its top level in the sandbox. */
int policy_lua_open(const char *name, const char *text, size_t len, const struct lua_limits *limits,
                    struct policy **out, tether_error_t *err);

/* The built-in default policy (policies/default.lua, compiled in). */
extern const char policy_default_lua[];
extern const size_t policy_default_lua_len;

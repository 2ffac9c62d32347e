/* Policy engines behind one interface, and the decision they must return (DESIGN.md,
 * "Decision").  Whatever goes wrong inside an engine becomes a deny with a reason. */
#pragma once

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../supervisor/core/error.h"
#include "../supervisor/core/secret.h"
#include "confine.h"

/* A secret a decision releases to the workload: a file `name` in $TETHER_SECRETS, its bytes
 * from <keystore>/secrets/<id>, or given (value, decoded into secret memory). */
struct decision_secret {
    const char *name, *id; /* members of the decision's doc; id NULL for a value */
    struct secret *value;
};
#define DECISION_SECRETS_MAX 32
#define DECISION_SECRET_BYTES (64u << 10)

struct decision {
    bool allow;
    char **reasons;
    size_t n_reasons;
    cJSON *doc;               /* the document the engine returned, or NULL */
    const cJSON *key;         /* members of doc, or NULL when absent or null; key.value is wiped */
    struct secret *key_value; /* key.value decoded, as soon as the decision was parsed */
    const cJSON *confine;
    const cJSON *monitor;
    int64_t ttl_s;         /* -1 when absent */
    const cJSON *identity; /* {audience, ttl_s, subject}, or NULL: an identity token */
    struct decision_secret *secrets;
    size_t n_secrets;
    struct confine confinement; /* the confine block resolved, or the defaults without one */
    cJSON *engine_info;         /* from the engine, for the audit record, or NULL */
    bool unreachable;           /* denied because no answer could be had from the engine */
    bool connected;             /* ... though a connection was made (so never fail-open) */
    uint64_t elapsed_us;        /* how long the evaluation took, for the audit record */
};

struct policy;

/* err->code of an evaluation that could not reach its engine (refused, unresolvable, no
 * connection within the timeout): the one failure opa.fail_open may start a workload on. */
#define POLICY_UNREACHABLE EHOSTUNREACH
/* err->code of one that connected and lost the connection without an answer (a reset, an
 * empty reply), or whose server end was gone, had closed, or was not accepted within the
 * connect timeout before anything was sent (with no untrusted listener on the port):
 * a deny at launch, which a monitor treats as an unreachable engine (monitor.fail_grace_s). */
#define POLICY_NO_ANSWER ECONNRESET

struct policy_ops {
    const char *engine; /* "lua", "opa" */
    /* Returns the decision document, or -1 with err when no decision could be had. */
    /* On failure err->code is POLICY_UNREACHABLE when the engine could not be reached at
     * all, POLICY_NO_ANSWER when it was connected to but did not answer.  *info, which may be set
     * either way, is what the audit record should carry about the engine (an OPA URL, path,
     * decision_id). */
    int (*evaluate)(struct policy *p, const cJSON *input, cJSON **doc, cJSON **info,
                    tether_error_t *err);
    void (*free)(struct policy *p);
};

struct policy {
    const struct policy_ops *ops;
    char *source;      /* "builtin:default", a file, a URL: for messages and the audit trail */
    uint64_t bound_ms; /* the longest one evaluation may take, all budgets and retries
                        * included: policy_decide_isolated's deadline */
};

/* Evaluates and validates; never fails: an engine error is a deny whose reason says why. */
void policy_decide(struct policy *p, const cJSON *input, struct decision *out);
void policy_free(struct policy *p);
#define cleanup_policy __attribute__((cleanup(policy_freep)))
static inline void policy_freep(struct policy **p)
{
    policy_free(*p);
}

/* policy_decide in a forked child, which the caller's process outlives whatever the policy
 * does: one that hangs in a library call past p->bound_ms is killed, and one that crashes or
 * overruns is a deny saying so.  For the monitor phase, where the supervisor must go on
 * watching.  The child's state is thrown away: a policy keeps nothing from one evaluation
 * to the next. */
void policy_decide_isolated(struct policy *p, const cJSON *input, struct decision *out);
/* The same under a bound of the caller's (ms): what does not answer in time is a deny. */
void policy_decide_within(struct policy *p, const cJSON *input, uint64_t bound_ms,
                          struct decision *out);

/* Validates a decision document (taken over).  A wrong type is a deny naming the field.
 * key.value is decoded into out->key_value and its base64 wiped from the document. */
void decision_parse(cJSON *doc, struct decision *out);
/* Makes out a deny with one reason. */
void decision_deny(struct decision *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The normalised decision, as `tether eval` prints it. */
cJSON *decision_to_json(const struct decision *d);
/* "r1; r2" */
char *decision_reasons_joined(const struct decision *d);
void decision_clear(struct decision *d);

/* --- the OPA engine (opa.c) --- */

struct opa_options {
    const char *url;  /* https://..., http:// on loopback only, or unix:///path */
    const char *path; /* the decision's path under /v1/data/ */
    const char *bearer_token_file, *ca_file, *client_cert, *client_key;
    long connect_timeout_ms, timeout_ms, max_response_bytes, retries;
    long server_uid; /* trusted besides root for a loopback or unix socket server, or -1 */
};

/* Checks the options (scheme, loopback for plain http, the token and client key files'
 * owner and permissions) and reads the token and key; connects only when asked to decide. */
int policy_opa_open(const struct opa_options *o, struct policy **out, tether_error_t *err);
/* OPA's answer to a decision request: the `result` (taken out of the answer), and the facts
 * for the audit record {url, path, decision_id}.  Any status but 200, a body that is not a
 * JSON object, or no `result` (an undefined decision) is an error that says which. */
int policy_opa_parse_answer(long status, const char *body, size_t len, const char *url,
                            const char *path, cJSON **result, cJSON **info, tether_error_t *err);
/* One line of /proc/net/tcp or tcp6, for the connection from local to peer (addresses as
 * text, as curl gives them): the server's end of it, accepted and open (*uid its owner),
 * not yet accepted (no owner of its own yet), or closed (no owner, listed as uid 0); or
 * another socket, a listener among them. */
enum tcp_line_kind { TCP_LINE_OTHER, TCP_LINE_SERVER, TCP_LINE_QUEUED, TCP_LINE_CLOSED };
enum tcp_line_kind policy_opa_tcp_line(const char *line, const char *peer_ip, int peer_port,
                                       const char *local_ip, int local_port, unsigned *uid);

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

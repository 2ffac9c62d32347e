/* Choosing and opening the policy engine for this node. */
#define _GNU_SOURCE
#include "core/cleanup.h"
#include "core/util.h"
#include "tether.h"

#define POLICY_MAX_BYTES (1 << 20)

int engine_open(const struct config *cfg, const char *policy_file, struct policy **out,
                tether_error_t *err)
{
    if (cfg->opa.url != NULL)
        return error_set(err, 0, "config `%s`: `opa.url` is set, but this build has no OPA engine",
                         cfg->path);
    const char *file = policy_file ? policy_file : cfg->policy;
    if (file == NULL)
        return policy_lua_open("builtin:default", policy_default_lua, policy_default_lua_len, NULL,
                               out, err);

    cleanup_free char *text = NULL;
    size_t len = 0;
    if (read_file(file, POLICY_MAX_BYTES, &text, &len, err) < 0)
        return error_wrap(err, "policy");
    return policy_lua_open(file, text, len, NULL, out, err);
}

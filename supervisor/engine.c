/* Choosing and opening the policy engine for this node: OPA when a URL is given (--opa, or
 * opa.url in the configuration), Lua otherwise. */
#define _GNU_SOURCE
#include "core/cleanup.h"
#include "core/trust.h"
#include "core/util.h"
#include "tether.h"

#define POLICY_MAX_BYTES (1 << 20)

int engine_open(const struct config *cfg, const char *policy_file, const char *opa_url,
                struct policy **out, tether_error_t *err)
{
    if (policy_file != NULL && opa_url != NULL)
        return error_set(err, 0, "--policy and --opa exclude each other: choose one engine");
    const char *url = opa_url ? opa_url : policy_file ? NULL : cfg->opa.url;
    if (url != NULL) {
        struct opa_options o = {
            .url = url,
            .path = cfg->opa.path,
            .bearer_token_file = cfg->opa.bearer_token_file,
            .ca_file = cfg->opa.ca_file,
            .client_cert = cfg->opa.client_cert,
            .client_key = cfg->opa.client_key,
            .connect_timeout_ms = (long)cfg->opa.connect_timeout_ms,
            .timeout_ms = (long)cfg->opa.timeout_ms,
            .max_response_bytes = (long)cfg->opa.max_response_bytes,
            .retries = (long)cfg->opa.retries,
            .server_uid = (long)cfg->opa.server_uid,
        };
        return policy_opa_open(&o, out, err);
    }

    const char *file = policy_file ? policy_file : cfg->policy;
    if (file == NULL)
        return policy_lua_open("builtin:default", policy_default_lua, policy_default_lua_len, NULL,
                               out, err);
    /* The policy decides: it must be root's, at load and at every reload (see trust.h). */
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_close int fd = trust_open(file, 0, err);
    if (fd < 0)
        return error_wrap(err, "policy");
    if (read_fd(fd, POLICY_MAX_BYTES, &text, &len, err) < 0)
        return error_wrap(err, "policy `%s`", file);
    return policy_lua_open(file, text, len, NULL, out, err);
}

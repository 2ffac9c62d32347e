/* The node configuration: a table of known keys drives both parsing and checking, so that an
 * unknown key or a wrong type is an error naming the key. */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "../measure/measure.h"
#include "core/cleanup.h"
#include "core/trust.h"
#include "core/util.h"

#define CONFIG_MAX_BYTES (1 << 20)

enum kind { K_STRING, K_INT, K_BOOL, K_STRMAP, K_STRLIST, K_SECTION };

struct field {
    const char *name;
    enum kind kind;
    size_t offset;
    int64_t min, max;            /* K_INT */
    const struct field *section; /* K_SECTION */
};

#define STR(n, m)                                                                                  \
    {                                                                                              \
        n, K_STRING, offsetof(struct config, m), 0, 0, NULL                                        \
    }
#define INT(n, m, lo, hi)                                                                          \
    {                                                                                              \
        n, K_INT, offsetof(struct config, m), lo, hi, NULL                                         \
    }
#define BOOL(n, m)                                                                                 \
    {                                                                                              \
        n, K_BOOL, offsetof(struct config, m), 0, 0, NULL                                          \
    }

static const struct field opa_fields[] = {
    STR("url", opa.url),
    STR("path", opa.path),
    STR("bearer_token_file", opa.bearer_token_file),
    STR("ca_file", opa.ca_file),
    STR("client_cert", opa.client_cert),
    STR("client_key", opa.client_key),
    INT("connect_timeout_ms", opa.connect_timeout_ms, 1, 600000),
    INT("timeout_ms", opa.timeout_ms, 1, 600000),
    INT("max_response_bytes", opa.max_response_bytes, 1024, 1 << 30),
    INT("retries", opa.retries, 0, 10),
    BOOL("fail_open", opa.fail_open),
    INT("server_uid", opa.server_uid, 0, 4294967294),
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field audit_fields[] = {
    STR("path", audit_path),
    BOOL("syslog", audit_syslog),
    STR("syslog_socket", audit_syslog_socket),
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field metrics_fields[] = {
    STR("textfile", metrics_textfile),
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field monitor_fields[] = {
    INT("grace_s", monitor.grace_s, 0, 3600),
    INT("fail_grace_s", monitor.fail_grace_s, 0, 86400),
    INT("heartbeat_s", monitor.heartbeat_s, 0, 86400),
    INT("restart_max", monitor.restart_max, 0, 1000),
    INT("restart_backoff_ms", monitor.restart_backoff_ms, 0, 3600000),
    STR("cgroup", monitor.cgroup),
    STR("systemd_slice", monitor.systemd_slice),
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field container_fields[] = {
    STR("runtime", container.runtime),
    STR("podman_storage", container.podman_storage),
    {NULL, 0, 0, 0, 0, NULL},
};

static const struct field identity_fields[] = {
    STR("key", identity.key),
    STR("issuer", identity.issuer),
    STR("trust_domain", identity.trust_domain),
    {NULL, 0, 0, 0, 0, NULL},
};
static const struct field top_fields[] = {
    {"labels", K_STRMAP, offsetof(struct config, labels), 0, 0, NULL},
    STR("policy", policy),
    {"opa", K_SECTION, 0, 0, 0, opa_fields},
    {"audit", K_SECTION, 0, 0, 0, audit_fields},
    STR("keystore", keystore),
    {"trusted_signers", K_STRLIST, offsetof(struct config, trusted_signers), 0, 0, NULL},
    BOOL("require_sealed", require_sealed),
    BOOL("hash_cache", hash_cache),
    {"trusted_image_signers", K_STRLIST, offsetof(struct config, trusted_image_signers), 0, 0,
     NULL},
    BOOL("require_signed_images", require_signed_images),
    {"monitor", K_SECTION, 0, 0, 0, monitor_fields},
    {"container", K_SECTION, 0, 0, 0, container_fields},
    {"metrics", K_SECTION, 0, 0, 0, metrics_fields},
    {"identity", K_SECTION, 0, 0, 0, identity_fields},
    {NULL, 0, 0, 0, 0, NULL},
};

static void set_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->opa.path = xstrdup("tether/decision");
    cfg->opa.connect_timeout_ms = 500;
    cfg->opa.timeout_ms = 2000;
    cfg->opa.max_response_bytes = 1 << 20;
    cfg->opa.retries = 1;
    cfg->opa.server_uid = -1;
    cfg->audit_path = xstrdup(AUDIT_DEFAULT_PATH);
    cfg->audit_syslog_socket = xstrdup(SYSLOG_SOCKET_DEFAULT);
    cfg->keystore = xstrdup("/etc/tether/keys");
    cfg->hash_cache = true;
    cfg->labels = cJSON_CreateObject();
    cfg->trusted_signers = cJSON_CreateArray();
    cfg->trusted_image_signers = cJSON_CreateArray();
    cfg->monitor.grace_s = 5;
    cfg->monitor.fail_grace_s = 30;
    cfg->monitor.restart_max = 3;
    cfg->monitor.restart_backoff_ms = 1000;
    cfg->container.podman_storage = xstrdup(PODMAN_STORAGE_DEFAULT);
}

static int apply(const struct field *fields, const cJSON *obj, const char *prefix,
                 struct config *cfg, tether_error_t *err)
{
    const cJSON *item;
    cJSON_ArrayForEach (item, obj) {
        /* Duplicate keys are refused: which one wins is a guess between two readers. */
        for (const cJSON *prev = obj->child; prev != item; prev = prev->next)
            if (strcmp(prev->string, item->string) == 0)
                return error_set(err, 0, "`%s%s` is given twice", prefix, item->string);

        const struct field *f = fields;
        while (f->name != NULL && strcmp(f->name, item->string) != 0)
            f++;
        if (f->name == NULL)
            return error_set(err, 0, "unknown key `%s%s`", prefix, item->string);

        void *slot = (char *)cfg + f->offset;
        int64_t v;
        switch (f->kind) {
        case K_STRING:
            if (!cJSON_IsString(item))
                return error_set(err, 0, "`%s%s` must be a string, not %s", prefix, f->name,
                                 json_type_name(item));
            free(*(char **)slot);
            *(char **)slot = xstrdup(item->valuestring);
            break;
        case K_INT:
            if (!json_get_int(item, f->min, f->max, &v))
                return error_set(err, 0, "`%s%s` must be an integer from %lld to %lld", prefix,
                                 f->name, (long long)f->min, (long long)f->max);
            *(int64_t *)slot = v;
            break;
        case K_BOOL:
            if (!cJSON_IsBool(item))
                return error_set(err, 0, "`%s%s` must be true or false, not %s", prefix, f->name,
                                 json_type_name(item));
            *(bool *)slot = cJSON_IsTrue(item);
            break;
        case K_STRMAP:
        case K_STRLIST: {
            bool map = f->kind == K_STRMAP;
            if (map ? !cJSON_IsObject(item) : !cJSON_IsArray(item))
                return error_set(err, 0, "`%s%s` must be %s, not %s", prefix, f->name,
                                 map ? "an object of strings" : "an array of strings",
                                 json_type_name(item));
            const cJSON *e;
            cJSON_ArrayForEach (e, item) {
                if (map) {
                    for (const cJSON *prev = item->child; prev != e; prev = prev->next)
                        if (strcmp(prev->string, e->string) == 0)
                            return error_set(err, 0, "`%s%s.%s` is given twice", prefix, f->name,
                                             e->string);
                    if (!measure_label_key_valid(e->string, strlen(e->string)))
                        return error_set(err, 0,
                                         "`%s%s.%s`: a key may hold only letters, digits and ._/-",
                                         prefix, f->name, e->string);
                }
                if (!cJSON_IsString(e))
                    return map ? error_set(err, 0, "`%s%s.%s` must be a string, not %s", prefix,
                                           f->name, e->string, json_type_name(e))
                               : error_set(err, 0, "`%s%s` must hold only strings", prefix,
                                           f->name);
            }
            cJSON_Delete(*(cJSON **)slot);
            *(cJSON **)slot = cJSON_Duplicate(item, true);
            break;
        }
        case K_SECTION: {
            if (!cJSON_IsObject(item))
                return error_set(err, 0, "`%s%s` must be an object, not %s", prefix, f->name,
                                 json_type_name(item));
            cleanup_free char *sub = xasprintf("%s%s.", prefix, f->name);
            if (apply(f->section, item, sub, cfg, err) < 0)
                return -1;
            break;
        }
        }
    }
    return 0;
}

/* A unit name as systemd's unit_name_is_valid() takes it, for a slice. */
static bool slice_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n <= 6 || n > 255 || strcmp(s + n - 6, ".slice") != 0)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\") == n;
}

int config_parse(const char *name, const char *text, size_t len, struct config *cfg,
                 tether_error_t *err)
{
    set_defaults(cfg);
    cfg->path = xstrdup(name);
    cleanup_json cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "config `%s`", name);
    if (!cJSON_IsObject(doc))
        return error_set(err, 0, "config `%s`: the top level must be an object, not %s", name,
                         json_type_name(doc));
    if (apply(top_fields, doc, "", cfg, err) < 0)
        return error_wrap(err, "config `%s`", name);
    const char *rt = cfg->container.runtime;
    if (rt != NULL && strcmp(rt, "podman") != 0 && strcmp(rt, "cri-o") != 0 &&
        strcmp(rt, "runc") != 0)
        return error_set(err, 0,
                         "config `%s`: `container.runtime` must be \"podman\", \"cri-o\" or "
                         "\"runc\", not \"%s\"",
                         name, rt);
    const char *cg = cfg->monitor.cgroup;
    if (cg != NULL && strcmp(cg, "auto") != 0 && strcmp(cg, "required") != 0)
        return error_set(err, 0,
                         "config `%s`: `monitor.cgroup` must be \"auto\" or \"required\", not "
                         "\"%s\"",
                         name, cg);
    cfg->monitor.cgroup_required = cg != NULL && strcmp(cg, "required") == 0;
    if (cfg->monitor.systemd_slice != NULL && !slice_name_valid(cfg->monitor.systemd_slice))
        return error_set(err, 0,
                         "config `%s`: `monitor.systemd_slice` must be a systemd slice name "
                         "(letters, digits and \":-_.\\\", ending in \".slice\"), not \"%s\"",
                         name, cfg->monitor.systemd_slice);
    /* Paths that tether writes to or sends to as root: relative ones would depend on where
     * it was started. */
    if (cfg->audit_syslog_socket[0] != '/' ||
        strlen(cfg->audit_syslog_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return error_set(err, 0,
                         "config `%s`: `audit.syslog_socket` must be an absolute path of at most "
                         "%zu bytes",
                         name, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    const char *tf = cfg->metrics_textfile;
    if (tf != NULL && (tf[0] != '/' || strlen(tf) < 7 || strcmp(tf + strlen(tf) - 5, ".prom") != 0))
        return error_set(err, 0,
                         "config `%s`: `metrics.textfile` must be an absolute path ending in "
                         "\".prom\" (node_exporter's textfile collector reads only those)",
                         name);
    const char *ps = cfg->container.podman_storage;
    if (ps[0] != '/')
        return error_set(err, 0, "config `%s`: `container.podman_storage` must be an absolute path",
                         name);
    return 0;
}

int config_load(const char *path, struct config *cfg, tether_error_t *err)
{
    bool explicit = true;
    if (path == NULL)
        path = getenv("TETHER_CONFIG");
    if (path == NULL || *path == '\0') {
        path = CONFIG_DEFAULT_PATH;
        explicit = false;
    }

    /* The file decides what tether trusts: it must be root's (see trust.h). */
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_error tether_error_t read_err = NULL;
    cleanup_close int fd = trust_open(path, 0, &read_err);
    if (fd < 0 || read_fd(fd, CONFIG_MAX_BYTES, &text, &len, &read_err) < 0) {
        set_defaults(cfg);
        if (fd < 0 && !explicit && read_err->code == ENOENT)
            return 0;
        if (fd >= 0)
            return error_set(err, 0, "config: `%s`: %s", path, read_err->msg);
        return error_set(err, 0, "config: %s", read_err->msg);
    }
    if (config_parse(path, text, len, cfg, err) < 0)
        return -1;
    if (!cfg->hash_cache) /* for this process, from now on */
        measure_hashcache_disable();
    return 0;
}

void config_clear(struct config *cfg)
{
    free(cfg->path);
    cJSON_Delete(cfg->labels);
    free(cfg->policy);
    free(cfg->opa.url);
    free(cfg->opa.path);
    free(cfg->opa.bearer_token_file);
    free(cfg->opa.ca_file);
    free(cfg->opa.client_cert);
    free(cfg->opa.client_key);
    free(cfg->audit_path);
    free(cfg->audit_syslog_socket);
    free(cfg->metrics_textfile);
    free(cfg->keystore);
    cJSON_Delete(cfg->trusted_signers);
    free(cfg->monitor.cgroup);
    free(cfg->monitor.systemd_slice);
    cJSON_Delete(cfg->trusted_image_signers);
    free(cfg->container.runtime);
    free(cfg->container.podman_storage);
    free(cfg->identity.key);
    free(cfg->identity.issuer);
    free(cfg->identity.trust_domain);
    memset(cfg, 0, sizeof *cfg);
}

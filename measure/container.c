/* The container section of the input document, from an OCI bundle's config.json and the
 * runtime's state (OCI runtime spec: config.md, runtime.md "State"): pure parsers over text,
 * and the one reader of a bundle's config.json. */
#define _GNU_SOURCE
#include <string.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/trust.h"
#include "../supervisor/core/util.h"
#include "measure.h"

int measure_parse_oci_state(const char *text, size_t len, cJSON **out, tether_error_t *err)
{
    cleanup_json cJSON *st = NULL;
    if (json_parse(text, len, &st, err) < 0)
        return error_wrap(err, "container state");
    if (!cJSON_IsObject(st))
        return error_set(err, 0, "container state: not a JSON object");
    static const char *const strings[] = {"ociVersion", "id", "status", "bundle"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, strings[i]);
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
            return error_set(err, 0, "container state: `%s` must be a non-empty string",
                             strings[i]);
    }
    if (cJSON_GetObjectItemCaseSensitive(st, "bundle")->valuestring[0] != '/')
        return error_set(err, 0, "container state: `bundle` must be an absolute path");
    int64_t pid;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(st, "pid");
    if (p != NULL && !json_get_int(p, 0, INT32_MAX, &pid))
        return error_set(err, 0, "container state: `pid` must be a process id");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(st, "annotations");
    if (a != NULL && !cJSON_IsObject(a))
        return error_set(err, 0, "container state: `annotations` must be an object");
    *out = steal_pointer(&st);
    return 0;
}

static cJSON *strings_or_empty(const cJSON *list)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *e;
    cJSON_ArrayForEach (e, list)
        if (cJSON_IsString(e))
            cJSON_AddItemToArray(out, cJSON_CreateString(e->valuestring));
    return out;
}

#define ANNOTATIONS_MAX 1024

/* measure_parse_oci_config, and the parsed config for the caller (with keep). */
static int parse_config(const char *text, size_t len, const char *bundle, const cJSON *state,
                        const struct measure_image_records *rec, cJSON **out, cJSON **keep,
                        tether_error_t *err)
{
    cleanup_json cJSON *cfg = NULL;
    if (json_parse(text, len, &cfg, err) < 0)
        return error_wrap(err, "config.json");
    if (!cJSON_IsObject(cfg))
        return error_set(err, 0, "config.json: not a JSON object");
    const cJSON *proc = cJSON_GetObjectItemCaseSensitive(cfg, "process");
    const cJSON *root = cJSON_GetObjectItemCaseSensitive(cfg, "root");
    if (!cJSON_IsObject(root) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "path")))
        return error_set(err, 0, "config.json: `root.path` must be a string");
    if (proc != NULL && !cJSON_IsObject(proc))
        return error_set(err, 0, "config.json: `process` must be an object");
    const cJSON *linux_ = cJSON_GetObjectItemCaseSensitive(cfg, "linux");
    /* The state's annotations are merged over the config's by name, a search each: bounded,
     * or tens of thousands (the image's to choose) take seconds at every look. */
    if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cfg, "annotations")) >
            ANNOTATIONS_MAX ||
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(state, "annotations")) >
            ANNOTATIONS_MAX)
        return error_set(err, 0, "config.json or the state: more than %d annotations",
                         ANNOTATIONS_MAX);

    char sha[SHA256_HEX_LEN + 1];
    sha256_hex(text, len, sha);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(
        c, "id",
        json_string_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(state, "id"))));
    cJSON_AddStringToObject(c, "bundle", bundle);
    cJSON_AddStringToObject(c, "config_sha256", sha);
    const char *rp = cJSON_GetObjectItemCaseSensitive(root, "path")->valuestring;
    cleanup_free char *rootpath = rp[0] == '/' ? xstrdup(rp) : xasprintf("%s/%s", bundle, rp);
    cJSON_AddStringToObject(c, "root", rootpath);
    cJSON_AddBoolToObject(c, "root_readonly",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "readonly")));

    /* Annotations: the config's, then the runtime state's over them. */
    cJSON *ann = cJSON_CreateObject();
    const cJSON *a;
    cJSON_ArrayForEach (a, cJSON_GetObjectItemCaseSensitive(cfg, "annotations"))
        if (cJSON_IsString(a))
            cJSON_AddStringToObject(ann, a->string, a->valuestring);
    cJSON_ArrayForEach (a, cJSON_GetObjectItemCaseSensitive(state, "annotations")) {
        if (cJSON_IsString(a)) {
            cJSON_DeleteItemFromObjectCaseSensitive(ann, a->string);
            cJSON_AddStringToObject(ann, a->string, a->valuestring);
        }
    }
    cJSON *image, *claimed;
    measure_image_identity(ann, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(state, "id")),
                           rec, &image, &claimed);
    cJSON_AddItemToObject(c, "image", image);
    cJSON_AddItemToObject(c, "claimed", claimed);
    cJSON_AddItemToObject(c, "annotations", ann);

    cJSON *p = cJSON_AddObjectToObject(c, "process");
    cJSON_AddItemToObject(p, "args",
                          strings_or_empty(cJSON_GetObjectItemCaseSensitive(proc, "args")));
    /* Environment variable names only, as for a plain workload: values are often secrets. */
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(proc, "env");
    const char **entries = xcalloc((size_t)cJSON_GetArraySize(env) + 1, sizeof *entries);
    size_t n_env = 0;
    const cJSON *e;
    cJSON_ArrayForEach (e, env)
        if (cJSON_IsString(e))
            entries[n_env++] = e->valuestring;
    bool truncated;
    cJSON_AddItemToObject(p, "env_names", measure_env_names(entries, n_env, &truncated));
    cJSON_AddBoolToObject(p, "env_truncated", truncated);
    free(entries);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(proc, "user");
    cJSON *u = cJSON_AddObjectToObject(p, "user");
    int64_t v;
    cJSON_AddItemToObject(
        u, "uid",
        json_get_int(cJSON_GetObjectItemCaseSensitive(user, "uid"), 0, UINT32_MAX, &v)
            ? cJSON_CreateNumber((double)v)
            : cJSON_CreateNull());
    cJSON_AddItemToObject(
        u, "gid",
        json_get_int(cJSON_GetObjectItemCaseSensitive(user, "gid"), 0, UINT32_MAX, &v)
            ? cJSON_CreateNumber((double)v)
            : cJSON_CreateNull());
    cJSON *caps = cJSON_AddObjectToObject(p, "capabilities");
    static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
                                       "ambient"};
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(proc, "capabilities");
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cJSON_AddItemToObject(caps, sets[i],
                              strings_or_empty(cJSON_GetObjectItemCaseSensitive(pc, sets[i])));
    cJSON_AddBoolToObject(p, "no_new_privs",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "noNewPrivileges")));
    cJSON_AddItemToObject(
        p, "cwd",
        json_string_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(proc, "cwd"))));

    cJSON *ns = cJSON_AddArrayToObject(c, "namespaces");
    const cJSON *n;
    cJSON_ArrayForEach (n, cJSON_GetObjectItemCaseSensitive(linux_, "namespaces")) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(n, "type"));
        if (type != NULL)
            cJSON_AddItemToArray(ns, cJSON_CreateString(type));
    }
    cJSON_AddBoolToObject(c, "seccomp",
                          cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(linux_, "seccomp")));
    cJSON_AddItemToObject(
        c, "readonly_paths",
        strings_or_empty(cJSON_GetObjectItemCaseSensitive(linux_, "readonlyPaths")));
    cJSON_AddItemToObject(
        c, "masked_paths",
        strings_or_empty(cJSON_GetObjectItemCaseSensitive(linux_, "maskedPaths")));
    cJSON *mounts = cJSON_AddArrayToObject(c, "mounts");
    const cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItemCaseSensitive(cfg, "mounts")) {
        cJSON *mm = cJSON_CreateObject();
        static const char *const mf[] = {"destination", "type", "source"};
        for (size_t i = 0; i < 3; i++)
            cJSON_AddItemToObject(mm, mf[i],
                                  json_string_or_null(cJSON_GetStringValue(
                                      cJSON_GetObjectItemCaseSensitive(m, mf[i]))));
        cJSON_AddItemToObject(mm, "options",
                              strings_or_empty(cJSON_GetObjectItemCaseSensitive(m, "options")));
        cJSON_AddItemToArray(mounts, mm);
    }
    *out = c;
    if (keep != NULL)
        *keep = steal_pointer(&cfg);
    return 0;
}

int measure_parse_oci_config(const char *text, size_t len, const char *bundle, const cJSON *state,
                             const struct measure_image_records *rec, cJSON **out,
                             tether_error_t *err)
{
    return parse_config(text, len, bundle, state, rec, out, NULL, err);
}

/* container.process.exe, or null and exe_error: the program the runtime will execute. */
static void entrypoint_add(cJSON *c, const cJSON *cfg, const cJSON *state)
{
    const cJSON *proc = cJSON_GetObjectItemCaseSensitive(cfg, "process");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(proc, "args");
    const char *cmd =
        cJSON_IsArray(args) ? cJSON_GetStringValue(cJSON_GetArrayItem(args, 0)) : NULL;
    /* The runtime sets the variables in order: the last PATH is the one it searches. */
    const char *search = NULL;
    const cJSON *e;
    cJSON_ArrayForEach (e, cJSON_GetObjectItemCaseSensitive(proc, "env"))
        if (cJSON_IsString(e) && strncmp(e->valuestring, "PATH=", 5) == 0)
            search = e->valuestring + 5;
    int64_t pid = 0;
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(state, "pid"), 1, INT32_MAX, &pid))
        pid = 0;
    cJSON *p = cJSON_GetObjectItemCaseSensitive(c, "process");
    cleanup_free char *why = NULL;
    int64_t uid = 0; /* the OCI default */
    const cJSON *u =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(proc, "user"), "uid");
    if (u != NULL && !json_get_int(u, 0, UINT32_MAX, &uid))
        uid = -1; /* not a uid: nobody the lookup could be made for */
    cJSON *exe = measure_entrypoint_collect(
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "root")), (pid_t)pid, cmd, search,
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(proc, "cwd")), uid, &why);
    cJSON_AddItemToObject(p, "exe", exe ? exe : cJSON_CreateNull());
    cJSON_AddItemToObject(p, "exe_error", json_string_or_null(why));
}

int measure_container_collect(const char *bundle, const cJSON *state,
                              const struct measure_container_sources *src, cJSON **out,
                              tether_error_t *err)
{
    /* The runtime reads config.json again after the decision: only a bundle that root alone
     * may write makes the file judged the file that runs.  The walk opens config.json from
     * the bundle's directory descriptor, and refuses it as a link (see trust.h). */
    cleanup_free char *path = xasprintf("%s/config.json", bundle);
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_close int fd = trust_open(path, 0, err);
    if (fd < 0)
        return error_wrap(err, "bundle");
    if (read_fd(fd, 4 << 20, &text, &len, err) < 0)
        return error_wrap(err, "bundle: `%s`", path);
    /* The records are looked up by the container's id, which only a runtime's state gives. */
    cleanup_json cJSON *containers = NULL;
    cleanup_json cJSON *images = NULL;
    if (cJSON_GetObjectItemCaseSensitive(state, "id") != NULL && src->podman_storage != NULL &&
        measure_image_records_read(src->podman_storage, &containers, &images, err) < 0)
        return error_wrap(err, "container storage");
    struct measure_image_records rec = {
        .containers = containers,
        .images = images,
        .crio = src->runtime != NULL && strcmp(src->runtime, "cri-o") == 0,
    };
    cleanup_json cJSON *cfg = NULL;
    if (parse_config(text, len, bundle, state, &rec, out, &cfg, err) < 0)
        return -1;
    entrypoint_add(*out, cfg, state);
    return 0;
}

/* The decision contract: validation of what an engine returned, and its normal form. */
#define _GNU_SOURCE
#include <openssl/crypto.h>
#include <stdarg.h>
#include <string.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "policy.h"

/* A key released by value leaves no copy in the heap behind it. */
static void wipe_key(const cJSON *doc)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(doc, "key");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(key, "value");
    if (cJSON_IsString(value))
        OPENSSL_cleanse(value->valuestring, strlen(value->valuestring));
}

void decision_clear(struct decision *d)
{
    for (size_t i = 0; i < d->n_reasons; i++)
        free(d->reasons[i]);
    free(d->reasons);
    secret_free(d->key_value);
    wipe_key(d->doc);
    cJSON_Delete(d->doc);
    cJSON_Delete(d->engine_info);
    confine_clear(&d->confinement);
    memset(d, 0, sizeof *d);
    d->ttl_s = -1;
}

static void add_reason(struct decision *d, char *reason)
{
    d->reasons = xrealloc(d->reasons, (d->n_reasons + 1) * sizeof *d->reasons);
    d->reasons[d->n_reasons++] = reason;
}

void decision_deny(struct decision *out, const char *fmt, ...)
{
    decision_clear(out);
    va_list ap;
    va_start(ap, fmt);
    add_reason(out, xvasprintf(fmt, ap));
    va_end(ap);
}

static const char *const on_drift_actions[] = {"log", "kill", "stop", "restart", NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* Returns NULL when valid, or the reason it is not. */
static char *check_monitor(const cJSON *m)
{
    if (!cJSON_IsObject(m))
        return xasprintf("`monitor` must be an object, not %s", json_type_name(m));
    const cJSON *f;
    cJSON_ArrayForEach (f, m) {
        int64_t v;
        if (strcmp(f->string, "interval_ms") == 0) {
            if (!json_get_int(f, 1, 86400000, &v))
                return xasprintf("`monitor.interval_ms` must be an integer from 1 to 86400000");
        } else if (strcmp(f->string, "on_drift") == 0) {
            if (!cJSON_IsString(f) || !in_list(f->valuestring, on_drift_actions))
                return xasprintf("`monitor.on_drift` must be one of log, kill, stop, restart");
        } else if (strcmp(f->string, "prevent_exec") == 0) {
            if (!cJSON_IsBool(f))
                return xasprintf("`monitor.prevent_exec` must be true or false");
        } else if (strcmp(f->string, "exec_timeout_ms") == 0) {
            if (!json_get_int(f, 1, 60000, &v))
                return xasprintf("`monitor.exec_timeout_ms` must be an integer from 1 to 60000");
        } else if (strcmp(f->string, "on_main_exit") == 0) {
            if (!cJSON_IsString(f) ||
                (strcmp(f->valuestring, "kill") != 0 && strcmp(f->valuestring, "supervise") != 0))
                return xasprintf("`monitor.on_main_exit` must be kill or supervise");
        } else if (strcmp(f->string, "watch") == 0) {
            if (!json_is_list(f))
                return xasprintf("`monitor.watch` must be an array of paths");
            const cJSON *p;
            cJSON_ArrayForEach (p, f) {
                if (!cJSON_IsString(p) || p->valuestring[0] != '/')
                    return xasprintf("`monitor.watch` must hold absolute paths");
            }
        } else {
            return xasprintf("`monitor.%s` is not a known field", f->string);
        }
    }
    return NULL;
}

static char *check_key(const cJSON *k)
{
    if (!cJSON_IsObject(k))
        return xasprintf("`key` must be an object or null, not %s", json_type_name(k));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "id");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(k, "value");
    if ((id == NULL) == (value == NULL))
        return xasprintf("`key` must have exactly one of `id` and `value`");
    if (id != NULL && (!cJSON_IsString(id) || id->valuestring[0] == '\0'))
        return xasprintf("`key.id` must be a non-empty string");
    /* The value is never quoted back: it may be a secret. */
    if (value != NULL && !cJSON_IsString(value))
        return xasprintf("`key.value` must be a string (base64, or a PEM private key)");
    return NULL;
}

/* An empty Lua table arrives as {}; where the contract has a list, make it the []
 * that it means, so that every reader sees one form. */
static void normalise_list(cJSON *parent, const char *field)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(parent, field);
    if (cJSON_IsObject(item) && item->child == NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(parent, field, cJSON_CreateArray());
}

static void normalise(cJSON *doc)
{
    normalise_list(doc, "reasons");
    cJSON *confine = cJSON_GetObjectItemCaseSensitive(doc, "confine");
    normalise_list(confine, "capabilities");
    normalise_list(confine, "namespaces");
    cJSON *syscalls = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(confine, "seccomp"), "syscalls");
    for (cJSON *list = syscalls ? syscalls->child : NULL, *next; list != NULL; list = next) {
        next = list->next; /* list itself may be replaced */
        normalise_list(syscalls, list->string);
    }
    normalise_list(cJSON_GetObjectItemCaseSensitive(doc, "monitor"), "watch");
}

/* key.value: base64 of the key's bytes, or (for an encrypted image) a PEM private key as it
 * is, kept byte for byte. */
static int secret_from_key_value(const char *v, struct secret **out, tether_error_t *err)
{
    static const char pem[] = "-----BEGIN ";
    if (strncmp(v, pem, sizeof pem - 1) != 0)
        return secret_from_base64(v, out, err);
    size_t n = strlen(v);
    if (secret_new(n, out, err) < 0)
        return -1;
    memcpy((*out)->data, v, n);
    return 0;
}

/* Fills d from doc, or returns the reason doc is not a valid decision. */
static char *parse(const cJSON *doc, struct decision *d)
{
    if (!cJSON_IsObject(doc))
        return xasprintf("the decision must be an object, not %s", json_type_name(doc));

    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(doc, "allow");
    if (!cJSON_IsBool(allow))
        return xasprintf("`allow` must be a boolean, not %s", json_type_name(allow));

    const cJSON *reasons = cJSON_GetObjectItemCaseSensitive(doc, "reasons");
    if (reasons != NULL && !cJSON_IsNull(reasons)) {
        if (!json_is_list(reasons))
            return xasprintf("`reasons` must be an array of strings, not %s",
                             json_type_name(reasons));
        size_t i = 0;
        const cJSON *r;
        cJSON_ArrayForEach (r, reasons) {
            if (!cJSON_IsString(r))
                return xasprintf("`reasons[%zu]` must be a string, not %s", i, json_type_name(r));
            add_reason(d, xstrdup(r->valuestring));
            i++;
        }
    }

    const cJSON *key = cJSON_GetObjectItemCaseSensitive(doc, "key");
    if (key != NULL && !cJSON_IsNull(key)) {
        char *why = check_key(key);
        if (why)
            return why;
        d->key = key;
        /* Decoded into secret memory at once, and the base64 wiped: the document lives as
         * long as the workload does. */
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(key, "value");
        if (value != NULL) {
            cleanup_error tether_error_t err = NULL;
            int rc = secret_from_key_value(value->valuestring, &d->key_value, &err);
            wipe_key(doc);
            if (rc < 0)
                return xasprintf("`key.value`: %s", err->msg);
        }
    }

    const cJSON *confine = cJSON_GetObjectItemCaseSensitive(doc, "confine");
    char *why = confine_parse(confine, &d->confinement);
    if (why)
        return why;
    if (d->confinement.given)
        d->confine = confine;

    const cJSON *monitor = cJSON_GetObjectItemCaseSensitive(doc, "monitor");
    if (monitor != NULL && !cJSON_IsNull(monitor)) {
        why = check_monitor(monitor);
        if (why)
            return why;
        d->monitor = monitor;
    }

    const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(doc, "ttl_s");
    if (ttl != NULL && !cJSON_IsNull(ttl) && !json_get_int(ttl, 0, INT32_MAX, &d->ttl_s))
        return xasprintf("`ttl_s` must be a non-negative integer");

    d->allow = cJSON_IsTrue(allow);
    return NULL;
}

void decision_parse(cJSON *doc, struct decision *out)
{
    decision_clear(out);
    char *why = parse(doc, out);
    if (why != NULL) {
        decision_deny(out, "invalid decision: %s", why);
        free(why);
        wipe_key(doc);
        cJSON_Delete(doc);
        return;
    }
    normalise(doc);
    out->doc = doc;
    if (!out->allow && out->n_reasons == 0)
        add_reason(out, xstrdup("the policy gave no reason"));
}

cJSON *decision_to_json(const struct decision *d)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "allow", d->allow);
    cJSON *reasons = cJSON_AddArrayToObject(j, "reasons");
    for (size_t i = 0; i < d->n_reasons; i++)
        cJSON_AddItemToArray(reasons, cJSON_CreateString(d->reasons[i]));
    /* A released key is shown by its id only: eval output lands in terminals and CI logs. */
    if (d->key != NULL) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(d->key, "id");
        cJSON *k = cJSON_AddObjectToObject(j, "key");
        if (id != NULL)
            cJSON_AddStringToObject(k, "id", id->valuestring);
        else
            cJSON_AddStringToObject(k, "value", "(redacted)");
    } else {
        cJSON_AddNullToObject(j, "key");
    }
    cJSON_AddItemToObject(j, "confine",
                          d->confine ? cJSON_Duplicate(d->confine, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "monitor",
                          d->monitor ? cJSON_Duplicate(d->monitor, true) : cJSON_CreateNull());
    if (d->ttl_s >= 0)
        cJSON_AddNumberToObject(j, "ttl_s", (double)d->ttl_s);
    else
        cJSON_AddNullToObject(j, "ttl_s");
    return j;
}

char *decision_reasons_joined(const struct decision *d)
{
    size_t len = 1;
    for (size_t i = 0; i < d->n_reasons; i++)
        len += strlen(d->reasons[i]) + 2;
    char *s = xmalloc(len), *p = s;
    *p = '\0';
    for (size_t i = 0; i < d->n_reasons; i++)
        p = stpcpy(stpcpy(p, i ? "; " : ""), d->reasons[i]);
    return s;
}

void policy_decide(struct policy *p, const cJSON *input, struct decision *out)
{
    cleanup_error tether_error_t err = NULL;
    cJSON *doc = NULL, *info = NULL;
    decision_clear(out);
    uint64_t t0 = time_mono_ns();
    if (p->ops->evaluate(p, input, &doc, &info, &err) < 0) {
        decision_deny(out, "policy error: %s", err->msg);
        out->unreachable = err->code == POLICY_UNREACHABLE || err->code == POLICY_NO_ANSWER;
        out->connected = err->code == POLICY_NO_ANSWER;
    } else {
        decision_parse(doc, out);
    }
    out->engine_info = info;
    out->elapsed_us = (time_mono_ns() - t0) / 1000;
}

void policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    free(p->source);
    p->ops->free(p);
}

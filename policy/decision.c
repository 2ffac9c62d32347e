/* The decision contract: validation of what an engine returned, and its normal form. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <string.h>

#include "../supervisor/core/base64.h"
#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "policy.h"

/* A key released by value leaves no copy in the heap behind it. */
static void wipe_key(const cJSON *doc)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(doc, "key");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(key, "value");
    if (cJSON_IsString(value))
        explicit_bzero(value->valuestring, strlen(value->valuestring));
    const cJSON *s;
    cJSON_ArrayForEach (s, cJSON_GetObjectItemCaseSensitive(doc, "secrets")) {
        value = cJSON_GetObjectItemCaseSensitive(s, "value");
        if (cJSON_IsString(value))
            explicit_bzero(value->valuestring, strlen(value->valuestring));
    }
}

void decision_clear(struct decision *d)
{
    for (size_t i = 0; i < d->n_reasons; i++)
        free(d->reasons[i]);
    free(d->reasons);
    secret_free(d->key_value);
    for (size_t i = 0; i < d->n_secrets; i++)
        secret_free(d->secrets[i].value);
    free(d->secrets);
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

static char *check_identity(const cJSON *id)
{
    if (!cJSON_IsObject(id))
        return xasprintf("`identity` must be an object or null, not %s", json_type_name(id));
    const cJSON *f;
    int64_t v;
    cJSON_ArrayForEach (f, id) {
        if (strcmp(f->string, "audience") == 0) {
            if (!cJSON_IsString(f) || f->valuestring[0] == '\0' || strlen(f->valuestring) > 256)
                return xasprintf("`identity.audience` must be a string of 1 to 256 bytes");
        } else if (strcmp(f->string, "ttl_s") == 0) {
            if (!json_get_int(f, 10, 86400, &v))
                return xasprintf("`identity.ttl_s` must be an integer from 10 to 86400");
        } else if (strcmp(f->string, "subject") == 0) {
            if (!cJSON_IsString(f) || f->valuestring[0] == '\0' || strlen(f->valuestring) > 1024)
                return xasprintf("`identity.subject` must be a string of 1 to 1024 bytes");
        } else {
            return xasprintf("`identity.%s` is not a known field", f->string);
        }
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(id, "audience")))
        return xasprintf("`identity.audience` is required");
    return NULL;
}

/* secrets: each {name, id} or {name, value}; values decoded into secret memory. */
static char *parse_secrets(const cJSON *list, struct decision *d)
{
    if (!json_is_list(list))
        return xasprintf("`secrets` must be an array, not %s", json_type_name(list));
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (n > DECISION_SECRETS_MAX)
        return xasprintf("`secrets` holds more than %d entries", DECISION_SECRETS_MAX);
    d->secrets = xcalloc(n ? n : 1, sizeof *d->secrets);
    const cJSON *s;
    cJSON_ArrayForEach (s, list) {
        size_t i = d->n_secrets;
        if (!cJSON_IsObject(s))
            return xasprintf("`secrets[%zu]` must be an object", i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "id");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(s, "value");
        if (cJSON_GetArraySize(s) != 2 || !cJSON_IsString(name) || (id == NULL) == (value == NULL))
            return xasprintf("`secrets[%zu]` must be {name, id} or {name, value}", i);
        if (!name_valid(name->valuestring, 64))
            return xasprintf("`secrets[%zu].name` must be a file name (letters, digits, ._-; "
                             "at most 64 bytes, not starting with .)",
                             i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->secrets[j].name, name->valuestring) == 0)
                return xasprintf("`secrets[%zu].name` `%s` is given twice", i, name->valuestring);
        if (id != NULL && (!cJSON_IsString(id) || !name_valid(id->valuestring, 200)))
            return xasprintf("`secrets[%zu].id` must be a key store name (letters, digits, ._-)",
                             i);
        d->secrets[i].name = name->valuestring;
        d->n_secrets++;
        if (id != NULL) {
            d->secrets[i].id = id->valuestring;
            continue;
        }
        /* The value is never quoted back: it is a secret. */
        cleanup_error tether_error_t err = NULL;
        if (!cJSON_IsString(value) ||
            strlen(value->valuestring) > base64_encoded_len(DECISION_SECRET_BYTES) ||
            secret_from_base64(value->valuestring, &d->secrets[i].value, &err) < 0)
            return xasprintf("`secrets[%zu].value` must be base64 of at most %u bytes", i,
                             DECISION_SECRET_BYTES);
    }
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
    normalise_list(doc, "secrets");
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

    const cJSON *identity = cJSON_GetObjectItemCaseSensitive(doc, "identity");
    if (identity != NULL && !cJSON_IsNull(identity)) {
        why = check_identity(identity);
        if (why)
            return why;
        d->identity = identity;
    }
    const cJSON *secrets = cJSON_GetObjectItemCaseSensitive(doc, "secrets");
    if (secrets != NULL && !cJSON_IsNull(secrets)) {
        why = parse_secrets(secrets, d);
        wipe_key(doc); /* the values are in secret memory now, or refused */
        if (why)
            return why;
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
    cJSON_AddItemToObject(j, "identity",
                          d->identity ? cJSON_Duplicate(d->identity, true) : cJSON_CreateNull());
    /* Secrets by name and id only: a value is never shown. */
    cJSON *secrets = cJSON_AddArrayToObject(j, "secrets");
    for (size_t i = 0; i < d->n_secrets; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", d->secrets[i].name);
        if (d->secrets[i].id != NULL)
            cJSON_AddStringToObject(e, "id", d->secrets[i].id);
        else
            cJSON_AddStringToObject(e, "value", "(redacted)");
        cJSON_AddItemToArray(secrets, e);
    }
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

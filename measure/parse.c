/* Pure parsers for measurement sources: text in, JSON out, no I/O beyond a given FILE*. */
#define _GNU_SOURCE
#include <ctype.h>
#include <string.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

/* os-release(5) follows shell quoting: ' and " quote; inside double quotes \ escapes only
 * $ " \ and `, outside quotes any character; inside single quotes nothing. */
static char *os_release_value(const char *v)
{
    size_t n = strlen(v);
    char *out = xmalloc(n + 1), *o = out;
    char quote = 0;
    for (const char *p = v; *p; p++) {
        if (quote == 0 && (*p == '"' || *p == '\'')) {
            quote = *p;
        } else if (quote != 0 && *p == quote) {
            quote = 0;
        } else if (*p == '\\' && p[1] != '\0' &&
                   (quote == 0 || (quote == '"' && strchr("$\"\\`", p[1]) != NULL))) {
            *o++ = *++p;
        } else if (quote == 0 && isspace((unsigned char)*p)) {
            break; /* unquoted white space ends the value */
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

cJSON *measure_parse_os_release(FILE *f)
{
    cJSON *obj = cJSON_CreateObject();
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        if (eq == NULL || eq == p)
            continue;
        *eq = '\0';
        bool valid = true;
        for (char *k = p; *k; k++)
            if (!(isalnum((unsigned char)*k) || *k == '_'))
                valid = false;
        if (!valid)
            continue;
        cleanup_free char *value = os_release_value(eq + 1);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, p); /* the last assignment wins */
        cJSON_AddStringToObject(obj, p, value);
    }
    return obj;
}

cJSON *measure_parse_cmdline(const char *s)
{
    cJSON *obj = cJSON_CreateObject();
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        /* One parameter: quotes group white space and are removed, as the kernel's
         * next_arg() does. */
        size_t n = strlen(p);
        cleanup_free char *param = xmalloc(n + 1);
        size_t len = 0;
        bool quoted = false;
        for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
            if (*p == '"')
                quoted = !quoted;
            else
                param[len++] = *p;
        }
        param[len] = '\0';
        if (strcmp(param, "--") == 0)
            break; /* the rest belongs to init */
        char *eq = strchr(param, '=');
        if (eq == param)
            continue;
        if (eq != NULL)
            *eq = '\0';
        cJSON_DeleteItemFromObjectCaseSensitive(obj, param);
        if (eq != NULL)
            cJSON_AddStringToObject(obj, param, eq + 1);
        else
            cJSON_AddTrueToObject(obj, param);
    }
    return obj;
}

const char *measure_parse_lockdown(const char *s)
{
    static const char *const modes[] = {"none", "integrity", "confidentiality"};
    const char *open = strchr(s, '[');
    const char *close = open != NULL ? strchr(open, ']') : NULL;
    if (close == NULL)
        return NULL;
    size_t len = (size_t)(close - open - 1);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strlen(modes[i]) == len && strncmp(open + 1, modes[i], len) == 0)
            return modes[i];
    return NULL;
}

int measure_parse_secure_boot(const unsigned char *data, size_t len)
{
    if (len != 5 || data[4] > 1)
        return -1;
    return data[4];
}

bool measure_label_key_valid(const char *key, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)key[i]) || (key[i] != '\0' && strchr("._/-", key[i]))))
            return false;
    return true;
}

int measure_parse_label(const char *kv, char **key, char **value, tether_error_t *err)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return error_set(err, 0, "label `%s` is not of the form key=value", kv);
    if (!measure_label_key_valid(kv, (size_t)(eq - kv)))
        return error_set(err, 0, "label key `%.*s` may hold only letters, digits and ._/-",
                         (int)(eq - kv), kv);
    *key = xstrndup(kv, (size_t)(eq - kv));
    *value = xstrdup(eq + 1);
    return 0;
}

struct env_name {
    const char *p;
    size_t len;
};

static int env_name_cmp(const void *a, const void *b)
{
    const struct env_name *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

cJSON *measure_env_names(const char *const env[], size_t n, bool *truncated)
{
    *truncated = false;
    struct env_name *names = xcalloc(n + 1, sizeof *names);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(env[i], '=');
        size_t len = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
        if (len > MEASURE_ENV_NAME_MAX) {
            *truncated = true; /* left out: cut short, it would be another name */
            continue;
        }
        names[kept++] = (struct env_name){env[i], len};
    }
    qsort(names, kept, sizeof *names, env_name_cmp);
    cJSON *out = cJSON_CreateArray();
    size_t emitted = 0;
    for (size_t i = 0; i < kept; i++) {
        if (i > 0 && env_name_cmp(&names[i - 1], &names[i]) == 0)
            continue;
        if (emitted == MEASURE_ENV_MAX) {
            *truncated = true;
            break;
        }
        cleanup_free char *name = xstrndup(names[i].p, names[i].len);
        cJSON_AddItemToArray(out, cJSON_CreateString(name));
        emitted++;
    }
    free(names);
    return out;
}

int measure_parse_shebang(const char *buf, size_t len, char **interp, char **arg)
{
    *interp = *arg = NULL;
    if (len < 2 || buf[0] != '#' || buf[1] != '!')
        return -1;
    /* As the kernel reads it (binfmt_script): the first line, within its buffer, blanks
     * around, the interpreter up to a blank, and the rest, trimmed, as one argument. */
    size_t end = 2;
    while (end < len && end < MEASURE_SHEBANG_MAX && buf[end] != '\n')
        end++;
    if (end >= MEASURE_SHEBANG_MAX || (end == len && len >= MEASURE_SHEBANG_MAX))
        return -1; /* a line the kernel would cut is not what it runs */
    size_t i = 2;
    while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    size_t start = i;
    while (i < end && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\0')
        i++;
    if (i == start)
        return -1;
    if (memchr(buf + start, '\0', end - start) != NULL)
        return -1;
    *interp = xstrndup(buf + start, i - start);
    while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    size_t stop = end;
    while (stop > i && (buf[stop - 1] == ' ' || buf[stop - 1] == '\t' || buf[stop - 1] == '\r'))
        stop--;
    if (stop > i)
        *arg = xstrndup(buf + i, stop - i);
    return 0;
}

/* The confine block: validated in full before anything is applied, so that an unknown
 * capability or system call is a deny that names it, not a half-confined start. */
#define _GNU_SOURCE
#include "confine.h"

#include <ctype.h>
#include <sched.h>
#include <string.h>

#include "../supervisor/core/capability.h"
#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/libseccomp.h"
#include "../supervisor/core/util.h"

const char *const confine_rlimit_names[RL_COUNT] = {"nofile", "nproc", "as",
                                                    "cpu",    "fsize", "core"};

static const struct {
    const char *name;
    unsigned long flag;
} namespaces[] = {
    {"pid", CLONE_NEWPID}, {"net", CLONE_NEWNET},  {"ipc", CLONE_NEWIPC},
    {"uts", CLONE_NEWUTS}, {"mount", CLONE_NEWNS}, {"cgroup", CLONE_NEWCGROUP},
};

static const char *const actions[] = {"allow", "errno", "kill", "log"};

void confine_clear(struct confine *c)
{
    free(c->rules);
    for (size_t i = 0; i < c->n_env_allow; i++)
        free(c->env_allow[i]);
    free(c->env_allow);
    for (size_t i = 0; i < c->n_env_set; i++)
        free(c->env_set[i]);
    free(c->env_set);
    memset(c, 0, sizeof *c);
}

int confine_cap_from_name(const char *name)
{
    char buf[64];
    if (strncasecmp(name, "cap_", 4) == 0)
        name += 4;
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof buf)
        return -1;
    for (size_t i = 0; i <= n; i++)
        buf[i] = (char)tolower((unsigned char)name[i]);
    return capability_from_name(buf);
}

/* A JSON list of strings; returns the reason when it is not one. */
static char *check_strings(const cJSON *list, const char *field)
{
    if (!json_is_list(list))
        return xasprintf("`confine.%s` must be an array of strings, not %s", field,
                         json_type_name(list));
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach (e, list) {
        if (!cJSON_IsString(e))
            return xasprintf("`confine.%s[%zu]` must be a string, not %s", field, i,
                             json_type_name(e));
        i++;
    }
    return NULL;
}

/* Appends "`name`" to a list of unknown names. */
static void note_unknown(char **list, const char *name)
{
    char *old = *list;
    *list = xasprintf("%s%s`%s`", old ? old : "", old ? ", " : "", name);
    free(old);
}

static char *parse_caps(const cJSON *list, struct confine *c)
{
    char *why = check_strings(list, "capabilities");
    if (why)
        return why;
    cleanup_free char *unknown = NULL;
    const cJSON *e;
    cJSON_ArrayForEach (e, list) {
        int v = confine_cap_from_name(e->valuestring);
        if (v < 0)
            note_unknown(&unknown, e->valuestring);
        else
            c->caps |= UINT64_C(1) << v;
    }
    if (unknown)
        return xasprintf("`confine.capabilities`: unknown capability %s", unknown);
    c->caps_given = true;
    return NULL;
}

static char *parse_user(const cJSON *u, struct confine *c)
{
    if (!cJSON_IsObject(u))
        return xasprintf("`confine.user` must be an object {uid, gid}, not %s", json_type_name(u));
    int64_t uid, gid;
    const cJSON *f;
    cJSON_ArrayForEach (f, u) {
        if (strcmp(f->string, "uid") != 0 && strcmp(f->string, "gid") != 0)
            return xasprintf("`confine.user.%s` is not a known field", f->string);
    }
    /* (uid_t)-1 means "unchanged" to setresuid(2): never a user. */
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(u, "uid"), 0, UINT32_MAX - 1, &uid))
        return xasprintf("`confine.user.uid` must be an integer from 0 to %u", UINT32_MAX - 1);
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(u, "gid"), 0, UINT32_MAX - 1, &gid))
        return xasprintf("`confine.user.gid` must be an integer from 0 to %u", UINT32_MAX - 1);
    c->user_given = true;
    c->uid = (uint32_t)uid;
    c->gid = (uint32_t)gid;
    return NULL;
}

static int action_from_name(const char *s)
{
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(s, actions[i]) == 0)
            return (int)i;
    return -1;
}

static char *parse_seccomp(const cJSON *s, struct confine *c)
{
    if (cJSON_IsString(s)) {
        if (strcmp(s->valuestring, "default") == 0)
            c->seccomp = CONFINE_SECCOMP_DEFAULT;
        else if (strcmp(s->valuestring, "unconfined") == 0)
            c->seccomp = CONFINE_SECCOMP_UNCONFINED;
        else
            return xasprintf("`confine.seccomp` must be \"default\", \"unconfined\" or a filter "
                             "object, not \"%s\"",
                             s->valuestring);
        return NULL;
    }
    if (!cJSON_IsObject(s))
        return xasprintf("`confine.seccomp` must be a string or an object, not %s",
                         json_type_name(s));

    const cJSON *f;
    cJSON_ArrayForEach (f, s) {
        if (strcmp(f->string, "default_action") != 0 && strcmp(f->string, "syscalls") != 0)
            return xasprintf("`confine.seccomp.%s` is not a known field", f->string);
    }
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(s, "default_action");
    int a = cJSON_IsString(def) ? action_from_name(def->valuestring) : -1;
    if (a < 0)
        return xasprintf("`confine.seccomp.default_action` must be one of allow, errno, kill, log");
    c->seccomp = CONFINE_SECCOMP_CUSTOM;
    c->seccomp_default = (enum confine_action)a;

    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(s, "syscalls");
    if (calls == NULL || cJSON_IsNull(calls))
        return NULL;
    if (!cJSON_IsObject(calls))
        return xasprintf("`confine.seccomp.syscalls` must be an object of lists, not %s",
                         json_type_name(calls));
    cleanup_error tether_error_t err = NULL;
    if (libseccomp_load(&err) < 0)
        return xasprintf("`confine.seccomp.syscalls`: %s", err->msg);
    cleanup_free char *unknown = NULL;
    cJSON_ArrayForEach (f, calls) {
        int act = action_from_name(f->string);
        if (act < 0)
            return xasprintf("`confine.seccomp.syscalls.%s`: the action must be one of allow, "
                             "errno, kill, log",
                             f->string);
        cleanup_free char *field = xasprintf("seccomp.syscalls.%s", f->string);
        char *why = check_strings(f, field);
        if (why)
            return why;
        const cJSON *name;
        cJSON_ArrayForEach (name, f) {
            /* Resolved for the native architecture: the filter is built for it alone. */
            int nr = sym_seccomp_syscall_resolve_name(name->valuestring);
            if (nr == __NR_SCMP_ERROR || nr < 0) {
                note_unknown(&unknown, name->valuestring);
                continue;
            }
            for (size_t i = 0; i < c->n_rules; i++)
                if (c->rules[i].nr == nr && c->rules[i].action != (enum confine_action)act)
                    return xasprintf("`confine.seccomp.syscalls`: `%s` is given two actions",
                                     name->valuestring);
            c->rules = xrealloc(c->rules, (c->n_rules + 1) * sizeof *c->rules);
            c->rules[c->n_rules++] = (struct confine_rule){nr, (enum confine_action)act};
        }
    }
    if (unknown)
        return xasprintf("`confine.seccomp.syscalls`: unknown system call %s", unknown);
    return NULL;
}

static char *parse_namespaces(const cJSON *list, struct confine *c)
{
    char *why = check_strings(list, "namespaces");
    if (why)
        return why;
    cleanup_free char *unknown = NULL;
    const cJSON *e;
    cJSON_ArrayForEach (e, list) {
        size_t i = 0;
        while (i < sizeof namespaces / sizeof namespaces[0] &&
               strcmp(namespaces[i].name, e->valuestring) != 0)
            i++;
        if (i == sizeof namespaces / sizeof namespaces[0])
            note_unknown(&unknown, e->valuestring);
        else
            c->namespaces |= namespaces[i].flag;
    }
    if (unknown)
        return xasprintf("`confine.namespaces`: unknown namespace %s (known: pid, net, ipc, uts, "
                         "mount, cgroup)",
                         unknown);
    return NULL;
}

/* A limit: an integer, "unlimited", or {"soft", "hard"} of those. */
static bool limit_value(const cJSON *v, uint64_t *out)
{
    int64_t n;
    if (cJSON_IsString(v) && strcmp(v->valuestring, "unlimited") == 0) {
        *out = UINT64_MAX;
        return true;
    }
    if (json_get_int(v, 0, INT64_MAX, &n)) {
        *out = (uint64_t)n;
        return true;
    }
    return false;
}

static char *parse_rlimits(const cJSON *r, struct confine *c)
{
    if (!cJSON_IsObject(r))
        return xasprintf("`confine.rlimits` must be an object, not %s", json_type_name(r));
    const cJSON *f;
    cJSON_ArrayForEach (f, r) {
        int id = 0;
        while (id < RL_COUNT && strcmp(confine_rlimit_names[id], f->string) != 0)
            id++;
        if (id == RL_COUNT)
            return xasprintf("`confine.rlimits.%s` is not a known limit (known: nofile, nproc, "
                             "as, cpu, fsize, core)",
                             f->string);
        struct confine_rlimit *l = &c->rlimits[id];
        if (cJSON_IsObject(f)) {
            const cJSON *soft = cJSON_GetObjectItemCaseSensitive(f, "soft");
            const cJSON *hard = cJSON_GetObjectItemCaseSensitive(f, "hard");
            if (cJSON_GetArraySize(f) != 2 || !limit_value(soft, &l->soft) ||
                !limit_value(hard, &l->hard))
                return xasprintf("`confine.rlimits.%s` must have exactly `soft` and `hard`, each "
                                 "an integer or \"unlimited\"",
                                 f->string);
            if (l->soft > l->hard)
                return xasprintf("`confine.rlimits.%s`: soft is above hard", f->string);
        } else if (limit_value(f, &l->soft)) {
            l->hard = l->soft;
        } else {
            return xasprintf("`confine.rlimits.%s` must be an integer, \"unlimited\" or "
                             "{soft, hard}",
                             f->string);
        }
        l->set = true;
    }
    return NULL;
}

/* A variable name as execve(2) passes it: not empty, no `=`. */
static bool env_name_valid(const char *s)
{
    return s[0] != '\0' && strchr(s, '=') == NULL;
}

static char *parse_env(const cJSON *e, struct confine *c)
{
    if (!cJSON_IsObject(e))
        return xasprintf("`confine.env` must be an object {clear, allow, set}, not %s",
                         json_type_name(e));
    const cJSON *f;
    cJSON_ArrayForEach (f, e) {
        if (strcmp(f->string, "clear") != 0 && strcmp(f->string, "allow") != 0 &&
            strcmp(f->string, "set") != 0)
            return xasprintf("`confine.env.%s` is not a known field (known: clear, allow, set)",
                             f->string);
    }
    c->env_given = true;
    const cJSON *clear = cJSON_GetObjectItemCaseSensitive(e, "clear");
    if (clear != NULL && !cJSON_IsBool(clear))
        return xasprintf("`confine.env.clear` must be a boolean, not %s", json_type_name(clear));
    c->env_clear = cJSON_IsTrue(clear);

    const cJSON *allow = cJSON_GetObjectItemCaseSensitive(e, "allow");
    if (allow != NULL) {
        char *why = check_strings(allow, "env.allow");
        if (why)
            return why;
        /* Without clear, everything passes anyway: an allowlist that allows all is a
         * mistake to point out, not to obey. */
        if (!c->env_clear)
            return xasprintf("`confine.env.allow` keeps only the names listed, which needs "
                             "`confine.env.clear = true`");
        if (cJSON_GetArraySize(allow) > CONFINE_ENV_MAX)
            return xasprintf("`confine.env.allow` lists more than %d names", CONFINE_ENV_MAX);
        c->env_allow = xcalloc((size_t)cJSON_GetArraySize(allow) + 1, sizeof *c->env_allow);
        const cJSON *n;
        cJSON_ArrayForEach (n, allow) {
            if (!env_name_valid(n->valuestring))
                return xasprintf("`confine.env.allow`: `%s` is not a variable name (empty, or "
                                 "holds `=`)",
                                 n->valuestring);
            c->env_allow[c->n_env_allow++] = xstrdup(n->valuestring);
        }
    }

    const cJSON *set = cJSON_GetObjectItemCaseSensitive(e, "set");
    if (set == NULL)
        return NULL;
    /* Lua gives an empty table for an empty object, which cJSON may see as a list. */
    if (!cJSON_IsObject(set) && !(cJSON_IsArray(set) && cJSON_GetArraySize(set) == 0))
        return xasprintf("`confine.env.set` must be an object of strings, not %s",
                         json_type_name(set));
    if (cJSON_GetArraySize(set) > CONFINE_ENV_MAX)
        return xasprintf("`confine.env.set` has more than %d variables", CONFINE_ENV_MAX);
    c->env_set = xcalloc((size_t)cJSON_GetArraySize(set) + 1, sizeof *c->env_set);
    cJSON_ArrayForEach (f, set) {
        if (!env_name_valid(f->string))
            return xasprintf("`confine.env.set`: `%s` is not a variable name (empty, or holds "
                             "`=`)",
                             f->string);
        if (!cJSON_IsString(f))
            return xasprintf("`confine.env.set.%s` must be a string, not %s", f->string,
                             json_type_name(f));
        for (const cJSON *prev = set->child; prev != f; prev = prev->next)
            if (strcmp(prev->string, f->string) == 0)
                return xasprintf("`confine.env.set.%s` is given twice", f->string);
        c->env_set[c->n_env_set++] = xasprintf("%s=%s", f->string, f->valuestring);
    }
    return NULL;
}

char *confine_parse(const cJSON *block, struct confine *c)
{
    memset(c, 0, sizeof *c);
    c->no_new_privs = true;
    /* Core dumps would write the workload's memory to disk: off unless asked for. */
    c->rlimits[RL_CORE] = (struct confine_rlimit){.set = true, .soft = 0, .hard = 0};
    if (block == NULL || cJSON_IsNull(block))
        return NULL;
    if (!cJSON_IsObject(block))
        return xasprintf("`confine` must be an object, not %s", json_type_name(block));
    c->given = true;
    /* A block without "seccomp" gets the default filter: unconfined must be asked for. */
    c->seccomp = CONFINE_SECCOMP_DEFAULT;

    const cJSON *f;
    cJSON_ArrayForEach (f, block) {
        char *why = NULL;
        if (strcmp(f->string, "capabilities") == 0)
            why = parse_caps(f, c);
        else if (strcmp(f->string, "no_new_privs") == 0)
            why = cJSON_IsBool(f) ? (c->no_new_privs = cJSON_IsTrue(f), NULL)
                                  : xasprintf("`confine.no_new_privs` must be a boolean");
        else if (strcmp(f->string, "user") == 0)
            why = parse_user(f, c);
        else if (strcmp(f->string, "seccomp") == 0)
            why = parse_seccomp(f, c);
        else if (strcmp(f->string, "namespaces") == 0)
            why = parse_namespaces(f, c);
        else if (strcmp(f->string, "rlimits") == 0)
            why = parse_rlimits(f, c);
        else if (strcmp(f->string, "env") == 0)
            why = parse_env(f, c);
        else
            why = xasprintf("`confine.%s` is not a known field", f->string);
        if (why != NULL) {
            confine_clear(c);
            return why;
        }
    }
    return NULL;
}

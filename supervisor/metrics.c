/* Prometheus metrics (see metrics.h).  The counters are counted from the audit trail, the one
 * record that every tether of the node appends to under a lock, so that they stay exact
 * however many tethers run and end: the textfile is advanced, under the trail's lock, by the
 * records appended since it was last written, from a state file beside it
 * (<textfile>.state: the trail's identity, the offset and hash of the last record counted,
 * and the counts).  A trail that was replaced or cut starts the counts again (a counter
 * reset to Prometheus). */
#define _GNU_SOURCE
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "status.h"

#define STATE_MAX (4 << 20)
#define LABEL_MAX 64

/* Decision latency buckets, in seconds: from an in-process Lua policy to an OPA server's
 * timeout. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

static const struct family {
    const char *name, *type, *help;
} families[] = {
    {"tether_decisions_total", "counter", "Policy decisions, by engine, phase and outcome."},
    {"tether_decision_latency_seconds", "histogram",
     "Time a policy engine took to decide, by engine and phase."},
    {"tether_key_releases_total", "counter", "Keys released to sealed workloads, by source."},
    {"tether_drifts_total", "counter", "Drift found by a monitor, by subject (run, container)."},
    {"tether_corrective_actions_total", "counter",
     "Actions taken on drift, by action and by whom (the monitor, or its guard)."},
    {"tether_execs_denied_total", "counter", "Execs held and denied by exec prevention."},
    {"tether_launch_failures_total", "counter", "Workloads that failed to start after a decision."},
    {"tether_audit_records_total", "counter", "Audit records, by event."},
    {NULL, NULL, NULL},
};

cJSON *metrics_new(void)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddObjectToObject(m, "counters");
    cJSON_AddObjectToObject(m, "latency");
    return m;
}

/* A label value as the exposition format quotes it, cut at LABEL_MAX bytes. */
static void label(char **out, const char *name, const char *value)
{
    if (value == NULL)
        value = "";
    size_t n = strnlen(value, LABEL_MAX);
    char esc[2 * LABEL_MAX + 1], *p = esc;
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (c == '\\' || c == '"' || c == '\n')
            *p++ = '\\';
        *p++ = c == '\n' ? 'n' : c;
    }
    *p = '\0';
    char *joined = xasprintf("%s%s%s=\"%s\"", *out ? *out : "", *out ? "," : "", name, esc);
    free(*out);
    *out = joined;
}

static void add(cJSON *m, const char *family, const char *labels)
{
    cJSON *counters = cJSON_GetObjectItemCaseSensitive(m, "counters");
    cJSON *f = cJSON_GetObjectItemCaseSensitive(counters, family);
    if (f == NULL)
        f = cJSON_AddObjectToObject(counters, family);
    const char *key = labels ? labels : "";
    cJSON *n = cJSON_GetObjectItemCaseSensitive(f, key);
    if (n == NULL)
        cJSON_AddNumberToObject(f, key, 1);
    else
        cJSON_SetNumberValue(n, n->valuedouble + 1);
}

static void observe(cJSON *m, const char *labels, double seconds)
{
    cJSON *lat = cJSON_GetObjectItemCaseSensitive(m, "latency");
    cJSON *h = cJSON_GetObjectItemCaseSensitive(lat, labels);
    if (h == NULL) {
        h = cJSON_AddObjectToObject(lat, labels);
        cJSON *b = cJSON_AddArrayToObject(h, "buckets");
        for (size_t i = 0; i < N_BUCKETS; i++)
            cJSON_AddItemToArray(b, cJSON_CreateNumber(0));
        cJSON_AddNumberToObject(h, "sum", 0);
        cJSON_AddNumberToObject(h, "count", 0);
    }
    cJSON *b = cJSON_GetObjectItemCaseSensitive(h, "buckets");
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cJSON *c = cJSON_GetArrayItem(b, (int)i);
        if (c != NULL && seconds <= buckets[i])
            cJSON_SetNumberValue(c, c->valuedouble + 1);
    }
    cJSON *sum = cJSON_GetObjectItemCaseSensitive(h, "sum");
    cJSON *count = cJSON_GetObjectItemCaseSensitive(h, "count");
    cJSON_SetNumberValue(sum, sum->valuedouble + seconds);
    cJSON_SetNumberValue(count, count->valuedouble + 1);
}

static const char *str(const cJSON *rec, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, name));
}

void metrics_count(cJSON *m, const cJSON *rec)
{
    const char *event = str(rec, "event");
    if (event == NULL)
        return;
    cleanup_free char *l = NULL;
    label(&l, "event", event);
    add(m, "tether_audit_records_total", l);
    free(l);
    l = NULL;
    const char *subject =
        cJSON_GetObjectItemCaseSensitive(rec, "container_id") ? "container" : "run";
    if (strcmp(event, "decision") == 0) {
        label(&l, "engine", str(rec, "engine"));
        label(&l, "phase", str(rec, "phase"));
        cleanup_free char *hl = xstrdup(l);
        label(&l, "outcome",
              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "allow")) ? "allow" : "deny");
        add(m, "tether_decisions_total", l);
        const cJSON *us = cJSON_GetObjectItemCaseSensitive(rec, "elapsed_us");
        if (cJSON_IsNumber(us) && us->valuedouble >= 0)
            observe(m, hl, us->valuedouble / 1e6);
    } else if (strcmp(event, "key_release") == 0) {
        label(&l, "source", str(rec, "source"));
        add(m, "tether_key_releases_total", l);
    } else if (strcmp(event, "drift") == 0) {
        label(&l, "subject", subject);
        add(m, "tether_drifts_total", l);
        free(l);
        l = NULL;
        label(&l, "action", str(rec, "action"));
        label(&l, "by", "monitor");
        add(m, "tether_corrective_actions_total", l);
    } else if (strcmp(event, "monitor_failed") == 0) {
        label(&l, "action", str(rec, "action"));
        label(&l, "by", "guard");
        add(m, "tether_corrective_actions_total", l);
    } else if (strcmp(event, "exec_denied") == 0) {
        label(&l, "subject", subject);
        add(m, "tether_execs_denied_total", l);
    } else if (strcmp(event, "launch_failed") == 0) {
        add(m, "tether_launch_failures_total", NULL);
    }
}

size_t metrics_count_stream(cJSON *m, FILE *f)
{
    cleanup_free char *line = NULL;
    size_t cap = 0, lines = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        lines++;
        cleanup_json cJSON *rec = cJSON_ParseWithLength(line, (size_t)n);
        if (cJSON_IsObject(rec))
            metrics_count(m, rec);
    }
    return lines;
}

/* Appends printf-style text to a growing buffer. */
static void __attribute__((format(printf, 2, 3))) put(char **buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cleanup_free char *more = xvasprintf(fmt, ap);
    va_end(ap);
    char *joined = xasprintf("%s%s", *buf ? *buf : "", more);
    free(*buf);
    *buf = joined;
}

static void put_series(char **out, const char *name, const char *labels, const char *extra,
                       const char *value)
{
    bool any = (labels && *labels) || extra;
    put(out, "%s%s%s%s%s%s %s\n", name, any ? "{" : "", labels ? labels : "",
        labels && *labels && extra ? "," : "", extra ? extra : "", any ? "}" : "", value);
}

char *metrics_format(const cJSON *m, int monitors)
{
    cleanup_json cJSON *copy = cJSON_Duplicate(m, true);
    cJSON *counters = cJSON_GetObjectItemCaseSensitive(copy, "counters");
    cJSON *lat = cJSON_GetObjectItemCaseSensitive(copy, "latency");
    char *out = NULL;
    for (const struct family *f = families; f->name; f++) {
        put(&out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        if (strcmp(f->type, "histogram") == 0) {
            json_sort_keys(lat);
            const cJSON *h;
            cJSON_ArrayForEach (h, lat) {
                cleanup_free char *bucket = xasprintf("%s_bucket", f->name);
                const cJSON *b = cJSON_GetObjectItemCaseSensitive(h, "buckets");
                char le[48], v[48];
                for (size_t i = 0; i < N_BUCKETS; i++) {
                    snprintf(le, sizeof le, "le=\"%g\"", buckets[i]);
                    snprintf(v, sizeof v, "%.0f",
                             cJSON_GetNumberValue(cJSON_GetArrayItem(b, (int)i)));
                    put_series(&out, bucket, h->string, le, v);
                }
                double count = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "count"));
                snprintf(v, sizeof v, "%.0f", count);
                put_series(&out, bucket, h->string, "le=\"+Inf\"", v);
                cleanup_free char *sum = xasprintf("%s_sum", f->name);
                char s[48];
                snprintf(s, sizeof s, "%.6f",
                         cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "sum")));
                put_series(&out, sum, h->string, NULL, s);
                cleanup_free char *cnt = xasprintf("%s_count", f->name);
                put_series(&out, cnt, h->string, NULL, v);
            }
            continue;
        }
        cJSON *series = cJSON_GetObjectItemCaseSensitive(counters, f->name);
        json_sort_keys(series);
        const cJSON *s;
        cJSON_ArrayForEach (s, series) {
            char v[48];
            snprintf(v, sizeof v, "%.0f", s->valuedouble);
            put_series(&out, f->name, s->string, NULL, v);
        }
    }
    if (monitors >= 0)
        put(&out,
            "# HELP tether_monitors_running Monitors watching a workload or a container.\n"
            "# TYPE tether_monitors_running gauge\n"
            "tether_monitors_running %d\n",
            monitors);
    return out;
}

/* --- the textfile --- */

static char *textfile, *trail;
static bool warned;

/* Writes text to dir/name through a new file beside it and a rename, so that a reader sees
 * the old text or the new one; O_NOFOLLOW and O_EXCL keep a link in the directory from
 * taking the write elsewhere. */
static int write_beside(int dfd, const char *name, const char *text, mode_t mode)
{
    cleanup_free char *tmp = xasprintf(".%s.%d.tmp", name, (int)getpid());
    unlinkat(dfd, tmp, 0);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    bool ok = fchmod(fd, mode) == 0 && write_all(fd, text, strlen(text)) == 0;
    int e = errno;
    close(fd);
    if (!ok || renameat(dfd, tmp, dfd, name) < 0) {
        e = ok ? errno : e;
        unlinkat(dfd, tmp, 0);
        errno = e;
        return -1;
    }
    return 0;
}

/* Which file the trail is: a new file under the same name is a new trail. */
static char *file_id(const struct stat *st)
{
    return xasprintf("%llu:%llu", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino);
}

/* The state's counts when it describes this trail up to a record still at its offset, else
 * NULL; *offset is where counting goes on. */
static cJSON *state_resume(int dfd, const char *name, int fd, const struct stat *st, off_t size,
                           off_t *offset)
{
    *offset = 0;
    cleanup_close int sfd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    cleanup_free char *text = NULL;
    size_t len = 0;
    struct stat sst;
    if (sfd < 0 || fstat(sfd, &sst) < 0 || !S_ISREG(sst.st_mode) || sst.st_uid != geteuid() ||
        read_fd(sfd, STATE_MAX, &text, &len, NULL) < 0)
        return NULL;
    cleanup_json cJSON *s = cJSON_ParseWithLength(text, len);
    int64_t off;
    const char *head = str(s, "head"), *file = str(s, "file");
    cleanup_free char *id = file_id(st);
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(s, "offset"), 0, INT64_MAX, &off) ||
        head == NULL || str(s, "trail") == NULL || strcmp(str(s, "trail"), trail) != 0 ||
        file == NULL || strcmp(file, id) != 0 || off > size)
        return NULL;
    char at[SHA256_HEX_LEN + 1];
    bool torn;
    if (audit_last_hash(fd, (off_t)off, at, &torn, NULL) < 0 || torn || strcmp(at, head) != 0)
        return NULL;
    cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(s, "metrics");
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "counters")) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(m, "latency"))) {
        cJSON_Delete(m);
        return NULL;
    }
    *offset = (off_t)off;
    return m;
}

static void textfile_update(const char *path, int fd, off_t size)
{
    if (textfile == NULL || strcmp(path, trail) != 0)
        return;
    cleanup_free char *copy = xstrdup(textfile);
    cleanup_free char *base = xstrdup(basename(copy));
    cleanup_close int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_free char *state_name = xasprintf("%s.state", base);
    struct stat st;
    if (dfd < 0 || fstat(fd, &st) < 0) {
        if (!warned)
            log_warn("metrics: `%s`: %s", textfile, strerror(errno));
        warned = true;
        return;
    }
    off_t offset;
    cleanup_json cJSON *m = state_resume(dfd, state_name, fd, &st, size, &offset);
    if (m == NULL)
        m = metrics_new();
    /* The records since the last one counted: read through a descriptor of its own, which
     * leaves the trail's (O_APPEND) alone. */
    cleanup_free char *proc = xasprintf("/proc/self/fd/%d", fd);
    cleanup_file FILE *f = fopen(proc, "re");
    if (f == NULL || fseeko(f, offset, SEEK_SET) < 0) {
        if (!warned)
            log_warn("metrics: the trail `%s`: %s", path, strerror(errno));
        warned = true;
        return;
    }
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (offset < size && (n = getline(&line, &cap, f)) > 0 && line[n - 1] == '\n') {
        offset += n;
        cleanup_json cJSON *rec = cJSON_ParseWithLength(line, (size_t)n);
        if (cJSON_IsObject(rec))
            metrics_count(m, rec);
    }
    char head[SHA256_HEX_LEN + 1];
    bool torn;
    if (audit_last_hash(fd, offset, head, &torn, NULL) < 0)
        return;
    cleanup_json cJSON *state = cJSON_CreateObject();
    cJSON_AddStringToObject(state, "trail", trail);
    cleanup_free char *id = file_id(&st);
    cJSON_AddStringToObject(state, "file", id);
    cJSON_AddNumberToObject(state, "offset", (double)offset);
    cJSON_AddStringToObject(state, "head", head);
    cJSON_AddItemToObject(state, "metrics", cJSON_Duplicate(m, true));
    cleanup_free char *state_text = json_print(state);
    cleanup_free char *text = metrics_format(m, status_monitors_running());
    if (write_beside(dfd, state_name, state_text, 0600) < 0 ||
        write_beside(dfd, base, text, 0644) < 0) {
        if (!warned)
            log_warn("metrics: `%s`: %s", textfile, strerror(errno));
        warned = true;
    }
}

void metrics_configure(const struct config *cfg, const char *trail_path)
{
    free(textfile);
    free(trail);
    textfile = cfg->metrics_textfile ? xstrdup(cfg->metrics_textfile) : NULL;
    trail = xstrdup(trail_path);
    warned = false;
    audit_hook_set(textfile ? textfile_update : NULL);
}

/* The audit trail (see audit.h).  A line is the compact JSON of a record whose last member is
 * "hash": the sha256 of the line's text before `,"hash":`, which includes "prev", the hash of
 * the line before it (64 zeros for the first). */
#define _GNU_SOURCE
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/trust.h"
#include "core/util.h"

#define HASH_MEMBER ",\"hash\":\""
#define HASH_SUFFIX_LEN (sizeof HASH_MEMBER - 1 + SHA256_HEX_LEN + 2)
#define TAIL_MAX (256 * 1024)
#define AUDIT_LOCK_WAIT_MS 5000u /* the longest wait for another writer's lock */

/* The longest message sent to syslog: rsyslog's default limit is 8 KiB for the whole
 * datagram, and RFC 5424 asks receivers for 2 KiB at least; 4 KiB leaves room for the
 * header under the first. */
#define SYSLOG_MSG_MAX 4096

/* syslog(3)'s facility authpriv and severities notice and info (<syslog.h> would clash with
 * core/log.h's levels). */
#define SYSLOG_AUTHPRIV (10 << 3)
#define SYSLOG_NOTICE 5
#define SYSLOG_INFO 6

static char *syslog_socket; /* NULL: records go to the trail only */
static int syslog_fd = -1;
static bool syslog_warned;
static audit_hook_fn *append_hook;

static const char genesis[SHA256_HEX_LEN + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

cJSON *audit_record_new(const char *event)
{
    char now[32];
    time_rfc3339(now);
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "time", now);
    cJSON_AddStringToObject(rec, "event", event);
    cJSON_AddNumberToObject(rec, "tether_pid", getpid());
    return rec;
}

static const cJSON *path_get(const cJSON *j, const char *a, const char *b)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, a), b);
}

cJSON *audit_decision_record(const char *phase, const struct policy *p, const struct decision *d,
                             const cJSON *input)
{
    cJSON *rec = audit_record_new("decision");
    cJSON_AddStringToObject(rec, "phase", phase);
    cJSON_AddStringToObject(rec, "engine", p ? p->ops->engine : "none");
    cJSON_AddItemToObject(rec, "policy", json_string_or_null(p ? p->source : NULL));
    /* The engine's own facts: an OPA URL (without credentials), path and decision_id. */
    const cJSON *e;
    cJSON_ArrayForEach (e, d->engine_info)
        cJSON_AddItemToObject(rec, e->string, cJSON_Duplicate(e, true));
    cJSON_AddBoolToObject(rec, "allow", d->allow);
    cJSON_AddNumberToObject(rec, "elapsed_us", (double)d->elapsed_us);
    cJSON *reasons = cJSON_AddArrayToObject(rec, "reasons");
    for (size_t i = 0; i < d->n_reasons; i++)
        cJSON_AddItemToArray(reasons, cJSON_CreateString(d->reasons[i]));

    const cJSON *workload = cJSON_GetObjectItemCaseSensitive(input, "workload");
    cJSON *w = cJSON_AddObjectToObject(rec, "workload");
    const cJSON *argv = cJSON_GetObjectItemCaseSensitive(workload, "argv");
    cJSON_AddItemToObject(
        w, "argv0",
        json_string_or_null(cJSON_GetStringValue(cJSON_IsArray(argv) ? argv->child : NULL)));
    cJSON_AddItemToObject(
        w, "exe_sha256",
        json_string_or_null(cJSON_GetStringValue(path_get(workload, "exe", "sha256"))));
    /* A sealed file of format version 2 has no exe sha256: its digest names it. */
    cJSON_AddItemToObject(
        w, "sealed_digest",
        json_string_or_null(cJSON_GetStringValue(path_get(workload, "sealed", "digest"))));
    cJSON *h = cJSON_AddObjectToObject(rec, "host");
    cJSON_AddItemToObject(
        h, "machine_id",
        json_string_or_null(cJSON_GetStringValue(path_get(input, "host", "machine_id"))));
    return rec;
}

static int mkdir_parents(const char *path)
{
    cleanup_free char *copy = xstrdup(path);
    char *dir = dirname(copy);
    if (strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0)
        return 0;
    if (mkdir(dir, 0750) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -1;
    if (mkdir_parents(dir) < 0)
        return -1;
    return mkdir(dir, 0750) == 0 || errno == EEXIST ? 0 : -1;
}

/* The hash that the next record must carry as "prev": the last line's "hash", or, when that
 * line is damaged, the sha256 of its text (verify reports the damage either way).  Sets
 * *torn when the file does not end with a newline.  Reads backwards from the end, a block at
 * a time, so the cost does not grow with the trail. */
int audit_last_hash(int fd, off_t size, char out[SHA256_HEX_LEN + 1], bool *torn,
                    tether_error_t *err)
{
    *torn = false;
    if (size == 0) {
        memcpy(out, genesis, sizeof genesis);
        return 0;
    }
    size_t want = 0, start = 0, end = 0;
    cleanup_free char *buf = NULL;
    for (size_t block = 4096;; block *= 4) {
        want = size > (off_t)block ? block : (size_t)size;
        if (want > TAIL_MAX)
            want = TAIL_MAX;
        free(buf);
        buf = xmalloc(want + 1);
        ssize_t r = pread(fd, buf, want, size - (off_t)want);
        if (r != (ssize_t)want)
            return error_set(err, r < 0 ? errno : EIO, "read");
        end = want;
        *torn = buf[end - 1] != '\n';
        if (!*torn)
            end--;
        start = end;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        /* Done when the line's start is in the buffer, or there is no more to read. */
        if (start > 0 || want == (size_t)size || want == TAIL_MAX)
            break;
    }
    buf[end] = '\0';
    const char *line = buf + start;

    cleanup_json cJSON *rec = cJSON_Parse(line);
    const char *h = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "hash"));
    if (h != NULL && strlen(h) == SHA256_HEX_LEN)
        memcpy(out, h, SHA256_HEX_LEN + 1);
    else
        sha256_hex(line, end - start, out);
    return 0;
}

void audit_syslog_set(const char *socket_path)
{
    free(syslog_socket);
    syslog_socket = socket_path ? xstrdup(socket_path) : NULL;
    syslog_warned = false;
}

void audit_hook_set(audit_hook_fn *hook)
{
    append_hook = hook;
}

char *audit_syslog_message(const char *line, size_t len, const char *hash)
{
    if (len <= SYSLOG_MSG_MAX)
        return xstrndup(line, len);
    /* Shortened, still one JSON object, still carrying the hash that `audit verify --head`
     * takes: the start of the record as a string, cut between UTF-8 characters. */
    size_t keep = SYSLOG_MSG_MAX;
    for (;;) {
        while (keep > 0 && ((unsigned char)line[keep] & 0xC0) == 0x80)
            keep--;
        cleanup_free char *start = xstrndup(line, keep);
        cleanup_json cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "truncated", (double)len);
        cJSON_AddStringToObject(o, "record", start);
        cJSON_AddStringToObject(o, "hash", hash);
        char *msg = json_print(o);
        size_t n = strlen(msg);
        if (n <= SYSLOG_MSG_MAX || keep == 0)
            return msg;
        free(msg);
        keep = n - SYSLOG_MSG_MAX < keep ? keep - (n - SYSLOG_MSG_MAX) : 0;
    }
}

/* A copy of the record off the node: one datagram to the syslog socket, as syslog(3) would
 * send it with facility authpriv (records name programs and hosts).  A copy that cannot be
 * sent is a warning: the trail on disk is the record. */
static void ship_syslog(const cJSON *rec, const char *line, size_t len, const char *hash)
{
    if (syslog_socket == NULL)
        return;
    const char *event = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "event"));
    bool denial = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rec, "allow")) ||
                  (event != NULL &&
                   (strcmp(event, "drift") == 0 || strcmp(event, "exec_denied") == 0 ||
                    strcmp(event, "launch_failed") == 0 || strcmp(event, "monitor_failed") == 0));
    int pri = SYSLOG_AUTHPRIV | (denial ? SYSLOG_NOTICE : SYSLOG_INFO);
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%b %e %T", localtime_r(&now, &tm));
    cleanup_free char *msg = audit_syslog_message(line, len, hash);
    cleanup_free char *dgram = xasprintf("<%d>%s tether[%d]: %s", pri, stamp, (int)getpid(), msg);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", syslog_socket);
    int e = 0;
    if (syslog_fd < 0 && (syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        e = errno;
    else if (sendto(syslog_fd, dgram, strlen(dgram), MSG_DONTWAIT | MSG_NOSIGNAL,
                    (struct sockaddr *)&sa, sizeof sa) >= 0)
        return;
    else
        e = errno;
    if (!syslog_warned)
        log_warn("audit: syslog `%s`: %s; the record is only in the trail", syslog_socket,
                 strerror(e));
    syslog_warned = true;
}

int audit_append(const char *path, cJSON *rec, tether_error_t *err)
{
    if (mkdir_parents(path) < 0)
        return error_set(err, errno, "audit log `%s`: cannot create its directory", path);
    /* A trail that someone else planted (a file in a sticky directory, a link) or may
     * write is no record: it is refused, and an absent one is created O_EXCL. */
    cleanup_close int fd = trust_open(path, TRUST_APPEND | TRUST_CREATE, err);
    if (fd < 0)
        return error_wrap(err, "audit log");
    struct stat st;
    /* One writer at a time: the chain needs the last line to stay the last line.  Not
     * waited for without end: whoever may open the trail may take its lock (a workload
     * whose uid owns it, without a single capability), and a monitor waiting for it acts
     * on nothing.  A writer holds it for an append and an fsync. */
    for (unsigned waited = 0, step = 1;; waited += step, step = step < 64 ? 2 * step : 64) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return error_set(err, errno, "audit log `%s`: lock", path);
        if (waited >= AUDIT_LOCK_WAIT_MS)
            return error_set(err, 0, "audit log `%s`: locked by another process for %u s", path,
                             AUDIT_LOCK_WAIT_MS / 1000);
        nanosleep(&(struct timespec){.tv_nsec = (long)step * 1000000}, NULL);
    }
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "audit log `%s`", path);

    char prev[SHA256_HEX_LEN + 1];
    bool torn;
    if (audit_last_hash(fd, st.st_size, prev, &torn, err) < 0)
        return error_wrap(err, "audit log `%s`", path);
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "prev");
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "hash");
    cJSON_AddStringToObject(rec, "prev", prev);

    cleanup_free char *body = json_print(rec);
    size_t blen = strlen(body) - 1; /* without the closing brace */
    char hash[SHA256_HEX_LEN + 1];
    sha256_hex(body, blen, hash);
    cleanup_free char *line =
        xasprintf("%s%.*s" HASH_MEMBER "%s\"}\n", torn ? "\n" : "", (int)blen, body, hash);

    if (write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0) {
        /* A record is written whole or not at all: a trail that cannot grow (ENOSPC, or
         * EFBIG past RLIMIT_FSIZE) keeps its chain, and the next append follows its last
         * whole line. */
        int e = errno;
        if (ftruncate(fd, st.st_size) == 0)
            fsync(fd);
        return error_set(err, e, "audit log `%s`: write", path);
    }
    const char *text = line + (torn ? 1 : 0);
    ship_syslog(rec, text, strlen(text) - 1, hash);
    /* Still under the lock: what the hook reads of the trail ends with this record. */
    if (append_hook != NULL)
        append_hook(path, fd, st.st_size + (off_t)strlen(line));
    cJSON_AddStringToObject(rec, "hash", hash); /* for the caller: where to find the record */
    return 0;
}

static bool is_hex64(const char *s)
{
    for (size_t i = 0; i < SHA256_HEX_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int audit_verify_stream(FILE *f, const char *find, struct audit_report *rep, tether_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    memcpy(rep->head, genesis, sizeof genesis);
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t lineno = 0;
    errno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';

        const char *member = len > HASH_SUFFIX_LEN ? line + len - HASH_SUFFIX_LEN : NULL;
        if (member == NULL || memcmp(member, HASH_MEMBER, sizeof HASH_MEMBER - 1) != 0 ||
            strcmp(line + len - 2, "\"}") != 0 || !is_hex64(member + sizeof HASH_MEMBER - 1)) {
            snprintf(rep->why, sizeof rep->why, "not a tether audit record");
            rep->bad_line = lineno;
            return 0;
        }
        char want[SHA256_HEX_LEN + 1];
        sha256_hex(line, (size_t)(member - line), want);
        if (memcmp(want, member + sizeof HASH_MEMBER - 1, SHA256_HEX_LEN) != 0) {
            snprintf(rep->why, sizeof rep->why, "the record was edited (its hash does not match)");
            rep->bad_line = lineno;
            return 0;
        }
        cleanup_json cJSON *rec = cJSON_ParseWithLength(line, len);
        const char *prev = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "prev"));
        if (prev == NULL) {
            snprintf(rep->why, sizeof rep->why, "the record is not valid JSON with a `prev`");
            rep->bad_line = lineno;
            return 0;
        }
        if (strcmp(prev, rep->head) != 0) {
            if (lineno == 1)
                snprintf(rep->why, sizeof rep->why,
                         "the first record does not start the chain (records before it were "
                         "removed)");
            else
                snprintf(rep->why, sizeof rep->why,
                         "the record does not follow line %zu (a record was removed, inserted or "
                         "moved)",
                         lineno - 1);
            rep->bad_line = lineno;
            return 0;
        }
        memcpy(rep->head, want, sizeof want);
        rep->records++;
        if (find != NULL && rep->found_line == 0 && strcmp(want, find) == 0)
            rep->found_line = lineno;
    }
    if (ferror(f))
        return error_set(err, errno ? errno : EIO, "read");
    return 0;
}

/* A running process's measured confinement: one entry of the input document's `processes`
 * array, read from /proc/PID. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../supervisor/core/capability.h"
#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

cJSON *measure_caps_names(uint64_t mask)
{
    cJSON *list = cJSON_CreateArray();
    for (int cap = 0; cap < 64; cap++) {
        if (!(mask & (UINT64_C(1) << cap)))
            continue;
        const char *name = capability_name(cap);
        char buf[64];
        if (name != NULL) {
            snprintf(buf, sizeof buf, "CAP_%s", name);
            for (char *p = buf; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        } else {
            snprintf(buf, sizeof buf, "CAP_%d", cap); /* a capability tether does not name */
        }
        cJSON_AddItemToArray(list, cJSON_CreateString(buf));
    }
    return list;
}

static bool hex64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

cJSON *measure_parse_proc_status(FILE *f)
{
    static const struct {
        const char *key, *name;
    } caps[] = {{"CapEff", "effective"},
                {"CapPrm", "permitted"},
                {"CapInh", "inheritable"},
                {"CapBnd", "bounding"},
                {"CapAmb", "ambient"}};
    cJSON *st = cJSON_CreateObject();
    cJSON *capabilities = cJSON_AddObjectToObject(st, "capabilities");
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        cJSON_AddNullToObject(capabilities, caps[i].name);
    cJSON_AddNullToObject(st, "ppid");
    cJSON_AddNullToObject(st, "uid");
    cJSON_AddNullToObject(st, "gid");
    cJSON_AddNullToObject(st, "seccomp");
    cJSON_AddNullToObject(st, "no_new_privs");

    cleanup_free char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        v += strspn(v, " \t");
        v[strcspn(v, "\n")] = '\0';
        int64_t n;
        uint64_t mask;
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
            if (strcmp(line, caps[i].key) == 0 && hex64(v, &mask))
                cJSON_ReplaceItemInObjectCaseSensitive(capabilities, caps[i].name,
                                                       measure_caps_names(mask));
        if (strcmp(line, "PPid") == 0 && parse_int64(v, 0, INT32_MAX, &n) == 0)
            cJSON_ReplaceItemInObjectCaseSensitive(st, "ppid", cJSON_CreateNumber((double)n));
        else if (strcmp(line, "Seccomp") == 0 && parse_int64(v, 0, 2, &n) == 0)
            cJSON_ReplaceItemInObjectCaseSensitive(st, "seccomp", cJSON_CreateNumber((double)n));
        else if (strcmp(line, "NoNewPrivs") == 0 && parse_int64(v, 0, 1, &n) == 0)
            cJSON_ReplaceItemInObjectCaseSensitive(st, "no_new_privs", cJSON_CreateBool(n));
        else if (strcmp(line, "Uid") == 0 || strcmp(line, "Gid") == 0) {
            /* real, effective, saved, file system: the effective one decides access */
            char *save = NULL, *tok = strtok_r(v, " \t", &save);
            tok = tok ? strtok_r(NULL, " \t", &save) : NULL;
            if (tok && parse_int64(tok, 0, UINT32_MAX, &n) == 0)
                cJSON_ReplaceItemInObjectCaseSensitive(st, line[0] == 'U' ? "uid" : "gid",
                                                       cJSON_CreateNumber((double)n));
        }
    }
    return st;
}

/* sha256 of executables: the monitor measures the same few binaries over and over, and
 * measure_sha256 remembers those that only root may change.  The others are read again at
 * every look, up to MEASURE_HASH_MAX bytes each, in files the workload chose: so a look
 * reads at most its budget in all (measure_look_begin), and a file it has read already,
 * unchanged, is not read again for another process. */
#define LOOK_SEEN_MAX 64
static struct {
    uint64_t budget;
    size_t n;
    struct seen {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime, ctime;
        char hex[SHA256_HEX_LEN + 1];
    } seen[LOOK_SEEN_MAX];
} look = {.budget = UINT64_MAX};

void measure_look_begin(uint64_t budget)
{
    look.budget = budget;
    look.n = 0;
}

static bool same_file(const struct seen *s, const struct stat *st)
{
    return s->dev == st->st_dev && s->ino == st->st_ino && s->size == st->st_size &&
           s->mtime.tv_sec == st->st_mtim.tv_sec && s->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           s->ctime.tv_sec == st->st_ctim.tv_sec && s->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static bool hash_file(int fd, char hex[SHA256_HEX_LEN + 1])
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return false;
    for (size_t i = 0; i < look.n; i++) {
        if (same_file(&look.seen[i], &st)) {
            memcpy(hex, look.seen[i].hex, SHA256_HEX_LEN + 1);
            return true;
        }
    }
    const char *from;
    uint64_t limit = look.budget < MEASURE_HASH_MAX ? look.budget : MEASURE_HASH_MAX;
    if (measure_sha256(fd, limit, hex, &from, NULL) < 0)
        return false;
    if (strcmp(from, "read") == 0)
        look.budget -= (uint64_t)st.st_size < look.budget ? (uint64_t)st.st_size : look.budget;
    if (look.n < LOOK_SEEN_MAX) {
        struct seen *s = &look.seen[look.n++];
        *s = (struct seen){st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim, ""};
        memcpy(s->hex, hex, SHA256_HEX_LEN + 1);
    }
    return true;
}

/* "net:[4026531840]" -> 4026531840 */
static cJSON *ns_inode(pid_t pid, const char *name)
{
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, name);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0)
        return cJSON_CreateNull();
    link[n] = '\0';
    char *open = strchr(link, '[');
    int64_t ino;
    if (open == NULL || link[n - 1] != ']')
        return cJSON_CreateNull();
    link[n - 1] = '\0';
    return parse_int64(open + 1, 0, INT64_MAX, &ino) == 0 ? cJSON_CreateNumber((double)ino)
                                                          : cJSON_CreateNull();
}

/* The cgroup v2 path ("0::/path"), or the first hierarchy's under v1. */
static cJSON *cgroup_path(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    cleanup_free char *text = NULL;
    if (read_file(path, 64 * 1024, &text, NULL, NULL) < 0)
        return cJSON_CreateNull();
    char *v2 = strstr(text, "0::");
    char *line = v2 && (v2 == text || v2[-1] == '\n') ? v2 + 3 : strrchr(text, ':');
    if (line == NULL)
        return cJSON_CreateNull();
    if (line != v2 + 3)
        line++;
    line[strcspn(line, "\n")] = '\0';
    return cJSON_CreateString(line);
}

/* A process whose main thread has ended (pthread_exit) while others run on has no
 * /proc/PID/exe: the program is still there, through any live thread's link. */
static ssize_t live_thread_exe(pid_t pid, char *path, size_t path_len, char *link, size_t link_len)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    ssize_t n = -1;
    struct dirent *e;
    while (d != NULL && n < 0 && (e = readdir(d)) != NULL) {
        int tid = atoi(e->d_name);
        if (tid <= 0 || tid == (int)pid)
            continue;
        snprintf(path, path_len, "/proc/%d/task/%d/exe", (int)pid, tid);
        n = readlink(path, link, link_len);
    }
    if (d != NULL)
        closedir(d);
    if (n < 0)
        snprintf(path, path_len, "/proc/%d/exe", (int)pid);
    return n;
}

int measure_process_collect(pid_t pid, cJSON **out, tether_error_t *err)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    cleanup_file FILE *f = fopen(path, "re");
    if (f == NULL)
        return error_set(err, errno, "process %d", (int)pid);
    cJSON *st = measure_parse_proc_status(f);

    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "pid", pid);
    cJSON_AddItemToObject(p, "ppid", cJSON_DetachItemFromObjectCaseSensitive(st, "ppid"));
    cJSON_AddItemToObject(p, "uid", cJSON_DetachItemFromObjectCaseSensitive(st, "uid"));
    cJSON_AddItemToObject(p, "gid", cJSON_DetachItemFromObjectCaseSensitive(st, "gid"));

    /* /proc/PID/exe opens the very file the process runs, even when its path was replaced
     * or deleted since. */
    cJSON *exe = cJSON_AddObjectToObject(p, "exe");
    char link[4096];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, link, sizeof link - 1);
    cleanup_close int fd = n >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    /* Without a main thread (pthread_exit), or when it ends between the link and the open,
     * a live thread's link names the program, and opens it. */
    if (fd < 0 && errno == ENOENT) {
        n = live_thread_exe(pid, path, sizeof path, link, sizeof link - 1);
        fd = n >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    }
    link[n > 0 ? n : 0] = '\0';
    /* The workload names its own files: a long path is cut, and said to be, so that a
     * policy's pattern over it costs what a short one does. */
    if (n > MEASURE_STRING_MAX) {
        link[MEASURE_STRING_MAX] = '\0';
        cJSON_AddTrueToObject(p, "truncated");
    }
    cJSON_AddItemToObject(exe, "path", json_string_or_null(n > 0 ? link : NULL));
    char hex[SHA256_HEX_LEN + 1];
    cJSON_AddItemToObject(exe, "sha256",
                          json_string_or_null(fd >= 0 && hash_file(fd, hex) ? hex : NULL));

    cJSON_AddItemToObject(p, "capabilities",
                          cJSON_DetachItemFromObjectCaseSensitive(st, "capabilities"));
    cJSON_AddItemToObject(p, "seccomp", cJSON_DetachItemFromObjectCaseSensitive(st, "seccomp"));
    cJSON_AddItemToObject(p, "no_new_privs",
                          cJSON_DetachItemFromObjectCaseSensitive(st, "no_new_privs"));
    cJSON_Delete(st);

    cJSON *ns = cJSON_AddObjectToObject(p, "namespaces");
    static const char *const names[] = {"cgroup", "ipc", "mnt", "net", "pid", "user", "uts"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cJSON_AddItemToObject(ns, names[i], ns_inode(pid, names[i]));
    cJSON_AddItemToObject(p, "cgroup", cgroup_path(pid));
    *out = p;
    return 0;
}

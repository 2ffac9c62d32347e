/* Status files (see status.h) and `tether status`. */
#define _GNU_SOURCE
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cgroup.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/trust.h"
#include "core/util.h"
#include "metrics.h"
#include "../measure/measure.h"
#include "tether.h"

static int status_fd = -1; /* the checked directory, once prepared */
static bool prepared;
static char *status_name; /* this tether's file in it */
static time_t started_at;
static cJSON *noted_reasons; /* of the last decision, when a monitor made one */

char *status_dir(void)
{
    if (geteuid() == 0)
        return xstrdup("/run/tether");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg == '/')
        return xasprintf("%s/tether", xdg);
    const char *tmp = getenv("TMPDIR");
    return xasprintf("%s/tether-%d", tmp && *tmp == '/' ? tmp : "/tmp", (int)geteuid());
}

int status_dir_open(tether_error_t *err)
{
    cleanup_free char *dir = status_dir();
    char *slash = strrchr(dir, '/');
    cleanup_free char *parent = slash == dir ? xstrdup("/") : xstrndup(dir, (size_t)(slash - dir));
    const char *name = slash + 1;
    cleanup_close int pfd = trust_open(parent, TRUST_DIR, err);
    if (pfd < 0)
        return error_wrap(err, "status directory `%s`", dir);
    if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
        return error_set(err, errno, "status directory `%s`", dir);
    /* Made by us, or refused: in /tmp anyone may have made it first, to read or forge
     * what tether writes there. */
    cleanup_close int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return error_set(err, errno, "status directory `%s`", dir);
    uid_t euid = geteuid();
    if (!S_ISDIR(st.st_mode))
        return error_set(err, 0, "status directory `%s`: not a directory; refusing", dir);
    if (st.st_uid != euid)
        return error_set(err, 0, "status directory `%s`: owned by uid %d, not %d; refusing", dir,
                         (int)st.st_uid, (int)euid);
    if (st.st_mode & 077)
        return error_set(err, 0,
                         "status directory `%s`: open to others (mode %04o), not 0700; "
                         "refusing",
                         dir, st.st_mode & 07777);
    return steal_fd(&fd);
}

/* The executables' hash cache beside the status files (measure/hashcache.c): root's only,
 * since whoever may write it decides what an executable's sha256 is. */
static void hashes_open(void)
{
    if (status_fd < 0 || geteuid() != 0)
        return;
    mkdirat(status_fd, ".hashes", 0700);
    int fd = openat(status_fd, ".hashes", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == 0 && (st.st_mode & 077) == 0) {
        measure_hashcache_use(fd);
        return;
    }
    log_debug("no hash cache: `/run/tether/.hashes` is not root's alone");
    if (fd >= 0)
        close(fd);
}

int status_prepare(tether_error_t *err)
{
    if (prepared)
        return 0;
    cleanup_error tether_error_t why = NULL;
    int fd = status_dir_open(&why);
    if (fd < 0 && why->code == 0) {
        if (err != NULL) {
            error_free(err);
            *err = steal_pointer(&why);
        }
        return -1;
    }
    /* A directory that cannot be made (a missing parent, a read-only /run) means no
     * status file, as before: only someone else's directory is a refusal. */
    if (fd < 0)
        log_debug("no status file: %s", why->msg);
    prepared = true;
    status_fd = fd;
    hashes_open();
    return 0;
}

/* A process's start time (clock ticks since boot, field 22 of /proc/PID/stat), or 0: with
 * the pid, it names one process, never a later one that took the pid. */
uint64_t status_start_time(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    cleanup_free char *text = NULL;
    if (read_file(path, 4096, &text, NULL, NULL) < 0)
        return 0;
    char *p = strrchr(text, ')');
    unsigned long long t;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu",
                            &t) != 1)
        return 0;
    return t;
}

/* True when the status file's tether is still the process that wrote it. */
static bool writer_alive(const cJSON *s)
{
    pid_t tp = (pid_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "tether_pid"));
    double st = cJSON_GetNumberValue(cJSON_GetObjectItem(s, "tether_start"));
    if (tp <= 0)
        return false;
    uint64_t now = status_start_time(tp);
    return now != 0 && (isnan(st) || (uint64_t)st == now);
}

/* What a tether that ended without cleaning up left: its status file, its workload's
 * cgroup (tether-PID-N, emptied by the kernel when the init died with tether, else killed
 * now; removed unless it is a systemd scope) and the mount point of a sealed root file system. */
static void sweep_one(const char *dir, const char *name, const cJSON *s)
{
    const char *cg = cJSON_GetStringValue(cJSON_GetObjectItem(s, "cgroup"));
    const char *base = cg ? strrchr(cg, '/') : NULL;
    if (base != NULL && strncmp(base + 1, "tether-", 7) == 0 && strstr(cg, "/../") == NULL) {
        cleanup_free char *kill_file = xasprintf("%s/cgroup.kill", cg);
        cleanup_close int fd = open(kill_file, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0)
            (void)!write(fd, "1", 1);
        /* A systemd scope (tether-PID-N.scope) is systemd's to remove. */
        size_t n = strlen(base);
        bool scope = n > 6 && strcmp(base + n - 6, ".scope") == 0;
        if (!scope)
            (void)cgroup_remove(AT_FDCWD, cg, 50);
    }
    pid_t tp = (pid_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "tether_pid"));
    /* On the record of the trail its tether wrote to: that run ended here. */
    const char *audit = cJSON_GetStringValue(cJSON_GetObjectItem(s, "audit"));
    if (audit != NULL) {
        cleanup_error tether_error_t err = NULL;
        cleanup_json cJSON *rec = audit_record_new("supervisor_gone");
        cJSON_AddNumberToObject(rec, "gone_tether_pid", tp);
        cJSON_AddNumberToObject(rec, "pid", cJSON_GetNumberValue(cJSON_GetObjectItem(s, "pid")));
        const cJSON *argv = cJSON_GetObjectItem(s, "argv");
        cJSON_AddItemToObject(
            rec, "argv0", json_string_or_null(cJSON_GetStringValue(cJSON_GetArrayItem(argv, 0))));
        cJSON_AddStringToObject(rec, "reason",
                                cJSON_IsTrue(cJSON_GetObjectItem(s, "monitored"))
                                    ? "tether ended without cleaning up; the workload's tree "
                                      "ended with it"
                                    : "tether ended without cleaning up; its main process "
                                      "ended with it");
        if (audit_append(audit, rec, &err) < 0)
            log_debug("%s", err->msg);
    }
    cleanup_free char *root = xasprintf("%s/root.%d", dir, (int)tp);
    rmdir(root);
    cleanup_free char *path = xasprintf("%s/%s", dir, name);
    unlink(path);
    log_debug("removed the state of tether %d, which is gone", (int)tp);
}

/* A tether's own mount point (root.PID: a tree), not a container's state. */
static bool tether_own(const char *name)
{
    return strncmp(name, "root.", 5) == 0;
}

/* Empties and removes a container's state directory. */
static void remove_container_dir(int dfd, const char *name, int cfd)
{
    DIR *d = fdopendir(cfd);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    else
        close(cfd);
    unlinkat(dfd, name, AT_REMOVEDIR);
}

/* The pid and start time in a container's "init" file; false when there is none yet. */
static bool container_init(int cfd, int *pid, unsigned long long *start)
{
    char buf[64] = "";
    int ifd = openat(cfd, "init", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ssize_t n = ifd >= 0 ? read(ifd, buf, sizeof buf - 1) : -1;
    if (ifd >= 0)
        close(ifd);
    return n > 0 && sscanf(buf, "%d %llu", pid, start) == 2 && *pid > 0;
}

/* A container's state directory whose init (its "init" file: pid and start time) is gone:
 * the container ended without a poststop hook to remove it. */
static void sweep_container(int dfd, const char *name)
{
    int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0)
        return;
    int pid;
    unsigned long long start;
    if (!container_init(cfd, &pid, &start) || status_start_time(pid) == start) {
        close(cfd);
        return;
    }
    remove_container_dir(dfd, name, cfd);
    log_debug("removed the state of container %s, whose init is gone", name);
}

/* True when the process is gone or a zombie: it runs no more. */
static bool ended(pid_t pid)
{
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    cleanup_free char *text = NULL;
    if (read_file(path, 4096, &text, NULL, NULL) < 0)
        return true;
    char *p = strrchr(text, ')');
    if (p == NULL || sscanf(p + 1, " %c", &state) != 1)
        return true;
    return state == 'Z' || state == 'X';
}

void status_container_ended(const char *id, pid_t init)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_close int dfd = status_dir_open(&err);
    if (dfd < 0)
        return;
    int cfd = openat(dfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0)
        return;
    int pid;
    unsigned long long start;
    /* Only this container's: a later one may have taken the id. */
    if (!container_init(cfd, &pid, &start) || pid != init || !ended(init)) {
        close(cfd);
        return;
    }
    remove_container_dir(dfd, id, cfd);
}

void status_sweep_containers(void)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_close int dfd = status_dir_open(&err);
    if (dfd < 0)
        return;
    cleanup_free char *dir = status_dir();
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_type == DT_DIR && e->d_name[0] != '.' && !tether_own(e->d_name))
            sweep_container(dirfd(d), e->d_name);
    if (d)
        closedir(d);
}

/* A status file's temporary (PID.json.tmp) left by a tether that died while writing it. */
static void sweep_tmp(int dfd, const char *name)
{
    char *end;
    long pid = strtol(name, &end, 10);
    if (end != name && strcmp(end, ".json.tmp") == 0 && pid > 0 && pid <= INT32_MAX &&
        kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        unlinkat(dfd, name, 0);
}

void status_sweep(void)
{
    cgroup_sweep();
    /* Only a directory that passes the trust walk names files to remove and trails to write. */
    cleanup_error tether_error_t err = NULL;
    int dfd = status_dir_open(&err);
    if (dfd < 0)
        return;
    close(dfd);
    cleanup_free char *dir = status_dir();
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_type == DT_DIR && e->d_name[0] != '.' && !tether_own(e->d_name)) {
            sweep_container(dirfd(d), e->d_name);
            continue;
        }
        if (e->d_type == DT_REG && n > 9 && strcmp(e->d_name + n - 9, ".json.tmp") == 0) {
            sweep_tmp(dirfd(d), e->d_name);
            continue;
        }
        /* A claim (below) whose sweeper died before it was done is anyone's again. */
        const char *gone = strstr(e->d_name, ".json.gone.");
        int claimer;
        bool orphan_claim = gone != NULL && e->d_type == DT_REG &&
                            sscanf(gone, ".json.gone.%d", &claimer) == 1 && claimer > 0 &&
                            kill(claimer, 0) < 0 && errno == ESRCH;
        if (!orphan_claim &&
            (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0 || e->d_type != DT_REG))
            continue;
        cleanup_free char *path = xasprintf("%s/%s", dir, e->d_name);
        cleanup_free char *text = NULL;
        cleanup_json cJSON *s = NULL;
        if (read_file(path, 1 << 20, &text, NULL, NULL) < 0 || (s = cJSON_Parse(text)) == NULL)
            continue;
        if (writer_alive(s))
            continue;
        /* Claimed by a rename, which only one of several sweeping tethers wins. */
        int base = gone != NULL ? (int)(gone - e->d_name) + 5 : (int)n;
        cleanup_free char *mine = xasprintf("%.*s.gone.%d", base, e->d_name, (int)getpid());
        cleanup_free char *claimed = xasprintf("%s/%s", dir, mine);
        if (rename(path, claimed) == 0)
            sweep_one(dir, mine, s);
    }
    if (d)
        closedir(d);
}

int status_monitors_running(void)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_close int dfd = status_dir_open(&err);
    int lfd = dfd >= 0 ? openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (d == NULL && lfd >= 0)
        close(lfd);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        cleanup_close int fd =
            openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        cleanup_free char *text = NULL;
        cleanup_json cJSON *s = NULL;
        if (fd >= 0 && read_fd(fd, 1 << 20, &text, NULL, NULL) == 0 &&
            (s = cJSON_Parse(text)) != NULL && writer_alive(s) &&
            cJSON_IsTrue(cJSON_GetObjectItem(s, "monitored")))
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

char *status_path(pid_t tether_pid)
{
    cleanup_free char *dir = status_dir();
    return xasprintf("%s/%d.json", dir, (int)tether_pid);
}

void status_note_decision(const struct decision *d)
{
    cJSON_Delete(noted_reasons);
    noted_reasons = cJSON_CreateArray();
    for (size_t i = 0; i < d->n_reasons; i++)
        cJSON_AddItemToArray(noted_reasons, cJSON_CreateString(d->reasons[i]));
}

/* Fills in what every status file has, and writes it (atomically) in the checked
 * directory. */
static void status_commit(cJSON *s, const struct run *r, pid_t pid, const char *state, int allow)
{
    if (!prepared && status_prepare(NULL) < 0)
        return;
    if (status_fd < 0)
        return;
    if (status_name == NULL) {
        status_name = xasprintf("%d.json", (int)getpid());
        started_at = time(NULL);
    }
    cJSON_AddNumberToObject(s, "tether_pid", getpid());
    cJSON_AddNumberToObject(s, "tether_start", (double)status_start_time(getpid()));
    cJSON_AddNumberToObject(s, "pid", pid);
    cJSON_AddItemToObject(s, "audit", json_string_or_null(r->audit_path));
    cJSON_AddStringToObject(s, "state", state);
    cJSON_AddItemToObject(s, "allow", allow < 0 ? cJSON_CreateNull() : cJSON_CreateBool(allow));
    cJSON_AddNumberToObject(s, "decided_at", (double)time(NULL));
    cJSON_AddNumberToObject(s, "started_at", (double)started_at);
    cJSON_AddStringToObject(s, "engine", r->policy ? r->policy->ops->engine : "none");
    cJSON_AddItemToObject(s, "policy", json_string_or_null(r->policy ? r->policy->source : NULL));
    cJSON *reasons = noted_reasons ? cJSON_Duplicate(noted_reasons, true) : cJSON_CreateArray();
    for (size_t i = 0; noted_reasons == NULL && i < r->d.n_reasons; i++)
        cJSON_AddItemToArray(reasons, cJSON_CreateString(r->d.reasons[i]));
    cJSON_AddItemToObject(s, "reasons", reasons);
    cleanup_free char *text = json_print(s);
    cleanup_free char *tmp = xasprintf("%s.tmp", status_name);
    int fd = openat(status_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    bool ok = write_all(fd, text, strlen(text)) == 0;
    close(fd);
    if (!ok || renameat(status_fd, tmp, status_fd, status_name) < 0)
        unlinkat(status_fd, tmp, 0);
}

void status_write(const struct run *r, const char *state, int allow, int restarts)
{
    cleanup_json cJSON *s = cJSON_CreateObject();
    cJSON *argv = cJSON_AddArrayToObject(s, "argv");
    for (char **a = r->cmd; *a; a++)
        cJSON_AddItemToArray(argv, cJSON_CreateString(*a));
    cJSON_AddItemToObject(s, "cgroup", json_string_or_null(r->cg.dir));
    cJSON_AddNumberToObject(s, "restarts", restarts);
    cJSON_AddBoolToObject(s, "monitored", r->monitored);
    status_commit(s, r, r->sv.main, state, allow);
}

void status_write_container(const struct run *r, const char *id, pid_t init, const char *state,
                            int allow)
{
    cleanup_json cJSON *s = cJSON_CreateObject();
    cJSON *argv = cJSON_AddArrayToObject(s, "argv");
    cJSON_AddItemToArray(argv, cJSON_CreateString("container"));
    cJSON_AddItemToArray(argv, cJSON_CreateString(id));
    cJSON_AddStringToObject(s, "container_id", id);
    cJSON_AddNumberToObject(s, "restarts", 0);
    cJSON_AddBoolToObject(s, "monitored", true);
    status_commit(s, r, init, state, allow);
}

void status_remove(void)
{
    if (status_name != NULL && status_fd >= 0)
        unlinkat(status_fd, status_name, 0);
    free(status_name);
    status_name = NULL;
}

static const char usage[] =
    "Usage: tether status [--json] [--config FILE]\n"
    "       tether status --denied [--since DURATION] [--limit N] [--json] [--config FILE]\n"
    "       tether status --prometheus [--config FILE]\n"
    "List the workloads that tether supervises on this node: tether's pid, the workload's,\n"
    "its state (running, stopped, ending; \"gated\" for a container that the hook allowed\n"
    "and no monitor watches), the last decision and how long ago it was made, restarts, the\n"
    "command (\"container ID\" for a container, whose pid is its init), the container's\n"
    "image and the last decision's reasons.  Root sees /run/tether; another user sees the\n"
    "runs it started itself ($XDG_RUNTIME_DIR/tether, else $TMPDIR/tether-EUID).  A\n"
    "directory that another user made, or that is not mode 0700, is refused (exit 125).\n"
    "\n"
    "      --json           print JSON instead of a table\n"
    "      --denied         the denials of the audit trail (the configuration's audit.path),\n"
    "                       newest last, one a line: denied decisions, denied execs, drift,\n"
    "                       failed launches, with their reasons\n"
    "      --since DURATION only those of the last DURATION (N, Ns, Nm, Nh or Nd)\n"
    "      --limit N        only the last N (default 50; 0: all)\n"
    "      --prometheus     the metrics, counted from the whole trail, in Prometheus's text\n"
    "                       format (see metrics.textfile in tether(1))\n"
    "  -c, --config FILE    node configuration\n"
    "  -a, --audit FILE     audit trail (default: the configuration's audit.path)\n"
    "  -h, --help           show this help\n";

static int by_pid(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    const char *cx = cJSON_GetStringValue(cJSON_GetObjectItem(x, "container_id"));
    const char *cy = cJSON_GetStringValue(cJSON_GetObjectItem(y, "container_id"));
    /* Containers that no monitor watches (no tether pid) come last, by id. */
    const cJSON *px = cJSON_GetObjectItem(x, "tether_pid"),
                *py = cJSON_GetObjectItem(y, "tether_pid");
    bool nx = !cJSON_IsNumber(px), ny = !cJSON_IsNumber(py);
    if (nx != ny)
        return nx ? 1 : -1;
    if (nx)
        return strcmp(cx ? cx : "", cy ? cy : "");
    return (int)px->valuedouble - (int)py->valuedouble;
}

/* A small file of a container's state directory, parsed, or NULL. */
static cJSON *container_file(int cfd, const char *name)
{
    cleanup_close int fd = openat(cfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    cleanup_free char *text = NULL;
    if (fd < 0 || read_fd(fd, 1 << 20, &text, NULL, NULL) < 0)
        return NULL;
    return cJSON_Parse(text);
}

static cJSON *find_container(cJSON *list, const char *id)
{
    cJSON *s;
    cJSON_ArrayForEach (s, list) {
        const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(s, "container_id"));
        if (c != NULL && strcmp(c, id) == 0)
            return s;
    }
    return NULL;
}

/* The containers that the hook allowed (a state directory whose init lives): each joins its
 * monitor's entry, which gains the image, or is an entry of its own, state "gated". */
static void list_containers(int dfd, cJSON *list)
{
    int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (d == NULL && lfd >= 0)
        close(lfd);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.' || tether_own(e->d_name))
            continue;
        cleanup_close int cfd =
            openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0)
            continue;
        int pid;
        unsigned long long start;
        if (!container_init(cfd, &pid, &start) || status_start_time(pid) != start)
            continue;
        cleanup_json cJSON *gate = container_file(cfd, "container.json");
        cJSON *s = find_container(list, e->d_name);
        if (s == NULL) {
            s = cJSON_CreateObject();
            cJSON_AddNullToObject(s, "tether_pid");
            cJSON_AddNumberToObject(s, "pid", pid);
            cJSON *argv = cJSON_AddArrayToObject(s, "argv");
            cJSON_AddItemToArray(argv, cJSON_CreateString("container"));
            cJSON_AddItemToArray(argv, cJSON_CreateString(e->d_name));
            cJSON_AddStringToObject(s, "container_id", e->d_name);
            cJSON_AddStringToObject(s, "state", "gated");
            cJSON_AddBoolToObject(s, "allow", true);
            const cJSON *at = cJSON_GetObjectItem(gate, "decided_at");
            cJSON_AddNumberToObject(s, "decided_at", cJSON_IsNumber(at) ? at->valuedouble : 0);
            cJSON_AddNumberToObject(s, "restarts", 0);
            cJSON_AddBoolToObject(s, "monitored", false);
            const cJSON *r = cJSON_GetObjectItem(gate, "reasons");
            cJSON_AddItemToObject(
                s, "reasons", cJSON_IsArray(r) ? cJSON_Duplicate(r, true) : cJSON_CreateArray());
            cJSON_AddItemToArray(list, s);
        }
        const cJSON *img = cJSON_GetObjectItem(gate, "image");
        cJSON_DeleteItemFromObject(s, "image");
        cJSON_AddItemToObject(s, "image", json_string_or_null(cJSON_GetStringValue(img)));
    }
    if (d)
        closedir(d);
}

/* Text for one table cell: no control characters, at most max bytes (cut between UTF-8
 * characters). */
static void cell(char *out, size_t max, const char *s)
{
    size_t n = 0;
    for (; s && *s && n < max; s++)
        out[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
    if (s && *s)
        while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80)
            n--;
    out[n] = '\0';
}

/* A member as an integer; 0 when it is not a number (never NaN cast to int). */
static long num(const cJSON *s, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(s, name);
    return cJSON_IsNumber(v) && v->valuedouble > -1e15 && v->valuedouble < 1e15
               ? (long)v->valuedouble
               : 0;
}

static void print_table(cJSON **items, int n)
{
    char(*cmds)[128] = xcalloc((size_t)n + 1, sizeof *cmds);
    char(*images)[96] = xcalloc((size_t)n + 1, sizeof *images);
    int wc = 7, wi = 5;
    for (int i = 0; i < n; i++) {
        char cmd[256] = "";
        size_t off = 0;
        const cJSON *a;
        cJSON_ArrayForEach (a, cJSON_GetObjectItem(items[i], "argv")) {
            if (off >= sizeof cmd - 1)
                break; /* long command lines are cut, not overrun */
            int w = snprintf(cmd + off, sizeof cmd - off, "%s%s", off ? " " : "",
                             cJSON_GetStringValue(a));
            off = w < 0 ? sizeof cmd - 1 : off + (size_t)w;
        }
        cell(cmds[i], 60, cmd);
        const char *img = cJSON_GetStringValue(cJSON_GetObjectItem(items[i], "image"));
        cell(images[i], 60, img ? img : "-");
        wc = (int)strlen(cmds[i]) > wc ? (int)strlen(cmds[i]) : wc;
        wi = (int)strlen(images[i]) > wi ? (int)strlen(images[i]) : wi;
    }
    printf("%-8s %-8s %-8s %-8s %-6s %-8s %-*s %-*s %s\n", "TETHER", "PID", "STATE", "DECISION",
           "AGE", "RESTARTS", wc, "COMMAND", wi, "IMAGE", "REASON");
    time_t now = time(NULL);
    for (int i = 0; i < n; i++) {
        const cJSON *s = items[i];
        const cJSON *allow = cJSON_GetObjectItem(s, "allow");
        long age = (long)now - num(s, "decided_at");
        char ages[32], tether[16] = "-", reason[512] = "";
        snprintf(ages, sizeof ages, "%lds", age < 0 ? 0 : age);
        if (cJSON_IsNumber(cJSON_GetObjectItem(s, "tether_pid")))
            snprintf(tether, sizeof tether, "%ld", num(s, "tether_pid"));
        const cJSON *r;
        size_t off = 0;
        cJSON_ArrayForEach (r, cJSON_GetObjectItem(s, "reasons")) {
            char one[256];
            cell(one, sizeof one - 1, cJSON_GetStringValue(r));
            int w = snprintf(reason + off, sizeof reason - off, "%s%s", off ? "; " : "", one);
            off = w < 0 || (size_t)w >= sizeof reason - off ? sizeof reason - 1 : off + (size_t)w;
        }
        printf("%-8s %-8ld %-8s %-8s %-6s %-8ld %-*s %-*s %s\n", tether, num(s, "pid"),
               cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")) ?: "-",
               cJSON_IsTrue(allow)    ? "allow"
               : cJSON_IsFalse(allow) ? "deny"
                                      : "-",
               ages, num(s, "restarts"), wc, cmds[i], wi, images[i], off ? reason : "-");
    }
    free(cmds);
    free(images);
}

static int list(bool json)
{
    /* What someone else's directory holds is not a list of tether's runs. */
    cleanup_error tether_error_t err = NULL;
    cleanup_close int dfd = status_dir_open(&err);
    if (dfd < 0 && err->code == 0) {
        log_error("%s", err->msg);
        return EXIT_FAILED;
    }
    cleanup_json cJSON *list = cJSON_CreateArray();
    int lfd = dfd >= 0 ? openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (d == NULL && lfd >= 0)
        close(lfd);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        cleanup_close int fd =
            openat(dfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        cleanup_free char *text = NULL;
        cJSON *s = NULL;
        if (fd < 0 || read_fd(fd, 1 << 20, &text, NULL, NULL) < 0 ||
            (s = cJSON_Parse(text)) == NULL)
            continue;
        /* A file whose tether is gone is left over from a crash: not a supervised run. */
        if (!writer_alive(s)) {
            cJSON_Delete(s);
            continue;
        }
        cJSON_AddItemToArray(list, s);
    }
    if (d)
        closedir(d);
    if (dfd >= 0)
        list_containers(dfd, list);

    int n = cJSON_GetArraySize(list);
    cJSON **items = xcalloc((size_t)n + 1, sizeof *items);
    int i = 0;
    for (cJSON *s = list->child; s; s = s->next)
        items[i++] = s;
    qsort(items, (size_t)n, sizeof *items, by_pid);
    if (json) {
        cleanup_json cJSON *sorted = cJSON_CreateArray();
        for (i = 0; i < n; i++)
            cJSON_AddItemToArray(sorted, cJSON_Duplicate(items[i], true));
        cleanup_free char *text = cJSON_Print(sorted);
        printf("%s\n", text);
    } else {
        print_table(items, n);
    }
    free(items);
    return 0;
}

/* A denial's one line: when, what, whom, why. */
static cJSON *denial(const cJSON *rec)
{
    const char *event = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "event"));
    if (event == NULL)
        return NULL;
    bool decision = strcmp(event, "decision") == 0;
    if (decision ? !cJSON_IsFalse(cJSON_GetObjectItem(rec, "allow"))
                 : strcmp(event, "exec_denied") != 0 && strcmp(event, "drift") != 0 &&
                       strcmp(event, "launch_failed") != 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    static const char *const keep[] = {"time",  "event", "phase", "stage",  "container_id", "image",
                                       "argv0", "pid",   "path",  "action", "hash"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *v = cJSON_GetObjectItem(rec, keep[i]);
        if (v != NULL && !cJSON_IsNull(v))
            cJSON_AddItemToObject(o, keep[i], cJSON_Duplicate(v, true));
    }
    if (cJSON_GetObjectItem(o, "argv0") == NULL) {
        const cJSON *w = cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "workload"), "argv0");
        if (cJSON_IsString(w) && cJSON_GetObjectItem(o, "container_id") == NULL)
            cJSON_AddStringToObject(o, "argv0", w->valuestring);
    }
    char *why = NULL;
    if (decision) {
        const cJSON *r;
        cJSON_ArrayForEach (r, cJSON_GetObjectItem(rec, "reasons")) {
            char *joined = xasprintf("%s%s%s", why ? why : "", why ? "; " : "",
                                     cJSON_GetStringValue(r) ? r->valuestring : "");
            free(why);
            why = joined;
        }
    } else {
        why = xstrdup(cJSON_GetStringValue(cJSON_GetObjectItem(rec, "reason")) ?: "");
    }
    cJSON_AddStringToObject(o, "reason", why ? why : "");
    free(why);
    return o;
}

static void print_denial(const cJSON *o)
{
    const char *event = cJSON_GetStringValue(cJSON_GetObjectItem(o, "event"));
    const char *phase = cJSON_GetStringValue(cJSON_GetObjectItem(o, "phase"));
    const char *cid = cJSON_GetStringValue(cJSON_GetObjectItem(o, "container_id"));
    const char *image = cJSON_GetStringValue(cJSON_GetObjectItem(o, "image"));
    const char *argv0 = cJSON_GetStringValue(cJSON_GetObjectItem(o, "argv0"));
    const char *action = cJSON_GetStringValue(cJSON_GetObjectItem(o, "action"));
    char what[64], who[160], why[1024];
    if (strcmp(event, "decision") == 0)
        snprintf(what, sizeof what, "denied(%s)", phase ? phase : "?");
    else if (strcmp(event, "drift") == 0)
        snprintf(what, sizeof what, "drift(%s)", action ? action : "?");
    else
        snprintf(what, sizeof what, "%s", event);
    if (cid != NULL)
        snprintf(who, sizeof who, "container %.64s%s%.80s%s", cid, image ? " (" : "",
                 image ? image : "", image ? ")" : "");
    else
        snprintf(who, sizeof who, "%.150s", argv0 ? argv0 : "?");
    cell(why, sizeof why - 1, cJSON_GetStringValue(cJSON_GetObjectItem(o, "reason")));
    char w[200];
    cell(w, sizeof w - 1, who);
    printf("%s %s %s: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(o, "time")) ?: "?", what, w,
           *why ? why : "(no reason given)");
}

/* DURATION: a number of seconds, or with s, m, h or d. */
static int parse_duration(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int64_t unit = 1;
    if (n > 1 && strchr("smhd", s[n - 1])) {
        unit = s[n - 1] == 's' ? 1 : s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ? 3600 : 86400;
        n--;
    }
    cleanup_free char *num = xstrndup(s, n);
    int64_t v;
    if (parse_int64(num, 0, INT64_MAX / 86400, &v) < 0)
        return -1;
    *out = v * unit;
    return 0;
}

static int denied(const char *path, const char *since, int64_t limit, bool json)
{
    /* Records carry RFC 3339 UTC times of one width: the cut-off compares as a string. */
    char cutoff[32] = "";
    if (since != NULL) {
        int64_t secs;
        if (parse_duration(since, &secs) < 0) {
            log_error("status: --since `%s`: expected N, Ns, Nm, Nh or Nd", since);
            return EXIT_FAILED;
        }
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        time_t t = now.tv_sec - (time_t)secs;
        struct tm tm;
        strftime(cutoff, sizeof cutoff, "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
        snprintf(cutoff + strlen(cutoff), sizeof cutoff - strlen(cutoff), ".%03ldZ",
                 now.tv_nsec / 1000000);
    }
    cleanup_file FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT) {
            if (json)
                printf("[]\n");
            return 0;
        }
        log_error("audit log `%s`: %s", path, strerror(errno));
        return EXIT_FAILED;
    }
    cleanup_json cJSON *found = cJSON_CreateArray();
    int count = 0;
    cleanup_free char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        cleanup_json cJSON *rec = cJSON_ParseWithLength(line, (size_t)n);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "time"));
        if (!cJSON_IsObject(rec) || (since != NULL && (t == NULL || strcmp(t, cutoff) < 0)))
            continue;
        cJSON *o = denial(rec);
        if (o == NULL)
            continue;
        cJSON_AddItemToArray(found, o);
        if (limit > 0 && ++count > limit) {
            cJSON_DeleteItemFromArray(found, 0);
            count--;
        }
    }
    if (json) {
        cleanup_free char *text = cJSON_Print(found);
        printf("%s\n", text);
        return 0;
    }
    const cJSON *o;
    cJSON_ArrayForEach (o, found)
        print_denial(o);
    return 0;
}

static int prometheus(const char *path)
{
    cleanup_json cJSON *m = metrics_new();
    cleanup_file FILE *f = fopen(path, "re");
    if (f == NULL && errno != ENOENT) {
        log_error("audit log `%s`: %s", path, strerror(errno));
        return EXIT_FAILED;
    }
    if (f != NULL)
        metrics_count_stream(m, f);
    cleanup_free char *text = metrics_format(m, status_monitors_running());
    fputs(text, stdout);
    return 0;
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"denied", no_argument, NULL, 'd'},
        {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"prometheus", no_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"audit", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false, want_denied = false, want_prometheus = false;
    const char *since = NULL, *limit_arg = NULL, *config_file = NULL, *audit_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'd':
            want_denied = true;
            break;
        case 's':
            since = optarg;
            break;
        case 'l':
            limit_arg = optarg;
            break;
        case 'p':
            want_prometheus = true;
            break;
        case 'c':
            config_file = optarg;
            break;
        case 'a':
            audit_file = optarg;
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether status --help' for more information.\n", 1);
        }
    }
    if (optind < argc || (want_denied && want_prometheus) ||
        ((since || limit_arg) && !want_denied) || (want_prometheus && json))
        return cli_usage("Try 'tether status --help' for more information.\n", 1);
    int64_t limit = 50;
    if (limit_arg != NULL && parse_int64(limit_arg, 0, INT32_MAX, &limit) < 0) {
        log_error("status: --limit `%s`: expected a number from 0", limit_arg);
        return EXIT_FAILED;
    }

    /* The trail, and where its records go besides, for the records the sweep writes. */
    struct config cfg;
    cleanup_error tether_error_t err = NULL;
    if (config_load(config_file, &cfg, &err) < 0) {
        config_clear(&cfg);
        if (want_denied || want_prometheus || config_file != NULL) {
            log_error("%s", err->msg);
            return EXIT_FAILED;
        }
        log_warn("%s", err->msg);
        config_parse("(defaults)", "{}", 2, &cfg, NULL);
    }
    cleanup_free char *trail = xstrdup(audit_file ? audit_file : cfg.audit_path);
    audit_syslog_set(cfg.audit_syslog ? cfg.audit_syslog_socket : NULL);
    metrics_configure(&cfg, trail);
    config_clear(&cfg);

    status_sweep();
    if (want_denied)
        return denied(trail, since, limit, json);
    if (want_prometheus)
        return prometheus(trail);
    return list(json);
}

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
#include "tether.h"

static int status_fd = -1; /* the checked directory, once prepared */
static bool prepared;
static char *status_name; /* this tether's file in it */
static time_t started_at;

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
        for (int i = 0; !scope && i < 50 && rmdir(cg) < 0 && errno == EBUSY; i++)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
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

/* A container's state directory whose init (its "init" file: pid and start time) is gone:
 * the container ended without a poststop hook to remove it. */
static void sweep_container(int dfd, const char *name)
{
    int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0)
        return;
    char buf[64] = "";
    int ifd = openat(cfd, "init", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ssize_t n = ifd >= 0 ? read(ifd, buf, sizeof buf - 1) : -1;
    if (ifd >= 0)
        close(ifd);
    int pid;
    unsigned long long start;
    if (n <= 0 || sscanf(buf, "%d %llu", &pid, &start) != 2 || pid <= 0 ||
        status_start_time(pid) == start) {
        close(cfd);
        return;
    }
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
    log_debug("removed the state of container %s, whose init is gone", name);
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
        if (e->d_type == DT_DIR && e->d_name[0] != '.' && strncmp(e->d_name, "root.", 5) != 0) {
            sweep_container(dirfd(d), e->d_name);
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
    "Usage: tether status [--json]\n"
    "List the workloads that tether supervises on this node: tether's pid, the workload's,\n"
    "its state (running, stopped, ending), the last decision and how long ago it was made,\n"
    "restarts, and the command (\"container ID\" for a container's monitor, whose pid\n"
    "is the container's init).  Root sees /run/tether; another user sees the runs it\n"
    "started itself ($XDG_RUNTIME_DIR/tether, else $TMPDIR/tether-EUID).  A directory that\n"
    "another user made, or that is not mode 0700, is refused (exit 125).\n"
    "\n"
    "      --json           print a JSON array instead of a table\n"
    "  -h, --help           show this help\n";

static int by_pid(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "tether_pid")) -
           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(y, "tether_pid"));
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h')
            return cli_usage(usage, 0);
        else
            return cli_usage("Try 'tether status --help' for more information.\n", 1);
    }
    if (optind < argc)
        return cli_usage("Try 'tether status --help' for more information.\n", 1);

    status_sweep();
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
        printf("%-8s %-8s %-8s %-8s %-6s %-8s %s\n", "TETHER", "PID", "STATE", "DECISION", "AGE",
               "RESTARTS", "COMMAND");
        time_t now = time(NULL);
        for (i = 0; i < n; i++) {
            const cJSON *s = items[i];
            const cJSON *allow = cJSON_GetObjectItem(s, "allow");
            char cmd[256] = "";
            size_t off = 0;
            const cJSON *a;
            cJSON_ArrayForEach (a, cJSON_GetObjectItem(s, "argv")) {
                if (off >= sizeof cmd - 1)
                    break; /* long command lines are cut, not overrun */
                int w = snprintf(cmd + off, sizeof cmd - off, "%s%s", off ? " " : "",
                                 cJSON_GetStringValue(a));
                off = w < 0 ? sizeof cmd - 1 : off + (size_t)w;
            }
            long age =
                (long)(now - (time_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "decided_at")));
            char ages[32];
            snprintf(ages, sizeof ages, "%lds", age < 0 ? 0 : age);
            printf("%-8d %-8d %-8s %-8s %-6s %-8d %s\n",
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "tether_pid")),
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "pid")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")),
                   cJSON_IsTrue(allow)    ? "allow"
                   : cJSON_IsFalse(allow) ? "deny"
                                          : "-",
                   ages, (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "restarts")), cmd);
        }
    }
    free(items);
    return 0;
}

/* The workload's cgroup (see cgroup.h). */
#define _GNU_SOURCE
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "systemd.h"

/* Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a
 * hybrid system. */
static char *cgroup2_mount(void)
{
    /* Where systemd and every distribution mount it (pure or hybrid): one statfs each, not
     * a read of every mount of the host. */
    static const char *const usual[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++) {
        struct statfs sf;
        if (statfs(usual[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
            return xstrdup(usual[i]);
    }
    cleanup_file FILE *f = fopen("/proc/self/mountinfo", "re");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        if (sep == NULL || strncmp(sep + 3, "cgroup2 ", 8) != 0)
            continue;
        char mnt[4096];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1)
            return xstrdup(mnt);
    }
    return NULL;
}

/* The cgroup2 path of a process ("0::/path" in /proc/PID/cgroup), or NULL. */
static char *cgroup_path_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    cleanup_free char *text = NULL;
    if (read_file(path, 64 * 1024, &text, NULL, NULL) < 0)
        return NULL;
    char *v2 = strstr(text, "0::");
    if (v2 == NULL || (v2 != text && v2[-1] != '\n'))
        return NULL;
    v2 += 3;
    v2[strcspn(v2, "\n")] = '\0';
    return xstrdup(v2);
}

bool cgroup_of_pid(pid_t pid, struct cgroup *cg)
{
    memset(cg, 0, sizeof *cg);
    cg->procs_fd = -1;
    cleanup_free char *mnt = cgroup2_mount();
    char *rel = mnt ? cgroup_path_of(pid) : NULL;
    if (rel == NULL)
        return false;
    cg->rel = rel;
    cg->dir = xasprintf("%s%s", mnt, rel);
    cg->foreign = true;
    return true;
}

/* Under systemd, a unit's cgroup is systemd's unless it was delegated (Delegate=yes, which
 * systemd 251 and later mark with the trusted.delegate or user.delegate attribute): groups
 * of ours inside someone else's scope break its rules, so there is then no cgroup, and the
 * pid namespace alone holds the tree. */
static bool ours_to_divide(const char *dir)
{
    if (!systemd_booted())
        return true; /* no systemd: the hierarchy has no other manager to respect */
    static const char *const attrs[] = {"trusted.delegate", "user.delegate"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        char v[8] = "";
        ssize_t n = getxattr(dir, attrs[i], v, sizeof v - 1);
        if (n > 0 && v[0] == '1')
            return true;
    }
    log_debug("`%s` is systemd's and not delegated: no cgroup of our own", dir);
    return false;
}

bool cgroup_systemd_owns(void)
{
    cleanup_free char *mnt = cgroup2_mount();
    cleanup_free char *own = mnt ? cgroup_path_of(getpid()) : NULL;
    if (own == NULL)
        return false;
    cleanup_free char *dir = xasprintf("%s%s", mnt, own);
    return !ours_to_divide(dir);
}

bool cgroup_create(struct cgroup *cg)
{
    memset(cg, 0, sizeof *cg);
    cg->procs_fd = -1;
    cleanup_free char *mnt = cgroup2_mount();
    cleanup_free char *own = cgroup_path_of(getpid());
    if (mnt == NULL || own == NULL)
        return false;
    cleanup_free char *parent = xasprintf("%s%s", mnt, own);
    if (!ours_to_divide(parent))
        return false;
    static unsigned serial;
    const char *sep = strcmp(own, "/") == 0 ? "" : "/";
    cg->rel = xasprintf("%s%stether-%d-%u", own, sep, (int)getpid(), serial++);
    cg->dir = xasprintf("%s%s", mnt, cg->rel);
    cleanup_free char *procs = xasprintf("%s/cgroup.procs", cg->dir);
    if (mkdir(cg->dir, 0755) < 0 || (cg->procs_fd = open(procs, O_WRONLY | O_CLOEXEC)) < 0) {
        log_debug("no cgroup for the workload (%s): %s", cg->dir, strerror(errno));
        rmdir(cg->dir);
        free(cg->dir);
        free(cg->rel);
        cg->dir = cg->rel = NULL;
        return false;
    }
    return true;
}

int cgroup_enter(const struct cgroup *cg)
{
    if (cg->procs_fd < 0)
        return 0;
    return write(cg->procs_fd, "0\n", 2) == 2 ? 0 : -1;
}

/* Adds the members of the group open at dir, then of each group below it: 0, or -1. */
static int pids_below(int dir, int depth, size_t *groups, pid_t **pids, size_t *n)
{
    if (++*groups > CGROUP_WALK_MAX || depth > 32)
        return -1;
    cleanup_close int procs = openat(dir, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    cleanup_free char *text = NULL;
    if (procs < 0 || read_fd(procs, 4 << 20, &text, NULL, NULL) < 0)
        return -1;
    for (char *save = NULL, *t = strtok_r(text, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        int64_t v;
        if (parse_int64(t, 1, INT32_MAX, &v) == 0) {
            *pids = xrealloc(*pids, (*n + 1) * sizeof **pids);
            (*pids)[(*n)++] = (pid_t)v;
        }
    }
    int fd = fcntl(dir, F_DUPFD_CLOEXEC, 3);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int sub = openat(dir, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        /* A group removed since the listing is no member of anything: not an error. */
        if (sub < 0) {
            rc = errno == ENOENT ? 0 : -1;
            continue;
        }
        rc = pids_below(sub, depth + 1, groups, pids, n);
        close(sub);
    }
    closedir(d);
    return rc;
}

int cgroup_pids(const struct cgroup *cg, pid_t **pids, size_t *n)
{
    *pids = NULL;
    *n = 0;
    cleanup_close int dir = open(cg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t groups = 0;
    if (dir < 0 || pids_below(dir, 0, &groups, pids, n) < 0) {
        free(*pids);
        *pids = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

int cgroup_freeze(const struct cgroup *cg, bool frozen)
{
    cleanup_free char *path = xasprintf("%s/cgroup.freeze", cg->dir);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, frozen ? "1" : "0", 1) != 1)
        return -1;
    /* Wait (briefly) until cgroup.events says the whole tree reached the state. */
    cleanup_free char *events = xasprintf("%s/cgroup.events", cg->dir);
    const char *want = frozen ? "frozen 1" : "frozen 0";
    for (int i = 0; i < 200; i++) {
        cleanup_free char *text = NULL;
        if (read_file(events, 4096, &text, NULL, NULL) == 0 && strstr(text, want) != NULL)
            return 0;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    errno = ETIMEDOUT;
    return -1;
}

bool cgroup_has(const struct cgroup *cg, pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    cleanup_free char *text = NULL;
    if (cg->rel == NULL || read_file(path, 64 * 1024, &text, NULL, NULL) < 0)
        return false;
    /* The cgroup v2 line, "0::PATH": the group, or one below it. */
    cleanup_free char *want = xasprintf("0::%s", cg->rel);
    size_t len = strlen(want);
    for (const char *l = text; *l != '\0';) {
        if (strncmp(l, want, len) == 0 &&
            (l[len] == '\n' || l[len] == '\0' || (l[len] == '/' && strcmp(cg->rel, "/") != 0)))
            return true;
        const char *next = strchr(l, '\n');
        if (next == NULL)
            break;
        l = next + 1;
    }
    return false;
}

/* Removes the group name under dir, the groups below it first (the workload may have made
 * some, and a group with groups below it cannot go): 0, or -1 with errno. */
static int rmdir_groups(int dir, const char *name, int depth)
{
    if (depth <= 32) {
        int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (d == NULL && fd >= 0)
            close(fd);
        for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
            if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                (void)rmdir_groups(dirfd(d), e->d_name, depth + 1);
        if (d != NULL)
            closedir(d);
    }
    return unlinkat(dir, name, AT_REMOVEDIR);
}

int cgroup_remove(int dir, const char *name, int tries)
{
    for (int i = 1;; i++) {
        if (rmdir_groups(dir, name, 0) == 0)
            return 0;
        if (errno != EBUSY || i >= tries)
            return -1;
        /* The last processes may still be on their way out. */
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
}

void cgroup_destroy(struct cgroup *cg)
{
    if (cg->procs_fd >= 0)
        close(cg->procs_fd);
    if (cg->dir != NULL && !cg->foreign)
        (void)cgroup_remove(AT_FDCWD, cg->dir, 100);
    free(cg->dir);
    free(cg->rel);
    memset(cg, 0, sizeof *cg);
    cg->procs_fd = -1;
}

void cgroup_sweep(void)
{
    cleanup_free char *mnt = cgroup2_mount();
    cleanup_free char *own = mnt ? cgroup_path_of(getpid()) : NULL;
    if (own == NULL)
        return;
    cleanup_free char *dir = xasprintf("%s%s", mnt, own);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        int pid;
        unsigned n;
        char end;
        if (e->d_type != DT_DIR || sscanf(e->d_name, "tether-%d-%u%c", &pid, &n, &end) != 2 ||
            pid <= 0 || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        /* Its tether is gone.  The kernel killed what ran in it when the init died with
         * tether; what may be left (a wrapper's runtime) goes now. */
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        int kfd = openat(fd, "cgroup.kill", O_WRONLY | O_CLOEXEC);
        if (kfd >= 0) {
            (void)!write(kfd, "1", 1);
            close(kfd);
        }
        close(fd);
        (void)cgroup_remove(dirfd(d), e->d_name, 50);
    }
    if (d)
        closedir(d);
}

/* The workload's process tree (see tree.h). */
#define _GNU_SOURCE
#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "core/cleanup.h"
#include "core/util.h"

/* A process's parent and start time (clock ticks since boot), from /proc/PID/stat. */
static int stat_parent(pid_t pid, pid_t *ppid, unsigned long long *start)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (len <= 0)
        return -1;
    buf[len] = '\0';
    /* The fields after the command's closing parenthesis: state, ppid, ..., starttime. */
    char *rp = strrchr(buf, ')');
    int parent;
    if (rp == NULL || sscanf(rp + 2,
                             "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                             "%*d %*d %*d %llu",
                             &parent, start) != 2)
        return -1;
    *ppid = parent;
    return 0;
}

pid_t tree_ppid(pid_t pid)
{
    pid_t ppid;
    unsigned long long start;
    return stat_parent(pid, &ppid, &start) < 0 ? -1 : ppid;
}

/* Direct-mapped: a process that loses its slot is walked up from again, nothing worse. */
#define MEMO_SLOTS 1024

struct tree_memo {
    struct {
        unsigned long long start;
        pid_t pid;
        bool in;
    } slot[MEMO_SLOTS];
};

bool tree_descends(struct tree_memo **memo, pid_t pid, pid_t top)
{
    if (*memo == NULL)
        *memo = xcalloc(1, sizeof **memo);
    struct tree_memo *m = *memo;
    cleanup_free pid_t *walked = NULL;
    cleanup_free unsigned long long *starts = NULL;
    size_t n = 0, cap = 0;
    bool in = false;
    /* Up the chain of parents, however long: pids only ever point to older processes. */
    while (pid > 1) {
        pid_t ppid;
        unsigned long long start;
        if (stat_parent(pid, &ppid, &start) < 0)
            return false; /* gone, or its chain changed under us: nothing is remembered */
        size_t i = (size_t)pid % MEMO_SLOTS;
        if (m->slot[i].pid == pid && m->slot[i].start == start) {
            in = m->slot[i].in;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            walked = xrealloc(walked, cap * sizeof *walked);
            starts = xrealloc(starts, cap * sizeof *starts);
        }
        walked[n] = pid, starts[n++] = start;
        if (ppid == top) {
            in = true;
            break;
        }
        pid = ppid;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = (size_t)walked[k] % MEMO_SLOTS;
        m->slot[i].pid = walked[k], m->slot[i].start = starts[k], m->slot[i].in = in;
    }
    return in;
}

/* Every pid in /proc. */
static size_t all_pids(pid_t **out)
{
    size_t n = 0, cap = 256;
    *out = xmalloc(cap * sizeof **out);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        int64_t pid;
        if (parse_int64(e->d_name, 1, INT32_MAX, &pid) < 0)
            continue;
        if (n == cap)
            *out = xrealloc(*out, (cap *= 2) * sizeof **out);
        (*out)[n++] = (pid_t)pid;
    }
    if (d)
        closedir(d);
    return n;
}

size_t tree_descendants(pid_t root, pid_t **out)
{
    cleanup_free pid_t *pids = NULL;
    size_t all = all_pids(&pids);
    cleanup_free pid_t *ppids = xmalloc((all + 1) * sizeof *ppids);
    for (size_t i = 0; i < all; i++)
        ppids[i] = tree_ppid(pids[i]);
    /* Breadth first: each process is taken once, as the child of the one before it. */
    *out = xmalloc((all + 1) * sizeof **out);
    size_t n = 0;
    for (size_t i = 0; i < all; i++)
        if (ppids[i] == root)
            (*out)[n++] = pids[i], ppids[i] = -1;
    for (size_t head = 0; head < n; head++) {
        pid_t p = (*out)[head];
        for (size_t i = 0; i < all; i++)
            if (ppids[i] == p)
                (*out)[n++] = pids[i], ppids[i] = -1;
    }
    return n;
}

static uint64_t fd_ino(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

uint64_t tree_pidns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pid);
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

bool tree_pidns_within(pid_t pid, uint64_t ns)
{
    if (ns == 0)
        return false;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    /* Up the chain of parents: the kernel refuses to go above the caller's own namespace,
     * and nests at most 32 deep. */
    for (int depth = 0; fd >= 0 && depth < 40; depth++) {
        if (fd_ino(fd) == ns) {
            close(fd);
            return true;
        }
        int parent = ioctl(fd, NS_GET_PARENT);
        close(fd);
        fd = parent;
    }
    if (fd >= 0)
        close(fd);
    return false;
}

size_t tree_pidns_members(uint64_t ns, pid_t except, pid_t **out)
{
    size_t all = all_pids(out), n = 0;
    for (size_t i = 0; i < all; i++)
        if ((*out)[i] != except && tree_pidns_within((*out)[i], ns))
            (*out)[n++] = (*out)[i];
    return n;
}

static bool among(const pid_t *pids, size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

void tree_kill_cgroups(const pid_t *pids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct cgroup cg;
        if (!cgroup_of_pid(pids[i], &cg))
            continue;
        cleanup_free pid_t *members = NULL;
        size_t m = 0;
        bool all_ours = cgroup_pids(&cg, &members, &m) == 0 && m > 0;
        for (size_t j = 0; all_ours && j < m; j++)
            all_ours = among(pids, n, members[j]);
        if (all_ours) {
            cleanup_free char *path = xasprintf("%s/cgroup.kill", cg.dir);
            cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd >= 0)
                (void)!write(fd, "1", 1);
        }
        free(cg.dir);
        free(cg.rel);
    }
}

/* A cgroup (v2) of the workload's own: exact membership of its process tree, the freezer for
 * `stop`, and cgroup.kill.  Optional: without a writable cgroup2 hierarchy, monitoring falls
 * back to the process tree and SIGSTOP. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct cgroup {
    char *dir;    /* /sys/fs/cgroup/.../tether-<pid>-<n>, or NULL when there is none */
    char *rel;    /* the same, relative to the hierarchy's root, as /proc/PID/cgroup says */
    int procs_fd; /* cgroup.procs, open for the child to write itself into */
    bool foreign; /* someone else's (cgroup_of_pid, a systemd scope): never removed by us */
};

/* Creates a cgroup under tether's own; false (and dir NULL) when that cannot be done. */
bool cgroup_create(struct cgroup *cg);
/* The cgroup2 group a process is in (someone else's: destroy only frees the names). */
bool cgroup_of_pid(pid_t pid, struct cgroup *cg);
/* True when systemd manages the hierarchy and has not delegated tether's own cgroup to it:
 * cgroup_create then makes none, and a systemd scope is the way (systemd.h). */
bool cgroup_systemd_owns(void);
/* In the child, before exec: moves the caller into the cgroup. */
int cgroup_enter(const struct cgroup *cg);
/* The pids in it and in the groups below it (a process may make one and move there where
 * its cgroup file system is writable: systemd in a container puts every process in one);
 * -1 on error, or past CGROUP_WALK_MAX groups, 32 deep. */
#define CGROUP_WALK_MAX 4096
int cgroup_pids(const struct cgroup *cg, pid_t **pids, size_t *n);
int cgroup_freeze(const struct cgroup *cg, bool frozen);
/* True when the process is a member, of it or of a group below it (its /proc/PID/cgroup
 * names the cgroup, or a path under it). */
bool cgroup_has(const struct cgroup *cg, pid_t pid);
/* Removes the group name under dir (AT_FDCWD and a path will do), and the groups below it
 * first, trying again for 10 ms each time it is busy, up to tries times: 0, or -1. */
int cgroup_remove(int dir, const char *name, int tries);
/* Removes the cgroup once it is empty. */
void cgroup_destroy(struct cgroup *cg);
/* Removes the tether-PID-N groups under tether's own cgroup whose tether is gone (after
 * killing what is left in them). */
void cgroup_sweep(void);

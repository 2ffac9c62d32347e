/* Applying a decision's confinement to the workload: prepared in the parent, where failing is
 * cheap and can be reported, applied in the child in a fixed order with seccomp last. */
#pragma once

#include <seccomp.h>
#include <sys/types.h>

#include "../policy/confine.h"
#include "core/error.h"

struct confine_plan {
    scmp_filter_ctx filter; /* NULL: no seccomp filter */
    /* Set after the change of credentials (which clears it) and before seccomp: the signal
     * the workload gets when its parent dies, and that parent's pid (0 for none). */
    int pdeath_signal;
    pid_t parent;
    /* Called once the namespaces and mounts are in place, before anything is dropped: 0,
     * or -1 with errno and *step. */
    int (*after_mounts)(void *arg, const char **step);
    void *after_arg;
};

/* Builds the seccomp filter for the native architecture. */
int confine_prepare(const struct confine *c, struct confine_plan *plan, tether_error_t *err);
void confine_plan_release(struct confine_plan *plan);

/* In the parent, right before fork: the namespaces a process enters for its children (pid).
 * *restore_fd (or -1) must then go to confine_leave_parent() right after the fork, so that
 * tether's later children are not born into the workload's namespace. */
int confine_enter_parent(const struct confine *c, int *restore_fd, tether_error_t *err);
void confine_leave_parent(int restore_fd);

/* In the child, before exec: returns 0, or -1 with errno set and *step naming what failed.
 * The order: namespaces and mounts, rlimits, capability bounding set, user, capability
 * sets and ambient capabilities, no_new_privs, seccomp. */
int confine_apply(const struct confine *c, const struct confine_plan *plan, const char **step);

/* The environment the workload is given.  Without an env block, envp itself.  With one, the
 * entries of envp that are variables ("NAME=VALUE"), with `clear` only those whose names
 * are allowed, each name once (its first entry), and the `set` entries in place of any of
 * the same name.  The array is new (NULL-terminated); its strings are envp's and c's. */
char **confine_env_filter(const struct confine *c, char *const envp[]);

/* The system calls the "default" filter denies (NULL-terminated), for docs and tests. */
extern const char *const confine_default_denied[];

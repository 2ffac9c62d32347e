/* The monitor a gating hook leaves behind for a container it allowed with a monitor block,
 * and the guard that takes the monitor's place when it dies or hangs (container_monitor.c). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "core/error.h"
#include "run.h"

/* Starts the monitor detached from the runtime, with r's node, engine and decision (its
 * state directory <statusdir>/<id>/ must exist); returns once the monitor and its guard
 * watch.  Their pids are in <statusdir>/<id>/monitor.pid and guard.pid. */
int container_monitor_spawn(struct run *r, const char *id, const char *bundle, const cJSON *state,
                            pid_t init, tether_error_t *err);
/* Ends the monitor, and with it its guard, once the container has ended (from poststop). */
void container_monitor_stop(const char *id);

/* --- the container's processes --- */

/* The container's own cgroup: its init's, unless that is the root or holds the caller (no
 * cgroup of its own).  False, with cg->dir NULL, when it has none. */
bool container_cgroup(pid_t init, struct cgroup *cg);
/* Every process of the container: its cgroup's members, else its init and the init's
 * descendants.  Returns the count. */
size_t container_pids(const struct cgroup *cg, pid_t init, pid_t **out);
/* A signal to every process of the container; SIGKILL goes through cgroup.kill first. */
void container_signal(const struct cgroup *cg, pid_t init, int init_pidfd, int sig);
/* Freezes or thaws the container: its cgroup's freezer, else SIGSTOP and SIGCONT. */
int container_freeze(const struct cgroup *cg, pid_t init, int init_pidfd, bool frozen);

/* --- the guard --- */

/* The monitor beats at least this often, and is taken for hung when no beat came for
 * GUARD_IDLE_MS, or, while it evaluates, for the policy's bound plus GUARD_IDLE_MS. */
#define GUARD_PULSE_MS 1000
#define GUARD_IDLE_MS 5000

struct guard_target {
    const char *audit_path, *id;
    pid_t init;
    const struct cgroup *cg; /* the container's own cgroup, or one with dir NULL */
    const char *on_drift;    /* log, stop or kill */
    char *pid_file;          /* <statusdir>/<id>/guard.pid */
};

struct guard {
    pid_t pid;   /* 0 when there is none */
    int pidfd;   /* readable once the guard ended */
    int beat_fd; /* the monitor's end of the heartbeat pipe */
};

/* Forks the guard of the calling monitor. */
int guard_start(struct guard *g, const struct guard_target *t, tether_error_t *err);
/* Tells the guard that the monitor is alive and beats again within allowance_ms. */
void guard_beat(struct guard *g, uint32_t allowance_ms);
/* Reaps a guard that ended; returns why it did, as a phrase (free it). */
char *guard_reap(struct guard *g);
/* The monitor ends with its container: tells the guard, which ends without acting. */
void guard_stop(struct guard *g);

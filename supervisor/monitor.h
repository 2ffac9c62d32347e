/* Drift monitoring: the resident loop that re-measures the workload and its host on events and
 * on a timer, asks the policy again, and enforces the decision's monitor block.  One loop
 * serves both kinds of workload: one that `tether run` starts and supervises as its parent,
 * and a container that a gating hook let a runtime start (container_monitor.c). */
#pragma once

#include <cjson/cJSON.h>
#include <sys/types.h>

#include "run.h"

/* Exit statuses of a monitored `tether run` beyond the workload's own. */
#define EXIT_DRIFT_KILLED 78  /* the workload was killed because it drifted */
#define EXIT_RESTART_LIMIT 79 /* it drifted again after the last allowed restart */

/* Starts the workload of r (its gate passed) under watch, and supervises it until it
 * ends; returns tether's exit status.  *started says whether the workload ever started. */
int monitor_run(struct run *r, bool *started);

/* A container that a runtime started: nothing to launch, and nothing to restart (that is the
 * runtime's business, so restart is a kill here). */
struct monitor_container {
    const char *id, *bundle;
    const cJSON *state; /* the runtime's state document, as the hook read it */
    pid_t init;         /* the container's init, as the host sees it */
    int ready_fd;       /* a byte is written to it once the monitor and its guard watch */
};

/* Watches the container with the node, engine and decision in r (r->cfg, r->policy, r->d,
 * r->audit_path, r->config_file and the files' stat at load) until its init ends, under a
 * guard that takes over when the monitor dies or hangs.  Call with SIGTERM, SIGINT and
 * SIGHUP blocked: they ask the monitor to end, which it does only once the container has.
 * Returns 0, or EXIT_FAILED when it could not start watching. */
int monitor_container(struct run *r, const struct monitor_container *c);

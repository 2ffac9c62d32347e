/* The node's view of what tether supervises: one small JSON file per running `tether run`
 * and per container monitor, read by `tether status`. */
#pragma once

#include <stdint.h>

#include "run.h"

/* Writes (atomically) this tether's status file: state, last decision (1 allow, 0 deny, -1
 * none yet) as of now, restarts. */
void status_write(const struct run *r, const char *state, int allow, int restarts);
/* The same for a container's monitor: argv is ["container", ID], and container_id says so. */
void status_write_container(const struct run *r, const char *id, pid_t init, const char *state,
                            int allow);
void status_remove(void);
/* The reasons of a monitor's last decision, for the status file written next (until then
 * it holds those of the run's decision). */
void status_note_decision(const struct decision *d);
/* How many monitors (of `tether run` and of containers) have a status file and live. */
int status_monitors_running(void);
/* The status file of the tether (or container monitor) with this pid. */
char *status_path(pid_t tether_pid);
/* The directory of status files: /run/tether when root, else $XDG_RUNTIME_DIR/tether, else
 * $TMPDIR/tether-EUID (/tmp without an absolute $TMPDIR). */
char *status_dir(void);
/* Removes what tethers that are gone left behind: status files, cgroups, mount points.
 * Run at the start of `tether run` and by `tether status`. */
void status_sweep(void);
/* Only the state directories of containers whose init is gone (run by every gating hook). */
void status_sweep_containers(void);
/* Removes the state directory of container id when its init, init, has ended (from its
 * monitor's end: crun calls no poststop hook when a container fails to start). */
void status_container_ended(const char *id, pid_t init);
/* Opens that directory (O_PATH), made mode 0700 when absent, after the trust walk of its
 * parent; a directory that is not tether's own user's, mode 0700, is refused (code 0). */
int status_dir_open(tether_error_t *err);
/* Checks the directory before the workload starts: -1 only for a refusal.  One that cannot be
 * made at all is no error; there is then no status file. */
int status_prepare(tether_error_t *err);
/* A process's start time (clock ticks since boot), or 0 when it is gone: with the pid, it
 * names one process, never a later one that took the pid. */
uint64_t status_start_time(pid_t pid);

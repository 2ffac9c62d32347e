/* The node's view of what tether supervises: one small JSON file per running `tether run`
 * and per container monitor, read by `tether status`. */
#pragma once

#include "run.h"

/* Writes (atomically) this tether's status file: state, last decision (1 allow, 0 deny, -1
 * none yet) as of now, restarts. */
void status_write(const struct run *r, const char *state, int allow, int restarts);
/* The same for a container's monitor: argv is ["container", ID], and container_id says so. */
void status_write_container(const struct run *r, const char *id, pid_t init, const char *state,
                            int allow);
void status_remove(void);
/* The status file of the tether (or container monitor) with this pid. */
char *status_path(pid_t tether_pid);
/* The directory of status files: /run/tether when root, else $XDG_RUNTIME_DIR/tether. */
char *status_dir(void);

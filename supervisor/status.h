/* The node's view of what tether supervises: one small JSON file per running `tether run`,
 * read by `tether status`. */
#pragma once

#include "run.h"

/* Writes (atomically) this tether's status file: state, last decision (1 allow, 0 deny, -1
 * none yet) as of now, restarts. */
void status_write(const struct run *r, const char *state, int allow, int restarts);
void status_remove(void);
/* The directory of status files: /run/tether when root, else $XDG_RUNTIME_DIR/tether. */
char *status_dir(void);
/* Removes what tethers that are gone left behind: status files, cgroups, mount points.
 * Run at the start of `tether run` and by `tether status`. */
void status_sweep(void);

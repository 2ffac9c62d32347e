/* Drift monitoring: the resident loop that re-measures the workload and its host on events and
 * on a timer, asks the policy again, and enforces the decision's monitor block. */
#pragma once

#include "run.h"

/* Exit statuses of a monitored `tether run` beyond the workload's own. */
#define EXIT_DRIFT_KILLED 78  /* the workload was killed because it drifted */
#define EXIT_RESTART_LIMIT 79 /* it drifted again after the last allowed restart */

/* Starts the workload of r (its gate passed) under watch, and supervises it until it
 * ends; returns tether's exit status.  *started says whether the workload ever started. */
int monitor_run(struct run *r, bool *started);

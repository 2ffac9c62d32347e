/* The detached monitor a gating hook leaves for a container (see container_monitor.c). */
#pragma once

#include <cjson/cJSON.h>
#include <sys/types.h>

#include "config.h"
#include "core/error.h"

/* Starts it (its state directory /run/tether/<id>/ must exist); returns once it runs. */
int container_monitor_spawn(const struct config *cfg, const char *audit_path, const char *id,
                            const char *bundle, pid_t init, const cJSON *monitor,
                            tether_error_t *err);
/* Ends it (from poststop). */
void container_monitor_stop(const char *id);

/* Prometheus metrics, counted from the audit trail: `tether status --prometheus` and the
 * node configuration's metrics.textfile (metrics.c). */
#pragma once

#include <cjson/cJSON.h>
#include <stdio.h>

#include "config.h"

/* Counts of no records yet. */
cJSON *metrics_new(void);
/* Adds one audit record to the counts. */
void metrics_count(cJSON *m, const cJSON *rec);
/* Adds every record of a stream; returns how many lines it read. */
size_t metrics_count_stream(cJSON *m, FILE *f);
/* The counts, and monitors (the gauge; -1: left out), in the text exposition format. */
char *metrics_format(const cJSON *m, int monitors);
/* From now on each record appended to trail also brings cfg's metrics.textfile (when set)
 * up to date. */
void metrics_configure(const struct config *cfg, const char *trail);

/* The audit trail: one JSON record per line, each carrying the hash of the one before it, so
 * that an edited, removed or reordered record is found by `tether audit verify`. */
#pragma once

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../policy/policy.h"
#include "core/error.h"

/* A new record {"time", "event", "tether_pid"} to fill and append. */
cJSON *audit_record_new(const char *event);

/* The record of a decision: phase, engine, policy source, allow, reasons, workload argv[0]
 * and exe sha256, host machine_id.  Never any key material. */
cJSON *audit_decision_record(const char *phase, const struct policy *p, const struct decision *d,
                             const cJSON *input);

/* Appends rec (adding "prev" and "hash") under an exclusive lock, with O_APPEND and fsync.
 * Missing parent directories are created, mode 0750, and the file, mode 0600; the file and
 * its directories must pass the trust walk (core/trust.h). */
int audit_append(const char *path, cJSON *rec, tether_error_t *err);

struct audit_report {
    size_t records;
    size_t bad_line; /* 0 when the chain is intact */
    char why[160];
    char head[65]; /* hash of the last record */
};

/* Checks the chain of a stream.  Returns 0 and fills rep (bad_line says whether it broke),
 * or -1 when the stream cannot be read. */
int audit_verify_stream(FILE *f, struct audit_report *rep, tether_error_t *err);

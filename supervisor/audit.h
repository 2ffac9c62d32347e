/* The audit trail: one JSON record per line, each carrying the hash of the one before it, so
 * that an edited, removed or reordered record is found by `tether audit verify`. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

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

/* The hash of the record that ends at offset size of the trail fd (64 zeros when size is 0),
 * or of the damaged line there; *torn when that line has no newline. */
int audit_last_hash(int fd, off_t size, char out[65], bool *torn, tether_error_t *err);

/* Each record appended from now on also goes, as one datagram, to the syslog socket at
 * socket_path (facility authpriv; NULL: none). */
void audit_syslog_set(const char *socket_path);
/* The syslog message of a record's line: the line, or, when it is longer than 4096 bytes,
 * {"truncated": LENGTH, "record": "<its start>", "hash": HASH} within that size. */
char *audit_syslog_message(const char *line, size_t len, const char *hash);
/* Called after each append, under the trail's lock, with the trail's fd and its size. */
typedef void audit_hook_fn(const char *path, int fd, off_t size);
void audit_hook_set(audit_hook_fn *hook);

struct audit_report {
    size_t records;
    size_t bad_line; /* 0 when the chain is intact */
    char why[160];
    char head[65];     /* hash of the last record */
    size_t found_line; /* the line of the record whose hash is find, or 0 */
};

/* Checks the chain of a stream, and looks for the record whose hash is find (NULL: none).
 * Returns 0 and fills rep (bad_line says whether it broke), or -1 when the stream cannot be
 * read. */
int audit_verify_stream(FILE *f, const char *find, struct audit_report *rep, tether_error_t *err);

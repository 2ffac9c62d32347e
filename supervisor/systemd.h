/* Transient scopes from systemd's manager over D-Bus, as runc's and podman's systemd cgroup
 * drivers ask for them: on a host whose cgroup hierarchy systemd owns, the workload's cgroup
 * is one that systemd made and delegated (doc/supervision.md, "systemd hosts"). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "core/error.h"

/* How long a scope request may take, D-Bus call and job together. */
#define SYSTEMD_SCOPE_TIMEOUT_MS 5000

/* True when systemd manages this host: sd_booted(3)'s test, the directory
 * /run/systemd/system, or $TETHER_SYSTEMD_DIR instead when it is set (a testing aid). */
bool systemd_booted(void);

/* True for a unit name systemd accepts: letters, digits and ":-_.\", at most 255 bytes,
 * ending in suffix (".scope", ".slice") after at least one character. */
bool systemd_unit_name_valid(const char *name, const char *suffix);

struct systemd_scope {
    const char *unit;        /* tether-<pid>-<n>.scope */
    const char *description; /* the unit's Description */
    const char *slice;       /* its Slice, or NULL for the manager's default */
    pid_t pid;               /* the process it is made around, as the manager sees it */
};

/* One property of StartTransientUnit's a(sv). */
struct systemd_property {
    const char *name;
    char type;     /* 's', 'b', or 'u' for PIDs' au with one element */
    const char *s; /* 's' */
    int b;         /* 'b' */
    uint32_t u;    /* 'u' */
};
#define SYSTEMD_SCOPE_PROPERTIES_MAX 8

/* The properties of the request, in order: Description, Delegate=true, CollectMode
 * "inactive-or-failed", PIDs=[pid], and Slice when one is given.  Returns how many. */
size_t systemd_scope_properties(const struct systemd_scope *req,
                                struct systemd_property props[SYSTEMD_SCOPE_PROPERTIES_MAX]);

/* Asks the manager (the system bus as root, the user's bus otherwise) to start the scope
 * with mode "fail", waits for its job, and checks that the process is in the scope's cgroup,
 * which *cg then names (cgroup_of_pid: systemd's to remove).  libsystemd is loaded on the
 * first request.  -1 with err, and cg empty, when there is no scope. */
int systemd_scope_start(const struct systemd_scope *req, struct cgroup *cg, tether_error_t *err);

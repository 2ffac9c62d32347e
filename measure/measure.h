/* Measurement: the collectors that build the input document (DESIGN.md, "Input"), and the
 * pure parsers behind them, which take text so that tests and fuzzers can feed them. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "../supervisor/core/error.h"

#define TETHER_VERSION "0.1.0"

/* --- pure parsers (parse.c) --- */

/* os-release(5): every KEY=VALUE assignment, unquoted and unescaped, as a JSON object. */
cJSON *measure_parse_os_release(FILE *f);
/* Kernel command line: {"key": "value" | true, ...}; quoting as the kernel does it. */
cJSON *measure_parse_cmdline(const char *s);
/* /sys/kernel/security/lockdown "none [integrity] confidentiality": the bracketed mode, or
 * NULL. The result points into a static string. */
const char *measure_parse_lockdown(const char *s);
/* EFI SecureBoot variable (4 attribute bytes, then the value): 1, 0, or -1 when unknown. */
int measure_parse_secure_boot(const unsigned char *data, size_t len);
/* A "key=value" label; the key is a non-empty run of [A-Za-z0-9._/-]. */
bool measure_label_key_valid(const char *key, size_t len);
int measure_parse_label(const char *kv, char **key, char **value, tether_error_t *err);

/* Environment variable names, never their values (which are often secrets), from
 * "NAME=VALUE" entries (an entry without `=` is all name): sorted bytewise, each once.  A
 * name longer than MEASURE_ENV_NAME_MAX bytes is left out, and so is every name after the
 * first MEASURE_ENV_MAX; *truncated then says that the list is not the whole environment. */
#define MEASURE_ENV_MAX 256
#define MEASURE_ENV_NAME_MAX 256
cJSON *measure_env_names(const char *const env[], size_t n, bool *truncated);

/* /proc/PID/status: {ppid, uid, gid, capabilities: {effective, permitted, inheritable,
 * bounding, ambient: [names]}, seccomp, no_new_privs}; fields not found are null. */
cJSON *measure_parse_proc_status(FILE *f);
/* A capability mask as ["CAP_CHOWN", ...]. */
cJSON *measure_caps_names(uint64_t mask);

/* OCI: the runtime's state on a hook's stdin (ociVersion, id, status, bundle required; pid
 * and annotations checked when present); and a bundle's config.json as the container
 * section (state, for id and annotations, may be NULL). */
int measure_parse_oci_state(const char *text, size_t len, cJSON **out, tether_error_t *err);
int measure_parse_oci_config(const char *text, size_t len, const char *bundle, const cJSON *state,
                             cJSON **out, tether_error_t *err);

/* --- collectors --- */

/* The container section from <bundle>/config.json. */
int measure_container_collect(const char *bundle, const cJSON *state, cJSON **out,
                              tether_error_t *err);

/* The host section.  labels is copied (the node labels of the configuration; may be NULL). */
cJSON *measure_host_collect(const cJSON *labels);

/* The executable a command names, found as execvp(3) would find it.  Returns 0 with the
 * path, or -1 with err->code ENOENT (not found) or EACCES (found, not executable). */
int measure_exe_resolve(const char *cmd, char **path, tether_error_t *err);

/* The exe object {path, sha256, size, owner_uid, owner_gid, mode} of an executable.  When
 * fd_out is given it receives a read-only, close-on-exec descriptor of the measured file
 * (or -1 when it could not be opened), so that the bytes measured are the bytes run. */
int measure_exe_collect(const char *path, cJSON **out, int *fd_out, tether_error_t *err);

/* The workload section, with the names in tether's environment (which the workload
 * inherits, filtered as the decision's confine.env says); exe is taken over (may be NULL:
 * unknown). */
cJSON *measure_workload_collect(char *const argv[], cJSON *exe, const cJSON *labels);

/* One entry of `processes`: pid, ppid, uid, gid, exe {path, sha256}, capabilities, seccomp
 * mode, no_new_privs, namespaces {name: inode}, cgroup. */
int measure_process_collect(pid_t pid, cJSON **out, tether_error_t *err);

/* The whole input document; every section given is taken over, NULL ones become null. */
cJSON *measure_input_build(const char *phase, cJSON *host, cJSON *workload, cJSON *container,
                           cJSON *processes);

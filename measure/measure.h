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

/* The longest string a workload controls that the input carries (a process's exe.path in
 * the monitor phase): a longer one is cut, and its process gets "truncated": true. */
#define MEASURE_STRING_MAX 1024

/* --- pure parsers (parse.c) --- */

/* A script's "#!" line, as the kernel reads it: 0 with the interpreter and its one optional
 * argument (NULL when none; free both), or -1 when buf is no script line the kernel would run
 * whole (none, empty, or longer than MEASURE_SHEBANG_MAX). */
#define MEASURE_SHEBANG_MAX 256
int measure_parse_shebang(const char *buf, size_t len, char **interp, char **arg);

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

/* What root's own records say about containers: containers/storage's containers.json and
 * images.json, parsed (each NULL when there is none), and whether the node's runtime is
 * CRI-O, whose own annotations are then believed. */
struct measure_image_records {
    const cJSON *containers, *images;
    bool crio;
};

/* The image identity of the container `id` (NULL: unknown), split by who wrote it.  *image
 * {name, id, digest, from}: from the container's storage record and its image's, else (with
 * rec->crio) from CRI-O's annotations, else all null.  *claimed {name, digest, version,
 * revision, source, created}: the org.opencontainers.image.* annotations, and CRI-O's keys
 * when CRI-O is not the runtime, which the image or the container's creator may write. */
void measure_image_identity(const cJSON *annotations, const char *id,
                            const struct measure_image_records *rec, cJSON **image,
                            cJSON **claimed);

/* OCI: the runtime's state on a hook's stdin (ociVersion, id, status, bundle required; pid
 * and annotations checked when present); and a bundle's config.json as the container
 * section (state, for id and annotations, may be NULL; so may rec: no records). */
int measure_parse_oci_state(const char *text, size_t len, cJSON **out, tether_error_t *err);
int measure_parse_oci_config(const char *text, size_t len, const char *bundle, const cJSON *state,
                             const struct measure_image_records *rec, cJSON **out,
                             tether_error_t *err);

/* --- collectors --- */

/* Where the image identity of containers is read from: the node configuration's
 * `container` section. */
struct measure_container_sources {
    char *runtime;        /* "podman", "cri-o", "runc", or NULL when not said */
    char *podman_storage; /* containers/storage's root directory (its graphroot) */
};

/* containers.json and images.json under a containers/storage root (overlay driver), each
 * NULL when absent; the root, the two directories and the files must be root's (or tether's
 * user's) and writable by no one else, or it is an error that names the file. */
int measure_image_records_read(const char *storage, cJSON **containers, cJSON **images,
                               tether_error_t *err);

/* The container section from <bundle>/config.json, with the image identity from src when
 * the state names the container, and the entrypoint measured (measure_entrypoint_collect,
 * in the init's root when the state has a pid). */
int measure_container_collect(const char *bundle, const cJSON *state,
                              const struct measure_container_sources *src, cJSON **out,
                              tether_error_t *err);

/* A container's entrypoint, the exe object of cmd (its config's process.args[0]) with
 * resolved_in, found as the runtime will find it inside the root file system root (the
 * config's root.path made absolute): a cmd with a '/' as it is (a relative one under cwd),
 * else in the first absolute directory of search (its PATH; NULL: the runtimes' default)
 * that holds a regular file with an execute bit.  Looked up in the init's view of the
 * root when init is not 0, with the runtime's mounts in it (resolved_in "init"), else, or
 * when that view cannot be had, in root on the host ("bundle").  Every lookup stays inside
 * the root whatever links the image holds.  uid is the container's user (process.user.uid,
 * 0 when absent): the runtime looks as that user, so a file it may not reach is none.  NULL
 * with *why (one line, to free) when there is no such file, or it is no regular file. */
cJSON *measure_entrypoint_collect(const char *root, pid_t init, const char *cmd, const char *search,
                                  const char *cwd, int64_t uid, char **why);

/* The host section.  labels is copied (the node labels of the configuration; may be NULL). */
cJSON *measure_host_collect(const cJSON *labels);

/* The executable a command names, found as execvp(3) would find it.  Returns 0 with the
 * path, or -1 with err->code ENOENT (not found) or EACCES (found, not executable). */
int measure_exe_resolve(const char *cmd, char **path, tether_error_t *err);

/* The exe object {path, sha256, sha256_from, fsverity_digest, size, owner_uid, owner_gid,
 * mode} of an executable.  When
 * fd_out is given it receives a read-only, close-on-exec descriptor of the measured file
 * (or -1 when it could not be opened), so that the bytes measured are the bytes run. */
int measure_exe_collect(const char *path, unsigned flags, cJSON **out, int *fd_out,
                        tether_error_t *err);
/* The flag for a sealed file, which seal_open hashes as it reads it: sha256 is left null. */
#define MEASURE_EXE_NO_HASH 1u
/* The flag for a file the caller did not name (a script's interpreter, named by whoever
 * wrote the script): read up to MEASURE_HASH_MAX only; past it, its sha256 is null. */
#define MEASURE_EXE_BOUNDED 2u
/* The same object for a file already open (fd; -1 when it could not be opened for reading,
 * and then without its hash) and st, its status: hashed with measure_sha256, up to limit. */
struct stat;
cJSON *measure_exe_object(const char *path, int fd, const struct stat *st, uint64_t limit);
/* A file that someone other than root may write (its owner, group or others), or that is
 * open for writing anywhere (fd, when tether is root: a descriptor or mapping made before a
 * chown or chmod): with fd_out, measure_exe_collect hands out a private sealed copy of it
 * instead, hashed as it was copied, and says so in exe.private_copy; the hash cache never
 * remembers it. */
bool measure_writable_by_others(int fd, const struct stat *st);

/* The sha256 of the regular file behind fd, into hex: 0, or -1 when it is none, cannot be
 * read, or would have to be read and has more than limit bytes.  *source says where it came
 * from: "read", or "cache" when the file is one only root may write, on a local file system,
 * unchanged (identity, size, mtime, ctime, birth time) since it was hashed in this process
 * or, after measure_hashcache_use, by any tether (measure/hashcache.c says what that
 * trusts).  With verity_hex (SHA256_HEX_LEN + 1 bytes), a file with fs-verity enabled also
 * gets its verity digest there, else "". */
int measure_sha256(int fd, uint64_t limit, char *hex, const char **source, char *verity_hex);
/* The most bytes tether reads to hash a file it did not choose: a process's program, a
 * container's entrypoint, a script's interpreter, a file the monitor looks at after the
 * launch.  Whoever writes
 * such a file sets its size, and a sparse file of terabytes would keep tether reading for
 * hours; past this its sha256 is null.  (The launch's own executable, which the caller
 * names, is read whole: a file that others may write runs from a copy, bounded too.) */
#define MEASURE_HASH_MAX (UINT64_C(1) << 30)
/* A look at many processes begins: from now on measure_process_collect reads at most
 * budget bytes in all to hash their programs (past it, a program the hash cache does not
 * remember has a null sha256), and hashes each file, unchanged, once. */
void measure_look_begin(uint64_t budget);
/* The cache's directory for later starts of tether (root's, mode 0700), kept open. */
void measure_hashcache_use(int dirfd);
/* No hash is remembered or looked up from now on (`hash_cache: false`). */
void measure_hashcache_disable(void);

/* The cache for other digests of a file (a sealed file's digest, kind 's'), under the same
 * rules as measure_sha256's: take a stamp of the file before reading it; get answers only
 * for a file that may be cached and was remembered as it is now; put remembers a digest only
 * if the file did not change since the stamp and has settled.  Kind 0 is the sha256. */
struct measure_file_id {
    uint64_t dev, ino, size;
    int64_t mtime_s, ctime_s, btime_s;
    uint32_t mtime_ns, ctime_ns, btime_ns;
};
struct measure_stamp {
    struct measure_file_id id;
    bool cacheable, verity;
};
bool measure_cache_stamp(int fd, struct measure_stamp *st);
bool measure_cache_get(const struct measure_stamp *st, char kind, char hex[65]);
void measure_cache_put(int fd, const struct measure_stamp *st, char kind, const char *hex);

/* For a script (script_fd starts with "#!"): measures its interpreter into
 * exe.interpreter {path, sha256, ..., arg} and hands out the interpreter's descriptor (with
 * fd_out), its path and its argument.  0 also when it is no script; -1 with err for a #! line
 * the kernel would not run, or an interpreter that is missing, unreadable or a script. */
int measure_interpreter_collect(int script_fd, const char *path, cJSON *exe, int *fd_out,
                                char **interp, char **arg, tether_error_t *err);

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

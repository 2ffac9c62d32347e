/* The gated launch (see run.h). */
#define _GNU_SOURCE
#include "run.h"
#include "rootfs.h"

#include <errno.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "metrics.h"
#include "key.h"
#include "run_image.h"
#include "seal.h"
#include "status.h"
#include "systemd.h"
#include "core/cleanup.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/trust.h"
#include "core/util.h"
#include "tether.h"

void run_init(struct run *r)
{
    memset(r, 0, sizeof *r);
    r->exe_fd = -1;
    r->interp_fd = -1;
    r->d.ttl_s = -1;
    r->sv.sigfd = -1;
    r->sv.child = -1;
    r->sv.main = -1;
    r->sv.main_pidfd = -1;
    r->sv.life_fd = -1;
    r->sv.note_fd = -1;
    r->sv.gate_fd = -1;
    r->sv.gate_holder = -1;
    r->sv.execs_fd = -1;
    r->cg.procs_fd = -1;
    r->creds.dir_fd = -1;
}

static void launch_clear(struct run *r)
{
    free(r->path);
    r->path = NULL;
    if (r->interp_fd >= 0)
        close(r->interp_fd);
    r->interp_fd = -1;
    free(r->interp_path);
    free(r->interp_arg);
    r->interp_path = r->interp_arg = NULL;
    if (r->exe_fd >= 0)
        close(r->exe_fd);
    r->exe_fd = -1;
    r->exe_sha[0] = '\0';
    r->sealed_identity[0] = '\0';
    r->sealed = false;
    free(r->entrypoint);
    r->entrypoint = NULL;
    if (r->rootfs_dir != NULL)
        rmdir(r->rootfs_dir);
    free(r->rootfs_dir);
    r->rootfs_dir = NULL;
    cJSON_Delete(r->workload);
    r->workload = NULL;
    run_image_clear(r);
    decision_clear(&r->d);
    r->decision_hash[0] = '\0';
}

void run_release(struct run *r)
{
    creds_wipe(r, "the workload ended");
    creds_clear(&r->creds);
    launch_clear(r);
    supervise_release(&r->sv);
    cgroup_destroy(&r->cg);
    policy_free(r->policy);
    r->policy = NULL;
    free(r->audit_path);
    r->audit_path = NULL;
    for (size_t i = 0; r->image_argv != NULL && r->image_argv[i] != NULL; i++)
        free(r->image_argv[i]);
    free(r->image_argv);
    r->image_argv = NULL;
    config_clear(&r->cfg);
}

int run_load(struct run *r)
{
    cleanup_error tether_error_t err = NULL;
    config_clear(&r->cfg);
    if (config_load(r->config_file, &r->cfg, &err) < 0) {
        log_error("%s", err->msg);
        return EXIT_FAILED;
    }
    free(r->audit_path);
    r->audit_path = xstrdup(r->audit_file ? r->audit_file : r->cfg.audit_path);
    audit_syslog_set(r->cfg.audit_syslog ? r->cfg.audit_syslog_socket : NULL);
    metrics_configure(&r->cfg, r->audit_path);
    /* Someone else's status directory is refused before anything runs. */
    if (status_prepare(&err) < 0) {
        log_error("%s", err->msg);
        return EXIT_FAILED;
    }
    /* What was read, to tell later whether it changed before the monitor watched it. */
    const char *policy_path = r->policy_file ? r->policy_file : r->opa_url ? NULL : r->cfg.policy;
    if (r->cfg.path == NULL || stat(r->cfg.path, &r->config_st) < 0)
        memset(&r->config_st, 0, sizeof r->config_st);
    if (policy_path == NULL || stat(policy_path, &r->policy_st) < 0)
        memset(&r->policy_st, 0, sizeof r->policy_st);
    struct policy *p = NULL;
    if (engine_open(&r->cfg, r->policy_file, r->opa_url, &p, &err) < 0) {
        log_error("%s", err->msg);
        return EXIT_FAILED;
    }
    policy_free(r->policy);
    r->policy = p;
    return 0;
}

void run_audit_launch_failed(struct run *r, const char *why)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("launch_failed");
    cJSON_AddStringToObject(rec, "argv0", r->cmd[0]);
    cJSON_AddStringToObject(rec, "reason", why);
    if (audit_append(r->audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

void run_audit_exit(struct run *r, int status)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *done = audit_record_new("exit");
    cJSON_AddStringToObject(done, "argv0", r->cmd[0]);
    cJSON_AddNumberToObject(done, "pid", r->sv.main);
    cJSON_AddNumberToObject(done, "status", status);
    if (audit_append(r->audit_path, done, &err) < 0)
        log_warn("%s", err->msg);
}

cJSON *run_measure_monitor(struct run *r)
{
    cJSON *in = measure_input_build("monitor", measure_host_collect(r->cfg.labels),
                                    cJSON_Duplicate(r->workload, true), NULL, NULL);
    if (r->image != NULL)
        cJSON_AddItemToObject(in, "image", cJSON_Duplicate(r->image->input, true));
    return in;
}

/* The node decision's record, which an identity token names (tether.decision). */
static void note_hash(struct run *r, const cJSON *rec)
{
    const char *h = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "hash"));
    snprintf(r->decision_hash, sizeof r->decision_hash, "%s", h ? h : "");
}

bool run_audit_decision(struct run *r, struct policy *p, const struct decision *d,
                        const cJSON *input)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_decision_record("launch", p, d, input);
    if (audit_append(r->audit_path, rec, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        return false;
    }
    if (p == r->policy)
        note_hash(r, rec);
    return true;
}

static bool is_sealed(int fd)
{
    char magic[8];
    return fd >= 0 && pread(fd, magic, 8, 0) == 8 && memcmp(magic, SEAL_MAGIC, 8) == 0;
}

int run_decide_embedded(struct run *r, const char *what, const char *text, size_t len,
                        const char *sha_hex, const cJSON *input)
{
    cleanup_error tether_error_t err = NULL;
    struct policy *embedded = NULL;
    struct decision ed = {.ttl_s = -1};
    cleanup_free char *name = xasprintf("embedded:%.16s", sha_hex);
    /* The node's budgets: the author of the workload wrote this policy. */
    if (policy_lua_open(name, text, len, NULL, &embedded, &err) < 0) {
        log_error("`%s`: %s", what, err->msg);
        return EXIT_FAILED;
    }
    int rc = EXIT_FAILED;
    policy_decide(embedded, input, &ed);
    if (!run_audit_decision(r, embedded, &ed, input))
        goto out;
    if (!ed.allow) {
        cleanup_free char *why = decision_reasons_joined(&ed);
        log_error("denied by the workload's embedded policy: %s", why);
        rc = EXIT_DENIED;
        goto out;
    }
    rc = 0;
out:
    decision_clear(&ed);
    policy_free(embedded);
    return rc;
}

/* What a root workload keeps when the decision names no capabilities: podman's default set
 * (containers.conf), which is Docker's without CAP_NET_RAW, CAP_MKNOD and CAP_AUDIT_WRITE.
 * Without CAP_SYS_ADMIN and CAP_SYS_PTRACE it can neither leave its namespaces nor read its
 * supervisor (doc/supervision.md). */
#define CAP(n) (UINT64_C(1) << (n))
static const uint64_t default_root_caps =
    CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FOWNER) | CAP(CAP_FSETID) | CAP(CAP_KILL) |
    CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_SETFCAP) | CAP(CAP_SETGID) | CAP(CAP_SETPCAP) |
    CAP(CAP_SETUID) | CAP(CAP_SYS_CHROOT);

/* The capabilities the workload may hold (its bounding set): the decision's, else the
 * default for its uid; UINT64_MAX where nothing bounds them. */
static uint64_t kept_caps(const struct run *r, bool sealed)
{
    const struct confine *c = &r->d.confinement;
    uid_t uid = c->user_given ? c->uid : geteuid();
    if (sealed && uid != 0 && geteuid() == 0) {
        /* The plaintext's guard.  A process may read another's memory (/proc/PID/mem,
         * maps, environ) only if it holds every capability the other is permitted
         * (cap_ptrace_access_check), or CAP_SYS_PTRACE.  So a sealed workload holds the
         * least of them, CAP_WAKE_ALARM, which no other process of its uid has. */
        return (c->caps_given ? c->caps : 0) | CAP(CAP_WAKE_ALARM);
    }
    if (c->caps_given)
        return c->caps;
    return uid != 0 || r->bundle != NULL ? UINT64_MAX : default_root_caps;
}

static void default_capabilities(struct run *r)
{
    struct confine *c = &r->d.confinement;
    uint64_t keep = kept_caps(r, r->sealed);
    if (c->caps_given || keep != UINT64_MAX) {
        c->caps_given = true;
        c->caps = keep;
    }
}

/* The gate for a sealed workload: signature, both policies, key release, and decryption
 * into a file in memory only (core/memfile.h) that becomes the file to execute.  Nothing
 * decrypted touches a disk. */
static int gate_sealed(struct run *r, cJSON *exe)
{
    cleanup_error tether_error_t err = NULL;
    struct sealed s;
    /* One read gives its values (or none, when the hash cache remembers them), and the
     * key decrypts those same bytes.  A private copy is not remembered: it is new.  The
     * file's sha256 is version 1's alone (seal.h). */
    bool copied = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(exe, "private_copy"));
    struct measure_stamp stamp;
    struct seal_digests known = {"", ""};
    bool cached = !copied && measure_cache_stamp(r->exe_fd, &stamp) &&
                  measure_cache_get(&stamp, 's', known.digest);
    if (cached && !measure_cache_get(&stamp, 0, known.file_sha256))
        known.file_sha256[0] = '\0';
    if (seal_open(r->exe_fd, cached ? &known : NULL, true, &s, &err) < 0) {
        cJSON_Delete(exe);
        log_error("`%s`: %s", r->path, err->msg);
        return EXIT_FAILED;
    }
    bool has_sha = s.file_sha256[0] != '\0';
    /* Whether seal_open read the file: the cache may have had the digest, but not the
     * sha256 a version 1 file needs too (seal.h). */
    cached = cached && (s.h.version != 1 || known.file_sha256[0] != '\0');
    if (!cached && !copied) {
        if (has_sha)
            measure_cache_put(r->exe_fd, &stamp, 0, s.file_sha256);
        measure_cache_put(r->exe_fd, &stamp, 's', s.digest);
    }
    /* A version 2 file is known by its digest (workload.sealed.digest): its sha256 would
     * cost the one pass over the whole file that version 2 spreads over every CPU. */
    cJSON_ReplaceItemInObjectCaseSensitive(exe, "sha256",
                                           json_string_or_null(has_sha ? s.file_sha256 : NULL));
    cJSON_ReplaceItemInObjectCaseSensitive(exe, "sha256_from",
                                           json_string_or_null(!has_sha ? NULL
                                                               : cached ? "cache"
                                                               : copied ? "copy"
                                                                        : "read"));
    snprintf(r->exe_sha, sizeof r->exe_sha, "%s", s.file_sha256);
    seal_identity(&s, r->sealed_identity);
    size_t n_trusted = (size_t)cJSON_GetArraySize(r->cfg.trusted_signers);
    const char **trusted = xcalloc(n_trusted + 1, sizeof *trusted);
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach (t, r->cfg.trusted_signers)
        trusted[i++] = t->valuestring;
    const char *trusted_file = NULL;
    int rc = EXIT_FAILED;
    cJSON *input = NULL;
    struct secret *key = NULL;
    char hex[65];

    r->workload = measure_workload_collect(r->cmd, exe, r->labels);
    if (seal_verify(&s, trusted, n_trusted, &trusted_file, &err) < 0 ||
        (s.h.type == SEAL_TYPE_ROOTFS && rootfs_load(&err) < 0)) {
        log_error("`%s`: %s", r->path, err->msg);
        goto out;
    }
    cJSON *sealed = cJSON_CreateObject();
    cJSON_AddStringToObject(sealed, "digest", s.digest);
    cJSON_AddStringToObject(sealed, "digest_from", cached ? "cache" : copied ? "copy" : "read");
    cJSON_AddNumberToObject(sealed, "format_version", s.h.version);
    cJSON_AddStringToObject(sealed, "key_id", s.h.key_id);
    cJSON_AddItemToObject(sealed, "signer", json_string_or_null(s.has_signature ? s.signer : NULL));
    cJSON_AddItemToObject(sealed, "signer_trusted", json_string_or_null(trusted_file));
    hex_encode(s.h.policy_sha256, 32, hex);
    cJSON_AddStringToObject(sealed, "policy_sha256", hex);
    cJSON_AddStringToObject(sealed, "type", s.h.type == SEAL_TYPE_ROOTFS ? "rootfs" : "executable");
    cJSON_ReplaceItemInObjectCaseSensitive(r->workload, "sealed", sealed);
    input = measure_input_build("launch", measure_host_collect(r->cfg.labels),
                                cJSON_Duplicate(r->workload, true), NULL, NULL);

    /* The node's policy, then the workload's own: the same input, and both must allow. */
    policy_decide(r->policy, input, &r->d);
    if (!run_audit_decision(r, r->policy, &r->d, input))
        goto out;
    if (!r->d.allow) {
        char *why = decision_reasons_joined(&r->d);
        log_error("denied: %s", why);
        free(why);
        rc = EXIT_DENIED;
        goto out;
    }
    if (s.h.policy_len > 0 &&
        (rc = run_decide_embedded(r, r->path, s.h.policy, s.h.policy_len, hex, input)) != 0)
        goto out;
    rc = EXIT_FAILED;

    /* The key: released by the node's decision (OPA), else from the node's key store. */
    const char *source = "decision"; /* which engine: the record's "engine" */
    if (key_from_decision(&r->d, &key, &err) < 0) {
        log_error("`%s`: %s", r->path, err->msg);
        run_audit_launch_failed(r, err->msg);
        goto out;
    }
    if (key == NULL) {
        source = "keystore";
        if (keystore_read(r->cfg.keystore, s.h.key_id, ".key", KEY_BYTES, KEY_BYTES, &key, &err) <
            0) {
            log_error("`%s`: %s", r->path, err->msg);
            run_audit_launch_failed(r, err->msg);
            goto out;
        }
    }
    cJSON *rel = audit_record_new("key_release");
    cJSON_AddStringToObject(rel, "argv0", r->cmd[0]);
    cJSON_AddStringToObject(rel, "digest", s.digest);
    cJSON_AddStringToObject(rel, "key_id", s.h.key_id);
    cJSON_AddItemToObject(rel, "signer", json_string_or_null(s.has_signature ? s.signer : NULL));
    cJSON_AddStringToObject(rel, "source", source);
    cJSON_AddStringToObject(rel, "engine", r->policy->ops->engine);
    int arc = audit_append(r->audit_path, rel, &err);
    cJSON_Delete(rel);
    if (arc < 0) {
        log_error("%s; not starting the workload", err->msg);
        goto out;
    }

    /* A private tmpfs only for a workload that holds no capability beyond the default set:
     * CAP_LINUX_IMMUTABLE clears its file's flag (CAP_SYS_PTRACE and CAP_SYS_ADMIN get it
     * through another process), and its image could then be rewritten once no process runs
     * it; CAP_DAC_READ_SEARCH opens files by handle.  Any other gets a sealed memfd
     * (core/memfile.h). */
    bool memfd_only = (kept_caps(r, true) & ~(default_root_caps | CAP(CAP_WAKE_ALARM))) != 0;
    if (seal_decrypt(&s, key, memfd_only, &err) < 0) {
        log_error("`%s`: %s", r->path, err->msg);
        run_audit_launch_failed(r, err->msg);
        goto out;
    }
    secret_free(key); /* done with it: wiped now, not at exit */
    key = NULL;
    /* Closed to writes for good, and execute-only: /proc/PID/exe opens the file itself, and
     * the workload's uid may not read it.  (Its memory is guarded by a capability:
     * default_capabilities.  Root, with CAP_DAC_OVERRIDE, may read it, and is trusted with
     * it: doc/threat-model.md.) */
    int plain = seal_plaintext(&s, s.h.type != SEAL_TYPE_ROOTFS ? 0111 : 0, &err);
    if (plain < 0) {
        log_error("`%s`: %s", r->path, err->msg);
        run_audit_launch_failed(r, err->msg);
        goto out;
    }
    close(r->exe_fd);
    r->exe_fd = plain;
    r->sealed = true;
    if (s.h.type == SEAL_TYPE_ROOTFS) {
        /* The tree gets a tmpfs of its own, twice its size, mounted in the child's private
         * mount namespace on an empty directory: the host never sees it filled. */
        cleanup_free char *dir = status_dir();
        mkdir(dir, 0700);
        r->rootfs_dir = xasprintf("%s/root.%d", dir, (int)getpid());
        if (mkdir(r->rootfs_dir, 0700) < 0 && errno != EEXIST) {
            log_error("`%s`: %s", r->rootfs_dir, strerror(errno));
            rc = EXIT_FAILED;
            goto out;
        }
        r->entrypoint = xstrdup(s.h.entrypoint);
        r->rootfs_cap = 2 * s.h.plain_size + (64u << 20);
    }
    rc = 0;
out:
    secret_free(key);
    cJSON_Delete(input);
    free(trusted);
    seal_close(&s);
    return rc;
}

/* A script runs as its interpreter, which is measured too (exe.interpreter) and executed
 * through its own descriptor, with the script as /dev/fd/N: the bytes hashed are the bytes
 * run, for both, whoever renames what in their directories. */
static int measure_interpreter(struct run *r, cJSON *exe)
{
    cleanup_error tether_error_t err = NULL;
    if (measure_interpreter_collect(r->exe_fd, r->path, exe, &r->interp_fd, &r->interp_path,
                                    &r->interp_arg, &err) < 0) {
        log_error("%s", err->msg);
        return err->code == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
    }
    return 0;
}

/* A monitor block or a ttl asks for watching, and so does an identity token, which the
 * monitor renews while the policy allows and removes on drift. */
static bool wants_monitor(const struct decision *d)
{
    return d->monitor != NULL || d->ttl_s > 0 || d->identity != NULL;
}

int run_gate(struct run *r)
{
    cleanup_error tether_error_t err = NULL;
    launch_clear(r);
    if (r->image_name != NULL) {
        int rc = run_gate_image(r);
        if (rc == 0)
            r->monitored = wants_monitor(&r->d);
        return rc;
    }

    /* 1. Measure.  A command that is not there, or not executable, ends here as env(1)'s
     * does: there is nothing to ask the policy about. */
    /* A sealed workload is data until it is decrypted: named by its path, not searched for,
     * and not executable itself. */
    cleanup_close int probe = strchr(r->cmd[0], '/') ? open_regular(r->cmd[0]) : -1;
    bool named_sealed = is_sealed(probe);
    if (named_sealed)
        r->path = xstrdup(r->cmd[0]);
    else if (measure_exe_resolve(r->cmd[0], &r->path, &err) < 0) {
        log_error("%s", err->msg);
        return err->code == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
    }
    cJSON *exe = NULL;
    /* A sealed file is hashed by seal_open, in the read that also serves its decryption. */
    if (measure_exe_collect(r->path, named_sealed ? MEASURE_EXE_NO_HASH : 0, &exe, &r->exe_fd,
                            &err) < 0) {
        log_error("measure: %s", err->msg);
        return EXIT_FAILED;
    }
    if (is_sealed(r->exe_fd)) {
        /* `tether run FILE -- ARGS`: the "--" separates tether's word from the workload's. */
        if (r->cmd[1] != NULL && strcmp(r->cmd[1], "--") == 0)
            memmove(r->cmd + 1, r->cmd + 2, sizeof *r->cmd * (size_t)(r->argc_left - 1));
        /* Decrypting needs libcrypto: loaded before anything is asked or released. */
        if (crypto_load(&err) < 0) {
            cJSON_Delete(exe);
            log_error("%s", err->msg);
            return EXIT_FAILED;
        }
        int rc = gate_sealed(r, exe);
        if (rc == 0)
            r->monitored = wants_monitor(&r->d);
        return rc;
    }
    if (named_sealed) {
        cJSON_Delete(exe);
        log_error("`%s`: it was replaced while it was measured; not starting it", r->path);
        return EXIT_FAILED;
    }
    if (r->cfg.require_sealed) {
        cJSON_Delete(exe);
        log_error("`require_sealed` is set in `%s`: plain commands are refused",
                  r->cfg.path ? r->cfg.path : CONFIG_DEFAULT_PATH);
        return EXIT_FAILED;
    }
    const char *sha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(exe, "sha256"));
    snprintf(r->exe_sha, sizeof r->exe_sha, "%s", sha ? sha : "");
    int irc = measure_interpreter(r, exe);
    if (irc != 0) {
        cJSON_Delete(exe);
        return irc;
    }
    r->workload = measure_workload_collect(r->cmd, exe, r->labels);
    cJSON *container = NULL;
    if (r->bundle != NULL &&
        measure_container_collect(r->bundle, NULL, &r->cfg.container, &container, &err) < 0) {
        log_error("%s", err->msg);
        return EXIT_FAILED;
    }
    cleanup_json cJSON *input =
        measure_input_build("launch", measure_host_collect(r->cfg.labels),
                            cJSON_Duplicate(r->workload, true), container, NULL);

    /* 2. Decide, and 3. record the decision before acting on it. */
    policy_decide(r->policy, input, &r->d);
    cleanup_json cJSON *rec = audit_decision_record("launch", r->policy, &r->d, input);
    if (audit_append(r->audit_path, rec, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        return EXIT_FAILED;
    }
    note_hash(r, rec);
    if (!r->d.allow && r->d.unreachable && !r->d.connected && r->cfg.opa.fail_open) {
        /* The one fail-open path: no connection to OPA could be made at all, and the node's
         * operator chose availability over control.  Said loudly, and on record. */
        cleanup_free char *why = decision_reasons_joined(&r->d);
        log_warn("%s; starting the workload anyway because opa.fail_open is true", why);
        cleanup_json cJSON *fo = audit_record_new("fail_open");
        cJSON_AddStringToObject(fo, "engine", r->policy->ops->engine);
        cJSON_AddStringToObject(fo, "url", r->policy->source);
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(r->d.engine_info, "path");
        if (cJSON_IsString(path))
            cJSON_AddStringToObject(fo, "path", path->valuestring);
        cJSON_AddStringToObject(fo, "argv0", r->cmd[0]);
        cJSON_AddStringToObject(fo, "reason", why);
        if (audit_append(r->audit_path, fo, &err) < 0) {
            log_error("%s; not starting the workload", err->msg);
            return EXIT_FAILED;
        }
        free(confine_parse(NULL, &r->d.confinement)); /* a decision without a block's */
        r->d.allow = true;
    }
    if (!r->d.allow) {
        cleanup_free char *why = decision_reasons_joined(&r->d);
        log_error("denied: %s", why);
        return EXIT_DENIED;
    }
    /* A plain command has no use for a released key: wiped now, not when it ends. */
    secret_free(r->d.key_value);
    r->d.key_value = NULL;
    if (r->bundle != NULL) {
        /* The command is a container runtime: the container's confinement is its
         * config.json's (judged through input.container); confining the runtime would only
         * stop it from applying that. */
        if (r->d.confine != NULL) {
            const char *why = "the decision confines a container runtime (--bundle); put the "
                              "confinement in the bundle's config.json instead";
            log_error("%s; not starting it", why);
            run_audit_launch_failed(r, why);
            return EXIT_FAILED;
        }
        confine_clear(&r->d.confinement);
    }
    r->monitored = wants_monitor(&r->d);
    return 0;
}

/* monitor.on_main_exit: "supervise" keeps a tree whose main process exited (a forking
 * daemon) under watch until it is empty; "kill", the default, ends it as systemd's
 * KillMode=control-group does. */
static bool keep_tree(const struct decision *d)
{
    const char *v =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d->monitor, "on_main_exit"));
    return v != NULL && strcmp(v, "supervise") == 0;
}

/* A monitored workload granted CAP_SYS_ADMIN (namespaces, mounts, cgroups) or CAP_SYS_PTRACE
 * (its supervisor's memory) can undo its supervision: said in the audit trail. */
static int audit_weakened(struct run *r)
{
    /* Whatever the workload's user: a non-root workload holds its capabilities too, as
     * ambient ones (confine.c, set_caps). */
    const struct confine *c = &r->d.confinement;
    if (!r->monitored || !c->caps_given)
        return 0;
    cleanup_json cJSON *by = cJSON_CreateArray();
    if (c->caps & CAP(CAP_SYS_ADMIN))
        cJSON_AddItemToArray(by, cJSON_CreateString("CAP_SYS_ADMIN"));
    if (c->caps & CAP(CAP_SYS_PTRACE))
        cJSON_AddItemToArray(by, cJSON_CreateString("CAP_SYS_PTRACE"));
    if (cJSON_GetArraySize(by) == 0)
        return 0;
    cleanup_free char *names = json_print(by);
    log_warn("the decision grants %s: the workload can escape its supervision", names);
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("supervision_weakened");
    cJSON_AddStringToObject(rec, "argv0", r->cmd[0]);
    cJSON_AddItemToObject(rec, "supervision_weakened_by", steal_pointer(&by));
    if (audit_append(r->audit_path, rec, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        return EXIT_FAILED;
    }
    return 0;
}

/* launch.c's place hook under systemd: the init into a transient scope of its own, whose
 * cgroup becomes the workload's (systemd's to remove; a new one for each start).  Without
 * one the workload runs with none, unless monitor.cgroup is "required". */
static int place_in_scope(void *arg, pid_t init, tether_error_t *err)
{
    struct run *r = arg;
    static unsigned serial;
    cleanup_free char *unit = xasprintf("tether-%d-%u.scope", (int)getpid(), serial++);
    cleanup_free char *description = xasprintf("workload of tether %d", (int)getpid());
    struct systemd_scope req = {.unit = unit,
                                .description = description,
                                .slice = r->cfg.monitor.systemd_slice,
                                .pid = init};
    cleanup_error tether_error_t serr = NULL;
    if (systemd_scope_start(&req, &r->cg, &serr) == 0) {
        log_debug("the workload's cgroup is systemd's scope `%s`", r->cg.rel);
        return 1;
    }
    if (r->cfg.monitor.cgroup_required)
        return error_set(err, 0,
                         "no cgroup for the workload (%s), and `monitor.cgroup` is "
                         "\"required\" in `%s`",
                         serr->msg, r->cfg.path ? r->cfg.path : CONFIG_DEFAULT_PATH);
    log_debug("no systemd scope for the workload (%s): it runs without a cgroup", serr->msg);
    return 0;
}

bool prevent_exec(const struct decision *d)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d->monitor, "prevent_exec"));
}

int run_start(struct run *r)
{
    cleanup_error tether_error_t err = NULL;
    struct confine_plan plan = {.filter = NULL};
    default_capabilities(r);
    /* Grants that reach past the marks: mounts and namespaces (CAP_SYS_ADMIN), another
     * process's root and memory (CAP_SYS_PTRACE), /proc/PID/map_files, whose shared
     * anonymous mappings are files on the kernel's own mount (CAP_CHECKPOINT_RESTORE, or
     * CAP_SYS_ADMIN), which no mark can hold, and the kernel's own code or a raw device
     * (CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT's kexec, CAP_MKNOD). */
    const struct confine *cf = &r->d.confinement;
    if (prevent_exec(&r->d) && cf->caps_given && (cf->caps & PAST_THE_MARKS)) {
        const char *why =
            "monitor.prevent_exec cannot hold a workload granted " PAST_THE_MARKS_NAMES
            ": each reaches a program no mark holds";
        log_error("%s; not starting it", why);
        run_audit_launch_failed(r, why);
        return EXIT_FAILED;
    }
    int wrc = audit_weakened(r);
    if (wrc != 0)
        return wrc;
    if (prevent_exec(&r->d) && r->bundle != NULL) {
        const char *why = "monitor.prevent_exec needs the workload's own mount namespace, which "
                          "a container runtime (--bundle) does not get";
        log_error("%s; not starting it", why);
        run_audit_launch_failed(r, why);
        return EXIT_FAILED;
    }
    if (creds_prepare(r, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        run_audit_launch_failed(r, err->msg);
        return EXIT_FAILED;
    }
    if (confine_prepare(&r->d.confinement, &plan, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        run_audit_launch_failed(r, err->msg);
        return EXIT_FAILED;
    }
    if (r->sv.sigfd < 0 && supervise_prepare(&r->sv, &err) < 0) {
        log_error("%s", err->msg);
        run_audit_launch_failed(r, err->msg);
        confine_plan_release(&plan);
        return EXIT_FAILED;
    }
    /* A monitored workload gets a cgroup of its own where the system offers one: exact
     * membership for measuring and killing its tree, and the freezer.  Where systemd owns
     * tether's cgroup, that is a scope of systemd's making, asked for once the init exists
     * (place_in_scope); the last one is gone with the last start's processes. */
    bool scope = false;
    if (r->monitored && r->cg.foreign)
        cgroup_destroy(&r->cg);
    if (r->monitored && r->cg.dir == NULL) {
        scope = cgroup_systemd_owns();
        if (!scope && !cgroup_create(&r->cg) && r->cfg.monitor.cgroup_required) {
            const char *cfg = r->cfg.path ? r->cfg.path : CONFIG_DEFAULT_PATH;
            cleanup_free char *why = xasprintf(
                "no cgroup for the workload, and `monitor.cgroup` is \"required\" in `%s`", cfg);
            log_error("%s; not starting it", why);
            run_audit_launch_failed(r, why);
            confine_plan_release(&plan);
            return EXIT_FAILED;
        }
    }
    struct launch_spec spec = {.argv = r->cmd,
                               .path = r->path,
                               .exe_fd = r->exe_fd,
                               .confine = &r->d.confinement,
                               .plan = &plan,
                               .cgroup = r->cg.dir ? &r->cg : NULL,
                               .fd_only = r->sealed,
                               .entrypoint = r->entrypoint,
                               .rootfs_dir = r->rootfs_dir,
                               .rootfs_cap = r->rootfs_cap,
                               .rootfs = r->image ? &r->image->rootfs : NULL,
                               .interp_fd = r->interp_fd,
                               .interp_path = r->interp_path,
                               .interp_arg = r->interp_arg,
                               .supervised = r->monitored,
                               .wrapper = r->bundle != NULL,
                               .keep_tree = keep_tree(&r->d),
                               .grace_s = r->cfg.monitor.grace_s,
                               .place = scope ? place_in_scope : NULL,
                               .place_arg = r,
                               .prevent_exec = prevent_exec(&r->d),
                               .creds_dir = r->creds.dir,
                               .creds_identity = r->creds.audience != NULL,
                               .creds_secrets = r->creds.has_secrets,
                               .creds_fill = creds_fill,
                               .creds_arg = r};
    int fail_status;
    /* An image's process starts from the image's Env, which confine.env then filters as it
     * would tether's own environment; only the workload's exec sees it. */
    if (r->image != NULL)
        spec.env = r->image->env;
    int rc = launch_start(&r->sv, &spec, &fail_status, &err);
    confine_plan_release(&plan);
    if (rc < 0) {
        log_error("%s", err->msg);
        run_audit_launch_failed(r, err->msg);
        return fail_status;
    }
    close(r->exe_fd);
    r->exe_fd = -1;
    if (r->interp_fd >= 0)
        close(r->interp_fd);
    r->interp_fd = -1;
    if (r->image != NULL)
        image_close_layers(&r->image->img); /* unpacked: the decrypted layers go */
    return 0;
}

/* The gated launch (see run.h). */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "tether.h"

void run_init(struct run *r)
{
    memset(r, 0, sizeof *r);
    r->exe_fd = -1;
    r->d.ttl_s = -1;
    r->sv.sigfd = -1;
    r->sv.child = -1;
    r->cg.procs_fd = -1;
}

static void launch_clear(struct run *r)
{
    free(r->path);
    r->path = NULL;
    if (r->exe_fd >= 0)
        close(r->exe_fd);
    r->exe_fd = -1;
    r->exe_sha[0] = '\0';
    cJSON_Delete(r->workload);
    r->workload = NULL;
    decision_clear(&r->d);
}

void run_release(struct run *r)
{
    launch_clear(r);
    supervise_release(&r->sv);
    cgroup_destroy(&r->cg);
    policy_free(r->policy);
    r->policy = NULL;
    free(r->audit_path);
    r->audit_path = NULL;
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
    cJSON_AddNumberToObject(done, "pid", r->sv.child);
    cJSON_AddNumberToObject(done, "status", status);
    if (audit_append(r->audit_path, done, &err) < 0)
        log_warn("%s", err->msg);
}

cJSON *run_measure_monitor(struct run *r)
{
    return measure_input_build("monitor", measure_host_collect(r->cfg.labels),
                               cJSON_Duplicate(r->workload, true), NULL, NULL);
}

int run_gate(struct run *r)
{
    cleanup_error tether_error_t err = NULL;
    launch_clear(r);
    if (r->cfg.require_sealed) {
        log_error("`require_sealed` is set in `%s`: plain commands are refused",
                  r->cfg.path ? r->cfg.path : CONFIG_DEFAULT_PATH);
        return EXIT_FAILED;
    }

    /* 1. Measure.  A command that is not there, or not executable, ends here as env(1)'s
     * does: there is nothing to ask the policy about. */
    if (measure_exe_resolve(r->cmd[0], &r->path, &err) < 0) {
        log_error("%s", err->msg);
        return err->code == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
    }
    cJSON *exe = NULL;
    if (measure_exe_collect(r->path, &exe, &r->exe_fd, &err) < 0) {
        log_error("measure: %s", err->msg);
        return EXIT_FAILED;
    }
    const char *sha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(exe, "sha256"));
    snprintf(r->exe_sha, sizeof r->exe_sha, "%s", sha ? sha : "");
    r->workload = measure_workload_collect(r->cmd, exe, r->labels);
    cleanup_json cJSON *input = measure_input_build("launch", measure_host_collect(r->cfg.labels),
                                                    cJSON_Duplicate(r->workload, true), NULL, NULL);

    /* 2. Decide, and 3. record the decision before acting on it. */
    policy_decide(r->policy, input, &r->d);
    cleanup_json cJSON *rec = audit_decision_record("launch", r->policy, &r->d, input);
    if (audit_append(r->audit_path, rec, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        return EXIT_FAILED;
    }
    if (!r->d.allow && r->d.unreachable && r->cfg.opa.fail_open) {
        /* The one fail-open path: OPA could not be reached at all, and the node's operator
         * chose availability over control.  Said loudly, and on record. */
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
    r->monitored = r->d.monitor != NULL || r->d.ttl_s > 0;
    return 0;
}

int run_start(struct run *r)
{
    cleanup_error tether_error_t err = NULL;
    struct confine_plan plan = {NULL};
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
     * membership for measuring and killing its tree, and the freezer. */
    if (r->monitored && r->cg.dir == NULL)
        cgroup_create(&r->cg);
    struct launch_spec spec = {.argv = r->cmd,
                               .path = r->path,
                               .exe_fd = r->exe_fd,
                               .confine = &r->d.confinement,
                               .plan = &plan,
                               .cgroup = r->cg.dir ? &r->cg : NULL};
    int fail_status;
    int rc = launch_start(&r->sv, &spec, &fail_status, &err);
    confine_plan_release(&plan);
    if (rc < 0) {
        log_error("%s", err->msg);
        run_audit_launch_failed(r, err->msg);
        return fail_status;
    }
    close(r->exe_fd);
    r->exe_fd = -1;
    return 0;
}

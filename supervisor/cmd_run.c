/* `tether run`: measure, decide, and start the workload only on allow, staying its parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../measure/measure.h"
#include "audit.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "launch.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether run [OPTION]... [--] COMMAND [ARG]...\n"
    "Measure COMMAND and this host, ask the policy, and run COMMAND only if it allows.\n"
    "tether stays COMMAND's parent: it forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,\n"
    "SIGUSR2 and SIGWINCH to it, reaps orphaned descendants, and exits with its status.\n"
    "\n"
    "  -p, --policy FILE    decide with this Lua policy (default: the configuration's\n"
    "                       `policy`, else the built-in default policy)\n"
    "  -o, --opa URL        ask the OPA server at URL instead (default: the configuration's\n"
    "                       opa.url); https://, http:// to loopback only, or unix:///path\n"
    "  -c, --config FILE    node configuration (default: $TETHER_CONFIG, else\n"
    "                       " CONFIG_DEFAULT_PATH ")\n"
    "  -l, --label KEY=VAL  add a workload label (input.workload.labels); repeatable\n"
    "  -a, --audit FILE     append audit records to FILE (default: the configuration's\n"
    "                       audit.path, else " AUDIT_DEFAULT_PATH ")\n"
    "  -h, --help           show this help\n"
    "\n"
    "On allow, the decision's `confine` block (capabilities, user, no_new_privs, seccomp,\n"
    "namespaces, rlimits) is applied in the child before exec, seccomp last; without one,\n"
    "no_new_privs is set and core dumps are off.  Any failure there is exit status 125.\n"
    "\n"
    "COMMAND is found through PATH as execvp(3) finds it.  A binary is executed through the\n"
    "descriptor that was measured, so the bytes hashed are the bytes run; a script is run by\n"
    "path (its interpreter is not measured), as is a binary tether cannot read.\n"
    "\n"
    "Exit status:\n"
    "  77   the policy denied the workload (nothing was started)\n"
    "  125  tether failed before the workload started\n"
    "  126  COMMAND was found but could not be executed\n"
    "  127  COMMAND was not found\n"
    "  N    otherwise COMMAND's own status, or 128+N when signal N ended it\n"
    "\n"
    "Examples:\n"
    "  tether run -- /usr/bin/uptime\n"
    "  tether run --policy policies/geofence.lua --label app=billing -- ./billing-batch\n";

/* Once an allow is on record, a launch that then does not happen is put on record too. */
static void audit_launch_failed(const char *path, const char *argv0, const char *why)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("launch_failed");
    cJSON_AddStringToObject(rec, "argv0", argv0);
    cJSON_AddStringToObject(rec, "reason", why);
    if (audit_append(path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"label", required_argument, NULL, 'l'},
        {"audit", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"opa", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    const char *policy_file = NULL, *config_file = NULL, *audit_file = NULL, *opa_url = NULL;
    cleanup_json cJSON *labels = cJSON_CreateObject();
    cleanup_error tether_error_t err = NULL;

    int c;
    while ((c = getopt_long(argc, argv, "+p:c:l:a:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            policy_file = optarg;
            break;
        case 'c':
            config_file = optarg;
            break;
        case 'o':
            opa_url = optarg;
            break;
        case 'a':
            audit_file = optarg;
            break;
        case 'l':
            if (cli_add_label(labels, optarg, &err) < 0) {
                log_error("%s", err->msg);
                return EXIT_FAILED;
            }
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether run --help' for more information.\n", 1);
        }
    }
    if (optind >= argc) {
        log_error("run: no command given");
        return cli_usage("Try 'tether run --help' for more information.\n", 1);
    }
    char **cmd = argv + optind;

    struct config cfg;
    if (config_load(config_file, &cfg, &err) < 0) {
        log_error("%s", err->msg);
        config_clear(&cfg);
        return EXIT_FAILED;
    }
    int rc = EXIT_FAILED;
    cleanup_free char *path = NULL;
    cleanup_close int exe_fd = -1;
    cleanup_json cJSON *input = NULL;
    cleanup_policy struct policy *policy = NULL;
    struct decision d = {.ttl_s = -1};
    struct supervisor sv = {.sigfd = -1};
    struct confine_plan plan = {NULL};
    const char *audit_path = audit_file ? audit_file : cfg.audit_path;

    if (cfg.require_sealed) {
        log_error("`require_sealed` is set in `%s`: plain commands are refused",
                  cfg.path ? cfg.path : CONFIG_DEFAULT_PATH);
        goto out;
    }

    /* 1. Measure.  A command that is not there, or not executable, ends here as env(1)'s
     * does: there is nothing to ask the policy about. */
    if (measure_exe_resolve(cmd[0], &path, &err) < 0) {
        log_error("%s", err->msg);
        rc = err->code == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
        goto out;
    }
    cJSON *exe = NULL;
    if (measure_exe_collect(path, &exe, &exe_fd, &err) < 0) {
        log_error("measure: %s", err->msg);
        goto out;
    }
    input = measure_input_build("launch", measure_host_collect(cfg.labels),
                                measure_workload_collect(cmd, exe, labels), NULL, NULL);

    /* 2. Decide, and 3. record the decision before acting on it. */
    if (engine_open(&cfg, policy_file, opa_url, &policy, &err) < 0) {
        log_error("%s", err->msg);
        goto out;
    }
    policy_decide(policy, input, &d);
    cJSON *rec = audit_decision_record("launch", policy, &d, input);
    int arc = audit_append(audit_path, rec, &err);
    cJSON_Delete(rec);
    if (arc < 0) {
        log_error("%s; not starting the workload", err->msg);
        goto out;
    }
    if (!d.allow && d.unreachable && cfg.opa.fail_open) {
        /* The one fail-open path: OPA could not be reached at all, and the node's operator
         * chose availability over control.  Said loudly, and on record. */
        cleanup_free char *why = decision_reasons_joined(&d);
        log_warn("%s; starting the workload anyway because opa.fail_open is true", why);
        cleanup_json cJSON *fo = audit_record_new("fail_open");
        cJSON_AddStringToObject(fo, "engine", policy->ops->engine);
        cJSON_AddStringToObject(fo, "url", policy->source);
        cJSON_AddStringToObject(fo, "argv0", cmd[0]);
        cJSON_AddStringToObject(fo, "reason", why);
        if (audit_append(audit_path, fo, &err) < 0) {
            log_error("%s; not starting the workload", err->msg);
            goto out;
        }
        free(confine_parse(NULL, &d.confinement)); /* the defaults of a decision without one */
        d.allow = true;
    }
    if (!d.allow) {
        cleanup_free char *why = decision_reasons_joined(&d);
        log_error("denied: %s", why);
        rc = EXIT_DENIED;
        goto out;
    }
    if (d.monitor != NULL) {
        const char *why = "the decision asks for monitoring, which this build cannot apply";
        log_error("%s; not starting the workload", why);
        audit_launch_failed(audit_path, cmd[0], why);
        goto out;
    }
    if (confine_prepare(&d.confinement, &plan, &err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        audit_launch_failed(audit_path, cmd[0], err->msg);
        goto out;
    }
    /* The Lua state is not needed while the workload runs. */
    policy_free(steal_pointer(&policy));

    /* 4. Start, and stay the parent. */
    if (supervise_prepare(&sv, &err) < 0) {
        log_error("%s", err->msg);
        audit_launch_failed(audit_path, cmd[0], err->msg);
        goto out;
    }
    struct launch_spec spec = {
        .argv = cmd, .path = path, .exe_fd = exe_fd, .confine = &d.confinement, .plan = &plan};
    int fail_status;
    if (launch_start(&sv, &spec, &fail_status, &err) < 0) {
        log_error("%s", err->msg);
        audit_launch_failed(audit_path, cmd[0], err->msg);
        rc = fail_status;
        goto out;
    }
    close(steal_fd(&exe_fd));
    rc = supervise_wait(&sv);

    cJSON *done = audit_record_new("exit");
    cJSON_AddStringToObject(done, "argv0", cmd[0]);
    cJSON_AddNumberToObject(done, "pid", sv.child);
    cJSON_AddNumberToObject(done, "status", rc);
    if (audit_append(audit_path, done, &err) < 0)
        log_warn("%s", err->msg);
    cJSON_Delete(done);
out:
    confine_plan_release(&plan);
    supervise_release(&sv);
    decision_clear(&d);
    config_clear(&cfg);
    return rc;
}

/* `tether hook STAGE`: tether as an OCI runtime hook (hooks.d), gating containers. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "container_monitor.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "status.h"
#include "tether.h"

#define STATE_MAX (1 << 20)

static const char usage[] =
    "Usage: tether hook STAGE [OPTION]...\n"
    "Run as an OCI runtime hook: read the container's state (JSON) on standard input.\n"
    "STAGE is createRuntime or prestart (measure the container from its bundle and ask the\n"
    "policy: a deny, or any error, prints one line and exits 77, and the runtime does not\n"
    "start the container), poststart (record only; never blocks), or poststop (record, and\n"
    "remove the container's state in /run/tether/ID/).\n"
    "\n"
    "  -c, --config FILE    node configuration (hooks.d may pass it)\n"
    "  -a, --audit FILE     audit trail (default: the configuration's audit.path)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Install contrib/hooks.d/tether.json for podman and CRI-O; see tether(1).\n";

/* A container id as a file name: no slash, not "." or "..". */
static bool id_safe(const char *id)
{
    return id[0] != '\0' && strchr(id, '/') == NULL && strcmp(id, ".") != 0 &&
           strcmp(id, "..") != 0;
}

static int deny(const char *id, const char *why)
{
    log_error("denied: container %s: %s", id ? id : "(unknown)", why);
    return EXIT_DENIED;
}

static void audit_stage(const char *audit_path, const char *stage, const cJSON *state)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new(stage);
    cJSON_AddItemToObject(
        rec, "container_id",
        json_string_or_null(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(state, "id"))));
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(state, "pid");
    if (cJSON_IsNumber(pid))
        cJSON_AddNumberToObject(rec, "pid", pid->valuedouble);
    if (audit_append(audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

static void remove_state(const char *id)
{
    cleanup_free char *base = status_dir();
    cleanup_free char *dir = xasprintf("%s/%s", base, id);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int gate(const char *stage, const cJSON *state, const struct config *cfg,
                const char *audit_path)
{
    cleanup_error tether_error_t err = NULL;
    const char *id = cJSON_GetObjectItemCaseSensitive(state, "id")->valuestring;
    const char *bundle = cJSON_GetObjectItemCaseSensitive(state, "bundle")->valuestring;
    cJSON *container = NULL;
    if (status_prepare(&err) < 0)
        return deny(id, err->msg);
    /* The bundle path is the runtime's (its state on stdin); config.json is judged only
     * when nobody but root could change it before the runtime reads it again. */
    if (measure_container_collect(bundle, state, &cfg->container, &container, &err) < 0)
        return deny(id, err->msg);
    cJSON *procs = cJSON_CreateArray();
    int64_t pid;
    if (json_get_int(cJSON_GetObjectItemCaseSensitive(state, "pid"), 1, INT32_MAX, &pid)) {
        cJSON *p = NULL;
        if (measure_process_collect((pid_t)pid, &p, NULL) == 0)
            cJSON_AddItemToArray(procs, p);
    }
    cleanup_json cJSON *input =
        measure_input_build("hook", measure_host_collect(cfg->labels), NULL, container, procs);

    cleanup_policy struct policy *policy = NULL;
    if (engine_open(cfg, NULL, NULL, &policy, &err) < 0)
        return deny(id, err->msg);
    struct decision d = {.ttl_s = -1};
    policy_decide(policy, input, &d);
    cleanup_json cJSON *rec = audit_decision_record("hook", policy, &d, input);
    cJSON_AddStringToObject(rec, "stage", stage);
    cJSON_AddStringToObject(rec, "container_id", id);
    int rc = 0;
    if (audit_append(audit_path, rec, &err) < 0) {
        rc = deny(id, err->msg);
    } else if (!d.allow) {
        cleanup_free char *why = decision_reasons_joined(&d);
        rc = deny(id, why);
    } else {
        /* State for poststop to clean up, and for `tether status` to come. */
        cleanup_free char *base = status_dir();
        cleanup_free char *dir = xasprintf("%s/%s", base, id);
        cleanup_free char *file = xasprintf("%s/decision.json", dir);
        cleanup_json cJSON *out = decision_to_json(&d);
        cleanup_free char *text = json_print(out);
        FILE *f = NULL;
        if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (f = fopen(file, "we")) == NULL ||
            fputs(text, f) < 0 || fclose(f) != 0)
            log_warn("container %s: cannot write `%s`: %s", id, file, strerror(errno));
        /* A monitor block is honoured or the container does not start. */
        int64_t init;
        if (d.monitor != NULL) {
            if (!json_get_int(cJSON_GetObjectItemCaseSensitive(state, "pid"), 1, INT32_MAX, &init))
                rc = deny(id, "the decision asks for monitoring, and the state has no pid");
            else if (container_monitor_spawn(cfg, audit_path, id, bundle, (pid_t)init, d.monitor,
                                             &err) < 0)
                rc = deny(id, err->msg);
            if (rc != 0)
                remove_state(id);
        }
    }
    decision_clear(&d);
    return rc;
}

int cmd_hook(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"audit", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL, *audit_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:a:h", opts, NULL)) != -1) {
        if (c == 'c')
            config_file = optarg;
        else if (c == 'a')
            audit_file = optarg;
        else if (c == 'h')
            return cli_usage(usage, 0);
        else
            return cli_usage("Try 'tether hook --help' for more information.\n", 1);
    }
    if (argc - optind != 1)
        return cli_usage("Try 'tether hook --help' for more information.\n", 1);
    const char *stage = argv[optind];
    bool gating = strcmp(stage, "createRuntime") == 0 || strcmp(stage, "prestart") == 0;
    bool record = strcmp(stage, "poststart") == 0 || strcmp(stage, "poststop") == 0;
    if (!gating && !record) {
        log_error("hook: unknown stage `%s` (createRuntime, prestart, poststart, poststop)", stage);
        return EXIT_FAILED;
    }

    /* Past this point a gating hook denies on any error; a recording one never blocks. */
    cleanup_error tether_error_t err = NULL;
    cleanup_free char *text = NULL;
    size_t len = 0;
    cleanup_json cJSON *state = NULL;
    if (read_fd(STDIN_FILENO, STATE_MAX, &text, &len, &err) < 0 ||
        measure_parse_oci_state(text, len, &state, &err) < 0) {
        if (gating)
            return deny(NULL, err->msg);
        log_warn("hook %s: %s", stage, err->msg);
        return 0;
    }
    const char *id = cJSON_GetObjectItemCaseSensitive(state, "id")->valuestring;
    if (!id_safe(id)) {
        if (gating)
            return deny(id, "the container id is not a file name");
        return 0;
    }
    struct config cfg;
    if (config_load(config_file, &cfg, &err) < 0) {
        config_clear(&cfg);
        if (gating)
            return deny(id, err->msg);
        log_warn("hook %s: %s", stage, err->msg);
        return 0;
    }
    const char *audit_path = audit_file ? audit_file : cfg.audit_path;
    int rc = 0;
    if (gating) {
        rc = gate(stage, state, &cfg, audit_path);
    } else {
        audit_stage(audit_path, stage, state);
        if (strcmp(stage, "poststop") == 0) {
            container_monitor_stop(id);
            remove_state(id);
        }
    }
    config_clear(&cfg);
    return rc;
}

/* `tether hook STAGE`: tether as an OCI runtime hook (hooks.d), gating containers. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "../policy/confine.h"
#include "audit.h"
#include "container_monitor.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "metrics.h"
#include "run.h"
#include "status.h"
#include "tether.h"

#define STATE_MAX (1 << 20)

static const char usage[] =
    "Usage: tether hook STAGE [OPTION]...\n"
    "Run as an OCI runtime hook: read the container's state (JSON) on standard input.\n"
    "STAGE is createRuntime or prestart (measure the container from its bundle and ask the\n"
    "policy: a deny, or any error, prints one line and exits 77, and the runtime does not\n"
    "start the container; an allow with a monitor block leaves a monitor and its guard\n"
    "watching it), poststart (record only; never blocks), or poststop (record, end the\n"
    "container's monitor, and remove the container's state in /run/tether/ID/).\n"
    "\n"
    "  -c, --config FILE    node configuration (hooks.d may pass it)\n"
    "  -a, --audit FILE     audit trail (default: the configuration's audit.path)\n"
    "  -h, --help           show this help\n"
    "\n"
    "Install contrib/hooks.d/tether.json for podman and CRI-O; see tether(1).\n";

/* A container id as a file name in the status directory: no slash, and no leading dot
 * (".", "..", and tether's own entries there, such as the hash cache, start with one). */
static bool id_safe(const char *id)
{
    return id[0] != '\0' && id[0] != '.' && strchr(id, '/') == NULL;
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

static const cJSON *path_get(const cJSON *j, const char *a, const char *b)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, a), b);
}

/* A file of the container's state, written whole or not at all. */
static void write_state(const char *dir, const char *name, const cJSON *j)
{
    cleanup_free char *file = xasprintf("%s/%s", dir, name);
    cleanup_free char *tmp = xasprintf("%s/.%s.tmp", dir, name);
    cleanup_free char *text = json_print(j);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write_all(fd, text, strlen(text)) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, file) < 0) {
        log_warn("cannot write `%s`: %s", file, strerror(errno));
        unlink(tmp);
    }
}

/* Whether the container's configuration grants, in any of its sets, a capability that
 * reaches a program no mark of exec prevention holds (run.h, PAST_THE_MARKS). */
static bool grants_past_marks(const cJSON *input)
{
    static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
                                       "ambient"};
    const cJSON *caps =
        cJSON_GetObjectItemCaseSensitive(path_get(input, "container", "process"), "capabilities");
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        const cJSON *name;
        cJSON_ArrayForEach (name, cJSON_GetObjectItemCaseSensitive(caps, sets[i])) {
            int cap = cJSON_IsString(name) ? confine_cap_from_name(name->valuestring) : -1;
            if (cap >= 0 && (PAST_THE_MARKS & (UINT64_C(1) << cap)))
                return true;
        }
    }
    return false;
}

/* A path as a runtime resolves it in the container: no repeated or trailing slash, no "."
 * component.  NULL for one with a ".." (taken for none of the paths compared). */
static char *path_clean(const char *p)
{
    if (p == NULL || strstr(p, "..") != NULL)
        return NULL;
    char *out = xstrdup(p), *o = out;
    for (const char *in = p; *in;) {
        if (*in == '/' && (in[1] == '/' || (in[1] == '.' && (in[2] == '/' || in[2] == '\0')))) {
            in += in[1] == '/' ? 1 : 2;
            continue;
        }
        *o++ = *in++;
    }
    while (o > out + 1 && o[-1] == '/')
        o--;
    *o = '\0';
    return out;
}

static bool string_listed(const cJSON *list, const char *s)
{
    const cJSON *e;
    cJSON_ArrayForEach (e, list)
        if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
            return true;
    return false;
}

static bool path_listed(const cJSON *list, const char *path)
{
    const cJSON *e;
    cJSON_ArrayForEach (e, list) {
        cleanup_free char *c = path_clean(cJSON_GetStringValue(e));
        if (c != NULL && strcmp(c, path) == 0)
            return true;
    }
    return false;
}

/* Read-only as the kernel reads a mount's options: the last of "ro" and "rw". */
static bool options_ro(const cJSON *opts)
{
    bool ro = false;
    const cJSON *o;
    cJSON_ArrayForEach (o, opts) {
        const char *v = cJSON_GetStringValue(o);
        if (v != NULL && strcmp(v, "ro") == 0)
            ro = true;
        else if (v != NULL && strcmp(v, "rw") == 0)
            ro = false;
    }
    return ro;
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Whether root in the container could write the node's sysctls or sysfs (kernel.core_pattern
 * and /sys/kernel/uevent_helper name programs the kernel runs as the node's root, outside
 * every namespace, and so outside every mark).  Not with a user namespace of its own.
 * Else: /proc/sys (or /proc) must be in readonlyPaths or maskedPaths, which the runtime
 * applies after every mount, whatever the mounts' options; any other proc, or a bind of
 * the node's /proc, and any sysfs or bind of /sys, must be read-only (the last of "ro" and
 * "rw"); a bind's source is resolved on the node (from the bundle when relative), and one
 * that cannot be counts as writable. */
static bool proc_sys_writable(const cJSON *input, const char *bundle)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(input, "container");
    if (string_listed(cJSON_GetObjectItemCaseSensitive(c, "namespaces"), "user"))
        return false;
    const cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItemCaseSensitive(c, "mounts")) {
        cleanup_free char *dest =
            path_clean(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "destination")));
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "type"));
        const char *source = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "source"));
        const cJSON *opts = cJSON_GetObjectItemCaseSensitive(m, "options");
        bool bind = (type != NULL && strcmp(type, "bind") == 0) || string_listed(opts, "bind") ||
                    string_listed(opts, "rbind");
        /* A bind's source is a path on the node, relative to the bundle unless absolute. */
        cleanup_free char *real = NULL;
        if (source != NULL && (source[0] == '/' || bind)) {
            cleanup_free char *full =
                source[0] == '/' ? xstrdup(source) : xasprintf("%s/%s", bundle, source);
            if ((real = realpath(full, NULL)) == NULL)
                return true; /* a source the node does not resolve: it could be anything */
        }
        bool ro = options_ro(opts);
        bool proc =
            (type != NULL && strcmp(type, "proc") == 0) || (real != NULL && under(real, "/proc"));
        bool sys =
            (type != NULL && strcmp(type, "sysfs") == 0) || (real != NULL && under(real, "/sys"));
        bool the_proc =
            type != NULL && strcmp(type, "proc") == 0 && dest != NULL && strcmp(dest, "/proc") == 0;
        if ((sys || (proc && !the_proc)) && !ro)
            return true;
    }
    static const char *const paths[] = {"/proc/sys", "/proc"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (path_listed(cJSON_GetObjectItemCaseSensitive(c, "readonly_paths"), paths[i]) ||
            path_listed(cJSON_GetObjectItemCaseSensitive(c, "masked_paths"), paths[i]))
            return false;
    return true;
}

/* Measures and decides; on an allow with a monitor block, leaves a monitor behind that
 * takes r's node, engine and decision. */
static int gate(const char *stage, const cJSON *state, struct run *r)
{
    const struct config *cfg = &r->cfg;
    const char *audit_path = r->audit_path;
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

    /* What was read, to tell later whether it changed before the monitor watched it. */
    if (cfg->policy == NULL || cfg->opa.url != NULL || stat(cfg->policy, &r->policy_st) < 0)
        memset(&r->policy_st, 0, sizeof r->policy_st);
    if (engine_open(cfg, NULL, NULL, &r->policy, &err) < 0)
        return deny(id, err->msg);
    struct decision *d = &r->d;
    policy_decide(r->policy, input, d);
    cleanup_json cJSON *rec = audit_decision_record("hook", r->policy, d, input);
    cJSON_AddStringToObject(rec, "stage", stage);
    cJSON_AddStringToObject(rec, "container_id", id);
    /* The image as root's sources name it (never what the image claims). */
    const char *image = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(path_get(input, "container", "image"), "name"));
    cJSON_AddItemToObject(rec, "image", json_string_or_null(image));
    int rc = 0;
    if (audit_append(audit_path, rec, &err) < 0) {
        rc = deny(id, err->msg);
    } else if (!d->allow) {
        cleanup_free char *why = decision_reasons_joined(d);
        rc = deny(id, why);
    } else {
        /* State for poststop to clean up, and for `tether status` to come. */
        cleanup_free char *base = status_dir();
        cleanup_free char *dir = xasprintf("%s/%s", base, id);
        cleanup_free char *file = xasprintf("%s/decision.json", dir);
        cleanup_json cJSON *out = decision_to_json(d);
        cleanup_free char *text = json_print(out);
        FILE *f = NULL;
        if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || (f = fopen(file, "we")) == NULL ||
            fputs(text, f) < 0 || fclose(f) != 0)
            log_warn("container %s: cannot write `%s`: %s", id, file, strerror(errno));
        /* What `tether status` shows of the container. */
        cleanup_json cJSON *gated = cJSON_CreateObject();
        cJSON_AddItemToObject(gated, "image", json_string_or_null(image));
        cJSON_AddNumberToObject(gated, "decided_at", (double)time(NULL));
        cJSON_AddStringToObject(gated, "stage", stage);
        cJSON_AddItemToObject(
            gated, "reasons",
            cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(rec, "reasons"), true));
        write_state(dir, "container.json", gated);
        /* Whose state this is: a container that ends without a poststop hook leaves it to
         * the next sweep (status_sweep), which tells by this pid and start time. */
        int64_t ipid;
        if (json_get_int(cJSON_GetObjectItemCaseSensitive(state, "pid"), 1, INT32_MAX, &ipid)) {
            cleanup_free char *ifile = xasprintf("%s/init", dir);
            cleanup_free char *line = xasprintf("%lld %llu\n", (long long)ipid,
                                                (unsigned long long)status_start_time((pid_t)ipid));
            FILE *fi = fopen(ifile, "we");
            if (fi == NULL || fputs(line, fi) < 0 || fclose(fi) != 0)
                log_warn("container %s: cannot write `%s`: %s", id, ifile, strerror(errno));
        }
        /* Credentials and a monitor block are honoured or the container does not start.
         * An identity token implies a monitor, which renews it. */
        int64_t init = 0;
        bool have_init =
            json_get_int(cJSON_GetObjectItemCaseSensitive(state, "pid"), 1, INT32_MAX, &init);
        if (prevent_exec(d) && grants_past_marks(input))
            rc = deny(id,
                      "monitor.prevent_exec cannot hold a container granted " PAST_THE_MARKS_NAMES
                      ": each reaches a program no mark holds");
        else if (prevent_exec(d) && proc_sys_writable(input, bundle))
            rc = deny(id, "monitor.prevent_exec cannot hold a container whose root may write "
                          "/proc/sys or /sys (kernel.core_pattern and /sys/kernel/uevent_helper "
                          "name programs no mark holds): list /proc/sys in linux.readonlyPaths "
                          "and mount /sys read-only");
        else if (creds_wanted(d)) {
            if (!have_init)
                rc = deny(id, "the decision releases credentials, and the state has no pid");
            else if (creds_container(r, input, (pid_t)init, &err) < 0)
                rc = deny(id, err->msg);
        }
        if (rc == 0 && (d->monitor != NULL || d->identity != NULL)) {
            if (!have_init)
                rc = deny(id, "the decision asks for monitoring, and the state has no pid");
            else if (container_monitor_spawn(r, id, bundle, state, (pid_t)init, &err) < 0)
                rc = deny(id, err->msg);
        }
        /* The container's credentials are its own now (and its monitor's): the hook's copy
         * of their descriptor goes without touching them. */
        if (r->creds.dir_fd >= 0)
            close(steal_fd(&r->creds.dir_fd));
        if (rc != 0)
            remove_state(id);
    }
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
    /* The node, engine and decision as a run holds them: a monitor takes them over. */
    struct run r;
    run_init(&r);
    r.config_file = config_file;
    r.audit_file = audit_file;
    if (config_load(config_file, &r.cfg, &err) < 0) {
        run_release(&r);
        if (gating)
            return deny(id, err->msg);
        log_warn("hook %s: %s", stage, err->msg);
        /* Nothing to record to, but the container's monitor and state still go. */
        if (strcmp(stage, "poststop") == 0) {
            container_monitor_stop(id);
            remove_state(id);
        }
        return 0;
    }
    if (r.cfg.path == NULL || stat(r.cfg.path, &r.config_st) < 0)
        memset(&r.config_st, 0, sizeof r.config_st);
    r.audit_path = xstrdup(audit_file ? audit_file : r.cfg.audit_path);
    audit_syslog_set(r.cfg.audit_syslog ? r.cfg.audit_syslog_socket : NULL);
    metrics_configure(&r.cfg, r.audit_path);
    int rc = 0;
    if (gating) {
        /* A container that ended without a poststop hook (crun calls none when its start
         * fails) leaves its state to the next container's gate. */
        status_sweep_containers();
        rc = gate(stage, state, &r);
    } else {
        audit_stage(r.audit_path, stage, state);
        if (strcmp(stage, "poststop") == 0) {
            container_monitor_stop(id);
            remove_state(id);
        }
    }
    run_release(&r);
    return rc;
}

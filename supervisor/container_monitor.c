/* The monitor a gating hook leaves behind for a container it allowed with a monitor block:
 * a detached process bound to the container's init by a pidfd, which looks at the
 * container's cgroup on the decision's interval, asks the policy again (phase monitor), and
 * on drift acts: log, or SIGTERM to the container's processes and SIGKILL after the grace
 * period (stop freezes the cgroup; restart belongs to the runtime, so it is a kill here).
 * Its pid is in /run/tether/<id>/monitor.pid; poststop ends it. */
#define _GNU_SOURCE
#include "container_monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "cgroup.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "status.h"
#include "tether.h"

static void audit_event(const char *audit_path, const char *event, const char *id, const char *key,
                        const char *value)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new(event);
    cJSON_AddStringToObject(rec, "container_id", id);
    if (key != NULL)
        cJSON_AddStringToObject(rec, key, value);
    audit_append(audit_path, rec, &err);
}

static void signal_cgroup(const struct cgroup *cg, int pidfd, int sig)
{
    pid_t *pids = NULL;
    size_t n = 0;
    if (cg->dir != NULL && cgroup_pids(cg, &pids, &n) == 0)
        for (size_t i = 0; i < n; i++)
            kill(pids[i], sig);
    free(pids);
    syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The daemon's loop: returns when the container's init is gone. */
static void watch(const struct config *cfg, const char *audit_path, const char *id,
                  const char *bundle, pid_t init, const char *on_drift, int64_t interval_ms)
{
    int pidfd = (int)syscall(SYS_pidfd_open, init, 0);
    if (pidfd < 0)
        return;
    struct cgroup cg;
    cgroup_of_pid(init, &cg);
    struct policy *policy = NULL;
    cleanup_error tether_error_t err = NULL;
    if (engine_open(cfg, NULL, NULL, &policy, &err) < 0) {
        audit_event(audit_path, "drift", id, "reason", err->msg);
        signal_cgroup(&cg, pidfd, SIGKILL);
        return;
    }
    cleanup_json cJSON *state = cJSON_CreateObject();
    cJSON_AddStringToObject(state, "id", id);
    audit_event(audit_path, "monitor_started", id, "on_drift", on_drift);
    bool ending = false, frozen = false, unreachable = false;
    uint64_t kill_at = 0, unreachable_since = 0;
    for (;;) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        int timeout = ending ? 100 : (int)interval_ms;
        if (poll(&p, 1, timeout) > 0)
            break; /* the init is gone: so is the container */
        if (ending) {
            if (time_mono_ns() >= kill_at) {
                signal_cgroup(&cg, pidfd, SIGKILL);
                audit_event(audit_path, "killed", id, "signal", "SIGKILL");
                kill_at = UINT64_MAX;
            }
            continue;
        }
        cJSON *container = NULL;
        if (measure_container_collect(bundle, state, &cfg->container, &container, &err) < 0)
            error_free(&err);
        cJSON *procs = cJSON_CreateArray();
        pid_t *pids = NULL;
        size_t n = 0;
        if (cg.dir != NULL && cgroup_pids(&cg, &pids, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                cJSON *e = NULL;
                if (measure_process_collect(pids[i], &e, NULL) == 0)
                    cJSON_AddItemToArray(procs, e);
            }
        }
        free(pids);
        cleanup_json cJSON *input = measure_input_build(
            "monitor", measure_host_collect(cfg->labels), NULL, container, procs);
        struct decision d = {.ttl_s = -1};
        policy_decide(policy, input, &d);
        /* An engine that cannot be reached is given monitor.fail_grace_s, as under run. */
        if (d.unreachable) {
            if (!unreachable) {
                unreachable = true;
                unreachable_since = time_mono_ns();
                audit_event(audit_path, "policy_unreachable", id, "reason", d.reasons[0]);
            }
            if (time_mono_ns() - unreachable_since <=
                (uint64_t)cfg->monitor.fail_grace_s * 1000000000u) {
                decision_clear(&d);
                continue;
            }
        } else if (unreachable) {
            unreachable = false;
            audit_event(audit_path, "policy_reachable", id, NULL, NULL);
        }
        if (d.allow && frozen) {
            if (cg.dir != NULL)
                cgroup_freeze(&cg, false);
            else
                signal_cgroup(&cg, pidfd, SIGCONT);
            frozen = false;
            audit_event(audit_path, "thawed", id, NULL, NULL);
        }
        if (!d.allow && !frozen) {
            cleanup_free char *why = decision_reasons_joined(&d);
            cleanup_json cJSON *rec = audit_decision_record("monitor", policy, &d, input);
            cJSON_AddStringToObject(rec, "container_id", id);
            audit_append(audit_path, rec, &err);
            error_free(&err);
            cleanup_json cJSON *drift = audit_record_new("drift");
            cJSON_AddStringToObject(drift, "container_id", id);
            cJSON_AddStringToObject(drift, "reason", why);
            cJSON_AddStringToObject(drift, "action", on_drift);
            audit_append(audit_path, drift, &err);
            error_free(&err);
            if (strcmp(on_drift, "stop") == 0) {
                if (cg.dir != NULL)
                    cgroup_freeze(&cg, true);
                else
                    signal_cgroup(&cg, pidfd, SIGSTOP);
                frozen = true;
                audit_event(audit_path, "stopped", id, "reason", why);
            } else if (strcmp(on_drift, "log") != 0) {
                signal_cgroup(&cg, pidfd, SIGTERM);
                ending = true;
                kill_at = time_mono_ns() + (uint64_t)cfg->monitor.grace_s * 1000000000u;
            }
        }
        decision_clear(&d);
    }
    audit_event(audit_path, "monitor_ended", id, NULL, NULL);
    policy_free(policy);
    free(cg.dir);
    free(cg.rel);
    close(pidfd);
}

int container_monitor_spawn(const struct config *cfg, const char *audit_path, const char *id,
                            const char *bundle, pid_t init, const cJSON *monitor,
                            tether_error_t *err)
{
    const char *on_drift =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(monitor, "on_drift"));
    int64_t interval = 1000;
    json_get_int(cJSON_GetObjectItemCaseSensitive(monitor, "interval_ms"), 1, 86400000, &interval);
    if (on_drift == NULL || strcmp(on_drift, "restart") == 0)
        on_drift = "kill"; /* restarting is the runtime's business; the safe part is the kill */

    cleanup_free char *base = status_dir();
    cleanup_free char *pidfile = xasprintf("%s/%s/monitor.pid", base, id);
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0)
        return error_set(err, errno, "container monitor: pipe");
    pid_t mid = fork();
    if (mid < 0) {
        close(sync[0]);
        close(sync[1]);
        return error_set(err, errno, "container monitor: fork");
    }
    if (mid == 0) {
        /* Detach: a session of its own, and a second fork so that the runtime's hook
         * process can end; standard streams away from the runtime's pipes. */
        close(sync[0]);
        setsid();
        pid_t d = fork();
        if (d != 0)
            _exit(d < 0 ? 1 : 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        FILE *f = fopen(pidfile, "we");
        if (f != NULL) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
        (void)!write(sync[1], "1", 1);
        close(sync[1]);
        watch(cfg, audit_path, id, bundle, init, on_drift, interval);
        _exit(0);
    }
    close(sync[1]);
    while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
        ;
    char ok;
    ssize_t n = read(sync[0], &ok, 1);
    close(sync[0]);
    if (n != 1)
        return error_set(err, 0, "container monitor: it did not start");
    return 0;
}

void container_monitor_stop(const char *id)
{
    cleanup_free char *base = status_dir();
    cleanup_free char *pidfile = xasprintf("%s/%s/monitor.pid", base, id);
    cleanup_free char *text = NULL;
    int64_t pid;
    if (read_file(pidfile, 64, &text, NULL, NULL) == 0) {
        text[strcspn(text, "\n")] = '\0';
        if (parse_int64(text, 2, INT32_MAX, &pid) == 0)
            kill((pid_t)pid, SIGTERM);
    }
}

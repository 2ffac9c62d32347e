/* The monitor a gating hook leaves behind for a container it allowed with a monitor block,
 * and its guard (see container_monitor.h).
 *
 * The hook forks, the child makes a session of its own and forks again: that grandchild is
 * the monitor, detached from the runtime, running the loop of monitor.c on the container.
 * The monitor forks the guard, a small process that does nothing but wait: for the
 * monitor's heartbeat, a 4-byte allowance written to a pipe on every turn of the loop and
 * at least every GUARD_PULSE_MS, and for the monitor's end, through a pidfd.  When the
 * monitor dies, or sends no beat within its allowance (it hangs, or was stopped), while the
 * container still runs, the guard kills it, records monitor_failed with the reason, applies
 * the decision's on_drift to the container (kill: cgroup.kill, else SIGKILL to each of its
 * processes; stop: its cgroup's freezer, else SIGSTOP; log: the record alone), and exits.
 * When the guard dies, the monitor records guard_failed and starts another.  An allowance
 * of 0 says the monitor is ending with its container: the guard then exits without acting.
 *
 * Neither has a parent-death signal: the monitor must outlive the hook, and the guard the
 * monitor.  Both are kept from the runtime's signals by their own session. */
#define _GNU_SOURCE
#include "container_monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "execgate.h"
#include "monitor.h"
#include "status.h"
#include "tree.h"

/* --- the container's processes --- */

bool container_cgroup(pid_t init, struct cgroup *cg)
{
    if (!cgroup_of_pid(init, cg))
        return false;
    /* A container without a cgroup of its own shares the runtime's (and so the hook's and
     * this process's): acting on that group would act on more than the container. */
    if (strcmp(cg->rel, "/") != 0 && !cgroup_has(cg, getpid()))
        return true;
    free(cg->dir);
    free(cg->rel);
    cg->dir = cg->rel = NULL;
    return false;
}

size_t container_pids(const struct cgroup *cg, pid_t init, pid_t **out)
{
    size_t n = 0;
    if (cg->dir != NULL && cgroup_pids(cg, out, &n) == 0)
        return n;
    free(*out);
    n = tree_descendants(init, out);
    *out = xrealloc(*out, (n + 1) * sizeof **out);
    (*out)[n++] = init;
    return n;
}

static bool ended(int pidfd)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    return pidfd < 0 || poll(&p, 1, 0) > 0;
}

void container_signal(const struct cgroup *cg, pid_t init, int init_pidfd, int sig)
{
    if (sig == SIGKILL && cg->dir != NULL) {
        cleanup_free char *path = xasprintf("%s/cgroup.kill", cg->dir);
        cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
            (void)!write(fd, "1", 1);
    }
    /* Without a cgroup the tree is found from the init's pid, which means nothing once the
     * init is gone (the pid may be another process's by now). */
    if (cg->dir != NULL || !ended(init_pidfd)) {
        cleanup_free pid_t *pids = NULL;
        size_t n = container_pids(cg, init, &pids);
        for (size_t i = 0; i < n; i++)
            if (pids[i] != init)
                kill(pids[i], sig);
    }
    if (init_pidfd >= 0)
        syscall(SYS_pidfd_send_signal, init_pidfd, sig, NULL, 0);
}

int container_freeze(const struct cgroup *cg, pid_t init, int init_pidfd, bool frozen)
{
    if (cg->dir != NULL)
        return cgroup_freeze(cg, frozen);
    container_signal(cg, init, init_pidfd, frozen ? SIGSTOP : SIGCONT);
    return 0;
}

/* Written whole or not at all: a reader never sees half a pid. */
static void pid_file_write(const char *path, pid_t pid)
{
    cleanup_free char *tmp = xasprintf("%s.tmp", path);
    char text[16];
    int len = snprintf(text, sizeof text, "%d\n", (int)pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    bool ok = write_all(fd, text, (size_t)len) == 0;
    close(fd);
    if (!ok || rename(tmp, path) < 0)
        unlink(tmp);
}

/* --- the guard --- */

static void guard_act(const struct guard_target *t, int init_fd, pid_t monitor, const char *why)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("monitor_failed");
    cJSON_AddStringToObject(rec, "container_id", t->id);
    cJSON_AddNumberToObject(rec, "monitor_pid", monitor);
    cJSON_AddStringToObject(rec, "reason", why);
    cJSON_AddStringToObject(rec, "action", t->on_drift);
    audit_append(t->audit_path, rec, &err);
    if (strcmp(t->on_drift, "kill") == 0)
        container_signal(t->cg, t->init, init_fd, SIGKILL);
    else if (strcmp(t->on_drift, "stop") == 0)
        container_freeze(t->cg, t->init, init_fd, true);
}

static void __attribute__((noreturn))
guard_main(const struct guard_target *t, pid_t monitor, int beat)
{
    /* Nothing of the monitor's but the heartbeat pipe: its sockets, watches and files are
     * not the guard's to hold open. */
    if (beat != 3 && dup2(beat, 3) == 3)
        beat = 3;
    close_range((unsigned)beat + 1, ~0u, 0);
    int mon_fd = (int)syscall(SYS_pidfd_open, monitor, 0);
    if (mon_fd >= 0 && getppid() != monitor) {
        close(mon_fd); /* it died before the pidfd was had, and the pid was taken again */
        mon_fd = -1;
    }
    int init_fd = (int)syscall(SYS_pidfd_open, t->init, 0);
    uint64_t allowance = GUARD_IDLE_MS, last = time_mono_ns();
    cleanup_free char *why = NULL;
    while (why == NULL) {
        if (mon_fd < 0) {
            why = xasprintf("the container's monitor (pid %d) died", (int)monitor);
            break;
        }
        uint64_t now = time_mono_ns(), due = last + allowance * 1000000u;
        if (now >= due) {
            why = xasprintf("the container's monitor (pid %d) sent no heartbeat for %llu ms",
                            (int)monitor, (unsigned long long)allowance);
            break;
        }
        struct pollfd p[2] = {{.fd = beat, .events = POLLIN}, {.fd = mon_fd, .events = POLLIN}};
        int n = poll(p, 2, (int)((due - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR)
            why = xasprintf("the guard cannot wait for the monitor: %s", strerror(errno));
        if (n <= 0)
            continue;
        if (p[0].revents != 0) {
            uint32_t msg[64];
            ssize_t len = read(beat, msg, sizeof msg);
            for (ssize_t i = 0; i < len / 4; i++)
                if (msg[i] == 0)
                    _exit(0); /* the monitor ends with its container */
            if (len >= 4) {
                allowance = msg[len / 4 - 1];
                last = time_mono_ns();
            } else if (len == 0) {
                close(mon_fd); /* the last writer is gone: so is the monitor */
                mon_fd = -1;
            }
        }
        if (p[1].revents != 0) {
            close(mon_fd);
            mon_fd = -1;
        }
    }
    /* A hung monitor must not wake and undo what the guard does. */
    if (mon_fd >= 0)
        syscall(SYS_pidfd_send_signal, mon_fd, SIGKILL, NULL, 0);
    if (init_fd >= 0 && !ended(init_fd))
        guard_act(t, init_fd, monitor, why);
    cleanup_free char *status = status_path(monitor);
    unlink(status);
    _exit(0);
}

int guard_start(struct guard *g, const struct guard_target *t, tether_error_t *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return error_set(err, errno, "guard: pipe");
    pid_t monitor = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return error_set(err, e, "guard: fork");
    }
    if (pid == 0) {
        close(fds[1]);
        guard_main(t, monitor, fds[0]);
    }
    close(fds[0]);
    /* A guard that does not read (stopped) never blocks the monitor. */
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    g->pid = pid;
    g->beat_fd = fds[1];
    g->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    pid_file_write(t->pid_file, pid);
    return 0;
}

void guard_beat(struct guard *g, uint32_t allowance_ms)
{
    if (g->beat_fd >= 0 && allowance_ms > 0)
        (void)!write(g->beat_fd, &allowance_ms, sizeof allowance_ms);
}

static void guard_close(struct guard *g)
{
    if (g->pidfd >= 0)
        close(g->pidfd);
    if (g->beat_fd >= 0)
        close(g->beat_fd);
    g->pidfd = g->beat_fd = -1;
    g->pid = 0;
}

char *guard_reap(struct guard *g)
{
    int status = 0;
    pid_t pid = g->pid;
    pid_t r = waitpid(pid, &status, WNOHANG);
    guard_close(g);
    if (r == pid && WIFSIGNALED(status))
        return xasprintf("(pid %d) was ended by signal %d", (int)pid, WTERMSIG(status));
    if (r == pid && WIFEXITED(status))
        return xasprintf("(pid %d) exited with status %d", (int)pid, WEXITSTATUS(status));
    return xasprintf("(pid %d) ended", (int)pid);
}

void guard_stop(struct guard *g)
{
    if (g->pid <= 0)
        return;
    uint32_t quit = 0;
    (void)!write(g->beat_fd, &quit, sizeof quit);
    struct pollfd p = {.fd = g->pidfd, .events = POLLIN};
    if (g->pidfd < 0 || poll(&p, 1, 2000) <= 0)
        kill(g->pid, SIGKILL); /* a stopped guard has nothing left to guard */
    while (waitpid(g->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    guard_close(g);
}

/* --- starting and stopping --- */

int container_monitor_spawn(struct run *r, const char *id, const char *bundle, const cJSON *state,
                            pid_t init, tether_error_t *err)
{
    cleanup_free char *base = status_dir();
    cleanup_free char *pidfile = xasprintf("%s/%s/monitor.pid", base, id);
    /* Exec prevention: marks on the container's own mounts, made before the runtime starts
     * its program; the keeper holds the group until the container's init has ended. */
    if (prevent_exec(&r->d)) {
        r->sv.gate_fd = execgate_open_in(init, err);
        if (r->sv.gate_fd < 0)
            return -1;
        cleanup_close int ipfd = (int)syscall(SYS_pidfd_open, init, 0);
        if (ipfd < 0 || execgate_hold(r->sv.gate_fd, ipfd) < 0)
            return error_set(err, errno, "exec prevention: the group's keeper");
    }
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
         * process can end; standard streams away from the runtime's pipes.  The signals
         * that ask the monitor to end are blocked before its pid is known, so that none
         * ends it before it can answer. */
        close(sync[0]);
        setsid();
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN); /* a dead guard's pipe is an error, not the monitor's end */
        signal(SIGCHLD, SIG_DFL); /* the runtime may have ignored it: evaluations are waited */
        pid_t d = fork();
        if (d != 0)
            _exit(d < 0 ? 1 : 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
        pid_file_write(pidfile, getpid());
        struct monitor_container c = {
            .id = id, .bundle = bundle, .state = state, .init = init, .ready_fd = sync[1]};
        int rc = monitor_container(r, &c);
        status_container_ended(id, init);
        _exit(rc);
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

/* The pid in a pid file, when that process is a tether (the pid may have been taken again
 * since the file was written); else 0. */
static pid_t tether_pid_in(const char *pidfile)
{
    cleanup_free char *text = NULL;
    int64_t pid;
    if (read_file(pidfile, 64, &text, NULL, NULL) < 0)
        return 0;
    text[strcspn(text, "\n")] = '\0';
    if (parse_int64(text, 2, INT32_MAX, &pid) < 0)
        return 0;
    char self[4096], other[4096], link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
    ssize_t a = readlink("/proc/self/exe", self, sizeof self - 1);
    ssize_t b = readlink(link, other, sizeof other - 1);
    if (a <= 0 || a != b || memcmp(self, other, (size_t)a) != 0)
        return 0;
    return (pid_t)pid;
}

void container_monitor_stop(const char *id)
{
    cleanup_free char *base = status_dir();
    cleanup_free char *pidfile = xasprintf("%s/%s/monitor.pid", base, id);
    pid_t pid = tether_pid_in(pidfile);
    if (pid == 0)
        return;
    cleanup_close int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0 || syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0) < 0)
        return;
    /* Its end, and its guard's, before the state they write to goes. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 3000) <= 0)
        log_warn("container %s: its monitor (pid %d) has not ended", id, (int)pid);
}

/* Drift monitoring (see monitor.h).  One epoll loop: the signalfd (forwarding, reaping), a
 * pidfd for the workload, timerfds for the interval, the decision's ttl, the heartbeat, the
 * kill grace period and the restart backoff, inotify on the executable, the policy, the
 * configuration and the watched paths, and the kernel's process connector for exec events
 * in the workload's tree.
 *
 * Drift is: a deny from the policy; the executable changing on disk; a watched path
 * changing; a policy or configuration that no longer loads; the engine unreachable for
 * longer than monitor.fail_grace_s.  The decision's monitor.on_drift says what follows.
 *
 * The workload is one that `tether run` started (m->c NULL), or a container a runtime
 * started (m->c): then its tree is the container's cgroup, nothing is launched or restarted,
 * the signalfd only asks the monitor to end, and a guard (container_monitor.c) is told of
 * every turn of the loop. */
#define _GNU_SOURCE
#include "monitor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "container_monitor.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "status.h"
#include "tether.h"
#include "execgate.h"
#include "seal.h"
#include "tree.h"

enum {
    EV_SIGNAL,
    EV_PIDFD,
    EV_MAIN,
    EV_NOTE,
    EV_GATE,
    EV_EXECS,
    EV_TICK,
    EV_TTL,
    EV_BEAT,
    EV_GRACE,
    EV_BACKOFF,
    EV_SETTLE,
    EV_INOTIFY,
    EV_CN,
    EV_GUARD,
    EV_PULSE,
    EV_RENEW,
    EV_UNHOLD
};

/* A changed policy or configuration is read once its writer is done: on close-after-write
 * or rename, and after this long without further events, so that a half-written file is
 * never taken for the new one. */
#define SETTLE_MS 50

/* The look's interval when no exec event can be had and the decision sets none. */
#define NO_CONNECTOR_INTERVAL_MS 1000

enum watched { W_EXE, W_POLICY, W_CONFIG, W_WATCH };

struct watch {
    int wd_dir;       /* the directory: the file replaced, created, removed */
    int wd_file;      /* the file itself: written, its attributes changed */
    char *dir, *name; /* the file */
    enum watched what;
};

#define DIR_EVENTS (IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE)
#define FILE_EVENTS (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

/* The processes with an event since the last look (the process connector reports every
 * fork, exec, exit and change of ids, of any process of the host): a look that an exec
 * triggers measures and judges only those of them in the workload's tree (the input's
 * processes_scope is "changed"), so that its cost does not grow with the tree.  The look on
 * the interval measures and judges every process ("tree"): what a process changes without
 * an event (capabilities raised from its permitted set, namespaces), and a rule over the
 * whole tree (how many processes), are judged there.  Without an interval, before the first
 * whole look, or after events were lost, every look is a whole one. */
#define CHANGED_MAX 4096 /* processes, each once */
#define CHANGED_BITS 13
#define CHANGED_SLOTS (1u << CHANGED_BITS)
_Static_assert(CHANGED_SLOTS >= 2 * CHANGED_MAX, "the set is at most half full");
struct changed {
    pid_t *pids;  /* unsorted */
    pid_t *slots; /* pids, hashed (open addressing; 0 is free): each process once */
    size_t n;
    bool overflow;   /* more than CHANGED_MAX, or the connector lost events */
    bool whole_seen; /* a look at the whole tree has been made */
};

struct mon {
    struct run *r;
    const struct monitor_container *c; /* a container's monitor, or NULL under run */
    bool remarked;                     /* the container's mounts marked again at its exec */
    struct cgroup ccg;                 /* the container's own cgroup (dir NULL: none) */
    struct tree_memo *memo;            /* in_tree's answers, where it walks up parents */
    struct guard guard;                /* the container monitor's guard */
    struct guard_target guard_target;
    int sigfd, ep, pidfd, tick, ttl, beat, grace, backoff, settle, ino, cn, pulse, renew;
    bool policy_changed, config_changed; /* waiting for the settle timer */
    struct watch *watches;
    size_t n_watches;

    const char *on_drift;
    int64_t interval_ms;
    enum { RUNNING, STOPPED, ENDING } state;
    bool restart_after; /* the workload is being killed in order to restart it */
    int restarts;
    bool sigkill_sent;

    bool unreachable;
    uint64_t unreachable_since;
    bool have_decision, last_allow;
    uint64_t last_decision_ns;
    uint64_t status_written_ns;
    bool evaluate_pending;
    bool launch_exec_seen; /* the workload's own first exec, which tether made, is no event */
    struct changed changed;
    /* Under prevention, by thread id: where its execve(2) is, from its start (EXEC_STARTED)
     * through each file held for it, until the thread's next execve.  A byte per id up to the
     * highest seen (pid_max, 4 Mi at most, bounds it); no thread takes another's. */
    uint8_t *exec_state;
    size_t exec_state_len;
    /* Allowed execs whose files are still held still: see keep_still. */
    struct still *still;
    size_t n_still, cap_still;
    int unhold;         /* the timer that looks for their threads having left execve(2) */
    uint32_t unhold_ms; /* its next wait: doubled while a thread stays on a processor */
};

/* EXEC_STARTED: the next file is the program; EXEC_AFTER_ELF: the last one named an
 * interpreter (PT_INTERP), the next is its loader; EXEC_AFTER_OTHER: the last was a script, a
 * binfmt_misc format or a loader, the next is an interpreter that runs it as its program. */
enum { EXEC_NONE, EXEC_STARTED, EXEC_AFTER_ELF, EXEC_AFTER_OTHER };

static int timer_new(void)
{
    return timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
}

static void timer_set(int fd, uint64_t ms, bool repeat)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(ms / 1000);
    its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
    if (ms == 0)
        its.it_value.tv_nsec = 0; /* disarm */
    if (repeat)
        its.it_interval = its.it_value;
    timerfd_settime(fd, 0, &its, NULL);
}

static void drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

static void ep_add(struct mon *m, int fd, int tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)tag};
    if (fd >= 0)
        epoll_ctl(m->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Whom a record is about: the workload's argv[0] and main process, or the container. */
static void audit_subject(const struct mon *m, cJSON *rec)
{
    if (m->c != NULL) {
        cJSON_AddStringToObject(rec, "container_id", m->c->id);
        return;
    }
    cJSON_AddStringToObject(rec, "argv0", m->r->cmd[0]);
    cJSON_AddNumberToObject(rec, "pid", m->r->sv.main);
}

static void audit_event(struct mon *m, const char *event, const char *key, const char *value)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new(event);
    audit_subject(m, rec);
    if (key != NULL)
        cJSON_AddStringToObject(rec, key, value);
    if (audit_append(m->r->audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

/* --- the workload's process tree --- */

static int pid_cmp(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* A process's fork, exec, comm and id changes are one entry: what fills the list on a busy
 * host is how many processes had events, not how many events. */
static void changed_add(struct changed *c, pid_t pid)
{
    if (pid <= 0 || c->overflow) /* the next look is a whole one anyway */
        return;
    if (c->pids == NULL) {
        c->pids = xcalloc(CHANGED_MAX, sizeof *c->pids);
        c->slots = xcalloc(CHANGED_SLOTS, sizeof *c->slots);
    }
    /* Fibonacci hashing: the product's top bits. */
    size_t i = ((uint32_t)pid * UINT32_C(2654435769)) >> (32 - CHANGED_BITS);
    for (; c->slots[i] != 0; i = (i + 1) & (CHANGED_SLOTS - 1))
        if (c->slots[i] == pid)
            return;
    if (c->n == CHANGED_MAX) {
        c->overflow = true;
        return;
    }
    c->slots[i] = pid;
    c->pids[c->n++] = pid;
}

/* The cgroup holds the tree exactly, but for a container runtime, which moves the container
 * to a cgroup of its own. */
static bool by_cgroup(const struct mon *m)
{
    return m->r->cg.dir != NULL && m->r->bundle == NULL;
}

/* Every process of the workload but its init: the members of its cgroup, else of its pid
 * namespace, else the init's descendants (wrapper mode), else tether's. */
static size_t tree_pids(struct mon *m, pid_t **out)
{
    const struct supervisor *sv = &m->r->sv;
    size_t n = 0;
    *out = NULL;
    if (m->c != NULL)
        return container_pids(&m->ccg, m->c->init, out);
    if (by_cgroup(m) && cgroup_pids(&m->r->cg, out, &n) == 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if ((*out)[i] != sv->child || sv->life_fd < 0)
                (*out)[k++] = (*out)[i];
        return k;
    }
    free(*out);
    if (sv->pidns != 0)
        return tree_pidns_members(sv->pidns, sv->child, out);
    if (sv->life_fd >= 0)
        return tree_descendants(sv->child, out);
    return tree_descendants(getpid(), out);
}

static void signal_tree(struct mon *m, int sig)
{
    const struct supervisor *sv = &m->r->sv;
    if (m->c != NULL) {
        container_signal(&m->ccg, m->c->init, m->pidfd, sig);
        return;
    }
    if (sig == SIGKILL && by_cgroup(m)) {
        cleanup_free char *path = xasprintf("%s/cgroup.kill", m->r->cg.dir);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)!write(fd, "1", 1);
            close(fd);
        }
    }
    cleanup_free pid_t *pids = NULL;
    size_t n = tree_pids(m, &pids);
    if (sig == SIGKILL && m->r->bundle != NULL)
        tree_kill_cgroups(pids, n); /* the container, in the runtime's cgroup */
    for (size_t i = 0; i < n; i++)
        kill(pids[i], sig);
    /* The init last: with it the kernel ends its pid namespace, whatever is left in it. */
    if (sig == SIGKILL && sv->life_fd >= 0)
        kill(sv->child, SIGKILL);
    else if (sv->life_fd < 0 && m->pidfd >= 0)
        syscall(SYS_pidfd_send_signal, m->pidfd, sig, NULL, 0);
}

static int freeze(struct mon *m, bool frozen)
{
    if (m->c != NULL)
        return container_freeze(&m->ccg, m->c->init, m->pidfd, frozen);
    if (m->r->cg.dir != NULL)
        return cgroup_freeze(&m->r->cg, frozen);
    signal_tree(m, frozen ? SIGSTOP : SIGCONT);
    return 0;
}

/* --- status file --- */

static void status_update(struct mon *m, bool force)
{
    uint64_t now = time_mono_ns();
    if (!force && now - m->status_written_ns < 1000000000u)
        return;
    m->status_written_ns = now;
    static const char *const states[] = {"running", "stopped", "ending"};
    int allow = m->have_decision ? (m->last_allow ? 1 : 0) : -1;
    if (m->c != NULL)
        status_write_container(m->r, m->c->id, m->c->init, states[m->state], allow);
    else
        status_write(m->r, states[m->state], allow, m->restarts);
}

/* --- drift and its consequences --- */

static void drift(struct mon *m, const char *why)
{
    if (m->state == ENDING)
        return;
    log_warn("drift: %s; action: %s", why, m->on_drift);
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("drift");
    audit_subject(m, rec);
    cJSON_AddStringToObject(rec, "reason", why);
    cJSON_AddStringToObject(rec, "action", m->on_drift);
    if (audit_append(m->r->audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
    /* Credentials go first, whatever the action: before the workload is stopped or killed,
     * and never renewed again. */
    creds_wipe(m->r, why);

    if (strcmp(m->on_drift, "log") == 0)
        return;
    if (strcmp(m->on_drift, "stop") == 0) {
        if (m->state == RUNNING) {
            if (freeze(m, true) < 0)
                log_warn("cannot freeze the workload: %s", strerror(errno));
            m->state = STOPPED;
            audit_event(m, "stopped", "reason", why);
            status_update(m, true);
        }
        return;
    }
    /* kill, or restart: SIGTERM to the whole tree, SIGKILL after the grace period. */
    if (m->state == STOPPED)
        freeze(m, false); /* a frozen process cannot act on SIGTERM */
    m->state = ENDING;
    m->restart_after = strcmp(m->on_drift, "restart") == 0;
    signal_tree(m, SIGTERM);
    timer_set(m->grace, (uint64_t)m->r->cfg.monitor.grace_s * 1000 + 1, false);
    status_update(m, true);
}

/* The input of the monitor phase, without processes: the workload measured at launch, or
 * the container's bundle now. */
static cJSON *measure_target(struct mon *m)
{
    if (m->c == NULL)
        return run_measure_monitor(m->r);
    cleanup_error tether_error_t err = NULL;
    cJSON *container = NULL;
    if (measure_container_collect(m->c->bundle, m->c->state, &m->r->cfg.container, &container,
                                  &err) < 0)
        log_warn("container %s: %s", m->c->id, err->msg); /* the policy sees null */
    return measure_input_build("monitor", measure_host_collect(m->r->cfg.labels), NULL, container,
                               NULL);
}

/* The guard's bound while the monitor is busy in something that may take the policy's
 * whole bound (an evaluation, a policy's load). */
static uint32_t busy_allowance(const struct mon *m)
{
    uint64_t bound = m->r->policy && m->r->policy->bound_ms ? m->r->policy->bound_ms : 10000;
    return (uint32_t)(bound < 3600000 ? bound : 3600000) + GUARD_IDLE_MS;
}

/* --- exec prevention --- */

/* Files held still after their answer.
 *
 * The kernel denies writes to an exec's file only once the exec is past the open tether
 * holds.  A writer that opened, wrote and closed between tether's answer and that point
 * (the exec's thread waiting for a processor, say) had the kernel run what it wrote, not
 * what tether judged.  So an allowed file keeps its lease until its thread is past that
 * open: until the thread holds its next file (its loader, an interpreter) or starts another
 * exec, or it is seen past it (a timer, and the process connector's exec and exit events,
 * look: see short_of_its_open).  A writer that comes in between counts as a writer at once, so
 * the exec fails with ETXTBSY, and its open waits for the lease.  The kernel takes a lease
 * back from its holder fs.lease-break-time seconds (45) after a writer asked for it: a
 * thread still short of its open by half that time (kept from a processor on purpose, it
 * can be) is killed before its writer can write. */
struct still {
    pid_t tid;
    int fd;
    unsigned long long utime; /* the thread's user time when its file was allowed */
    uint64_t asked_ns;        /* when a writer was first seen asking for the lease */
};

/* The timer's first wait, and its longest: a thread that computes reads as "running" until
 * it has a tick of user time, and a writer waits for it meanwhile. */
#define UNHOLD_MS 20
#define UNHOLD_MS_MAX 1000

static void let_go(struct mon *m, size_t i)
{
    close(m->still[i].fd);
    m->still[i] = m->still[--m->n_still];
    if (m->n_still == 0) {
        m->unhold_ms = 0;
        timer_set(m->unhold, 0, false);
    }
}

static void let_go_of(struct mon *m, pid_t tid)
{
    for (size_t i = m->n_still; i-- > 0;)
        if (m->still[i].tid == tid)
            let_go(m, i);
}

/* A thread's state and user time: false if it is gone.  Its own, under task/: /proc/TID/stat
 * is its process's, whose user time any other thread of it adds to. */
static bool thread_stat(pid_t tid, char *state, unsigned long long *utime)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)tid, (int)tid);
    cleanup_free char *text = NULL;
    if (read_file(path, 4096, &text, NULL, NULL) < 0)
        return false;
    /* After the command's closing parenthesis: state, then utime as the 12th field on. */
    const char *p = strrchr(text, ')');
    if (p == NULL ||
        sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu", state, utime) != 2)
        return false;
    return true;
}

/* Whether thread tid may still be short of the open of the file it was allowed: not if it
 * is gone, stopped or dead (a stop comes only on the way back to user space), has run in
 * user space since (more user time), or is in a system call other than execve(2) and
 * execveat(2).  A thread on a processor, or waiting for one, says "running", which says
 * nothing. */
static bool short_of_its_open(const struct still *s)
{
    char state;
    unsigned long long utime;
    if (!thread_stat(s->tid, &state, &utime) || strchr("TtZXx", state) != NULL || utime > s->utime)
        return false;
    char path[64], text[32];
    snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", (int)s->tid, (int)s->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
    int err = errno;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return n < 0 && err != ENOENT && err != ESRCH; /* gone, or cannot tell */
    text[n] = '\0';
    if (strncmp(text, "running", 7) == 0)
        return true;
    char *end;
    long nr = strtol(text, &end, 10);
    if (end == text)
        return false;
#ifdef __x86_64__
    /* i386's execve and execveat, as a 32-bit task's; 64-bit munmap and io_destroy are
     * taken for them: the lease is only kept a little longer. */
    if (nr == 11 || nr == 358)
        return true;
#endif
    return nr == SYS_execve || nr == SYS_execveat;
}

/* The process connector's exec and exit events come late: the thread may be in its next
 * exec by now, so it is looked at first. */
static void let_go_if_past(struct mon *m, pid_t tid)
{
    for (size_t i = m->n_still; i-- > 0;)
        if (m->still[i].tid == tid && !short_of_its_open(&m->still[i]))
            let_go(m, i);
}

/* Keeps the file of an exec about to be allowed held still: false with no memory for it. */
static bool keep_still(struct mon *m, pid_t tid, int fd)
{
    char state;
    unsigned long long utime = 0;
    (void)thread_stat(tid, &state, &utime);
    if (m->n_still == m->cap_still) {
        size_t cap = m->cap_still > 0 ? m->cap_still * 2 : 16;
        struct still *grown = reallocarray(m->still, cap, sizeof *grown);
        if (grown == NULL)
            return false;
        m->still = grown;
        m->cap_still = cap;
    }
    m->still[m->n_still++] = (struct still){.tid = tid, .fd = fd, .utime = utime};
    if (m->unhold_ms != UNHOLD_MS) {
        m->unhold_ms = UNHOLD_MS;
        timer_set(m->unhold, UNHOLD_MS, false);
    }
    return true;
}

static void exec_killed(struct mon *m, const struct still *s);

static void on_unhold(struct mon *m)
{
    drain(m->unhold);
    uint64_t now = time_mono_ns(), bound = 0;
    bool asked = false;
    for (size_t i = m->n_still; i-- > 0;) {
        struct still *s = &m->still[i];
        if (!short_of_its_open(s)) {
            let_go(m, i);
            continue;
        }
        if (execgate_held_still(s->fd))
            continue;
        /* A writer waits: the exec fails with ETXTBSY when its thread gets there, unless the
         * kernel takes the lease back first. */
        if (s->asked_ns == 0)
            s->asked_ns = now;
        if (bound == 0) {
            int64_t secs = 45;
            cleanup_free char *text = NULL;
            if (read_file("/proc/sys/fs/lease-break-time", 64, &text, NULL, NULL) == 0)
                secs = strtoll(text, NULL, 10);
            bound = secs > 1 ? (uint64_t)secs * 500000000ull : 1;
        }
        if (now - s->asked_ns >= bound) {
            exec_killed(m, s);
            let_go(m, i);
            continue;
        }
        asked = true;
    }
    if (m->n_still > 0) {
        /* While a writer waits, no backing off. */
        uint32_t next = m->unhold_ms * 2 < UNHOLD_MS_MAX ? m->unhold_ms * 2 : UNHOLD_MS_MAX;
        m->unhold_ms = asked ? UNHOLD_MS : next;
        timer_set(m->unhold, m->unhold_ms, false);
    }
}

static bool in_tree(struct mon *m, pid_t pid);

/* What a held file is to its exec. */
enum exec_role { ROLE_UNKNOWN, ROLE_PROGRAM, ROLE_LOADER, ROLE_INTERPRETER };

/* An exec starts (the seccomp listener): its thread's next held file is its program.  Only
 * on EPOLLIN: the listener's receive waits for a notification, and once the tree is gone
 * the listener says EPOLLHUP alone, for ever. */
static void on_execs(struct mon *m, uint32_t events)
{
    if (!(events & EPOLLIN)) {
        epoll_ctl(m->ep, EPOLL_CTL_DEL, m->r->sv.execs_fd, NULL);
        return;
    }
    pid_t tid = execgate_exec_begins(m->r->sv.execs_fd);
    if (tid <= 0)
        return;
    let_go_of(m, tid); /* its exec before, if any, is over */
    if ((size_t)tid >= m->exec_state_len) {
        size_t len = ((size_t)tid + 4096) & ~(size_t)4095;
        uint8_t *grown = realloc(m->exec_state, len);
        if (grown == NULL)
            return; /* its next file is taken for a program: the stricter reading */
        memset(grown + m->exec_state_len, EXEC_NONE, len - m->exec_state_len);
        m->exec_state = grown;
        m->exec_state_len = len;
    }
    m->exec_state[tid] = EXEC_STARTED;
}

/* The first file held for an exec that started is its program; after an ELF that names an
 * interpreter, the next is that loader, mapped beside it; after anything else (a script, a
 * binfmt_misc format), the next is the interpreter that runs it, as its program.  A thread
 * whose start tether did not see has every file taken for a program, the stricter reading.
 * Unknown where tether does not see execs start (a container's). */
static enum exec_role exec_role(struct mon *m, pid_t tid, enum elf_kind kind, bool still)
{
    if (m->r->sv.execs_fd < 0)
        return ROLE_UNKNOWN;
    if (tid <= 0 || (size_t)tid >= m->exec_state_len || m->exec_state[tid] == EXEC_NONE)
        return ROLE_PROGRAM;
    uint8_t *st = &m->exec_state[tid];
    enum exec_role role = *st == EXEC_STARTED     ? ROLE_PROGRAM
                          : *st == EXEC_AFTER_ELF ? ROLE_LOADER
                                                  : ROLE_INTERPRETER;
    /* What was read of a file that could not be held still may not be what the kernel
     * reads: its next file is not taken for its loader. */
    *st = still && kind == ELF_WITH_INTERP ? EXEC_AFTER_ELF : EXEC_AFTER_OTHER;
    return role;
}

/* The file the kernel is about to execute, measured from the descriptor it handed us. */
static cJSON *exec_target(pid_t pid, int fd, enum exec_role role)
{
    cJSON *t = cJSON_CreateObject();
    cJSON_AddNumberToObject(t, "pid", pid);
    cJSON_AddItemToObject(t, "role",
                          json_string_or_null(role == ROLE_PROGRAM       ? "program"
                                              : role == ROLE_LOADER      ? "loader"
                                              : role == ROLE_INTERPRETER ? "interpreter"
                                                                         : NULL));
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
    if (n > MEASURE_STRING_MAX) {
        path[MEASURE_STRING_MAX] = '\0';
        cJSON_AddTrueToObject(t, "truncated");
    }
    cJSON_AddItemToObject(t, "path", json_string_or_null(n > 0 ? path : NULL));
    char hex[SHA256_HEX_LEN + 1];
    struct stat st;
    bool ok = fstat(fd, &st) == 0;
    cJSON_AddItemToObject(
        t, "sha256",
        json_string_or_null(ok && sha256_fd_max(fd, MEASURE_HASH_MAX, hex, NULL) == 0 ? hex
                                                                                      : NULL));
    if (ok) {
        cJSON_AddNumberToObject(t, "size", (double)st.st_size);
        cJSON_AddNumberToObject(t, "owner_uid", st.st_uid);
        cJSON_AddNumberToObject(t, "owner_gid", st.st_gid);
        cJSON_AddNumberToObject(t, "mode", st.st_mode & 07777);
    }
    return t;
}

/* The trail's record of an exec that did not run: sha256 and action may be NULL. */
static void audit_exec_denied(struct mon *m, pid_t pid, const char *path, const char *sha256,
                              const char *reason, const char *action)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *den = audit_record_new("exec_denied");
    if (m->c != NULL)
        cJSON_AddStringToObject(den, "container_id", m->c->id);
    else
        cJSON_AddStringToObject(den, "argv0", m->r->cmd[0]);
    cJSON_AddNumberToObject(den, "pid", pid);
    cJSON_AddItemToObject(den, "path", json_string_or_null(path));
    cJSON_AddItemToObject(den, "sha256", json_string_or_null(sha256));
    cJSON_AddStringToObject(den, "reason", reason);
    if (action != NULL)
        cJSON_AddStringToObject(den, "action", action);
    if (audit_append(m->r->audit_path, den, &err) < 0)
        log_warn("%s", err->msg);
}

/* One held exec: measured, judged in the monitor phase with input.exec, answered.  A deny
 * (a policy error, or no answer within monitor.exec_timeout_ms, included) makes the execve
 * fail with EPERM and is drift. */
static void judge_exec(struct mon *m, pid_t pid, int fd)
{
    struct run *r = m->r;
    /* Its thread holds another file: it is past the open of the one before. */
    let_go_of(m, pid);
    /* Only the workload's own mounts are marked; anything else is not ours to hold. */
    if (!in_tree(m, pid)) {
        execgate_answer(r->sv.gate_fd, fd, true);
        return;
    }
    if (m->state == ENDING) {
        execgate_answer(r->sv.gate_fd, fd, false);
        return;
    }
    /* Held still first: everything read of the file below is what the kernel will read. */
    const char *unsteady = NULL;
    bool busy = false; /* open for writing: the exec would meet ETXTBSY, tether or not */
    if (execgate_hold_still(fd) < 0) {
        busy = errno == EAGAIN;
        unsteady =
            busy ? "it is open for writing" : "its content cannot be held still while it is judged";
    }
    enum elf_kind kind = execgate_elf_kind(fd);
    enum exec_role role = exec_role(m, pid, kind, unsteady == NULL);
    cleanup_json cJSON *input = measure_target(m);
    cJSON *procs = cJSON_CreateArray();
    cJSON *p = NULL;
    measure_look_begin(MEASURE_HASH_MAX);
    if (measure_process_collect(pid, &p, NULL) == 0)
        cJSON_AddItemToArray(procs, p);
    cJSON_ReplaceItemInObjectCaseSensitive(input, "processes", procs);
    cJSON *target = exec_target(pid, fd, role);
    cJSON_AddItemToObject(input, "exec", target);
    int64_t bound = 2000;
    json_get_int(cJSON_GetObjectItemCaseSensitive(r->d.monitor, "exec_timeout_ms"), 1, 60000,
                 &bound);
    struct decision d = {.ttl_s = -1};
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(target, "path")) ?: "?";
    if (unsteady != NULL) {
        decision_deny(&d, "`%s`: %s", path, unsteady);
    } else if (kind == ELF_LOADER && role != ROLE_LOADER && role != ROLE_UNKNOWN) {
        /* Whatever the policy says of the loader: it allows it as a program's loader. */
        decision_deny(&d,
                      "`%s` is a dynamic loader run as a program: it would map a program "
                      "that no exec names",
                      path);
    } else {
        guard_beat(&m->guard, (uint32_t)bound + GUARD_IDLE_MS);
        policy_decide_within(r->policy, input, (uint64_t)bound, &d);
        guard_beat(&m->guard, GUARD_IDLE_MS);
        if (d.allow && !execgate_held_still(fd)) {
            decision_clear(&d);
            d = (struct decision){.ttl_s = -1};
            decision_deny(&d, "`%s` was opened for writing while it was judged", path);
            busy = true;
        } else if (d.allow && !keep_still(m, pid, fd)) {
            decision_clear(&d);
            d = (struct decision){.ttl_s = -1};
            decision_deny(&d, "`%s` cannot be held still until its exec is under way", path);
        }
    }
    /* An allowed file stays held still (keep_still).  A file open for writing is refused as
     * the kernel would refuse it, ETXTBSY, and is no drift: the workload may try again. */
    if (busy)
        execgate_refuse(r->sv.gate_fd, fd, ETXTBSY);
    else if (d.allow)
        execgate_allow_held(r->sv.gate_fd, fd);
    else
        execgate_answer(r->sv.gate_fd, fd, false);
    m->last_decision_ns = time_mono_ns();
    if (!d.allow) {
        status_note_decision(&d);
        cleanup_free char *why = decision_reasons_joined(&d);
        cleanup_error tether_error_t err = NULL;
        cleanup_json cJSON *rec = audit_decision_record("monitor", r->policy, &d, input);
        cJSON_AddStringToObject(rec, "trigger", "exec held");
        if (m->c != NULL)
            cJSON_AddStringToObject(rec, "container_id", m->c->id);
        if (audit_append(r->audit_path, rec, &err) < 0)
            log_warn("%s", err->msg);
        audit_exec_denied(m, pid, cJSON_GetStringValue(cJSON_GetObjectItem(target, "path")),
                          cJSON_GetStringValue(cJSON_GetObjectItem(target, "sha256")), why, NULL);
        cleanup_free char *drift_why =
            xasprintf("exec of `%s` denied: %s",
                      cJSON_GetStringValue(cJSON_GetObjectItem(target, "path")) ?: "?", why);
        if (!busy)
            drift(m, drift_why);
    }
    decision_clear(&d);
}

/* A writer has waited for an allowed file for half the lease break time and its exec's
 * thread is still short of its open: its process is killed, whatever on_drift says, before
 * the kernel takes the lease back and the writer writes what the exec would then run. */
static void exec_killed(struct mon *m, const struct still *s)
{
    /* Its id may have gone to a process outside the tree since. */
    if (!in_tree(m, s->tid))
        return;
    kill(s->tid, SIGKILL);
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", s->fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n > 0 ? n : 0] = '\0';
    audit_exec_denied(m, s->tid, n > 0 ? path : NULL, NULL,
                      "a writer waited for it while its exec was under way: its process was "
                      "killed",
                      "kill");
    cleanup_free char *why =
        xasprintf("exec of `%s`: a writer waited for it while its exec was under way; its "
                  "process was killed",
                  n > 0 ? path : "?");
    drift(m, why);
}

static void on_gate(struct mon *m)
{
    int gate = m->r->sv.gate_fd;
    char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
    ssize_t len = read(gate, buf, sizeof buf);
    const struct fanotify_event_metadata *ev = (const void *)buf;
    for (; len > 0 && FAN_EVENT_OK(ev, len); ev = FAN_EVENT_NEXT(ev, len)) {
        if (ev->fd < 0)
            continue;
        if (ev->vers != FANOTIFY_METADATA_VERSION || !(ev->mask & FAN_OPEN_EXEC_PERM)) {
            execgate_answer(gate, ev->fd, false);
            continue;
        }
        /* Until the container's init execs its program, after every mount the runtime
         * makes past the createRuntime hook (a path of readonlyPaths bound onto itself, a
         * createContainer hook's), the container's mounts are marked again at each held
         * exec, before it is answered: a hook's exec in the container comes before some of
         * them.  Where that fails, the exec is denied. */
        if (m->c != NULL && !m->remarked) {
            cleanup_error tether_error_t err = NULL;
            if (execgate_remark_in(m->c->init, gate, &err) < 0) {
                log_error("container %s: %s; denying its exec", m->c->id, err->msg);
                execgate_answer(gate, ev->fd, false);
                continue;
            }
            char task[64];
            snprintf(task, sizeof task, "/proc/%d/task/%d", (int)m->c->init, (int)ev->pid);
            m->remarked = access(task, F_OK) == 0;
        }
        judge_exec(m, ev->pid, ev->fd);
    }
}

/* One look at the workload: measure, decide, act. */
#define EXEC_TRIGGER "exec in the workload's tree"

/* The processes section: every process of the tree (whole), or those of it with an event
 * since the last look. */
static cJSON *measure_processes(struct mon *m, bool whole)
{
    struct changed *c = &m->changed;
    cleanup_free pid_t *tree = NULL;
    pid_t *pids = c->pids; /* sorted in place, then emptied: kept for the next events */
    size_t n = c->n;
    if (whole) {
        n = tree_pids(m, &tree);
        pids = tree;
    } else if (n > 1) {
        qsort(pids, n, sizeof *pids, pid_cmp);
    }
    cJSON *procs = cJSON_CreateArray();
    measure_look_begin(MEASURE_HASH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!whole && !in_tree(m, pids[i]))
            continue;
        cJSON *p = NULL;
        guard_beat(&m->guard, GUARD_IDLE_MS); /* hashing a large executable takes a while */
        if (measure_process_collect(pids[i], &p, NULL) == 0)
            cJSON_AddItemToArray(procs, p);
    }
    if (c->n > 0)
        memset(c->slots, 0, CHANGED_SLOTS * sizeof *c->slots);
    c->n = 0;
    c->overflow = false;
    c->whole_seen |= whole;
    return procs;
}

static void evaluate(struct mon *m, const char *why)
{
    m->evaluate_pending = false;
    if (m->state == ENDING)
        return;
    struct run *r = m->r;
    cleanup_json cJSON *input = measure_target(m);
    const struct changed *c = &m->changed;
    bool whole = strcmp(why, EXEC_TRIGGER) != 0 || !c->whole_seen || c->overflow || m->cn < 0 ||
                 m->interval_ms <= 0;
    cJSON_ReplaceItemInObjectCaseSensitive(input, "processes", measure_processes(m, whole));
    cJSON_AddStringToObject(input, "processes_scope", whole ? "tree" : "changed");

    /* Apart from tether: a policy that hangs or crashes is a deny, and supervision goes on. */
    struct decision d = {.ttl_s = -1};
    guard_beat(&m->guard, busy_allowance(m));
    policy_decide_isolated(r->policy, input, &d);
    guard_beat(&m->guard, GUARD_IDLE_MS);
    uint64_t now = time_mono_ns();
    if (d.unreachable) {
        if (!m->unreachable) {
            m->unreachable = true;
            m->unreachable_since = now;
            audit_event(m, "policy_unreachable", "reason", d.reasons[0]);
            log_warn("%s; keeping the workload for up to %lld s", d.reasons[0],
                     (long long)r->cfg.monitor.fail_grace_s);
        }
        if (now - m->unreachable_since <= (uint64_t)r->cfg.monitor.fail_grace_s * 1000000000u) {
            decision_clear(&d);
            return;
        }
    } else if (m->unreachable) {
        m->unreachable = false;
        audit_event(m, "policy_reachable", NULL, NULL);
    }

    bool changed = !m->have_decision || m->last_allow != d.allow;
    status_note_decision(&d);
    m->have_decision = true;
    m->last_allow = d.allow;
    m->last_decision_ns = now;
    if (changed || !d.allow) {
        cleanup_error tether_error_t err = NULL;
        cleanup_json cJSON *rec = audit_decision_record("monitor", r->policy, &d, input);
        cJSON_AddStringToObject(rec, "trigger", why);
        if (m->c != NULL)
            cJSON_AddStringToObject(rec, "container_id", m->c->id);
        if (audit_append(r->audit_path, rec, &err) < 0)
            log_warn("%s", err->msg);
    }
    if (d.allow) {
        if (m->state == STOPPED) {
            if (freeze(m, false) < 0)
                log_warn("cannot thaw the workload: %s", strerror(errno));
            m->state = RUNNING;
            audit_event(m, "thawed", "trigger", why);
        }
    } else {
        cleanup_free char *reasons = decision_reasons_joined(&d);
        drift(m, reasons);
    }
    decision_clear(&d);
    status_update(m, changed);
}

/* --- inotify --- */

static void watch_add(struct mon *m, const char *path, enum watched what)
{
    if (path == NULL || *path == '\0')
        return;
    cleanup_free char *copy1 = xstrdup(path), *copy2 = xstrdup(path);
    const char *dir = dirname(copy1), *name = basename(copy2);
    /* Only names coming and going in the directory: a busy directory's other writes are not
     * our business (a watch on /tmp would otherwise see every write to it). */
    int wd = inotify_add_watch(m->ino, dir, DIR_EVENTS);
    if (wd < 0) {
        log_warn("cannot watch `%s`: %s", path, strerror(errno));
        return;
    }
    m->watches = xrealloc(m->watches, (m->n_watches + 1) * sizeof *m->watches);
    m->watches[m->n_watches++] =
        (struct watch){.wd_dir = wd,
                       .wd_file = inotify_add_watch(m->ino, path, FILE_EVENTS),
                       .dir = xstrdup(dir),
                       .name = xstrdup(name),
                       .what = what};
}

static void on_exe_event(struct mon *m, const struct watch *w)
{
    cleanup_free char *path = xasprintf("%s/%s", w->dir, w->name);
    cleanup_close int fd = open_regular(path); /* a FIFO in its place has changed too */
    char hex[SHA256_HEX_LEN + 1] = "";
    const char *launched = m->r->exe_sha;
    struct stat st;
    if (launched[0] == '\0' && m->r->sealed_identity[0] != '\0') {
        /* A sealed file of version 2 has no sha256 of its own: its digest and its signature
         * block are what it is (seal.h). */
        launched = m->r->sealed_identity;
        struct sealed s;
        cleanup_error tether_error_t err = NULL;
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size <= MEASURE_HASH_MAX &&
            seal_open(fd, NULL, false, &s, &err) == 0) {
            seal_identity(&s, hex);
            seal_close(&s);
        }
    } else if (fd >= 0 && sha256_fd_max(fd, MEASURE_HASH_MAX, hex, NULL) < 0) {
        /* A file grown past what tether reads has changed too: it is not read. */
        hex[0] = '\0';
    }
    if (strcmp(hex, launched) != 0) {
        cleanup_free char *why =
            xasprintf("the executable `%s` changed on disk after launch", path);
        drift(m, why);
    }
}

static void on_policy_change(struct mon *m)
{
    struct run *r = m->r;
    const char *file = r->policy_file ? r->policy_file : r->cfg.policy;
    cleanup_error tether_error_t err = NULL;
    struct policy *p = NULL;
    guard_beat(&m->guard, busy_allowance(m)); /* a policy's top level runs as it loads */
    int rc = engine_open(&r->cfg, r->policy_file, r->opa_url, &p, &err);
    guard_beat(&m->guard, GUARD_IDLE_MS);
    if (rc < 0) {
        cleanup_free char *why = xasprintf("the policy `%s` no longer loads: %s", file, err->msg);
        drift(m, why);
        return;
    }
    policy_free(r->policy);
    r->policy = p;
    audit_event(m, "policy_reloaded", "policy", file);
    evaluate(m, "policy changed");
}

static void on_config_change(struct mon *m)
{
    struct run *r = m->r;
    cleanup_error tether_error_t err = NULL;
    struct config cfg;
    if (config_load(r->config_file, &cfg, &err) < 0) {
        config_clear(&cfg);
        cleanup_free char *why =
            xasprintf("the node configuration is no longer valid: %s", err->msg);
        drift(m, why);
        return;
    }
    /* New labels and settings; the audit trail stays where it was. */
    config_clear(&r->cfg);
    r->cfg = cfg;
    audit_event(m, "config_reloaded", "config", r->cfg.path ? r->cfg.path : "");
    evaluate(m, "configuration changed");
}

static void on_inotify(struct mon *m)
{
    /* One batch per wakeup: epoll calls again while more is queued, and signals, the
     * workload's exit and timers get their turn in between. */
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool exe = false, policy = false, config = false;
    const struct watch *exe_w = NULL;
    cleanup_free char *watched = NULL;
    ssize_t len = read(m->ino, buf, sizeof buf);
    for (char *p = buf; len > 0 && p < buf + len;) {
        const struct inotify_event *ev = (const struct inotify_event *)p;
        p += sizeof *ev + ev->len;
        for (size_t i = 0; i < m->n_watches; i++) {
            struct watch *w = &m->watches[i];
            bool on_file = ev->wd == w->wd_file;
            bool on_dir = ev->wd == w->wd_dir && ev->len > 0 && strcmp(ev->name, w->name) == 0;
            if (!on_file && !on_dir)
                continue;
            if (on_dir && (ev->mask & (IN_MOVED_TO | IN_CREATE))) {
                /* A new file under the name: watch it from now on, and the old one no
                 * more (another link may keep it, and its watch, alive: one per file
                 * renamed over the name, until root's watches ran out). */
                cleanup_free char *path = xasprintf("%s/%s", w->dir, w->name);
                if (w->wd_file >= 0)
                    inotify_rm_watch(m->ino, w->wd_file);
                w->wd_file = inotify_add_watch(m->ino, path, FILE_EVENTS);
            }
            /* Files read whole (policy, configuration): only a finished write counts. */
            bool finished = on_dir || (ev->mask & (IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF));
            if (w->what == W_EXE)
                exe = true, exe_w = w;
            else if (w->what == W_POLICY)
                policy |= finished;
            else if (w->what == W_CONFIG)
                config |= finished;
            else if (watched == NULL)
                watched = xasprintf("%s/%s", w->dir, w->name);
        }
    }
    if (exe)
        on_exe_event(m, exe_w);
    if (watched != NULL) {
        cleanup_free char *why = xasprintf("the watched path `%s` changed", watched);
        drift(m, why);
    }
    if (config || policy) {
        m->config_changed |= config;
        m->policy_changed |= policy;
        timer_set(m->settle, SETTLE_MS, false);
    }
}

static void on_settled(struct mon *m)
{
    bool config = m->config_changed, policy = m->policy_changed;
    m->config_changed = m->policy_changed = false;
    if (config)
        on_config_change(m);
    if (policy)
        on_policy_change(m);
}

/* --- the process connector --- */

static int cn_open(void)
{
    int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
    if (fd < 0)
        return -1;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
    /* nlmsghdr, cn_msg, then the operation: laid out in a buffer, as cn_msg ends in a
     * flexible array. */
    char buf[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(enum proc_cn_mcast_op))]
        __attribute__((aligned(NLMSG_ALIGNTO))) = {0};
    struct nlmsghdr *nl = (struct nlmsghdr *)buf;
    struct cn_msg *cn = NLMSG_DATA(nl);
    enum proc_cn_mcast_op op = PROC_CN_MCAST_LISTEN;
    nl->nlmsg_len = NLMSG_LENGTH(sizeof *cn + sizeof op);
    nl->nlmsg_type = NLMSG_DONE;
    nl->nlmsg_pid = (uint32_t)getpid();
    cn->id.idx = CN_IDX_PROC;
    cn->id.val = CN_VAL_PROC;
    cn->len = sizeof op;
    memcpy(cn->data, &op, sizeof op);
    /* Room for bursts of exec events from the whole host (root may exceed rmem_max). */
    int size = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || send(fd, buf, nl->nlmsg_len, 0) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* True when pid is in the workload's tree. */
static bool in_tree(struct mon *m, pid_t pid)
{
    const struct supervisor *sv = &m->r->sv;
    if (m->c != NULL && m->ccg.dir != NULL)
        return cgroup_has(&m->ccg, pid);
    if (m->c == NULL && by_cgroup(m))
        return cgroup_has(&m->r->cg, pid);
    if (m->c == NULL && sv->pidns != 0)
        return tree_pidns_within(pid, sv->pidns);
    pid_t top = m->c != NULL ? m->c->init : sv->life_fd >= 0 ? sv->child : getpid();
    if (pid == top && m->c != NULL)
        return true; /* the container's init is one of its processes */
    return tree_descends(&m->memo, pid, top);
}

static void on_cn(struct mon *m)
{
    char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t len;
    /* A bounded batch per wakeup, as for inotify: a busy host execs all the time. */
    for (int batch = 0; batch < 32; batch++) {
        len = recv(m->cn, buf, sizeof buf, 0);
        if (len < 0 && errno == ENOBUFS) {
            /* Events were dropped (a busy host outran us): one of them may have been an
             * exec in the workload's tree, so look, at every process. */
            m->evaluate_pending = true;
            m->changed.overflow = true;
            continue;
        }
        if (len <= 0)
            break;
        for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)len);
             nh = NLMSG_NEXT(nh, len)) {
            struct cn_msg *cn = NLMSG_DATA(nh);
            /* The event sits unaligned in the message: copy it out. */
            struct proc_event ev = {0};
            memcpy(&ev, cn->data, cn->len < sizeof ev ? cn->len : sizeof ev);
            if (ev.what == PROC_EVENT_FORK) {
                if (ev.event_data.fork.child_pid == ev.event_data.fork.child_tgid)
                    changed_add(&m->changed, ev.event_data.fork.child_tgid);
                continue;
            }
            if (ev.what == PROC_EVENT_NONE)
                continue;
            /* exec, exit, uid, gid, sid, ptrace, comm, coredump: each begins with the
             * thread's pid and its process's.  An exit (of any thread, the main one
             * too) changes nothing a look measures. */
            if (ev.what != PROC_EVENT_EXIT)
                changed_add(&m->changed, ev.event_data.exec.process_tgid);
            pid_t pid = ev.event_data.exec.process_pid;
            if (ev.what == PROC_EVENT_EXEC || ev.what == PROC_EVENT_EXIT)
                let_go_if_past(m, pid);
            if (ev.what != PROC_EVENT_EXEC)
                continue;
            if (pid == m->r->sv.main && !m->launch_exec_seen) {
                m->launch_exec_seen = true;
                continue;
            }
            if (in_tree(m, pid))
                m->evaluate_pending = true;
        }
    }
}

/* --- the loop --- */

/* The identity token's renewal, at two thirds of its life (creds.h). */
static void arm_renewal(struct mon *m)
{
    int64_t in = creds_renew_in(m->r);
    timer_set(m->renew, in >= 0 ? (uint64_t)in * 1000 + 1 : 0, false);
}

/* A new token, only while the policy still allows: asked first, like any look. */
static void on_renew(struct mon *m)
{
    evaluate(m, "identity renewal");
    if (m->state == RUNNING && m->last_allow) {
        cleanup_error tether_error_t err = NULL;
        cleanup_json cJSON *input = cJSON_CreateObject();
        cJSON_AddItemToObject(input, "host", measure_host_collect(m->r->cfg.labels));
        if (creds_renew(m->r, input, &err) < 0)
            log_warn("%s", err->msg);
    }
    arm_renewal(m);
}

static void arm_for_decision(struct mon *m)
{
    const struct decision *d = &m->r->d;
    m->on_drift = "kill";
    m->interval_ms = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d->monitor, "on_drift");
    if (cJSON_IsString(v))
        m->on_drift = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(d->monitor, "interval_ms");
    if (cJSON_IsNumber(v))
        m->interval_ms = (int64_t)v->valuedouble;
    if (m->c != NULL && strcmp(m->on_drift, "restart") == 0)
        m->on_drift = "kill"; /* restarting is the runtime's business; the safe part is the kill */
    /* Without the process connector (an unprivileged tether on kernels that keep it to
     * root, Debian 12's among them) an exec is seen only on the timer: there is always
     * one then. */
    if (m->cn < 0 && m->interval_ms == 0)
        m->interval_ms = NO_CONNECTOR_INTERVAL_MS;
    timer_set(m->tick, (uint64_t)m->interval_ms, true);
    timer_set(m->ttl, d->ttl_s > 0 ? (uint64_t)d->ttl_s * 1000 : 0, true);
}

static void start_watches(struct mon *m)
{
    struct run *r = m->r;
    for (size_t i = 0; i < m->n_watches; i++) {
        inotify_rm_watch(m->ino, m->watches[i].wd_dir);
        if (m->watches[i].wd_file >= 0)
            inotify_rm_watch(m->ino, m->watches[i].wd_file);
        free(m->watches[i].dir);
        free(m->watches[i].name);
    }
    m->n_watches = 0;
    watch_add(m, r->path, W_EXE);
    watch_add(m, r->policy_file ? r->policy_file : r->opa_url ? NULL : r->cfg.policy, W_POLICY);
    watch_add(m, r->cfg.path, W_CONFIG);
    const cJSON *w;
    cJSON_ArrayForEach (w, cJSON_GetObjectItemCaseSensitive(r->d.monitor, "watch"))
        watch_add(m, w->valuestring, W_WATCH);
}

static bool moved_since(const char *path, const struct stat *then)
{
    struct stat now;
    if (path == NULL)
        return false;
    if (stat(path, &now) < 0)
        return then->st_ino != 0;
    return now.st_ino != then->st_ino || now.st_dev != then->st_dev ||
           now.st_size != then->st_size || now.st_mtim.tv_sec != then->st_mtim.tv_sec ||
           now.st_mtim.tv_nsec != then->st_mtim.tv_nsec;
}

/* What changed between the launch's measurement and the watches' start is caught here,
 * once the watches are in place: nothing falls between the two. */
static void catch_up(struct mon *m)
{
    struct run *r = m->r;
    const char *policy = r->policy_file ? r->policy_file : r->opa_url ? NULL : r->cfg.policy;
    m->config_changed |= moved_since(r->cfg.path, &r->config_st);
    m->policy_changed |= moved_since(policy, &r->policy_st);
    if (m->config_changed || m->policy_changed)
        timer_set(m->settle, SETTLE_MS, false);
    for (size_t i = 0; i < m->n_watches; i++)
        if (m->watches[i].what == W_EXE)
            on_exe_event(m, &m->watches[i]);
}

static void open_pidfd(struct mon *m)
{
    if (m->pidfd >= 0) {
        epoll_ctl(m->ep, EPOLL_CTL_DEL, m->pidfd, NULL);
        close(m->pidfd);
    }
    m->pidfd = (int)syscall(SYS_pidfd_open, m->r->sv.child, 0);
    ep_add(m, m->pidfd, EV_PIDFD);
    /* The main process's end, which the init reports only once the tree is gone. */
    if (m->r->sv.main_pidfd >= 0 && m->r->sv.main_pidfd != m->pidfd)
        ep_add(m, m->r->sv.main_pidfd, EV_MAIN);
    ep_add(m, m->r->sv.note_fd, EV_NOTE);
    ep_add(m, m->r->sv.gate_fd, EV_GATE);
    ep_add(m, m->r->sv.execs_fd, EV_EXECS);
    if (m->exec_state != NULL)
        memset(m->exec_state, EXEC_NONE, m->exec_state_len);
}

/* The main process exited on its own, and its init says how many processes it left: they
 * are ended by the init (or kept, with monitor.on_main_exit "supervise"), and the trail
 * says which. */
static void on_note(struct mon *m)
{
    int32_t left = 0;
    if (read(m->r->sv.note_fd, &left, sizeof left) != (ssize_t)sizeof left) {
        epoll_ctl(m->ep, EPOLL_CTL_DEL, m->r->sv.note_fd, NULL);
        return;
    }
    if (left <= 0 || m->state == ENDING)
        return;
    const char *v =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m->r->d.monitor, "on_main_exit"));
    bool keep = v != NULL && strcmp(v, "supervise") == 0;
    cleanup_free char *count = xasprintf("%d", (int)left);
    audit_event(m, keep ? "main_exited_tree_supervised" : "main_exited_tree_ended", "remaining",
                count);
}

/* The workload ended: the run ends, or (restart) it starts again after a pause. */
static int on_exit_of_workload(struct mon *m, int code, bool *done)
{
    *done = true;
    timer_set(m->grace, 0, false);
    if (m->state != ENDING)
        return code; /* it ended on its own: its status is tether's */
    /* The main process is gone; what is left of its tree does not get the rest of the grace
     * period (nor outlive tether, which is about to exit or start anew). */
    signal_tree(m, SIGKILL);
    if (!m->restart_after)
        return EXIT_DRIFT_KILLED;
    int64_t max = m->r->cfg.monitor.restart_max;
    if (m->restarts >= max) {
        cleanup_free char *n = xasprintf("%lld", (long long)max);
        audit_event(m, "restart_limit", "restarts", n);
        log_error("drifted again after %lld restarts; giving up", (long long)max);
        return EXIT_RESTART_LIMIT;
    }
    uint64_t delay = (uint64_t)m->r->cfg.monitor.restart_backoff_ms
                     << (m->restarts < 20 ? m->restarts : 20);
    if (delay > 3600000)
        delay = 3600000; /* an hour at most between tries */
    m->restarts++;
    timer_set(m->backoff, delay ? delay : 1, false);
    *done = false;
    return 0;
}

static int relaunch(struct mon *m, bool *done)
{
    struct run *r = m->r;
    *done = true;
    audit_event(m, "restart", NULL, NULL);
    int rc = run_gate(r);
    if (rc != 0)
        return rc;
    /* Watches first, then the workload: nothing it does can fall before them. */
    arm_for_decision(m);
    start_watches(m);
    catch_up(m);
    rc = run_start(r);
    if (rc != 0)
        return rc;
    *done = false;
    arm_renewal(m); /* the new start's token */
    m->state = RUNNING;
    m->sigkill_sent = false;
    m->launch_exec_seen = false;
    m->have_decision = false;
    open_pidfd(m);
    status_update(m, true);
    return 0;
}

/* --- a container's end, and its guard --- */

static bool container_ended(const struct mon *m)
{
    struct pollfd p = {.fd = m->pidfd, .events = POLLIN};
    return m->pidfd < 0 || poll(&p, 1, 0) > 0;
}

/* The container's init ended, and with it the container: what is left of a tree being
 * killed does not get the rest of the grace period. */
static void on_container_end(struct mon *m)
{
    timer_set(m->grace, 0, false);
    if (m->state == ENDING)
        signal_tree(m, SIGKILL);
}

/* SIGTERM and the like ask the monitor to end (poststop does): it does once the container
 * has, since a container never runs unwatched; before that, the request is drift. */
static bool on_stop_request(struct mon *m)
{
    struct signalfd_siginfo si;
    unsigned sig = 0;
    while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        sig = si.ssi_signo;
    if (sig == 0)
        return false;
    if (container_ended(m)) {
        on_container_end(m);
        return true;
    }
    cleanup_free char *why = xasprintf("the monitor was asked to end (%s) while its container runs",
                                       strsignal((int)sig));
    drift(m, why);
    return false;
}

/* The guard ended: a new one takes its place, and without one the container is drift. */
static void on_guard_end(struct mon *m)
{
    epoll_ctl(m->ep, EPOLL_CTL_DEL, m->guard.pidfd, NULL);
    cleanup_free char *how = guard_reap(&m->guard);
    cleanup_free char *why = xasprintf("the guard %s", how);
    log_warn("container %s: %s; starting another", m->c->id, why);
    audit_event(m, "guard_failed", "reason", why);
    cleanup_error tether_error_t err = NULL;
    if (guard_start(&m->guard, &m->guard_target, &err) < 0) {
        cleanup_free char *no = xasprintf("the monitor has no guard: %s", err->msg);
        drift(m, no);
        return;
    }
    ep_add(m, m->guard.pidfd, EV_GUARD);
}

/* --- the loop --- */

static void mon_open(struct mon *m, struct run *r, int sigfd)
{
    *m = (struct mon){.r = r,
                      .sigfd = sigfd,
                      .pidfd = -1,
                      .cn = -1,
                      .guard = {.pidfd = -1, .beat_fd = -1},
                      .last_allow = true,
                      .last_decision_ns = time_mono_ns()};
    m->ccg.procs_fd = -1;
    m->ep = epoll_create1(EPOLL_CLOEXEC);
    m->tick = timer_new();
    m->ttl = timer_new();
    m->beat = timer_new();
    m->grace = timer_new();
    m->backoff = timer_new();
    m->settle = timer_new();
    m->pulse = timer_new();
    m->renew = timer_new();
    m->unhold = timer_new();
    m->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    m->cn = cn_open();
    if (m->cn < 0)
        log_warn("no process connector (%s): execs in the workload's tree are seen on the "
                 "timer only (every %d ms unless the decision sets monitor.interval_ms)",
                 strerror(errno), NO_CONNECTOR_INTERVAL_MS);
    /* Drained in a loop below: a blocking read there would wait for the next signal with
     * every timer stopped behind it. */
    fcntl(sigfd, F_SETFL, fcntl(sigfd, F_GETFL) | O_NONBLOCK);
    ep_add(m, sigfd, EV_SIGNAL);
    ep_add(m, m->tick, EV_TICK);
    ep_add(m, m->ttl, EV_TTL);
    ep_add(m, m->beat, EV_BEAT);
    ep_add(m, m->grace, EV_GRACE);
    ep_add(m, m->backoff, EV_BACKOFF);
    ep_add(m, m->settle, EV_SETTLE);
    ep_add(m, m->pulse, EV_PULSE);
    ep_add(m, m->renew, EV_RENEW);
    ep_add(m, m->unhold, EV_UNHOLD);
    ep_add(m, m->ino, EV_INOTIFY);
    ep_add(m, m->cn, EV_CN);
}

static void mon_close(struct mon *m)
{
    status_remove();
    for (size_t i = 0; i < m->n_watches; i++) {
        free(m->watches[i].dir);
        free(m->watches[i].name);
    }
    free(m->watches);
    free(m->changed.pids);
    free(m->changed.slots);
    free(m->memo);
    free(m->exec_state);
    while (m->n_still > 0)
        let_go(m, m->n_still - 1);
    free(m->still);
    int fds[] = {m->ep,     m->pidfd, m->tick, m->ttl, m->beat,  m->grace, m->backoff,
                 m->settle, m->pulse, m->ino,  m->cn,  m->renew, m->unhold};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void heartbeat(struct mon *m)
{
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("heartbeat");
    audit_subject(m, rec);
    cJSON_AddBoolToObject(rec, "allow", m->last_allow);
    cJSON_AddNumberToObject(rec, "decision_age_ms",
                            (double)((time_mono_ns() - m->last_decision_ns) / 1000000));
    if (audit_append(m->r->audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

/* Until the workload ends (or, under run, has ended the last time): tether's exit status. */
static int mon_loop(struct mon *m)
{
    struct run *r = m->r;
    int rc = 125;
    for (bool done = false; !done;) {
        struct epoll_event evs[8];
        int n = epoll_wait(m->ep, evs, 8, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_error("epoll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !done; i++) {
            switch (evs[i].data.u32) {
            case EV_SIGNAL: {
                if (m->c != NULL) {
                    if ((done = on_stop_request(m)))
                        rc = 0;
                    break;
                }
                struct signalfd_siginfo si;
                int code;
                while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
                    if (supervise_on_signal(&r->sv, &si, &code)) {
                        rc = on_exit_of_workload(m, code, &done);
                        break;
                    }
                break;
            }
            case EV_PIDFD:
                /* The workload ended; SIGCHLD brings the status.  Stop listening.  A
                 * container's init has no status for us: its end is the container's. */
                epoll_ctl(m->ep, EPOLL_CTL_DEL, m->pidfd, NULL);
                if (m->c != NULL) {
                    on_container_end(m);
                    rc = 0;
                    done = true;
                }
                break;
            case EV_MAIN:
                /* The main process is gone while tether ends the tree: what is left does not
                 * get the rest of the grace period. */
                epoll_ctl(m->ep, EPOLL_CTL_DEL, r->sv.main_pidfd, NULL);
                if (m->state == ENDING && !m->sigkill_sent) {
                    m->sigkill_sent = true;
                    signal_tree(m, SIGKILL);
                }
                break;
            case EV_NOTE:
                on_note(m);
                break;
            case EV_GATE:
                on_gate(m);
                break;
            case EV_EXECS:
                on_execs(m, evs[i].events);
                break;
            case EV_TICK:
                drain(m->tick);
                evaluate(m, "interval");
                break;
            case EV_TTL:
                drain(m->ttl);
                audit_event(m, "ttl_expired", NULL, NULL);
                evaluate(m, "ttl expired");
                break;
            case EV_BEAT:
                drain(m->beat);
                heartbeat(m);
                break;
            case EV_GRACE:
                drain(m->grace);
                if (!m->sigkill_sent) {
                    m->sigkill_sent = true;
                    audit_event(m, "killed", "signal", "SIGKILL");
                    signal_tree(m, SIGKILL);
                }
                break;
            case EV_BACKOFF:
                drain(m->backoff);
                rc = relaunch(m, &done);
                break;
            case EV_SETTLE:
                drain(m->settle);
                on_settled(m);
                break;
            case EV_INOTIFY:
                on_inotify(m);
                break;
            case EV_CN:
                on_cn(m);
                break;
            case EV_GUARD:
                on_guard_end(m);
                break;
            case EV_PULSE:
                drain(m->pulse);
                break;
            case EV_RENEW:
                drain(m->renew);
                on_renew(m);
                break;
            case EV_UNHOLD:
                on_unhold(m);
                break;
            }
        }
        if (!done && m->evaluate_pending)
            evaluate(m, EXEC_TRIGGER);
        /* Every turn of the loop, and at least every GUARD_PULSE_MS. */
        guard_beat(&m->guard, GUARD_IDLE_MS);
    }
    return rc;
}

int monitor_run(struct run *r, bool *started)
{
    *started = false;
    /* Signals are taken into the signalfd before anything starts, so none is lost. */
    cleanup_error tether_error_t perr = NULL;
    if (r->sv.sigfd < 0 && supervise_prepare(&r->sv, &perr) < 0) {
        log_error("%s", perr->msg);
        run_audit_launch_failed(r, perr->msg);
        return EXIT_FAILED;
    }
    /* The launch decision, just made, allowed: that is the state until the first look. */
    struct mon m;
    mon_open(&m, r, r->sv.sigfd);
    /* Watches first, then the workload: nothing it does can fall before them. */
    arm_for_decision(&m);
    start_watches(&m);
    catch_up(&m);
    int rc = run_start(r);
    if (rc != 0)
        goto out;
    *started = true;
    arm_renewal(&m); /* its token was issued as it started */
    open_pidfd(&m);
    if (r->cfg.monitor.heartbeat_s > 0)
        timer_set(m.beat, (uint64_t)r->cfg.monitor.heartbeat_s * 1000, true);
    audit_event(&m, "monitor_started", "on_drift", m.on_drift);
    /* The launch decision was just made: the first monitor-phase decision comes with the
     * first event or timer. */
    status_update(&m, true);
    rc = mon_loop(&m);
out:
    mon_close(&m);
    return rc;
}

int monitor_container(struct run *r, const struct monitor_container *c)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sigfd < 0) {
        log_error("container %s: signalfd: %s", c->id, strerror(errno));
        return EXIT_FAILED;
    }
    struct mon m;
    mon_open(&m, r, sigfd);
    m.c = c;
    cleanup_free char *base = status_dir();
    cleanup_error tether_error_t err = NULL;
    int rc = EXIT_FAILED;
    m.pidfd = (int)syscall(SYS_pidfd_open, c->init, 0);
    if (m.pidfd < 0) {
        log_error("container %s: its init %d: %s", c->id, (int)c->init, strerror(errno));
        goto out;
    }
    ep_add(&m, m.pidfd, EV_PIDFD);
    ep_add(&m, r->sv.gate_fd, EV_GATE); /* exec prevention, when the hook made a group */
    container_cgroup(c->init, &m.ccg);
    arm_for_decision(&m);
    arm_renewal(&m); /* the hook issued its token */
    start_watches(&m);
    catch_up(&m);

    m.guard_target = (struct guard_target){.audit_path = r->audit_path,
                                           .id = c->id,
                                           .init = c->init,
                                           .cg = &m.ccg,
                                           .on_drift = m.on_drift,
                                           .pid_file = xasprintf("%s/%s/guard.pid", base, c->id)};
    if (guard_start(&m.guard, &m.guard_target, &err) < 0) {
        log_error("container %s: %s", c->id, err->msg);
        goto out;
    }
    ep_add(&m, m.guard.pidfd, EV_GUARD);
    timer_set(m.pulse, GUARD_PULSE_MS, true);
    if (r->cfg.monitor.heartbeat_s > 0)
        timer_set(m.beat, (uint64_t)r->cfg.monitor.heartbeat_s * 1000, true);
    audit_event(&m, "monitor_started", "on_drift", m.on_drift);
    status_update(&m, true);
    (void)!write(c->ready_fd, "1", 1);
    rc = mon_loop(&m);
    audit_event(&m, "monitor_ended", NULL, NULL);
out:
    guard_stop(&m.guard);
    free(m.guard_target.pid_file);
    free(m.ccg.dir);
    free(m.ccg.rel);
    mon_close(&m);
    close(sigfd);
    return rc;
}

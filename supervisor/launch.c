/* Fork and exec, with the child's setup errors reported to the parent over a close-on-exec
 * socket (as crun's sync socket): the parent learns whether exec happened, and why not.
 *
 * A supervised (monitored) workload does not hang off tether directly.  Its parent is an
 * init of tether's making (doc/supervision.md):
 *
 *   tether ── init (PID 1 of a pid namespace of its own, in a mount namespace with a fresh
 *                   /proc, and a cgroup namespace over a read-only cgroup file system)
 *                └─ the workload, and everything it starts
 *
 * The init holds a parent-death signal (SIGKILL) and the read end of a pipe whose only
 * writer is tether: when tether ends, however it ends, the kernel kills the init, and with a
 * pid namespace's init the kernel kills every process in the namespace.  The workload sees
 * neither tether nor its cgroup's parent; it cannot signal its init (the kernel drops
 * signals to a namespace's init that it has no handler for).  When the main process exits,
 * the init ends the rest of the tree (SIGTERM, SIGKILL after monitor.grace_s), or with
 * monitor.on_main_exit "supervise" waits until the tree is empty, and exits with the main
 * process's status.
 *
 * A container runtime (--bundle) needs the host's view of pids and cgroups, so in wrapper
 * mode the init is a child subreaper without namespaces, which kills its tree (the
 * container's cgroup included) when tether's pipe closes. */
#define _GNU_SOURCE
#include "launch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "execgate.h"
#include "rootfs.h"
#include "tree.h"

extern char **environ;

enum { REPORT_HELLO = 1, REPORT_FAIL = 2, REPORT_GATE = 3, REPORT_CREDS = 4, REPORT_EXECS = 5 };

struct child_report {
    int32_t kind;
    int32_t status; /* the exit status tether should give */
    int32_t errnum;
    char msg[256];
};

static void __attribute__((noreturn)) child_fail(int fd, int status, int errnum, const char *msg)
{
    struct child_report rep = {.kind = REPORT_FAIL, .status = status, .errnum = errnum};
    snprintf(rep.msg, sizeof rep.msg, "%s", msg);
    (void)!write(fd, &rep, sizeof rep); /* write(2): what a seccomp allowlist has */
    _exit(status);
}

static bool is_script(int fd)
{
    char magic[2];
    return fd >= 0 && pread(fd, magic, 2, 0) == 2 && magic[0] == '#' && magic[1] == '!';
}

/* A report with one piece of ancillary data (type: SCM_CREDENTIALS, SCM_RIGHTS). */
static ssize_t send_report(int fd, int kind, int type, const void *data, size_t len)
{
    struct child_report rep = {.kind = kind};
    char ctl[CMSG_SPACE(sizeof(struct ucred))]
        __attribute__((aligned(__alignof__(struct cmsghdr))));
    memset(ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = &rep, .iov_len = sizeof rep};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = CMSG_SPACE(len)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = type;
    cm->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(cm), data, len);
    return sendmsg(fd, &mh, MSG_NOSIGNAL);
}

/* The workload's first words: its pid, which the kernel writes into the credentials as
 * tether's namespace sees it; then it waits until tether holds a pidfd for it. */
static void say_hello(int fd)
{
    struct ucred cred = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
    char ack;
    if (send_report(fd, REPORT_HELLO, SCM_CREDENTIALS, &cred, sizeof cred) !=
            (ssize_t)sizeof(struct child_report) ||
        recv(fd, &ack, 1, 0) != 1)
        _exit(125);
}

/* Sends fd to tether in a report of this kind and closes it: 0, or -1 with errno and *step. */
static int hand_over(int report_fd, int kind, int fd, const char *what, const char **step)
{
    ssize_t n = send_report(report_fd, kind, SCM_RIGHTS, &fd, sizeof fd);
    int e = errno;
    close(fd);
    if (n == (ssize_t)sizeof(struct child_report))
        return 0;
    *step = what;
    errno = n < 0 ? e : EIO;
    return -1;
}

struct gate_arg {
    int report_fd;
    const struct launch_spec *spec;
};

/* A descriptor tether opened before the workload's mount namespace was made (the measured
 * program, its interpreter, a script) is on the host's mount, which no mark holds: the
 * workload's /proc/self/exe, or the script's /dev/fd/N, would stay there, for it to rewrite
 * and run again unjudged.  Under exec prevention the same file, opened again by its path in
 * the namespace (on the marked copy) and checked by device and inode, takes its number. */
static int reopen_here(int fd, const char **step)
{
    *step = "exec prevention: the measured file in the workload's mount namespace";
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    int flags = fcntl(fd, F_GETFL);
    if (n <= 0 || flags < 0)
        return -1;
    path[n] = '\0';
    struct open_how how = {.flags = (uint64_t)(flags & (O_ACCMODE | O_PATH)) | O_CLOEXEC,
                           .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    cleanup_close int here = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    struct stat a, b;
    if (here < 0 || fstat(fd, &a) < 0 || fstat(here, &b) < 0)
        return -1;
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
        errno = ESTALE;
        return -1;
    }
    return dup3(here, fd, O_CLOEXEC) < 0 ? -1 : 0;
}

/* Exec prevention: the group, made in the workload's final mount namespace, and the listener
 * for each exec's start go to tether over the report socket; this process keeps no copy. */
static int send_gate(void *arg, const char **step)
{
    const struct gate_arg *g = arg;
    int report_fd = g->report_fd;
    /* A sealed file (a memfd, a tmpfs of its own: both closed to writes) and an image's tree
     * are run from where they are. */
    if (g->spec->rootfs_dir == NULL && !g->spec->fd_only) {
        if ((g->spec->exe_fd >= 0 && reopen_here(g->spec->exe_fd, step) < 0) ||
            (g->spec->interp_fd >= 0 && reopen_here(g->spec->interp_fd, step) < 0))
            return -1;
    }
    int fan = execgate_open(step);
    if (fan < 0)
        return -1;
    if (execgate_no_unmarked_mounts() < 0) {
        int e = errno;
        close(fan);
        *step = "exec prevention: seccomp filter for new user and mount namespaces";
        errno = e;
        return -1;
    }
    if (hand_over(report_fd, REPORT_GATE, fan, "exec prevention: handing the group to tether",
                  step) < 0)
        return -1;
    int lis = execgate_exec_listener();
    if (lis < 0) {
        *step = "exec prevention: seccomp listener for the start of each exec";
        return -1;
    }
    return hand_over(report_fd, REPORT_EXECS, lis,
                     "exec prevention: handing the listener to tether", step);
}

/* Credentials: a tmpfs of the workload's own, in a mount namespace of its own (so the host's
 * never sees it), filled by tether through the descriptor handed over.  Before confinement:
 * mounting needs the privileges the workload then loses. */
static void creds_mount(const struct launch_spec *spec, int report_fd)
{
    const char *dir = spec->creds_dir;
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(report_fd, 125, errno, "credentials: private mount namespace");
    /* The mount point: in the tree, or the host's /run, where it stays an empty directory
     * (every tether's workload mounts its own tmpfs there, in its own namespace). */
    mkdir("/run", 0755);
    mkdir(dir, 0755);
    /* root's, read and search for all: the workload reads its files (0400, its own) but
     * cannot rename, replace or add any. */
    if (mount("tether-creds", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0555,size=4m,nr_inodes=64,uid=0,gid=0") < 0)
        child_fail(report_fd, 125, errno, "credentials: tmpfs");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        child_fail(report_fd, 125, errno, "credentials: tmpfs");
    ssize_t n = send_report(report_fd, REPORT_CREDS, SCM_RIGHTS, &fd, sizeof fd);
    close(fd);
    char ack;
    if (n != (ssize_t)sizeof(struct child_report) || recv(report_fd, &ack, 1, 0) != 1)
        _exit(125); /* tether refused them, and says why */
    char path[4200];
    if (spec->creds_identity) {
        snprintf(path, sizeof path, "%s/identity", dir);
        setenv("TETHER_IDENTITY", path, 1);
    }
    if (spec->creds_secrets) {
        snprintf(path, sizeof path, "%s/secrets", dir);
        setenv("TETHER_SECRETS", path, 1);
    }
}

static bool sigxfsz_ignored; /* by tether, when it was given the default */

void launch_ignore_sigxfsz(void)
{
    struct sigaction sa;
    if (sigaction(SIGXFSZ, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        sigxfsz_ignored = signal(SIGXFSZ, SIG_IGN) != SIG_ERR;
}

static void __attribute__((noreturn))
child_run(const struct supervisor *sv, const struct launch_spec *spec, bool by_fd, int report_fd)
{
    sigprocmask(SIG_SETMASK, &sv->old_mask, NULL);
    if (sigxfsz_ignored)
        signal(SIGXFSZ, SIG_DFL);
    /* The workload's environment becomes the process's here, in the workload's own child:
     * tether itself never runs under an image's Env (DBUS_SYSTEM_BUS_ADDRESS would name
     * the program sd-bus runs, as root).  Nothing this child does before its exec reads it
     * (no program is run, no locale or name service is asked). */
    environ = confine_env_filter(spec->confine, spec->env != NULL ? spec->env : environ);

    if (spec->supervised)
        say_hello(report_fd);
    else if (spec->cgroup != NULL && cgroup_enter(spec->cgroup) < 0)
        child_fail(report_fd, 125, errno, "joining the workload's cgroup");

    if (spec->prevent_exec && execgate_no_memfd() < 0)
        child_fail(report_fd, 125, errno, "exec prevention: seccomp filter for memfd_create");
    const char *step = NULL;
    if (spec->rootfs_dir != NULL &&
        rootfs_enter(spec->exe_fd, spec->rootfs, spec->rootfs_dir, spec->rootfs_cap, &step) < 0) {
        int e = errno;
        child_fail(report_fd, 125, e, step);
    }
    if (spec->creds_dir != NULL)
        creds_mount(spec, report_fd);
    struct confine c = *spec->confine;
    if (spec->supervised)
        c.namespaces &= ~(unsigned long)CLONE_NEWPID; /* the init's namespace is the workload's */
    /* Unsupervised, the workload still does not outlive its tether (its init sees to that
     * when supervised). */
    struct confine_plan plan = *spec->plan;
    if (!spec->supervised) {
        plan.pdeath_signal = SIGKILL;
        plan.parent = sv->tether_pid;
    }
    struct gate_arg gate = {report_fd, spec};
    if (spec->prevent_exec) {
        plan.after_mounts = send_gate;
        plan.after_arg = &gate;
    }
    if (confine_apply(&c, &plan, &step) < 0) {
        int e = errno;
        char msg[256];
        snprintf(msg, sizeof msg, "confine: %s", step);
        child_fail(report_fd, 125, e, msg);
    }

    /* Exec the very file that was measured: through its descriptor; a script as its
     * measured interpreter's descriptor with the script as /dev/fd/N, as the kernel would
     * for fexecve(3) of a script.  Only a file tether could not read runs by path. */
    if (spec->rootfs_dir != NULL) {
        /* Inside the unpacked tree: the entrypoint by its path there, as argv[0]. */
        size_t n = 0;
        while (spec->argv[n] != NULL)
            n++;
        char **argv = xcalloc(n + 1, sizeof *argv);
        argv[0] = (char *)spec->entrypoint;
        for (size_t i = 1; i < n; i++)
            argv[i] = spec->argv[i];
        execve(spec->entrypoint, argv, environ);
    } else if (spec->interp_fd >= 0) {
        size_t n = 0;
        while (spec->argv[n] != NULL)
            n++;
        char **argv = xcalloc(n + 3, sizeof *argv), script[32];
        size_t k = 0;
        argv[k++] = (char *)spec->interp_path;
        if (spec->interp_arg != NULL)
            argv[k++] = (char *)spec->interp_arg;
        snprintf(script, sizeof script, "/dev/fd/%d", spec->exe_fd);
        argv[k++] = script;
        for (size_t i = 1; i < n; i++)
            argv[k++] = spec->argv[i];
        if (fcntl(spec->exe_fd, F_SETFD, 0) < 0)
            child_fail(report_fd, 125, errno, "the script's descriptor");
        execveat(spec->interp_fd, "", argv, environ, AT_EMPTY_PATH);
    } else if (by_fd)
        execveat(spec->exe_fd, "", spec->argv, environ, AT_EMPTY_PATH);
    else
        execve(spec->path, spec->argv, environ);
    int e = errno;
    char msg[256];
    snprintf(msg, sizeof msg, "`%s`", spec->argv[0]);
    child_fail(report_fd, e == ENOENT ? 127 : 126, e, msg);
}

/* --- the init --- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t len = (ssize_t)strlen(text), n = write(fd, text, (size_t)len);
    int e = errno;
    close(fd);
    errno = e;
    return n == len ? 0 : -1;
}

/* The cgroup file systems, read-only in the init's mount namespace: with a cgroup namespace
 * rooted at the workload's own group, nothing in it can write itself elsewhere. */
static int cgroupfs_readonly(const char **step)
{
    *step = "read-only cgroup file system";
    cleanup_file FILE *f = fopen("/proc/self/mountinfo", "re");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    if (f == NULL)
        return -1;
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    while (getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        char mnt[4096];
        if (sep == NULL ||
            (strncmp(sep + 3, "cgroup2 ", 8) != 0 && strncmp(sep + 3, "cgroup ", 7) != 0) ||
            sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
            continue;
        if (mount_setattr(AT_FDCWD, mnt, 0, &attr, sizeof attr) < 0)
            return -1;
    }
    return 0;
}

/* What the kernel obeys as the node's root, outside every namespace, read-only in the
 * workload's mount namespace, as runc's readonlyPaths make it for a container: the sysctls
 * (kernel.core_pattern and kernel.modprobe name programs the kernel starts, as root, on the
 * node), /proc/sysrq-trigger, and sysfs (/sys/kernel/uevent_helper names one too).  A root
 * workload could otherwise have the kernel start a program of its choosing, which neither
 * supervision nor exec prevention would see.  Its mount calls are refused afterwards
 * (seccomp, or no CAP_SYS_ADMIN), so it cannot undo this. */
static int kernel_knobs_readonly(const char **step, bool own_net)
{
    static const char *const paths[] = {"/proc/sys", "/proc/sysrq-trigger", "/sys"};
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
    *step = "supervision: read-only /proc/sys, /proc/sysrq-trigger and /sys";
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        if (access(paths[i], F_OK) < 0)
            continue;
        /* A mount of its own to make read-only (/sys is one already). */
        if (i < 2 && mount(paths[i], paths[i], NULL, MS_BIND | MS_REC, NULL) < 0)
            return -1;
        if (mount_setattr(AT_FDCWD, paths[i], AT_RECURSIVE, &ro, sizeof ro) < 0)
            return -1;
    }
    /* A workload with a network namespace of its own sets its own net sysctls (they are
     * its namespace's, and name no program): /proc/sys/net stays writable for it. */
    struct mount_attr rw = {.attr_clr = MOUNT_ATTR_RDONLY};
    if (own_net && access("/proc/sys/net", F_OK) == 0 &&
        (mount("/proc/sys/net", "/proc/sys/net", NULL, MS_BIND, NULL) < 0 ||
         mount_setattr(AT_FDCWD, "/proc/sys/net", 0, &rw, sizeof rw) < 0))
        return -1;
    return 0;
}

static bool tether_gone(int life_fd)
{
    struct pollfd p = {.fd = life_fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* Signals what is left of the tree: in a namespace of its own, everything but the init. */
static void signal_rest(const struct launch_spec *spec, int sig)
{
    if (!spec->wrapper) {
        kill(-1, sig);
        return;
    }
    cleanup_free pid_t *pids = NULL;
    size_t n = tree_descendants(getpid(), &pids);
    if (sig == SIGKILL)
        tree_kill_cgroups(pids, n);
    for (size_t i = 0; i < n; i++)
        kill(pids[i], sig);
}

/* The processes of the tree but the init. */
static size_t count_rest(const struct launch_spec *spec)
{
    cleanup_free pid_t *pids = NULL;
    if (spec->wrapper)
        return tree_descendants(getpid(), &pids);
    size_t n = 0;
    DIR *d = opendir("/proc"); /* the namespace's own */
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && strcmp(e->d_name, "1") != 0)
            n++;
    if (d)
        closedir(d);
    return n;
}

static void __attribute__((noreturn))
init_run(const struct supervisor *sv, const struct launch_spec *spec, bool by_fd, int life_fd,
         int note_fd, int report_fd, bool placed)
{
    /* Tether's death is ours from here on; if it died before, the pipe says so.  In wrapper
     * mode the init must outlive tether long enough to kill its tree (no namespace does
     * it for us): the pipe alone tells it. */
    if ((!spec->wrapper && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) || tether_gone(life_fd))
        _exit(125);
    prctl(PR_SET_NAME, "tether-init");
    if (spec->cgroup != NULL && cgroup_enter(spec->cgroup) < 0)
        child_fail(report_fd, 125, errno, "joining the workload's cgroup");
    const char *step = "supervision: mount namespace";
    if (!spec->wrapper) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            child_fail(report_fd, 125, errno, step);
        step = "supervision: mounting /proc";
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
            kernel_knobs_readonly(&step, spec->confine != NULL &&
                                             (spec->confine->namespaces & CLONE_NEWNET)) < 0)
            child_fail(report_fd, 125, errno, step);
        if (spec->cgroup != NULL || placed) {
            step = "supervision: cgroup namespace";
            if (unshare(CLONE_NEWCGROUP) < 0 || cgroupfs_readonly(&step) < 0)
                child_fail(report_fd, 125, errno, step);
        }
    } else if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        child_fail(report_fd, 125, errno, "supervision: child subreaper");
    }

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        child_fail(report_fd, 125, errno, "supervision: signalfd");
    /* The report socket's end of file says the workload has exec'd, so tether must see it
     * once the workload's copy closes: the workload goes on only after the init has closed
     * its own.  Else, with the init slow to close it, tether would take an exec of the
     * workload's first children for part of the launch exec, and refuse it unjudged. */
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        child_fail(report_fd, 125, errno, "supervision: pipe");
    pid_t main_pid = fork();
    if (main_pid < 0)
        child_fail(report_fd, 125, errno, "fork");
    if (main_pid == 0) {
        close(sfd);
        close(life_fd);
        close(note_fd);
        close(go[1]);
        char b;
        ssize_t n;
        while ((n = read(go[0], &b, 1)) < 0 && errno == EINTR)
            ;
        if (n != 1)
            _exit(125); /* the init is gone before it let the workload go */
        close(go[0]);
        child_run(sv, spec, by_fd, report_fd);
    }
    close(go[0]);
    close(report_fd);
    (void)!write(go[1], "g", 1);
    close(go[1]);
    if (spec->cgroup != NULL)
        close(spec->cgroup->procs_fd);

    int code = 125;
    bool main_done = false, killed = false;
    uint64_t kill_at = UINT64_MAX;
    for (;;) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != main_pid)
                continue;
            main_done = true;
            code = WIFEXITED(status)     ? WEXITSTATUS(status)
                   : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                         : 125;
            /* Tether hears how much of the tree the main process left behind. */
            int32_t left = (int32_t)count_rest(spec);
            (void)!write(note_fd, &left, sizeof left);
            close(note_fd);
            if (!spec->keep_tree) {
                signal_rest(spec, SIGTERM);
                kill_at = time_mono_ns() + (uint64_t)spec->grace_s * 1000000000u;
            }
        }
        if (pid < 0 && errno == ECHILD && main_done)
            _exit(code);
        if (!killed && time_mono_ns() >= kill_at) {
            signal_rest(spec, SIGKILL);
            killed = true;
        }
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = life_fd, .events = POLLIN}};
        int timeout =
            kill_at == UINT64_MAX || killed ? -1 : (int)((kill_at - time_mono_ns()) / 1000000u) + 1;
        if (poll(p, 2, timeout) > 0 && p[1].revents != 0) {
            /* Tether is gone: so is its workload. */
            signal_rest(spec, SIGKILL);
            _exit(125);
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) > 0)
            ;
    }
}

/* The go-between that makes the namespaces: a user namespace first when tether is not root
 * (mapping its own uid and gid only), then a pid namespace whose first process, the init,
 * it forks.  It reports the init's pid and exits, and the init, an orphan, comes to tether,
 * the subreaper. */
static void __attribute__((noreturn))
maker_run(const struct supervisor *sv, const struct launch_spec *spec, bool by_fd, int life_fd,
          int note_fd, int report_fd, int pid_fd, int go_fd)
{
    if (!spec->wrapper) {
        if (geteuid() != 0) {
            uid_t uid = geteuid();
            gid_t gid = getegid();
            char map[64];
            if (unshare(CLONE_NEWUSER) < 0)
                child_fail(report_fd, 125, errno, "supervision: user namespace");
            /* /proc/self of a non-dumpable process is root's: dumpable for the moment it
             * takes to write its own maps (the secrets in this copy of tether are its
             * user's own). */
            prctl(PR_SET_DUMPABLE, 1);
            snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
            if (write_file("/proc/self/setgroups", "deny\n") < 0 ||
                write_file("/proc/self/uid_map", map) < 0)
                child_fail(report_fd, 125, errno, "supervision: user namespace: uid_map");
            snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
            if (write_file("/proc/self/gid_map", map) < 0)
                child_fail(report_fd, 125, errno, "supervision: user namespace: gid_map");
            prctl(PR_SET_DUMPABLE, 0);
        }
        if (unshare(CLONE_NEWPID) < 0)
            child_fail(report_fd, 125, errno, "supervision: pid namespace");
    }
    pid_t init = fork();
    if (init < 0)
        child_fail(report_fd, 125, errno, "fork");
    if (init == 0) {
        close(pid_fd);
        char go;
        if (read(go_fd, &go, 1) != 1)
            _exit(125);
        close(go_fd);
        init_run(sv, spec, by_fd, life_fd, note_fd, report_fd, go == 'c');
    }
    int32_t v = init;
    (void)!write(pid_fd, &v, sizeof v);
    _exit(0);
}

/* Reads one report; 0 at end of file (the workload exec'd), 1 with *rep, -1 on error. With
 * creds, the sender's pid as tether sees it. */
static int read_report(int fd, struct child_report *rep, pid_t *creds, int *passed)
{
    char ctl[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = rep, .iov_len = sizeof *rep};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    ssize_t n;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0;
    if (n != (ssize_t)sizeof *rep)
        return -1;
    rep->msg[sizeof rep->msg - 1] = '\0';
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS && creds) {
            struct ucred c;
            memcpy(&c, CMSG_DATA(cm), sizeof c);
            *creds = c.pid;
        } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int f;
            memcpy(&f, CMSG_DATA(cm), sizeof f);
            if (passed != NULL && *passed < 0)
                *passed = f;
            else
                close(f);
        }
    }
    return 1;
}

/* The supervised start: maker, init, workload.  Returns the init's pid, or -1. */
static pid_t start_supervised(struct supervisor *sv, const struct launch_spec *spec, bool by_fd,
                              int report_wr, tether_error_t *err)
{
    int life[2], note[2], pidp[2], gop[2];
    if (pipe2(life, O_CLOEXEC) < 0)
        return error_set(err, errno, "pipe");
    if (pipe2(note, O_CLOEXEC | O_NONBLOCK) < 0) {
        close(life[0]), close(life[1]);
        return error_set(err, errno, "pipe");
    }
    if (pipe2(pidp, O_CLOEXEC) < 0 || pipe2(gop, O_CLOEXEC) < 0) {
        close(life[0]), close(life[1]), close(note[0]), close(note[1]);
        return error_set(err, errno, "pipe");
    }
    pid_t maker = fork();
    if (maker == 0) {
        close(life[1]), close(note[0]), close(pidp[0]), close(gop[1]);
        maker_run(sv, spec, by_fd, life[0], note[1], report_wr, pidp[1], gop[0]);
    }
    int e = errno;
    close(life[0]), close(note[1]), close(pidp[1]), close(gop[0]);
    if (maker < 0) {
        close(life[1]), close(note[0]), close(pidp[0]), close(gop[1]);
        return error_set(err, e, "fork");
    }
    int32_t init = -1;
    ssize_t n = read(pidp[0], &init, sizeof init);
    close(pidp[0]);
    int status;
    while (waitpid(maker, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof init) {
        close(life[1]), close(note[0]), close(gop[1]);
        return -2; /* the maker failed: its report says why */
    }
    /* The maker is gone and the init is ours: now it may start, in a cgroup made for it
     * first when the caller asks (spec->place; "c" tells the init it is in one). */
    int placed = spec->place != NULL ? spec->place(spec->place_arg, init, err) : 0;
    if (placed < 0) {
        close(gop[1]); /* no word: the init exits */
        while (waitpid(init, &status, 0) < 0 && errno == EINTR)
            ;
        close(life[1]), close(note[0]);
        return -1;
    }
    (void)!write(gop[1], placed > 0 ? "c" : "g", 1);
    close(gop[1]);
    sv->life_fd = life[1];
    sv->note_fd = note[0];
    sv->pidns = spec->wrapper ? 0 : tree_pidns(init);
    return init;
}

/* The launch exec through the gate: the workload's own process may exec (the measured file,
 * and the loader the kernel opens for it) until the report socket closes on that exec;
 * anything else is denied.  Returns as read_report does. */
static int launch_through_gate(struct supervisor *sv, int rd, struct child_report *rep)
{
    int execs = sv->execs_fd;
    for (;;) {
        struct pollfd p[3] = {{.fd = rd, .events = POLLIN},
                              {.fd = sv->gate_fd, .events = POLLIN},
                              {.fd = execs, .events = POLLIN}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        /* The report first: once the workload has exec'd, what is held is its children's,
         * for the monitor to judge (a child may exec before tether wakes up). */
        if (p[0].revents != 0)
            return read_report(rd, rep, NULL, NULL);
        if (p[1].revents & POLLIN) {
            /* Until then only the workload's own process runs in its namespace, held in its
             * launch exec (the file, then its loader): nothing else can be queued here. */
            char buf[4096] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
            ssize_t len = read(sv->gate_fd, buf, sizeof buf);
            const struct fanotify_event_metadata *ev = (const void *)buf;
            for (; len > 0 && FAN_EVENT_OK(ev, len); ev = FAN_EVENT_NEXT(ev, len))
                if (ev->fd >= 0)
                    execgate_answer(sv->gate_fd, ev->fd, ev->pid == sv->main);
        }
        if (p[2].revents & POLLIN)
            (void)execgate_exec_begins(sv->execs_fd);
        else if (p[2].revents != 0)
            execs = -1; /* the workload's process is gone: its report says so next */
    }
}

/* Closes what a start holds: the init's pipes, the main process's pidfd, the exec gate. */
static void drop_start(struct supervisor *sv)
{
    int *fds[] = {&sv->life_fd, &sv->note_fd, &sv->main_pidfd, &sv->gate_fd, &sv->execs_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (*fds[i] >= 0)
            close(steal_fd(fds[i]));
}

/* A start that tether refuses before the exec (its credentials could not be written):
 * nothing has run, and the child waits for a word that does not come. */
static int abandon_start(struct supervisor *sv, pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    drop_start(sv);
    return -1;
}

int launch_start(struct supervisor *sv, const struct launch_spec *spec, int *fail_status,
                 tether_error_t *err)
{
    *fail_status = 125;
    drop_start(sv); /* what a previous start (a restart) left */
    sv->main = -1;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return error_set(err, errno, "socketpair");
    cleanup_close int rd = sp[0];
    cleanup_close int wr = sp[1];
    int one = 1;
    if (setsockopt(rd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
        return error_set(err, errno, "SO_PASSCRED");
    bool by_fd = spec->fd_only || (spec->exe_fd >= 0 && !is_script(spec->exe_fd));

    pid_t pid;
    if (spec->supervised) {
        pid = start_supervised(sv, spec, by_fd, wr, err);
        if (pid == -1)
            return -1;
    } else {
        int ns_restore;
        if (confine_enter_parent(spec->confine, &ns_restore, err) < 0)
            return -1;
        pid = fork();
        int fork_errno = errno;
        if (pid != 0)
            confine_leave_parent(ns_restore);
        if (pid < 0)
            return error_set(err, fork_errno, "fork");
        if (pid == 0) {
            close(rd);
            child_run(sv, spec, by_fd, wr);
        }
    }
    close(steal_fd(&wr));

    struct child_report rep;
    pid_t main_pid = -1;
    int passed = -1;
    int n = read_report(rd, &rep, &main_pid, &passed);
    if (n == 1 && rep.kind == REPORT_HELLO) {
        /* A pidfd before the workload goes on: signals reach it, and never a process that
         * took its pid after it. */
        sv->main = main_pid;
        sv->main_pidfd = (int)syscall(SYS_pidfd_open, main_pid, 0);
        (void)!send(rd, "k", 1, MSG_NOSIGNAL);
        n = read_report(rd, &rep, NULL, &passed);
    }
    if (n == 1 && rep.kind == REPORT_CREDS) {
        int cfd = steal_fd(&passed);
        if (cfd < 0 || spec->creds_fill == NULL) {
            if (cfd >= 0)
                close(cfd);
            error_set(err, 0, "credentials: the child's tmpfs did not arrive");
            return abandon_start(sv, pid);
        }
        if (spec->creds_fill(spec->creds_arg, cfd, err) < 0)
            return abandon_start(sv, pid);
        (void)!send(rd, "k", 1, MSG_NOSIGNAL);
        n = read_report(rd, &rep, NULL, &passed);
    }
    if (n == 1 && rep.kind == REPORT_GATE) {
        sv->gate_fd = steal_fd(&passed);
        n = read_report(rd, &rep, NULL, &passed);
        if (n == 1 && rep.kind == REPORT_EXECS) {
            sv->execs_fd = steal_fd(&passed);
            n = sv->execs_fd >= 0 ? launch_through_gate(sv, rd, &rep) : -1;
        }
    }
    if (passed >= 0)
        close(steal_fd(&passed));
    if (n == 0 && pid > 0) {
        sv->child = pid;
        if (!spec->supervised)
            sv->main = pid;
        if (sv->gate_fd >= 0) {
            cleanup_close int ipfd = (int)syscall(SYS_pidfd_open, pid, 0);
            sv->gate_holder = ipfd >= 0 ? execgate_hold(sv->gate_fd, ipfd) : -1;
            if (sv->gate_holder < 0) {
                kill(pid, SIGKILL);
                return error_set(err, errno, "exec prevention: the group's keeper");
            }
        }
        return 0; /* the socket closed on exec */
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    drop_start(sv);
    if (n != 1 || rep.kind != REPORT_FAIL)
        return error_set(err, 0, "the child failed before exec without saying why");
    *fail_status = rep.status;
    return error_set(err, rep.errnum, "%s", rep.msg);
}

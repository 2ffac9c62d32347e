/* Starting the workload: fork, prepare the child, exec; and supervising it as its parent. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "confine.h"
#include "core/error.h"
#include "rootfs.h"

struct launch_spec {
    char *const *argv;             /* as given: argv[0] is kept */
    char *const *env;              /* the workload's environment; NULL: tether's own */
    const char *path;              /* the resolved executable */
    int exe_fd;                    /* the measured file; exec goes through it unless it is
                                    * a script */
    const struct confine *confine; /* applied in the child before exec */
    const struct confine_plan *plan;
    const struct cgroup *cgroup; /* the child moves itself into it first, or NULL */
    bool fd_only;                /* exec through exe_fd, never by path (a decrypted memfd) */
    const char *entrypoint;      /* with rootfs_dir: exe_fd is a tar to unpack and chroot into */
    const char *rootfs_dir;
    uint64_t rootfs_cap;
    const struct rootfs_spec *rootfs; /* an image's layers instead of exe_fd's tar, or NULL */
    /* A script: exec interp_fd with the script as /dev/fd/<exe_fd> (-1: not a script). */
    int interp_fd;
    const char *interp_path, *interp_arg;
    /* A monitored workload: started under an init that dies with tether (launch.c). */
    bool supervised;
    bool wrapper;      /* the command is a container runtime: no namespaces for the init */
    bool keep_tree;    /* monitor.on_main_exit "supervise": the tree outlives its main process */
    int64_t grace_s;   /* between SIGTERM and SIGKILL to the rest of the tree */
    bool prevent_exec; /* monitor.prevent_exec: hold every exec for tether's answer */
    dev_t exe_dev;     /* the measured file, whose launch exec tether allows itself */
    ino_t exe_ino;
    /* Supervised: called once the init exists, before it starts, to put it in a cgroup made
     * for it (a systemd scope: run.c).  1 when it did (the init then roots its cgroup
     * namespace there), 0 when there is none, -1 with err to refuse the launch. */
    int (*place)(void *arg, pid_t init, tether_error_t *err);
    void *place_arg;
    /* Credentials (creds.h): the child mounts a tmpfs on creds_dir in its own mount
     * namespace (inside its tree, for a root file system), owned by the workload's user,
     * hands its descriptor over, and goes on once creds_fill (which takes the descriptor
     * over) has written the token and secrets; it then finds them through
     * $TETHER_IDENTITY and $TETHER_SECRETS.  creds_dir NULL: none. */
    const char *creds_dir;
    bool creds_identity, creds_secrets;
    int (*creds_fill)(void *arg, int dir_fd, tether_error_t *err);
    void *creds_arg;
};

struct supervisor {
    int sigfd;         /* signalfd: forwarded signals and SIGCHLD */
    sigset_t old_mask; /* the caller's mask, restored in the child */
    pid_t child;       /* tether's child: the workload, or its init when supervised */
    pid_t main;        /* the workload's main process, as tether's namespace sees it */
    int main_pidfd;    /* for signals to it, or -1 */
    int life_fd;       /* supervised: the pipe whose closing ends the init, or -1 */
    int note_fd;       /* supervised: the init says how many processes the main one left */
    uint64_t pidns;    /* supervised: the workload's pid namespace (its inode), or 0 */
    pid_t tether_pid;  /* getpid(), for the child to tell that its parent is still there */
    int gate_fd;       /* exec prevention: the fanotify group, or -1 */
    pid_t gate_holder; /* the process that keeps it open until the tree is gone */
    int execs_fd;      /* exec prevention: the seccomp listener for each exec's start, or -1 */
};

/* Becomes a child subreaper and takes the forwarded signals into a signalfd.  Call before
 * launch_start so that no signal is lost in between. */
int supervise_prepare(struct supervisor *sv, tether_error_t *err);

/* Forks and execs.  A failure in the child before exec comes back over a close-on-exec pipe:
 * then it returns -1 with err and *fail_status (126, 127, or 125 for setup). */
int launch_start(struct supervisor *sv, const struct launch_spec *spec, int *fail_status,
                 tether_error_t *err);

/* Forwards signals, reaps every child, and returns the workload's exit status (128+N when
 * signal N ended it). */
int supervise_wait(struct supervisor *sv);

/* One signal from sv->sigfd: forwards it, or reaps on SIGCHLD.  True when the workload
 * itself ended, with its status in *code. */
struct signalfd_siginfo;
bool supervise_on_signal(struct supervisor *sv, const struct signalfd_siginfo *si, int *code);
/* A wait status as an exit status: the code, or 128+N for signal N. */
int supervise_status_code(int status);

void supervise_release(struct supervisor *sv);

/* Called once, first thing: a write past RLIMIT_FSIZE (the audit trail, a status file) is an
 * error tether reports (EFBIG), not SIGXFSZ ending it, and a monitor with it.  A workload is
 * given back the disposition tether was given, as env(1) gives its command. */
void launch_ignore_sigxfsz(void);

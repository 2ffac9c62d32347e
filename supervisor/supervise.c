/* The supervising parent: a child subreaper that forwards signals to the workload, reaps
 * every process that ends up its child, and returns the workload's status. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "launch.h"

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

int supervise_prepare(struct supervisor *sv, tether_error_t *err)
{
    memset(sv, 0, sizeof *sv);
    sv->sigfd = -1;
    sv->child = -1;
    sv->main = -1;
    sv->main_pidfd = -1;
    sv->life_fd = -1;
    sv->note_fd = -1;
    sv->gate_fd = -1;
    sv->gate_holder = -1;
    sv->execs_fd = -1;
    sv->tether_pid = getpid();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return error_set(err, errno, "cannot become a child subreaper");

    sigset_t mask;
    sigemptyset(&mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&mask, forwarded[i]);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, &sv->old_mask) < 0)
        return error_set(err, errno, "sigprocmask");
    sv->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sv->sigfd < 0) {
        sigprocmask(SIG_SETMASK, &sv->old_mask, NULL);
        return error_set(err, errno, "signalfd");
    }
    return 0;
}

int supervise_status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 125;
}

/* Reaps every child that has ended; returns true when the workload was among them. */
static bool reap(struct supervisor *sv, int *code)
{
    bool done = false;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        if (pid == sv->child) {
            *code = supervise_status_code(status);
            done = true;
        } else {
            log_debug("reaped orphan %d", (int)pid);
        }
    }
    return done;
}

bool supervise_on_signal(struct supervisor *sv, const struct signalfd_siginfo *si, int *code)
{
    if (si->ssi_signo == SIGCHLD)
        return reap(sv, code);
    /* A signal the terminal sent went to the whole foreground process group, the workload
     * included; only signals sent to tether alone are passed on. */
    if (si->ssi_code == SI_KERNEL)
        return false;
    int r = sv->main_pidfd >= 0
                ? (int)syscall(SYS_pidfd_send_signal, sv->main_pidfd, (int)si->ssi_signo, NULL, 0)
                : kill(sv->child, (int)si->ssi_signo);
    if (r < 0 && errno != ESRCH)
        log_warn("cannot forward signal %u: %s", si->ssi_signo, strerror(errno));
    return false;
}

int supervise_wait(struct supervisor *sv)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sv->sigfd, &si, sizeof si);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof si) {
            log_error("signalfd: %s", n < 0 ? strerror(errno) : "short read");
            /* Without signals we can still wait for the workload. */
            int status;
            while (waitpid(sv->child, &status, 0) < 0)
                if (errno != EINTR)
                    return 125;
            return supervise_status_code(status);
        }
        int code;
        if (supervise_on_signal(sv, &si, &code))
            return code;
    }
}

void supervise_release(struct supervisor *sv)
{
    if (sv->main_pidfd >= 0)
        close(sv->main_pidfd);
    sv->main_pidfd = -1;
    if (sv->life_fd >= 0)
        close(sv->life_fd);
    sv->life_fd = -1;
    if (sv->note_fd >= 0)
        close(sv->note_fd);
    sv->note_fd = -1;
    if (sv->gate_fd >= 0)
        close(sv->gate_fd);
    sv->gate_fd = -1;
    if (sv->execs_fd >= 0)
        close(sv->execs_fd);
    sv->execs_fd = -1;
    if (sv->sigfd >= 0) {
        close(sv->sigfd);
        sv->sigfd = -1;
        sigprocmask(SIG_SETMASK, &sv->old_mask, NULL);
    }
}

/* Fork and exec, with the child's setup errors reported to the parent over a close-on-exec
 * pipe (as crun's sync socket): the parent learns whether exec happened, and why not. */
#define _GNU_SOURCE
#include "launch.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "rootfs.h"
#include "core/util.h"

extern char **environ;

struct child_report {
    int32_t status; /* the exit status tether should give */
    int32_t errnum;
    char msg[256];
};

static void __attribute__((noreturn)) child_fail(int fd, int status, int errnum, const char *msg)
{
    struct child_report rep = {.status = status, .errnum = errnum};
    snprintf(rep.msg, sizeof rep.msg, "%s", msg);
    (void)!write(fd, &rep, sizeof rep);
    _exit(status);
}

static bool is_script(int fd)
{
    char magic[2];
    return fd >= 0 && pread(fd, magic, 2, 0) == 2 && magic[0] == '#' && magic[1] == '!';
}

static void __attribute__((noreturn))
child_run(const struct supervisor *sv, const struct launch_spec *spec, bool by_fd, int report_fd)
{
    sigprocmask(SIG_SETMASK, &sv->old_mask, NULL);
    environ = confine_env_filter(spec->confine, environ);

    if (spec->cgroup != NULL && cgroup_enter(spec->cgroup) < 0)
        child_fail(report_fd, 125, errno, "joining the workload's cgroup");

    const char *step = NULL;
    if (spec->rootfs_dir != NULL &&
        rootfs_enter(spec->exe_fd, spec->rootfs_dir, spec->rootfs_cap, &step) < 0) {
        int e = errno;
        child_fail(report_fd, 125, e, step);
    }
    if (confine_apply(spec->confine, spec->plan, &step) < 0) {
        int e = errno;
        char msg[256];
        snprintf(msg, sizeof msg, "confine: %s", step);
        child_fail(report_fd, 125, e, msg);
    }

    /* Exec the very file that was measured.  A script cannot be run from a close-on-exec
     * descriptor (its interpreter would need /dev/fd/N), so it is run by path. */
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
    } else if (by_fd)
        execveat(spec->exe_fd, "", spec->argv, environ, AT_EMPTY_PATH);
    else
        execve(spec->path, spec->argv, environ);
    int e = errno;
    char msg[256];
    snprintf(msg, sizeof msg, "`%s`", spec->argv[0]);
    child_fail(report_fd, e == ENOENT ? 127 : 126, e, msg);
}

int launch_start(struct supervisor *sv, const struct launch_spec *spec, int *fail_status,
                 tether_error_t *err)
{
    *fail_status = 125;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return error_set(err, errno, "pipe");
    cleanup_close int rd = pipefd[0];
    cleanup_close int wr = pipefd[1];
    bool by_fd = spec->fd_only || (spec->exe_fd >= 0 && !is_script(spec->exe_fd));

    int ns_restore;
    if (confine_enter_parent(spec->confine, &ns_restore, err) < 0)
        return -1;
    pid_t pid = fork();
    int fork_errno = errno;
    if (pid != 0)
        confine_leave_parent(ns_restore);
    if (pid < 0)
        return error_set(err, fork_errno, "fork");
    if (pid == 0) {
        close(rd);
        child_run(sv, spec, by_fd, wr);
    }
    close(steal_fd(&wr));

    struct child_report rep;
    ssize_t n;
    do
        n = read(rd, &rep, sizeof rep);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
        sv->child = pid;
        return 0; /* the pipe closed on exec */
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t)sizeof rep)
        return error_set(err, 0, "the child failed before exec without saying why");
    rep.msg[sizeof rep.msg - 1] = '\0';
    *fail_status = rep.status;
    return error_set(err, rep.errnum, "%s", rep.msg);
}

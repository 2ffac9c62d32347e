/* A container's entrypoint, found and measured inside its root file system as the container
 * will see it: whoever wrote the image chose every name and link in there, and tether, as
 * root on the host, must never be led by them to a file outside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

/* runc's and crun's PATH when the container's environment has none. */
#define CONTAINER_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* path under root as if root were /: ".." stops at it, an absolute link starts again from it,
 * and a /proc magic link (/proc/self/exe, /proc/1/root) is refused.  An O_PATH descriptor,
 * which acts on nothing (opening a FIFO for reading could block, a device runs its
 * driver's open), or -1 with errno. */
static int open_in_root(int root, const char *path, int flags)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC | (unsigned)flags,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    /* EAGAIN: a rename elsewhere on the file system raced the lookup (openat2(2)). */
    for (int tries = 0; tries < 16; tries++) {
        int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof how);
        if (fd >= 0 || errno != EAGAIN)
            return fd;
    }
    return -1;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The root file system as the container's init sees it, with the runtime's mounts in it.
 * Until the runtime pivots (createRuntime and prestart: runc has made the mounts in the
 * init's mount namespace, and pivots after those hooks), the init's root is the node's, and
 * root is looked up under it; after (a container's monitor), the init's root is root
 * itself.  -1 with *why when neither holds (the init is gone, or is no container's). */
static int init_root(pid_t init, const char *root, const char **why)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root", (int)init);
    cleanup_close int iroot = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat ist, st;
    if (iroot < 0 || fstat(iroot, &ist) < 0) {
        *why = "the init's root cannot be opened";
        return -1;
    }
    if (stat("/", &st) == 0 && same_file(&ist, &st)) {
        int fd = open_in_root(iroot, root, O_DIRECTORY);
        if (fd < 0)
            *why = "the root file system cannot be opened in the init's mount namespace";
        return fd;
    }
    if (stat(root, &st) == 0 && same_file(&ist, &st))
        return steal_fd(&iroot);
    *why = "the init's root is neither the node's nor the container's root file system";
    return -1;
}

/* The entrypoint's O_PATH descriptor and its path in the container, or -1 with errno. */
static int find_entry(int root, const char *cmd, const char *search, const char *cwd, char **path)
{
    if (strchr(cmd, '/') != NULL) {
        if (cmd[0] == '/')
            *path = xstrdup(cmd);
        else
            *path = xasprintf("%s%s%s", cwd, cwd[strlen(cwd) - 1] == '/' ? "" : "/", cmd);
        return open_in_root(root, *path, 0);
    }
    /* As runc (Go's exec.LookPath) and crun look.  A relative entry (an empty one is the
     * working directory) is passed over: Go refuses what it finds there (exec.ErrDot). */
    for (const char *p = search;; p++) {
        const char *end = strchrnul(p, ':');
        if (*p == '/') {
            cleanup_free char *cand = xasprintf("%.*s/%s", (int)(end - p), p, cmd);
            cleanup_close int fd = open_in_root(root, cand, 0);
            if (fd < 0 && errno == ENOSYS)
                return -1;
            struct stat st;
            if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
                *path = steal_pointer(&cand);
                return steal_fd(&fd);
            }
        }
        if (*end == '\0')
            break;
        p = end;
    }
    errno = ENOENT;
    return -1;
}

static const char *lookup_error(int e, bool searched)
{
    switch (e) {
    case ENOENT:
        return searched ? "no regular file with an execute bit in any absolute `PATH` directory"
                        : "not found";
    case ELOOP:
        return "too many symbolic links, or a link into /proc, which is refused";
    case EXDEV:
        return "it leads out of the root file system, which is refused";
    case ENOSYS:
        return "openat2(2), which keeps the lookup inside the root file system, is missing";
    default:
        return strerror(e);
    }
}

cJSON *measure_entrypoint_collect(const char *root, pid_t init, const char *cmd, const char *search,
                                  const char *cwd, char **why)
{
    *why = NULL;
    if (cmd == NULL || cmd[0] == '\0') {
        *why = xstrdup("the config's `process.args` has no program");
        return NULL;
    }
    const char *where = "init", *no_init = "no init pid";
    cleanup_close int rfd = init > 0 ? init_root(init, root, &no_init) : -1;
    if (rfd < 0) {
        where = "bundle";
        rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
            *why = xasprintf("`%.*s`: the root file system `%s`: %s (%s)", MEASURE_STRING_MAX, cmd,
                             root, strerror(errno), no_init);
            return NULL;
        }
    }
    /* In the bundle's root, the container's own mounts (volumes) are missing: say why. */
    cleanup_free char *in =
        strcmp(where, "bundle") == 0 ? xasprintf(" (in the bundle's root: %s)", no_init) : NULL;
    cleanup_free char *path = NULL;
    if (cwd == NULL || cwd[0] == '\0')
        cwd = "/";
    cleanup_close int fd = find_entry(rfd, cmd, search ? search : CONTAINER_PATH, cwd, &path);
    if (fd < 0) {
        *why = xasprintf("`%.*s`: %s%s", MEASURE_STRING_MAX, cmd,
                         lookup_error(errno, strchr(cmd, '/') == NULL), in ? in : "");
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *why = xasprintf("`%s`: %s%s", path, strerror(errno), in ? in : "");
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = xasprintf("`%s`: %s, not a regular file%s", path, file_type_name(st.st_mode),
                         in ? in : "");
        return NULL;
    }
    /* Opened for reading only now that it is known to be a regular file, through the
     * descriptor: the file checked is the file read, whatever was renamed since. */
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    cleanup_close int rd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    cJSON *exe = measure_exe_object(path, rd, &st, MEASURE_HASH_MAX);
    cJSON_AddStringToObject(exe, "resolved_in", where);
    return exe;
}

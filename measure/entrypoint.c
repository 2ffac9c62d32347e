/* A container's entrypoint, found and measured inside its root file system as the container
 * will see it: whoever wrote the image chose every name and link in there, and tether, as
 * root on the host, must never be led by them to a file outside it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/trust.h"
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

/* True when the n bytes at s have a ".." component. */
static bool has_dotdot(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '.' && s[i + 1] == '.' && (i == 0 || s[i - 1] == '/') &&
            (i + 2 == n || s[i + 2] == '/'))
            return true;
    return false;
}

/* True when the absolute path, cleaned by its names (".." takes away the name before it), is
 * /proc or below it. */
static bool names_proc(const char *path)
{
    const char *first = NULL;
    size_t first_len = 0, depth = 0;
    for (const char *p = path; *p;) {
        while (*p == '/')
            p++;
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (depth > 0)
                depth--;
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (depth++ == 0)
                first = p, first_len = n;
        }
        p = end;
    }
    return depth > 0 && first_len == 4 && memcmp(first, "proc", 4) == 0;
}

/* Calls visit(fd, prefix, ctx) for every object that looking up path under root goes
 * through, in order: each prefix of path, opened without following its last name (fd -1,
 * errno set, when it cannot be), and after a link the objects of its target, walked the
 * same way.  Returns visit's first nonzero answer, WALK_LOOP past 40 links in all (one budget
 * for the whole walk, as the kernel's: a link whose target holds links again is not walked
 * again and again), or 0. */
#define WALK_LOOP (-100)
static int walk_in_root(int root, const char *path, int *links,
                        int (*visit)(int fd, const char *prefix, void *ctx), void *ctx)
{
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        cleanup_free char *prefix = xstrndup(path, i);
        cleanup_close int fd = open_in_root(root, prefix, O_NOFOLLOW);
        int r = visit(fd, prefix, ctx);
        if (r != 0 || fd < 0)
            return r; /* the lookup ends where a name is missing */
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISLNK(st.st_mode))
            continue;
        char target[4096];
        ssize_t len = readlinkat(fd, "", target, sizeof target - 1);
        if (len < 0)
            return visit(-1, prefix, ctx);
        target[len] = '\0';
        const char *slash = strrchr(prefix, '/');
        cleanup_free char *next = target[0] == '/'
                                      ? xstrdup(target)
                                      : xasprintf("%.*s/%s", (int)(slash - prefix), prefix, target);
        if (++*links > 40)
            return WALK_LOOP;
        if ((r = walk_in_root(root, next, links, visit, ctx)) != 0)
            return r;
    }
    return 0;
}

/* For reaches_proc: 1 on /proc, -1 where the lookup ends (absent, as for the runtime). */
static int visit_proc(int fd, const char *prefix, void *ctx)
{
    (void)ctx;
    struct statfs sf;
    if (names_proc(prefix))
        return 1;
    if (fd < 0)
        return -1;
    return fstatfs(fd, &sf) < 0 || sf.f_type == PROC_SUPER_MAGIC ? 1 : 0;
}

/* True when looking up dir under root passes through the container's /proc: a directory on a
 * proc file system, or a link whose target, followed link by link, names /proc.  What /proc
 * holds depends on who looks (/proc/self is the looker, and tether is not in the container's
 * pid namespace, so it finds nothing there), so tether cannot know what the runtime finds. */
static bool reaches_proc(int root, const char *dir)
{
    int links = 0;
    int r = walk_in_root(root, dir, &links, visit_proc, NULL);
    return r == 1 || r == WALK_LOOP;
}

/* For replaceable: 1, with the reason in *ctx, at an object someone else could change. */
static int visit_trust(int fd, const char *prefix, void *ctx)
{
    char **why = ctx;
    struct stat st;
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
        return -1; /* absent: only whoever may write the directory checked before can add it */
    if (fd < 0 || fstat(fd, &st) < 0) {
        *why = xasprintf("`%s`: %s", prefix, strerror(errno));
        return 1;
    }
    cleanup_error tether_error_t err = NULL;
    if (trust_check(&st, geteuid(), 0, true, prefix, NULL, &err) < 0) {
        *why = xstrdup(err->msg);
        return 1;
    }
    return 0;
}

/* Whether someone other than root could replace what path names under root before the
 * runtime executes it by that path (it does, after the hooks: a rename in a directory on the
 * way is enough).  Every object on the way, links and their targets included, must pass
 * trust_check, as a trust anchor's path does.  NULL, or why not. */
static char *replaceable(int root, const char *path)
{
    char *why = NULL;
    int links = 0;
    if (walk_in_root(root, path, &links, visit_trust, &why) == WALK_LOOP)
        why = xasprintf("`%s`: too many links", path);
    return why;
}

/* For reachable: 1, with the reason in *ctx, at a directory others may not search or a file
 * others may not execute, or on a noexec mount. */
static int visit_reach(int fd, const char *prefix, void *ctx)
{
    char **why = ctx;
    struct stat st;
    struct statfs sf;
    if (fd < 0 || fstat(fd, &st) < 0 || S_ISLNK(st.st_mode))
        return 0; /* a link's own mode is never used; what is missing, replaceable says */
    if (!(st.st_mode & S_IXOTH)) {
        *why = xasprintf("`%s`: mode %04o gives others no %s", prefix, st.st_mode & 07777,
                         S_ISDIR(st.st_mode) ? "search" : "execute");
        return 1;
    }
    if (fstatfs(fd, &sf) == 0 && (sf.f_flags & ST_NOEXEC) && !S_ISDIR(st.st_mode)) {
        *why = xasprintf("`%s`: on a noexec mount", prefix);
        return 1;
    }
    return 0;
}

/* Whether a runtime that looks up path as the container's user, not root (runc switches to
 * process.user before Go's exec.LookPath), reaches the same file tether found as root.  Only
 * what others may search and execute is taken for sure; uid 0 reaches what root owns.  NULL,
 * or why not. */
static char *reachable_by(int root, const char *path, int64_t uid)
{
    if (uid == 0)
        return NULL;
    char *why = NULL;
    int links = 0;
    if (walk_in_root(root, path, &links, visit_reach, &why) == WALK_LOOP)
        why = xasprintf("`%s`: too many links", path);
    return why;
}

/* The entrypoint's O_PATH descriptor and its path in the container, or -1 with errno and, for
 * a search that stopped at a PATH entry, that entry's candidate in *path.  *unstable says
 * why a candidate passed over could be made to hold a program before the runtime looks
 * (its directory is not root's alone), else stays NULL. */
static int find_entry(int root, const char *cmd, const char *search, const char *cwd, char **path,
                      char **unstable)
{
    if (strchr(cmd, '/') != NULL) {
        if (cmd[0] == '/')
            *path = xstrdup(cmd);
        else
            *path = xasprintf("%s%s%s", cwd, cwd[strlen(cwd) - 1] == '/' ? "" : "/", cmd);
        return open_in_root(root, *path, 0);
    }
    /* As runc (Go's exec.LookPath) and crun look.  A relative entry (an empty one is the
     * working directory) is passed over: Go refuses what it finds there (exec.ErrDot).  The
     * search stops, with no entrypoint, where the runtimes could find another file than
     * tether: at an entry with "..", which Go cleans away by its name and crun resolves
     * through the links before it, and at a candidate that cannot be looked up for a reason
     * other than its absence (a link into /proc, which the runtime would follow). */
    for (const char *p = search;; p++) {
        const char *end = strchrnul(p, ':');
        if (*p == '/') {
            cleanup_free char *cand = xasprintf("%.*s/%s", (int)(end - p), p, cmd);
            if (has_dotdot(p, (size_t)(end - p))) {
                *path = steal_pointer(&cand);
                errno = EDOM;
                return -1;
            }
            cleanup_close int fd = open_in_root(root, cand, 0);
            if (fd < 0 && errno != ENOENT && errno != ENOTDIR) {
                *path = steal_pointer(&cand);
                return -1;
            }
            if (fd < 0) {
                cleanup_free char *dir = xstrndup(p, (size_t)(end - p));
                if (reaches_proc(root, dir)) {
                    *path = steal_pointer(&cand);
                    errno = EREMOTE;
                    return -1;
                }
            }
            struct stat st;
            if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) {
                *path = steal_pointer(&cand);
                return steal_fd(&fd);
            }
            /* Passed over now; the runtime looks again after the hooks. */
            if (*unstable == NULL)
                *unstable = replaceable(root, cand);
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
    case EREMOTE:
        return "a `PATH` directory that leads into /proc, whose contents depend on who looks, "
               "is refused";
    case EDOM:
        return "a `..` in a `PATH` directory, which runtimes resolve differently (Go by the name, "
               "crun through the links), is refused";
    default:
        return strerror(e);
    }
}

cJSON *measure_entrypoint_collect(const char *root, pid_t init, const char *cmd, const char *search,
                                  const char *cwd, int64_t uid, char **why)
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
    cleanup_free char *unstable = NULL;
    cleanup_close int fd =
        find_entry(rfd, cmd, search ? search : CONTAINER_PATH, cwd, &path, &unstable);
    if (fd < 0) {
        int e = errno;
        bool searched = strchr(cmd, '/') == NULL;
        if (searched && path != NULL) /* the search stopped at this candidate */
            *why = xasprintf("`%.*s`: `%.*s`: %s; the search of `PATH` stops there%s",
                             MEASURE_STRING_MAX, cmd, MEASURE_STRING_MAX, path,
                             lookup_error(e, false), in ? in : "");
        else
            *why = xasprintf("`%.*s`: %s%s", MEASURE_STRING_MAX, cmd, lookup_error(e, searched),
                             in ? in : "");
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *why = xasprintf("`%s`: %s%s", path, strerror(errno), in ? in : "");
        return NULL;
    }
    cleanup_free char *unreachable = reachable_by(rfd, path, uid);
    if (unreachable != NULL) {
        *why = xasprintf("%s; the runtime looks as the container's user (uid %lld), who may "
                         "find another file, or none%s",
                         unreachable, (long long)uid, in ? in : "");
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
    /* The runtime executes by path, after the hooks (runc start may come hours after runc
     * create): a hash is evidence only when nobody but root can change what the path names
     * by then, in the root file system or on the way to it on the node. */
    cleanup_error tether_error_t err = NULL;
    cleanup_close int anchor = trust_open(root, TRUST_DIR, &err);
    cleanup_free char *swap = anchor < 0         ? xasprintf("the root file system %s", err->msg)
                              : unstable != NULL ? steal_pointer(&unstable)
                                                 : replaceable(rfd, path);
    if (swap != NULL)
        cJSON_ReplaceItemInObjectCaseSensitive(exe, "sha256", cJSON_CreateNull());
    cJSON_AddItemToObject(exe, "replaceable", json_string_or_null(swap));
    return exe;
}

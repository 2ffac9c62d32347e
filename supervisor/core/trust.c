/* Trust anchors (see trust.h): the path walk and the check of each object on it. */
#define _GNU_SOURCE
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

#define TRUST_MAX_LINKS 40 /* the kernel's own limit for one lookup */

struct walk {
    const char *path; /* as asked: every message names it */
    int flags;
    uid_t euid;
};

int trust_check(const struct stat *st, uid_t euid, int flags, bool last, const char *path,
                const char *shown, tether_error_t *err)
{
    /* "`P`: ..." for the object asked for, "`P`: `C` is ..." for one on the way to it. */
    cleanup_free char *who = last || shown == NULL
                                 ? xasprintf("`%s`:", path)
                                 : xasprintf("`%s`: `%s` is", path, *shown ? shown : "/");
    unsigned mode = st->st_mode & 07777;
    if (st->st_uid != 0 && st->st_uid != euid) {
        if (euid == 0)
            return error_set(err, 0, "%s owned by uid %d, not root; refusing", who,
                             (int)st->st_uid);
        return error_set(err, 0, "%s owned by uid %d, neither root nor uid %d; refusing", who,
                         (int)st->st_uid, (int)euid);
    }
    if (S_ISLNK(st->st_mode))
        return 0; /* a link's own mode is never used */
    /* In a sticky directory nobody renames or removes an entry they do not own, and each
     * entry on the path is checked for its owner in turn. */
    bool sticky = S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !sticky) {
        const char *by = (st->st_mode & S_IWGRP) && (st->st_mode & S_IWOTH) ? "group and others"
                         : (st->st_mode & S_IWGRP)                          ? "group"
                                                                            : "others";
        return error_set(err, 0, "%s writable by %s (mode %04o); refusing", who, by, mode);
    }
    if (last && (flags & TRUST_PRIVATE) && (st->st_mode & 077))
        return error_set(err, 0,
                         "%s open to others (mode %04o), where only its owner may have access; "
                         "refusing",
                         who, mode);
    return 0;
}

static int clear_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* The object asked for: name in dir, checked, then opened as the flags say.  A FIFO or a
 * device is refused from an O_PATH descriptor, before any open that could block or act. */
static int open_last(const struct walk *w, int dir, const char *name, tether_error_t *err)
{
    bool append = w->flags & TRUST_APPEND;
    int oflags =
        (append ? O_RDWR | O_APPEND : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    struct stat st;
    cleanup_close int pfd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pfd < 0 && errno == ENOENT && append && (w->flags & TRUST_CREATE) &&
        !(w->flags & TRUST_DIR)) {
        cleanup_close int fd = openat(dir, name, oflags | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            if (fstat(fd, &st) < 0 || clear_nonblock(fd) < 0)
                return error_set(err, errno, "`%s`", w->path);
            if (trust_check(&st, w->euid, w->flags, true, w->path, NULL, err) < 0)
                return -1;
            return steal_fd(&fd);
        }
        if (errno != EEXIST)
            return error_set(err, errno, "`%s`", w->path);
        /* Someone else created it first: theirs is checked like any other. */
        pfd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (pfd < 0 || fstat(pfd, &st) < 0)
        return error_set(err, errno, "`%s`", w->path);
    if (S_ISLNK(st.st_mode))
        return error_set(err, 0, "`%s`: a symbolic link; refusing", w->path);
    if (w->flags & TRUST_DIR) {
        if (!S_ISDIR(st.st_mode))
            return error_set(err, ENOTDIR, "`%s`", w->path);
        if (trust_check(&st, w->euid, w->flags, true, w->path, NULL, err) < 0)
            return -1;
        return steal_fd(&pfd);
    }
    if (S_ISDIR(st.st_mode))
        return error_set(err, EISDIR, "`%s`", w->path);
    if (!S_ISREG(st.st_mode))
        return error_set(err, 0, "`%s`: %s, not a regular file; refusing", w->path,
                         file_type_name(st.st_mode));
    if (trust_check(&st, w->euid, w->flags, true, w->path, NULL, err) < 0)
        return -1;

    cleanup_close int fd = openat(dir, name, oflags);
    struct stat now;
    if (fd < 0 || fstat(fd, &now) < 0)
        return error_set(err, errno, "`%s`", w->path);
    if (now.st_dev != st.st_dev || now.st_ino != st.st_ino || !S_ISREG(now.st_mode))
        return error_set(err, 0, "`%s`: replaced while it was checked; refusing", w->path);
    if (trust_check(&now, w->euid, w->flags, true, w->path, NULL, err) < 0)
        return -1;
    /* Root's by owner and mode, but someone may still hold it open for writing. */
    if (!(w->flags & TRUST_APPEND) && fd_open_for_writing(fd))
        return error_set(err, 0, "`%s`: open for writing by another process; refusing", w->path);
    if (clear_nonblock(fd) < 0)
        return error_set(err, errno, "`%s`", w->path);
    return steal_fd(&fd);
}

/* The path of name below at, for messages only: ".." taken lexically. */
static char *shown_below(const char *at, const char *name)
{
    if (strcmp(name, ".") == 0)
        return xstrdup(at);
    if (strcmp(name, "..") == 0) {
        const char *slash = strrchr(at, '/');
        return xstrndup(at, slash ? (size_t)(slash - at) : 0);
    }
    return xasprintf("%s/%s", at, name);
}

int trust_open(const char *path, int flags, tether_error_t *err)
{
    if (path == NULL || *path == '\0')
        return error_set(err, ENOENT, "`%s`", path ? path : "");
    struct walk w = {.path = path, .flags = flags, .euid = geteuid()};
    cleanup_free char *rest = NULL;
    if (path[0] == '/') {
        rest = xstrdup(path);
    } else {
        cleanup_free char *cwd = getcwd(NULL, 0);
        if (cwd == NULL)
            return error_set(err, errno, "`%s`: the working directory", path);
        rest = xasprintf("%s/%s", cwd, path);
    }

    cleanup_close int dir = -1;
    cleanup_free char *at = NULL; /* the directory reached, for messages ("" is /) */
    struct stat st;
    int links = 0;
    char *p = rest;
    for (;;) {
        if (*p == '/') {
            /* An absolute path, or link target: from the root. */
            if (dir >= 0)
                close(dir);
            dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (dir < 0 || fstat(dir, &st) < 0)
                return error_set(err, errno, "`%s`", path);
            if (trust_check(&st, w.euid, flags, false, path, "", err) < 0)
                return -1;
            free(at);
            at = xstrdup("");
            while (*p == '/')
                p++;
        }
        if (*p == '\0') {
            /* The path ends at the directory reached ("/", or a link to it). */
            if (!(flags & TRUST_DIR))
                return error_set(err, EISDIR, "`%s`", path);
            if (fstat(dir, &st) < 0)
                return error_set(err, errno, "`%s`", path);
            if (trust_check(&st, w.euid, flags, true, path, NULL, err) < 0)
                return -1;
            return steal_fd(&dir);
        }
        char *name = p, *end = strchrnul(p, '/');
        p = end;
        while (*p == '/')
            p++;
        bool last = *p == '\0';
        *end = '\0';

        cleanup_close int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && !last)
            return error_set(err, errno, "`%s`", path);
        if (fd >= 0 && fstat(fd, &st) < 0)
            return error_set(err, errno, "`%s`", path);
        cleanup_free char *shown = shown_below(at, name);
        if (fd >= 0 && S_ISLNK(st.st_mode) && (!last || (flags & TRUST_DIR))) {
            /* A link on the way: trusted when its owner is, and its target is walked by the
             * same rules, from the root or from the link's directory. */
            if (trust_check(&st, w.euid, flags, false, path, shown, err) < 0)
                return -1;
            if (++links > TRUST_MAX_LINKS)
                return error_set(err, ELOOP, "`%s`", path);
            char target[PATH_MAX];
            ssize_t n = readlinkat(fd, "", target, sizeof target);
            if (n < 0 || (size_t)n >= sizeof target)
                return error_set(err, n < 0 ? errno : ENAMETOOLONG, "`%s`", path);
            target[n] = '\0';
            char *next = xasprintf("%s/%s", target, p);
            free(rest);
            rest = next;
            p = rest;
            continue;
        }
        if (last)
            return open_last(&w, dir, name, err);
        if (!S_ISDIR(st.st_mode))
            return error_set(err, ENOTDIR, "`%s`", path);
        if (trust_check(&st, w.euid, flags, false, path, shown, err) < 0)
            return -1;
        close(dir);
        dir = steal_fd(&fd);
        free(at);
        at = steal_pointer(&shown);
    }
}

int trust_openat(int dirfd, const char *path, const char *name, int flags, tether_error_t *err)
{
    if (*name == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return error_set(err, EINVAL, "`%s`", path);
    struct walk w = {.path = path, .flags = flags, .euid = geteuid()};
    return open_last(&w, dirfd, name, err);
}

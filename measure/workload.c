/* The workload section of the input document: the command, its executable and its caller;
 * and the assembly of the whole document. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

extern char **environ;

/* glibc's execvp() searches this when PATH is unset. */
#define DEFAULT_PATH "/bin:/usr/bin"

static int exe_check(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
        return -EACCES;
    return 0;
}

int measure_exe_resolve(const char *cmd, char **path, tether_error_t *err)
{
    if (*cmd == '\0')
        return error_set(err, ENOENT, "`%s`", cmd);
    if (strchr(cmd, '/') != NULL) {
        int r = exe_check(cmd);
        if (r < 0)
            return error_set(err, -r, "`%s`", cmd);
        *path = xstrdup(cmd);
        return 0;
    }

    /* As execvp(3): try each PATH entry in turn (an empty one is the current directory);
     * a candidate that exists but cannot be executed is remembered, and the search goes on. */
    const char *search = getenv("PATH");
    if (search == NULL)
        search = DEFAULT_PATH;
    bool denied = false;
    for (const char *p = search;; p++) {
        const char *end = strchrnul(p, ':');
        cleanup_free char *cand =
            end == p ? xasprintf("./%s", cmd) : xasprintf("%.*s/%s", (int)(end - p), p, cmd);
        int r = exe_check(cand);
        if (r == 0) {
            *path = steal_pointer(&cand);
            return 0;
        }
        if (r == -EACCES)
            denied = true;
        if (*end == '\0')
            break;
        p = end;
    }
    return error_set(err, denied ? EACCES : ENOENT, "`%s`", cmd);
}

bool measure_writable_by_others(int fd, const struct stat *st)
{
    if (st->st_uid != 0 || (st->st_mode & (S_IWGRP | S_IWOTH)))
        return true;
    return fd >= 0 && S_ISREG(st->st_mode) && fd_open_for_writing(fd);
}

/* A private copy in a sealed memfd, hashed as it is copied: nobody can change the bytes
 * between the hash and the exec, as crun does for its own binary (CVE-2019-5736).  It is
 * memory, so it is bounded: by PRIVATE_COPY_MAX, and by the size the file had when it was
 * measured, since whoever may write it may also make it grow for as long as it is read. */
#define PRIVATE_COPY_MAX (UINT64_C(1) << 30)
static int private_copy(int fd, const char *path, const struct stat *st, int *copy, char *hex,
                        tether_error_t *err)
{
    if ((uint64_t)st->st_size > PRIVATE_COPY_MAX)
        return error_set(err, EFBIG,
                         "`%s`: %lld bytes that others may write: such a file runs from a copy "
                         "in memory, of at most 1 GiB; make it root's alone (chown root, chmod "
                         "go-w) to run it in place",
                         path, (long long)st->st_size);
    cleanup_close int mfd = memfd_create("tether-exe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0)
        return error_set(err, errno, "`%s`: private copy: memfd", path);
    /* The size it had when it was measured, which the policy sees, is the size copied:
     * a file that grew or shrank since (or whose size says less than it holds, as a file
     * of /proc's does) is refused. */
    struct stat cs;
    if (sha256_fd_copy(fd, mfd, (uint64_t)st->st_size, hex, err) < 0) {
        if (err != NULL && *err != NULL && (*err)->code == EOVERFLOW)
            return error_set(err, 0,
                             "`%s`: it has more than the %lld bytes it had when it was measured; "
                             "not starting it",
                             path, (long long)st->st_size);
        return error_wrap(err, "`%s`: private copy", path);
    }
    if (fstat(mfd, &cs) < 0)
        return error_set(err, errno, "`%s`: private copy: memfd", path);
    if (cs.st_size != st->st_size)
        return error_set(
            err, 0, "`%s`: it shrank while it was copied (%lld bytes of %lld); not starting it",
            path, (long long)cs.st_size, (long long)st->st_size);
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0 ||
        fchmod(mfd, 0555) < 0)
        return error_set(err, errno, "`%s`: private copy: sealing", path);
    *copy = steal_fd(&mfd);
    return 0;
}

/* The exe object; hex NULL when the file's bytes were not hashed. */
static cJSON *exe_json(const char *path, const struct stat *st, const char *hex, const char *from,
                       const char *verity)
{
    cJSON *exe = cJSON_CreateObject();
    cJSON_AddStringToObject(exe, "path", path);
    cJSON_AddItemToObject(exe, "sha256", json_string_or_null(hex));
    cJSON_AddItemToObject(exe, "sha256_from", json_string_or_null(hex ? from : NULL));
    cleanup_free char *vd = verity[0] ? xasprintf("sha256:%s", verity) : NULL;
    cJSON_AddItemToObject(exe, "fsverity_digest", json_string_or_null(vd));
    cJSON_AddNumberToObject(exe, "size", (double)st->st_size);
    cJSON_AddNumberToObject(exe, "owner_uid", st->st_uid);
    cJSON_AddNumberToObject(exe, "owner_gid", st->st_gid);
    cJSON_AddNumberToObject(exe, "mode", st->st_mode & 07777);
    return exe;
}

cJSON *measure_exe_object(const char *path, int fd, const struct stat *st, uint64_t limit)
{
    char hex[SHA256_HEX_LEN + 1], verity[SHA256_HEX_LEN + 1] = "";
    const char *from = NULL;
    bool hashed =
        fd >= 0 && S_ISREG(st->st_mode) && measure_sha256(fd, limit, hex, &from, verity) == 0;
    return exe_json(path, st, hashed ? hex : NULL, from, verity);
}

int measure_exe_collect(const char *path, unsigned flags, cJSON **out, int *fd_out,
                        tether_error_t *err)
{
    bool hash = !(flags & MEASURE_EXE_NO_HASH);
    /* Measure through one descriptor so that stat, hash and (for the caller) exec all see the
     * same file.  An executable we may run but not read is measured without its hash. */
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if ((fd >= 0 ? fstat(fd, &st) : stat(path, &st)) < 0)
        return error_set(err, errno, "`%s`", path);

    /* A file that others may write is run from the copy whose bytes were hashed (for a
     * sealed file, by seal_open: hash false). */
    bool copied = false;
    cJSON *exe;
    if (fd >= 0 && S_ISREG(st.st_mode) && fd_out != NULL && measure_writable_by_others(fd, &st)) {
        char hex[SHA256_HEX_LEN + 1];
        int copy = -1;
        if (private_copy(fd, path, &st, &copy, hash ? hex : NULL, err) < 0)
            return -1;
        close(fd);
        fd = copy;
        copied = true;
        exe = exe_json(path, &st, hash ? hex : NULL, "copy", "");
    } else {
        exe = measure_exe_object(path, hash ? fd : -1, &st,
                                 flags & MEASURE_EXE_BOUNDED ? MEASURE_HASH_MAX : UINT64_MAX);
    }
    if (fd_out != NULL)
        cJSON_AddBoolToObject(exe, "private_copy", copied);
    *out = exe;
    if (fd_out != NULL)
        *fd_out = steal_fd(&fd);
    return 0;
}

int measure_interpreter_collect(int script_fd, const char *path, cJSON *exe, int *fd_out,
                                char **interp_out, char **arg_out, tether_error_t *err)
{
    if (fd_out != NULL)
        *fd_out = -1;
    *interp_out = *arg_out = NULL;
    char head[MEASURE_SHEBANG_MAX];
    ssize_t n = script_fd >= 0 ? pread(script_fd, head, sizeof head, 0) : -1;
    if (n < 2 || head[0] != '#' || head[1] != '!')
        return 0;
    cleanup_free char *interp = NULL, *arg = NULL;
    if (measure_parse_shebang(head, (size_t)n, &interp, &arg) < 0)
        return error_set(err, ENOEXEC, "`%s`: its #! line is empty or longer than %d bytes", path,
                         MEASURE_SHEBANG_MAX);
    if (interp[0] != '/')
        return error_set(err, ENOEXEC, "`%s`: its interpreter `%s` is not an absolute path", path,
                         interp);
    cJSON *ie = NULL;
    int fd = -1;
    /* Named by whoever wrote the script, who sets how much tether would read: bounded. */
    if (measure_exe_collect(interp, MEASURE_EXE_BOUNDED, &ie, &fd, err) < 0)
        return error_wrap(err, "`%s`: its interpreter", path);
    char magic[2];
    bool readable = fd >= 0 && pread(fd, magic, 2, 0) == 2;
    const char *why = !readable ? "cannot be read, so it cannot be measured"
                      : magic[0] == '#' && magic[1] == '!'
                          ? "is a script itself; tether runs one level of #!"
                      : !cJSON_IsString(cJSON_GetObjectItem(ie, "sha256"))
                          ? "cannot be hashed (not a regular file, or over 1 GiB)"
                          : NULL;
    if (why != NULL) {
        if (fd >= 0)
            close(fd);
        cJSON_Delete(ie);
        return error_set(err, EACCES, "`%s`: its interpreter `%s` %s", path, interp, why);
    }
    cJSON_AddItemToObject(ie, "arg", json_string_or_null(arg));
    cJSON_AddItemToObject(exe, "interpreter", ie);
    if (fd_out != NULL)
        *fd_out = fd;
    else
        close(fd);
    *interp_out = steal_pointer(&interp);
    *arg_out = steal_pointer(&arg);
    return 0;
}

cJSON *measure_workload_collect(char *const argv[], cJSON *exe, const cJSON *labels)
{
    cJSON *w = cJSON_CreateObject();
    cJSON *args = cJSON_AddArrayToObject(w, "argv");
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        cJSON_AddItemToArray(args, cJSON_CreateString(argv[i]));

    cleanup_free char *cwd = getcwd(NULL, 0);
    cJSON_AddItemToObject(w, "cwd", json_string_or_null(cwd));
    cJSON *user = cJSON_AddObjectToObject(w, "user");
    cJSON_AddNumberToObject(user, "uid", getuid());
    cJSON_AddNumberToObject(user, "gid", getgid());
    size_t n = 0;
    while (environ != NULL && environ[n] != NULL)
        n++;
    bool truncated;
    cJSON_AddItemToObject(w, "env_names",
                          measure_env_names((const char *const *)environ, n, &truncated));
    cJSON_AddBoolToObject(w, "env_truncated", truncated);
    cJSON_AddItemToObject(w, "exe", exe ? exe : cJSON_CreateNull());
    cJSON_AddNullToObject(w, "sealed");
    cJSON_AddItemToObject(w, "labels",
                          labels ? cJSON_Duplicate(labels, true) : cJSON_CreateObject());
    return w;
}

static cJSON *or_null(cJSON *j)
{
    return j ? j : cJSON_CreateNull();
}

cJSON *measure_input_build(const char *phase, cJSON *host, cJSON *workload, cJSON *container,
                           cJSON *processes)
{
    char now[32];
    time_rfc3339(now);
    cJSON *doc = cJSON_CreateObject();
    cJSON *t = cJSON_AddObjectToObject(doc, "tether");
    cJSON_AddStringToObject(t, "version", TETHER_VERSION);
    cJSON_AddStringToObject(t, "phase", phase);
    cJSON_AddStringToObject(t, "time", now);
    cJSON_AddItemToObject(doc, "host", or_null(host));
    cJSON_AddItemToObject(doc, "workload", or_null(workload));
    cJSON_AddItemToObject(doc, "container", or_null(container));
    cJSON_AddItemToObject(doc, "processes", or_null(processes));
    return doc;
}

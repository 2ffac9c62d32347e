/* The workload section of the input document: the command, its executable and its caller;
 * and the assembly of the whole document. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
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

int measure_exe_collect(const char *path, cJSON **out, int *fd_out, tether_error_t *err)
{
    /* Measure through one descriptor so that stat, hash and (for the caller) exec all see the
     * same file.  An executable we may run but not read is measured without its hash. */
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if ((fd >= 0 ? fstat(fd, &st) : stat(path, &st)) < 0)
        return error_set(err, errno, "`%s`", path);

    char hex[SHA256_HEX_LEN + 1];
    bool hashed = fd >= 0 && S_ISREG(st.st_mode) && sha256_fd(fd, hex, NULL) == 0;

    cJSON *exe = cJSON_CreateObject();
    cJSON_AddStringToObject(exe, "path", path);
    cJSON_AddItemToObject(exe, "sha256", json_string_or_null(hashed ? hex : NULL));
    cJSON_AddNumberToObject(exe, "size", (double)st.st_size);
    cJSON_AddNumberToObject(exe, "owner_uid", st.st_uid);
    cJSON_AddNumberToObject(exe, "owner_gid", st.st_gid);
    cJSON_AddNumberToObject(exe, "mode", st.st_mode & 07777);
    *out = exe;
    if (fd_out != NULL)
        *fd_out = steal_fd(&fd);
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

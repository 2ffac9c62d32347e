/* Status files (see status.h) and `tether status`. */
#define _GNU_SOURCE
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "tether.h"

static char *status_file;
static time_t started_at;

char *status_dir(void)
{
    if (geteuid() == 0)
        return xstrdup("/run/tether");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    return xdg && *xdg == '/' ? xasprintf("%s/tether", xdg) : xasprintf("/tmp/tether-%d", getuid());
}

char *status_path(pid_t tether_pid)
{
    cleanup_free char *dir = status_dir();
    return xasprintf("%s/%d.json", dir, (int)tether_pid);
}

/* Fills in what every status file has, and writes it. */
static void status_commit(cJSON *s, const struct run *r, pid_t pid, const char *state, int allow)
{
    if (status_file == NULL) {
        cleanup_free char *dir = status_dir();
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            log_debug("no status file: %s: %s", dir, strerror(errno));
            return;
        }
        status_file = status_path(getpid());
        started_at = time(NULL);
    }
    cJSON_AddNumberToObject(s, "tether_pid", getpid());
    cJSON_AddNumberToObject(s, "pid", pid);
    cJSON_AddStringToObject(s, "state", state);
    cJSON_AddItemToObject(s, "allow", allow < 0 ? cJSON_CreateNull() : cJSON_CreateBool(allow));
    cJSON_AddNumberToObject(s, "decided_at", (double)time(NULL));
    cJSON_AddNumberToObject(s, "started_at", (double)started_at);
    cJSON_AddStringToObject(s, "engine", r->policy ? r->policy->ops->engine : "none");
    cJSON_AddItemToObject(s, "policy", json_string_or_null(r->policy ? r->policy->source : NULL));
    cleanup_free char *text = json_print(s);
    cleanup_free char *tmp = xasprintf("%s.tmp", status_file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    bool ok = write_all(fd, text, strlen(text)) == 0;
    close(fd);
    if (!ok || rename(tmp, status_file) < 0)
        unlink(tmp);
}

void status_write(const struct run *r, const char *state, int allow, int restarts)
{
    cleanup_json cJSON *s = cJSON_CreateObject();
    cJSON *argv = cJSON_AddArrayToObject(s, "argv");
    for (char **a = r->cmd; *a; a++)
        cJSON_AddItemToArray(argv, cJSON_CreateString(*a));
    cJSON_AddNumberToObject(s, "restarts", restarts);
    cJSON_AddBoolToObject(s, "monitored", r->monitored);
    status_commit(s, r, r->sv.child, state, allow);
}

void status_write_container(const struct run *r, const char *id, pid_t init, const char *state,
                            int allow)
{
    cleanup_json cJSON *s = cJSON_CreateObject();
    cJSON *argv = cJSON_AddArrayToObject(s, "argv");
    cJSON_AddItemToArray(argv, cJSON_CreateString("container"));
    cJSON_AddItemToArray(argv, cJSON_CreateString(id));
    cJSON_AddStringToObject(s, "container_id", id);
    cJSON_AddNumberToObject(s, "restarts", 0);
    cJSON_AddBoolToObject(s, "monitored", true);
    status_commit(s, r, init, state, allow);
}

void status_remove(void)
{
    if (status_file != NULL)
        unlink(status_file);
    free(status_file);
    status_file = NULL;
}

static const char usage[] =
    "Usage: tether status [--json]\n"
    "List the workloads that tether supervises on this node: tether's pid, the workload's,\n"
    "its state (running, stopped, ending), the last decision and how long ago it was made,\n"
    "restarts, and the command (\"container ID\" for a container's monitor, whose pid\n"
    "is the container's init).  Root sees /run/tether; another user sees the runs it\n"
    "started itself ($XDG_RUNTIME_DIR/tether).\n"
    "\n"
    "      --json           print a JSON array instead of a table\n"
    "  -h, --help           show this help\n";

static int by_pid(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return (int)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "tether_pid")) -
           (int)cJSON_GetNumberValue(cJSON_GetObjectItem(y, "tether_pid"));
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h')
            return cli_usage(usage, 0);
        else
            return cli_usage("Try 'tether status --help' for more information.\n", 1);
    }
    if (optind < argc)
        return cli_usage("Try 'tether status --help' for more information.\n", 1);

    cleanup_free char *dir = status_dir();
    cleanup_json cJSON *list = cJSON_CreateArray();
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        cleanup_free char *path = xasprintf("%s/%s", dir, e->d_name);
        cleanup_free char *text = NULL;
        cJSON *s = NULL;
        if (read_file(path, 1 << 20, &text, NULL, NULL) < 0 || (s = cJSON_Parse(text)) == NULL)
            continue;
        /* A file whose tether is gone is left over from a crash: not a supervised run. */
        pid_t tp = (pid_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "tether_pid"));
        if (tp <= 0 || (kill(tp, 0) < 0 && errno == ESRCH)) {
            cJSON_Delete(s);
            continue;
        }
        cJSON_AddItemToArray(list, s);
    }
    if (d)
        closedir(d);

    int n = cJSON_GetArraySize(list);
    cJSON **items = xcalloc((size_t)n + 1, sizeof *items);
    int i = 0;
    for (cJSON *s = list->child; s; s = s->next)
        items[i++] = s;
    qsort(items, (size_t)n, sizeof *items, by_pid);
    if (json) {
        cleanup_json cJSON *sorted = cJSON_CreateArray();
        for (i = 0; i < n; i++)
            cJSON_AddItemToArray(sorted, cJSON_Duplicate(items[i], true));
        cleanup_free char *text = cJSON_Print(sorted);
        printf("%s\n", text);
    } else {
        printf("%-8s %-8s %-8s %-8s %-6s %-8s %s\n", "TETHER", "PID", "STATE", "DECISION", "AGE",
               "RESTARTS", "COMMAND");
        time_t now = time(NULL);
        for (i = 0; i < n; i++) {
            const cJSON *s = items[i];
            const cJSON *allow = cJSON_GetObjectItem(s, "allow");
            char cmd[256] = "";
            size_t off = 0;
            const cJSON *a;
            cJSON_ArrayForEach (a, cJSON_GetObjectItem(s, "argv")) {
                if (off >= sizeof cmd - 1)
                    break; /* long command lines are cut, not overrun */
                int w = snprintf(cmd + off, sizeof cmd - off, "%s%s", off ? " " : "",
                                 cJSON_GetStringValue(a));
                off = w < 0 ? sizeof cmd - 1 : off + (size_t)w;
            }
            long age =
                (long)(now - (time_t)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "decided_at")));
            char ages[32];
            snprintf(ages, sizeof ages, "%lds", age < 0 ? 0 : age);
            printf("%-8d %-8d %-8s %-8s %-6s %-8d %s\n",
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "tether_pid")),
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "pid")),
                   cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")),
                   cJSON_IsTrue(allow)    ? "allow"
                   : cJSON_IsFalse(allow) ? "deny"
                                          : "-",
                   ages, (int)cJSON_GetNumberValue(cJSON_GetObjectItem(s, "restarts")), cmd);
        }
    }
    free(items);
    return 0;
}

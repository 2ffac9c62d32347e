/* A static probe run as the workload by the integration tests.  It reports what confinement
 * looks like from the inside and tries system calls, then prints one JSON object.
 *
 *   probe [ACTION]...
 *     status          /proc/self/status fields, ids, groups, namespaces, rlimits
 *     try A,B,...     call each system call with harmless arguments; report 0 or errno
 *     bind PORT       bind a TCP socket to 127.0.0.1:PORT; report 0 or errno
 *     mark FILE       write "ran" to FILE
 *     trap CODE       on SIGTERM, exit with CODE
 *     ignore-term     ignore SIGTERM
 *     exists PATH     report 0 when PATH exists, else errno
 *     cat PATH        report the first line of PATH (printable ASCII only), or errno
 *     cwd             report the working directory
 *     env NAME        report the variable NAME, or null
 *     stamp FILE      write CLOCK_MONOTONIC in nanoseconds and the pid to FILE
 *     ready FILE      create FILE (after the actions before it)
 *     sleep SECONDS   sleep (fractions allowed)
 *     sigsys NAME     call NAME, which a kill filter should answer with SIGSYS
 *     headless SECONDS end the main thread, and go on in another for SECONDS, then exit 0
 *     mkdir PATH      make the directory PATH; report 0 or errno
 *     unchroot        leave a chroot the classic way (chroot into a directory below, then
 *                     ".." past the old root); report 0 or errno
 *     write PATH TEXT write TEXT to the existing file PATH; report 0 or errno
 *     exec PATH ARG.. exec PATH with the rest of the arguments
 *     execstorm N PATH ARG..  N threads exec PATH at once; report how many failed with EPERM
 *     killrace N      N times: a child execs /bin/true, and is killed within 40 us of its
 *                     exec being held by a fanotify group (as /proc/PID/wchan says)
 *
 * Static, so that it runs in any mount namespace, and free of tether's code. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char out[65536];
static size_t outlen;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + outlen, sizeof out - outlen, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof out - outlen)
        outlen += (size_t)n;
}

static long try_one(const char *name)
{
    long r;
    if (strcmp(name, "getpid") == 0)
        r = syscall(SYS_getpid) > 0 ? 0 : -1;
    else if (strcmp(name, "uname") == 0)
        r = syscall(SYS_uname, NULL); /* EFAULT unfiltered */
    else if (strcmp(name, "unshare") == 0)
        r = syscall(SYS_unshare, 0); /* a no-op: 0 unfiltered */
    else if (strcmp(name, "setns") == 0)
        r = syscall(SYS_setns, -1, 0);
    else if (strcmp(name, "ptrace") == 0)
        r = syscall(SYS_ptrace, 0x4206 /* PTRACE_SEIZE */, 0, 0, 0);
    else if (strcmp(name, "bpf") == 0)
        r = syscall(SYS_bpf, -1, NULL, 0);
    else if (strcmp(name, "mount") == 0)
        r = syscall(SYS_mount, NULL, NULL, NULL, 0, NULL);
    else if (strcmp(name, "umount2") == 0)
        r = syscall(SYS_umount2, "", 0);
    else if (strcmp(name, "kexec_load") == 0)
        r = syscall(SYS_kexec_load, 0, 0, NULL, 0xffffffffUL);
    else if (strcmp(name, "init_module") == 0)
        r = syscall(SYS_init_module, NULL, 0, NULL);
    else if (strcmp(name, "perf_event_open") == 0)
        r = syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    else if (strcmp(name, "keyctl") == 0)
        r = syscall(SYS_keyctl, -1, 0, 0, 0, 0);
    else if (strcmp(name, "add_key") == 0)
        r = syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
    else if (strcmp(name, "userfaultfd") == 0)
        r = syscall(SYS_userfaultfd, -1);
    else if (strcmp(name, "process_vm_readv") == 0)
        r = syscall(SYS_process_vm_readv, 0, NULL, 0, NULL, 0, 0);
    else if (strcmp(name, "clock_settime") == 0)
        r = syscall(SYS_clock_settime, -1, NULL);
    else if (strcmp(name, "open_by_handle_at") == 0)
        r = syscall(SYS_open_by_handle_at, -1, NULL, 0);
    else if (strcmp(name, "io_uring_setup") == 0)
        r = syscall(SYS_io_uring_setup, 0, NULL);
    else if (strcmp(name, "socket_vsock") == 0) {
        r = syscall(SYS_socket, 40, SOCK_STREAM, 0);
        if (r >= 0)
            close((int)r), r = 0;
    } else if (strcmp(name, "clone3") == 0)
        r = syscall(SYS_clone3, NULL, 0);
    else if (strcmp(name, "clone_newuts") == 0) {
        r = syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
            _exit(0);
        if (r > 0)
            waitpid((pid_t)r, NULL, 0), r = 0;
    } else {
        errno = ENOTSUP;
        return -2;
    }
    return r < 0 ? errno : 0;
}

static void status(void)
{
    static const char *const keys[] = {"CapInh", "CapPrm",     "CapEff",  "CapBnd",
                                       "CapAmb", "NoNewPrivs", "Seccomp", NULL};
    emit("\"pid\":%d,\"ppid\":%d,\"uid\":%d,\"gid\":%d,\"groups\":[", getpid(), getppid(), getuid(),
         getgid());
    gid_t groups[64];
    int n = getgroups(64, groups);
    for (int i = 0; i < n; i++)
        emit("%s%d", i ? "," : "", groups[i]);
    emit("],\"status\":{");
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int first = 1;
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        for (int i = 0; keys[i]; i++) {
            if (strcmp(line, keys[i]) == 0) {
                char *v = colon + 1;
                v += strspn(v, " \t");
                v[strcspn(v, "\n")] = '\0';
                emit("%s\"%s\":\"%s\"", first ? "" : ",", line, v);
                first = 0;
            }
        }
    }
    if (f)
        fclose(f);
    emit("},\"ns\":{");
    static const char *const ns[] = {"cgroup", "ipc", "mnt", "net", "pid", "uts", NULL};
    for (int i = 0; ns[i]; i++) {
        char path[64], link[128] = "";
        snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i]);
        ssize_t l = readlink(path, link, sizeof link - 1);
        link[l > 0 ? l : 0] = '\0';
        emit("%s\"%s\":\"%s\"", i ? "," : "", ns[i], link);
    }
    emit("},\"rlimits\":{");
    static const struct {
        const char *name;
        int res;
    } rl[] = {{"nofile", RLIMIT_NOFILE}, {"nproc", RLIMIT_NPROC}, {"as", RLIMIT_AS},
              {"cpu", RLIMIT_CPU},       {"fsize", RLIMIT_FSIZE}, {"core", RLIMIT_CORE}};
    for (size_t i = 0; i < sizeof rl / sizeof rl[0]; i++) {
        struct rlimit r;
        getrlimit(rl[i].res, &r);
        emit("%s\"%s\":[%lld,%lld]", i ? "," : "", rl[i].name,
             r.rlim_cur == RLIM_INFINITY ? -1LL : (long long)r.rlim_cur,
             r.rlim_max == RLIM_INFINITY ? -1LL : (long long)r.rlim_max);
    }
    emit("}");
}

static int trap_code;
static void on_term(int sig)
{
    (void)sig;
    _exit(trap_code);
}

static void *headless_thread(void *arg)
{
    double s = *(double *)arg;
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* execstorm: every thread waits for the others, then execs; a failed exec comes back. */
static pthread_barrier_t storm_start;
static char **storm_argv;
static int storm_eperm;

static void *storm_thread(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&storm_start);
    execv(storm_argv[0], storm_argv);
    if (errno == EPERM)
        __atomic_add_fetch(&storm_eperm, 1, __ATOMIC_RELAXED);
    return NULL;
}

int main(int argc, char **argv)
{
    int sections = 0;
    emit("{");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "status") == 0) {
            emit("%s", sections++ ? "," : "");
            status();
        } else if (strcmp(a, "try") == 0 && arg) {
            emit("%s\"try\":{", sections++ ? "," : "");
            char *list = strdup(arg), *save = NULL;
            int first = 1;
            for (char *n = strtok_r(list, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
                emit("%s\"%s\":%ld", first ? "" : ",", n, try_one(n));
                first = 0;
            }
            emit("}");
            i++;
        } else if (strcmp(a, "bind") == 0 && arg) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)atoi(arg)),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            int r = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? errno : 0;
            close(fd);
            emit("%s\"bind\":%d", sections++ ? "," : "", r);
            i++;
        } else if ((strcmp(a, "mark") == 0 || strcmp(a, "ready") == 0) && arg) {
            int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                (void)!write(fd, "ran\n", 4);
                close(fd);
            }
            i++;
        } else if (strcmp(a, "trap") == 0 && arg) {
            trap_code = atoi(arg);
            signal(SIGTERM, on_term);
            i++;
        } else if (strcmp(a, "stamp") == 0 && arg) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            char buf[64];
            int len = snprintf(buf, sizeof buf, "%lld %d\n",
                               (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid());
            int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                (void)!write(fd, buf, (size_t)len);
                close(fd);
            }
            i++;
        } else if (strcmp(a, "exists") == 0 && arg) {
            emit("%s\"exists %s\":%d", sections++ ? "," : "", arg,
                 access(arg, F_OK) == 0 ? 0 : errno);
            i++;
        } else if (strcmp(a, "cat") == 0 && arg) {
            char line[4096] = ""; /* a line: long enough for a JWT */
            FILE *f = fopen(arg, "r");
            if (f == NULL) {
                emit("%s\"cat %s\":%d", sections++ ? "," : "", arg, errno);
            } else {
                if (fgets(line, sizeof line, f) == NULL)
                    line[0] = '\0';
                fclose(f);
                for (char *c = line; *c; c++)
                    if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\')
                        *c = '\0';
                emit("%s\"cat %s\":\"%s\"", sections++ ? "," : "", arg, line);
            }
            i++;
        } else if (strcmp(a, "cwd") == 0) {
            char wd[512];
            emit("%s\"cwd\":\"%s\"", sections++ ? "," : "", getcwd(wd, sizeof wd) ? wd : "?");
        } else if (strcmp(a, "env") == 0 && arg) {
            const char *v = getenv(arg);
            if (v == NULL || strpbrk(v, "\"\\") != NULL)
                emit("%s\"env %s\":null", sections++ ? "," : "", arg);
            else
                emit("%s\"env %s\":\"%s\"", sections++ ? "," : "", arg, v);
            i++;
        } else if (strcmp(a, "ignore-term") == 0) {
            signal(SIGTERM, SIG_IGN);
        } else if (strcmp(a, "sleep") == 0 && arg) {
            double s = atof(arg);
            struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
            i++;
        } else if (strcmp(a, "headless") == 0 && arg) {
            /* /proc/PID/exe is gone with the main thread; the program runs on. */
            static double secs;
            secs = atof(arg);
            pthread_t t;
            if (pthread_create(&t, NULL, headless_thread, &secs) != 0)
                return 1;
            pthread_exit(NULL);
        } else if (strcmp(a, "sigsys") == 0 && arg) {
            fflush(stdout);
            try_one(arg);
            emit("%s\"sigsys\":\"survived\"", sections++ ? "," : "");
            i++;
        } else if (strcmp(a, "selfsum") == 0) {
            /* The size and FNV-1a 64 of the program that runs, as the kernel has it. */
            uint64_t sum = 0xcbf29ce484222325u, size = 0;
            unsigned char buf[65536];
            int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
            ssize_t r;
            while (fd >= 0 && (r = read(fd, buf, sizeof buf)) > 0)
                for (ssize_t k = 0; k < r; k++, size++)
                    sum = (sum ^ buf[k]) * 0x100000001b3u;
            if (fd >= 0)
                close(fd);
            emit("%s\"selfsum\":\"%llu %016llx\"", sections++ ? "," : "", (unsigned long long)size,
                 (unsigned long long)sum);
        } else if (strcmp(a, "chain") == 0 && arg) {
            /* A chain of processes N deep, each the parent of the next; the deepest goes on
             * with the actions after this one, and each exits with its child's status. */
            for (int depth = atoi(arg); depth > 0; depth--) {
                pid_t pid = fork();
                if (pid < 0)
                    return 1;
                if (pid > 0) {
                    int st;
                    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                }
            }
            i++;
        } else if (strcmp(a, "fan") == 0 && arg) {
            /* N children that wait to be killed: a tree as large as a chain, one level deep. */
            for (int n = atoi(arg); n > 0; n--) {
                pid_t pid = fork();
                if (pid < 0)
                    return 1;
                if (pid == 0)
                    for (;;)
                        pause();
            }
            i++;
        } else if (strcmp(a, "spawn") == 0 && arg) {
            /* N execs of the probe itself, doing nothing, 20 ms apart: each its own event. */
            for (int n = atoi(arg); n > 0; n--) {
                nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
                pid_t pid = fork();
                if (pid == 0) {
                    execl("/proc/self/exe", "probe", (char *)NULL);
                    _exit(127);
                }
                while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                    ;
            }
            i++;
        } else if (strcmp(a, "unchroot") == 0) {
            mkdir("/.unchroot", 0700);
            int rc = chroot("/.unchroot") == 0 ? 0 : errno;
            for (int k = 0; rc == 0 && k < 64; k++)
                if (chdir("..") < 0)
                    rc = errno;
            if (rc == 0 && chroot(".") < 0)
                rc = errno;
            emit("%s\"unchroot\":%d", sections++ ? "," : "", rc);
        } else if (strcmp(a, "mkdir") == 0 && arg) {
            emit("%s\"mkdir\":%d", sections++ ? "," : "", mkdir(arg, 0755) == 0 ? 0 : errno);
            i++;
        } else if (strcmp(a, "write") == 0 && arg && i + 2 < argc) {
            int fd = open(arg, O_WRONLY | O_CLOEXEC);
            size_t len = strlen(argv[i + 2]);
            int rc = fd >= 0 && write(fd, argv[i + 2], len) == (ssize_t)len ? 0 : errno;
            if (fd >= 0)
                close(fd);
            emit("%s\"write\":%d", sections++ ? "," : "", rc);
            i += 2;
        } else if (strcmp(a, "killrace") == 0 && arg) {
            int held = 0;
            for (int n = atoi(arg); n > 0; n--) {
                pid_t c = fork();
                if (c == 0) {
                    execl("/bin/true", "true", (char *)NULL);
                    _exit(127);
                }
                char path[64], w[128];
                snprintf(path, sizeof path, "/proc/%d/wchan", (int)c);
                for (int tries = 0; c > 0 && tries < 100000; tries++) {
                    int fd = open(path, O_RDONLY | O_CLOEXEC);
                    ssize_t r = fd >= 0 ? read(fd, w, sizeof w - 1) : -1;
                    if (fd >= 0)
                        close(fd);
                    w[r > 0 ? r : 0] = '\0';
                    if (strstr(w, "fanotify") || strstr(w, "fsnotify")) {
                        struct timespec t0, t;
                        clock_gettime(CLOCK_MONOTONIC, &t0);
                        long spin = rand() % 41;
                        do
                            clock_gettime(CLOCK_MONOTONIC, &t);
                        while ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 <
                               spin);
                        kill(c, SIGKILL);
                        held++;
                        break;
                    }
                    if (r <= 0 || waitpid(c, NULL, WNOHANG) == c) {
                        c = -1;
                        break;
                    }
                }
                if (c > 0)
                    while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
                        ;
            }
            emit("%s\"killrace_held\":%d", sections++ ? "," : "", held);
            i++;
        } else if (strcmp(a, "execstorm") == 0 && arg && i + 2 < argc) {
            int n = atoi(arg);
            pthread_t *t = calloc((size_t)n, sizeof *t);
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setstacksize(&at, 64 * 1024);
            storm_argv = argv + i + 2;
            if (t == NULL || n < 1 || pthread_barrier_init(&storm_start, NULL, (unsigned)n) != 0)
                return 1;
            for (int k = 0; k < n; k++)
                if (pthread_create(&t[k], &at, storm_thread, NULL) != 0)
                    return 1;
            for (int k = 0; k < n; k++)
                pthread_join(t[k], NULL);
            emit("%s\"execstorm_eperm\":%d", sections++ ? "," : "", storm_eperm);
            break;
        } else if (strcmp(a, "exec") == 0 && arg) {
            execv(arg, argv + i + 1);
            emit("%s\"exec\":%d", sections++ ? "," : "", errno);
            break;
        } else {
            fprintf(stderr, "probe: unknown action %s\n", a);
            return 2;
        }
    }
    emit("}\n");
    (void)!write(STDOUT_FILENO, out, outlen);
    return 0;
}

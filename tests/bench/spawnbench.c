/* Times two commands against each other: runs each N times, interleaved so that both see the
 * same machine, and prints the medians, the 90th percentiles and the ratio.
 *
 *   spawnbench N NAME_A CMD_A... :: NAME_B CMD_B...
 *
 * Prints "NAME_A vs NAME_B: median A us, B us; ratio A/B R". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double run_once(char **argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    double t0 = now_us();
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        perror(argv[0]);
        exit(1);
    }
    int status;
    waitpid(pid, &status, 0);
    double t = now_us() - t0;
    posix_spawn_file_actions_destroy(&fa);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "spawnbench: %s failed (status %d)\n", argv[0], status);
        exit(1);
    }
    return t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: spawnbench N NAME_A CMD_A... :: NAME_B CMD_B...\n");
        return 2;
    }
    int n = atoi(argv[1]);
    char *name_a = argv[2], **cmd_a = argv + 3, *name_b = NULL, **cmd_b = NULL;
    for (int i = 3; i < argc; i++)
        if (strcmp(argv[i], "::") == 0) {
            argv[i] = NULL;
            name_b = argv[i + 1];
            cmd_b = argv + i + 2;
            break;
        }
    if (n < 1 || cmd_b == NULL || *cmd_b == NULL)
        return 2;
    double *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    for (int i = 0; i < 10; i++) /* warm the page cache */
        run_once(cmd_a), run_once(cmd_b);
    for (int i = 0; i < n; i++) {
        a[i] = run_once(cmd_a);
        b[i] = run_once(cmd_b);
    }
    qsort(a, n, sizeof *a, cmp);
    qsort(b, n, sizeof *b, cmp);
    double ma = a[n / 2], mb = b[n / 2];
    printf("%s vs %s (%d runs each): median %.0f us vs %.0f us, p90 %.0f us vs %.0f us; "
           "ratio %.2f\n",
           name_a, name_b, n, ma, mb, a[n * 9 / 10], b[n * 9 / 10], ma / mb);
    free(a);
    free(b);
    return 0;
}

/* `tether measure`: print the input document a policy would see. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>

#include "../measure/measure.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether measure [OPTION]... [-- COMMAND [ARG]...]\n"
    "   or: tether measure --pid PID\n"
    "Print the input document (JSON) that the policy is given: the host, and with COMMAND,\n"
    "the workload (its environment as variable names only, never values).  Values that\n"
    "cannot be read are null.  With --pid, print a running\n"
    "process's measured confinement instead: one entry of the document's `processes`.\n"
    "\n"
    "      --pid PID        measure the running process PID\n"
    "  -c, --config FILE    node configuration (its labels become host.labels)\n"
    "  -l, --label KEY=VAL  add a workload label; repeatable\n"
    "      --compact        print on one line\n"
    "  -h, --help           show this help\n"
    "\n"
    "Examples:\n"
    "  tether measure\n"
    "  tether measure --label app=web -- nginx -g 'daemon off;' > input.json\n"
    "  tether eval --policy policies/default.lua --input input.json\n";

static int print_json(const cJSON *doc, bool compact)
{
    cleanup_free char *text = compact ? json_print(doc) : cJSON_Print(doc);
    if (text == NULL || printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        log_error("cannot write the document");
        return EXIT_FAILED;
    }
    return 0;
}

int cmd_measure(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"label", required_argument, NULL, 'l'},
        {"compact", no_argument, NULL, 'C'},      {"help", no_argument, NULL, 'h'},
        {"pid", required_argument, NULL, 'P'},    {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL;
    bool compact = false;
    cleanup_json cJSON *labels = cJSON_CreateObject();
    cleanup_error tether_error_t err = NULL;
    int c;
    int64_t pid = 0;
    while ((c = getopt_long(argc, argv, "+c:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'P':
            if (parse_int64(optarg, 1, INT32_MAX, &pid) < 0) {
                log_error("measure: --pid `%s` is not a process id", optarg);
                return EXIT_FAILED;
            }
            break;
        case 'c':
            config_file = optarg;
            break;
        case 'l':
            if (cli_add_label(labels, optarg, &err) < 0) {
                log_error("%s", err->msg);
                return EXIT_FAILED;
            }
            break;
        case 'C':
            compact = true;
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether measure --help' for more information.\n", 1);
        }
    }

    struct config cfg;
    if (config_load(config_file, &cfg, &err) < 0) {
        log_error("%s", err->msg);
        config_clear(&cfg);
        return EXIT_FAILED;
    }

    if (pid != 0) {
        if (optind < argc || labels->child != NULL) {
            log_error("measure: --pid takes no command and no labels");
            config_clear(&cfg);
            return EXIT_FAILED;
        }
        cleanup_json cJSON *proc = NULL;
        if (measure_process_collect((pid_t)pid, &proc, &err) < 0) {
            log_error("measure: %s", err->msg);
            config_clear(&cfg);
            return EXIT_FAILED;
        }
        config_clear(&cfg);
        return print_json(proc, compact);
    }

    cJSON *workload = NULL;
    if (optind < argc) {
        char **cmd = argv + optind;
        cleanup_free char *path = NULL;
        cJSON *exe = NULL;
        cleanup_close int fd = -1;
        cleanup_free char *interp = NULL, *arg = NULL;
        if (measure_exe_resolve(cmd[0], &path, &err) < 0 ||
            measure_exe_collect(path, 0, &exe, &fd, &err) < 0)
            log_warn("%s; workload.exe is null", err->msg);
        else if (measure_interpreter_collect(fd, path, exe, NULL, &interp, &arg, &err) < 0)
            log_warn("%s", err->msg);
        workload = measure_workload_collect(cmd, exe, labels);
    }
    cleanup_json cJSON *doc =
        measure_input_build("launch", measure_host_collect(cfg.labels), workload, NULL, NULL);
    config_clear(&cfg);

    return print_json(doc, compact);
}

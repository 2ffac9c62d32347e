/* `tether audit verify`: check the audit trail's hash chain. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether audit verify [OPTION]... [FILE]\n"
    "Check that no record of the audit trail FILE (default: the configuration's audit.path)\n"
    "was edited, removed, inserted or moved.  Each record carries the hash of the one before\n"
    "it; the first record that breaks the chain is reported by its line number.\n"
    "Exit status: 0 intact, 1 broken, 125 the file could not be read.\n"
    "\n"
    "The chain cannot show records cut from the end: keep the printed head hash elsewhere\n"
    "(a remote log, a ticket) and compare it later.\n"
    "\n"
    "  -c, --config FILE    node configuration\n"
    "  -h, --help           show this help\n";

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL;
    cleanup_error tether_error_t err = NULL;
    int c;
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
            return cli_usage(usage, 0);
        log_error("audit: expected `verify`");
        return cli_usage("Try 'tether audit --help' for more information.\n", 1);
    }
    argc--, argv++;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_file = optarg;
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether audit --help' for more information.\n", 1);
        }
    }
    if (argc - optind > 1)
        return cli_usage("Try 'tether audit --help' for more information.\n", 1);

    struct config cfg;
    if (config_load(config_file, &cfg, &err) < 0) {
        log_error("%s", err->msg);
        config_clear(&cfg);
        return EXIT_FAILED;
    }
    cleanup_free char *path = strdup(optind < argc ? argv[optind] : cfg.audit_path);
    config_clear(&cfg);

    cleanup_file FILE *f = fopen(path, "re");
    if (f == NULL) {
        log_error("audit log `%s`: %s", path, strerror(errno));
        return EXIT_FAILED;
    }
    struct audit_report rep;
    if (audit_verify_stream(f, &rep, &err) < 0) {
        log_error("audit log `%s`: %s", path, err->msg);
        return EXIT_FAILED;
    }
    if (rep.bad_line != 0) {
        printf("%s: line %zu: %s\n", path, rep.bad_line, rep.why);
        return 1;
    }
    printf("%s: intact, %zu records, head %s\n", path, rep.records, rep.head);
    return 0;
}

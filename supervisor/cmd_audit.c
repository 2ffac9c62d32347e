/* `tether audit verify`: check the audit trail's hash chain. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether audit verify [--head [N:]HASH] [OPTION]... [FILE]\n"
    "Check that no record of the audit trail FILE (default: the configuration's audit.path)\n"
    "was edited, removed, inserted or moved.  Each record carries the hash of the one before\n"
    "it; the first record that breaks the chain is reported by its line number.\n"
    "Exit status: 0 intact, 1 broken (or the head is not reached), 125 the file could not be\n"
    "read or HEAD is not a hash.\n"
    "\n"
    "The chain alone cannot show records cut from its end, or a whole file replaced by\n"
    "another chain: keep the printed head elsewhere (a remote log, audit.syslog, a ticket)\n"
    "and give it to --head later.\n"
    "\n"
    "  -c, --config FILE    node configuration\n"
    "      --head [N:]HASH  also check that the trail still reaches the record whose hash is\n"
    "                       HASH (the head printed before, or a record's \"hash\"), and, with\n"
    "                       N, that it is record N: else say whether the tail was cut or the\n"
    "                       file replaced\n"
    "  -h, --help           show this help\n";

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"head", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL, *head_arg = NULL;
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
        case 'H':
            head_arg = optarg;
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether audit --help' for more information.\n", 1);
        }
    }
    if (argc - optind > 1)
        return cli_usage("Try 'tether audit --help' for more information.\n", 1);

    /* --head N:HASH or HASH: 64 lowercase hex digits, as verify prints them. */
    char head[SHA256_HEX_LEN + 1] = "";
    int64_t head_line = 0;
    if (head_arg != NULL) {
        const char *colon = strchr(head_arg, ':');
        const char *hex = colon ? colon + 1 : head_arg;
        cleanup_free char *num = colon ? strndup(head_arg, (size_t)(colon - head_arg)) : NULL;
        if ((colon && parse_int64(num, 1, INT64_MAX, &head_line) < 0) ||
            strlen(hex) != SHA256_HEX_LEN || strspn(hex, "0123456789abcdef") != SHA256_HEX_LEN) {
            log_error("audit verify: --head `%s`: expected [N:]HASH, HASH 64 lowercase hex digits",
                      head_arg);
            return EXIT_FAILED;
        }
        memcpy(head, hex, sizeof head);
    }

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
    if (audit_verify_stream(f, head_arg ? head : NULL, &rep, &err) < 0) {
        log_error("audit log `%s`: %s", path, err->msg);
        return EXIT_FAILED;
    }
    if (rep.bad_line != 0) {
        printf("%s: line %zu: %s\n", path, rep.bad_line, rep.why);
        return 1;
    }
    if (head_arg == NULL) {
        printf("%s: intact, %zu records, head %s\n", path, rep.records, rep.head);
        return 0;
    }
    if (rep.found_line == 0 && head_line == 0) {
        printf("%s: the head %s is not in the trail (%zu records): records were cut from its "
               "end, or the file was replaced\n",
               path, head, rep.records);
        return 1;
    }
    if (rep.found_line == 0 && (size_t)head_line > rep.records) {
        printf("%s: tail cut: the head %s was record %lld, and the trail ends at record %zu\n",
               path, head, (long long)head_line, rep.records);
        return 1;
    }
    if (rep.found_line != (size_t)head_line && head_line != 0) {
        printf("%s: file replaced: record %lld is not the head %s\n", path, (long long)head_line,
               head);
        return 1;
    }
    printf("%s: intact, %zu records, head %s, reaches %s at record %zu\n", path, rep.records,
           rep.head, head, rep.found_line);
    return 0;
}

/* `tether eval`: decide on a given input document, offline, as `opa eval` is used. */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "tether.h"

#define INPUT_MAX_BYTES (16 << 20)

static const char usage[] =
    "Usage: tether eval [OPTION]... --input FILE\n"
    "Evaluate the policy on an input document and print the decision (JSON).\n"
    "Exit status: 0 allow, 77 deny, 125 error.\n"
    "\n"
    "  -i, --input FILE     the input document (`-` for standard input); `tether measure`\n"
    "                       prints one\n"
    "  -p, --policy FILE    the Lua policy (default: the configuration's `policy`, else the\n"
    "                       built-in default)\n"
    "  -o, --opa URL        ask the OPA server at URL instead (default: the configuration's\n"
    "                       opa.url); its other opa settings apply\n"
    "  -c, --config FILE    node configuration\n"
    "      --compact        print on one line\n"
    "  -h, --help           show this help\n"
    "\n"
    "Example:\n"
    "  tether measure -- /usr/bin/true | tether eval --policy policies/geofence.lua --input -\n";

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"opa", required_argument, NULL, 'o'},
        {"policy", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"compact", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *input_file = NULL, *policy_file = NULL, *config_file = NULL, *opa_url = NULL;
    bool compact = false;
    cleanup_error tether_error_t err = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "i:p:c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            input_file = optarg;
            break;
        case 'p':
            policy_file = optarg;
            break;
        case 'o':
            opa_url = optarg;
            break;
        case 'c':
            config_file = optarg;
            break;
        case 'C':
            compact = true;
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether eval --help' for more information.\n", 1);
        }
    }
    if (input_file == NULL || optind < argc) {
        log_error("eval: %s", input_file ? "unexpected arguments" : "--input is required");
        return cli_usage("Try 'tether eval --help' for more information.\n", 1);
    }

    cleanup_free char *text = NULL;
    size_t len = 0;
    int r = strcmp(input_file, "-") == 0
                ? read_fd(STDIN_FILENO, INPUT_MAX_BYTES, &text, &len, &err)
                : read_file(input_file, INPUT_MAX_BYTES, &text, &len, &err);
    cleanup_json cJSON *input = NULL;
    if (r < 0 || json_parse(text, len, &input, &err) < 0) {
        log_error("input `%s`: %s", input_file, err->msg);
        return EXIT_FAILED;
    }
    if (!cJSON_IsObject(input)) {
        log_error("input `%s`: must be a JSON object, not %s", input_file, json_type_name(input));
        return EXIT_FAILED;
    }

    struct config cfg;
    cleanup_policy struct policy *policy = NULL;
    if (config_load(config_file, &cfg, &err) < 0 ||
        engine_open(&cfg, policy_file, opa_url, &policy, &err) < 0) {
        log_error("%s", err->msg);
        config_clear(&cfg);
        return EXIT_FAILED;
    }
    config_clear(&cfg);

    struct decision d = {.ttl_s = -1};
    policy_decide(policy, input, &d);
    cleanup_json cJSON *out = decision_to_json(&d);
    cleanup_free char *printed = compact ? json_print(out) : cJSON_Print(out);
    int rc = d.allow ? 0 : EXIT_DENIED;
    decision_clear(&d);
    if (printf("%s\n", printed) < 0 || fflush(stdout) != 0) {
        log_error("cannot write the decision");
        return EXIT_FAILED;
    }
    return rc;
}

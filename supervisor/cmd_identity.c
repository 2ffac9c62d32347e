/* `tether identity jwks`: the node's identity key as a JWK Set (RFC 7517), for whoever
 * verifies the tokens tether hands to workloads (OPA's io.jwt.decode_verify, Vault's JWT
 * auth, openssl). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/cleanup.h"
#include "core/log.h"
#include "core/util.h"
#include "identity/jwt.h"
#include "key.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether identity jwks [--config FILE]\n"
    "Print the node's identity key (the public half of <keystore>/<identity.key>.pem, an EC\n"
    "P-256 key) as a JWK Set: what verifies the identity tokens that a decision's `identity`\n"
    "block asks tether to sign for a workload (ES256, `kid` the key's RFC 7638 thumbprint).\n"
    "\n"
    "  -c, --config FILE    node configuration (default: $TETHER_CONFIG, else\n"
    "                       " CONFIG_DEFAULT_PATH ")\n"
    "  -h, --help           show this help\n"
    "\n"
    "Exit status: 0, or 125 when the key cannot be read.  See tether(1), IDENTITY.\n";

int cmd_identity(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (c == 'c')
            config_file = optarg;
        else if (c == 'h')
            return cli_usage(usage, 0);
        else
            return cli_usage("Try 'tether identity --help' for more information.\n", 1);
    }
    if (optind >= argc || strcmp(argv[optind], "jwks") != 0 || optind + 1 != argc) {
        log_error("identity: the one command is `tether identity jwks`");
        return cli_usage("Try 'tether identity --help' for more information.\n", 1);
    }
    cleanup_error tether_error_t err = NULL;
    struct config cfg;
    if (config_load(config_file, &cfg, &err) < 0) {
        log_error("identity: %s", err->msg);
        return EXIT_FAILED;
    }
    int rc = EXIT_FAILED;
    cleanup_secret struct secret *pem = NULL;
    void *key = NULL;
    if (cfg.identity.key == NULL)
        log_error("identity: the node configuration names no `identity.key`");
    else if (keystore_read(cfg.keystore, cfg.identity.key, ".pem", 1, 64u << 10, &pem, &err) < 0 ||
             jwt_key_parse(pem, &key, &err) < 0)
        log_error("identity: `identity.key`: %s", err->msg);
    else {
        cleanup_json cJSON *set = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(set, "keys"), jwt_jwk(key));
        cleanup_free char *text = cJSON_Print(set);
        rc = printf("%s\n", text) < 0 || fflush(stdout) != 0 ? EXIT_FAILED : 0;
    }
    jwt_key_free(key);
    config_clear(&cfg);
    return rc;
}

/* The tether binary: exit codes, verbs, and the helpers the verbs share. */
#pragma once

#include <cjson/cJSON.h>

#include "../policy/policy.h"
#include "config.h"
#include "core/error.h"

/* Exit codes of `tether run` (DESIGN.md); env(1) and timeout(1) use 125-127 alike. */
#define EXIT_DENIED 77
#define EXIT_FAILED 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

int cmd_run(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_hook(int argc, char **argv);
int cmd_keyprovider(int argc, char **argv);
int cmd_identity(int argc, char **argv);

/* Adds "key=value" to a labels object; a repeated key is an error. */
int cli_add_label(cJSON *labels, const char *kv, tether_error_t *err);
/* Prints a verb's help to stdout and returns 0, or to stderr as a usage error and returns
 * EXIT_FAILED. */
int cli_usage(const char *text, int is_error);

/* The policy engine this node uses: --opa URL or --policy FILE, else the configuration's
 * opa.url or policy, else the built-in default Lua policy. */
int engine_open(const struct config *cfg, const char *policy_file, const char *opa_url,
                struct policy **out, tether_error_t *err);

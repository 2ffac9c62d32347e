/* tether: a policy-bound workload supervisor.  This file dispatches to the verbs. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "../measure/measure.h"
#include "core/log.h"
#include "launch.h"
#include "tether.h"

static const struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} verbs[] = {
    {"run", cmd_run, "measure, decide, and run a command only if the policy allows"},
    {"measure", cmd_measure, "print the input document, or a process's confinement (--pid)"},
    {"eval", cmd_eval, "decide on an input document, offline"},
    {"audit", cmd_audit, "verify the audit trail (`tether audit verify`)"},
    {"status", cmd_status, "list supervised workloads and containers; --denied, --prometheus"},
    {"seal", cmd_seal, "encrypt an executable or a root file system into a sealed workload"},
    {"inspect", cmd_inspect, "print a sealed workload's header"},
    {"hook", cmd_hook, "gate containers as an OCI runtime hook (hooks.d)"},
    {"keyprovider", cmd_keyprovider, "answer an ocicrypt keyprovider request, gated by policy"},
    {"identity", cmd_identity, "print the node's identity key as a JWK Set (`identity jwks`)"},
    {NULL, NULL, NULL},
};

static int usage(FILE *out)
{
    fprintf(out, "Usage: tether VERB [OPTION]... [ARG]...\n"
                 "Decide with evidence whether a workload may run on this host, start it only\n"
                 "then, and stay its parent.\n\nVerbs:\n");
    for (const struct verb *v = verbs; v->name; v++)
        fprintf(out, "  %-11s %s\n", v->name, v->summary);
    fprintf(out, "\n'tether VERB --help' describes a verb.  `tether run` exits 77 when the policy\n"
                 "denies, 125 when tether fails, 126/127 when the command cannot be executed or\n"
                 "found, and with the command's own status otherwise.\n"
                 "Environment: TETHER_CONFIG (configuration file), TETHER_LOG (error, warn,\n"
                 "info, debug).  See tether(1).\n");
    return out == stdout ? 0 : EXIT_FAILED;
}

int main(int argc, char **argv)
{
    /* Non-dumpable for its whole life: no core file, and /proc/PID/mem, environ and fd of
     * tether (keys, tokens, decisions) are closed to every process of its uid that lacks
     * CAP_SYS_PTRACE.  Its children inherit this until they exec. */
    prctl(PR_SET_DUMPABLE, 0);
    launch_ignore_sigxfsz();
    log_init();
    if (argc < 2)
        return usage(stderr);
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0)
        return usage(stdout);
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("tether %s\n", TETHER_VERSION);
        return 0;
    }
    for (const struct verb *v = verbs; v->name; v++)
        if (strcmp(name, v->name) == 0)
            return v->run(argc - 1, argv + 1);
    log_error("unknown verb `%s`", name);
    return usage(stderr);
}

/* `tether run`: measure, decide, and start the workload only on allow, staying its parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../measure/measure.h"
#include "audit.h"
#include "core/cleanup.h"
#include "core/libseccomp.h"
#include "core/log.h"
#include "core/util.h"
#include "launch.h"
#include "monitor.h"
#include "run.h"
#include "status.h"
#include "tether.h"

static const char usage[] =
    "Usage: tether run [OPTION]... [--] COMMAND [ARG]...\n"
    "  or:  tether run [OPTION]... --image oci:DIR[:REF] [-- ARG...]\n"
    "Measure COMMAND and this host, ask the policy, and run COMMAND only if it allows.\n"
    "tether stays COMMAND's parent: it forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,\n"
    "SIGUSR2 and SIGWINCH to it, reaps orphaned descendants, and exits with its status.\n"
    "\n"
    "  -p, --policy FILE    decide with this Lua policy (default: the configuration's\n"
    "                       `policy`, else the built-in default policy)\n"
    "  -o, --opa URL        ask the OPA server at URL instead (default: the configuration's\n"
    "                       opa.url); https://, http:// to loopback only, or unix:///path\n"
    "  -c, --config FILE    node configuration (default: $TETHER_CONFIG, else\n"
    "                       " CONFIG_DEFAULT_PATH ")\n"
    "  -l, --label KEY=VAL  add a workload label (input.workload.labels); repeatable\n"
    "  -a, --audit FILE     append audit records to FILE (default: the configuration's\n"
    "                       audit.path, else " AUDIT_DEFAULT_PATH ")\n"
    "  -b, --bundle DIR     COMMAND starts the OCI bundle DIR (runc run -b DIR ID, crun):\n"
    "                       its config.json is measured as the input's `container`\n"
    "  -i, --image oci:DIR[:REF]  run the OCI image in the layout DIR (as `skopeo copy\n"
    "                       ... oci:DIR:REF` writes it), plain or ocicrypt-encrypted (JWE,\n"
    "                       or provider:tether packets): every blob checked against its\n"
    "                       digest, measured as input.image, asked of the node's policy\n"
    "                       and then of the image's own (annotation org.tether.policy),\n"
    "                       its key released only when both allow and the decision names\n"
    "                       it (key.id: <keystore>/ID.pem, or ID.key for provider packets),\n"
    "                       its layers decrypted and unpacked into a tmpfs only; runs\n"
    "                       Entrypoint+Cmd (Entrypoint+ARGs when given) with its Env,\n"
    "                       WorkingDir, User\n"
    "  -h, --help           show this help\n"
    "\n"
    "On allow, the decision's `confine` block (capabilities, user, no_new_privs, seccomp,\n"
    "namespaces, rlimits, env) is applied in the child before exec, seccomp last; without\n"
    "one, no_new_privs is set and core dumps are off.  Any failure there is exit status 125.\n"
    "With a `monitor` block or a `ttl_s`, tether stays resident: it re-measures and asks\n"
    "again on events and timers, and acts on drift as the block says (see tether(1)).\n"
    "Such a workload runs under an init in a pid namespace of its own that dies with\n"
    "tether: killing tether kills the whole tree, and when the main process exits the\n"
    "rest is ended (monitor.on_main_exit \"supervise\" keeps it, for forking daemons).\n"
    "A root workload without confine.capabilities keeps podman's default set.\n"
    "A sealed workload (tether seal) runs as `tether run [OPTION]... FILE [-- ARG]...`.\n"
    "\n"
    "As root, every file that decides (configuration, policy, trusted signers, key store,\n"
    "bundle and config.json, audit file, status directory) must be root's and writable by\n"
    "nobody else, and so must each directory above it; otherwise it is refused by name\n"
    "(125).  A tether that is not root also accepts its own user's files.\n"
    "\n"
    "COMMAND is found through PATH as execvp(3) finds it.  It is executed through the\n"
    "descriptor that was measured, so the bytes hashed are the bytes run: a script as its\n"
    "measured interpreter with the script as /dev/fd/N, a file that others than root may\n"
    "write from a private copy in memory.  Only a file tether cannot read runs by path.\n"
    "\n"
    "Exit status:\n"
    "  77   the policy denied the workload (nothing was started)\n"
    "  125  tether failed before the workload started\n"
    "  126  COMMAND was found but could not be executed\n"
    "  127  COMMAND was not found\n"
    "  78   a monitored workload drifted and was killed (monitor.on_drift \"kill\")\n"
    "  79   it drifted again after the last allowed restart (\"restart\")\n"
    "  N    otherwise COMMAND's own status, or 128+N when signal N ended it\n"
    "\n"
    "Examples:\n"
    "  tether run -- /usr/bin/uptime\n"
    "  tether run --bundle /srv/web -- runc run -b /srv/web web1\n"
    "  tether run --policy policies/geofence.lua --label app=billing -- ./billing-batch\n";

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"label", required_argument, NULL, 'l'},
        {"audit", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"opa", required_argument, NULL, 'o'},
        {"bundle", required_argument, NULL, 'b'},
        {"image", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    struct run r;
    run_init(&r);
    cleanup_json cJSON *labels = cJSON_CreateObject();
    cleanup_error tether_error_t err = NULL;
    r.labels = labels;

    int c;
    while ((c = getopt_long(argc, argv, "+p:c:l:a:o:b:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            r.policy_file = optarg;
            break;
        case 'c':
            r.config_file = optarg;
            break;
        case 'o':
            r.opa_url = optarg;
            break;
        case 'b':
            r.bundle = optarg;
            break;
        case 'i':
            r.image_name = optarg;
            break;
        case 'a':
            r.audit_file = optarg;
            break;
        case 'l':
            if (cli_add_label(labels, optarg, &err) < 0) {
                log_error("%s", err->msg);
                return EXIT_FAILED;
            }
            break;
        case 'h':
            return cli_usage(usage, 0);
        default:
            return cli_usage("Try 'tether run --help' for more information.\n", 1);
        }
    }
    if (r.image_name != NULL && r.bundle != NULL) {
        log_error("run: --image and --bundle exclude each other");
        return cli_usage("Try 'tether run --help' for more information.\n", 1);
    }
    if (r.image_name == NULL && optind >= argc) {
        log_error("run: no command given");
        return cli_usage("Try 'tether run --help' for more information.\n", 1);
    }
    r.cmd = argv + optind;
    r.argc_left = argc - optind;
    char *image_word[] = {(char *)r.image_name, NULL}; /* argv0 in records until it is known */
    if (r.image_name != NULL) {
        r.image_args = argv + optind;
        r.cmd = image_word;
    }

    /* Every workload is confined: without libseccomp, stop before anything is measured,
     * decided or released (core/libseccomp.h). */
    if (libseccomp_load(&err) < 0) {
        log_error("%s; not starting the workload", err->msg);
        run_release(&r);
        return EXIT_FAILED;
    }
    status_sweep();
    int rc = run_load(&r);
    if (rc == 0)
        rc = run_gate(&r);
    if (rc == 0 && r.monitored) {
        bool started;
        rc = monitor_run(&r, &started);
        if (started)
            run_audit_exit(&r, rc);
    } else if (rc == 0 && (rc = run_start(&r)) == 0) {
        status_write(&r, "running", 1, 0);
        /* Nothing more to ask: the engine is not kept while the workload runs. */
        policy_free(steal_pointer(&r.policy));
        rc = supervise_wait(&r.sv);
        status_remove();
        run_audit_exit(&r, rc);
    }
    run_release(&r);
    return rc;
}

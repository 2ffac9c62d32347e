/* The gated launch that `tether run` performs, in steps the monitor can repeat: load the
 * engine, measure, decide and record, start; and the state a supervised run carries. */
#pragma once

#include <linux/capability.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "../policy/policy.h"
#include "cgroup.h"
#include "config.h"
#include "creds.h"
#include "launch.h"

struct run_image;

struct run {
    /* what was asked */
    char **cmd;
    int argc_left; /* entries in cmd, for rearranging it */
    cJSON *labels;
    const char *policy_file, *opa_url, *config_file, *audit_file;
    const char *bundle;     /* --bundle: measured as the input's container section */
    const char *image_name; /* --image oci:DIR[:REF] */
    char **image_args;      /* the ARGS that replace the image's Cmd, or NULL */
    char **image_argv;      /* what the image runs: kept from one launch to the next */

    /* the node */
    struct config cfg;
    char *audit_path; /* fixed at start: a reloaded configuration does not move the trail */
    struct stat config_st, policy_st; /* the files as they were when read (st_ino 0: none) */
    struct policy *policy;

    /* the current launch */
    struct decision d;
    char *path;                     /* the executable, as resolved */
    int interp_fd;                  /* a script's interpreter, measured, or -1 */
    char *interp_path, *interp_arg; /* its #! line */
    int exe_fd;                     /* the measured file */
    char exe_sha[65];               /* its sha256 at launch, or "" */
    char sealed_identity[65];       /* a sealed file's seal_identity at launch, or "" */
    cJSON *workload;                /* the workload section measured at launch */
    struct supervisor sv;
    struct cgroup cg;
    bool monitored;          /* the decision has a monitor block or a ttl */
    bool sealed;             /* exe_fd is the decrypted workload: memory only, read-only */
    char *entrypoint;        /* a sealed root file system: what to start in it */
    char *rootfs_dir;        /* its (empty) mount point on the host */
    uint64_t rootfs_cap;     /* the size of its tmpfs */
    struct run_image *image; /* --image: the verified image, its tree and environment */
    char decision_hash[65];  /* the launch decision's audit record, or "" */
    struct creds creds;      /* the identity token and secrets handed to the workload */
};

void run_init(struct run *r);
void run_release(struct run *r);

/* Reads the configuration and opens the engine: 0, or the exit status (125). */
int run_load(struct run *r);
/* Measures, decides and records the decision (fail_open included): 0 when the workload may
 * start, else the exit status (77, 125, 126, 127). */
int run_gate(struct run *r);
/* The decision asks for exec prevention (monitor.prevent_exec). */
bool prevent_exec(const struct decision *d);
/* Capabilities that reach a program no mark of exec prevention holds (run_start): a
 * prevented workload, or container, granted one does not start. */
#define PAST_THE_MARKS                                                                             \
    ((UINT64_C(1) << CAP_SYS_ADMIN) | (UINT64_C(1) << CAP_SYS_PTRACE) |                            \
     (UINT64_C(1) << CAP_CHECKPOINT_RESTORE) | (UINT64_C(1) << CAP_SYS_MODULE) |                   \
     (UINT64_C(1) << CAP_SYS_RAWIO) | (UINT64_C(1) << CAP_SYS_BOOT) | (UINT64_C(1) << CAP_MKNOD))
#define PAST_THE_MARKS_NAMES                                                                       \
    "CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_CHECKPOINT_RESTORE, CAP_SYS_MODULE, CAP_SYS_RAWIO, "       \
    "CAP_SYS_BOOT or CAP_MKNOD"
/* Confines and starts the workload under r->sv: 0, or the exit status. */
int run_start(struct run *r);
/* The input document of the monitor phase, without processes (the monitor adds them). */
cJSON *run_measure_monitor(struct run *r);
/* Records the workload's end. */
void run_audit_exit(struct run *r, int status);
/* Audits a decision of the gate; false (after saying why) when it could not be written. */
bool run_audit_decision(struct run *r, struct policy *p, const struct decision *d,
                        const cJSON *input);
/* The policy a workload carries (a sealed file's, an image's), after the node's allowed:
 * the same input, the node's budgets, audited; 0 when it allows too, else the exit status
 * (77, or 125 when it does not load).  what names the workload in messages. */
int run_decide_embedded(struct run *r, const char *what, const char *text, size_t len,
                        const char *sha_hex, const cJSON *input);
/* Records an allowed launch that did not happen. */
void run_audit_launch_failed(struct run *r, const char *why);

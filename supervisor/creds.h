/* Credentials for an attested workload: the identity token (a JWT the node signs over the
 * workload's measurements) and the secrets a decision releases, delivered as files in a
 * tmpfs mounted in the workload's own mount namespace, which the host's never sees.  The
 * workload finds them through $TETHER_IDENTITY and $TETHER_SECRETS; tether keeps the
 * directory's descriptor to renew the token and to remove everything on drift and at the end.
 *
 *   /run/tether-creds/                  root's, 0555: the workload reads, changes nothing
 *   /run/tether-creds/identity          the token, mode 0400, the workload's user's
 *   /run/tether-creds/secrets/<name>    each secret, mode 0400, the workload's user's */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../policy/policy.h"
#include "core/error.h"

#define CREDS_ENV_IDENTITY "TETHER_IDENTITY"
#define CREDS_ENV_SECRETS "TETHER_SECRETS"
/* Where the workload finds them, in its own mount namespace, whatever its root: the host's
 * /run/tether-creds stays an empty directory. */
#define CREDS_DIR "/run/tether-creds"

struct run;

struct creds {
    int dir_fd;       /* the tmpfs in the workload's mount namespace, or -1 */
    char *dir;        /* where the workload sees it */
    void *key;        /* the node's identity key (EVP_PKEY), or NULL */
    char *audience;   /* the token asked for, or NULL: none */
    char *subject;    /* as asked, or NULL: the SPIFFE-style default */
    int64_t ttl_s;    /* of each token */
    int64_t issued;   /* when the current token was signed (time(2)), or 0 */
    bool has_secrets; /* the decision released some */
    /* a container gated by the hook: its id, and its image as root's sources name it */
    char *container_id, *container_image, *container_digest;
    uid_t container_uid; /* its process.user: the files' owner */
    gid_t container_gid;
};

/* Whether the decision asks for a token or secrets. */
bool creds_wanted(const struct decision *d);
/* Before the launch, once the decision allowed: checks what the credentials need (root, the
 * identity key, no container runtime).  0, or -1 with err. */
int creds_prepare(struct run *r, tether_error_t *err);
/* For a container the hook allows (createRuntime): a tmpfs on <root>/run/tether-creds in the
 * mount namespace of its init, before the runtime pivots into the root, then creds_fill.
 * input is the hook's (input.container: root, process.user, namespaces, image).  The
 * container finds the files at CREDS_DIR: a hook cannot change its environment. */
int creds_container(struct run *r, const cJSON *input, pid_t init, tether_error_t *err);
/* In tether, as the child hands over its tmpfs (launch_spec.creds_fill): writes the token and
 * the secrets, each audited (identity_issued, secret_release; never a value). */
int creds_fill(void *run, int dir_fd, tether_error_t *err);
/* A new token in place of the old (written aside, then renamed over it), from input: the
 * monitor's fresh measurement, after an allow. */
int creds_renew(struct run *r, const cJSON *input, tether_error_t *err);
/* Seconds until the token should be renewed (two thirds of its life), or -1: no token. */
int64_t creds_renew_in(const struct run *r);
/* Empties and removes every file (a descriptor the workload holds then reads nothing), and
 * audits it with why; the directory's descriptor is closed. */
void creds_wipe(struct run *r, const char *why);
void creds_clear(struct creds *c);

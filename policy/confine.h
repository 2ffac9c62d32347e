/* The decision's confine block (DESIGN.md, "Decision"), validated and resolved: capability
 * names to numbers, system call names to numbers for this architecture.  Applying it is the
 * supervisor's business (supervisor/confine.c). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

enum confine_seccomp {
    CONFINE_SECCOMP_NONE,
    CONFINE_SECCOMP_DEFAULT,
    CONFINE_SECCOMP_UNCONFINED,
    CONFINE_SECCOMP_CUSTOM
};

enum confine_action { CONFINE_ACT_ALLOW, CONFINE_ACT_ERRNO, CONFINE_ACT_KILL, CONFINE_ACT_LOG };

struct confine_rule {
    int nr;
    enum confine_action action;
};

enum confine_rlimit_id { RL_NOFILE, RL_NPROC, RL_AS, RL_CPU, RL_FSIZE, RL_CORE, RL_COUNT };

struct confine_rlimit {
    bool set;
    uint64_t soft, hard; /* UINT64_MAX is unlimited */
};

/* The most names confine.env may list in `allow`, and the most variables it may `set`. */
#define CONFINE_ENV_MAX 256

struct confine {
    bool given;      /* the decision had a confine block */
    bool caps_given; /* "capabilities" was listed: keep these, drop the rest */
    uint64_t caps;   /* bit n: capability n */
    bool no_new_privs;
    bool user_given;
    uint32_t uid, gid;
    enum confine_seccomp seccomp;
    enum confine_action seccomp_default; /* custom filters */
    struct confine_rule *rules;
    size_t n_rules;
    unsigned long namespaces; /* CLONE_NEW* flags */
    struct confine_rlimit rlimits[RL_COUNT];
    bool env_given;   /* the block had "env": the workload's environment is rebuilt */
    bool env_clear;   /* start from nothing but the names in env_allow */
    char **env_allow; /* names kept from tether's environment, with env_clear */
    size_t n_env_allow;
    char **env_set; /* "NAME=VALUE" entries set over the rest */
    size_t n_env_set;
};

extern const char *const confine_rlimit_names[RL_COUNT];

/* Fills c (whatever it held is overwritten, not freed) from a confine block, or from NULL: no
 * block at all, which means no_new_privs on and core dumps off, nothing else.  Returns NULL, or the
 * reason the block is invalid, naming the field and the unknown names (free it). */
char *confine_parse(const cJSON *block, struct confine *c);
void confine_clear(struct confine *c);

/* "net_bind_service" or "CAP_NET_BIND_SERVICE" (any case): the number, or -1. */
int confine_cap_from_name(const char *name);

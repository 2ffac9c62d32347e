/* Confinement of the workload (see confine.h).  The order of the irreversible steps is
 * minijail's: the bounding set while we still hold CAP_SETPCAP, the user with KEEPCAPS so
 * kept capabilities survive the switch, the capability sets, ambient capabilities for a
 * non-root workload, no_new_privs, and seccomp last so that the filter does not constrain
 * tether's own set-up. */
#define _GNU_SOURCE
#include "confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/libseccomp.h"
#include "core/log.h"
#include "core/util.h"

/* The "default" filter allows everything but these, which fail with EPERM.  doc/seccomp.md
 * compares it with the default profiles of Docker and podman. */
const char *const confine_default_denied[] = {
    /* loading kernel code, or another kernel */
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "bpf",
    /* observing and steering other processes */
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "perf_event_open",
    "lookup_dcookie",
    /* mounts, file systems, swap, quotas, accounting */
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "swapon",
    "swapoff",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "acct",
    "sysfs",
    "_sysctl",
    "uselib",
    "ustat",
    /* the system clock */
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    /* the kernel keyring, which is not namespaced */
    "add_key",
    "request_key",
    "keyctl",
    /* namespaces (clone with CLONE_NEW* flags is filtered by argument) */
    "unshare",
    "setns",
    /* known kernel attack surface */
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "modify_ldt",
    "vm86",
    "vm86old",
    /* raw I/O ports, the kernel log, the terminal */
    "iopl",
    "ioperm",
    "syslog",
    "vhangup",
    NULL,
};

static const unsigned long clone_ns_flags[] = {CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
                                               CLONE_NEWPID,   CLONE_NEWNET, CLONE_NEWUSER,
                                               CLONE_NEWCGROUP};

static uint32_t scmp_action(enum confine_action a)
{
    switch (a) {
    case CONFINE_ACT_ALLOW:
        return SCMP_ACT_ALLOW;
    case CONFINE_ACT_ERRNO:
        return SCMP_ACT_ERRNO(EPERM);
    case CONFINE_ACT_KILL:
        return SCMP_ACT_KILL_PROCESS;
    case CONFINE_ACT_LOG:
        return SCMP_ACT_LOG;
    }
    return SCMP_ACT_KILL_PROCESS;
}

static int default_rules(scmp_filter_ctx ctx, tether_error_t *err)
{
    for (const char *const *name = confine_default_denied; *name; name++) {
        int nr = sym_seccomp_syscall_resolve_name(*name);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not a system call of this architecture */
        int r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        if (r < 0)
            return error_set(err, -r, "seccomp: rule for `%s`", *name);
    }
    /* clone(2) that would create a namespace; clone3(2) passes its flags in memory a filter
     * cannot read, so it answers ENOSYS and the C library falls back to clone(2). */
    for (size_t i = 0; i < sizeof clone_ns_flags / sizeof clone_ns_flags[0]; i++) {
        int r =
            sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
        if (r < 0)
            return error_set(err, -r, "seccomp: rule for `clone`");
    }
    /* AF_VSOCK (40) reaches the hypervisor's side of a virtual machine. */
    int r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                                 SCMP_A0(SCMP_CMP_EQ, 40, 0));
    if (r < 0)
        return error_set(err, -r, "seccomp: rule for `socket`");
    int nr = sym_seccomp_syscall_resolve_name("clone3");
    if (nr != __NR_SCMP_ERROR && nr >= 0) {
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
        if (r < 0)
            return error_set(err, -r, "seccomp: rule for `clone3`");
    }
    return 0;
}

int confine_prepare(const struct confine *c, struct confine_plan *plan, tether_error_t *err)
{
    plan->filter = NULL;
    /* Whatever the block asks: the child's filters, this one and the exec gate's, are
     * loaded after it has left tether's root, with what tether loads here. */
    if (libseccomp_load(err) < 0)
        return -1;
    if (c->seccomp != CONFINE_SECCOMP_DEFAULT && c->seccomp != CONFINE_SECCOMP_CUSTOM)
        return 0;
    uint32_t def =
        c->seccomp == CONFINE_SECCOMP_DEFAULT ? SCMP_ACT_ALLOW : scmp_action(c->seccomp_default);
    scmp_filter_ctx ctx = sym_seccomp_init(def);
    if (ctx == NULL)
        return error_set(err, 0, "seccomp: cannot create a filter");
    /* Native architecture only: a system call made through another ABI kills. */
    int r = sym_seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    /* no_new_privs is set by confine_apply as the decision says, not by libseccomp. */
    if (r == 0)
        r = sym_seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    /* A binary tree of system call numbers: each of the workload's calls is checked in a
     * few comparisons rather than down a list of all the rules. */
    if (r == 0)
        r = sym_seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    /* The kernel's own errno when loading fails (EACCES, ...), not libseccomp's ECANCELED. */
    if (r == 0)
        r = sym_seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
    if (r < 0) {
        sym_seccomp_release(ctx);
        return error_set(err, -r, "seccomp: filter attributes");
    }
    if (c->seccomp == CONFINE_SECCOMP_DEFAULT) {
        if (default_rules(ctx, err) < 0) {
            sym_seccomp_release(ctx);
            return -1;
        }
    } else {
        for (size_t i = 0; i < c->n_rules; i++) {
            uint32_t act = scmp_action(c->rules[i].action);
            if (act == def)
                continue; /* libseccomp refuses a rule that repeats the default */
            r = sym_seccomp_rule_add(ctx, act, c->rules[i].nr, 0);
            if (r < 0) {
                char *name = sym_seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, c->rules[i].nr);
                error_set(err, -r, "seccomp: rule for `%s`", name ? name : "?");
                free(name);
                sym_seccomp_release(ctx);
                return -1;
            }
        }
    }
    plan->filter = ctx;
    return 0;
}

void confine_plan_release(struct confine_plan *plan)
{
    if (plan->filter != NULL)
        sym_seccomp_release(plan->filter);
    plan->filter = NULL;
}

int confine_enter_parent(const struct confine *c, int *restore_fd, tether_error_t *err)
{
    *restore_fd = -1;
    if (!(c->namespaces & CLONE_NEWPID))
        return 0;
    /* unshare(CLONE_NEWPID) puts the caller's next child, not the caller, in a new pid
     * namespace: the workload is its PID 1 and tether stays outside as its parent. */
    int fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, errno, "confine: namespaces: pid: /proc/self/ns/pid");
    if (unshare(CLONE_NEWPID) < 0) {
        int e = errno;
        close(fd);
        return error_set(err, e, "confine: namespaces: pid");
    }
    *restore_fd = fd;
    return 0;
}

void confine_leave_parent(int restore_fd)
{
    if (restore_fd < 0)
        return;
    /* Back to our own namespace for children to come (a restart, a helper): once the
     * workload, its init, is gone, its namespace takes no new processes. */
    if (setns(restore_fd, CLONE_NEWPID) < 0)
        log_warn("cannot return to tether's own pid namespace: %s", strerror(errno));
    close(restore_fd);
}

static int loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

static const int rlimit_resource[RL_COUNT] = {
    [RL_NOFILE] = RLIMIT_NOFILE, [RL_NPROC] = RLIMIT_NPROC, [RL_AS] = RLIMIT_AS,
    [RL_CPU] = RLIMIT_CPU,       [RL_FSIZE] = RLIMIT_FSIZE, [RL_CORE] = RLIMIT_CORE,
};

static bool have_any_permitted(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2] = {{0}};
    if (syscall(SYS_capget, &h, d) < 0)
        return true;
    return d[0].permitted != 0 || d[1].permitted != 0;
}

static int drop_bounding(const struct confine *c, const char **step)
{
    *step = "capability bounding set";
    for (int cap = 0; cap < 64; cap++) {
        if (c->caps & (UINT64_C(1) << cap))
            continue;
        /* 1 in the set, 0 not, and EINVAL past the kernel's last capability. */
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            /* Without CAP_SETPCAP the set cannot shrink.  It then holds nothing back either:
             * a process with no permitted capabilities under no_new_privs gains none on
             * exec, whatever the bounding set says. */
            if (errno == EPERM && !have_any_permitted() && c->no_new_privs)
                return 0;
            return -1;
        }
    }
    return 0;
}

static int set_caps(const struct confine *c, bool non_root, const char **step)
{
    *step = "capabilities";
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    for (int i = 0; i < 2; i++) {
        uint32_t set = (uint32_t)(c->caps >> (32 * i));
        d[i] =
            (struct __user_cap_data_struct){.effective = set, .permitted = set, .inheritable = set};
    }
    if (syscall(SYS_capset, &h, d) < 0)
        return -1;

    /* A non-root workload keeps its capabilities across exec only as ambient ones. */
    *step = "ambient capabilities";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return -1;
    if (!non_root)
        return 0;
    for (int cap = 0; cap < 64; cap++)
        if ((c->caps & (UINT64_C(1) << cap)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return -1;
    return 0;
}

int confine_apply(const struct confine *c, const struct confine_plan *plan, const char **step)
{
    unsigned long ns = c->namespaces & ~(unsigned long)CLONE_NEWPID;
    *step = "namespaces";
    if (ns != 0 && unshare((int)ns) < 0)
        return -1;
    if (c->namespaces & CLONE_NEWNS) {
        *step = "mount propagation";
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            return -1;
        if (c->namespaces & CLONE_NEWPID) {
            *step = "mounting /proc";
            if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -1;
        }
    }
    if (c->namespaces & CLONE_NEWNET) {
        *step = "loopback interface";
        if (loopback_up() < 0)
            return -1;
    }

    if (plan->after_mounts != NULL && plan->after_mounts(plan->after_arg, step) < 0)
        return -1;

    *step = "rlimits";
    for (int i = 0; i < RL_COUNT; i++) {
        if (!c->rlimits[i].set)
            continue;
        struct rlimit rl = {
            .rlim_cur = c->rlimits[i].soft == UINT64_MAX ? RLIM_INFINITY : c->rlimits[i].soft,
            .rlim_max = c->rlimits[i].hard == UINT64_MAX ? RLIM_INFINITY : c->rlimits[i].hard,
        };
        if (setrlimit(rlimit_resource[i], &rl) < 0)
            return -1;
    }

    if (c->caps_given && drop_bounding(c, step) < 0)
        return -1;

    uid_t uid = c->user_given ? c->uid : getuid();
    if (c->user_given) {
        *step = "user";
        if (c->caps_given && c->caps != 0 && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            return -1;
        if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
            setresuid(c->uid, c->uid, c->uid) < 0)
            return -1;
    }

    if (c->caps_given && set_caps(c, uid != 0, step) < 0)
        return -1;

    if (plan->pdeath_signal != 0) {
        *step = "parent-death signal";
        pid_t parent = getppid(); /* 0 in a pid namespace of its own: the parent is outside */
        if (prctl(PR_SET_PDEATHSIG, plan->pdeath_signal) < 0)
            return -1;
        if (parent != plan->parent && parent != 0) {
            errno = ESRCH; /* it died before the signal was set */
            return -1;
        }
    }

    if (c->no_new_privs) {
        *step = "no_new_privs";
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return -1;
    }

    if (plan->filter != NULL) {
        *step = "seccomp";
        int r = sym_seccomp_load(plan->filter);
        if (r < 0) {
            errno = -r;
            return -1;
        }
    }
    return 0;
}

struct env_entry {
    const char *s;
    size_t len; /* of the name */
    size_t idx; /* in envp: the first of a name wins */
};

static int env_entry_cmp(const void *a, const void *b)
{
    const struct env_entry *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c == 0)
        c = (x->len > y->len) - (x->len < y->len);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* Whether one of list's strings is the name s[0, len), or starts with it and then `=`. */
static bool env_listed(char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], s, len) == 0 && (list[i][len] == '\0' || list[i][len] == '='))
            return true;
    return false;
}

char **confine_env_filter(const struct confine *c, char *const envp[])
{
    if (!c->env_given)
        return (char **)envp;
    size_t n = 0;
    while (envp != NULL && envp[n] != NULL)
        n++;
    struct env_entry *kept = xcalloc(n + 1, sizeof *kept);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(envp[i], '=');
        if (eq == NULL || eq == envp[i])
            continue; /* not a variable */
        size_t len = (size_t)(eq - envp[i]);
        if (c->env_clear && !env_listed(c->env_allow, c->n_env_allow, envp[i], len))
            continue;
        if (env_listed(c->env_set, c->n_env_set, envp[i], len))
            continue;
        kept[k++] = (struct env_entry){envp[i], len, i};
    }
    /* Sorted by name, then by place: a name's first entry leads its run. */
    qsort(kept, k, sizeof *kept, env_entry_cmp);
    char **out = xcalloc(k + c->n_env_set + 1, sizeof *out);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (i == 0 || kept[i].len != kept[i - 1].len ||
            memcmp(kept[i].s, kept[i - 1].s, kept[i].len) != 0)
            out[m++] = (char *)kept[i].s;
    for (size_t i = 0; i < c->n_env_set; i++)
        out[m++] = c->env_set[i];
    out[m] = NULL;
    free(kept);
    return out;
}

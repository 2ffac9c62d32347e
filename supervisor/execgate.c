/* Exec prevention (see execgate.h).  The marks are mount marks in the workload's own mount
 * namespace, whose mounts are copies of the host's: an exec there is held, an exec of the
 * host's through its own mounts never is.  The kernel holds the execve(2) in the open of the
 * file until the group answers, and hands the group a descriptor of that very file. */
#define _GNU_SOURCE
#include "execgate.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/error.h"
#include "core/libseccomp.h"
#include "core/log.h"
#include "core/util.h"

static bool pseudo_fs(const char *type)
{
    static const char *const types[] = {
        "proc",     "sysfs",     "cgroup",   "cgroup2",     "securityfs", "debugfs", "tracefs",
        "bpf",      "pstore",    "configfs", "fusectl",     "mqueue",     "devpts",  "autofs",
        "efivarfs", "selinuxfs", "nsfs",     "binfmt_misc", NULL};
    for (const char *const *t = types; *t; t++)
        if (strcmp(type, *t) == 0)
            return true;
    return false;
}

/* A proc to read the gate's facts from: one of the gate's own, made now and mounted nowhere,
 * so that nothing mounted at /proc has a say (an image's tree has no /proc of its own, and
 * a file of the image's there could list anything).  /proc where no proc can be made (a
 * mount namespace of another user namespace's, in which no proc is whole), and only if it
 * is a proc.  Its root directory, or -1. */
static int gate_proc(void)
{
    cleanup_close int fs = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
    int mnt = -1;
    if (fs >= 0 && syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                           MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (mnt < 0)
        mnt = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct statfs sf;
    if (mnt >= 0 && (fstatfs(mnt, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC)) {
        close(mnt);
        errno = ENOENT;
        return -1;
    }
    return mnt;
}

/* A mount point as the mount table escapes it (a space, tab, newline or backslash as a
 * backslash and three octal digits), decoded in place. */
static void mount_point_decode(char *s)
{
    char *out = s;
    for (const char *in = s; *in; out++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
            in[3] >= '0' && in[3] <= '7') {
            *out = (char)(((in[1] - '0') << 6) | ((in[2] - '0') << 3) | (in[3] - '0'));
            in += 4;
        } else {
            *out = *in++;
        }
    }
    *out = '\0';
}

struct mount_entry {
    uint64_t id, parent;
    char *point;    /* decoded */
    bool exec_free; /* noexec, or a file system of the kernel's own that holds no programs */
};

struct mount_table {
    struct mount_entry *e;
    size_t n;
};

static void mount_table_free(struct mount_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].point);
    free(t->e);
    t->e = NULL;
    t->n = 0;
}

/* The next space-separated field of *p, NUL-terminated in place, or NULL. */
static char *field(char **p)
{
    char *f = *p;
    if (f == NULL || *f == '\0' || *f == '\n')
        return NULL;
    char *end = f + strcspn(f, " \n");
    *p = *end ? end + 1 : end;
    *end = '\0';
    return f;
}

/* The mount table of the process's mount namespace, as its root sees it, from proc: 0, or
 * -1 with errno (a line that does not parse is EINVAL). */
static int mount_table_read(int proc, struct mount_table *t)
{
    int fd = openat(proc, "self/mountinfo", O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    cleanup_free char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    errno = 0;
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        char *p = line, *sep = strstr(line, " - ");
        char *id = field(&p), *parent = field(&p), *dev = field(&p), *root = field(&p);
        char *point = field(&p), *opts = field(&p);
        char *fstype = NULL;
        if (sep != NULL) {
            char *q = sep + 3;
            fstype = field(&q);
        }
        unsigned long long idv, parentv;
        if (!id || !parent || !dev || !root || !point || !opts || !fstype || opts > sep ||
            sscanf(id, "%llu", &idv) != 1 || sscanf(parent, "%llu", &parentv) != 1) {
            errno = EINVAL;
            rc = -1;
            break;
        }
        mount_point_decode(point);
        bool noexec = false;
        for (char *save = NULL, *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
            noexec |= strcmp(o, "noexec") == 0;
        t->e = xrealloc(t->e, (t->n + 1) * sizeof *t->e);
        t->e[t->n++] =
            (struct mount_entry){idv, parentv, xstrdup(point), noexec || pseudo_fs(fstype)};
    }
    if (rc == 0 && ferror(f))
        rc = -1;
    int e = errno;
    fclose(f);
    errno = e;
    return rc;
}

/* A mount with another on its very point, on top of it: no path reaches it. */
static bool covered(const struct mount_table *t, const struct mount_entry *m)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].parent == m->id && t->e[i].id != m->id && strcmp(t->e[i].point, m->point) == 0)
            return true;
    return false;
}

/* What fd refers to, with its mount's id: asking for nothing else, so that a file system
 * that refuses even root its attributes (FUSE without allow_other) still says which mount
 * it is (the kernel fills the mount's id whatever is asked). */
static bool statx_mount(int fd, struct statx *sx)
{
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, 0, sx) < 0)
        return false;
    return (sx->stx_mask & STATX_MNT_ID) != 0;
}

/* The id of the mount fd is on (the top one at its place). */
static bool mount_id_of(int fd, uint64_t *id)
{
    struct statx sx;
    if (!statx_mount(fd, &sx))
        return false;
    *id = sx.stx_mnt_id;
    return true;
}

/* Marks mount m, reached once by its point and checked by its id: 1 marked (or made noexec),
 * 0 its point holds another mount now (a race: read the table again), -1 with errno. */
static int mark_one(int fan, int proc, const struct mount_entry *m)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    cleanup_close int fd = (int)syscall(SYS_openat2, AT_FDCWD, m->point, &how, sizeof how);
    uint64_t at;
    if (fd < 0 || !mount_id_of(fd, &at))
        return -1;
    if (at != m->id)
        return 0;
    /* Marked through the descriptor (its magic link in the gate's proc), so that what is
     * marked is what was checked. */
    char link[64];
    snprintf(link, sizeof link, "self/fd/%d", fd);
    if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, proc, link) == 0)
        return 1;
    /* A mount even root may not read (a FUSE mount of another user's, without allow_other;
     * NFS with root_squash): no mark can be made, so nothing on it may run (in this mount
     * namespace only). */
    int e = errno;
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOEXEC};
    if (e == EACCES && syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0) {
        log_debug("exec prevention: `%s` cannot be marked: made noexec", m->point);
        return 1;
    }
    errno = e;
    return -1;
}

/* Whether what fd refers to (a file or a directory an exec could start from) is on a mount
 * the gate holds, or on none an exec can come from. */
static bool fd_held(int fd, const uint64_t *held, size_t n_held)
{
    struct statx sx;
    if (!statx_mount(fd, &sx))
        return false;
    if ((sx.stx_mask & STATX_TYPE) && !S_ISREG(sx.stx_mode) && !S_ISDIR(sx.stx_mode))
        return true; /* a pipe, a socket, a terminal: no program runs from one */
    for (size_t i = 0; i < n_held; i++)
        if (held[i] == sx.stx_mnt_id)
            return true;
    return false;
}

/* What of the workload's own reaches a mount outside held: its working directory, its
 * root, or a descriptor it keeps across exec (one other than fan).  NULL when nothing does,
 * else why, in msg. */
static const char *kept_outside(int proc, int fan, const uint64_t *held, size_t n_held, char *msg,
                                size_t cap)
{
    if (!fd_held(AT_FDCWD, held, n_held)) /* statx(AT_FDCWD, ""): the working directory */
        return "exec prevention: the working directory is on a mount the gate does not hold";
    cleanup_close int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || !fd_held(root, held, n_held))
        return "exec prevention: the root is on a mount the gate does not hold";
    int fds = openat(proc, "self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fds >= 0 ? fdopendir(fds) : NULL;
    if (d == NULL) {
        if (fds >= 0)
            close(fds);
        return "exec prevention: listing the descriptors";
    }
    int bad = -1;
    for (struct dirent *e; bad < 0 && (e = readdir(d)) != NULL;) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d) || fd == fan)
            continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC) && !fd_held(fd, held, n_held))
            bad = fd;
    }
    closedir(d);
    if (bad < 0)
        return NULL;
    snprintf(msg, cap,
             "exec prevention: descriptor %d is a file or directory on a mount this workload's "
             "mounts do not "
             "hold (an exec from it would not be judged); give it a pipe, or close it",
             bad);
    return msg;
}

static int gate_fail(const char **step, const char *msg)
{
    *step = msg;
    return -1;
}

/* Marks every mount of the calling process's mount namespace in fan (see execgate_open),
 * and for the workload's own process checks what it keeps: 0, or -1 with errno and *step. */
static int mark_all(int fan, const char **step, bool workload)
{
    cleanup_close int proc = gate_proc();
    if (proc < 0)
        return gate_fail(step, "exec prevention: a proc to read the mount table from");
    /* Every mount of the namespace but a covered one (another on its very point, which no
     * path reaches) is marked, or made noexec where it cannot be, or the gate fails: none is
     * passed over.  A point that holds another mount than the table says was changed while
     * it was read (a rename, by whoever may write a directory above it): the table is read
     * again, a few times. */
    static char msg[4200];
    struct mount_table t = {NULL, 0};
    int tries = 0, raced;
    do {
        mount_table_free(&t);
        if (mount_table_read(proc, &t) < 0) {
            mount_table_free(&t);
            return gate_fail(step, "exec prevention: reading the mount table");
        }
        raced = 0;
        for (size_t i = 0; i < t.n && !raced; i++) {
            const struct mount_entry *m = &t.e[i];
            if (m->exec_free || covered(&t, m))
                continue;
            int r = mark_one(fan, proc, m);
            if (r < 0) {
                snprintf(msg, sizeof msg, "exec prevention: cannot mark the mount `%s`", m->point);
                mount_table_free(&t);
                return gate_fail(step, msg);
            }
            raced = r == 0;
        }
    } while (raced && ++tries < 3);
    if (raced) {
        errno = EAGAIN;
        mount_table_free(&t);
        return gate_fail(step,
                         "exec prevention: the mounts moved while they were marked, three times");
    }
    if (!workload) {
        mount_table_free(&t);
        return 0;
    }
    /* Nothing the workload starts with may reach a mount outside the table: its root, its
     * working directory, and every descriptor it keeps across its exec (a directory or file
     * opened before its mount namespace was made is on the host's mount, which no mark
     * holds: an execveat(2) from it would not be judged). */
    uint64_t *held = xcalloc(t.n + 1, sizeof *held);
    size_t n_held = 0;
    /* Marked, made noexec, or the kernel's own: not a covered one, which was not marked. */
    for (size_t i = 0; i < t.n; i++)
        if (!covered(&t, &t.e[i]))
            held[n_held++] = t.e[i].id;
    mount_table_free(&t);
    const char *why = kept_outside(proc, fan, held, n_held, msg, sizeof msg);
    free(held);
    if (why != NULL) {
        errno = EPERM;
        return gate_fail(step, why);
    }
    return 0;
}

/* The group: see execgate_open. */
static int gate_group(void)
{
    /* No limit on the queue: the kernel lets a permission event go unasked when its group's
     * queue is full (fs.fanotify.max_queued_events unread events), so a workload with that
     * many execs waiting would run the next one unheld.  Each held exec is a task of the
     * workload's: what it may have bounds the queue. */
    /* Events name the thread (FAN_REPORT_TID): two threads of a process may be in execve(2)
     * at once, and each exec's files must be told apart from the other's.  Reads never wait
     * (FAN_NONBLOCK): an event is withdrawn when its thread is killed, between the wakeup and
     * the read, and nothing else would come to end the wait.  Nor does the open of an
     * event's descriptor (O_NONBLOCK): the workload's write lease on its own file would hold
     * it for the lease break time; the kernel denies an exec whose descriptor cannot be
     * made. */
    /* FAN_CLASS_PRE_CONTENT: the class whose denials may carry an errno (FAN_DENY_ERRNO). */
    return fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_UNLIMITED_QUEUE | FAN_REPORT_TID |
                             FAN_NONBLOCK | FAN_CLOEXEC,
                         O_RDONLY | O_LARGEFILE | O_NONBLOCK | O_CLOEXEC);
}

int execgate_open(const char **step)
{
    *step = "exec prevention: fanotify";
    int fan = gate_group();
    if (fan < 0)
        return -1;
    if (mark_all(fan, step, true) < 0) {
        int e = errno;
        close(fan);
        errno = e;
        return -1;
    }
    return fan;
}

/* libseccomp, which `tether run` loaded before it forked (core/libseccomp.h): a child
 * that finds it missing fails (ELIBACC), and never loads a library itself. */
static bool have_libseccomp(void)
{
    if (sym_seccomp_init != NULL)
        return true;
    errno = ELIBACC;
    return false;
}

/* A filter that allows all but what add refuses, loaded without no_new_privs (the caller
 * still holds CAP_SYS_ADMIN): 0, or -1 with errno. */
static int load_filter(int (*add)(scmp_filter_ctx ctx))
{
    if (!have_libseccomp())
        return -1;
    scmp_filter_ctx ctx = sym_seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL)
        return -1;
    int r = sym_seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (r == 0)
        r = add(ctx);
    if (r == 0)
        r = sym_seccomp_load(ctx);
    sym_seccomp_release(ctx);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return 0;
}

static int add_no_memfd(scmp_filter_ctx ctx)
{
    return sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(memfd_create), 0);
}

int execgate_no_memfd(void)
{
    return load_filter(add_no_memfd);
}

static int add_no_namespaces(scmp_filter_ctx ctx)
{
    static const unsigned long flags[] = {CLONE_NEWUSER, CLONE_NEWNS};
    int r = 0;
    for (size_t i = 0; r == 0 && i < sizeof flags / sizeof flags[0]; i++) {
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, flags[i], flags[i]));
        if (r == 0)
            r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                     SCMP_A0(SCMP_CMP_MASKED_EQ, flags[i], flags[i]));
    }
    /* Nor into someone else's: a namespace of a process outside, passed by descriptor. */
    if (r == 0)
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns), 0);
    /* clone3(2) passes its flags in memory a filter cannot read: ENOSYS, and the C library
     * falls back to clone(2). */
    int nr = sym_seccomp_syscall_resolve_name("clone3");
    if (r == 0 && nr != __NR_SCMP_ERROR && nr >= 0)
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    /* Nor a mount the marks were not made on: a new one, one moved or cloned (open_tree's
     * detached copy), or one uncovered by an unmount.  Only a workload granted CAP_SYS_ADMIN
     * could (which undoes supervision anyway, and is on record); this keeps exec prevention
     * whole even then. */
    static const char *const mounts[] = {"mount",      "umount2", "open_tree",
                                         "move_mount", "fsopen",  "fsconfig",
                                         "fsmount",    "fspick",  "mount_setattr"};
    for (size_t i = 0; r == 0 && i < sizeof mounts / sizeof mounts[0]; i++) {
        nr = sym_seccomp_syscall_resolve_name(mounts[i]);
        if (nr != __NR_SCMP_ERROR && nr >= 0)
            r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    }
    return r;
}

int execgate_no_unmarked_mounts(void)
{
    return load_filter(add_no_namespaces);
}

int execgate_exec_listener(void)
{
    if (!have_libseccomp())
        return -1;
    scmp_filter_ctx ctx = sym_seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int r = sym_seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (r == 0)
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(execve), 0);
    if (r == 0)
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(execveat), 0);
    /* uselib(2) opens a file for exec outside any execve: refused, where the kernel has it. */
    int nr = sym_seccomp_syscall_resolve_name("uselib");
    if (r == 0 && nr != __NR_SCMP_ERROR && nr >= 0)
        r = sym_seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    if (r == 0)
        r = sym_seccomp_load(ctx);
    int fd = r == 0 ? sym_seccomp_notify_fd(ctx) : -1;
    sym_seccomp_release(ctx);
    if (r < 0 || fd < 0) {
        errno = r < 0 ? -r : EBADF;
        return -1;
    }
    return fd;
}

pid_t execgate_exec_begins(int listener)
{
    struct seccomp_notif *req = NULL;
    struct seccomp_notif_resp *resp = NULL;
    if (!have_libseccomp() || sym_seccomp_notify_alloc(&req, &resp) < 0)
        return -1;
    pid_t tid = -1;
    /* ENOENT: the thread went (a signal) before it was answered: nothing to remember. */
    if (sym_seccomp_notify_receive(listener, req) == 0) {
        resp->id = req->id;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        if (sym_seccomp_notify_respond(listener, resp) == 0)
            tid = (pid_t)req->pid;
    }
    sym_seccomp_notify_free(req, resp);
    return tid;
}

/* Reads len bytes at off, all or none. */
static bool read_at(int fd, void *buf, size_t len, off_t off)
{
    return pread(fd, buf, len, off) == (ssize_t)len;
}

/* Reads len bytes at off into a buffer of its own (len at most 64 KiB), or NULL. */
static void *read_block(int fd, uint64_t off, size_t len)
{
    void *b = len > 0 && len <= 65536 ? malloc(len) : NULL;
    if (b != NULL && !read_at(fd, b, len, (off_t)off)) {
        free(b);
        b = NULL;
    }
    return b;
}

enum elf_kind execgate_elf_kind(int fd)
{
    unsigned char id[EI_NIDENT];
    if (!read_at(fd, id, sizeof id, 0) || memcmp(id, ELFMAG, SELFMAG) != 0)
        return ELF_NOT;
    /* The class and byte order this kernel runs natively (others go to binfmt_misc). */
    bool wide = id[EI_CLASS] == ELFCLASS64;
    if ((!wide && id[EI_CLASS] != ELFCLASS32) ||
        id[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
        return ELF_NOT;
    Elf64_Ehdr e;
    if (wide) {
        if (!read_at(fd, &e, sizeof e, 0))
            return ELF_NOT;
    } else {
        Elf32_Ehdr e32;
        if (!read_at(fd, &e32, sizeof e32, 0))
            return ELF_NOT;
        e = (Elf64_Ehdr){.e_type = e32.e_type, .e_phoff = e32.e_phoff, .e_phnum = e32.e_phnum};
    }
    /* The program headers in one read: the kernel refuses a table over 64 KiB. */
    size_t phent = wide ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    cleanup_free unsigned char *phdrs = read_block(fd, e.e_phoff, e.e_phnum * phent);
    if (phdrs == NULL)
        return ELF_OTHER;
    uint64_t dyn_off = 0, dyn_size = 0;
    for (unsigned i = 0; i < e.e_phnum; i++) {
        Elf64_Phdr ph;
        if (wide) {
            memcpy(&ph, phdrs + i * phent, sizeof ph);
        } else {
            Elf32_Phdr p32;
            memcpy(&p32, phdrs + i * phent, sizeof p32);
            ph = (Elf64_Phdr){
                .p_type = p32.p_type, .p_offset = p32.p_offset, .p_filesz = p32.p_filesz};
        }
        if (ph.p_type == PT_INTERP)
            return ELF_WITH_INTERP; /* a program, or a library that runs as one */
        if (ph.p_type == PT_DYNAMIC)
            dyn_off = ph.p_offset, dyn_size = ph.p_filesz;
    }
    if (e.e_type != ET_DYN)
        return ELF_OTHER;
    /* A shared object that names itself and wants no interpreter: what the kernel loads as
     * one.  (A static-pie program names no soname.)  Its soname is among the first entries
     * of its dynamic section: 64 KiB of it are read. */
    size_t ent = wide ? sizeof(Elf64_Dyn) : sizeof(Elf32_Dyn);
    size_t len = dyn_size < 65536 ? (size_t)dyn_size / ent * ent : 65536 / ent * ent;
    cleanup_free unsigned char *dyn = read_block(fd, dyn_off, len);
    for (size_t at = 0; dyn != NULL && at + ent <= len; at += ent) {
        int64_t tag;
        if (wide) {
            Elf64_Dyn d;
            memcpy(&d, dyn + at, sizeof d);
            tag = d.d_tag;
        } else {
            Elf32_Dyn d;
            memcpy(&d, dyn + at, sizeof d);
            tag = d.d_tag;
        }
        if (tag == DT_NULL)
            break;
        if (tag == DT_SONAME)
            return ELF_LOADER;
    }
    return ELF_OTHER;
}

int execgate_hold_still(int fd)
{
    /* A break of the lease signals its holder, SIGIO by default, which would end tether:
     * SIGURG, which is ignored unless a handler is set, instead. */
    if (fcntl(fd, F_SETSIG, SIGURG) < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
        return -1;
    return 0;
}

bool execgate_held_still(int fd)
{
    return fcntl(fd, F_GETLEASE) == F_RDLCK;
}

void execgate_allow_held(int gate_fd, int event_fd)
{
    struct fanotify_response resp = {.fd = event_fd, .response = FAN_ALLOW};
    (void)!write(gate_fd, &resp, sizeof resp);
}

void execgate_answer(int gate_fd, int event_fd, bool allow)
{
    struct fanotify_response resp = {.fd = event_fd, .response = allow ? FAN_ALLOW : FAN_DENY};
    (void)!write(gate_fd, &resp, sizeof resp);
    close(event_fd);
}

void execgate_refuse(int gate_fd, int event_fd, int err)
{
    /* FAN_DENY_ERRNO(err), Linux 6.14 (the errno in the response's top byte); a kernel
     * before it refuses the response, and gets a plain deny, EPERM. */
    struct fanotify_response resp = {.fd = event_fd,
                                     .response = FAN_DENY | ((uint32_t)(err & 0xff) << 24)};
    if (write(gate_fd, &resp, sizeof resp) < 0) {
        resp.response = FAN_DENY;
        (void)!write(gate_fd, &resp, sizeof resp);
    }
    close(event_fd);
}

pid_t execgate_hold(int gate_fd, int init_pidfd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_NAME, "tether-gate");
    /* Only the group and the pidfd stay open (not tether's pipe to the init, whose closing
     * must still mean that tether is gone). */
    int g = fcntl(gate_fd, F_DUPFD, 64), w = fcntl(init_pidfd, F_DUPFD, 64);
    if (g < 0 || w < 0 || dup2(g, 3) < 0 || dup2(w, 4) < 0)
        _exit(1);
    close_range(5, ~0U, 0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0)
        dup2(null, 0), dup2(null, 1), dup2(null, 2);
    struct pollfd p = {.fd = 4, .events = POLLIN};
    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
    _exit(0);
}

int execgate_remark_in(pid_t pid, int fan, tether_error_t *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return error_set(err, errno, "exec prevention: pipe");
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(p[0]), close(p[1]);
        return error_set(err, e, "exec prevention: fork");
    }
    if (child == 0) {
        close(p[0]);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
        int ns = open(path, O_RDONLY | O_CLOEXEC);
        const char *step = "exec prevention: the container's mount namespace";
        int rc = -1;
        if (ns >= 0 && setns(ns, CLONE_NEWNS) == 0)
            rc = mark_all(fan, &step, false);
        if (rc < 0) {
            char msg[512];
            int n = snprintf(msg, sizeof msg, "%s: %s", step, strerror(errno));
            (void)!write(p[1], msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
        }
        _exit(rc < 0 ? 1 : 0);
    }
    close(p[1]);
    char msg[512];
    ssize_t n = read(p[0], msg, sizeof msg - 1);
    close(p[0]);
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    msg[n > 0 ? n : 0] = '\0';
    return error_set(err, 0, "%s", n > 0 ? msg : "exec prevention: marking the container's mounts");
}

int execgate_open_in(pid_t pid, tether_error_t *err)
{
    int fan = gate_group();
    if (fan < 0)
        return error_set(err, errno, "exec prevention: fanotify");
    if (execgate_remark_in(pid, fan, err) < 0) {
        close(fan);
        return -1;
    }
    return fan;
}

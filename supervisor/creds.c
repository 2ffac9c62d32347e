/* Credentials for an attested workload (see creds.h). */
#define _GNU_SOURCE
#include "creds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../measure/measure.h"
#include "audit.h"
#include "core/cleanup.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "identity/jwt.h"
#include "image/image.h"
#include "key.h"
#include "run.h"
#include "run_image.h"

#define IDENTITY_FILE "identity"
#define SECRETS_DIR "secrets"
#define KEY_PEM_MAX (64u << 10)

bool creds_wanted(const struct decision *d)
{
    return d->identity != NULL || d->n_secrets > 0;
}

void creds_clear(struct creds *c)
{
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    free(c->dir);
    jwt_key_free(c->key);
    free(c->audience);
    free(c->subject);
    free(c->container_id);
    free(c->container_image);
    free(c->container_digest);
    memset(c, 0, sizeof *c);
    c->dir_fd = -1;
}

int creds_prepare(struct run *r, tether_error_t *err)
{
    struct creds *c = &r->creds;
    creds_clear(c);
    const struct decision *d = &r->d;
    if (!creds_wanted(d))
        return 0;
    /* Keys, tokens and secrets need libcrypto: loaded here, where a failure is a refusal
     * (and a gate's state is removed), not in the middle of handing them over. */
    if (crypto_load(err) < 0)
        return -1;
    if (geteuid() != 0)
        return error_set(err, 0,
                         "an identity token or secrets need root: their tmpfs is mounted in "
                         "the workload's own mount namespace");
    if (r->bundle != NULL)
        return error_set(err, 0,
                         "an identity token or secrets are not handed through a container "
                         "runtime (--bundle): gate the container with `tether hook`");
    if (d->identity != NULL) {
        if (r->cfg.identity.key == NULL)
            return error_set(err, 0,
                             "the decision asks for an identity token, and the node "
                             "configuration names no `identity.key`");
        cleanup_secret struct secret *pem = NULL;
        if (keystore_read(r->cfg.keystore, r->cfg.identity.key, ".pem", 1, KEY_PEM_MAX, &pem, err) <
                0 ||
            jwt_key_parse(pem, &c->key, err) < 0)
            return error_wrap(err, "`identity.key`");
        const cJSON *id = d->identity;
        c->audience = xstrdup(cJSON_GetObjectItemCaseSensitive(id, "audience")->valuestring);
        const char *sub = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(id, "subject"));
        c->subject = sub ? xstrdup(sub) : NULL;
        int64_t ttl = 300;
        json_get_int(cJSON_GetObjectItemCaseSensitive(id, "ttl_s"), 10, 86400, &ttl);
        c->ttl_s = ttl;
    }
    c->has_secrets = d->n_secrets > 0;
    c->dir = xstrdup(CREDS_DIR);
    return 0;
}

/* Characters a SPIFFE path segment may hold; others become "_". */
static char *segment(const char *s)
{
    char *out = xstrdup(s && *s ? s : "-");
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    return out;
}

static const char *get_str(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    return cJSON_GetStringValue(b ? cJSON_GetObjectItemCaseSensitive(x, b) : x);
}

/* The workload's digest: its image's manifest, its sealed file, or its executable. */
static const char *workload_digest(const struct run *r)
{
    if (r->creds.container_digest != NULL)
        return r->creds.container_digest;
    if (r->image != NULL)
        return r->image->img.manifest_digest;
    const char *sealed = get_str(r->workload, "sealed", "digest");
    return sealed ? sealed : r->exe_sha[0] ? r->exe_sha : NULL;
}

/* Whom the records name: the command, or the container. */
static const char *who(const struct run *r)
{
    return r->cmd != NULL ? r->cmd[0] : r->creds.container_id ? r->creds.container_id : "?";
}

static void add_subject(const struct run *r, cJSON *rec)
{
    cJSON_AddStringToObject(rec, "argv0", who(r));
    if (r->creds.container_id != NULL)
        cJSON_AddStringToObject(rec, "container_id", r->creds.container_id);
}

static cJSON *claims(const struct run *r, const cJSON *host, int64_t now)
{
    const struct creds *c = &r->creds;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(host, "labels");
    unsigned char rnd[16];
    char jti[33];
    RAND_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, jti);
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof hostname - 1);
    cleanup_free char *iss = r->cfg.identity.issuer ? xstrdup(r->cfg.identity.issuer)
                                                    : xasprintf("tether://%s", hostname);
    const char *digest = workload_digest(r);
    cleanup_free char *sub = NULL;
    if (c->subject != NULL) {
        sub = xstrdup(c->subject);
    } else {
        cleanup_free char *td =
            segment(r->cfg.identity.trust_domain ? r->cfg.identity.trust_domain : "tether.local");
        cleanup_free char *region = segment(get_str(labels, "region", NULL));
        cleanup_free char *cluster = segment(get_str(labels, "cluster", NULL));
        cleanup_free char *dg =
            segment(digest && strchr(digest, ':') ? strchr(digest, ':') + 1 : digest);
        sub = xasprintf("spiffe://%s/%s/%s/%s", td, region, cluster, dg);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "iss", iss);
    cJSON_AddStringToObject(j, "sub", sub);
    cJSON_AddStringToObject(j, "aud", c->audience);
    cJSON_AddNumberToObject(j, "iat", (double)now);
    cJSON_AddNumberToObject(j, "exp", (double)(now + c->ttl_s));
    cJSON_AddStringToObject(j, "jti", jti);
    cJSON *t = cJSON_AddObjectToObject(j, "tether");
    cJSON_AddItemToObject(t, "region", json_string_or_null(get_str(labels, "region", NULL)));
    cJSON_AddItemToObject(t, "datacenter",
                          json_string_or_null(get_str(labels, "datacenter", NULL)));
    cJSON_AddItemToObject(t, "cluster", json_string_or_null(get_str(labels, "cluster", NULL)));
    cJSON_AddItemToObject(t, "machine_id", json_string_or_null(get_str(host, "machine_id", NULL)));
    cJSON_AddItemToObject(t, "exe_sha256", json_string_or_null(r->exe_sha[0] ? r->exe_sha : NULL));
    cJSON_AddItemToObject(t, "image_digest",
                          json_string_or_null(r->image ? r->image->img.manifest_digest : NULL));
    cJSON_AddItemToObject(t, "sealed_digest",
                          json_string_or_null(get_str(r->workload, "sealed", "digest")));
    cJSON_AddItemToObject(t, "sealed_signer",
                          json_string_or_null(get_str(r->workload, "sealed", "signer_trusted")));
    cJSON_AddItemToObject(t, "container_id", json_string_or_null(c->container_id));
    cJSON_AddItemToObject(t, "container_image", json_string_or_null(c->container_image));
    cJSON_AddItemToObject(t, "container_digest", json_string_or_null(c->container_digest));
    cJSON_AddItemToObject(t, "decision",
                          json_string_or_null(r->decision_hash[0] ? r->decision_hash : NULL));
    return j;
}

/* name in dir, mode 0400, the workload's, written whole from secret memory. */
static int put(int dir, const char *name, const void *data, size_t len, uid_t uid, gid_t gid,
               tether_error_t *err)
{
    unlinkat(dir, name, 0);
    cleanup_close int fd =
        openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0 || write_all(fd, data, len) < 0 || fchown(fd, uid, gid) < 0)
        return error_set(err, errno, "credentials: `%s`", name);
    return 0;
}

static void owner(const struct run *r, uid_t *uid, gid_t *gid)
{
    if (r->creds.container_id != NULL) {
        *uid = r->creds.container_uid;
        *gid = r->creds.container_gid;
        return;
    }
    const struct confine *c = &r->d.confinement;
    *uid = c->user_given ? c->uid : getuid();
    *gid = c->user_given ? c->gid : getgid();
}

/* A fresh token into name (audited as identity_issued, without the token). */
static int issue(struct run *r, const cJSON *host, const char *name, const char *trigger,
                 tether_error_t *err)
{
    struct creds *c = &r->creds;
    int64_t now = (int64_t)time(NULL);
    cleanup_json cJSON *cl = claims(r, host, now);
    cleanup_secret struct secret *token = NULL;
    if (jwt_sign(c->key, cl, &token, err) < 0)
        return -1;
    uid_t uid;
    gid_t gid;
    owner(r, &uid, &gid);
    if (put(c->dir_fd, name, token->data, token->len, uid, gid, err) < 0)
        return -1;
    cleanup_json cJSON *rec = audit_record_new("identity_issued");
    add_subject(r, rec);
    cJSON_AddItemToObject(rec, "digest", json_string_or_null(workload_digest(r)));
    cJSON_AddStringToObject(rec, "trigger", trigger);
    cJSON_AddItemToObject(rec, "sub", cJSON_Duplicate(cJSON_GetObjectItem(cl, "sub"), true));
    cJSON_AddStringToObject(rec, "aud", c->audience);
    cJSON_AddItemToObject(rec, "jti", cJSON_Duplicate(cJSON_GetObjectItem(cl, "jti"), true));
    cJSON_AddNumberToObject(rec, "exp", (double)(now + c->ttl_s));
    cleanup_free char *kid = jwt_kid(c->key);
    cJSON_AddStringToObject(rec, "kid", kid);
    if (audit_append(r->audit_path, rec, err) < 0)
        return -1;
    c->issued = now;
    return 0;
}

static int release_secrets(struct run *r, tether_error_t *err)
{
    struct creds *c = &r->creds;
    uid_t uid;
    gid_t gid;
    owner(r, &uid, &gid);
    if (mkdirat(c->dir_fd, SECRETS_DIR, 0555) < 0) /* root's, like the tmpfs's root */
        return error_set(err, errno, "credentials: `%s`", SECRETS_DIR);
    cleanup_close int sd =
        openat(c->dir_fd, SECRETS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sd < 0)
        return error_set(err, errno, "credentials: `%s`", SECRETS_DIR);
    cleanup_free char *store =
        r->cfg.keystore ? xasprintf("%s/" SECRETS_DIR, r->cfg.keystore) : NULL;
    for (size_t i = 0; i < r->d.n_secrets; i++) {
        const struct decision_secret *s = &r->d.secrets[i];
        cleanup_secret struct secret *read = NULL;
        const struct secret *bytes = s->value;
        if (bytes == NULL) {
            if (keystore_read(store, s->id, "", 1, DECISION_SECRET_BYTES, &read, err) < 0)
                return error_wrap(err, "secret `%s`", s->name);
            bytes = read;
        }
        /* On record before the workload can read it. */
        cleanup_json cJSON *rec = audit_record_new("secret_release");
        add_subject(r, rec);
        cJSON_AddItemToObject(rec, "digest", json_string_or_null(workload_digest(r)));
        cJSON_AddStringToObject(rec, "name", s->name);
        cJSON_AddItemToObject(rec, "id", json_string_or_null(s->id));
        cJSON_AddStringToObject(rec, "source", s->id ? "keystore" : "decision");
        cJSON_AddStringToObject(rec, "engine", r->policy->ops->engine);
        if (audit_append(r->audit_path, rec, err) < 0 ||
            put(sd, s->name, bytes->data, bytes->len, uid, gid, err) < 0)
            return -1;
    }
    return 0;
}

int creds_fill(void *run, int dir_fd, tether_error_t *err)
{
    struct run *r = run;
    struct creds *c = &r->creds;
    if (c->dir_fd >= 0)
        close(c->dir_fd);
    c->dir_fd = dir_fd;
    /* Whatever handed the directory over, credentials are written to memory only. */
    struct statfs sf;
    if (fstatfs(dir_fd, &sf) < 0 || sf.f_type != TMPFS_MAGIC) {
        close(steal_fd(&c->dir_fd));
        return error_set(err, 0,
                         "credentials: the directory handed over is not a tmpfs; "
                         "refusing to write them to it");
    }
    if (c->audience != NULL) {
        cleanup_json cJSON *host = measure_host_collect(r->cfg.labels);
        if (issue(r, host, IDENTITY_FILE, "launch", err) < 0)
            return -1;
    }
    if (c->has_secrets && release_secrets(r, err) < 0)
        return -1;
    /* Released: what tether holds of the values goes now, not when the workload ends. */
    for (size_t i = 0; i < r->d.n_secrets; i++) {
        secret_free(r->d.secrets[i].value);
        r->d.secrets[i].value = NULL;
    }
    return 0;
}

int creds_renew(struct run *r, const cJSON *input, tether_error_t *err)
{
    struct creds *c = &r->creds;
    if (c->dir_fd < 0 || c->audience == NULL)
        return 0;
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(input, "host");
    if (issue(r, host, IDENTITY_FILE ".new", "renewal", err) < 0)
        return -1;
    if (renameat(c->dir_fd, IDENTITY_FILE ".new", c->dir_fd, IDENTITY_FILE) < 0)
        return error_set(err, errno, "credentials: renewing `%s`", IDENTITY_FILE);
    return 0;
}

int64_t creds_renew_in(const struct run *r)
{
    const struct creds *c = &r->creds;
    if (c->dir_fd < 0 || c->audience == NULL)
        return -1;
    int64_t at = c->issued + c->ttl_s * 2 / 3, now = (int64_t)time(NULL);
    return at > now ? at - now : 0;
}

/* Truncated first, so that a descriptor the workload holds reads nothing more. */
static void drop(int dir, const char *name)
{
    int fd = openat(dir, name, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    unlinkat(dir, name, 0);
}

void creds_wipe(struct run *r, const char *why)
{
    struct creds *c = &r->creds;
    if (c->dir_fd < 0)
        return;
    drop(c->dir_fd, IDENTITY_FILE);
    drop(c->dir_fd, IDENTITY_FILE ".new");
    int sd = openat(c->dir_fd, SECRETS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = sd >= 0 ? fdopendir(sd) : NULL;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            drop(dirfd(d), e->d_name);
    if (d != NULL)
        closedir(d);
    else if (sd >= 0)
        close(sd);
    unlinkat(c->dir_fd, SECRETS_DIR, AT_REMOVEDIR);
    close(c->dir_fd);
    c->dir_fd = -1;
    cleanup_error tether_error_t err = NULL;
    cleanup_json cJSON *rec = audit_record_new("credentials_removed");
    add_subject(r, rec);
    cJSON_AddStringToObject(rec, "reason", why);
    if (audit_append(r->audit_path, rec, &err) < 0)
        log_warn("%s", err->msg);
}

/* --- containers --- */

static int send_fd(int sock, int fd)
{
    char ctl[CMSG_SPACE(sizeof(int))] __attribute__((aligned(__alignof__(struct cmsghdr))));
    memset(ctl, 0, sizeof ctl);
    char byte = 'c';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fd);
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char ctl[CMSG_SPACE(sizeof(int))] __attribute__((aligned(__alignof__(struct cmsghdr))));
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm == NULL || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

/* dir under parent, a directory and no link (whoever wrote the image chose what is there),
 * made when missing; an O_PATH descriptor, or -1. */
static int subdir(int parent, const char *name, mode_t mode)
{
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve =
                               RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, parent, name, &how, sizeof how);
    if (fd < 0 && errno == ENOENT && mkdirat(parent, name, mode) == 0)
        fd = (int)syscall(SYS_openat2, parent, name, &how, sizeof how);
    return fd;
}

/* In a child: into the container's mount namespace, the tmpfs mounted through descriptors
 * (never a path the image could redirect), and its descriptor to tether. */
static void __attribute__((noreturn)) mount_in_container(pid_t init, const char *root, int sock)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)init);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNS) < 0 || chdir("/") < 0)
        _exit(10);
    int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int run = rfd >= 0 ? subdir(rfd, "run", 0755) : -1;
    int dir = run >= 0 ? subdir(run, "tether-creds", 0755) : -1;
    if (dir < 0)
        _exit(11);
    char target[64];
    snprintf(target, sizeof target, "/proc/self/fd/%d", dir);
    if (mount("tether-creds", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0555,size=4m,nr_inodes=64,uid=0,gid=0") < 0)
        _exit(12);
    /* Looked up again from its parent, which crosses into the new mount (the descriptor
     * itself, and its /proc/self/fd link, still name the directory under it). */
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                           .resolve =
                               RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, run, "tether-creds", &how, sizeof how);
    _exit(fd >= 0 && send_fd(sock, fd) == 0 ? 0 : 13);
}

/* What the helper's exit status (mount_in_container) says went wrong. */
static const char *helper_step(int code)
{
    switch (code) {
    case 10:
        return "entering its mount namespace";
    case 11:
        return "`run/tether-creds` in its root (a link, or not a directory)";
    case 12:
        return "mounting the tmpfs";
    case 13:
        return "handing it over";
    default:
        return "the helper failed";
    }
}

int creds_container(struct run *r, const cJSON *input, pid_t init, tether_error_t *err)
{
    if (creds_prepare(r, err) < 0)
        return -1;
    struct creds *c = &r->creds;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(input, "container");
    const cJSON *ns;
    cJSON_ArrayForEach (ns, cJSON_GetObjectItemCaseSensitive(ct, "namespaces"))
        if (cJSON_IsString(ns) && strcmp(ns->valuestring, "user") == 0)
            return error_set(err, 0,
                             "credentials are not yet handed to a container with a user "
                             "namespace");
    const char *root = get_str(ct, "root", NULL);
    if (root == NULL || root[0] != '/')
        return error_set(err, 0, "credentials: the container has no absolute root");
    const cJSON *user =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ct, "process"), "user");
    int64_t uid = 0, gid = 0;
    json_get_int(cJSON_GetObjectItemCaseSensitive(user, "uid"), 0, UINT32_MAX, &uid);
    json_get_int(cJSON_GetObjectItemCaseSensitive(user, "gid"), 0, UINT32_MAX, &gid);
    c->container_uid = (uid_t)uid;
    c->container_gid = (gid_t)gid;
    c->container_id = xstrdup(get_str(ct, "id", NULL) ? get_str(ct, "id", NULL) : "?");
    const char *img = get_str(ct, "image", "name"), *dg = get_str(ct, "image", "digest");
    c->container_image = img ? xstrdup(img) : NULL;
    c->container_digest = dg ? xstrdup(dg) : NULL;

    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) <
        0) /* EOF when the helper dies */
        return error_set(err, errno, "credentials: socketpair");
    pid_t pid = fork();
    if (pid == 0) {
        close(sp[0]);
        mount_in_container(init, root, sp[1]);
    }
    close(sp[1]);
    int fd = pid > 0 ? recv_fd(sp[0]) : -1;
    close(sp[0]);
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (fd < 0) {
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
        return error_set(err, 0, "credentials for the container: %s", helper_step(code));
    }
    return creds_fill(r, fd, err);
}

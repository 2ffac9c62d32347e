/* The OPA engine: POST <url>/v1/data/<path> with {"input": ...}, as OPA's REST Data API
 * documents it, so that a stock OPA deployment answers.  Every request has a connect
 * timeout, a total timeout and a response size cap; TLS verification is always on; plain
 * HTTP only to loopback; no redirects, no proxies.  libcurl's own advice
 * (libcurl-security.md) is followed throughout.
 *
 * The endpoint is authenticated before anything is sent to it: by TLS, or, for plain HTTP
 * on loopback and for a unix socket, by the uid that owns the server's socket (root, the
 * user tether runs as, or opa.server_uid).  A squatter on OPA's port gets a connection and
 * nothing else: no token, no input, and its answer is never read. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/crypto.h"
#include "../supervisor/core/dlopen.h"
#include "../supervisor/core/secret.h"
#include "../supervisor/core/trust.h"
#include "../supervisor/core/util.h"
#include "policy.h"

/* libcurl (and the one libssl call made on its TLS context), loaded only when OPA is asked:
 * every other start of tether maps neither them nor their dependencies (core/dlopen.h). */
#define LIBCURL "libcurl.so.4"
#define LIBSSL "libssl.so.3"
DLOPEN_NOTE(dlopen_note_curl,
            "[{\"feature\":\"opa\",\"description\":\"the OPA policy engine\","
            "\"priority\":\"recommended\",\"soname\":[\"" LIBCURL "\",\"" LIBSSL "\"]}]");
static DLSYM(curl_easy_cleanup);
static DLSYM(curl_easy_getinfo);
static DLSYM(curl_easy_init);
static DLSYM(curl_easy_perform);
static DLSYM(curl_easy_setopt);
static DLSYM(curl_easy_strerror);
static DLSYM(curl_free);
static DLSYM(curl_global_init_mem);
static DLSYM(curl_slist_append);
static DLSYM(curl_slist_free_all);
static DLSYM(curl_url);
static DLSYM(curl_url_cleanup);
static DLSYM(curl_url_get);
static DLSYM(curl_url_set);
static DLSYM(SSL_CTX_set_options);
static const struct dlopen_sym curl_syms[] = {
    DLSYM_ENTRY(curl_easy_cleanup), DLSYM_ENTRY(curl_easy_getinfo),
    DLSYM_ENTRY(curl_easy_init),    DLSYM_ENTRY(curl_easy_perform),
    DLSYM_ENTRY(curl_easy_setopt),  DLSYM_ENTRY(curl_easy_strerror),
    DLSYM_ENTRY(curl_free),         DLSYM_ENTRY(curl_global_init_mem),
    DLSYM_ENTRY(curl_slist_append), DLSYM_ENTRY(curl_slist_free_all),
    DLSYM_ENTRY(curl_url),          DLSYM_ENTRY(curl_url_cleanup),
    DLSYM_ENTRY(curl_url_get),      DLSYM_ENTRY(curl_url_set),
};
static const struct dlopen_sym ssl_syms[] = {DLSYM_ENTRY(SSL_CTX_set_options)};
static struct dlopen_lib libcurl = {
    LIBCURL, "the OPA engine", "libcurl4", curl_syms, sizeof curl_syms / sizeof *curl_syms, NULL,
    NULL};
static struct dlopen_lib libssl = {LIBSSL, "the OPA engine", "libssl3", ssl_syms, 1, NULL, NULL};

static int curl_load(tether_error_t *err)
{
    /* libcrypto first, initialised as tether initialises it (core/crypto.c): libssl's own
     * initialisation would otherwise come first and free OpenSSL's tables at exit, and
     * load its error strings. */
    if (crypto_load(err) < 0)
        return -1;
    return dlopen_lib_load(&libcurl, err) < 0 ? -1 : dlopen_lib_load(&libssl, err);
}

#define TOKEN_MAX 8192
#define CLIENT_KEY_MAX (64 << 10)

struct opa_policy {
    struct policy base;
    struct curl_slist *headers; /* holds the bearer token: wiped before it is freed */
    char *endpoint;             /* the URL curl is given */
    char *unix_socket;
    char *shown_url; /* without credentials */
    char *path;
    char *ca_file, *client_cert;
    struct secret *client_key; /* the key file's bytes, handed to curl as a blob */
    bool tls;
    long connect_timeout_ms, timeout_ms, retries, server_uid;
    size_t max_response;
};

/* One request's connection, as the socket callbacks see it. */
struct conn_check {
    const struct opa_policy *op;
    curl_socket_t fd;  /* the last socket curl opened */
    bool connected;    /* a connection was made: no longer an unreachable OPA */
    bool trusted;      /* the peer was authenticated before the request was sent */
    bool unanswered;   /* nothing sent, and no server end was there to send to: it had
                        * closed, was gone, or did not accept in time (an outage, not an
                        * untrusted peer) */
    char refused[384]; /* why the peer was not, when it was not */
};

struct body {
    char *data;
    size_t len, cap, max;
    bool over;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->over = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = xmalloc(cap);
        if (b->data != NULL) {
            memcpy(p, b->data, b->len);
            explicit_bzero(b->data, b->cap); /* the answer may hold a key */
            free(b->data);
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void body_wipe(struct body *b)
{
    if (b->data != NULL) {
        explicit_bzero(b->data, b->cap);
        free(b->data);
    }
    memset(b, 0, sizeof *b);
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        char inner[64];
        if (n - 2 >= sizeof inner)
            return false;
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        return inet_pton(AF_INET6, inner, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

/* The URL without credentials or query, for messages and audit records (free it). */
static char *policy_opa_redact_url(const char *url)
{
    if (strncmp(url, "unix://", 7) == 0)
        return xstrdup(url);
    CURLU *u = sym_curl_url();
    char *out = NULL;
    if (u != NULL && sym_curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        sym_curl_url_set(u, CURLUPART_USER, NULL, 0);
        sym_curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        sym_curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        sym_curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        char *s = NULL;
        if (sym_curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
            out = xstrdup(s);
            sym_curl_free(s);
        }
    }
    sym_curl_url_cleanup(u);
    return out ? out : xstrdup("(unparsable URL)");
}

/* The decision path: segments of [A-Za-z0-9_.-], no empty or dot-only segment. */
static bool path_valid(const char *p)
{
    if (*p == '\0')
        return false;
    for (const char *seg = p; *seg;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!(isalnum((unsigned char)seg[i]) || strchr("_.-", seg[i]) != NULL))
                return false;
        seg += n;
        if (*seg == '/')
            seg++;
    }
    return true;
}

/* libcurl's heap is wiped as it is freed: its receive buffers held OPA's answer, which may
 * carry a key. */
static void wipe_free(void *p)
{
    if (p != NULL) {
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
    }
}

static void *wipe_realloc(void *p, size_t n)
{
    if (p == NULL)
        return malloc(n);
    if (n == 0) {
        wipe_free(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    void *q = malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    wipe_free(p);
    return q;
}

static char *wipe_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

/* A file that holds a credential (the bearer token, the TLS client key): a regular file of
 * the user tether runs as, which nobody else may read or write.  Its bytes go to secret
 * memory, read from the descriptor that was checked. */
static int read_credential(const char *field, const char *file, size_t max, struct secret **out,
                           tether_error_t *err)
{
    *out = NULL;
    /* The walk of supervisor/core/trust.h first: the directories above it too. */
    cleanup_close int fd = trust_open(file, 0, err);
    if (fd < 0)
        return error_wrap(err, "%s", field);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "%s `%s`", field, file);
    if (!S_ISREG(st.st_mode))
        return error_set(err, 0, "%s `%s` is not a regular file", field, file);
    if (st.st_uid != geteuid())
        return error_set(err, 0, "%s `%s` is owned by uid %u, not by uid %u that tether runs as",
                         field, file, (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 0077)
        return error_set(err, 0, "%s `%s` may be read by others (mode %04o): make it 0600", field,
                         file, (unsigned)(st.st_mode & 07777));
    struct secret *s;
    if (secret_new(max + 1, &s, err) < 0)
        return error_wrap(err, "%s `%s`", field, file);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, s->data + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            secret_free(s);
            return error_set(err, e, "%s `%s`", field, file);
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            secret_free(s);
            return error_set(err, 0, "%s `%s`: longer than %zu KiB", field, file, max >> 10);
        }
    }
    s->len = n;
    *out = s;
    return 0;
}

/* The bearer token: from a file only (never argv or the environment). */
static int read_token(const char *file, struct secret **out, tether_error_t *err)
{
    if (read_credential("opa.bearer_token_file", file, TOKEN_MAX, out, err) < 0)
        return -1;
    struct secret *t = *out;
    while (t->len > 0 && (t->data[t->len - 1] == '\n' || t->data[t->len - 1] == '\r'))
        t->len--;
    const char *why = t->len == 0 ? "empty" : NULL;
    for (size_t i = 0; why == NULL && i < t->len; i++)
        if (t->data[i] < 0x21 || t->data[i] > 0x7e)
            why = "not a token (a byte that is not printable)";
    if (why != NULL) {
        secret_free(t);
        *out = NULL;
        return error_set(err, 0, "opa.bearer_token_file `%s`: %s", file, why);
    }
    return 0;
}

static void opa_free(struct policy *p)
{
    struct opa_policy *op = (struct opa_policy *)p;
    for (struct curl_slist *h = op->headers; h != NULL; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    sym_curl_slist_free_all(op->headers);
    secret_free(op->client_key);
    free(op->endpoint);
    free(op->unix_socket);
    free(op->shown_url);
    free(op->path);
    free(op->ca_file);
    free(op->client_cert);
    free(op);
}

static cJSON *engine_info(const struct opa_policy *op)
{
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "url", op->shown_url);
    cJSON_AddStringToObject(info, "path", op->path);
    return info;
}

/* The uid the kernel shows for every uid that tether's user namespace does not map (the
 * overflow uid, 65534), when it leaves any unmapped; else -1.  In a namespace that maps every
 * uid (the initial one, or one whose map covers all 4294967295 in pieces), it is one user's
 * (nobody's).  A map that cannot be read is taken as leaving uids unmapped, and an overflow
 * uid that cannot be read then as OVERFLOW_UNKNOWN: no uid vouches at all. */
#define OVERFLOW_UNKNOWN (-3L)
static long overflow_uid_ambiguous(void)
{
    static long answer = -2;
    if (answer != -2)
        return answer;
    unsigned long long inside, outside, count, mapped = 0;
    FILE *f = fopen("/proc/self/uid_map", "re");
    while (f != NULL && fscanf(f, "%llu %llu %llu", &inside, &outside, &count) == 3)
        mapped += count;
    bool all = f != NULL && feof(f) && mapped == 4294967295ull;
    if (f != NULL)
        fclose(f);
    if (all)
        return answer = -1;
    long overflow = OVERFLOW_UNKNOWN;
    f = fopen("/proc/sys/kernel/overflowuid", "re");
    if (f == NULL || fscanf(f, "%ld", &overflow) != 1 || overflow < 0)
        overflow = OVERFLOW_UNKNOWN;
    if (f != NULL)
        fclose(f);
    return answer = overflow;
}

/* Root owns the node, and the user tether runs as owns tether itself; anyone else must be
 * named by the node's configuration.  Why uid is not trusted goes into buf, as the end of
 * "... is served by uid N", or NULL when it is. */
static const char *uid_refused(const struct opa_policy *op, uid_t uid, char *buf, size_t size)
{
    long overflow = overflow_uid_ambiguous();
    if ((long)uid == overflow) {
        snprintf(buf, size,
                 "uid %u, which this user namespace shows for every uid it does not map: it "
                 "vouches for nobody",
                 (unsigned)uid);
        return buf;
    }
    if (overflow == OVERFLOW_UNKNOWN) {
        snprintf(buf, size,
                 "uid %u, and this user namespace leaves uids unmapped while "
                 "/proc/sys/kernel/overflowuid, the uid they show as, cannot be read",
                 (unsigned)uid);
        return buf;
    }
    if (uid == 0 || uid == geteuid() || (op->server_uid >= 0 && uid == (uid_t)op->server_uid))
        return NULL;
    snprintf(buf, size, "uid %u (trusted are root, tether's own uid and opa.server_uid)",
             (unsigned)uid);
    return buf;
}

/* An IPv4 address as the IPv4-mapped IPv6 address, so that /proc/net/tcp and tcp6 compare
 * alike (a dual-stack listener shows IPv4 peers that way). */
static bool addr_parse(const char *text, struct in6_addr *out)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        memset(out, 0, sizeof *out);
        out->s6_addr[10] = out->s6_addr[11] = 0xff;
        memcpy(out->s6_addr + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, text, out) == 1;
}

/* "0100007F" (/proc/net/tcp) or 32 hex digits (tcp6): words of the address in the kernel's
 * byte order, which is this machine's. */
static bool proc_addr_parse(const char *hex, struct in6_addr *out)
{
    size_t n = strlen(hex);
    if (n != 8 && n != 32)
        return false;
    uint32_t words[4];
    for (size_t i = 0; i < n / 8; i++) {
        char w[9];
        memcpy(w, hex + 8 * i, 8);
        w[8] = '\0';
        char *end;
        words[i] = (uint32_t)strtoul(w, &end, 16);
        if (*end != '\0')
            return false;
    }
    memset(out, 0, sizeof *out);
    if (n == 8) {
        out->s6_addr[10] = out->s6_addr[11] = 0xff;
        memcpy(out->s6_addr + 12, &words[0], 4);
    } else {
        memcpy(out->s6_addr, words, 16);
    }
    return true;
}

/* One TCP socket as the kernel lists it: its own address and port, its peer's, its state,
 * owner, and socket file's inode (0 for none). */
struct tcp_sock {
    struct in6_addr la, ra;
    unsigned lport, rport, state, uid;
    unsigned long inode;
};

/* What a socket says about the server end of the connection from local to peer.  Only a
 * socket that a server has accepted and still holds open tells its owner:
 * - until it is accepted it has no socket file (inode 0), and older kernels (Debian 12's
 *   6.1 among them) list it as uid 0: a squatter that is slow to accept would pass for
 *   root (TCP_LINE_QUEUED: wait for the accept);
 * - once the server has closed its end, the kernel may keep the connection as a timewait
 *   socket (FIN_WAIT2 or TIME_WAIT), which has no owner and is listed as uid 0: a squatter
 *   that answers at once and hangs up would pass for root (TCP_LINE_CLOSED).
 * A listener is no server end: whose it is says nothing of who accepts the connection (a
 * squatter's socket bound to `lo`, or to one address, takes it from a wildcard one). */
static enum tcp_line_kind tcp_classify(const struct tcp_sock *t, const struct in6_addr *peer,
                                       int peer_port, const struct in6_addr *local, int local_port)
{
    if (t->state == TCP_LISTEN || t->lport != (unsigned)peer_port ||
        t->rport != (unsigned)local_port || memcmp(&t->la, peer, sizeof *peer) != 0 ||
        memcmp(&t->ra, local, sizeof *local) != 0)
        return TCP_LINE_OTHER;
    if (t->state == TCP_SYN_RECV || (t->state == TCP_ESTABLISHED && t->inode == 0))
        return TCP_LINE_QUEUED;
    return t->state == TCP_ESTABLISHED ? TCP_LINE_SERVER : TCP_LINE_CLOSED;
}

static bool tcp_line_parse(const char *line, struct tcp_sock *t)
{
    char lhex[33], rhex[33];
    return sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %32[0-9A-Fa-f]:%x %x %*s %*s %*s %u %*u %lu", lhex,
                  &t->lport, rhex, &t->rport, &t->state, &t->uid, &t->inode) == 7 &&
           proc_addr_parse(lhex, &t->la) && proc_addr_parse(rhex, &t->ra);
}

enum tcp_line_kind policy_opa_tcp_line(const char *line, const char *peer_ip, int peer_port,
                                       const char *local_ip, int local_port, unsigned *uid)
{
    struct in6_addr peer, local;
    struct tcp_sock t;
    if (!addr_parse(peer_ip, &peer) || !addr_parse(local_ip, &local) || !tcp_line_parse(line, &t))
        return TCP_LINE_OTHER;
    *uid = t.uid;
    return tcp_classify(&t, &peer, peer_port, &local, local_port);
}

static const char not_listed[] = "the kernel lists no server end for the connection";
static const char closed_early[] = "the server closed the connection before anything was sent";

/* The connection being checked: the server's end is the socket whose own address is peer. */
struct conn_ends {
    struct in6_addr peer, local;
    int peer_port, local_port;
};

struct diag_answer {
    union {
        struct nlmsghdr nlh;
        char bytes[8192];
    };
};

/* One exact lookup through sock_diag, req (its nlmsghdr filled): 1 with the kernel's answer
 * in *a (a SOCK_DIAG_BY_FAMILY message of at least min bytes), 0 when the kernel has no such
 * socket, -1 when it cannot say. */
static int diag_ask(const struct nlmsghdr *req, struct diag_answer *a, size_t min)
{
    cleanup_close int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (fd < 0 || sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        return -1;
    struct sockaddr_nl from;
    struct iovec iov = {a->bytes, sizeof a->bytes};
    struct msghdr mh = {
        .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &mh, 0);
    const struct nlmsghdr *h = &a->nlh;
    /* The kernel's answer (port 0; only root could send another, and only to us), whole. */
    if (n < 0 || (mh.msg_flags & MSG_TRUNC) || mh.msg_namelen != sizeof from || from.nl_pid != 0 ||
        !NLMSG_OK(h, (size_t)n))
        return -1;
    if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        return h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error == -ENOENT ? 0 : -1;
    }
    return h->nlmsg_type == SOCK_DIAG_BY_FAMILY && h->nlmsg_len >= NLMSG_LENGTH(min) ? 1 : -1;
}

/* What the kernel says of the server's end, once: TCP_LINE_SERVER (with *uid), _QUEUED,
 * _CLOSED, or _OTHER for no such socket; -1 when sock_diag cannot answer. */
static int server_end_by_diag(const struct conn_ends *c, unsigned *uid)
{
    bool v4 = IN6_IS_ADDR_V4MAPPED(&c->peer) && IN6_IS_ADDR_V4MAPPED(&c->local);
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nlh = {.nlmsg_len = sizeof msg,
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST},
        /* Found as the kernel finds the socket a packet from us goes to.  That came in
         * on the loopback device, interface 1 in every network namespace: a socket bound
         * to it (SO_BINDTODEVICE, open to every user) is found too. */
        .req = {.sdiag_family = v4 ? AF_INET : AF_INET6,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = ~0u,
                .id = {.idiag_sport = htons((uint16_t)c->peer_port),
                       .idiag_dport = htons((uint16_t)c->local_port),
                       .idiag_if = 1,
                       .idiag_cookie = {INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE}}},
    };
    memcpy(msg.req.id.idiag_src, v4 ? c->peer.s6_addr + 12 : c->peer.s6_addr, v4 ? 4 : 16);
    memcpy(msg.req.id.idiag_dst, v4 ? c->local.s6_addr + 12 : c->local.s6_addr, v4 ? 4 : 16);
    struct diag_answer answer;
    int found = diag_ask(&msg.nlh, &answer, sizeof(struct inet_diag_msg));
    if (found <= 0)
        return found == 0 ? TCP_LINE_OTHER : -1;
    const struct inet_diag_msg *m = NLMSG_DATA(&answer.nlh);
    struct tcp_sock t = {.lport = ntohs(m->id.idiag_sport),
                         .rport = ntohs(m->id.idiag_dport),
                         .state = m->idiag_state,
                         .uid = m->idiag_uid,
                         .inode = m->idiag_inode};
    if (m->idiag_family == AF_INET) {
        t.la.s6_addr[10] = t.la.s6_addr[11] = t.ra.s6_addr[10] = t.ra.s6_addr[11] = 0xff;
        memcpy(t.la.s6_addr + 12, m->id.idiag_src, 4);
        memcpy(t.ra.s6_addr + 12, m->id.idiag_dst, 4);
    } else if (m->idiag_family == AF_INET6) {
        memcpy(&t.la, m->id.idiag_src, 16);
        memcpy(&t.ra, m->id.idiag_dst, 16);
    } else {
        return -1;
    }
    /* Where no socket has the connection, the kernel finds the listener that a new one
     * would go to: that is no server end (TCP_LINE_OTHER), and neither is anything else. */
    *uid = t.uid;
    return tcp_classify(&t, &c->peer, c->peer_port, &c->local, c->local_port);
}

/* Calls visit on each socket of /proc/net/tcp and tcp6 until it returns true: whether one
 * did. */
static bool tcp_table_find(bool (*visit)(const struct tcp_sock *t, void *arg), void *arg)
{
    for (int v6 = 0; v6 < 2; v6++) {
        FILE *f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
        if (f == NULL)
            continue;
        char line[512];
        struct tcp_sock t;
        bool found = false;
        while (!found && fgets(line, sizeof line, f) != NULL)
            found = tcp_line_parse(line, &t) && visit(&t, arg);
        fclose(f);
        if (found)
            return true;
    }
    return false;
}

struct table_end {
    const struct conn_ends *c;
    bool queued, closed;
    unsigned uid;
};

static bool table_end_visit(const struct tcp_sock *t, void *arg)
{
    struct table_end *e = arg;
    const struct conn_ends *c = e->c;
    enum tcp_line_kind k = tcp_classify(t, &c->peer, c->peer_port, &c->local, c->local_port);
    e->queued = e->queued || k == TCP_LINE_QUEUED;
    e->closed = e->closed || k == TCP_LINE_CLOSED;
    e->uid = t->uid;
    return k == TCP_LINE_SERVER;
}

/* The same from /proc/net/tcp and tcp6, where sock_diag cannot answer: an open server end
 * if there is one, else one waiting to be accepted, else a closed one (the same ports'
 * earlier connection may linger as one). */
static int server_end_by_table(const struct conn_ends *c, unsigned *uid)
{
    struct table_end e = {.c = c};
    if (tcp_table_find(table_end_visit, &e)) {
        *uid = e.uid;
        return TCP_LINE_SERVER;
    }
    return e.queued ? TCP_LINE_QUEUED : e.closed ? TCP_LINE_CLOSED : TCP_LINE_OTHER;
}

struct table_listener {
    const struct opa_policy *op;
    const struct conn_ends *c;
    char *owner; /* why its uid is not trusted */
    size_t size;
};

static bool table_listener_visit(const struct tcp_sock *t, void *arg)
{
    static const struct in6_addr any4 = {.s6_addr = {[10] = 0xff, [11] = 0xff}};
    const struct table_listener *l = arg;
    if (t->state != TCP_LISTEN || t->lport != (unsigned)l->c->peer_port)
        return false;
    bool covers = memcmp(&t->la, &l->c->peer, sizeof t->la) == 0 ||
                  memcmp(&t->la, &any4, sizeof t->la) == 0 || IN6_IS_ADDR_UNSPECIFIED(&t->la);
    return covers && uid_refused(l->op, t->uid, l->owner, l->size) != NULL;
}

/* A listener on the connection's port that could have taken it (on its address, or on a
 * wildcard) and is not a trusted uid's: true, and why not in owner.  A listener vouches for
 * nobody, but one that is not trusted makes a connection that went unaccepted, closed or
 * vanished an attack rather than an outage.  Read from the kernel's table, which lists every
 * listener whatever device it is bound to; on the failure path only. */
static bool untrusted_listener(const struct opa_policy *op, const struct conn_ends *c, char *owner,
                               size_t size)
{
    struct table_listener l = {op, c, owner, size};
    return tcp_table_find(table_listener_visit, &l);
}

/* No server end to judge (why): an outage (*unanswered), unless a listener that could have
 * taken the connection is not trusted, which makes it an attack. */
static const char *no_server_end(const struct opa_policy *op, const struct conn_ends *c,
                                 const char *why, char *buf, size_t size, bool *unanswered)
{
    char owner[160], text[160];
    if (!untrusted_listener(op, c, owner, sizeof owner)) {
        *unanswered = true;
        return why;
    }
    snprintf(text, sizeof text, "%s", why); /* why may be buf */
    snprintf(buf, size, "%.100s, and port %d has a listener of %.150s", text, c->peer_port, owner);
    return buf;
}

/* While the server has not accepted the connection: NULL after a pause (from 100 us,
 * doubling to 10 ms), or, past the deadline, why nothing is sent, in buf. */
static const char *accept_wait(const struct opa_policy *op, uint64_t deadline, useconds_t *pause,
                               char *buf, size_t size)
{
    if (time_mono_ns() >= deadline) {
        snprintf(buf, size,
                 "the server did not accept the connection within %ld ms "
                 "(opa.connect_timeout_ms)",
                 op->connect_timeout_ms);
        return buf;
    }
    usleep(*pause);
    *pause = *pause * 2 < 10000 ? *pause * 2 : 10000;
    return NULL;
}

/* Who owns the server end of this TCP connection: the server that accepted it.  Until it
 * is accepted, it has no owner to ask (and older kernels list it as root's), and whose the
 * listeners are does not say who will accept it; so tether waits for the accept, up to
 * opa.connect_timeout_ms (a server that accepts only once data arrives, TCP_DEFER_ACCEPT,
 * cannot be checked, and is refused).  Returns NULL when the owner is trusted, else why
 * not. */
static const char *tcp_owner_check(const struct opa_policy *op, const char *peer_ip, int peer_port,
                                   const char *local_ip, int local_port, char *buf, size_t size,
                                   bool *unanswered)
{
    struct conn_ends c = {.peer_port = peer_port, .local_port = local_port};
    if (!addr_parse(peer_ip, &c.peer) || !addr_parse(local_ip, &c.local)) {
        /* curl could not name the ends: the connection was reset before the check (OPA
         * stopping).  Nothing is sent; since opa.url names an address, nobody but OPA can
         * hold its port while OPA is up, so this is no answer, as a reset is. */
        *unanswered = true;
        return "the connection was gone before its ends could be read";
    }
    uint64_t deadline = time_mono_ns() + (uint64_t)op->connect_timeout_ms * 1000000;
    for (useconds_t pause = 100;;) {
        unsigned uid = 0;
        int end = server_end_by_diag(&c, &uid);
        if (end < 0)
            end = server_end_by_table(&c, &uid);
        switch (end) {
        case TCP_LINE_SERVER: {
            char why[160];
            if (uid_refused(op, uid, why, sizeof why) == NULL)
                return NULL;
            snprintf(buf, size, "port %d is served by %s", peer_port, why);
            return buf;
        }
        case TCP_LINE_QUEUED:
            if (accept_wait(op, deadline, &pause, buf, size) == NULL)
                break;
            return no_server_end(op, &c, buf, buf, size, unanswered);
        case TCP_LINE_CLOSED:
            return no_server_end(op, &c, closed_early, buf, size, unanswered);
        default:
            /* A listener that closed between our connect and the check took the
             * connection with it: nothing was sent, as when nobody listened at all. */
            return no_server_end(op, &c, not_listed, buf, size, unanswered);
        }
    }
}

/* What sock_diag says of a unix socket. */
struct unix_end {
    bool has_peer, has_uid;
    uint32_t peer; /* its peer's inode: 0 while the peer is not accepted, or is closed */
    uint32_t uid;  /* its owner: whoever accepted it (UDIAG_SHOW_UID, Linux 5.3 and later) */
    uint8_t shutdown;
};

#define NO_COOKIE UINT64_MAX /* both halves INET_DIAG_NOCOOKIE */

/* The socket with inode ino (and cookie, unless NO_COOKIE), in this network
 * namespace: 1 with *e, 0 when there is none, -1 when the kernel cannot say (no unix_diag).
 * An inode number alone may name another socket: the numbers wrap at 2^32. */
static int unix_diag(uint32_t ino, uint64_t cookie, uint32_t show, struct unix_end *e)
{
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } msg = {
        .nlh = {.nlmsg_len = sizeof msg,
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST},
        .req = {.sdiag_family = AF_UNIX,
                .udiag_states = ~0u,
                .udiag_ino = ino,
                .udiag_show = show,
                .udiag_cookie = {(uint32_t)cookie, (uint32_t)(cookie >> 32)}},
    };
    struct diag_answer answer;
    int found = diag_ask(&msg.nlh, &answer, sizeof(struct unix_diag_msg));
    if (found <= 0)
        return found;
    struct unix_diag_msg *m = NLMSG_DATA(&answer.nlh);
    if (m->udiag_family != AF_UNIX || m->udiag_ino != ino)
        return -1;
    *e = (struct unix_end){0};
    int rem = (int)(answer.nlh.nlmsg_len - NLMSG_LENGTH(sizeof *m));
    for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, rem); a = RTA_NEXT(a, rem)) {
        if (a->rta_type == UNIX_DIAG_SHUTDOWN && RTA_PAYLOAD(a) >= 1) {
            e->shutdown = *(const uint8_t *)RTA_DATA(a);
        } else if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= 4) {
            memcpy(&e->peer, RTA_DATA(a), 4);
            e->has_peer = true;
        } else if (a->rta_type == UNIX_DIAG_UID && RTA_PAYLOAD(a) >= 4) {
            memcpy(&e->uid, RTA_DATA(a), 4);
            e->has_uid = true;
        }
    }
    return 1;
}

/* The server's end of a unix connection, as of a TCP one: the socket that accepted tether's,
 * owned by whoever accepted it, and its listener too.  SO_PEERCRED names whoever listened,
 * and a root listener may hand its connections to any user (socket activation, a master and
 * its workers); the accepted end is found by its inode number, which wraps.  So both must be
 * trusted uids', and the accepted end must be tether's socket's peer, both ways, before and
 * after its owner is read: a number that names another socket by then is refused.  Until the
 * server accepts, the peer of tether's socket has no inode: tether waits for it, up to the
 * connect timeout.  (An accepted end is always in the connecting socket's network namespace,
 * wherever its listener is.) */
static const char *unix_owner_check(const struct opa_policy *op, int fd, char *buf, size_t size,
                                    bool *unanswered)
{
    static const char no_diag[] = "the kernel cannot name the socket's server end (sock_diag "
                                  "for unix sockets, with owners from Linux 5.3)";
    struct stat st;
    uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    if (fd < 0 || fstat(fd, &st) < 0)
        return "the connection's socket cannot be read";
    if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0 || len != sizeof cookie)
        return no_diag;
    uint32_t mine = (uint32_t)st.st_ino;
    /* The listener first: one that is not trusted is an attack, whether or not it accepts. */
    char owner[160];
    struct ucred cred;
    len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred)
        return "the server's credentials cannot be read (SO_PEERCRED)";
    if (uid_refused(op, cred.uid, owner, sizeof owner) != NULL) {
        snprintf(buf, size, "the socket's listener is %s", owner);
        return buf;
    }
    uint64_t deadline = time_mono_ns() + (uint64_t)op->connect_timeout_ms * 1000000;
    for (useconds_t pause = 100;;) {
        struct unix_end me, server, again;
        if (unix_diag(mine, cookie, UDIAG_SHOW_PEER, &me) <= 0 || !me.has_peer)
            return no_diag;
        if (me.peer != 0) {
            int found = unix_diag(me.peer, NO_COOKIE, UDIAG_SHOW_PEER | UDIAG_SHOW_UID, &server);
            if (found < 0 || (found > 0 && !server.has_uid))
                return no_diag;
            /* Gone, or the number names another socket by now: the server end closed. */
            if (found == 0 || !server.has_peer || server.peer != mine ||
                unix_diag(mine, cookie, UDIAG_SHOW_PEER, &again) <= 0 || !again.has_peer ||
                again.peer != me.peer || (again.shutdown & 1)) {
                *unanswered = true;
                return closed_early;
            }
            if (uid_refused(op, server.uid, owner, sizeof owner) == NULL)
                return NULL;
            snprintf(buf, size, "the socket is served by %s", owner);
            return buf;
        }
        /* Not accepted: closed (the kernel's RCV_SHUTDOWN), or still waiting. */
        const char *why =
            me.shutdown & 1 ? closed_early : accept_wait(op, deadline, &pause, buf, size);
        if (why != NULL) {
            *unanswered = true;
            return why;
        }
    }
}

static int on_socket(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    struct conn_check *cc = ud;
    if (purpose == CURLSOCKTYPE_IPCXN)
        cc->fd = fd;
    return CURL_SOCKOPT_OK;
}

/* Connected, the request not yet sent: the last moment to decide whether to send it. */
static int on_connected(void *ud, char *peer_ip, char *local_ip, int peer_port, int local_port)
{
    struct conn_check *cc = ud;
    const struct opa_policy *op = cc->op;
    cc->connected = true;
    const char *why = NULL;
    char buf[320];
    if (op->tls) {
        why = NULL; /* the certificate was verified */
    } else if (op->unix_socket != NULL) {
        why = unix_owner_check(op, cc->fd, buf, sizeof buf, &cc->unanswered);
    } else {
        why = tcp_owner_check(op, peer_ip, peer_port, local_ip, local_port, buf, sizeof buf,
                              &cc->unanswered);
    }
    if (why != NULL) {
        snprintf(cc->refused, sizeof cc->refused, "%s", why);
        return CURL_PREREQFUNC_ABORT;
    }
    cc->trusted = true;
    return CURL_PREREQFUNC_OK;
}

/* Decrypted TLS records are wiped once curl has them, and when the connection goes. */
static CURLcode on_ssl_ctx(CURL *c, void *ssl_ctx, void *ud)
{
    (void)c;
    (void)ud;
    sym_SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
    return CURLE_OK;
}

/* The one failure opa.fail_open may start a workload on, and the only one retried: no
 * connection was made, so nothing reached OPA.  Whatever happens after a connection (TLS,
 * a reset, an empty reply, a timeout, an HTTP error) is a deny, and never sent again.  A
 * server that accepts and resets at once makes curl say "couldn't connect" too, with
 * ECONNRESET: somebody was there, so that is no outage. */
static bool never_connected(CURLcode rc, CURL *curl, const struct conn_check *cc)
{
    curl_off_t connected = 0;
    long os_errno = 0;
    if (cc->connected ||
        sym_curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connected) != CURLE_OK ||
        connected != 0 || sym_curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno) != CURLE_OK)
        return false;
    if (rc == CURLE_COULDNT_RESOLVE_HOST)
        return true;
    if (rc != CURLE_COULDNT_CONNECT && rc != CURLE_OPERATION_TIMEDOUT)
        return false;
    switch (os_errno) {
    case 0:            /* the connect timeout */
    case ECONNREFUSED: /* no listener */
    case ENOENT:       /* no unix socket */
    case EAGAIN:       /* a unix socket's backlog is full: nothing was accepted */
    case ETIMEDOUT:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
    case EADDRNOTAVAIL:
        return true;
    default:
        return false;
    }
}

static CURL *request_new(const struct opa_policy *op, const char *payload, struct body *body,
                         struct conn_check *cc, char *errbuf, tether_error_t *err)
{
    CURL *c = sym_curl_easy_init();
    if (c == NULL) {
        error_set(err, 0, "opa: cannot initialise libcurl");
        return NULL;
    }
    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = sym_curl_easy_setopt(c, opt, val);                                                \
    } while (0)
    SET(CURLOPT_URL, op->endpoint);
    if (op->unix_socket != NULL)
        SET(CURLOPT_UNIX_SOCKET_PATH, op->unix_socket);
    SET(CURLOPT_HTTPHEADER, op->headers);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, ""); /* no proxy from the environment may stand in for OPA */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, op->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, op->timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)op->max_response);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (op->tls)
        SET(CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    if (op->ca_file != NULL) {
        /* The given CA alone: not the system's public CAs besides. */
        SET(CURLOPT_CAINFO, op->ca_file);
        SET(CURLOPT_CAPATH, NULL);
    }
    if (op->client_cert != NULL) {
        struct curl_blob key = {
            .data = op->client_key->data, .len = op->client_key->len, .flags = CURL_BLOB_NOCOPY};
        SET(CURLOPT_SSLCERT, op->client_cert);
        SET(CURLOPT_SSLKEY_BLOB, &key);
    }
    SET(CURLOPT_SOCKOPTFUNCTION, on_socket);
    SET(CURLOPT_SOCKOPTDATA, cc);
    SET(CURLOPT_PREREQFUNCTION, on_connected);
    SET(CURLOPT_PREREQDATA, cc);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, body);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_POSTFIELDS, payload);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
    SET(CURLOPT_USERAGENT, "tether/0.1.0");
#undef SET
    if (rc != CURLE_OK) {
        sym_curl_easy_cleanup(c);
        error_set(err, 0, "opa: libcurl: %s", sym_curl_easy_strerror(rc));
        return NULL;
    }
    return c;
}

static int opa_evaluate(struct policy *p, const cJSON *input, cJSON **doc, cJSON **info,
                        tether_error_t *err)
{
    struct opa_policy *op = (struct opa_policy *)p;
    cleanup_json cJSON *req = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(req, "input", (cJSON *)input);
    cleanup_free char *payload = json_print(req);
    *info = engine_info(op);

    /* A handle per request, so that each request makes its own connection, checked before
     * it is used, and curl's buffers are freed (and wiped) before the answer is parsed. */
    struct body body = {0};
    struct conn_check cc;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode rc;
    bool unreachable;
    long status = 0;
    for (long attempt = 0;; attempt++) {
        body_wipe(&body);
        body.max = op->max_response;
        cc = (struct conn_check){.op = op, .fd = CURL_SOCKET_BAD};
        errbuf[0] = '\0';
        CURL *c = request_new(op, payload, &body, &cc, errbuf, err);
        if (c == NULL) {
            body_wipe(&body);
            return -1;
        }
        rc = sym_curl_easy_perform(c);
        unreachable = rc != CURLE_OK && never_connected(rc, c, &cc);
        sym_curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        sym_curl_easy_cleanup(c);
        if (!unreachable || attempt >= op->retries)
            break;
        usleep(100 * 1000);
    }
    if (cc.refused[0] != '\0') {
        /* Never fail-open: a connection was made, to whoever.  An untrusted peer on OPA's
         * address is an attack; a server end that closed, or did not accept in time, is
         * no answer (which a monitor takes as an outage, within monitor.fail_grace_s). */
        body_wipe(&body);
        error_set(err, EPERM, "OPA `%s`: nothing sent: %s", op->shown_url, cc.refused);
        if (cc.unanswered)
            (*err)->code = POLICY_NO_ANSWER;
        return -1;
    }
    if (rc != CURLE_OK) {
        bool over = body.over || rc == CURLE_FILESIZE_EXCEEDED;
        body_wipe(&body);
        if (over)
            return error_set(err, 0, "OPA `%s`: the answer is larger than %zu bytes", op->shown_url,
                             op->max_response);
        error_set(err, 0, "OPA `%s`: %s", op->shown_url,
                  errbuf[0] ? errbuf : sym_curl_easy_strerror(rc));
        /* A dropped connection, but not a hanging OPA: a hanging policy is drift. */
        bool no_answer = (status == 0 && (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
                                          rc == CURLE_SEND_ERROR || rc == CURLE_COULDNT_CONNECT)) ||
                         rc == CURLE_PARTIAL_FILE; /* an answer cut short: OPA stopping */
        (*err)->code = unreachable ? POLICY_UNREACHABLE : no_answer ? POLICY_NO_ANSWER : EPROTO;
        return -1;
    }
    if (!cc.trusted) {
        /* Not reached while curl calls the pre-request hook for every request; should it
         * ever skip it, an answer from an unchecked peer is still no answer. */
        body_wipe(&body);
        return error_set(err, EPERM, "OPA `%s`: the server was not authenticated", op->shown_url);
    }

    cJSON *answer_info = NULL;
    int r = policy_opa_parse_answer(status, body.data ? body.data : "", body.len, op->shown_url,
                                    op->path, doc, &answer_info, err);
    body_wipe(&body);
    if (answer_info != NULL) {
        cJSON_Delete(*info);
        *info = answer_info;
    }
    return r;
}

int policy_opa_parse_answer(long status, const char *body, size_t len, const char *url,
                            const char *path, cJSON **result, cJSON **info, tether_error_t *err)
{
    *result = NULL;
    *info = NULL;
    cleanup_json cJSON *answer = NULL;
    cleanup_error tether_error_t perr = NULL;
    int parsed = json_parse(body, len, &answer, &perr);
    if (status != 200) {
        /* OPA's error document: {"code": "...", "message": "..."} */
        const char *ecode = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "code"));
        const char *emsg =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "message"));
        return error_set(err, 0, "OPA `%s` answered HTTP %ld%s%s%s%.200s", url, status,
                         ecode ? " " : "", ecode ? ecode : "", emsg ? ": " : "", emsg ? emsg : "");
    }
    if (parsed < 0)
        return error_set(err, 0, "OPA `%s`: the answer is %s", url, perr->msg);
    if (!cJSON_IsObject(answer))
        return error_set(err, 0, "OPA `%s`: the answer is not a JSON object", url);
    *info = cJSON_CreateObject();
    cJSON_AddStringToObject(*info, "url", url);
    cJSON_AddStringToObject(*info, "path", path);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "decision_id"));
    if (id != NULL)
        cJSON_AddStringToObject(*info, "decision_id", id);
    cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(answer, "result");
    if (res == NULL)
        return error_set(err, 0, "OPA `%s`: the decision `%s` is undefined (no `result`)", url,
                         path);
    *result = res;
    return 0;
}

static const struct policy_ops opa_ops = {
    .engine = "opa",
    .evaluate = opa_evaluate,
    .free = opa_free,
};

static int add_token_header(struct opa_policy *op, const struct secret *token, tether_error_t *err)
{
    size_t n = token->len + sizeof "Authorization: Bearer ";
    struct secret *line;
    if (secret_new(n, &line, err) < 0)
        return error_wrap(err, "opa.bearer_token_file");
    snprintf((char *)line->data, n, "Authorization: Bearer %.*s", (int)token->len,
             (const char *)token->data);
    op->headers = sym_curl_slist_append(op->headers, (const char *)line->data);
    secret_free(line);
    return 0;
}

int policy_opa_open(const struct opa_options *o, struct policy **out, tether_error_t *err)
{
    static bool curl_ready;
    if (curl_load(err) < 0)
        return -1;
    if (!curl_ready) {
        if (sym_curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free, wipe_realloc,
                                     wipe_strdup, calloc) != CURLE_OK)
            return error_set(err, 0, "opa: cannot initialise libcurl");
        curl_ready = true;
    }
    const char *path = o->path ? o->path : "tether/decision";
    while (*path == '/')
        path++;
    if (!path_valid(path))
        return error_set(err, 0,
                         "opa.path `%s` is not a decision path (segments of letters, "
                         "digits, _ . -)",
                         o->path);
    if ((o->client_cert == NULL) != (o->client_key == NULL))
        return error_set(err, 0, "opa.client_cert and opa.client_key go together");

    /* Trust anchors that curl reads by path: checked like every file tether trusts (they
     * are public, so only who may write them matters). */
    const char *const anchors[][2] = {{"opa.ca_file", o->ca_file},
                                      {"opa.client_cert", o->client_cert}};
    for (size_t i = 0; i < 2; i++) {
        if (anchors[i][1] == NULL)
            continue;
        int fd = trust_open(anchors[i][1], 0, err);
        if (fd < 0)
            return error_wrap(err, "%s", anchors[i][0]);
        close(fd);
    }

    struct opa_policy *op = xcalloc(1, sizeof *op);
    op->base.ops = &opa_ops;
    op->shown_url = policy_opa_redact_url(o->url);
    op->base.source = xstrdup(op->shown_url);
    op->path = xstrdup(path);
    op->max_response = (size_t)o->max_response_bytes;
    op->connect_timeout_ms = o->connect_timeout_ms;
    op->timeout_ms = o->timeout_ms;
    op->retries = o->retries;
    op->server_uid = o->server_uid;
    op->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
    op->client_cert = o->client_cert ? xstrdup(o->client_cert) : NULL;
    struct policy *p = &op->base;
    p->bound_ms =
        (uint64_t)(o->connect_timeout_ms + o->timeout_ms) * (uint64_t)(o->retries + 1) + 1000;

    size_t ulen = strlen(o->url);
    while (ulen > 0 && o->url[ulen - 1] == '/')
        ulen--;
    if (strncmp(o->url, "unix://", 7) == 0) {
        if (o->url[7] != '/') {
            policy_free(p);
            return error_set(err, 0, "opa.url: a unix socket needs an absolute path");
        }
        op->unix_socket = xstrndup(o->url + 7, ulen - 7);
        op->endpoint = xasprintf("http://localhost/v1/data/%s", path);
    } else {
        /* The endpoint is the URL with /v1/data/<path> appended to its path, whatever else
         * (credentials, a query) it holds. */
        CURLU *u = sym_curl_url();
        char *scheme = NULL, *host = NULL, *upath = NULL, *endpoint = NULL;
        bool ok = u && sym_curl_url_set(u, CURLUPART_URL, o->url, 0) == CURLUE_OK &&
                  sym_curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                  sym_curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                  sym_curl_url_get(u, CURLUPART_PATH, &upath, 0) == CURLUE_OK;
        bool https = ok && strcmp(scheme, "https") == 0;
        bool http_ok = ok && strcmp(scheme, "http") == 0 && is_loopback(host);
        /* Not localhost, over plain HTTP: it names both address families, and OPA may
         * listen on one only.  A user may then listen on the other, which curl may try
         * first; one that never answers, or hangs up before anything is sent, would look
         * like an OPA outage (a monitor's grace) for as long as it pleased. */
        bool named_localhost =
            ok && strcmp(scheme, "http") == 0 &&
            (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0);
        op->tls = https;
        if (ok && (https || http_ok)) {
            size_t plen = strlen(upath);
            while (plen > 0 && upath[plen - 1] == '/')
                plen--;
            cleanup_free char *full = xasprintf("%.*s/v1/data/%s", (int)plen, upath, path);
            if (sym_curl_url_set(u, CURLUPART_PATH, full, 0) == CURLUE_OK &&
                sym_curl_url_get(u, CURLUPART_URL, &endpoint, 0) == CURLUE_OK)
                op->endpoint = xstrdup(endpoint);
        }
        sym_curl_free(scheme);
        sym_curl_free(host);
        sym_curl_free(upath);
        sym_curl_free(endpoint);
        sym_curl_url_cleanup(u);
        if (op->endpoint == NULL) {
            error_set(err, 0, "opa.url `%s`: %s", op->shown_url,
                      !ok ? "not a URL"
                      : named_localhost
                          ? "http:// must name the address OPA listens on, 127.0.0.1 or [::1], "
                            "not localhost"
                          : "must be https://, or http:// to a loopback address, or unix:///path");
            policy_free(p);
            return -1;
        }
    }

    if (o->client_key != NULL && read_credential("opa.client_key", o->client_key, CLIENT_KEY_MAX,
                                                 &op->client_key, err) < 0) {
        policy_free(p);
        return -1;
    }
    cleanup_secret struct secret *token = NULL;
    if (o->bearer_token_file != NULL && read_token(o->bearer_token_file, &token, err) < 0) {
        policy_free(p);
        return -1;
    }
    op->headers = sym_curl_slist_append(NULL, "Content-Type: application/json");
    op->headers = sym_curl_slist_append(op->headers, "Accept: application/json");
    if (token != NULL && add_token_header(op, token, err) < 0) {
        policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

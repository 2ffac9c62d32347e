/* Sealed workloads (see seal.h and doc/sealed-format.md).  AES-256-GCM in fixed-size chunks,
 * after OpenSSL's demos/cipher/aesgcm.c: each chunk has its own nonce (a random per-file
 * prefix and the chunk's index) and authenticates, besides itself, the sha256 of the whole
 * header, its index and whether it is the last: a changed header or policy, a truncated
 * file, reordered or swapped chunks all fail. */
#define _GNU_SOURCE
#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/trust.h"
#include "core/util.h"

#define CHUNK_MIN 4096u
#define CHUNK_MAX (16u << 20)
#define POLICY_MAX (1u << 20)
#define SEAL_THREADS_MAX 8
#define SHARE_MIN 16     /* chunks: below 1 MiB a share, a thread costs more than it saves */
#define LEAF_WINDOW 4096 /* chunks whose leaves are hashed between two additions to the root */

/* What a signature covers: this, then the digest.  Each version its own, so that no
 * signature over one version's digest stands for another's. */
#define SIGN_CONTEXT_LEN 14
static const char *sign_context(uint16_t version)
{
    return version == 1 ? "tether-seal-v1" : "tether-seal-v2";
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}
static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8), p[1] = (unsigned char)v;
}
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

void seal_header_clear(struct seal_header *h)
{
    free(h->key_id);
    free(h->entrypoint);
    free(h->policy);
    memset(h, 0, sizeof *h);
}

uint64_t seal_chunks(const struct seal_header *h)
{
    uint64_t n = (h->plain_size + h->chunk_size - 1) / h->chunk_size;
    return n ? n : 1; /* an empty workload is one empty, authenticated chunk */
}

uint64_t seal_payload_len(const struct seal_header *h)
{
    return h->plain_size + seal_chunks(h) * SEAL_TAG_LEN;
}

static bool key_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > 255 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("._-", s[i]) != NULL) ||
            s[i] == '\0')
            return false;
    return true;
}

int seal_parse_header(const unsigned char *buf, size_t len, struct seal_header *h,
                      tether_error_t *err)
{
    memset(h, 0, sizeof *h);
    if (len < SEAL_FIXED_LEN || memcmp(buf, SEAL_MAGIC, 8) != 0)
        return error_set(err, 0, "not a sealed workload (no TETHSEAL header)");
    h->version = get16(buf + 8);
    if (h->version < SEAL_VERSION_MIN || h->version > SEAL_VERSION)
        return error_set(err, 0,
                         "sealed format version %u is not supported (this tether reads %u to %u)",
                         h->version, SEAL_VERSION_MIN, SEAL_VERSION);
    h->type = buf[10];
    h->cipher = buf[11];
    h->flags = buf[12];
    if (h->type != SEAL_TYPE_EXECUTABLE && h->type != SEAL_TYPE_ROOTFS)
        return error_set(err, 0, "sealed header: unknown payload type %u", h->type);
    if (h->cipher != SEAL_CIPHER_AES256GCM)
        return error_set(err, 0, "sealed header: unknown cipher %u", h->cipher);
    if ((h->flags & ~SEAL_FLAG_SIGNED) != 0 || buf[13] != 0)
        return error_set(err, 0, "sealed header: unknown flags");
    h->chunk_size = get32(buf + 14);
    if (h->chunk_size < CHUNK_MIN || h->chunk_size > CHUNK_MAX)
        return error_set(err, 0, "sealed header: chunk size %u is out of range", h->chunk_size);
    h->plain_size = get64(buf + 18);
    if (h->plain_size > (UINT64_C(1) << 40))
        return error_set(err, 0, "sealed header: payload size out of range");
    memcpy(h->nonce_prefix, buf + 26, 8);
    size_t kl = get16(buf + 34), el = get16(buf + 36), pl = get32(buf + 38);
    memcpy(h->policy_sha256, buf + 42, 32);
    if (el > 4095 || pl > POLICY_MAX)
        return error_set(err, 0, "sealed header: a field's length is out of range");
    size_t total = SEAL_FIXED_LEN + kl + el + pl;
    if (len < total)
        return error_set(err, 0, "sealed header: truncated");
    const char *p = (const char *)buf + SEAL_FIXED_LEN;
    if (!key_id_valid(p, kl))
        return error_set(err, 0, "sealed header: the key id is not a name of [A-Za-z0-9._-]");
    if (memchr(p + kl, '\0', el) != NULL || memchr(p + kl + el, '\0', pl) != NULL)
        return error_set(err, 0, "sealed header: a NUL byte in the entrypoint or policy");
    if ((h->type == SEAL_TYPE_ROOTFS) != (el > 0))
        return error_set(err, 0, "sealed header: an entrypoint belongs to a root file system");
    unsigned char sha[32];
    sha256_raw(p + kl + el, pl, sha);
    if (memcmp(sha, h->policy_sha256, 32) != 0)
        return error_set(err, 0, "sealed header: the embedded policy does not match its sha256");
    h->key_id = xstrndup(p, kl);
    h->entrypoint = xstrndup(p + kl, el);
    h->policy = xstrndup(p + kl + el, pl);
    h->policy_len = pl;
    h->header_len = total;
    sha256_raw(buf, total, h->header_sha256);
    return 0;
}

static void chunk_nonce_aad(const struct seal_header *h, uint64_t i, bool last,
                            unsigned char nonce[12], unsigned char aad[41])
{
    memcpy(nonce, h->nonce_prefix, 8);
    put32(nonce + 8, (uint32_t)i);
    memcpy(aad, h->header_sha256, 32);
    put64(aad + 32, i);
    aad[40] = last;
}

/* A context for AES-256-GCM under key, with 12-byte nonces: the key schedule is made once,
 * and each chunk only sets its nonce. */
static int gcm_key(EVP_CIPHER_CTX *ctx, int enc, const struct secret *key)
{
    return EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
                   EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
                   EVP_CipherInit_ex(ctx, NULL, NULL, key->data, NULL, enc) == 1
               ? 0
               : -1;
}

/* One chunk through the context gcm_key made; enc=1 writes the tag, enc=0 checks it. */
static int gcm(EVP_CIPHER_CTX *ctx, int enc, const unsigned char nonce[12],
               const unsigned char aad[41], const unsigned char *in, size_t n, unsigned char *out,
               unsigned char tag[SEAL_TAG_LEN])
{
    int len;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) != 1 ||
        EVP_CipherUpdate(ctx, NULL, &len, aad, 41) != 1 ||
        EVP_CipherUpdate(ctx, out, &len, in, (int)n) != 1)
        return -1;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
        return -1;
    if (EVP_CipherFinal_ex(ctx, out + len, &len) != 1)
        return -1;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1)
        return -1;
    return 0;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int seal_write(int in_fd, int out_fd, const struct secret *key, const struct seal_options *o,
               tether_error_t *err)
{
    struct stat st;
    if (fstat(in_fd, &st) < 0)
        return error_set(err, errno, "input");
    if (key->len != 32)
        return error_set(err, 0, "the key must be 32 bytes, not %zu", key->len);
    size_t kl = strlen(o->key_id), el = o->entrypoint ? strlen(o->entrypoint) : 0;
    size_t pl = o->policy ? o->policy_len : 0;
    if (!key_id_valid(o->key_id, kl))
        return error_set(err, 0,
                         "--key-id `%s` must be 1-255 of [A-Za-z0-9._-], not starting "
                         "with a dot",
                         o->key_id);
    if (pl > POLICY_MAX || memchr(o->policy ? o->policy : "", '\0', pl) != NULL)
        return error_set(err, 0, "the policy must be text of at most 1 MiB");
    uint32_t chunk = o->chunk_size ? o->chunk_size : 1u << 16;
    uint16_t version = o->version ? o->version : SEAL_VERSION;
    if (version < SEAL_VERSION_MIN || version > SEAL_VERSION)
        return error_set(err, 0, "format version %u: this tether writes %u to %u", version,
                         SEAL_VERSION_MIN, SEAL_VERSION);

    size_t hlen = SEAL_FIXED_LEN + kl + el + pl;
    cleanup_free unsigned char *hdr = xcalloc(1, hlen);
    memcpy(hdr, SEAL_MAGIC, 8);
    put16(hdr + 8, version);
    hdr[10] = o->entrypoint ? SEAL_TYPE_ROOTFS : SEAL_TYPE_EXECUTABLE;
    hdr[11] = SEAL_CIPHER_AES256GCM;
    hdr[12] = o->signer ? SEAL_FLAG_SIGNED : 0;
    put32(hdr + 14, chunk);
    put64(hdr + 18, (uint64_t)st.st_size);
    if (RAND_bytes(hdr + 26, 8) != 1)
        return error_set(err, 0, "no randomness for the nonce prefix");
    put16(hdr + 34, (uint16_t)kl);
    put16(hdr + 36, (uint16_t)el);
    put32(hdr + 38, (uint32_t)pl);
    sha256_raw(o->policy ? o->policy : "", pl, hdr + 42);
    memcpy(hdr + SEAL_FIXED_LEN, o->key_id, kl);
    if (el)
        memcpy(hdr + SEAL_FIXED_LEN + kl, o->entrypoint, el);
    if (pl)
        memcpy(hdr + SEAL_FIXED_LEN + kl + el, o->policy, pl);

    struct seal_header h;
    if (seal_parse_header(hdr, hlen, &h, err) < 0)
        return error_wrap(err, "internal");
    /* The digest: version 1's over the file's bytes as written; version 2's over the header
     * and each chunk's own sha256 (a leaf). */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    struct sha256 root;
    sha256_begin(&root);
    cleanup_free unsigned char *in = xmalloc(chunk), *out = xmalloc(chunk + SEAL_TAG_LEN);
    int rc = -1;
    if (md == NULL || ctx == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        gcm_key(ctx, 1, key) < 0) {
        error_set(err, 0, "OpenSSL: cannot set up sha256 and AES-256-GCM");
        goto out;
    }
    if (write_all(out_fd, hdr, hlen) < 0) {
        error_set(err, errno, "output");
        goto out;
    }
    EVP_DigestUpdate(md, hdr, hlen);
    sha256_add(&root, hdr, hlen);
    uint64_t n = seal_chunks(&h), left = h.plain_size;
    for (uint64_t i = 0; i < n; i++) {
        size_t m = left < chunk ? (size_t)left : chunk;
        unsigned char nonce[12], aad[41];
        chunk_nonce_aad(&h, i, i + 1 == n, nonce, aad);
        if (read_full(in_fd, in, m) < 0) {
            error_set(err, errno ? errno : EIO, "input: it changed while it was being sealed");
            goto out;
        }
        if (gcm(ctx, 1, nonce, aad, in, m, out, out + m) < 0) {
            error_set(err, 0, "AES-256-GCM failed");
            goto out;
        }
        if (write_all(out_fd, out, m + SEAL_TAG_LEN) < 0) {
            error_set(err, errno, "output");
            goto out;
        }
        if (version == 1) {
            EVP_DigestUpdate(md, out, m + SEAL_TAG_LEN);
        } else {
            unsigned char leaf[32];
            sha256_raw(out, m + SEAL_TAG_LEN, leaf);
            sha256_add(&root, leaf, sizeof leaf);
        }
        left -= m;
        if (o->progress && n > 1)
            fprintf(stderr, "\rtether: sealing %3d%%", (int)((i + 1) * 100 / n));
    }
    if (o->progress && n > 1)
        fprintf(stderr, "\n");
    unsigned char digest[32];
    if (version == 1)
        EVP_DigestFinal_ex(md, digest, NULL);
    else
        sha256_end(&root, digest); /* else out: drops it */
    if (o->signer != NULL) {
        unsigned char msg[SIGN_CONTEXT_LEN + 32], trailer[SEAL_TRAILER_LEN];
        size_t publen = 32, siglen = 64;
        memcpy(msg, sign_context(version), SIGN_CONTEXT_LEN);
        memcpy(msg + SIGN_CONTEXT_LEN, digest, 32);
        EVP_MD_CTX *sctx = EVP_MD_CTX_new();
        bool ok = sctx && EVP_PKEY_get_raw_public_key(o->signer, trailer, &publen) == 1 &&
                  publen == 32 && EVP_DigestSignInit(sctx, NULL, NULL, NULL, o->signer) == 1 &&
                  EVP_DigestSign(sctx, trailer + 32, &siglen, msg, sizeof msg) == 1 && siglen == 64;
        EVP_MD_CTX_free(sctx);
        if (!ok) {
            error_set(err, 0, "signing failed (is --sign an Ed25519 private key?)");
            goto out;
        }
        if (write_all(out_fd, trailer, sizeof trailer) < 0) {
            error_set(err, errno, "output");
            goto out;
        }
    }
    rc = 0;
out:
    sha256_drop(&root);
    explicit_bzero(in, chunk);
    EVP_CIPHER_CTX_free(ctx);
    EVP_MD_CTX_free(md);
    seal_header_clear(&h);
    return rc;
}

static unsigned cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
}

/* Threads for n chunks: every CPU this process may use, with a share of at least SHARE_MIN
 * chunks each. */
static unsigned threads_for(uint64_t n)
{
    unsigned t = cpus();
    if (t > SEAL_THREADS_MAX)
        t = SEAL_THREADS_MAX;
    if (n / SHARE_MIN < t)
        t = n / SHARE_MIN > 0 ? (unsigned)(n / SHARE_MIN) : 1;
    return t;
}

/* A helper thread takes none of the process's signals (the policy's deadline among them). */
static bool thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bool ok = pthread_create(tid, NULL, fn, arg) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* Runs fn over t shares, size bytes apart from shares: the first on this thread, each other
 * on a thread of its own, or on this one where a thread cannot start. */
static void run_shares(void *(*fn)(void *), void *shares, size_t size, unsigned t)
{
    pthread_t tid[SEAL_THREADS_MAX];
    bool started[SEAL_THREADS_MAX] = {false};
    for (unsigned i = 1; i < t; i++)
        started[i] = thread_start(&tid[i], fn, (char *)shares + i * size);
    fn(shares);
    for (unsigned i = 1; i < t; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            fn((char *)shares + i * size);
    }
}

/* The plaintext's pages, allocated while a version 1 file is hashed on one CPU, on a CPU
 * that would otherwise wait: decryption then only copies into them.  Nowhere else: where
 * nothing else would run beside it (digests remembered, or version 2's hashed on every
 * CPU), allocating first and then copying costs more than writes that allocate as they go,
 * since both take the file's inode lock (bench_seal, into a memfd: 0.44-0.50 against
 * 0.63-0.67 for a remembered file, 0.27-0.28 against 0.30-0.32 for a first launch of
 * version 2).  A failure leaves the pages to the writes, which report it. */
static void *reserve(void *arg)
{
    const struct sealed *s = arg;
    (void)fallocate(s->plain.fd, 0, 0, (off_t)s->h.plain_size);
    return NULL;
}

static void reserve_start(struct sealed *s)
{
    /* Below a megabyte a thread costs more than it saves. */
    if (s->h.plain_size < (1u << 20) || s->h.plain_size > SEAL_RESERVE_MAX || cpus() < 2 ||
        memfile_new(&s->plain, "tether-sealed", s->h.plain_size, false, NULL) < 0)
        return;
    s->reserving = thread_start(&s->reserver, reserve, s);
}

static void reserve_wait(struct sealed *s)
{
    if (s->reserving) {
        pthread_join(s->reserver, NULL);
        s->reserving = false;
    }
}

/* Chunk i as stored: its ciphertext and tag, and where. */
static size_t record_len(const struct seal_header *h, uint64_t i)
{
    uint64_t at = i * h->chunk_size;
    return (h->plain_size - at < h->chunk_size ? (size_t)(h->plain_size - at) : h->chunk_size) +
           SEAL_TAG_LEN;
}

static off_t record_off(const struct seal_header *h, uint64_t i)
{
    return (off_t)(h->header_len + i * ((uint64_t)h->chunk_size + SEAL_TAG_LEN));
}

/* A read of the sealed file that failed: e an errno, or -1 where the file came out shorter
 * than it was when opened. */
static int read_failed(tether_error_t *err, int e)
{
    return error_set(err, e > 0 ? e : 0, "sealed file: %s",
                     e > 0 ? "read" : "it changed while it was read");
}

/* One thread's share of version 2's leaves: chunks [first, end), each read once through a
 * buffer of the thread's own (the kernel copies from its page cache; no page of ours is
 * touched twice) and hashed into leaf[i - first]. */
struct leaves {
    const struct seal_header *h;
    int fd;
    uint64_t first, end;
    unsigned char (*leaf)[32];
    int read_errno; /* -1: it shrank since it was opened */
};

static void *leaves_share(void *arg)
{
    struct leaves *w = arg;
    unsigned char *buf = malloc(w->h->chunk_size + SEAL_TAG_LEN);
    if (buf == NULL) {
        w->read_errno = ENOMEM;
        return NULL;
    }
    for (uint64_t i = w->first; i < w->end; i++) {
        size_t m = record_len(w->h, i);
        ssize_t got = pread(w->fd, buf, m, record_off(w->h, i));
        if (got != (ssize_t)m) {
            w->read_errno = got < 0 ? errno : -1;
            break;
        }
        sha256_raw(buf, m, w->leaf[i - w->first]);
    }
    free(buf);
    return NULL;
}

/* Version 2's digest: sha256(header || leaf 0 || ... || leaf n-1), leaf i the sha256 of
 * chunk i as stored.  The leaves do not depend on each other, so each CPU hashes its share
 * of a window of them, and the root takes the window in order. */
static int digest_v2(const struct sealed *s, const unsigned char *header, unsigned char md[32],
                     tether_error_t *err)
{
    const struct seal_header *h = &s->h;
    uint64_t n = seal_chunks(h);
    cleanup_free unsigned char(*leaf)[32] = xmalloc(LEAF_WINDOW * 32);
    struct sha256 root;
    sha256_begin(&root);
    sha256_add(&root, header, h->header_len);
    int rc = 0;
    for (uint64_t at = 0; at < n && rc == 0; at += LEAF_WINDOW) {
        uint64_t k = n - at < LEAF_WINDOW ? n - at : LEAF_WINDOW;
        unsigned t = threads_for(k);
        struct leaves w[SEAL_THREADS_MAX];
        for (unsigned i = 0; i < t; i++)
            w[i] = (struct leaves){h, s->fd, at + k * i / t, at + k * (i + 1) / t, leaf + k * i / t,
                                   0};
        run_shares(leaves_share, w, sizeof w[0], t);
        for (unsigned i = 0; i < t && rc == 0; i++)
            if (w[i].read_errno)
                rc = read_failed(err, w[i].read_errno);
        if (rc == 0)
            sha256_add(&root, leaf, k * 32);
    }
    if (rc == 0)
        sha256_end(&root, md);
    sha256_drop(&root);
    return rc;
}

/* The header, and nothing more: its fixed part says how long the rest is.  (Reading the
 * longest header there could be would touch a megabyte of fresh memory at every launch.) */
static unsigned char *header_read(int fd, uint64_t size, size_t *len, tether_error_t *err)
{
    unsigned char fixed[SEAL_FIXED_LEN];
    ssize_t got = pread(fd, fixed, sizeof fixed, 0);
    if (got != (ssize_t)sizeof fixed) {
        read_failed(err, got < 0 ? errno : -1);
        return NULL;
    }
    size_t want = SEAL_FIXED_LEN;
    size_t kl = get16(fixed + 34), el = get16(fixed + 36), pl = get32(fixed + 38);
    if (memcmp(fixed, SEAL_MAGIC, 8) == 0 && el <= 4095 && pl <= POLICY_MAX)
        want += kl + el + pl; /* else the fixed part alone tells what is wrong */
    if (want > size)
        want = (size_t)size; /* too short: the parser says so */
    unsigned char *buf = xmalloc(want);
    got = pread(fd, buf, want, 0);
    if (got != (ssize_t)want) {
        free(buf);
        read_failed(err, got < 0 ? errno : -1);
        return NULL;
    }
    *len = want;
    return buf;
}

int seal_open(int fd, const struct seal_digests *known, bool to_decrypt, struct sealed *s,
              tether_error_t *err)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->plain.fd = s->plain.ro = -1;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "sealed file");
    if (!S_ISREG(st.st_mode) || st.st_size < SEAL_FIXED_LEN)
        return error_set(err, 0, "not a sealed workload (no TETHSEAL header)");
    size_t len = 0;
    cleanup_free unsigned char *buf = header_read(fd, (uint64_t)st.st_size, &len, err);
    if (buf == NULL || seal_parse_header(buf, len, &s->h, err) < 0)
        return -1;
    s->has_signature = s->h.flags & SEAL_FLAG_SIGNED;
    uint64_t expect =
        s->h.header_len + seal_payload_len(&s->h) + (s->has_signature ? SEAL_TRAILER_LEN : 0);
    if ((uint64_t)st.st_size != expect) {
        seal_header_clear(&s->h);
        return error_set(err, 0, "sealed file: %s (%lld bytes, the header says %llu)",
                         (uint64_t)st.st_size < expect ? "truncated" : "has bytes beyond its end",
                         (long long)st.st_size, (unsigned long long)expect);
    }
    uint64_t end = expect - (s->has_signature ? SEAL_TRAILER_LEN : 0);
    unsigned char trailer[SEAL_TRAILER_LEN];
    if (s->has_signature &&
        pread(fd, trailer, sizeof trailer, (off_t)end) != (ssize_t)sizeof trailer) {
        seal_header_clear(&s->h);
        return error_set(err, EIO, "sealed file: read");
    }
    /* Version 1 is known by both values, version 2 by its digest alone. */
    bool v1 = s->h.version == 1;
    if (known != NULL && known->digest[0] != '\0' && (!v1 || known->file_sha256[0] != '\0')) {
        memcpy(s->digest, known->digest, sizeof s->digest);
        memcpy(s->file_sha256, v1 ? known->file_sha256 : "", v1 ? sizeof s->file_sha256 : 1);
    } else if (!v1) {
        unsigned char digest[32];
        if (digest_v2(s, buf, digest, err) < 0) {
            seal_close(s);
            return -1;
        }
        hex_encode(digest, 32, s->digest);
        s->file_sha256[0] = '\0';
    } else {
        if (to_decrypt)
            reserve_start(s);
        /* One pass gives both: the digest over header and ciphertext (what is signed, what
         * policies see), and, with the trailer after it, the whole file's sha256
         * (exe.sha256).  Read through a small buffer: the kernel copies from its cache,
         * and no page of ours is touched twice. */
        EVP_MD_CTX *md = EVP_MD_CTX_new(), *whole = EVP_MD_CTX_new();
        cleanup_free unsigned char *block = xmalloc(HASH_BLOCK);
        bool ok = md && whole && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
        int read_errno = 0; /* 0 with !ok: it shrank, or OpenSSL failed */
        for (uint64_t off = 0; ok && off < end;) {
            size_t n = end - off < HASH_BLOCK ? (size_t)(end - off) : HASH_BLOCK;
            ssize_t r = pread(fd, block, n, (off_t)off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                read_errno = errno;
            ok = r > 0 && EVP_DigestUpdate(md, block, (size_t)r) == 1;
            off += r > 0 ? (uint64_t)r : 0;
        }
        unsigned char digest[32], file[32];
        ok = ok && EVP_MD_CTX_copy_ex(whole, md) == 1 &&
             EVP_DigestFinal_ex(md, digest, NULL) == 1 &&
             EVP_DigestUpdate(whole, trailer, s->has_signature ? sizeof trailer : 0) == 1 &&
             EVP_DigestFinal_ex(whole, file, NULL) == 1;
        EVP_MD_CTX_free(md);
        EVP_MD_CTX_free(whole);
        if (!ok) {
            seal_close(s);
            return error_set(err, read_errno, "sealed file: %s",
                             read_errno ? "read" : "it changed while it was read");
        }
        hex_encode(digest, 32, s->digest);
        hex_encode(file, 32, s->file_sha256);
    }
    if (s->has_signature) {
        memcpy(s->signer_pub, trailer, 32);
        memcpy(s->signature, trailer + 32, 64);
        char hex[65];
        sha256_hex(s->signer_pub, 32, hex);
        snprintf(s->signer, sizeof s->signer, "ed25519:%s", hex);
    }
    return 0;
}

void seal_close(struct sealed *s)
{
    reserve_wait(s);
    memfile_close(&s->plain);
    seal_header_clear(&s->h);
}

void seal_identity(const struct sealed *s, char hex[65])
{
    struct sha256 h;
    unsigned char md[32];
    sha256_begin(&h);
    sha256_add(&h, s->digest, 64);
    if (s->has_signature) {
        sha256_add(&h, s->signer_pub, sizeof s->signer_pub);
        sha256_add(&h, s->signature, sizeof s->signature);
    }
    sha256_end(&h, md);
    hex_encode(md, 32, hex);
}

static bool signature_valid(const struct sealed *s)
{
    unsigned char digest[32], msg[SIGN_CONTEXT_LEN + 32];
    for (int i = 0; i < 32; i++)
        sscanf(s->digest + 2 * i, "%2hhx", &digest[i]);
    memcpy(msg, sign_context(s->h.version), SIGN_CONTEXT_LEN);
    memcpy(msg + SIGN_CONTEXT_LEN, digest, 32);
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, s->signer_pub, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = pub && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
              EVP_DigestVerify(ctx, s->signature, 64, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    return ok;
}

int seal_verify(struct sealed *s, const char *const *trusted, size_t n_trusted,
                const char **trusted_file, tether_error_t *err)
{
    *trusted_file = NULL;
    if (n_trusted == 0) {
        if (s->has_signature && !signature_valid(s))
            return error_set(err, 0, "sealed file: the signature does not verify");
        return 0;
    }
    if (!s->has_signature)
        return error_set(err, 0,
                         "sealed file: unsigned, and this node trusts only signed "
                         "workloads (trusted_signers)");
    for (size_t i = 0; i < n_trusted; i++) {
        /* A signer's key decides what runs: it must be root's (see trust.h). */
        int fd = trust_open(trusted[i], 0, err);
        if (fd < 0)
            return error_wrap(err, "trusted_signers");
        FILE *f = fdopen(fd, "r");
        EVP_PKEY *k = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
        if (f)
            fclose(f);
        else
            close(fd);
        unsigned char raw[32];
        size_t rawlen = sizeof raw;
        bool same = k && EVP_PKEY_get_raw_public_key(k, raw, &rawlen) == 1 && rawlen == 32 &&
                    memcmp(raw, s->signer_pub, 32) == 0;
        EVP_PKEY_free(k);
        if (k == NULL)
            return error_set(err, 0, "trusted_signers: `%s` is not an Ed25519 public key in PEM",
                             trusted[i]);
        if (same) {
            if (!signature_valid(s))
                return error_set(err, 0, "sealed file: the signature does not verify");
            *trusted_file = trusted[i];
            return 0;
        }
    }
    return error_set(err, 0, "sealed file: signed by %s, which this node does not trust",
                     s->signer);
}

/* One thread's share of the chunks, [first, end): each read, authenticated and decrypted in
 * buffers of the thread's own, and written at its place.  Streamed through small buffers,
 * not mapped: the kernel copies from its page cache and into the plaintext file's pages, and no
 * page of ours is touched more than once a chunk (on a virtual machine with shadow page tables a
 * first touch costs microseconds). */
struct share {
    const struct sealed *s;
    const struct secret *key;
    int out_fd;
    uint64_t first, end, failed; /* failed: the first chunk that did not open, or UINT64_MAX */
    int read_errno, write_errno;
};

static void *decrypt_share(void *arg)
{
    struct share *w = arg;
    const struct seal_header *h = &w->s->h;
    uint64_t n = seal_chunks(h);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char *in = malloc(h->chunk_size + SEAL_TAG_LEN), *out = malloc(h->chunk_size);
    w->failed = UINT64_MAX;
    if (ctx == NULL || in == NULL || out == NULL || gcm_key(ctx, 0, w->key) < 0) {
        w->failed = w->first;
        goto out;
    }
    for (uint64_t i = w->first; i < w->end; i++) {
        uint64_t at = i * h->chunk_size;
        size_t m = record_len(h, i) - SEAL_TAG_LEN;
        unsigned char nonce[12], aad[41];
        chunk_nonce_aad(h, i, i + 1 == n, nonce, aad);
        ssize_t got = pread(w->s->fd, in, m + SEAL_TAG_LEN, record_off(h, i));
        if (got != (ssize_t)(m + SEAL_TAG_LEN)) {
            w->read_errno = got < 0 ? errno : -1; /* -1: it shrank since it was opened */
            break;
        }
        if (gcm(ctx, 0, nonce, aad, in, m, out, in + m) < 0) {
            w->failed = i;
            break;
        }
        for (size_t done = 0; done < m;) {
            ssize_t r = pwrite(w->out_fd, out + done, m - done, (off_t)(at + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                w->write_errno = r < 0 ? errno : EIO;
                break;
            }
            done += (size_t)r;
        }
        if (w->write_errno)
            break;
    }
out:
    if (out != NULL)
        explicit_bzero(out, h->chunk_size);
    free(in);
    free(out);
    EVP_CIPHER_CTX_free(ctx);
    return NULL;
}

int seal_decrypt(struct sealed *s, const struct secret *key, bool memfd_only, tether_error_t *err)
{
    reserve_wait(s);
    if (key->len != 32)
        return error_set(err, 0, "the key is %zu bytes, not 32", key->len);
    const struct seal_header *h = &s->h;
    /* Reserved before the decision said what the workload may hold: its pages are wasted,
     * and the memfd gets none reserved. */
    if (memfd_only && s->plain.ro >= 0)
        memfile_close(&s->plain);
    if (s->plain.fd < 0 &&
        memfile_new(&s->plain, "tether-sealed", h->plain_size, memfd_only, err) < 0)
        return -1;
    int out_fd = s->plain.fd;
    uint64_t n = seal_chunks(h);
    unsigned t = threads_for(n);
    /* The plaintext's size first: huge pages are given only within a file's size (the
     * private tmpfs's huge=within_size, or a host's shmem_enabled=within_size for a memfd),
     * so that every write lands in them. */
    if (ftruncate(out_fd, (off_t)h->plain_size) < 0)
        return error_set(err, errno, "decrypting into memory");
    struct share w[SEAL_THREADS_MAX];
    for (unsigned i = 0; i < t; i++)
        w[i] = (struct share){s, key, out_fd, n * i / t, n * (i + 1) / t, UINT64_MAX, 0, 0};
    run_shares(decrypt_share, w, sizeof w[0], t);
    int rc = 0;
    for (unsigned i = 0; i < t && rc == 0; i++) {
        if (w[i].read_errno)
            rc = read_failed(err, w[i].read_errno);
        else if (w[i].write_errno)
            rc = error_set(err, w[i].write_errno, "decrypting into memory");
        else if (w[i].failed != UINT64_MAX)
            rc = error_set(err, 0,
                           "sealed file: chunk %llu of %llu failed authentication: the file "
                           "was altered, or the key is not its key",
                           (unsigned long long)w[i].failed + 1, (unsigned long long)n);
    }
    /* Nothing of a file that did not open whole is left behind.  (The kernel frees its
     * pages; they are zeroed before any other use.) */
    if (rc < 0)
        memfile_close(&s->plain);
    return rc;
}

int seal_plaintext(struct sealed *s, mode_t mode, tether_error_t *err)
{
    return memfile_finish(&s->plain, mode, err);
}

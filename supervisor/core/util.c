/* Small helpers used everywhere (see util.h). */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <math.h>
#include <dirent.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "crypto.h"

static void __attribute__((noreturn)) die_oom(void)
{
    static const char msg[] = "tether: out of memory\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        die_oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        die_oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        die_oom();
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        die_oom();
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        die_oom();
    return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        die_oom();
    return s;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

int read_fd(int fd, size_t max, char **out, size_t *len, tether_error_t *err)
{
    size_t cap = 4096, n = 0;
    cleanup_free char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max + 1)
                return error_set(err, 0, "larger than %zu bytes", max);
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return error_set(err, errno, "read");
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max)
            return error_set(err, 0, "larger than %zu bytes", max);
    }
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    *out = steal_pointer(&buf);
    return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *len, tether_error_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return error_set(err, errno, "`%s`", path);
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        return error_set(err, EISDIR, "`%s`", path);
    if (read_fd(fd, max, out, len, err) < 0)
        return error_wrap(err, "`%s`", path);
    return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0' || *s == ' ' || *s == '+')
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

int sha256_fd(int fd, char hex[SHA256_HEX_LEN + 1], tether_error_t *err)
{
    return sha256_fd_copy(fd, -1, UINT64_MAX, hex, err);
}

/* A read lease is refused (EAGAIN) exactly while the file is open for writing anywhere: a
 * descriptor, or a shared writable mapping, made while someone else owned the file or its
 * mode allowed it, still writes after a chown to root or a chmod.  The lease is dropped at
 * once; a break in between (root opening it for writing) would send SIGIO, which is held
 * and discarded.  Only root may lease another's file. */
bool fd_open_for_writing(int fd)
{
    if (geteuid() != 0)
        return false;
    sigset_t io, saved;
    sigemptyset(&io);
    sigaddset(&io, SIGIO);
    sigprocmask(SIG_BLOCK, &io, &saved);
    bool leased = fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
    if (leased)
        fcntl(fd, F_SETLEASE, F_UNLCK);
    while (sigtimedwait(&io, NULL, &(struct timespec){0, 0}) == SIGIO)
        ;
    sigprocmask(SIG_SETMASK, &saved, NULL);
    /* EAGAIN: a writer.  Any other refusal (a file system without leases) cannot tell: a
     * writer too, so that such a file is never trusted in place. */
    return !leased;
}

const char *file_type_name(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return "a regular file";
    case S_IFDIR:
        return "a directory";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFIFO:
        return "a FIFO";
    case S_IFSOCK:
        return "a socket";
    case S_IFLNK:
        return "a symbolic link";
    default:
        return "a file of an unknown type";
    }
}

/* SHA-256: OpenSSL's wherever OpenSSL's configuration could make it anything but its
 * built-in default provider's, libnettle's otherwise.  Both compute the same function, but
 * a FIPS provider, or a configuration that gives no SHA-256 at all, must be obeyed; and
 * loading libcrypto and its configuration costs a start of tether more than the rest of
 * the start (core/crypto.h).  libnettle's it is only when all of these hold:
 *   - none of OPENSSL_CONF, OPENSSL_MODULES, OPENSSL_ENGINES is set;
 *   - the kernel does not run in FIPS mode (/proc/sys/crypto/fips_enabled);
 *   - OpenSSL's module directory holds no provider but its own legacy.so;
 *   - OpenSSL's configuration file (OPENSSLDIR/openssl.cnf) is absent, or is, byte for byte,
 *     one that a distribution ships and that loads nothing (below);
 *   - the libcrypto the loader would find is the one this build's OPENSSLDIR belongs to:
 *     no LD_LIBRARY_PATH or LD_PRELOAD, and no libcrypto.so.3 in the loader's cache but the
 *     build's (a vendor's FIPS build in /usr/local or /opt reads its own configuration).
 * Not a reading of the file: OpenSSL's syntax (continued lines, variables, module names
 * matched by prefix) is too rich to tell safely what a changed file loads.  Any change, or
 * another distribution's file, and SHA-256 is OpenSSL's, under that file. */
static const char *const stock_configurations[] = {
    /* Debian 12 (openssl 3.0.x): `dpkg-deb --fsys-tarfile openssl_3.0.*_amd64.deb |
     * tar -xO ./etc/ssl/openssl.cnf | sha256sum`; its [openssl_init] section is empty. */
    "7ae8cae2e64856b34c80276deb1dcf60f76da27bc1e00382201ba7bb7dc33311",
};

/* Whether the loader's cache (/etc/ld.so.cache) names a libcrypto.so.3 other than the
 * build's: its string table holds every library's path. */
static bool other_libcrypto(void)
{
    static const char name[] = "/libcrypto.so.3";
    struct stat ours, st;
    if (stat(TETHER_LIBCRYPTO, &ours) < 0)
        return true;
    cleanup_close int fd = open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT; /* none: the loader's trusted directories only */
    cleanup_free char *text = NULL;
    size_t len;
    if (read_fd(fd, 16 << 20, &text, &len, NULL) < 0)
        return true;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *hit = memmem(p, (size_t)(end - p), name, sizeof name);
        if (hit == NULL)
            break;
        const char *start = hit;
        while (start > text && start[-1] != '\0')
            start--;
        if (stat(start, &st) < 0 || st.st_dev != ours.st_dev || st.st_ino != ours.st_ino)
            return true;
        p = hit + sizeof name;
    }
    return false;
}

static bool openssl_configured(void)
{
    if (getenv("OPENSSL_CONF") || getenv("OPENSSL_MODULES") || getenv("OPENSSL_ENGINES"))
        return true;
    cleanup_close int fips = open("/proc/sys/crypto/fips_enabled", O_RDONLY | O_CLOEXEC);
    char on = '0';
    if (fips >= 0 && read(fips, &on, 1) != 1)
        on = '1';
    if (on != '0')
        return true;
    DIR *d = opendir(TETHER_OPENSSL_MODULESDIR);
    if (d == NULL && errno != ENOENT)
        return true;
    bool other = false;
    for (struct dirent *e; d != NULL && !other && (e = readdir(d)) != NULL;)
        other = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
                strcmp(e->d_name, "legacy.so") != 0;
    if (d != NULL)
        closedir(d);
    if (other)
        return true;
    cleanup_close int fd = open(TETHER_OPENSSLDIR "/openssl.cnf", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT; /* none: OpenSSL's defaults */
    cleanup_free char *text = NULL;
    size_t len;
    if (read_fd(fd, 1 << 20, &text, &len, NULL) < 0)
        return true;
    struct sha256_ctx h;
    unsigned char md[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_LEN + 1];
    sha256_init(&h);
    sha256_update(&h, len, (const uint8_t *)text);
    sha256_digest(&h, sizeof md, md);
    hex_encode(md, sizeof md, hex);
    bool stock = false;
    for (size_t i = 0; i < sizeof stock_configurations / sizeof stock_configurations[0]; i++)
        stock = stock || strcmp(hex, stock_configurations[i]) == 0;
    return !stock || getenv("LD_LIBRARY_PATH") || getenv("LD_PRELOAD") || other_libcrypto();
}

static bool by_openssl;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    by_openssl = openssl_configured();
}

static bool sha256_is_openssl(void)
{
    pthread_once(&choose_once, choose);
    return by_openssl;
}

/* No SHA-256 means nothing can be measured, chained into the audit trail or checked: a
 * configuration of OpenSSL's (OPENSSL_CONF) whose providers give none, a FIPS provider
 * that failed its self-tests.  tether stops there, before any workload starts, as it does
 * without memory: a digest of garbage would be worse than none. */
static void __attribute__((noreturn)) die_no_sha256(void)
{
    static const char msg[] = "tether: OpenSSL computes no SHA-256 under its configuration "
                              "(OPENSSL_CONF, its providers); nothing can be measured or "
                              "audited, so nothing runs\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(125);
}

void sha256_begin(struct sha256 *h)
{
    h->ossl = NULL;
    if (!sha256_is_openssl()) {
        sha256_init(&h->nettle);
        return;
    }
    h->ossl = EVP_MD_CTX_new();
    if (h->ossl == NULL || EVP_DigestInit_ex(h->ossl, EVP_sha256(), NULL) != 1)
        die_no_sha256();
}

void sha256_add(struct sha256 *h, const void *data, size_t len)
{
    if (h->ossl == NULL)
        sha256_update(&h->nettle, len, data);
    else if (EVP_DigestUpdate(h->ossl, data, len) != 1)
        die_no_sha256();
}

void sha256_end(struct sha256 *h, unsigned char md[32])
{
    unsigned int mdlen = 0;
    if (h->ossl == NULL) {
        sha256_digest(&h->nettle, SHA256_DIGEST_SIZE, md);
        return;
    }
    if (EVP_DigestFinal_ex(h->ossl, md, &mdlen) != 1 || mdlen != 32)
        die_no_sha256();
    EVP_MD_CTX_free(h->ossl);
    h->ossl = NULL;
}

void sha256_drop(struct sha256 *h)
{
    if (h->ossl != NULL)
        EVP_MD_CTX_free(h->ossl);
    h->ossl = NULL;
}

int sha256_fd_copy(int fd, int copy_fd, uint64_t limit, char hex[SHA256_HEX_LEN + 1],
                   tether_error_t *err)
{
    __attribute__((cleanup(sha256_drop))) struct sha256 h = {0};
    if (hex != NULL)
        sha256_begin(&h);
    /* Not a static buffer per thread: the loader zeroes all thread-local storage at every
     * start, whether it is used or not (16 page faults a start, for this one). */
    cleanup_free unsigned char *buf = xmalloc(HASH_BLOCK);
    uint64_t off = 0;
    for (;;) {
        /* One byte past the limit tells whether there is more, without reading it all. */
        size_t want = limit - off < HASH_BLOCK ? (size_t)(limit - off) + 1 : HASH_BLOCK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return error_set(err, errno, "read");
        if (r == 0)
            break;
        if ((uint64_t)r > limit - off)
            return error_set(err, EOVERFLOW, "more than %llu bytes", (unsigned long long)limit);
        if (hex != NULL)
            sha256_add(&h, buf, (size_t)r);
        if (copy_fd >= 0 && write_all(copy_fd, buf, (size_t)r) < 0)
            return error_set(err, errno, "copy");
        off += (uint64_t)r;
    }
    if (hex != NULL) {
        unsigned char md[32];
        sha256_end(&h, md);
        hex_encode(md, 32, hex);
    }
    return 0;
}

int open_regular(const char *path)
{
    cleanup_close int pfd = open(path, O_PATH | O_CLOEXEC);
    struct stat st;
    if (pfd < 0 || fstat(pfd, &st) < 0)
        return -1;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", pfd);
    return open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

int sha256_fd_max(int fd, uint64_t limit, char hex[SHA256_HEX_LEN + 1], tether_error_t *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "stat");
    if (!S_ISREG(st.st_mode))
        return error_set(err, 0, "%s, not a regular file", file_type_name(st.st_mode));
    if ((uint64_t)st.st_size > limit)
        return error_set(err, EOVERFLOW, "%lld bytes, more than the %llu tether reads",
                         (long long)st.st_size, (unsigned long long)limit);
    return sha256_fd_copy(fd, -1, limit, hex, err);
}

void sha256_raw(const void *data, size_t len, unsigned char md[32])
{
    struct sha256 h;
    sha256_begin(&h);
    sha256_add(&h, data, len);
    sha256_end(&h, md);
}

void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    sha256_raw(data, len, md);
    hex_encode(md, 32, hex);
}

void time_rfc3339(char buf[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

uint64_t time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

cJSON *json_string_or_null(const char *s)
{
    return s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull();
}

char *json_print(const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (s == NULL)
        die_oom();
    return s;
}

int json_parse(const char *text, size_t len, cJSON **out, tether_error_t *err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (j != NULL) {
        /* Only white space may follow the document. */
        while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end == text + len) {
            *out = j;
            return 0;
        }
        cJSON_Delete(j);
    } else {
        end = cJSON_GetErrorPtr();
        if (end == NULL || end < text || end > text + len)
            end = text;
    }
    size_t line = 1, col = 1;
    for (const char *p = text; p < end; p++, col++)
        if (*p == '\n')
            line++, col = 0;
    return error_set(err, 0, "invalid JSON at line %zu, column %zu", line, col);
}

bool json_get_int(const cJSON *j, int64_t min, int64_t max, int64_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double d = j->valuedouble;
    /* (double)INT64_MAX rounds up to 2^63, which no int64_t holds: bounded before the cast,
     * and compared exactly after it. */
    if (!isfinite(d) || d != floor(d) || d < -0x1p63 || d >= 0x1p63)
        return false;
    int64_t v = (int64_t)d;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool json_is_list(const cJSON *j)
{
    return cJSON_IsArray(j) || (cJSON_IsObject(j) && j->child == NULL);
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

void json_sort_keys(cJSON *obj)
{
    int n = cJSON_GetArraySize(obj);
    if (!cJSON_IsObject(obj) || n < 2)
        return;
    cJSON **items = xmalloc((size_t)n * sizeof *items);
    int i = 0;
    for (cJSON *c = obj->child; c != NULL; c = c->next)
        items[i++] = c;
    qsort(items, (size_t)n, sizeof *items, by_key);
    /* cJSON's list: next links forward; the head's prev points at the tail. */
    for (i = 0; i < n; i++) {
        items[i]->next = i + 1 < n ? items[i + 1] : NULL;
        items[i]->prev = i > 0 ? items[i - 1] : items[n - 1];
    }
    obj->child = items[0];
    free(items);
}

const char *json_type_name(const cJSON *j)
{
    if (j == NULL)
        return "missing";
    switch (j->type & 0xff) {
    case cJSON_False:
    case cJSON_True:
        return "boolean";
    case cJSON_NULL:
        return "null";
    case cJSON_Number:
        return "number";
    case cJSON_String:
        return "string";
    case cJSON_Array:
        return "array";
    case cJSON_Object:
        return "object";
    default:
        return "invalid";
    }
}

bool name_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* Secret memory (see secret.h). */
#define _GNU_SOURCE
#include "secret.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static size_t live;

size_t secret_live(void)
{
    return live;
}

int secret_new(size_t len, struct secret **out, tether_error_t *err)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t map_len = (len + page - 1) / page * page;
    if (map_len == 0)
        map_len = page;
    void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return error_set(err, errno, "secret memory");
    /* The system call itself: a sanitizer or preload that interposes mlock(3) must not turn
     * the lock into a silent no-op (AddressSanitizer does). */
    if (syscall(SYS_mlock, p, map_len) < 0) {
        int e = errno;
        munmap(p, map_len);
        return error_set(err, e, "secret memory: cannot lock it in RAM");
    }
    /* Out of core dumps, and out of a child's copy after fork. */
    madvise(p, map_len, MADV_DONTDUMP);
    madvise(p, map_len, MADV_WIPEONFORK);
    /* From now on, no core dump and no ptrace attach by the same user. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    struct secret *s = xcalloc(1, sizeof *s);
    s->data = p;
    s->len = len;
    s->map_len = map_len;
    live++;
    *out = s;
    return 0;
}

void secret_free(struct secret *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s->data, s->map_len);
    syscall(SYS_munlock, s->data, s->map_len);
    munmap(s->data, s->map_len);
    free(s);
    live--;
}

int secret_from_base64(const char *b64, struct secret **out, tether_error_t *err)
{
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0)
        return error_set(err, 0, "not valid base64 (its length is not a multiple of 4)");
    for (size_t i = 0; i < n; i++) {
        char ch = b64[i];
        bool pad = ch == '=' && i >= n - 2 && (i == n - 1 || b64[n - 1] == '=');
        if (!(pad || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
            return error_set(err, 0, "not valid base64 (a character outside the alphabet)");
    }
    struct secret *s;
    if (secret_new(n / 4 * 3, &s, err) < 0)
        return -1;
    int r = EVP_DecodeBlock(s->data, (const unsigned char *)b64, (int)n);
    if (r < 0) {
        secret_free(s);
        return error_set(err, 0, "not valid base64");
    }
    /* EVP_DecodeBlock counts padding bytes as data. */
    s->len = (size_t)r - (b64[n - 1] == '=') - (b64[n - 2] == '=');
    *out = s;
    return 0;
}

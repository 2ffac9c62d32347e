/* Base64 through OpenSSL's block coder, with the strict checks it lacks (see base64.h). */
#define _GNU_SOURCE
#include "base64.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

int base64_valid(const char *s, size_t n)
{
    if (n % 4 != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool pad = ch == '=' && i >= n - 2 && (i == n - 1 || s[n - 1] == '=');
        if (!(pad || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
            return 0;
    }
    return 1;
}

int base64_decode(const char *s, unsigned char **out, size_t *len, tether_error_t *err)
{
    size_t n = strlen(s);
    *out = NULL;
    *len = 0;
    if (n > (size_t)1 << 30 || !base64_valid(s, n))
        return error_set(err, 0, "not valid base64");
    unsigned char *buf = xmalloc(n / 4 * 3 + 1);
    int r = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (r < 0) {
        free(buf);
        return error_set(err, 0, "not valid base64");
    }
    /* EVP_DecodeBlock counts padding bytes as data. */
    size_t m = (size_t)r - (n && s[n - 1] == '=') - (n && s[n - 2] == '=');
    buf[m] = '\0';
    *out = buf;
    *len = m;
    return 0;
}

size_t base64_encode_into(const void *data, size_t n, char *buf)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)buf, data, (int)n);
}

char *base64_encode(const void *data, size_t n)
{
    char *buf = xmalloc(base64_encoded_len(n));
    base64_encode_into(data, n, buf);
    return buf;
}

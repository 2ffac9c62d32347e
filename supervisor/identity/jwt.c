/* ES256 JWTs and the node key's JWK (see jwt.h). */
#define _GNU_SOURCE
#include "jwt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

#include "../core/cleanup.h"
#include "../core/util.h"

#define P256_BYTES 32

char *jwt_b64url(const void *data, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = xmalloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = abc[v >> 18], *o++ = abc[(v >> 12) & 63], *o++ = abc[(v >> 6) & 63],
        *o++ = abc[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = abc[v >> 18], *o++ = abc[(v >> 12) & 63];
        if (i + 1 < n)
            *o++ = abc[(v >> 6) & 63];
    }
    *o = '\0';
    return out;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

int jwt_key_parse(const struct secret *pem, void **key, tether_error_t *err)
{
    *key = NULL;
    BIO *b = BIO_new_mem_buf(pem->data, (int)pem->len);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    char group[32] = "";
    size_t glen = 0;
    if (k == NULL)
        return error_set(err, 0, "the identity key is no unencrypted PEM private key");
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) !=
            1 ||
        strcmp(group, "prime256v1") != 0) {
        EVP_PKEY_free(k);
        return error_set(err, 0, "the identity key must be an EC P-256 key (ES256)");
    }
    *key = k;
    return 0;
}

void jwt_key_free(void *key)
{
    EVP_PKEY_free(key);
}

/* The public point's coordinates, base64url. */
static bool coordinates(EVP_PKEY *k, char **x, char **y)
{
    unsigned char pub[1 + 2 * P256_BYTES];
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &len) != 1 ||
        len != sizeof pub || pub[0] != 0x04)
        return false;
    *x = jwt_b64url(pub + 1, P256_BYTES);
    *y = jwt_b64url(pub + 1 + P256_BYTES, P256_BYTES);
    return true;
}

char *jwt_kid(void *key)
{
    cleanup_free char *x = NULL, *y = NULL;
    if (!coordinates(key, &x, &y))
        return xstrdup("unknown");
    /* RFC 7638: the required members in lexical order, no white space. */
    cleanup_free char *canon =
        xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    unsigned char md[32];
    sha256_raw(canon, strlen(canon), md);
    return jwt_b64url(md, sizeof md);
}

cJSON *jwt_jwk(void *key)
{
    cleanup_free char *x = NULL, *y = NULL, *kid = jwt_kid(key);
    cJSON *j = cJSON_CreateObject();
    if (!coordinates(key, &x, &y))
        return j;
    cJSON_AddStringToObject(j, "kty", "EC");
    cJSON_AddStringToObject(j, "crv", "P-256");
    cJSON_AddStringToObject(j, "x", x);
    cJSON_AddStringToObject(j, "y", y);
    cJSON_AddStringToObject(j, "kid", kid);
    cJSON_AddStringToObject(j, "use", "sig");
    cJSON_AddStringToObject(j, "alg", "ES256");
    return j;
}

int jwt_sign(void *key, const cJSON *claims, struct secret **token, tether_error_t *err)
{
    *token = NULL;
    cleanup_free char *kid = jwt_kid(key);
    cleanup_free char *header =
        xasprintf("{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    cleanup_free char *body = cJSON_PrintUnformatted(claims);
    cleanup_free char *h64 = jwt_b64url(header, strlen(header));
    cleanup_free char *c64 = jwt_b64url(body, strlen(body));
    cleanup_free char *input = xasprintf("%s.%s", h64, c64);

    unsigned char der[128], raw[2 * P256_BYTES];
    size_t dlen = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)input, strlen(input)) == 1;
    EVP_MD_CTX_free(ctx);
    /* JWS wants r and s as two 32-byte big-endian numbers, not DER (RFC 7518, 3.4). */
    const unsigned char *p = der;
    ECDSA_SIG *sig = ok ? d2i_ECDSA_SIG(NULL, &p, (long)dlen) : NULL;
    ok = sig != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, P256_BYTES) == P256_BYTES &&
         BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + P256_BYTES, P256_BYTES) == P256_BYTES;
    ECDSA_SIG_free(sig);
    if (!ok)
        return error_set(err, 0, "signing the identity token failed");
    /* The signature is what makes the token a credential: only the secret keeps it. */
    char *s64 = jwt_b64url(raw, sizeof raw);
    explicit_bzero(raw, sizeof raw);
    explicit_bzero(der, sizeof der);
    size_t n = strlen(input) + 1 + strlen(s64);
    int rc = secret_new(n + 1, token, err);
    if (rc == 0) {
        snprintf((char *)(*token)->data, n + 1, "%s.%s", input, s64);
        (*token)->len = n;
    }
    explicit_bzero(s64, strlen(s64));
    free(s64);
    return rc;
}

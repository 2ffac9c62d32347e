/* JWE (see jwe.h): parsing the JSON serialization, and opening it with a private key through
 * OpenSSL 3: RSA-OAEP (SHA-1), RSA-OAEP-256, and ECDH-ES with the Concat KDF (RFC 7518 4.6)
 * and AES key wrap; the content is A256GCM with the protected header as its AAD. */
#define _GNU_SOURCE
#include "jwe.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <string.h>

#include "../core/cleanup.h"
#include "../core/util.h"
#include "image.h"

static void bytes_clear(struct jwe_bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* A base64url value (no padding) into b; absent is an error only when required. */
static int b64url_value(const cJSON *v, const char *name, bool required, struct jwe_bytes *b,
                        tether_error_t *err)
{
    if (v == NULL && !required)
        return 0;
    if (!cJSON_IsString(v))
        return error_set(err, 0, "the JWE's `%s` must be a base64url string", name);
    size_t n = strlen(v->valuestring);
    b->data = xmalloc(n / 4 * 3 + 3);
    long r = image_base64_decode(v->valuestring, n, true, b->data);
    if (r < 0) {
        bytes_clear(b);
        return error_set(err, 0, "the JWE's `%s` is not valid base64url", name);
    }
    b->len = (size_t)r;
    return 0;
}

static int b64url(const cJSON *obj, const char *name, bool required, struct jwe_bytes *b,
                  tether_error_t *err)
{
    return b64url_value(cJSON_GetObjectItemCaseSensitive(obj, name), name, required, b, err);
}

/* A header parameter from the protected header, the shared unprotected one or the
 * recipient's: it may stand in one of them only (RFC 7516 7.2.1). */
static const cJSON *param(const cJSON *const hdr[3], const char *name, bool *twice)
{
    const cJSON *found = NULL;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(hdr[i], name);
        if (v != NULL && found != NULL)
            *twice = true;
        if (v != NULL && found == NULL)
            found = v;
    }
    return found;
}

static int parse_recipient(const cJSON *const hdr[3], const cJSON *r, struct jwe_recipient *out,
                           bool *known, tether_error_t *err)
{
    bool twice = false;
    *known = false;
    const char *enc = cJSON_GetStringValue(param(hdr, "enc", &twice));
    const char *alg = cJSON_GetStringValue(param(hdr, "alg", &twice));
    if (param(hdr, "zip", &twice) != NULL || param(hdr, "crit", &twice) != NULL)
        return error_set(err, 0, "the JWE uses `zip` or `crit`, which tether does not honour");
    if (enc == NULL || strcmp(enc, "A256GCM") != 0)
        return error_set(err, 0, "the JWE's content encryption is `%s`, not A256GCM",
                         enc ? enc : "(none)");
    if (alg == NULL)
        return error_set(err, 0, "a recipient of the JWE has no `alg`");
    if (strcmp(alg, "RSA-OAEP") == 0)
        out->alg = JWE_RSA_OAEP;
    else if (strcmp(alg, "RSA-OAEP-256") == 0)
        out->alg = JWE_RSA_OAEP_256;
    else if (strcmp(alg, "ECDH-ES+A256KW") == 0)
        out->alg = JWE_ECDH_ES_A256KW;
    else
        return 0; /* a recipient for someone else's kind of key */
    if (b64url(r, "encrypted_key", true, &out->encrypted_key, err) < 0)
        return -1;
    if (out->alg == JWE_ECDH_ES_A256KW) {
        const cJSON *epk = param(hdr, "epk", &twice);
        const char *kty = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(epk, "kty"));
        const char *crv = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(epk, "crv"));
        if (kty == NULL || strcmp(kty, "EC") != 0 || crv == NULL)
            return error_set(err, 0, "an ECDH-ES recipient of the JWE has no EC `epk`");
        out->crv = xstrdup(crv);
        if (b64url(epk, "x", true, &out->epk_x, err) < 0 ||
            b64url(epk, "y", true, &out->epk_y, err) < 0)
            return -1;
        if (b64url_value(param(hdr, "apu", &twice), "apu", false, &out->apu, err) < 0 ||
            b64url_value(param(hdr, "apv", &twice), "apv", false, &out->apv, err) < 0)
            return -1;
    }
    if (twice)
        return error_set(err, 0, "a JWE header parameter stands in more than one header");
    *known = true;
    return 0;
}

int jwe_parse(const char *text, size_t len, struct jwe *j, tether_error_t *err)
{
    memset(j, 0, sizeof *j);
    if (len > JWE_MAX)
        return error_set(err, 0, "the JWE is larger than %u bytes", JWE_MAX);
    cleanup_json cJSON *doc = NULL, *prot = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "the JWE");
    if (!cJSON_IsObject(doc))
        return error_set(err, 0, "the JWE must be a JSON object");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(doc, "protected");
    const cJSON *aad = cJSON_GetObjectItemCaseSensitive(doc, "aad");
    if ((p != NULL && !cJSON_IsString(p)) || (aad != NULL && !cJSON_IsString(aad)))
        return error_set(err, 0, "the JWE's `protected` and `aad` must be strings");
    if (p != NULL) {
        struct jwe_bytes ph = {0};
        if (b64url(doc, "protected", true, &ph, err) < 0)
            return -1;
        int rc = json_parse((const char *)ph.data, ph.len, &prot, err);
        bytes_clear(&ph);
        if (rc < 0)
            return error_wrap(err, "the JWE's protected header");
        if (!cJSON_IsObject(prot))
            return error_set(err, 0, "the JWE's protected header must be an object");
    }
    const cJSON *shared = cJSON_GetObjectItemCaseSensitive(doc, "unprotected");
    if (shared != NULL && !cJSON_IsObject(shared))
        return error_set(err, 0, "the JWE's `unprotected` must be an object");
    struct jwe_bytes aad_bytes = {0};
    if (b64url(doc, "iv", true, &j->iv, err) < 0 ||
        b64url(doc, "ciphertext", true, &j->ciphertext, err) < 0 ||
        b64url(doc, "tag", true, &j->tag, err) < 0 ||
        b64url(doc, "aad", false, &aad_bytes, err) < 0)
        goto fail;
    bytes_clear(&aad_bytes);
    if (j->iv.len != 12 || j->tag.len != 16) {
        error_set(err, 0, "the JWE's `iv` must be 12 bytes and its `tag` 16");
        goto fail;
    }
    j->aad = aad ? xasprintf("%s.%s", p ? p->valuestring : "", aad->valuestring)
                 : xstrdup(p ? p->valuestring : "");

    /* The general serialization lists recipients; the flattened one is its only recipient. */
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "recipients");
    int n = list ? cJSON_GetArraySize(list) : 1;
    if ((list != NULL && !cJSON_IsArray(list)) || n < 1 || n > JWE_RECIPIENTS_MAX) {
        error_set(err, 0, "the JWE's `recipients` must be an array of 1 to %d", JWE_RECIPIENTS_MAX);
        goto fail;
    }
    j->recipients = xcalloc((size_t)n, sizeof *j->recipients);
    for (int i = 0; i < n; i++) {
        const cJSON *r = list ? cJSON_GetArrayItem(list, i) : doc;
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(r, "header");
        if (!cJSON_IsObject(r) || (h != NULL && !cJSON_IsObject(h))) {
            error_set(err, 0, "the JWE's recipient %d must be an object with an object `header`",
                      i);
            goto fail;
        }
        const cJSON *hdr[3] = {prot, shared, h};
        bool known;
        struct jwe_recipient *rec = &j->recipients[j->n_recipients];
        int rc = parse_recipient(hdr, r, rec, &known, err);
        j->n_recipients++; /* cleared with the rest even when it failed */
        if (rc < 0)
            goto fail;
        if (!known) {
            j->n_recipients--;
            memset(rec, 0, sizeof *rec);
        }
    }
    if (j->n_recipients == 0) {
        error_set(err, 0, "the JWE has no RSA-OAEP, RSA-OAEP-256 or ECDH-ES+A256KW recipient");
        goto fail;
    }
    return 0;
fail:
    bytes_clear(&aad_bytes);
    jwe_clear(j);
    return -1;
}

void jwe_clear(struct jwe *j)
{
    for (size_t i = 0; i < j->n_recipients; i++) {
        struct jwe_recipient *r = &j->recipients[i];
        bytes_clear(&r->encrypted_key);
        bytes_clear(&r->apu);
        bytes_clear(&r->apv);
        bytes_clear(&r->epk_x);
        bytes_clear(&r->epk_y);
        free(r->crv);
    }
    free(j->recipients);
    bytes_clear(&j->iv);
    bytes_clear(&j->ciphertext);
    bytes_clear(&j->tag);
    free(j->aad);
    memset(j, 0, sizeof *j);
}

/* RSA-OAEP: the content key, or -1 when this key does not open it. */
static int open_rsa(const struct jwe_recipient *r, EVP_PKEY *pkey, struct secret *cek)
{
    int rc = -1;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    const char *md = r->alg == JWE_RSA_OAEP ? "SHA1" : "SHA256";
    struct secret *out = NULL;
    size_t n = (size_t)EVP_PKEY_get_size(pkey);
    if (ctx == NULL || EVP_PKEY_decrypt_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) != 1 || secret_new(n, &out, NULL) < 0)
        goto out;
    if (EVP_PKEY_decrypt(ctx, out->data, &n, r->encrypted_key.data, r->encrypted_key.len) == 1 &&
        n == 32) {
        memcpy(cek->data, out->data, 32);
        rc = 0;
    }
out:
    secret_free(out);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static const struct {
    const char *jwk, *group;
    size_t field;
} curves[] = {{"P-256", "prime256v1", 32}, {"P-384", "secp384r1", 48}, {"P-521", "secp521r1", 66}};

/* The peer's ephemeral public key; OpenSSL refuses a point that is not on the curve. */
static EVP_PKEY *ephemeral_key(const struct jwe_recipient *r, const char *group, size_t field)
{
    if (r->epk_x.len != field || r->epk_y.len != field)
        return NULL;
    unsigned char point[1 + 2 * 66];
    point[0] = 4; /* uncompressed */
    memcpy(point + 1, r->epk_x.data, field);
    memcpy(point + 1 + field, r->epk_y.data, field);
    EVP_PKEY *peer = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (bld == NULL || ctx == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * field) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1)
        peer = NULL;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return peer;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void digest_len_prefixed(EVP_MD_CTX *md, const void *data, size_t len)
{
    unsigned char n[4];
    be32(n, (uint32_t)len);
    EVP_DigestUpdate(md, n, 4);
    EVP_DigestUpdate(md, data, len);
}

/* ECDH-ES+A256KW: Z from the ephemeral key, the key-wrapping key from the Concat KDF over Z,
 * the algorithm and the parties' information, and the content key unwrapped with it. */
static int open_ecdh(const struct jwe_recipient *r, EVP_PKEY *pkey, struct secret *cek)
{
    char group[64];
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       NULL) != 1)
        return -1;
    size_t field = 0;
    for (size_t i = 0; i < sizeof curves / sizeof *curves; i++)
        if (strcmp(r->crv, curves[i].jwk) == 0 && strcmp(group, curves[i].group) == 0)
            field = curves[i].field;
    if (field == 0)
        return -1; /* another curve: not for this key */
    int rc = -1;
    EVP_PKEY *peer = ephemeral_key(r, group, field);
    EVP_PKEY_CTX *ctx = peer ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_CIPHER *wrap = EVP_CIPHER_fetch(NULL, "AES-256-WRAP", NULL);
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    struct secret *z = NULL, *kek = NULL, *out = NULL;
    size_t zlen = field;
    if (ctx == NULL || md == NULL || wrap == NULL || cctx == NULL ||
        secret_new(field, &z, NULL) < 0 || secret_new(32, &kek, NULL) < 0 ||
        secret_new(r->encrypted_key.len + 16, &out, NULL) < 0 || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) != 1 ||
        EVP_PKEY_derive(ctx, z->data, &zlen) != 1 || zlen != field)
        goto out;
    /* One round of the Concat KDF gives the 256 bits wanted. */
    static const char alg[] = "ECDH-ES+A256KW";
    unsigned char word[4];
    unsigned int klen = 0;
    be32(word, 1);
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, word, 4);
    EVP_DigestUpdate(md, z->data, zlen);
    digest_len_prefixed(md, alg, sizeof alg - 1);
    digest_len_prefixed(md, r->apu.data, r->apu.len);
    digest_len_prefixed(md, r->apv.data, r->apv.len);
    be32(word, 256);
    EVP_DigestUpdate(md, word, 4);
    if (EVP_DigestFinal_ex(md, kek->data, &klen) != 1 || klen != 32)
        goto out;
    int n1 = 0, n2 = 0;
    if (r->encrypted_key.len != 40 || EVP_DecryptInit_ex2(cctx, wrap, kek->data, NULL, NULL) != 1 ||
        EVP_DecryptUpdate(cctx, out->data, &n1, r->encrypted_key.data, (int)r->encrypted_key.len) !=
            1 ||
        EVP_DecryptFinal_ex(cctx, out->data + n1, &n2) != 1 || n1 + n2 != 32)
        goto out;
    memcpy(cek->data, out->data, 32);
    rc = 0;
out:
    secret_free(out);
    secret_free(kek);
    secret_free(z);
    EVP_CIPHER_CTX_free(cctx);
    EVP_CIPHER_free(wrap);
    EVP_MD_CTX_free(md);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    return rc;
}

int jwe_decrypt(const struct jwe *j, void *key, struct secret **plain, tether_error_t *err)
{
    EVP_PKEY *pkey = key;
    *plain = NULL;
    cleanup_secret struct secret *cek = NULL;
    if (secret_new(32, &cek, err) < 0)
        return -1;
    bool rsa = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
    bool ec = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC;
    bool opened = false;
    for (size_t i = 0; i < j->n_recipients && !opened; i++) {
        const struct jwe_recipient *r = &j->recipients[i];
        if (rsa && r->alg != JWE_ECDH_ES_A256KW)
            opened = open_rsa(r, pkey, cek) == 0;
        else if (ec && r->alg == JWE_ECDH_ES_A256KW)
            opened = open_ecdh(r, pkey, cek) == 0;
    }
    if (!opened)
        return error_set(err, 0,
                         "the released key opens none of the JWE's recipients (a wrong "
                         "key)");

    struct secret *out = NULL;
    if (secret_new(j->ciphertext.len + 16, &out, err) < 0)
        return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0,
        ok = ctx != NULL && EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
             EVP_DecryptInit_ex2(ctx, NULL, cek->data, j->iv.data, NULL) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &n1, (const unsigned char *)j->aad,
                               (int)strlen(j->aad)) == 1 &&
             EVP_DecryptUpdate(ctx, out->data, &n1, j->ciphertext.data, (int)j->ciphertext.len) ==
                 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, j->tag.data) == 1 &&
             EVP_DecryptFinal_ex(ctx, out->data + n1, &n2) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        secret_free(out);
        return error_set(err, 0, "the JWE's content does not authenticate (it was altered)");
    }
    out->len = (size_t)(n1 + n2);
    *plain = out;
    return 0;
}

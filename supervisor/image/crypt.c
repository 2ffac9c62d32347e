/* Keys and encrypted layers (see image.h): ocicrypt's AES_256_CTR_HMAC_SHA256, with the HMAC
 * checked over the whole ciphertext before the first byte is decrypted, and the plaintext only
 * in a sealed memfd. */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/cleanup.h"
#include "../core/memfile.h"
#include "../core/trust.h"
#include "../core/util.h"
#include "image.h"
#include "../key.h"
#include "jwe.h"

#define KEY_FILE_MAX (64u << 10)

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

int image_key_parse(const struct secret *key, void **pkey, tether_error_t *err)
{
    *pkey = NULL;
    if (key->len > KEY_FILE_MAX)
        return error_set(err, 0, "the released key is larger than %u bytes", KEY_FILE_MAX);
    EVP_PKEY *k = NULL;
    static const char pem[] = "-----BEGIN ";
    if (key->len >= sizeof pem - 1 && memcmp(key->data, pem, sizeof pem - 1) == 0) {
        BIO *b = BIO_new_mem_buf(key->data, (int)key->len);
        k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
        BIO_free(b);
    } else {
        const unsigned char *p = key->data;
        k = d2i_AutoPrivateKey(NULL, &p, (long)key->len);
    }
    if (k == NULL)
        return error_set(err, 0, "the released key is no unencrypted PEM or DER private key");
    int id = EVP_PKEY_get_base_id(k);
    if (id != EVP_PKEY_RSA && id != EVP_PKEY_EC) {
        EVP_PKEY_free(k);
        return error_set(err, 0, "the released key is neither an RSA nor an EC key");
    }
    *pkey = k;
    return 0;
}

void image_key_free(void *pkey)
{
    EVP_PKEY_free(pkey);
}

int image_key_read(const char *keystore, const char *id, struct secret **out, tether_error_t *err)
{
    return keystore_read(keystore, id, ".pem", 1, KEY_FILE_MAX, out, err);
}

/* Pass one: HMAC-SHA256 of the whole ciphertext, keyed with the layer key, against pubopts. */
static int check_hmac(int fd, int64_t size, const struct secret *key, const unsigned char want[32],
                      size_t idx, tether_error_t *err)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    char sha[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", sha, 0),
                           OSSL_PARAM_construct_end()};
    int rc = -1;
    static unsigned char buf[1 << 16];
    if (ctx == NULL || EVP_MAC_init(ctx, key->data, 32, params) != 1) {
        error_set(err, 0, "layer %zu: HMAC-SHA256 is not available", idx);
        goto out;
    }
    int64_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error_set(err, errno, "layer %zu", idx);
            goto out;
        }
        if (n == 0)
            break;
        EVP_MAC_update(ctx, buf, (size_t)n);
        off += n;
    }
    unsigned char got[32];
    size_t glen = 0;
    if (off != size || EVP_MAC_final(ctx, got, &glen, sizeof got) != 1 || glen != 32 ||
        CRYPTO_memcmp(got, want, 32) != 0) {
        error_set(err, 0,
                  "layer %zu: its HMAC does not match `%s` (the layer or its annotations "
                  "were altered, or the key is wrong); refusing",
                  idx, IMAGE_ANN_PUBOPTS);
        goto out;
    }
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

/* Pass two: AES-256-CTR into a new sealed memfd, the plaintext hashed on the way. */
static int decrypt_layer(int fd, int64_t size, const struct secret *key,
                         const unsigned char nonce[16], const char *digest, size_t idx, int *out_fd,
                         tether_error_t *err)
{
    struct memfile mf; /* a sealed memfd: read by the unpacker, never executed */
    if (memfile_new(&mf, "tether-layer", (uint64_t)size, true, err) < 0)
        return error_wrap(err, "layer %zu", idx);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    static unsigned char in[1 << 16], out[1 << 16];
    int rc = -1;
    if (ctx == NULL || md == NULL ||
        EVP_DecryptInit_ex2(ctx, EVP_aes_256_ctr(), key->data, nonce, NULL) != 1 ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        error_set(err, 0, "layer %zu: AES-256-CTR is not available", idx);
        goto out;
    }
    int64_t off = 0;
    while (off < size) {
        size_t want = size - off < (int64_t)sizeof in ? (size_t)(size - off) : sizeof in;
        ssize_t n = pread(fd, in, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            error_set(err, n < 0 ? errno : 0, "layer %zu: short read", idx);
            goto out;
        }
        int m = 0;
        if (EVP_DecryptUpdate(ctx, out, &m, in, (int)n) != 1 || m != n) {
            error_set(err, 0, "layer %zu: decryption failed", idx);
            goto out;
        }
        EVP_DigestUpdate(md, out, (size_t)m);
        if (write_all(mf.fd, out, (size_t)m) < 0) {
            error_set(err, errno, "layer %zu: memfd", idx);
            goto out;
        }
        off += n;
    }
    unsigned char h[32];
    char hex[SHA256_HEX_LEN + 1];
    EVP_DigestFinal_ex(md, h, NULL);
    hex_encode(h, 32, hex);
    if (digest[0] != '\0' && strcmp(digest + 7, hex) != 0) {
        error_set(err, 0,
                  "layer %zu: the decrypted layer does not match the digest its key "
                  "names; refusing",
                  idx);
        goto out;
    }
    int plain = memfile_finish(&mf, 0, err);
    if (plain < 0) {
        error_wrap(err, "layer %zu", idx);
        goto out;
    }
    *out_fd = plain;
    rc = 0;
out:
    memfile_close(&mf);
    explicit_bzero(out, sizeof out);
    EVP_CIPHER_CTX_free(ctx);
    EVP_MD_CTX_free(md);
    return rc;
}

/* The layer's options (ocicrypt's PrivateLayerBlockCipherOptions JSON), from its JWE with a
 * private key or from its tether packet with a key-store key. */
static int layer_options(const struct image_layer *l, size_t idx, const struct image_key *key,
                         struct secret **plain, tether_error_t *err)
{
    const cJSON *ann = l->desc.annotations;
    if (key->sym != NULL) {
        const char *packet =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, KEYPROVIDER_ANNOTATION));
        if (packet == NULL)
            return error_set(err, 0, "layer %zu: no `%s` packet for the released key", idx,
                             KEYPROVIDER_ANNOTATION);
        if (keyprovider_packet_unwrap(packet, key->sym, plain, err) < 0)
            return error_wrap(err, "layer %zu", idx);
        return 0;
    }
    const char *jwe_b64 =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, IMAGE_ANN_JWE));
    if (jwe_b64 == NULL)
        return error_set(err, 0, "layer %zu: no `%s` recipient for the released private key", idx,
                         IMAGE_ANN_JWE);
    size_t n = strlen(jwe_b64);
    if (n > JWE_MAX / 3 * 4)
        return error_set(err, 0, "layer %zu: `%s` is too long", idx, IMAGE_ANN_JWE);
    cleanup_free unsigned char *text = xmalloc(n / 4 * 3 + 3);
    long tlen = image_base64_decode(jwe_b64, n, false, text);
    if (tlen < 0)
        return error_set(err, 0, "layer %zu: `%s` is not valid base64", idx, IMAGE_ANN_JWE);
    struct jwe j;
    if (jwe_parse((const char *)text, (size_t)tlen, &j, err) < 0)
        return error_wrap(err, "layer %zu", idx);
    int rc = jwe_decrypt(&j, key->pkey, plain, err);
    jwe_clear(&j);
    return rc < 0 ? error_wrap(err, "layer %zu", idx) : 0;
}

static int decrypt_one(struct image_layer *l, size_t idx, const struct image_key *key,
                       tether_error_t *err)
{
    const char *pub_b64 = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(l->desc.annotations, IMAGE_ANN_PUBOPTS));
    unsigned char hmac[32], nonce[16];
    char digest[IMAGE_DIGEST_LEN + 1];
    if (image_parse_pubopts(pub_b64, hmac, err) < 0)
        return error_wrap(err, "layer %zu", idx);
    cleanup_secret struct secret *plain = NULL, *symkey = NULL;
    if (layer_options(l, idx, key, &plain, err) < 0)
        return -1;
    if (image_parse_privopts(plain->data, plain->len, &symkey, nonce, digest, err) < 0)
        return error_wrap(err, "layer %zu", idx);
    int mfd = -1;
    if (check_hmac(l->fd, l->desc.size, symkey, hmac, idx, err) < 0 ||
        decrypt_layer(l->fd, l->desc.size, symkey, nonce, digest, idx, &mfd, err) < 0)
        return -1;
    close(l->fd);
    l->fd = mfd;
    return 0;
}

int image_tether_key_id(const struct image *img, char **key_id, tether_error_t *err)
{
    *key_id = NULL;
    for (size_t i = 0; i < img->m.n_layers; i++) {
        const struct image_layer *l = &img->m.layers[i];
        if (!l->encrypted)
            continue;
        const char *packet = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(l->desc.annotations, KEYPROVIDER_ANNOTATION));
        char *id = NULL;
        if (packet == NULL) {
            free(*key_id);
            *key_id = NULL;
            return 0;
        }
        if (keyprovider_annotation_key_id(packet, &id, err) < 0) {
            free(*key_id);
            *key_id = NULL;
            return error_wrap(err, "layer %zu", i);
        }
        if (*key_id != NULL && strcmp(*key_id, id) != 0) {
            error_set(err, 0, "layer %zu: its packet is for key `%s`, an earlier layer's for `%s`",
                      i, id, *key_id);
            free(id);
            free(*key_id);
            *key_id = NULL;
            return -1;
        }
        free(*key_id);
        *key_id = id;
    }
    return *key_id != NULL;
}

int image_decrypt(struct image *img, const struct image_key *key, tether_error_t *err)
{
    for (size_t i = 0; i < img->m.n_layers; i++)
        if (img->m.layers[i].encrypted && decrypt_one(&img->m.layers[i], i, key, err) < 0)
            return -1;
    return 0;
}

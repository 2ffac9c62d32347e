/* tether's keyprovider packet and the ocicrypt request parser (see keyprovider.h). */
#define _GNU_SOURCE
#include "keyprovider.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/base64.h"
#include "../core/cleanup.h"
#include "../core/util.h"

#define TAG_LEN 16
#define NONCE_LEN 12
#define KEY_LEN 32

bool keyprovider_key_id_valid(const char *s)
{
    return name_valid(s, 255);
}

/* A member given twice is refused: readers disagree on which one counts. */
static bool has_duplicates(const cJSON *obj)
{
    const cJSON *e;
    cJSON_ArrayForEach (e, obj)
        for (const cJSON *prev = obj->child; prev != e; prev = prev->next)
            if (strcmp(prev->string, e->string) == 0)
                return true;
    return false;
}

/* The additional data: the prefix, a NUL, the version as one byte, the key id. */
static size_t packet_aad(int version, const char *key_id, unsigned char *aad, size_t cap)
{
    size_t pl = sizeof KEYPROVIDER_AAD_PREFIX, kl = strlen(key_id);
    if (pl + 1 + kl > cap)
        return 0;
    memcpy(aad, KEYPROVIDER_AAD_PREFIX, pl); /* the NUL included */
    aad[pl] = (unsigned char)version;
    memcpy(aad + pl + 1, key_id, kl);
    return pl + 1 + kl;
}

void keyprovider_packet_clear(struct keyprovider_packet *p)
{
    free(p->key_id);
    free(p->ciphertext);
    memset(p, 0, sizeof *p);
}

int keyprovider_packet_parse(const unsigned char *data, size_t len, struct keyprovider_packet *p,
                             tether_error_t *err)
{
    memset(p, 0, sizeof *p);
    cleanup_json cJSON *doc = NULL;
    if (json_parse((const char *)data, len, &doc, err) < 0)
        return error_wrap(err, "keyprovider packet");
    if (!cJSON_IsObject(doc))
        return error_set(err, 0, "keyprovider packet: must be an object, not %s",
                         json_type_name(doc));
    if (has_duplicates(doc))
        return error_set(err, 0, "keyprovider packet: a member is given twice");
    static const char *const known[] = {"tether_keyprovider", "key_id", "cipher", "nonce",
                                        "ciphertext"};
    const cJSON *e;
    cJSON_ArrayForEach (e, doc) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++)
            ok = ok || strcmp(e->string, known[i]) == 0;
        if (!ok)
            return error_set(err, 0, "keyprovider packet: unknown member `%s`", e->string);
    }
    int64_t version;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "tether_keyprovider");
    if (!json_get_int(v, 1, 255, &version))
        return error_set(err, 0,
                         "keyprovider packet: `tether_keyprovider` must be the version, "
                         "an integer");
    if (version != KEYPROVIDER_VERSION)
        return error_set(err, 0,
                         "keyprovider packet: version %lld is not known (this tether "
                         "knows %d)",
                         (long long)version, KEYPROVIDER_VERSION);
    const char *key_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "key_id"));
    if (key_id == NULL || !keyprovider_key_id_valid(key_id))
        return error_set(err, 0,
                         "keyprovider packet: `key_id` must be a key id (letters, "
                         "digits, ._-)");
    const char *cipher = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "cipher"));
    if (cipher == NULL || strcmp(cipher, KEYPROVIDER_CIPHER) != 0)
        return error_set(err, 0, "keyprovider packet: `cipher` must be \"" KEYPROVIDER_CIPHER "\"");
    const char *nonce = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "nonce"));
    cleanup_free unsigned char *raw = NULL;
    size_t n = 0;
    if (nonce == NULL || base64_decode(nonce, &raw, &n, err) < 0 || n != NONCE_LEN)
        return error_set(err, 0, "keyprovider packet: `nonce` must be %d bytes in base64",
                         NONCE_LEN);
    memcpy(p->nonce, raw, NONCE_LEN);
    const char *ct = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "ciphertext"));
    unsigned char *c = NULL;
    if (ct == NULL || base64_decode(ct, &c, &n, err) < 0 || n < TAG_LEN ||
        n > KEYPROVIDER_MAX_OPTSDATA + TAG_LEN) {
        free(c);
        return error_set(err, 0,
                         "keyprovider packet: `ciphertext` must be base64 of %d to %d bytes",
                         TAG_LEN, KEYPROVIDER_MAX_OPTSDATA + TAG_LEN);
    }
    p->version = (int)version;
    p->key_id = xstrdup(key_id);
    p->ciphertext = c;
    p->ciphertext_len = n;
    sha256_hex(data, len, p->sha256);
    return 0;
}

cJSON *keyprovider_packet_metadata(const struct keyprovider_packet *p)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "version", p->version);
    cJSON_AddStringToObject(m, "key_id", p->key_id);
    cJSON_AddStringToObject(m, "cipher", KEYPROVIDER_CIPHER);
    cJSON_AddStringToObject(m, "sha256", p->sha256);
    return m;
}

static int gcm(bool enc, const struct secret *key, const unsigned char nonce[NONCE_LEN],
               const unsigned char *aad, size_t aad_len, const unsigned char *in, size_t n,
               unsigned char *out, unsigned char tag[TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    bool ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
              EVP_CipherInit_ex(ctx, NULL, NULL, key->data, nonce, enc) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aad_len) == 1 &&
              (n == 0 || EVP_CipherUpdate(ctx, out, &len, in, (int)n) == 1) &&
              (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1) &&
              EVP_CipherFinal_ex(ctx, out + (n ? len : 0), &len) == 1 &&
              (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

int keyprovider_packet_seal(const char *key_id, const struct secret *key,
                            const struct secret *optsdata, char **packet, tether_error_t *err)
{
    *packet = NULL;
    if (!keyprovider_key_id_valid(key_id))
        return error_set(err, 0, "`%s` is not a key id (letters, digits, ._-)", key_id);
    if (key->len != KEY_LEN)
        return error_set(err, 0, "the key is %zu bytes, not %d", key->len, KEY_LEN);
    if (optsdata->len > KEYPROVIDER_MAX_OPTSDATA)
        return error_set(err, 0, "the layer options are larger than %d bytes",
                         KEYPROVIDER_MAX_OPTSDATA);
    unsigned char nonce[NONCE_LEN], aad[512];
    size_t aad_len = packet_aad(KEYPROVIDER_VERSION, key_id, aad, sizeof aad);
    if (RAND_bytes(nonce, NONCE_LEN) != 1)
        return error_set(err, 0, "no random bytes for the nonce");
    cleanup_free unsigned char *ct = xmalloc(optsdata->len + TAG_LEN);
    if (gcm(true, key, nonce, aad, aad_len, optsdata->data, optsdata->len, ct, ct + optsdata->len) <
        0)
        return error_set(err, 0, "AES-256-GCM failed");
    cleanup_free char *nonce_b64 = base64_encode(nonce, NONCE_LEN);
    cleanup_free char *ct_b64 = base64_encode(ct, optsdata->len + TAG_LEN);
    *packet = xasprintf("{\"tether_keyprovider\":%d,\"key_id\":\"%s\",\"cipher\":\"%s\","
                        "\"nonce\":\"%s\",\"ciphertext\":\"%s\"}",
                        KEYPROVIDER_VERSION, key_id, KEYPROVIDER_CIPHER, nonce_b64, ct_b64);
    return 0;
}

int keyprovider_packet_open(const struct keyprovider_packet *p, const struct secret *key,
                            struct secret **optsdata, tether_error_t *err)
{
    *optsdata = NULL;
    if (key->len != KEY_LEN)
        return error_set(err, 0, "the key is %zu bytes, not %d", key->len, KEY_LEN);
    size_t n = p->ciphertext_len - TAG_LEN;
    unsigned char aad[512], tag[TAG_LEN];
    size_t aad_len = packet_aad(p->version, p->key_id, aad, sizeof aad);
    memcpy(tag, p->ciphertext + n, TAG_LEN);
    struct secret *out;
    if (secret_new(n ? n : 1, &out, err) < 0)
        return -1;
    out->len = n;
    if (gcm(false, key, p->nonce, aad, aad_len, p->ciphertext, n, out->data, tag) < 0) {
        secret_free(out);
        return error_set(err, 0,
                         "keyprovider packet for key `%s` does not open: the key is not its "
                         "key, or the packet was altered",
                         p->key_id);
    }
    *optsdata = out;
    return 0;
}

/* The first packet of an annotation value ("b64[,b64]...": ocicrypt joins the packets of
 * one provider with commas), decoded. */
static int annotation_packet(const char *annotation_b64, struct keyprovider_packet *p,
                             tether_error_t *err)
{
    size_t n = strcspn(annotation_b64, ",");
    cleanup_free char *first = xstrndup(annotation_b64, n);
    cleanup_free unsigned char *raw = NULL;
    size_t len = 0;
    if (base64_decode(first, &raw, &len, err) < 0)
        return error_wrap(err, "annotation `" KEYPROVIDER_ANNOTATION "`");
    return keyprovider_packet_parse(raw, len, p, err);
}

int keyprovider_annotation_key_id(const char *annotation_b64, char **key_id, tether_error_t *err)
{
    struct keyprovider_packet p;
    *key_id = NULL;
    if (annotation_packet(annotation_b64, &p, err) < 0)
        return -1;
    *key_id = steal_pointer(&p.key_id);
    keyprovider_packet_clear(&p);
    return 0;
}

int keyprovider_packet_unwrap(const char *annotation_b64, const struct secret *key,
                              struct secret **optsdata, tether_error_t *err)
{
    struct keyprovider_packet p;
    *optsdata = NULL;
    if (annotation_packet(annotation_b64, &p, err) < 0)
        return -1;
    int rc = keyprovider_packet_open(&p, key, optsdata, err);
    keyprovider_packet_clear(&p);
    return rc;
}

/* --- requests --- */

/* Wipes every string of a tree, values and member names, before it is freed. */
static void json_wipe(cJSON *j)
{
    for (; j != NULL; j = j->next) {
        json_wipe(j->child);
        if (j->valuestring)
            explicit_bzero(j->valuestring, strlen(j->valuestring));
        if (j->string)
            explicit_bzero(j->string, strlen(j->string));
    }
}

static const cJSON *object_member(const cJSON *obj, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsObject(m) && !has_duplicates(m) ? m : NULL;
}

static int wrap_fields(const cJSON *doc, struct keyprovider_request *r, tether_error_t *err)
{
    const cJSON *params = object_member(doc, "keywrapparams");
    const cJSON *ec = object_member(params, "ec");
    const cJSON *parameters = object_member(ec, "Parameters");
    if (parameters == NULL)
        return error_set(err, 0, "request: `keywrapparams.ec.Parameters` must be an object");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(parameters, KEYPROVIDER_NAME);
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) == 0)
        return error_set(err, 0,
                         "request: `keywrapparams.ec.Parameters." KEYPROVIDER_NAME
                         "` names no key: encrypt with provider:" KEYPROVIDER_NAME ":KEY_ID");
    if (cJSON_GetArraySize(ids) > 1)
        return error_set(err, 0,
                         "request: `keywrapparams.ec.Parameters." KEYPROVIDER_NAME
                         "` names more than one key: give one provider:" KEYPROVIDER_NAME
                         ":KEY_ID");
    const char *id_b64 = cJSON_GetStringValue(ids->child);
    cleanup_free unsigned char *id = NULL;
    size_t n = 0;
    if (id_b64 == NULL || base64_decode(id_b64, &id, &n, err) < 0)
        return error_set(err, 0,
                         "request: `keywrapparams.ec.Parameters." KEYPROVIDER_NAME
                         "[0]` must be base64");
    /* "Enabled" is what ocicrypt passes for a bare provider:NAME. */
    if (strlen((char *)id) != n || strcmp((char *)id, "Enabled") == 0)
        return error_set(err, 0,
                         "request: no key id: encrypt with provider:" KEYPROVIDER_NAME ":KEY_ID");
    if (!keyprovider_key_id_valid((char *)id))
        return error_set(err, 0, "request: the key id is not one (letters, digits, ._-)");
    const char *opts = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(params, "optsdata"));
    if (opts == NULL || strlen(opts) > base64_encoded_len(KEYPROVIDER_MAX_OPTSDATA) ||
        secret_from_base64(opts, &r->optsdata, err) < 0)
        return error_set(err, 0,
                         "request: `keywrapparams.optsdata` must be base64 of at most %d bytes",
                         KEYPROVIDER_MAX_OPTSDATA);
    r->key_id = (char *)steal_pointer(&id);
    return 0;
}

static int unwrap_fields(const cJSON *doc, struct keyprovider_request *r, tether_error_t *err)
{
    const cJSON *params = object_member(doc, "keyunwrapparams");
    const char *ann = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(params, "annotation"));
    if (ann == NULL || base64_decode(ann, &r->annotation, &r->annotation_len, err) < 0 ||
        r->annotation_len == 0)
        return error_set(err, 0,
                         "request: `keyunwrapparams.annotation` must be base64 of the "
                         "packet");
    return 0;
}

int keyprovider_request_parse(const char *text, size_t len, struct keyprovider_request *r,
                              tether_error_t *err)
{
    memset(r, 0, sizeof *r);
    cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "request");
    int rc = -1;
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "op"));
    if (!cJSON_IsObject(doc) || has_duplicates(doc))
        error_set(err, 0, "request: must be an object, each member once");
    else if (op != NULL && strcmp(op, "keywrap") == 0) {
        r->op = KEYPROVIDER_WRAP;
        rc = wrap_fields(doc, r, err);
    } else if (op != NULL && strcmp(op, "keyunwrap") == 0) {
        r->op = KEYPROVIDER_UNWRAP;
        rc = unwrap_fields(doc, r, err);
    } else
        error_set(err, 0, "request: `op` must be \"keywrap\" or \"keyunwrap\"");
    json_wipe(doc);
    cJSON_Delete(doc);
    if (rc < 0)
        keyprovider_request_clear(r);
    return rc;
}

void keyprovider_request_clear(struct keyprovider_request *r)
{
    free(r->key_id);
    secret_free(r->optsdata);
    free(r->annotation);
    memset(r, 0, sizeof *r);
}

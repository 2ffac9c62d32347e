/* Cosign signatures of an OCI layout's image (see imgsig.h): pure parsers for index.json,
 * the signature manifest and the simple-signing payload, then verification with OpenSSL. */
#define _GNU_SOURCE
#include "imgsig.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../supervisor/core/base64.h"
#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/trust.h"
#include "../supervisor/core/util.h"

#define INDEX_MAX_BYTES (4 << 20)
#define MANIFEST_MAX_BYTES (4 << 20)
#define PAYLOAD_MAX_BYTES (1 << 20)
#define SIGNATURE_MAX_CHARS 4096

#define REF_NAME_ANNOTATION "org.opencontainers.image.ref.name"
#define KIND_ANNOTATION "kind"
#define KIND_SIGS "dev.cosignproject.cosign/sigs"

static bool digest_valid(const char *d)
{
    if (d == NULL || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
        return false;
    for (const char *p = d + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* A member by its exact name; a second member of that name, or one that differs only in
 * case, makes it ambiguous (*ambiguous set), since readers disagree on which one counts. */
static const cJSON *member(const cJSON *obj, const char *name, bool *ambiguous)
{
    const cJSON *found = NULL, *e;
    cJSON_ArrayForEach (e, obj) {
        if (e->string == NULL || strcasecmp(e->string, name) != 0)
            continue;
        if (found != NULL || strcmp(e->string, name) != 0)
            *ambiguous = true;
        else
            found = e;
    }
    return found;
}

int imgsig_index_find(const char *text, size_t len, const char *manifest_digest, char ***digests,
                      size_t *n, tether_error_t *err)
{
    *digests = NULL;
    *n = 0;
    if (!digest_valid(manifest_digest))
        return error_set(err, 0, "`%s` is not a sha256 digest", manifest_digest);
    cleanup_json cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "index.json");
    const cJSON *manifests = cJSON_GetObjectItemCaseSensitive(doc, "manifests");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(manifests))
        return error_set(err, 0, "index.json: `manifests` must be an array");
    /* cosign's tag for the signatures of an image: "sha256-<hex>.sig". */
    char tag[7 + 64 + 5];
    snprintf(tag, sizeof tag, "sha256-%s.sig", manifest_digest + 7);
    char **out = xcalloc(IMGSIG_MAX_MANIFESTS, sizeof *out);
    size_t count = 0;
    const cJSON *m;
    cJSON_ArrayForEach (m, manifests) {
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(m, "annotations");
        const char *digest = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "digest"));
        const char *ref =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, REF_NAME_ANNOTATION));
        const char *kind =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ann, KIND_ANNOTATION));
        bool sigs = (ref != NULL && strcmp(ref, tag) == 0) ||
                    (kind != NULL && strcmp(kind, KIND_SIGS) == 0);
        if (!sigs || !digest_valid(digest))
            continue;
        bool seen = false;
        for (size_t i = 0; i < count; i++)
            seen = seen || strcmp(out[i], digest) == 0;
        if (seen)
            continue;
        if (count == IMGSIG_MAX_MANIFESTS)
            break;
        out[count++] = xstrdup(digest);
    }
    *digests = out;
    *n = count;
    return 0;
}

void imgsig_layers_free(struct imgsig_layer *layers, size_t n)
{
    for (size_t i = 0; layers != NULL && i < n; i++) {
        free(layers[i].digest);
        free(layers[i].signature);
    }
    free(layers);
}

int imgsig_manifest_parse(const char *text, size_t len, struct imgsig_layer **layers, size_t *n,
                          tether_error_t *err)
{
    *layers = NULL;
    *n = 0;
    cleanup_json cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "signature manifest");
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(doc, "layers");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(ls))
        return error_set(err, 0, "signature manifest: `layers` must be an array");
    struct imgsig_layer *out = xcalloc(IMGSIG_MAX_LAYERS, sizeof *out);
    size_t count = 0;
    const cJSON *l;
    cJSON_ArrayForEach (l, ls) {
        const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "mediaType"));
        if (mt == NULL || strcmp(mt, IMGSIG_PAYLOAD_MEDIA_TYPE) != 0)
            continue; /* attestations, SBOMs and the like are not signatures */
        if (count == IMGSIG_MAX_LAYERS)
            break;
        const char *digest = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(l, "digest"));
        if (!digest_valid(digest)) {
            imgsig_layers_free(out, count);
            return error_set(err, 0,
                             "signature manifest: layer %zu: `digest` is not a sha256 "
                             "digest",
                             count + 1);
        }
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(l, "size");
        int64_t sz = -1;
        if (size != NULL && !json_get_int(size, 0, PAYLOAD_MAX_BYTES, &sz)) {
            imgsig_layers_free(out, count);
            return error_set(err, 0,
                             "signature manifest: layer %zu: `size` must be an integer from 0 "
                             "to %d",
                             count + 1, PAYLOAD_MAX_BYTES);
        }
        const cJSON *ann = cJSON_GetObjectItemCaseSensitive(l, "annotations");
        const char *sig = cJSON_GetStringValue(
            cJSON_GetObjectItemCaseSensitive(ann, IMGSIG_SIGNATURE_ANNOTATION));
        out[count].digest = xstrdup(digest);
        out[count].size = sz;
        out[count].signature = sig ? xstrdup(sig) : NULL;
        count++;
    }
    *layers = out;
    *n = count;
    return 0;
}

/* Refuses duplicate members (Go keeps the last, cJSON finds the first) at every level. */
static bool has_duplicates(const cJSON *j, int depth)
{
    if (depth > 64)
        return true;
    const cJSON *e;
    cJSON_ArrayForEach (e, j) {
        if (cJSON_IsObject(j))
            for (const cJSON *prev = j->child; prev != e; prev = prev->next)
                if (strcmp(prev->string, e->string) == 0)
                    return true;
        if ((cJSON_IsObject(e) || cJSON_IsArray(e)) && has_duplicates(e, depth + 1))
            return true;
    }
    return false;
}

int imgsig_payload_parse(const char *text, size_t len, struct imgsig_payload *p,
                         tether_error_t *err)
{
    memset(p, 0, sizeof *p);
    cleanup_json cJSON *doc = NULL;
    if (json_parse(text, len, &doc, err) < 0)
        return error_wrap(err, "payload");
    if (!cJSON_IsObject(doc))
        return error_set(err, 0, "payload: must be an object, not %s", json_type_name(doc));
    if (has_duplicates(doc, 0))
        return error_set(err, 0, "payload: a key is given twice");
    bool ambiguous = false;
    const cJSON *critical = member(doc, "critical", &ambiguous);
    const cJSON *type = member(critical, "type", &ambiguous);
    const cJSON *image = member(critical, "image", &ambiguous);
    const cJSON *identity = member(critical, "identity", &ambiguous);
    const cJSON *digest = member(image, "docker-manifest-digest", &ambiguous);
    const cJSON *ref = member(identity, "docker-reference", &ambiguous);
    if (ambiguous)
        return error_set(err, 0, "payload: a key is given twice, in different cases");
    if (!cJSON_IsObject(critical))
        return error_set(err, 0, "payload: `critical` must be an object");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, IMGSIG_PAYLOAD_TYPE) != 0)
        return error_set(err, 0, "payload: `critical.type` must be \"%s\"", IMGSIG_PAYLOAD_TYPE);
    if (!cJSON_IsString(digest) || !digest_valid(digest->valuestring))
        return error_set(err, 0,
                         "payload: `critical.image.docker-manifest-digest` must be a sha256 "
                         "digest");
    if (!cJSON_IsString(ref))
        return error_set(err, 0, "payload: `critical.identity.docker-reference` must be a string");
    p->digest = digest->valuestring;
    p->docker_reference = ref->valuestring;
    p->doc = steal_pointer(&doc);
    return 0;
}

/* --- reading the layout --- */

/* blobs/sha256/<hex> of the layout, checked against its digest (and its size when given). */
static int blob_read(int dirfd, const char *digest, int64_t size, size_t max, char **out,
                     size_t *len, tether_error_t *err)
{
    if (!digest_valid(digest))
        return error_set(err, 0, "`%s` is not a sha256 digest", digest);
    cleanup_free char *path = xasprintf("blobs/sha256/%s", digest + 7);
    /* O_NONBLOCK: a FIFO planted in the layout cannot make the open wait. */
    cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return error_set(err, errno, "blob `%s`", digest);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return error_set(err, 0, "blob `%s`: not a regular file", digest);
    if (read_fd(fd, max, out, len, err) < 0)
        return error_wrap(err, "blob `%s`", digest);
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(*out, *len, hex);
    if (strcmp(hex, digest + 7) != 0 || (size >= 0 && (size_t)size != *len)) {
        free(*out);
        *out = NULL;
        return error_set(err, 0, "blob `%s` does not match its digest or size", digest);
    }
    return 0;
}

struct signer {
    const char *path;
    EVP_PKEY *key;
    bool ed25519;
    char fingerprint[7 + SHA256_HEX_LEN + 1];
};

static void signers_free(struct signer *s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        EVP_PKEY_free(s[i].key);
    free(s);
}

/* Each key file is a trust anchor: root's and written by nobody else (core/trust.h). */
static int signers_load(const cJSON *paths, struct signer **out, size_t *n, tether_error_t *err)
{
    size_t count = (size_t)cJSON_GetArraySize(paths);
    struct signer *s = xcalloc(count + 1, sizeof *s);
    size_t i = 0;
    const cJSON *p;
    cJSON_ArrayForEach (p, paths) {
        if (!cJSON_IsString(p)) {
            signers_free(s, i);
            return error_set(err, 0, "trusted_image_signers must hold only strings");
        }
        const char *path = p->valuestring; /* for messages after s is freed */
        struct signer *k = &s[i++];
        k->path = path;
        int fd = trust_open(k->path, 0, err);
        if (fd < 0) {
            signers_free(s, i);
            return error_wrap(err, "trusted_image_signers");
        }
        FILE *f = fdopen(fd, "r");
        k->key = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
        if (f)
            fclose(f);
        else
            close(fd);
        ERR_clear_error();
        char group[64] = "";
        k->ed25519 = k->key && EVP_PKEY_is_a(k->key, "ED25519");
        bool p256 = k->key && EVP_PKEY_is_a(k->key, "EC") &&
                    EVP_PKEY_get_group_name(k->key, group, sizeof group, NULL) == 1 &&
                    OBJ_sn2nid(group) == NID_X9_62_prime256v1;
        if (!k->ed25519 && !p256) {
            signers_free(s, i);
            return error_set(err, 0,
                             "trusted_image_signers: `%s` is neither an ECDSA P-256 nor an "
                             "Ed25519 public key in PEM",
                             path);
        }
        unsigned char *der = NULL;
        int dlen = i2d_PUBKEY(k->key, &der);
        if (dlen <= 0) {
            signers_free(s, i);
            return error_set(err, 0, "trusted_image_signers: `%s`: cannot encode the key", path);
        }
        char hex[SHA256_HEX_LEN + 1];
        sha256_hex(der, (size_t)dlen, hex);
        OPENSSL_free(der);
        snprintf(k->fingerprint, sizeof k->fingerprint, "sha256:%s", hex);
    }
    *out = s;
    *n = i;
    return 0;
}

static bool signature_valid(const struct signer *k, const unsigned char *sig, size_t siglen,
                            const void *msg, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok =
        ctx &&
        EVP_DigestVerifyInit(ctx, NULL, k->ed25519 ? NULL : EVP_sha256(), NULL, k->key) == 1 &&
        EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* The length of a reference's repository: without its tag and its digest. */
static size_t repository_len(const char *ref)
{
    size_t n = strcspn(ref, "@");
    const char *slash = memrchr(ref, '/', n);
    const char *last = slash ? slash + 1 : ref;
    const char *colon = memchr(last, ':', n - (size_t)(last - ref));
    return colon ? (size_t)(colon - ref) : n;
}

/* Whether the payload's reference names the one asked for: the same; or the same
 * repository when the payload names the repository alone (older cosign) or the image was
 * asked for by digest (which the signature's digest check covers). */
static bool reference_matches(const char *claimed, const char *asked)
{
    if (strcmp(claimed, asked) == 0)
        return true;
    size_t c = repository_len(claimed), a = repository_len(asked);
    bool same_repo = c == a && strncmp(claimed, asked, c) == 0;
    return same_repo && (claimed[c] == '\0' || strchr(asked, '@') != NULL);
}

static cJSON *entry_new(const char *manifest, const char *layer)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNullToObject(e, "signer");
    cJSON_AddNullToObject(e, "signer_fingerprint");
    cJSON_AddFalseToObject(e, "verified");
    cJSON_AddFalseToObject(e, "digest_matches");
    cJSON_AddNullToObject(e, "docker_reference");
    cJSON_AddNullToObject(e, "reference_matches");
    cJSON_AddNullToObject(e, "payload");
    cJSON_AddItemToObject(e, "signature_manifest", json_string_or_null(manifest));
    cJSON_AddItemToObject(e, "layer", json_string_or_null(layer));
    cJSON_AddNullToObject(e, "error");
    return e;
}

static void entry_set(cJSON *e, const char *name, cJSON *v)
{
    cJSON_ReplaceItemInObjectCaseSensitive(e, name, v);
}

/* One simple-signing layer: its payload, and the trusted key (if any) whose signature it is. */
static cJSON *layer_entry(int dirfd, const char *manifest, const struct imgsig_layer *l,
                          const char *manifest_digest, const char *docker_reference,
                          const struct signer *signers, size_t n_signers)
{
    cJSON *e = entry_new(manifest, l->digest);
    cleanup_error tether_error_t err = NULL;
    cleanup_free char *payload = NULL;
    size_t len = 0;
    if (blob_read(dirfd, l->digest, l->size, PAYLOAD_MAX_BYTES, &payload, &len, &err) < 0) {
        entry_set(e, "error", cJSON_CreateString(err->msg));
        return e;
    }
    struct imgsig_payload p;
    if (imgsig_payload_parse(payload, len, &p, &err) < 0) {
        entry_set(e, "error", cJSON_CreateString(err->msg));
    } else {
        entry_set(e, "digest_matches", cJSON_CreateBool(strcmp(p.digest, manifest_digest) == 0));
        entry_set(e, "docker_reference", cJSON_CreateString(p.docker_reference));
        if (docker_reference != NULL)
            entry_set(e, "reference_matches",
                      cJSON_CreateBool(reference_matches(p.docker_reference, docker_reference)));
        entry_set(e, "payload", p.doc);
    }

    cleanup_free unsigned char *sig = NULL;
    size_t siglen = 0;
    if (l->signature == NULL || strlen(l->signature) > SIGNATURE_MAX_CHARS ||
        base64_decode(l->signature, &sig, &siglen, &err) < 0 || siglen == 0) {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "error")))
            entry_set(e, "error",
                      cJSON_CreateString("no base64 signature in the " IMGSIG_SIGNATURE_ANNOTATION
                                         " annotation"));
        return e;
    }
    for (size_t i = 0; i < n_signers; i++) {
        if (!signature_valid(&signers[i], sig, siglen, payload, len))
            continue;
        entry_set(e, "signer", cJSON_CreateString(signers[i].path));
        entry_set(e, "signer_fingerprint", cJSON_CreateString(signers[i].fingerprint));
        entry_set(e, "verified", cJSON_CreateTrue());
        return e;
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "error")))
        entry_set(e, "error",
                  cJSON_CreateString(n_signers ? "no trusted image signer's key verifies the "
                                                 "signature"
                                               : "no trusted_image_signers are configured"));
    return e;
}

int image_signatures_verify(int layout_dirfd, const char *manifest_digest,
                            const char *docker_reference, const cJSON *trusted_signers, cJSON **out,
                            tether_error_t *err)
{
    *out = NULL;
    struct signer *signers = NULL;
    size_t n_signers = 0;
    if (signers_load(trusted_signers, &signers, &n_signers, err) < 0)
        return -1;
    int rc = -1;
    cleanup_free char *index = NULL;
    size_t len = 0;
    char **manifests = NULL;
    size_t n_manifests = 0;
    cleanup_close int fd =
        openat(layout_dirfd, "index.json", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        error_set(err, errno, "index.json");
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        error_set(err, 0, "index.json: not a regular file");
        goto done;
    }
    if (read_fd(fd, INDEX_MAX_BYTES, &index, &len, err) < 0) {
        error_wrap(err, "index.json");
        goto done;
    }
    if (imgsig_index_find(index, len, manifest_digest, &manifests, &n_manifests, err) < 0)
        goto done;

    cJSON *sigs = cJSON_CreateArray();
    for (size_t i = 0; i < n_manifests; i++) {
        cleanup_error tether_error_t merr = NULL;
        cleanup_free char *text = NULL;
        size_t tlen = 0;
        struct imgsig_layer *layers = NULL;
        size_t n_layers = 0;
        if (blob_read(layout_dirfd, manifests[i], -1, MANIFEST_MAX_BYTES, &text, &tlen, &merr) <
                0 ||
            imgsig_manifest_parse(text, tlen, &layers, &n_layers, &merr) < 0) {
            cJSON *e = entry_new(manifests[i], NULL);
            entry_set(e, "error", cJSON_CreateString(merr->msg));
            cJSON_AddItemToArray(sigs, e);
            continue;
        }
        for (size_t j = 0; j < n_layers; j++)
            cJSON_AddItemToArray(sigs, layer_entry(layout_dirfd, manifests[i], &layers[j],
                                                   manifest_digest, docker_reference, signers,
                                                   n_signers));
        imgsig_layers_free(layers, n_layers);
    }
    *out = sigs;
    rc = 0;
done:
    for (size_t i = 0; i < n_manifests; i++)
        free(manifests[i]);
    free(manifests);
    signers_free(signers, n_signers);
    return rc;
}

bool image_signatures_any_valid(const cJSON *sigs)
{
    const cJSON *e;
    cJSON_ArrayForEach (e, sigs)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "verified")) &&
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "digest_matches")))
            return true;
    return false;
}

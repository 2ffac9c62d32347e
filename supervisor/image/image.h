/* OCI images for `tether run --image oci:DIR[:REF]`: the image layout that `skopeo copy ...
 * oci:DIR:REF` writes, verified from index to manifest to config to layers, its section of the
 * input document, and ocicrypt's encrypted layers (AES_256_CTR_HMAC_SHA256, keys wrapped in a
 * JWE).  The pure parsers take text, so that tests and fuzzers can feed them. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"
#include "../core/secret.h"
#include "keyprovider.h"

/* The most bytes of index.json, a manifest or a config, and the most layers. */
#define IMAGE_JSON_MAX (4u << 20)
#define IMAGE_LAYERS_MAX 128
/* "sha256:" and 64 hex digits: the only digest algorithm accepted. */
#define IMAGE_DIGEST_LEN (7 + 64)

#define IMAGE_ANN_REF "org.opencontainers.image.ref.name"
#define IMAGE_ANN_JWE "org.opencontainers.image.enc.keys.jwe"
#define IMAGE_ANN_PUBOPTS "org.opencontainers.image.enc.pubopts"
/* A Lua policy that travels with the image, in its manifest (so a signature covers it):
 * evaluated after the node's, as a sealed file's embedded policy is. */
#define IMAGE_ANN_POLICY "org.tether.policy"
#define IMAGE_POLICY_MAX (1u << 20)
#define IMAGE_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
#define IMAGE_CONFIG_TYPE "application/vnd.oci.image.config.v1+json"

enum image_compression { IMAGE_TAR, IMAGE_GZIP, IMAGE_ZSTD };

struct image_descriptor {
    char *media_type;
    char digest[IMAGE_DIGEST_LEN + 1];
    int64_t size;
    const cJSON *annotations; /* an object of strings in the parsed document, or NULL */
};

struct image_layer {
    struct image_descriptor desc;
    enum image_compression compression;
    bool encrypted; /* a +encrypted media type */
    int fd;         /* the verified blob; once decrypted, a sealed memfd of the plaintext */
};

struct image_config {
    char **entrypoint, **cmd, **env; /* NULL-terminated; NULL when absent */
    char *user, *working_dir;        /* NULL when absent or empty */
};

struct image_manifest {
    cJSON *doc; /* the descriptors' media types and annotations point into it */
    struct image_descriptor config;
    struct image_layer *layers;
    size_t n_layers;
    const cJSON *annotations;
};

/* --- pure parsers (parse.c) --- */

/* "oci:DIR" or "oci:DIR:REF" (split at the first colon after "oci:", as skopeo does). */
int image_parse_name(const char *spec, char **dir, char **ref, tether_error_t *err);
/* A descriptor: mediaType, digest ("sha256:" + 64 lowercase hex), size >= 0, annotations (an
 * object of strings) if any.  where names it in errors ("`manifest.layers[2]`"). */
int image_parse_descriptor(const cJSON *j, const char *where, struct image_descriptor *d,
                           tether_error_t *err);
void image_descriptor_clear(struct image_descriptor *d);
/* index.json: the one manifest whose ref.name annotation is ref, or with ref NULL the only
 * manifest there is. */
int image_parse_index(const char *text, size_t len, const char *ref, struct image_descriptor *out,
                      tether_error_t *err);
/* An image manifest: schemaVersion 2, an OCI config descriptor, 1..IMAGE_LAYERS_MAX layers of
 * known media types (layers' fds are -1). */
int image_parse_manifest(const char *text, size_t len, struct image_manifest *m,
                         tether_error_t *err);
void image_manifest_clear(struct image_manifest *m);
/* An image config's `config` object: Entrypoint, Cmd, Env ("NAME=VALUE"), User, WorkingDir. */
int image_parse_config(const char *text, size_t len, struct image_config *c, tether_error_t *err);
void image_config_clear(struct image_config *c);
/* A layer media type: its compression and whether it is encrypted; -1 when unknown. */
int image_media_type(const char *media_type, enum image_compression *c, bool *encrypted);
/* The enc.pubopts annotation (base64 of {"cipher", "hmac", "cipheroptions"}): the HMAC of an
 * AES_256_CTR_HMAC_SHA256 layer. */
int image_parse_pubopts(const char *b64, unsigned char hmac[32], tether_error_t *err);
/* The JWE's plaintext, ocicrypt's PrivateLayerBlockCipherOptions {"symkey", "cipheroptions":
 * {"nonce"}, "digest"}: the 32-byte key into a new secret, the 16-byte nonce, and the digest
 * of the plaintext layer ("" when not given).  Heap copies of the key are wiped. */
int image_parse_privopts(const unsigned char *plain, size_t len, struct secret **symkey,
                         unsigned char nonce[16], char digest[IMAGE_DIGEST_LEN + 1],
                         tether_error_t *err);

/* A tar member's name in a layer, normalised ("./a/b" and "/a/b" are "a/b"; "." is ""). */
enum image_entry { IMAGE_ENTRY_FILE, IMAGE_ENTRY_WHITEOUT, IMAGE_ENTRY_OPAQUE };
/* -1 for a name with a ".." component or an empty whiteout; else the kind and in *target
 * (free it) the path it names: the member itself, the path a whiteout removes, or the
 * directory an opaque whiteout empties ("" for the root). */
int image_entry_name(const char *name, char **target);

/* User "uid[:gid]" or "name[:group]": numbers where they are given; names are looked up in
 * passwd and group text (NULL: none) as found in the image.  Without a group, a name takes
 * its passwd entry's gid, a number gid 0. */
int image_resolve_user(const char *user, const char *passwd, const char *group, uint32_t *uid,
                       uint32_t *gid, tether_error_t *err);

/* Base64, standard alphabet with padding (url false) or URL-safe without (url true), into out
 * (at least len / 4 * 3 + 3 bytes); the decoded length, or -1. */
long image_base64_decode(const char *s, size_t len, bool url, unsigned char *out);

/* --- the layout (layout.c) --- */

struct image {
    char *dir, *ref;
    char *index_path;   /* <dir>/index.json */
    char index_sha[65]; /* its SHA-256, as read */
    char *manifest_media_type;
    char manifest_digest[IMAGE_DIGEST_LEN + 1];
    struct image_manifest m;
    struct image_config config;
    bool encrypted;
};

/* Opens the layout named by spec ("oci:DIR[:REF]"): the directory is a trust anchor (see
 * core/trust.h), every blob is read through one descriptor opened below it without following
 * links, and each is checked against its digest and size before it is parsed or kept.  The
 * layers stay open (img->m.layers[i].fd). */
int image_open(const char *spec, struct image *img, tether_error_t *err);
void image_close(struct image *img);
/* Closes the layers' descriptors (and so frees decrypted ones) once the tree is unpacked. */
void image_close_layers(struct image *img);

/* input.image: ref, manifest_digest, config_digest, layers (each with `jwe` and
 * `tether_key_id`: how its key is wrapped), annotations, config, encrypted, policy_sha256,
 * signatures. */
cJSON *image_input(const struct image *img);

/* The manifest's IMAGE_ANN_POLICY, or NULL. */
const char *image_policy(const struct image *img);

/* input.image.signatures: what is known of the image's signatures (an array). */
cJSON *image_signatures_collect(const struct image *img);

/* --- keys and encrypted layers (crypt.c) --- */

/* The key a decision released for an image: a private key that opens the layers' JWE
 * recipients, or a 32-byte key of the key store that opens tether's keyprovider packets
 * (KEYPROVIDER_ANNOTATION), which `skopeo copy --encryption-key provider:tether:ID` stores. */
struct image_key {
    void *pkey;               /* an EVP_PKEY (image_key_parse), or NULL */
    const struct secret *sym; /* KEY_BYTES, or NULL */
};

/* Whether every encrypted layer carries a tether packet, all for one key id: 1 with *key_id
 * (free it), 0 when some encrypted layer has none (or none is encrypted), -1 for a packet
 * that does not parse or packets for different keys. */
int image_tether_key_id(const struct image *img, char **key_id, tether_error_t *err);

/* The private key a decision released: PEM (PKCS#8 or traditional) or DER, unencrypted.
 * Returns an EVP_PKEY * as void *, for callers that do not include OpenSSL. */
int image_key_parse(const struct secret *key, void **pkey, tether_error_t *err);
void image_key_free(void *pkey);
/* <keystore>/<id>.pem, checked as the key store's other keys are, into a new secret. */
int image_key_read(const char *keystore, const char *id, struct secret **out, tether_error_t *err);
/* Each encrypted layer: its options (key, nonce, plaintext digest) unwrapped from its JWE with
 * key->pkey or from its tether packet with key->sym, its HMAC checked over the whole
 * ciphertext, and only then decrypted into a sealed memfd that replaces its fd (and checked
 * against the plaintext digest the options name).  Nothing of a layer is decrypted before
 * its HMAC matched. */
int image_decrypt(struct image *img, const struct image_key *key, tether_error_t *err);

/* --- layer contents (layers.c) --- */

/* The last version of a regular file (path relative to the root, "etc/passwd") across the
 * layers, whiteouts honoured: 0 with *text (NUL-terminated, at most max bytes) or NULL when
 * the image has none. */
int image_find_file(const struct image *img, const char *path, size_t max, char **text,
                    tether_error_t *err);

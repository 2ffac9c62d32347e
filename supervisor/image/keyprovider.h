/* The ocicrypt keyprovider protocol (containers/ocicrypt, keywrap/keyprovider) as tether
 * speaks it, and tether's own packet: the layer options (optsdata) that ocicrypt asks a
 * provider to wrap, sealed with AES-256-GCM under a key of the node's key store.
 *
 * The packet (what ocicrypt stores, base64-encoded, in the manifest annotation
 * KEYPROVIDER_ANNOTATION) is JSON:
 *   {"tether_keyprovider": 1, "key_id": ID, "cipher": "AES_256_GCM",
 *    "nonce": base64(12 bytes), "ciphertext": base64(ciphertext and 16-byte tag)}
 * with the additional data KEYPROVIDER_AAD_PREFIX, the version as one byte, then the key id:
 * a packet moved to another key id or version does not open. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "../core/error.h"
#include "../core/secret.h"

#define KEYPROVIDER_NAME "tether"
#define KEYPROVIDER_ANNOTATION "org.opencontainers.image.enc.keys.provider." KEYPROVIDER_NAME
#define KEYPROVIDER_VERSION 1
#define KEYPROVIDER_CIPHER "AES_256_GCM"
#define KEYPROVIDER_AAD_PREFIX "tether keyprovider packet"
#define KEYPROVIDER_MAX_REQUEST (256 << 10)
#define KEYPROVIDER_MAX_OPTSDATA (16 << 10)

struct keyprovider_packet {
    int version;
    char *key_id;
    unsigned char nonce[12];
    unsigned char *ciphertext; /* with the tag at its end */
    size_t ciphertext_len;
    char sha256[65]; /* of the packet's bytes, hex: names it in the input and the audit */
};

/* Parses a packet's JSON bytes.  Pure (fuzzed). */
int keyprovider_packet_parse(const unsigned char *data, size_t len, struct keyprovider_packet *p,
                             tether_error_t *err);
void keyprovider_packet_clear(struct keyprovider_packet *p);
/* {version, key_id, cipher, sha256}: what the policy may know of a packet before it opens. */
cJSON *keyprovider_packet_metadata(const struct keyprovider_packet *p);
/* Seals optsdata under key (32 bytes) for key_id into a new packet (JSON bytes, not secret). */
int keyprovider_packet_seal(const char *key_id, const struct secret *key,
                            const struct secret *optsdata, char **packet, tether_error_t *err);
/* Opens a parsed packet with key: the optsdata, in secret memory.  A wrong key and an
 * altered packet are the same error. */
int keyprovider_packet_open(const struct keyprovider_packet *p, const struct secret *key,
                            struct secret **optsdata, tether_error_t *err);
/* For `tether run --image`: the value of an image's KEYPROVIDER_ANNOTATION (base64 of the
 * packet, as ocicrypt stores it; of the first packet when it lists several, comma-separated)
 * opened with key, the key of the packet's key id (see keyprovider_annotation_key_id).  The
 * optsdata is ocicrypt's PrivateLayerBlockCipherOptions JSON. */
int keyprovider_packet_unwrap(const char *annotation_b64, const struct secret *key,
                              struct secret **optsdata, tether_error_t *err);
/* The key id a KEYPROVIDER_ANNOTATION value names, to look the key up first (free it). */
int keyprovider_annotation_key_id(const char *annotation_b64, char **key_id, tether_error_t *err);

/* A request on the provider's standard input. */
enum keyprovider_op { KEYPROVIDER_WRAP, KEYPROVIDER_UNWRAP };
struct keyprovider_request {
    enum keyprovider_op op;
    char *key_id;              /* keywrap: from keywrapparams.ec.Parameters.tether[0] */
    struct secret *optsdata;   /* keywrap: keywrapparams.optsdata, decoded */
    unsigned char *annotation; /* keyunwrap: keyunwrapparams.annotation, decoded (the packet) */
    size_t annotation_len;
};

/* Parses a request (text may hold secrets: every string of the parsed tree is wiped before it
 * is freed).  Pure (fuzzed).  Errors name the member. */
int keyprovider_request_parse(const char *text, size_t len, struct keyprovider_request *r,
                              tether_error_t *err);
void keyprovider_request_clear(struct keyprovider_request *r);

/* Whether s is a key id the key store can hold (<keystore>/<id>.key): letters, digits and
 * "._-", not starting with ".", at most 255 bytes. */
bool keyprovider_key_id_valid(const char *s);

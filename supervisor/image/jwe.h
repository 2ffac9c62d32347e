/* JSON Web Encryption (RFC 7516), as ocicrypt wraps a layer's options in it: the JSON
 * serialization, general or flattened; A256GCM content; recipients RSA-OAEP, RSA-OAEP-256 or
 * ECDH-ES+A256KW (RFC 7518).  The parser is pure; the decryption uses OpenSSL. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "../core/error.h"
#include "../core/secret.h"

#define JWE_MAX (1u << 20) /* the most bytes of a serialization */
#define JWE_RECIPIENTS_MAX 64

enum jwe_alg { JWE_RSA_OAEP, JWE_RSA_OAEP_256, JWE_ECDH_ES_A256KW };

struct jwe_bytes {
    unsigned char *data;
    size_t len;
};

struct jwe_recipient {
    enum jwe_alg alg;
    struct jwe_bytes encrypted_key, apu, apv;
    char *crv;                     /* ECDH-ES: the ephemeral key's curve, "P-256" ... */
    struct jwe_bytes epk_x, epk_y; /* its coordinates */
};

struct jwe {
    char *aad; /* what A256GCM authenticates: the protected header as sent [+ "." + aad] */
    struct jwe_bytes iv, ciphertext, tag;
    struct jwe_recipient *recipients;
    size_t n_recipients;
};

/* Parses a serialization; headers are merged (protected, shared unprotected, per recipient),
 * and anything this code would not honour ("zip", "crit", another "enc") is an error. */
int jwe_parse(const char *text, size_t len, struct jwe *j, tether_error_t *err);
void jwe_clear(struct jwe *j);

/* The plaintext, into a new secret, through the first recipient that pkey (an EVP_PKEY *)
 * opens; an error when none does or the content does not authenticate. */
int jwe_decrypt(const struct jwe *j, void *pkey, struct secret **plain, tether_error_t *err);

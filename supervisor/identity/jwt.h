/* Workload identity tokens: JWTs (RFC 7519) signed ES256 (ECDSA P-256 with SHA-256, RFC 7518)
 * with the node's identity key, and that key's public half as a JWK (RFC 7517) named by its
 * RFC 7638 thumbprint.  The token is a bearer credential: it is made in secret memory. */
#pragma once

#include <cjson/cJSON.h>

#include "../core/error.h"
#include "../core/secret.h"

/* The node key: an unencrypted PEM EC P-256 private key (PKCS#8 or SEC 1), from secret
 * memory.  Returns an EVP_PKEY * as void *. */
int jwt_key_parse(const struct secret *pem, void **key, tether_error_t *err);
void jwt_key_free(void *key);

/* The public JWK {kty, crv, x, y, kid, use, alg} (take it over). */
cJSON *jwt_jwk(void *key);
/* The key's RFC 7638 thumbprint, base64url: the `kid` of its tokens (free it). */
char *jwt_kid(void *key);

/* header.claims.signature, with header {"alg":"ES256","typ":"JWT","kid":...}. */
int jwt_sign(void *key, const cJSON *claims, struct secret **token, tether_error_t *err);

/* Base64url without padding (RFC 7515, section 2) of n bytes (free it). */
char *jwt_b64url(const void *data, size_t n);

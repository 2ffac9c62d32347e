/* Standard base64 (RFC 4648, with padding, no white space) for data that is not secret:
 * signatures, packets, digests.  Secrets decode through secret_from_base64 instead. */
#pragma once

#include <stddef.h>

#include "error.h"

/* True when s (n bytes) is well-formed base64: a multiple of 4 bytes, the alphabet only,
 * "=" only as the last one or two bytes. */
int base64_valid(const char *s, size_t n);
/* Decodes s into a new buffer (NUL-terminated for convenience; *len excludes it).  The error
 * never quotes the input. */
int base64_decode(const char *s, unsigned char **out, size_t *len, tether_error_t *err);
/* The encoding of n bytes, NUL-terminated. */
char *base64_encode(const void *data, size_t n);
/* The same into buf, which holds at least base64_encoded_len(n) bytes. */
size_t base64_encode_into(const void *data, size_t n, char *buf);
#define base64_encoded_len(n) (((n) + 2) / 3 * 4 + 1)

/* Secret bytes (keys, tokens): in their own locked pages, excluded from core dumps and
 * wiped in forked children, wiped when freed; the process is non-dumpable from the first
 * secret on (and stays so: a dump later could still hold what a secret touched). */
#pragma once

#include <stddef.h>

#include "error.h"

struct secret {
    unsigned char *data;
    size_t len;     /* bytes in use */
    size_t map_len; /* bytes mapped */
};

/* Allocates len bytes (zeroed).  Fails when the pages cannot be locked: a key that could be
 * swapped out is a key written to disk. */
int secret_new(size_t len, struct secret **out, tether_error_t *err);
void secret_free(struct secret *s);
/* Number of secrets alive in this process (for tests). */
size_t secret_live(void);

#define cleanup_secret __attribute__((cleanup(secret_freep)))
static inline void secret_freep(struct secret **s)
{
    secret_free(*s);
}

/* Decodes standard base64 (with padding, no white space) into a new secret.  The error never
 * quotes the input. */
int secret_from_base64(const char *b64, struct secret **out, tether_error_t *err);

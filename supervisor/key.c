/* Key release (see key.h). */
#define _GNU_SOURCE
#include "key.h"

int key_from_decision(struct decision *d, struct secret **out, tether_error_t *err)
{
    *out = NULL;
    struct secret *key = d->key_value;
    if (key == NULL)
        return 0;
    d->key_value = NULL;
    if (key->len != KEY_BYTES) {
        size_t n = key->len;
        secret_free(key);
        return error_set(err, 0, "the released key is %zu bytes, not %d", n, KEY_BYTES);
    }
    *out = key;
    return 0;
}

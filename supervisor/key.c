/* Key release (see key.h). */
#define _GNU_SOURCE
#include "key.h"

int key_from_decision(const struct decision *d, struct secret **out, tether_error_t *err)
{
    *out = NULL;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(d->key, "value");
    if (!cJSON_IsString(value))
        return 0;
    struct secret *key;
    if (secret_from_base64(value->valuestring, &key, err) < 0)
        return error_wrap(err, "the released key");
    if (key->len != KEY_BYTES) {
        size_t n = key->len;
        secret_free(key);
        return error_set(err, 0, "the released key is %zu bytes, not %d", n, KEY_BYTES);
    }
    *out = key;
    return 0;
}

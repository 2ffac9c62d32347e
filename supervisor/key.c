/* Key release (see key.h). */
#define _GNU_SOURCE
#include "key.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/trust.h"
#include "core/util.h"

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

int keystore_read(const char *keystore, const char *id, const char *suffix, size_t min, size_t max,
                  struct secret **out, tether_error_t *err)
{
    *out = NULL;
    if (keystore == NULL)
        return error_set(err, 0, "key `%s` is asked for, but no `keystore` is configured", id);
    /* The id comes from a sealed header, a decision or a provider packet: a name, not a
     * path. */
    if (id[0] == '\0' || id[0] == '.' || strchr(id, '/') != NULL || strlen(id) > 200)
        return error_set(err, 0, "key id `%s` is not a file name", id);
    cleanup_close int dfd = trust_open(keystore, TRUST_DIR | TRUST_PRIVATE, err);
    if (dfd < 0)
        return error_wrap(err, "key store");
    cleanup_free char *name = xasprintf("%s%s", id, suffix);
    cleanup_free char *path = xasprintf("%s/%s", keystore, name);
    cleanup_close int fd = trust_openat(dfd, path, name, TRUST_PRIVATE, err);
    if (fd < 0 && (*err)->code == ENOENT)
        return error_set(err, ENOENT, "no key `%s` in the key store: `%s`", id, path);
    if (fd < 0)
        return error_wrap(err, "key `%s`", id);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return error_set(err, errno, "key `%s`", path);
    if (st.st_size < (off_t)min || st.st_size > (off_t)max) {
        if (min == max)
            return error_set(err, 0, "key `%s` is %lld bytes, not %zu", path, (long long)st.st_size,
                             min);
        return error_set(err, 0, "key `%s` is %lld bytes, not %zu to %zu", path,
                         (long long)st.st_size, min, max);
    }
    if (secret_new((size_t)st.st_size, out, err) < 0)
        return -1;
    if (pread(fd, (*out)->data, (size_t)st.st_size, 0) != st.st_size) {
        secret_free(*out);
        *out = NULL;
        return error_set(err, EIO, "key `%s`", path);
    }
    return 0;
}

/* Reading files out of an image's layers without unpacking them (see image.h): the user's
 * name is looked up in the image's own /etc/passwd before the workload's process exists. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../core/cleanup.h"
#include "../core/libarchive.h"
#include "../core/util.h"
#include "image.h"

/* below is path itself, or a directory above it ("" is the root). */
static bool covers(const char *below, const char *path)
{
    size_t n = strlen(below);
    return n == 0 || (strncmp(below, path, n) == 0 && (path[n] == '\0' || path[n] == '/'));
}

int image_find_file(const struct image *img, const char *path, size_t max, char **text,
                    tether_error_t *err)
{
    *text = NULL;
    if (libarchive_load(err) < 0)
        return -1;
    for (size_t i = 0; i < img->m.n_layers; i++) {
        const struct image_layer *l = &img->m.layers[i];
        struct archive *a = sym_archive_read_new();
        sym_archive_read_support_format_tar(a);
        /* Only libarchive's own decompressors, never a `gzip` or `zstd` found by PATH
         * (what a libarchive built without zlib or libzstd runs, with ARCHIVE_WARN). */
        int filter = ARCHIVE_OK;
        if (l->compression == IMAGE_GZIP)
            filter = sym_archive_read_support_filter_gzip(a);
        else if (l->compression == IMAGE_ZSTD)
            filter = sym_archive_read_support_filter_zstd(a);
        if (filter != ARCHIVE_OK || lseek(l->fd, 0, SEEK_SET) < 0 ||
            sym_archive_read_open_fd(a, l->fd, 1 << 16) != ARCHIVE_OK) {
            error_set(err, 0, "layer %zu: %s", i, sym_archive_error_string(a));
            sym_archive_read_free(a);
            goto fail;
        }
        bool here = false; /* found in this layer: its own whiteouts do not hide it */
        struct archive_entry *e;
        int r;
        while ((r = sym_archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
            char *target = NULL;
            int kind = image_entry_name(sym_archive_entry_pathname(e), &target);
            bool hit = kind == IMAGE_ENTRY_FILE && strcmp(target, path) == 0;
            bool hidden = (kind == IMAGE_ENTRY_WHITEOUT || kind == IMAGE_ENTRY_OPAQUE) && !here &&
                          covers(target, path) &&
                          !(kind == IMAGE_ENTRY_OPAQUE && strcmp(target, path) == 0);
            free(target);
            if (hidden) {
                free(*text);
                *text = NULL;
            }
            if (!hit)
                continue;
            free(*text);
            *text = NULL;
            here = true;
            if (sym_archive_entry_filetype(e) != AE_IFREG)
                continue; /* a link or anything else is not followed: no such file */
            if (sym_archive_entry_size(e) < 0 || (size_t)sym_archive_entry_size(e) > max) {
                error_set(err, 0, "layer %zu: `%s` is larger than %zu bytes", i, path, max);
                sym_archive_read_free(a);
                goto fail;
            }
            size_t n = (size_t)sym_archive_entry_size(e);
            *text = xmalloc(n + 1);
            la_ssize_t got = n ? sym_archive_read_data(a, *text, n) : 0;
            if (got != (la_ssize_t)n) {
                error_set(err, 0, "layer %zu: reading `%s`: %s", i, path,
                          sym_archive_error_string(a));
                sym_archive_read_free(a);
                goto fail;
            }
            (*text)[n] = '\0';
        }
        if (r != ARCHIVE_EOF) {
            error_set(err, 0, "layer %zu: %s", i, sym_archive_error_string(a));
            sym_archive_read_free(a);
            goto fail;
        }
        sym_archive_read_free(a);
    }
    return 0;
fail:
    free(*text);
    *text = NULL;
    return -1;
}

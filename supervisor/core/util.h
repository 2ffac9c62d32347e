/* Small helpers used everywhere: allocation that cannot fail, bounded file reads, strict
 * number parsing, hashing, time stamps and JSON conveniences. */
#pragma once

#include <cjson/cJSON.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define SHA256_HEX_LEN 64
#define HASH_BLOCK (1 << 16) /* the bytes read at a time to hash a file */

/* Allocation failure is not recoverable here: these print one line and abort. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Reads at most max bytes of a file (or fd) into a NUL-terminated buffer; a larger file is
 * an error, so a caller never acts on a silently truncated document. */
int read_file(const char *path, size_t max, char **out, size_t *len, tether_error_t *err);
int read_fd(int fd, size_t max, char **out, size_t *len, tether_error_t *err);
/* Writes all of buf, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
/* True when the regular file behind fd is open for writing by any process (a read lease is
 * refused), or that cannot be told; always false when tether is not root, who alone may
 * ask.  A file of root's with mode 0644 that someone still holds open for writing (opened
 * before a chown or chmod) is not root's alone. */
bool fd_open_for_writing(int fd);
/* "a directory", "a FIFO", ...: what st_mode says a file is, for messages. */
const char *file_type_name(mode_t mode);

/* Strict decimal integer: the whole string, no sign surprises, within [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

void hex_encode(const unsigned char *in, size_t n, char *out);
/* SHA-256 of the bytes of fd from offset 0, as lowercase hex. */
int sha256_fd(int fd, char hex[SHA256_HEX_LEN + 1], tether_error_t *err);
/* The same, writing every byte hashed to copy_fd as well (when it is not -1): the copy is
 * exactly what was hashed.  With hex NULL, a copy only.  A file with more than limit bytes
 * is an error with code EOVERFLOW, found without reading past limit + 1. */
int sha256_fd_copy(int fd, int copy_fd, uint64_t limit, char hex[SHA256_HEX_LEN + 1],
                   tether_error_t *err);
/* sha256_fd of a regular file of at most limit bytes: a larger one is not read at all, and
 * one that grows past limit as it is read is an error too (EOVERFLOW both).  For a file
 * that tether did not choose, whose size its writer chooses: a sparse file of terabytes
 * costs its writer nothing and its reader hours. */
int sha256_fd_max(int fd, uint64_t limit, char hex[SHA256_HEX_LEN + 1], tether_error_t *err);
/* Opens path for reading only if it is a regular file, or -1 with errno (EINVAL: another
 * kind).  A FIFO put in its place would block an open(2) until someone opens it for
 * writing, and a device would act on the open: both are refused before they are opened,
 * and the file checked is the file opened. */
int open_regular(const char *path);
/* In memory.  OpenSSL's or libnettle's (util.c says which, by OpenSSL's configuration);
 * where OpenSSL's configuration gives no SHA-256, tether exits 125 with a line on stderr:
 * nothing can be measured or audited. */
void sha256_raw(const void *data, size_t len, unsigned char md[32]);
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1]);
/* The same, a piece at a time: begin, add, and end, which frees what begin took; drop frees
 * it without a digest, and does nothing after end or another drop. */
struct sha256 {
    struct evp_md_ctx_st *ossl; /* OpenSSL's, or NULL: libnettle's */
    struct sha256_ctx nettle;
};
void sha256_begin(struct sha256 *h);
void sha256_add(struct sha256 *h, const void *data, size_t len);
void sha256_end(struct sha256 *h, unsigned char md[32]);
void sha256_drop(struct sha256 *h);

/* "2026-01-31T12:00:00.123Z" */
void time_rfc3339(char buf[32]);
/* Monotonic clock in nanoseconds. */
uint64_t time_mono_ns(void);

/* JSON conveniences: NULL becomes JSON null. */
cJSON *json_string_or_null(const char *s);
/* A name that can stand as one file name anywhere: 1 to max bytes of letters, digits and
 * "._-", not starting with "." (key ids, secret names). */
bool name_valid(const char *s, size_t max);
char *json_print(const cJSON *j);
/* Parses a JSON text; on failure the error says where (line and column). */
int json_parse(const char *text, size_t len, cJSON **out, tether_error_t *err);
/* An integer-valued JSON number within [min, max]. */
bool json_get_int(const cJSON *j, int64_t min, int64_t max, int64_t *out);
/* A JSON array, or an empty object: Lua cannot tell an empty list from an empty map. */
bool json_is_list(const cJSON *j);
/* Orders an object's members by key (one level), for output that does not depend on a hash
 * table's iteration order. */
void json_sort_keys(cJSON *obj);
/* "string", "number", ...: for error messages. */
const char *json_type_name(const cJSON *j);

/* Error handles: a failing function fills one and returns a negative value; callers add
 * context on the way up with error_wrap(); the verb's top level prints it once. */
#pragma once

typedef struct tether_error {
    int code; /* errno of the root cause, or 0 */
    char *msg;
} * tether_error_t;

/* Sets *err (replacing any earlier error) and returns -1.  With errnum != 0 the message
 * ends in ": strerror(errnum)". */
int error_set(tether_error_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes "context: " to the message in *err and returns -1. */
int error_wrap(tether_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void error_free(tether_error_t *err);

#define cleanup_error __attribute__((cleanup(error_free)))

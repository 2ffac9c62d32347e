/* Error handles (see error.h). */
#define _GNU_SOURCE
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int error_set(tether_error_t *err, int errnum, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    error_free(err);

    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);

    struct tether_error *e = xcalloc(1, sizeof *e);
    e->code = errnum;
    if (errnum != 0) {
        e->msg = xasprintf("%s: %s", msg, strerror(errnum));
        free(msg);
    } else {
        e->msg = msg;
    }
    *err = e;
    return -1;
}

int error_wrap(tether_error_t *err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = xvasprintf(fmt, ap);
    va_end(ap);

    char *msg = xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = msg;
    return -1;
}

void error_free(tether_error_t *err)
{
    if (err == NULL || *err == NULL)
        return;
    free((*err)->msg);
    free(*err);
    *err = NULL;
}

/* Cleanup attributes: a variable declared with one of these is released when it goes out of
 * scope, so that every early return frees, closes and wipes what it must. */
#pragma once

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
    free(*(void **)p);
}

static inline void cleanup_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void cleanup_fclosep(FILE **f)
{
    if (*f != NULL)
        fclose(*f);
}

static inline void cleanup_jsonp(cJSON **j)
{
    cJSON_Delete(*j);
}

#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_file __attribute__((cleanup(cleanup_fclosep)))
#define cleanup_json __attribute__((cleanup(cleanup_jsonp)))

/* Hands ownership out of a cleanup variable. */
#define steal_pointer(pp)                                                                          \
    ({                                                                                             \
        __typeof__(*(pp)) stolen_ = *(pp);                                                         \
        *(pp) = NULL;                                                                              \
        stolen_;                                                                                   \
    })
#define steal_fd(fdp)                                                                              \
    ({                                                                                             \
        int stolen_ = *(fdp);                                                                      \
        *(fdp) = -1;                                                                               \
        stolen_;                                                                                   \
    })

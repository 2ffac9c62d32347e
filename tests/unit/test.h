/* A minimal TAP harness: each check prints "ok N - what" or "not ok N - what" with the place
 * it failed; the program exits non-zero when any check failed. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_count, test_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        test_count++;                                                                              \
        if (cond) {                                                                                \
            printf("ok %d - ", test_count);                                                        \
        } else {                                                                                   \
            test_failed++;                                                                         \
            printf("not ok %d - %s:%d: ", test_count, __FILE__, __LINE__);                         \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

#define CHECK_STR(got, want, ...)                                                                  \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        int same_ = (g_ == NULL && w_ == NULL) || (g_ && w_ && strcmp(g_, w_) == 0);               \
        CHECK(same_, __VA_ARGS__);                                                                 \
        if (!same_)                                                                                \
            printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");        \
    } while (0)

static inline int test_done(void)
{
    printf("1..%d\n", test_count);
    if (test_failed)
        printf("# %d of %d checks failed\n", test_failed, test_count);
    return test_failed ? 1 : 0;
}

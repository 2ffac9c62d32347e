/* libcrypto, loaded at its first use (crypto.h). */
#define _GNU_SOURCE
#include "crypto.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "dlopen.h"

#define SLOT(ret, name, params, args) static DLSYM(name);
#define VSLOT(name, params, args) static DLSYM(name);
CRYPTO_FUNCTIONS(SLOT, VSLOT, VSLOT)

#define ENTRY(ret, name, params, args) DLSYM_ENTRY(name),
#define VENTRY(name, params, args) DLSYM_ENTRY(name),
static const struct dlopen_sym syms[] = {CRYPTO_FUNCTIONS(ENTRY, VENTRY, VENTRY)};

DLOPEN_NOTE(crypto_note,
            "[{\"feature\":\"crypto\",\"description\":\"Keys, signatures, sealed "
            "files and encrypted images (libcrypto); SHA-256 where OpenSSL is "
            "configured\",\"priority\":\"required\",\"soname\":[\"libcrypto.so.3\"]}]");

static struct dlopen_lib lib = {"libcrypto.so.3",
                                "cryptography (OpenSSL)",
                                "libssl3",
                                syms,
                                sizeof syms / sizeof syms[0],
                                NULL,
                                NULL};
static pthread_once_t once = PTHREAD_ONCE_INIT;
static tether_error_t failed;

static void load(void)
{
    if (dlopen_lib_load(&lib, &failed) == 0)
        /* No clean-up of OpenSSL's tables at exit: the kernel frees them faster, and
         * freeing touches every page they use.  No table of libcrypto's error strings
         * either (half a megabyte of a monitor's RSS): tether prints none of them.  The
         * configuration (providers, FIPS) is loaded at the first use that needs it. */
        sym_OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL);
}

int crypto_load(tether_error_t *err)
{
    pthread_once(&once, load);
    return failed == NULL ? 0 : error_set(err, 0, "%s", failed->msg);
}

/* Called where OpenSSL's own function would have been: there is no error to return that
 * each caller would read as "this library is missing", so the start stops here, before
 * what needed it happened (a key released, a file decrypted, a signature trusted). */
static void need(void)
{
    pthread_once(&once, load);
    if (failed != NULL) {
        /* One line, cut short if it must be (the loader's message names paths). */
        char line[512];
        int n = snprintf(line, sizeof line, "tether: %s", failed->msg);
        size_t len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
        line[len++] = '\n';
        (void)!write(STDERR_FILENO, line, len);
        _exit(125);
    }
}

#define WRAP(ret, name, params, args)                                                              \
    __attribute__((visibility("hidden"))) ret name params                                          \
    {                                                                                              \
        need();                                                                                    \
        return sym_##name args;                                                                    \
    }
#define VWRAP(name, params, args)                                                                  \
    __attribute__((visibility("hidden"))) void name params                                         \
    {                                                                                              \
        need();                                                                                    \
        sym_##name args;                                                                           \
    }
#define NWRAP(name, params, args)                                                                  \
    __attribute__((visibility("hidden"))) void name params                                         \
    {                                                                                              \
        if (a0 == NULL)                                                                            \
            return;                                                                                \
        need();                                                                                    \
        sym_##name args;                                                                           \
    }
CRYPTO_FUNCTIONS(WRAP, VWRAP, NWRAP)

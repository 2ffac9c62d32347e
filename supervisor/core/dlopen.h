/* Optional libraries, loaded with dlopen only when a feature needs them, as systemd loads its
 * own (dlopen_many_sym_or_warn): a typed table of symbols per library, loaded once, and one
 * error that names the library and the feature.  A start of tether that needs neither OPA
 * nor a root file system maps neither libcurl nor libarchive and their dozens of dependencies. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* A symbol's slot: `static typeof(f) *sym_f`, typed by the library's own header. */
#define DLSYM(f) typeof(f) *sym_##f
#define DLSYM_ENTRY(f)                                                                             \
    {                                                                                              \
        (void **)&sym_##f, #f                                                                      \
    }

struct dlopen_sym {
    void **slot;
    const char *name;
};

struct dlopen_lib {
    const char *soname;  /* "libcurl.so.4" */
    const char *feature; /* what needs it, for the error: "the OPA engine" */
    const char *package; /* the Debian package that has it, for the error */
    const struct dlopen_sym *syms;
    size_t n_syms;
    void *handle; /* once loaded */
    char *failed; /* the first failure's message: not tried again */
};

/* Loads lib and fills every slot, or none: 0, or -1 with an error that names the library,
 * the feature and the package. */
int dlopen_lib_load(struct dlopen_lib *lib, tether_error_t *err);

/* The optional dependency, declared for packagers as systemd declares its own
 * (https://systemd.io/ELF_DLOPEN_METADATA/): a note in .note.dlopen that names the library.
 * JSON is a string literal: [{"feature":..., "description":..., "priority":..., "soname":[...]}].
 */
#define DLOPEN_NOTE(ident, JSON)                                                                   \
    __attribute__((used, aligned(4), section(".note.dlopen"))) static const struct {               \
        uint32_t namesz, descsz, type;                                                             \
        char name[4];                                                                              \
        char desc[(sizeof JSON + 3) & ~(size_t)3];                                                 \
    } ident = {4, sizeof JSON, 0x407c0c0a, "FDO", JSON}

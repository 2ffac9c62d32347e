/* Optional libraries (see dlopen.h). */
#define _GNU_SOURCE
#include "dlopen.h"

#include <dlfcn.h>

#include "util.h"

int dlopen_lib_load(struct dlopen_lib *lib, tether_error_t *err)
{
    if (lib->handle != NULL)
        return 0;
    if (lib->failed == NULL) {
        void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        const char *missing = NULL;
        for (size_t i = 0; h != NULL && i < lib->n_syms && missing == NULL; i++) {
            *lib->syms[i].slot = dlsym(h, lib->syms[i].name);
            if (*lib->syms[i].slot == NULL)
                missing = lib->syms[i].name;
        }
        if (h != NULL && missing == NULL) {
            lib->handle = h;
            return 0;
        }
        if (h == NULL)
            lib->failed = xasprintf("%s needs %s (Debian package %s): %s", lib->feature,
                                    lib->soname, lib->package, dlerror());
        else
            lib->failed = xasprintf("%s needs %s (Debian package %s), which has no `%s`",
                                    lib->feature, lib->soname, lib->package, missing);
        for (size_t i = 0; i < lib->n_syms; i++)
            *lib->syms[i].slot = NULL;
        if (h != NULL)
            dlclose(h);
    }
    return error_set(err, 0, "%s", lib->failed);
}

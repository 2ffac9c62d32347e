/* Optional libraries (see dlopen.h). */
#define _GNU_SOURCE
#include "dlopen.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "util.h"

/* Where tether started: its root and its mount namespace.  A library is loaded only from
 * there.  A child of tether's that has entered a workload's or a container's mount
 * namespace, or a root of theirs, would otherwise load the first function it calls from a
 * file system the workload writes, as root. */
struct place {
    bool root_ok, ns_ok;
    struct stat root, ns;
};
static struct place start;

static void place_now(struct place *p)
{
    p->root_ok = stat("/", &p->root) == 0;
    p->ns_ok = stat("/proc/self/ns/mnt", &p->ns) == 0;
}

static bool same_file(bool ok_a, const struct stat *a, bool ok_b, const struct stat *b)
{
    return ok_a && ok_b && a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

__attribute__((constructor)) static void place_at_start(void)
{
    place_now(&start);
}

static bool still_at_start(void)
{
    struct place now;
    place_now(&now);
    return same_file(start.root_ok, &start.root, now.root_ok, &now.root) &&
           same_file(start.ns_ok, &start.ns, now.ns_ok, &now.ns);
}

int dlopen_lib_load(struct dlopen_lib *lib, tether_error_t *err)
{
    if (lib->handle != NULL)
        return 0;
    if (lib->failed == NULL && !still_at_start())
        return error_set(err, 0,
                         "%s needs %s, and tether is not in the root and mount namespace it "
                         "started in (or cannot tell, without /proc): a library is loaded "
                         "only from tether's own",
                         lib->feature, lib->soname);
    if (lib->failed == NULL) {
        /* Lazy, as the loader binds a program's own libraries: libcurl's dependencies that
         * are not built to bind at once (krb5, gssapi, nghttp2, ...) then resolve only the
         * functions they call, some 1,800 lookups fewer a request.  Binding loads no file,
         * so it is no load outside tether's namespace; every function tether calls is
         * looked up below, now. */
        void *h = dlopen(lib->soname, RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE);
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

/* libseccomp's symbols (see libseccomp.h). */
#include "libseccomp.h"

#define LIBSECCOMP "libseccomp.so.2"
DLOPEN_NOTE(dlopen_note_seccomp,
            "[{\"feature\":\"confine\",\"description\":\"seccomp filters of confined "
            "workloads\",\"priority\":\"required\",\"soname\":[\"" LIBSECCOMP "\"]}]");

DLSYM(seccomp_attr_set);
DLSYM(seccomp_init);
DLSYM(seccomp_load);
DLSYM(seccomp_notify_alloc);
DLSYM(seccomp_notify_fd);
DLSYM(seccomp_notify_free);
DLSYM(seccomp_notify_receive);
DLSYM(seccomp_notify_respond);
DLSYM(seccomp_release);
DLSYM(seccomp_rule_add);
DLSYM(seccomp_syscall_resolve_name);
DLSYM(seccomp_syscall_resolve_num_arch);
static const struct dlopen_sym syms[] = {
    DLSYM_ENTRY(seccomp_attr_set),
    DLSYM_ENTRY(seccomp_init),
    DLSYM_ENTRY(seccomp_load),
    DLSYM_ENTRY(seccomp_notify_alloc),
    DLSYM_ENTRY(seccomp_notify_fd),
    DLSYM_ENTRY(seccomp_notify_free),
    DLSYM_ENTRY(seccomp_notify_receive),
    DLSYM_ENTRY(seccomp_notify_respond),
    DLSYM_ENTRY(seccomp_release),
    DLSYM_ENTRY(seccomp_rule_add),
    DLSYM_ENTRY(seccomp_syscall_resolve_name),
    DLSYM_ENTRY(seccomp_syscall_resolve_num_arch),
};
static struct dlopen_lib lib = {LIBSECCOMP, "confining a workload (seccomp)", "libseccomp2",
                                syms,       sizeof syms / sizeof *syms,       NULL,
                                NULL};

int libseccomp_load(tether_error_t *err)
{
    return dlopen_lib_load(&lib, err);
}

/* libseccomp, loaded with dlopen by what confines a workload (core/dlopen.h): a hook, an
 * eval or a status maps neither it nor its lookups.  `tether run` loads it first, before it
 * measures or decides, so that a host without it stops there; confine_prepare loads it too (a
 * no-op once loaded), in tether, and the exec gate's filters, built in the child, only find
 * it loaded or fail closed.  The symbols stay for the process and its
 * forked children. */
#pragma once

#include <seccomp.h>

#include "dlopen.h"

int libseccomp_load(tether_error_t *err);

extern DLSYM(seccomp_attr_set);
extern DLSYM(seccomp_init);
extern DLSYM(seccomp_load);
extern DLSYM(seccomp_notify_alloc);
extern DLSYM(seccomp_notify_fd);
extern DLSYM(seccomp_notify_free);
extern DLSYM(seccomp_notify_receive);
extern DLSYM(seccomp_notify_respond);
extern DLSYM(seccomp_release);
extern DLSYM(seccomp_rule_add);
extern DLSYM(seccomp_syscall_resolve_name);
extern DLSYM(seccomp_syscall_resolve_num_arch);

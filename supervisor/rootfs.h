/* Sealed root file systems: a directory tree packed as a tar stream (libarchive) for
 * sealing, and unpacked at launch into a tmpfs in a private mount namespace, which becomes
 * the workload's root.  The tree exists in plaintext only in memory. */
#pragma once

#include <stdint.h>

#include "core/error.h"

/* Packs dir into a new memfd (a pax tar stream); entrypoint must be an executable regular
 * file inside it. */
int rootfs_pack(const char *dir, const char *entrypoint, int *memfd, tether_error_t *err);

/* In the child: a private mount namespace, a tmpfs of size_cap bytes (mode 0700) on
 * mountpoint, the tar from tar_fd unpacked into it, and chroot into it.  -1 with errno and
 * *step on failure. */
int rootfs_enter(int tar_fd, const char *mountpoint, uint64_t size_cap, const char **step);

/* Sealed root file systems: a directory tree packed as a tar stream (libarchive) for
 * sealing, and unpacked at launch into a tmpfs in a private mount namespace, which becomes
 * the workload's root.  The tree exists in plaintext only in memory. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Packs dir into a new memfd (a pax tar stream); entrypoint must be an executable regular
 * file inside it. */
int rootfs_pack(const char *dir, const char *entrypoint, int *memfd, tether_error_t *err);

/* An OCI image's tree: its layers, applied in order with their whiteouts (`.wh.NAME` removes
 * NAME from the layers below, `.wh..wh..opq` empties its directory of them), and where its
 * process starts. */
enum rootfs_compression { ROOTFS_TAR, ROOTFS_GZIP, ROOTFS_ZSTD };
struct rootfs_layer {
    int fd; /* read from offset 0 */
    enum rootfs_compression compression;
};
struct rootfs_spec {
    const struct rootfs_layer *layers;
    size_t n_layers;
    const char *workdir;  /* made and entered in the tree, or NULL: / */
    const char *path_env; /* searched for an entrypoint without a slash, or NULL */
    /* The entrypoint, a buffer of entrypoint_size bytes (the launch spec's entrypoint): a
     * name without a slash is replaced by the file it names in the tree. */
    char *entrypoint;
    size_t entrypoint_size;
};

/* In the parent, before the child is forked: loads libarchive (core/libarchive.h), which
 * rootfs_enter needs and cannot load once in the tree. */
int rootfs_load(tether_error_t *err);

/* In the child: a private mount namespace, a tmpfs of size_cap bytes (mode 0700) on
 * mountpoint, chroot into it, and the tar from tar_fd unpacked into it (with spec, its
 * layers instead).  -1 with errno and *step on failure. */
int rootfs_enter(int tar_fd, const struct rootfs_spec *spec, const char *mountpoint,
                 uint64_t size_cap, const char **step);

/* Sealed root file systems (see rootfs.h).  libarchive writes and reads the tar stream; its
 * secure-extraction flags refuse "..", absolute paths and writing through symlinks. */
#define _GNU_SOURCE
#include "rootfs.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/util.h"

int rootfs_pack(const char *dir, const char *entrypoint, int *memfd, tether_error_t *err)
{
    if (entrypoint == NULL || entrypoint[0] != '/')
        return error_set(err, 0, "a root file system needs --entrypoint, an absolute path in it");
    cleanup_free char *ep = xasprintf("%s%s", dir, entrypoint);
    struct stat st;
    if (lstat(ep, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
        return error_set(err, 0, "--entrypoint `%s` is not an executable file in `%s`", entrypoint,
                         dir);

    int fd = memfd_create("tether-tree", MFD_CLOEXEC);
    if (fd < 0)
        return error_set(err, errno, "memfd");
    struct archive *out = archive_write_new();
    struct archive *disk = archive_read_disk_new();
    archive_write_set_format_pax_restricted(out);
    archive_read_disk_set_standard_lookup(disk);
    archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
    int rc = -1;
    if (archive_write_open_fd(out, fd) != ARCHIVE_OK ||
        archive_read_disk_open(disk, dir) != ARCHIVE_OK) {
        error_set(err, 0, "packing `%s`: %s", dir, archive_error_string(disk));
        goto out;
    }
    size_t dlen = strlen(dir);
    char buf[1 << 16];
    for (;;) {
        struct archive_entry *e = archive_entry_new();
        int r = archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF) {
            archive_entry_free(e);
            break;
        }
        if (r != ARCHIVE_OK) {
            error_set(err, 0, "packing `%s`: %s", dir, archive_error_string(disk));
            archive_entry_free(e);
            goto out;
        }
        archive_read_disk_descend(disk);
        /* Paths relative to the tree's root: "./bin/probe". */
        const char *src = archive_entry_sourcepath(e);
        cleanup_free char *rel = xasprintf(".%s", src + dlen);
        archive_entry_set_pathname(e, rel);
        if (archive_write_header(out, e) != ARCHIVE_OK) {
            error_set(err, 0, "packing `%s`: %s", src, archive_error_string(out));
            archive_entry_free(e);
            goto out;
        }
        if (archive_entry_filetype(e) == AE_IFREG) {
            int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            ssize_t n;
            while (in >= 0 && (n = read(in, buf, sizeof buf)) > 0)
                archive_write_data(out, buf, (size_t)n);
            if (in >= 0)
                close(in);
        }
        archive_entry_free(e);
    }
    if (archive_write_close(out) != ARCHIVE_OK) {
        error_set(err, 0, "packing `%s`: %s", dir, archive_error_string(out));
        goto out;
    }
    lseek(fd, 0, SEEK_SET);
    *memfd = fd;
    fd = -1;
    rc = 0;
out:
    archive_read_free(disk);
    archive_write_free(out);
    if (fd >= 0)
        close(fd);
    return rc;
}

int rootfs_enter(int tar_fd, const char *mountpoint, uint64_t size_cap, const char **step)
{
    *step = "root file system: private mount namespace";
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    *step = "root file system: tmpfs";
    char opts[64];
    snprintf(opts, sizeof opts, "mode=0700,size=%llu", (unsigned long long)size_cap);
    if (mount("tether-root", mountpoint, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return -1;
    if (chdir(mountpoint) < 0)
        return -1;

    *step = "root file system: unpacking";
    struct archive *in = archive_read_new();
    struct archive *disk = archive_write_disk_new();
    archive_read_support_format_tar(in);
    archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                             ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                             ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                                             ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME);
    lseek(tar_fd, 0, SEEK_SET);
    int rc = archive_read_open_fd(in, tar_fd, 1 << 16) == ARCHIVE_OK ? 0 : -1;
    struct archive_entry *e;
    while (rc == 0 && archive_read_next_header(in, &e) == ARCHIVE_OK) {
        if (archive_read_extract2(in, e, disk) != ARCHIVE_OK)
            rc = -1;
    }
    archive_read_free(in);
    archive_write_free(disk);
    if (rc < 0) {
        errno = errno ? errno : EIO;
        return -1;
    }

    *step = "root file system: chroot";
    if (chroot(".") < 0 || chdir("/") < 0)
        return -1;
    return 0;
}

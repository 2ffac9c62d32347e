/* Files in memory only for a plaintext (memfile.h). */
#define _GNU_SOURCE
#include "memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"

static int set(int fs, const char *key, const char *value)
{
    return (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0);
}

/* A tmpfs of its own, mounted nowhere: its root directory, or -1. */
static int private_tmpfs(uint64_t size)
{
    cleanup_close int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    /* Room for the plaintext and no more, in whole huge pages. */
    char room[24];
    snprintf(room, sizeof room, "%llu",
             (unsigned long long)((size + MEMFILE_PRIVATE_MIN - 1) / MEMFILE_PRIVATE_MIN *
                                  MEMFILE_PRIVATE_MIN));
    if (set(fs, "huge", "within_size") < 0 || set(fs, "size", room) < 0 ||
        set(fs, "mode", "0700") < 0)
        return -1;
    /* Linux 6.4 and later; an older kernel may swap it out, as it would a memfd. */
    (void)syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "noswap", NULL, 0);
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -1;
    return (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
}

/* Whether fd's file can be made immutable, which memfile_finish will need: tmpfs has file
 * attributes from Linux 6.0, and the flag takes CAP_LINUX_IMMUTABLE in the initial user
 * namespace.  Tried on the empty file, and undone. */
static bool immutable_ok(int fd)
{
    int flags;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
        return false;
    int on = flags | FS_IMMUTABLE_FL;
    return ioctl(fd, FS_IOC_SETFLAGS, &on) == 0 && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
}

int memfile_new(struct memfile *m, const char *name, uint64_t size, bool sealed,
                tether_error_t *err)
{
    m->fd = m->ro = -1;
    if (!sealed && size >= MEMFILE_PRIVATE_MIN) {
        cleanup_close int root = private_tmpfs(size);
        if (root >= 0 &&
            (m->fd = openat(root, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0700)) >= 0 &&
            (m->ro = openat(root, name, O_RDONLY | O_CLOEXEC)) >= 0 && immutable_ok(m->fd) &&
            unlinkat(root, name, 0) == 0)
            return 0;
        memfile_close(m);
    }
    m->fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return m->fd < 0 ? error_set(err, errno, "memfd") : 0;
}

int memfile_finish(struct memfile *m, mode_t mode, tether_error_t *err)
{
    int rc = -1, flags = 0;
    if (m->ro < 0) {
        if (fcntl(m->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
            error_set(err, errno, "memfd: sealing");
        else if (mode != 0 && fchmod(m->fd, mode) < 0)
            error_set(err, errno, "memfd");
        else
            rc = steal_fd(&m->fd);
    } else if (mode != 0 && fchmod(m->fd, mode) < 0) {
        error_set(err, errno, "memory file");
    } else if (ioctl(m->fd, FS_IOC_GETFLAGS, &flags) < 0 ||
               (flags |= FS_IMMUTABLE_FL, ioctl(m->fd, FS_IOC_SETFLAGS, &flags) < 0)) {
        error_set(err, errno, "memory file: making it immutable");
    } else {
        rc = steal_fd(&m->ro);
    }
    memfile_close(m);
    return rc;
}

void memfile_close(struct memfile *m)
{
    if (m->fd >= 0)
        close(steal_fd(&m->fd));
    if (m->ro >= 0)
        close(steal_fd(&m->ro));
}

/* Files in memory only for a plaintext (memfile.h). */
#define _GNU_SOURCE
#include "memfile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

static int tmpfs_set(int fs, const char *key, const char *value)
{
    return (int)syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0);
}

/* A tmpfs of its own, mounted nowhere: its root directory, or -1 with errno set.  No room
 * for anything but the plaintext: its size in pages, and two inodes, the root directory and
 * the one file (nothing else can be made there for a program to run from, on a mount no
 * exec prevention marks). */
static int private_tmpfs(uint64_t size)
{
    cleanup_close int fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    char room[24];
    snprintf(room, sizeof room, "%llu", (unsigned long long)((size + 4095) & ~UINT64_C(4095)));
    if (tmpfs_set(fs, "huge", "within_size") < 0 || tmpfs_set(fs, "size", room) < 0 ||
        tmpfs_set(fs, "nr_inodes", "2") < 0 || tmpfs_set(fs, "mode", "0700") < 0)
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

/* Its file in a tmpfs of its own: NULL, or the step that failed, errno saying why. */
static const char *private_file(struct memfile *m, const char *name, uint64_t size)
{
    cleanup_close int root = private_tmpfs(size);
    if (root < 0)
        return "mounting a tmpfs";
    m->fd = openat(root, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (m->fd < 0)
        return "creating its file";
    m->ro = openat(root, name, O_RDONLY | O_CLOEXEC);
    if (m->ro < 0)
        return "opening it read-only";
    if (!immutable_ok(m->fd))
        return "FS_IMMUTABLE_FL";
    if (unlinkat(root, name, 0) < 0)
        return "unlinking its file";
    return NULL;
}

int memfile_new(struct memfile *m, const char *name, uint64_t size, bool memfd_only,
                tether_error_t *err)
{
    m->fd = m->ro = -1;
    if (!memfd_only && size >= MEMFILE_PRIVATE_MIN) {
        const char *failed = private_file(m, name, size);
        if (failed == NULL)
            return 0;
        log_debug("`%s`: no tmpfs of its own (%s: %s): a memfd", name, failed, strerror(errno));
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
            error_set(err, errno, "memfd: setting its mode");
        else
            rc = steal_fd(&m->fd);
    } else if (mode != 0 && fchmod(m->fd, mode) < 0) {
        error_set(err, errno, "memory file: setting its mode");
    } else if (ioctl(m->fd, FS_IOC_GETFLAGS, &flags) < 0) {
        error_set(err, errno, "memory file: reading its flags");
    } else {
        flags |= FS_IMMUTABLE_FL;
        if (ioctl(m->fd, FS_IOC_SETFLAGS, &flags) < 0)
            error_set(err, errno, "memory file: making it immutable");
        else
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

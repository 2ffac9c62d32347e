/* Sealed root file systems (see rootfs.h).  libarchive writes and reads the tar stream; its
 * secure-extraction flags refuse "..", absolute paths and writing through symlinks. */
#define _GNU_SOURCE
#include "rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <iconv.h>
#include <langinfo.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/libarchive.h"
#include "core/util.h"
#include "image/image.h"

int rootfs_pack(const char *dir, const char *entrypoint, int *memfd, tether_error_t *err)
{
    if (entrypoint == NULL || entrypoint[0] != '/')
        return error_set(err, 0, "a root file system needs --entrypoint, an absolute path in it");
    if (libarchive_load(err) < 0)
        return -1;
    cleanup_free char *ep = xasprintf("%s%s", dir, entrypoint);
    struct stat st;
    if (lstat(ep, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
        return error_set(err, 0, "--entrypoint `%s` is not an executable file in `%s`", entrypoint,
                         dir);

    int fd = memfd_create("tether-tree", MFD_CLOEXEC);
    if (fd < 0)
        return error_set(err, errno, "memfd");
    struct archive *out = sym_archive_write_new();
    struct archive *disk = sym_archive_read_disk_new();
    sym_archive_write_set_format_pax_restricted(out);
    sym_archive_read_disk_set_standard_lookup(disk);
    sym_archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
    int rc = -1;
    if (sym_archive_write_open_fd(out, fd) != ARCHIVE_OK ||
        sym_archive_read_disk_open(disk, dir) != ARCHIVE_OK) {
        error_set(err, 0, "packing `%s`: %s", dir, sym_archive_error_string(disk));
        goto out;
    }
    size_t dlen = strlen(dir);
    char buf[1 << 16];
    for (;;) {
        struct archive_entry *e = sym_archive_entry_new();
        int r = sym_archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF) {
            sym_archive_entry_free(e);
            break;
        }
        if (r != ARCHIVE_OK) {
            error_set(err, 0, "packing `%s`: %s", dir, sym_archive_error_string(disk));
            sym_archive_entry_free(e);
            goto out;
        }
        sym_archive_read_disk_descend(disk);
        /* Paths relative to the tree's root: "./bin/probe". */
        const char *src = sym_archive_entry_sourcepath(e);
        cleanup_free char *rel = xasprintf(".%s", src + dlen);
        sym_archive_entry_set_pathname(e, rel);
        if (sym_archive_write_header(out, e) != ARCHIVE_OK) {
            error_set(err, 0, "packing `%s`: %s", src, sym_archive_error_string(out));
            sym_archive_entry_free(e);
            goto out;
        }
        if (sym_archive_entry_filetype(e) == AE_IFREG) {
            int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            ssize_t n;
            while (in >= 0 && (n = read(in, buf, sizeof buf)) > 0)
                sym_archive_write_data(out, buf, (size_t)n);
            if (in >= 0)
                close(in);
        }
        sym_archive_entry_free(e);
    }
    if (sym_archive_write_close(out) != ARCHIVE_OK) {
        error_set(err, 0, "packing `%s`: %s", dir, sym_archive_error_string(out));
        goto out;
    }
    lseek(fd, 0, SEEK_SET);
    *memfd = fd;
    fd = -1;
    rc = 0;
out:
    sym_archive_read_free(disk);
    sym_archive_write_free(out);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The paths a layer created so far: its own whiteouts do not remove them (a whiteout hides
 * only what the layers below it hold). */
struct pathset {
    char **slot;
    size_t cap, n;
};

static size_t path_hash(const char *p, size_t cap)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return (size_t)(h & (cap - 1));
}

static bool pathset_has(const struct pathset *s, const char *p)
{
    if (s->cap == 0)
        return false;
    for (size_t i = path_hash(p, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (s->slot[i] == NULL)
            return false;
        if (strcmp(s->slot[i], p) == 0)
            return true;
    }
}

static void pathset_add(struct pathset *s, const char *p)
{
    if (pathset_has(s, p))
        return;
    if (2 * (s->n + 1) > s->cap) {
        struct pathset g = {xcalloc(s->cap ? 2 * s->cap : 64, sizeof(char *)),
                            s->cap ? 2 * s->cap : 64, 0};
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i] != NULL)
                pathset_add(&g, s->slot[i]), free(s->slot[i]);
        free(s->slot);
        *s = g;
    }
    size_t i = path_hash(p, s->cap);
    while (s->slot[i] != NULL)
        i = (i + 1) & (s->cap - 1);
    s->slot[i] = xstrdup(p);
    s->n++;
}

static void pathset_clear(struct pathset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* Removes name in dir, a directory with everything in it; links are removed, never followed. */
static int remove_at(int dir, const char *name)
{
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dir, name, 0);
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = remove_at(dirfd(d), de->d_name);
    closedir(d);
    return rc < 0 ? -1 : unlinkat(dir, name, AT_REMOVEDIR);
}

/* Removes path (relative to the tree's root, which is / by now) if it is there. */
static int remove_path(const char *path)
{
    cleanup_free char *parent = xstrdup(path);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash)
        *slash = '\0';
    cleanup_close int dir = open(slash ? parent : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    return remove_at(dir, base);
}

/* An opaque directory: everything below it that this layer did not create goes. */
static int prune(int dir, const char *rel, const struct pathset *keep)
{
    int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        cleanup_free char *child = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
        struct stat st;
        if (!pathset_has(keep, child)) {
            rc = remove_at(dirfd(d), de->d_name);
        } else if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                   S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            rc = sub < 0 ? -1 : prune(sub, child, keep);
            if (sub >= 0)
                close(sub);
        }
    }
    closedir(d);
    return rc;
}

static char step_msg[256];

static int apply_layer(const struct rootfs_layer *l, size_t idx, struct archive *disk,
                       const char **step)
{
    struct archive *in = sym_archive_read_new();
    sym_archive_read_support_format_tar(in);
    /* Only libarchive's own decompressors: one built without zlib or libzstd answers
     * ARCHIVE_WARN and runs `gzip` or `zstd` by PATH, which here is the tree's, as root. */
    int filter = ARCHIVE_OK;
    if (l->compression == ROOTFS_GZIP)
        filter = sym_archive_read_support_filter_gzip(in);
    else if (l->compression == ROOTFS_ZSTD)
        filter = sym_archive_read_support_filter_zstd(in);
    struct pathset here = {0};
    int rc = -1;
    struct archive_entry *e;
    int r = ARCHIVE_FATAL;
    if (filter == ARCHIVE_OK && lseek(l->fd, 0, SEEK_SET) == 0 &&
        sym_archive_read_open_fd(in, l->fd, 1 << 16) == ARCHIVE_OK)
        while ((r = sym_archive_read_next_header(in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
            char *target = NULL;
            int kind = image_entry_name(sym_archive_entry_pathname(e), &target);
            if (kind < 0) {
                snprintf(step_msg, sizeof step_msg, "root file system: layer %zu: `%s`", idx,
                         sym_archive_entry_pathname(e));
                errno = EINVAL;
                goto out;
            }
            int ok = 0;
            if (kind == IMAGE_ENTRY_WHITEOUT && !pathset_has(&here, target)) {
                ok = remove_path(target);
            } else if (kind == IMAGE_ENTRY_OPAQUE) {
                int dir = open(*target ? target : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
                ok = dir < 0 ? (errno == ENOENT ? 0 : -1) : prune(dir, target, &here);
                if (dir >= 0)
                    close(dir);
            } else if (kind == IMAGE_ENTRY_FILE && *target) {
                /* A file where a directory was, or the other way round, replaces it. */
                struct stat st;
                bool is_dir = sym_archive_entry_filetype(e) == AE_IFDIR;
                if (lstat(target, &st) == 0 && (S_ISDIR(st.st_mode) != is_dir || !is_dir))
                    ok = remove_path(target);
                pathset_add(&here, target);
                sym_archive_entry_set_pathname(e, target);
                if (ok == 0 && sym_archive_read_extract2(in, e, disk) < ARCHIVE_WARN) {
                    snprintf(step_msg, sizeof step_msg, "root file system: layer %zu: %s", idx,
                             sym_archive_error_string(disk) ? sym_archive_error_string(disk) : "?");
                    errno = errno ? errno : EIO;
                    free(target);
                    goto out;
                }
            }
            free(target);
            if (ok < 0) {
                snprintf(step_msg, sizeof step_msg, "root file system: layer %zu: a whiteout", idx);
                goto out;
            }
        }
    if (r != ARCHIVE_EOF) {
        snprintf(step_msg, sizeof step_msg, "root file system: layer %zu: %s", idx,
                 sym_archive_error_string(in) ? sym_archive_error_string(in) : "unreadable");
        errno = EIO;
        goto out;
    }
    rc = 0;
out:
    *step = step_msg;
    pathset_clear(&here);
    sym_archive_read_free(in);
    return rc;
}

static int unpack_tar(int tar_fd)
{
    struct archive *in = sym_archive_read_new();
    struct archive *disk = sym_archive_write_disk_new();
    sym_archive_read_support_format_tar(in);
    sym_archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                 ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                 ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                                                 ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME);
    lseek(tar_fd, 0, SEEK_SET);
    int rc = sym_archive_read_open_fd(in, tar_fd, 1 << 16) == ARCHIVE_OK ? 0 : -1;
    struct archive_entry *e;
    while (rc == 0 && sym_archive_read_next_header(in, &e) == ARCHIVE_OK) {
        if (sym_archive_read_extract2(in, e, disk) != ARCHIVE_OK)
            rc = -1;
    }
    sym_archive_read_free(in);
    sym_archive_write_free(disk);
    if (rc < 0)
        errno = errno ? errno : EIO;
    return rc;
}

/* A bare name through PATH, as execvp(3) looks: the first executable regular file. */
static void resolve_entrypoint(const struct rootfs_spec *spec)
{
    if (spec->entrypoint[0] == '\0' || strchr(spec->entrypoint, '/') != NULL)
        return;
    const char *path = spec->path_env ? spec->path_env
                                      : "/usr/local/sbin:/usr/local/bin:"
                                        "/usr/sbin:/usr/bin:/sbin:/bin";
    cleanup_free char *name = xstrdup(spec->entrypoint);
    for (const char *p = path; *p;) {
        const char *end = strchrnul(p, ':');
        cleanup_free char *cand = xasprintf("%.*s/%s", (int)(end - p), p, name);
        struct stat st;
        if (cand[0] == '/' && stat(cand, &st) == 0 && S_ISREG(st.st_mode) &&
            access(cand, X_OK) == 0 && strlen(cand) < spec->entrypoint_size) {
            strcpy(spec->entrypoint, cand);
            return;
        }
        p = *end ? end + 1 : end;
    }
}

static int make_dirs(const char *path)
{
    cleanup_free char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -1;
            *s = c;
            if (c == '\0')
                return 0;
        }
    }
}

static int enter_image(const struct rootfs_spec *spec, const char **step)
{
    /* The image's user must be able to walk its own tree; the host reaches the mount only
     * through tether's status directory, root's alone. */
    *step = "root file system: its root's mode";
    if (chmod("/", 0755) < 0)
        return -1;
    struct archive *disk = sym_archive_write_disk_new();
    sym_archive_write_disk_set_options(
        disk, ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
                  ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME);
    for (size_t i = 0; i < spec->n_layers; i++)
        if (apply_layer(&spec->layers[i], i, disk, step) < 0) {
            int e = errno;
            sym_archive_write_free(disk);
            errno = e;
            return -1;
        }
    sym_archive_write_free(disk);
    *step = "root file system: the image's WorkingDir";
    if (spec->workdir != NULL && (make_dirs(spec->workdir) < 0 || chdir(spec->workdir) < 0))
        return -1;
    resolve_entrypoint(spec);
    return 0;
}

/* glibc reads the list of its conversion modules (gconv-modules, or its cache) at the first
 * iconv_open, from the root the process has then, and loads the module the list names for
 * a conversion.  libarchive converts a pax header's UTF-8 names to the locale's charset
 * while it unpacks, after pivot_root: the list would be the tree's, and the module it
 * names loaded as root, before confinement.  Read here, in the parent, from the node's
 * own: glibc keeps it for the process and its children, and these two conversions are
 * its built-in ones, which load nothing.  That holds because tether never calls setlocale
 * (its charset is the C locale's, ANSI_X3.4-1968) and a pax header names no other
 * charset; another conversion would load a module by the node's path, in the tree. */
static void read_conversions_here(void)
{
    const char *charset = nl_langinfo(CODESET);
    iconv_t cd = iconv_open(charset, "UTF-8");
    if (cd != (iconv_t)-1)
        iconv_close(cd);
    cd = iconv_open("UTF-8", charset);
    if (cd != (iconv_t)-1)
        iconv_close(cd);
}

int rootfs_load(tether_error_t *err)
{
    read_conversions_here();
    return libarchive_load(err);
}

int rootfs_enter(int tar_fd, const struct rootfs_spec *spec, const char *mountpoint,
                 uint64_t size_cap, const char **step)
{
    /* Loaded by the parent (rootfs.h): after the chroot there is no library to load. */
    *step = "root file system: libarchive is not loaded";
    if (sym_archive_read_new == NULL) {
        errno = ELIBACC;
        return -1;
    }
    *step = "root file system: private mount namespace";
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -1;
    *step = "root file system: tmpfs";
    char opts[64];
    snprintf(opts, sizeof opts, "mode=0700,size=%llu", (unsigned long long)size_cap);
    if (mount("tether-root", mountpoint, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return -1;
    /* Into the tree first: nothing a layer holds (links, "..", whiteouts) can reach past it.
     * The tree becomes the namespace's root and the node's file system leaves the namespace
     * (pivot_root, then the old root detached, as runc does): a chroot would leave it
     * there, and a root workload with CAP_SYS_CHROOT walks out of a chroot (a chroot into
     * a directory below, then ".." past the old root), to the node's files and /proc/sys. */
    *step = "root file system: pivot_root";
    cleanup_close int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (old_root < 0 || chdir(mountpoint) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
        fchdir(old_root) < 0 || mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0 ||
        umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return -1;
    *step = "root file system: unpacking";
    if (spec != NULL)
        return enter_image(spec, step);
    return unpack_tar(tar_fd);
}

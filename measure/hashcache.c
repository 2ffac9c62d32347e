/* Executable hashes without reading the file again (see measure.h, measure_sha256), and
 * other digests of a file under the same rules (a sealed file's, measure_cache_get).
 *
 * What a remembered hash trusts: that only root can change the file (owner root, no group or
 * other write bit), that the file system updates its change time on every change (local file
 * systems only), and that the file's identity (device, inode, birth time) and its size, mtime
 * and ctime, all as the kernel reports them, are what they were when it was hashed.  A write,
 * a truncate, a chmod, a chown, a touch or a rename over the file changes one of them.
 * Timestamps are coarse (a clock tick), so a file changed within the last CACHE_SETTLE_S
 * seconds is never remembered: a second change in the same tick would not move its ctime,
 * as git's "racily clean" index entries teach.  A file with fs-verity enabled cannot change
 * at all, and its verity digest is exposed besides.  A file no name reaches is remembered
 * in this process only (measure_cache_put). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fsverity.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../supervisor/core/cleanup.h"
#include "../supervisor/core/util.h"
#include "measure.h"

#define CACHE_SETTLE_S 2
#define ENTRY_MAX 256

#ifndef STATX_ATTR_VERITY
#define STATX_ATTR_VERITY 0x00100000
#endif

static int cache_dir = -1; /* the persistent store (root's), or -1: this process only */
static bool disabled;      /* `hash_cache: false` in the configuration */

struct mem_entry {
    struct measure_file_id id;
    char kind;
    char hex[SHA256_HEX_LEN + 1];
};
static struct mem_entry mem[64];
static size_t mem_next;

void measure_hashcache_use(int dirfd)
{
    cache_dir = dirfd;
}

void measure_hashcache_disable(void)
{
    disabled = true;
}

static bool file_id_get(int fd, struct measure_file_id *id, bool *verity)
{
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &sx) <
        0)
        return false;
    memset(id, 0, sizeof *id); /* padding too: ids are compared whole */
    id->dev = ((uint64_t)sx.stx_dev_major << 32) | sx.stx_dev_minor;
    id->ino = sx.stx_ino;
    id->size = sx.stx_size;
    id->mtime_s = sx.stx_mtime.tv_sec;
    id->mtime_ns = sx.stx_mtime.tv_nsec;
    id->ctime_s = sx.stx_ctime.tv_sec;
    id->ctime_ns = sx.stx_ctime.tv_nsec;
    if (sx.stx_mask & STATX_BTIME) {
        id->btime_s = sx.stx_btime.tv_sec;
        id->btime_ns = sx.stx_btime.tv_nsec;
    }
    *verity =
        (sx.stx_attributes_mask & STATX_ATTR_VERITY) && (sx.stx_attributes & STATX_ATTR_VERITY);
    return true;
}

static bool same_id(const struct measure_file_id *a, const struct measure_file_id *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* Local file systems, which change ctime on every change of the file. */
static bool local_fs(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return false;
    switch ((unsigned long)sf.f_type) {
    case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case F2FS_SUPER_MAGIC:
        return true;
    default:
        return false;
    }
}

/* The store holds at most STORE_SLOTS entries, so a workload that makes and runs file after
 * file cannot fill /run: an entry's name is its slot, a hash of the file's identity and the
 * digest's kind, and a new entry takes the place of whatever was in its slot.  Each entry
 * holds the whole identity and the kind, so one that lost its slot is a miss, never another
 * file's hash.  Two files that share a slot cost a read now and then, nothing more. */
#define STORE_SLOTS 1024

static void entry_name(const struct measure_file_id *id, char kind, char name[64])
{
    /* splitmix64's finalizer: dev, ino and kind spread over the slots. */
    uint64_t h = id->dev * 0x9e3779b97f4a7c15u ^ id->ino ^ ((uint64_t)(unsigned char)kind << 56);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    h ^= h >> 31;
    snprintf(name, 64, "%03x", (unsigned)(h % STORE_SLOTS));
}

static int entry_format(const struct measure_file_id *id, char kind, const char *hex, char *buf,
                        size_t cap)
{
    return snprintf(buf, cap,
                    "tether-hash 2 %c %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 ".%09" PRIu32
                    " %" PRId64 ".%09" PRIu32 " %" PRId64 ".%09" PRIu32 " %s\n",
                    kind ? kind : '-', id->dev, id->ino, id->size, id->mtime_s, id->mtime_ns,
                    id->ctime_s, id->ctime_ns, id->btime_s, id->btime_ns, hex);
}

static bool store_lookup(const struct measure_file_id *id, char kind, char hex[SHA256_HEX_LEN + 1])
{
    char name[64], want[ENTRY_MAX], got[ENTRY_MAX];
    entry_name(id, kind, name);
    cleanup_close int fd = openat(cache_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, got, sizeof got - 1);
    if (n <= 0)
        return false;
    got[n] = '\0';
    /* The whole line must be what this file's identity and times give, with a hash. */
    int len = entry_format(id, kind, "", want, sizeof want);
    if (len <= 1 || (size_t)n != (size_t)len + SHA256_HEX_LEN ||
        memcmp(got, want, (size_t)len - 1) != 0 || got[n - 1] != '\n')
        return false;
    for (int i = 0; i < SHA256_HEX_LEN; i++)
        if (!strchr("0123456789abcdef", got[len - 1 + i]) || got[len - 1 + i] == '\0')
            return false;
    memcpy(hex, got + len - 1, SHA256_HEX_LEN);
    hex[SHA256_HEX_LEN] = '\0';
    return true;
}

/* Written whole under a temporary name, then renamed: a reader sees an old entry or a new
 * one, never a part. */
static void store_save(const struct measure_file_id *id, char kind, const char *hex)
{
    char name[64], tmp[96], line[ENTRY_MAX];
    entry_name(id, kind, name);
    snprintf(tmp, sizeof tmp, ".%s.%d", name, (int)getpid());
    int len = entry_format(id, kind, hex, line, sizeof line);
    cleanup_close int fd =
        openat(cache_dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (len <= 0 || write_all(fd, line, (size_t)len) < 0 ||
        renameat(cache_dir, tmp, cache_dir, name) < 0)
        unlinkat(cache_dir, tmp, 0);
}

static bool settled(const struct measure_file_id *id)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    int64_t settle_ns = (int64_t)CACHE_SETTLE_S * 1000000000;
    return (id->ctime_s * 1000000000 + id->ctime_ns) + settle_ns < now_ns &&
           (id->mtime_s * 1000000000 + id->mtime_ns) + settle_ns < now_ns;
}

static void remember(const struct measure_file_id *id, char kind, const char *hex)
{
    struct mem_entry *e = &mem[mem_next++ % (sizeof mem / sizeof *mem)];
    memcpy(&e->id, id, sizeof *id);
    e->kind = kind;
    memcpy(e->hex, hex, SHA256_HEX_LEN + 1);
}

/* The file's fs-verity digest, when it is SHA-256, into hex (else ""). */
static void verity_digest(int fd, char *hex)
{
    /* struct fsverity_digest ends in a flexible array: room for it after the header. */
    union {
        struct fsverity_digest d;
        unsigned char bytes[sizeof(struct fsverity_digest) + 64];
    } v;
    memset(&v, 0, sizeof v);
    v.d.digest_size = 64;
    if (ioctl(fd, FS_IOC_MEASURE_VERITY, &v) == 0 &&
        v.d.digest_algorithm == FS_VERITY_HASH_ALG_SHA256 && v.d.digest_size == 32)
        hex_encode(v.d.digest, 32, hex);
}

bool measure_cache_stamp(int fd, struct measure_stamp *st)
{
    struct stat sb;
    memset(st, 0, sizeof *st);
    /* The lease (fd_open_for_writing) last: it costs the most, and only a file that could
     * otherwise be remembered needs it. */
    st->cacheable = !disabled && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
                    !measure_writable_by_others(-1, &sb) && file_id_get(fd, &st->id, &st->verity) &&
                    local_fs(fd) && !fd_open_for_writing(fd);
    return st->cacheable;
}

bool measure_cache_get(const struct measure_stamp *st, char kind, char hex[SHA256_HEX_LEN + 1])
{
    if (!st->cacheable)
        return false;
    for (size_t i = 0; i < sizeof mem / sizeof *mem; i++)
        if (mem[i].hex[0] && mem[i].kind == kind && same_id(&mem[i].id, &st->id)) {
            memcpy(hex, mem[i].hex, SHA256_HEX_LEN + 1);
            return true;
        }
    if (cache_dir >= 0 && store_lookup(&st->id, kind, hex)) {
        remember(&st->id, kind, hex);
        return true;
    }
    return false;
}

void measure_cache_put(int fd, const struct measure_stamp *st, char kind, const char *hex)
{
    /* Remembered only if nothing changed while it was read, and it has settled (or cannot
     * change at all). */
    struct measure_file_id after;
    bool verity_after;
    if (!st->cacheable || !file_id_get(fd, &after, &verity_after) || !same_id(&st->id, &after) ||
        !(st->verity || settled(&st->id)))
        return;
    /* A file no name reaches (a memfd, a sealed workload's tmpfs of its own, whose device and
     * inode numbers the next such file may well have) is remembered by this process only:
     * the store outlives it, and its identity would rest on its times alone. */
    struct stat sb;
    if (cache_dir >= 0 && fstat(fd, &sb) == 0 && sb.st_nlink > 0)
        store_save(&st->id, kind, hex);
    remember(&st->id, kind, hex);
}

int measure_sha256(int fd, uint64_t limit, char *hex, const char **source, char *verity_hex)
{
    struct stat sb;
    struct measure_stamp st;
    *source = "read";
    if (verity_hex != NULL)
        verity_hex[0] = '\0';
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
        return -1;
    measure_cache_stamp(fd, &st);
    if (st.verity && verity_hex != NULL)
        verity_digest(fd, verity_hex);
    if (measure_cache_get(&st, 0, hex)) {
        *source = "cache";
        return 0;
    }
    if (sha256_fd_max(fd, limit, hex, NULL) < 0)
        return -1;
    measure_cache_put(fd, &st, 0, hex);
    return 0;
}

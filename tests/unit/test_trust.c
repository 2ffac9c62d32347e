/* The trust checker: each way another user could have written a file, or anything on the
 * way to it, is refused by name; what root alone controls opens.  Needs root, to make files
 * that another user owns. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../supervisor/core/trust.h"
#include "../../supervisor/core/util.h"
#include "test.h"

#define NOBODY 65534

static char base[] = "/tmp/tether-trust-XXXXXX";

static char *at(const char *rel)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", base, rel);
    return buf[i];
}

static void put(const char *rel, mode_t mode, uid_t owner)
{
    int fd = open(at(rel), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "hello\n", 6) != 6 || fchown(fd, owner, owner) < 0 ||
        fchmod(fd, mode) < 0)
        printf("# put %s: %s\n", rel, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void dir(const char *rel, mode_t mode, uid_t owner)
{
    if (mkdir(at(rel), 0700) < 0 || chown(at(rel), owner, owner) < 0 || chmod(at(rel), mode) < 0)
        printf("# dir %s: %s\n", rel, strerror(errno));
}

/* Opens path with flags: 1 when it opened, else 0 with the message in why. */
static int opens(const char *path, int flags, char *why, size_t n, int *code)
{
    tether_error_t err = NULL;
    int fd = trust_open(path, flags, &err);
    why[0] = '\0';
    if (code)
        *code = err ? err->code : 0;
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    snprintf(why, n, "%s", err->msg);
    error_free(&err);
    return 0;
}

#define OPENS(path, flags, ...)                                                                    \
    do {                                                                                           \
        char why_[512];                                                                            \
        CHECK(opens(path, flags, why_, sizeof why_, NULL), __VA_ARGS__);                           \
        if (why_[0])                                                                               \
            printf("#   %s\n", why_);                                                              \
    } while (0)

#define REFUSED(path, flags, needle, ...)                                                          \
    do {                                                                                           \
        char why_[512];                                                                            \
        int code_;                                                                                 \
        int ok_ = opens(path, flags, why_, sizeof why_, &code_);                                   \
        CHECK(!ok_ && strstr(why_, needle) != NULL && strstr(why_, path) != NULL, __VA_ARGS__);    \
        if (ok_ || strstr(why_, needle) == NULL)                                                   \
            printf("#   got: %s\n#   want: %s\n", ok_ ? "(opened)" : why_, needle);                \
    } while (0)

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "not ok - the check blocked\n";
    (void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
    _exit(1);
}

static void rules_without_the_walk(void)
{
    /* A tether that is not root trusts root and itself, nobody else. */
    struct stat st = {.st_uid = 1000, .st_mode = S_IFREG | 0644};
    tether_error_t err = NULL;
    CHECK(trust_check(&st, 1000, 0, true, "/p", NULL, &err) == 0, "non-root: its own file");
    st.st_uid = 0;
    CHECK(trust_check(&st, 1000, 0, true, "/p", NULL, &err) == 0, "non-root: root's file");
    st.st_uid = 1001;
    CHECK(trust_check(&st, 1000, 0, true, "/p", NULL, &err) < 0 && err->code == 0,
          "non-root: another user's file is refused");
    CHECK_STR(err ? err->msg : NULL, "`/p`: owned by uid 1001, neither root nor uid 1000; refusing",
              "message");
    st.st_uid = 1000;
    st.st_mode = S_IFREG | 0664;
    CHECK(trust_check(&st, 1000, 0, true, "/p", NULL, &err) < 0,
          "non-root: a group-writable file of its own is refused");
    st.st_mode = S_IFDIR | 01777;
    st.st_uid = 0;
    CHECK(trust_check(&st, 1000, 0, false, "/tmp/p", "/tmp", &err) == 0,
          "a sticky directory may be writable by others");
    st.st_mode = S_IFDIR | 0777;
    CHECK(trust_check(&st, 1000, 0, false, "/d/p", "/d", &err) < 0,
          "a directory writable by others without the sticky bit is refused");
    CHECK_STR(err ? err->msg : NULL,
              "`/d/p`: `/d` is writable by group and others (mode 0777); refusing",
              "message names the file and the directory");
    st.st_mode = S_IFREG | 01666;
    CHECK(trust_check(&st, 0, 0, true, "/p", NULL, &err) < 0,
          "the sticky bit does not excuse a file");
    st.st_mode = S_IFREG | 0640;
    CHECK(trust_check(&st, 0, TRUST_PRIVATE, true, "/k", NULL, &err) < 0,
          "private: readable by group is refused");
    CHECK(trust_check(&st, 0, 0, true, "/k", NULL, &err) == 0, "not private: readable is fine");
    error_free(&err);
}

int main(void)
{
    rules_without_the_walk();
    if (geteuid() != 0) {
        printf("# SKIP the walk needs root, to make files that another user owns\n");
        test_done();
        return 77;
    }
    if (mkdtemp(base) == NULL)
        return 99;
    signal(SIGALRM, on_alarm);

    /* base is root's, mode 0700, in sticky /tmp: itself the case of a root-owned entry in
     * a sticky directory. */
    put("ok", 0644, 0);
    OPENS(at("ok"), 0, "a root-owned 0644 file in a root-owned directory under /tmp opens");
    {
        tether_error_t err = NULL;
        int fd = trust_open(at("ok"), 0, &err);
        char buf[8] = "";
        CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 6 && memcmp(buf, "hello\n", 6) == 0,
              "the descriptor reads the file");
        CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_NONBLOCK) == 0 &&
                  (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0,
              "blocking and close-on-exec");
        if (fd >= 0)
            close(fd);
        error_free(&err);
    }
    if (chdir(base) == 0)
        OPENS("ok", 0, "a relative path is walked from the working directory");
    if (chdir("/") < 0)
        return 99;

    put("gw", 0664, 0);
    REFUSED(at("gw"), 0, "writable by group (mode 0664); refusing", "a group-writable file");
    put("ow", 0646, 0);
    REFUSED(at("ow"), 0, "writable by others (mode 0646)", "an other-writable file");
    put("mine", 0644, NOBODY);
    REFUSED(at("mine"), 0, "owned by uid 65534, not root", "a file that nobody owns");

    dir("open", 0757, 0);
    put("open/f", 0644, 0);
    REFUSED(at("open/f"), 0, "is writable by others (mode 0757)",
            "a directory above that others may write");
    dir("open/sub", 0755, 0);
    put("open/sub/f", 0644, 0);
    REFUSED(at("open/sub/f"), 0, "open` is writable by others",
            "... however far above: the message names it");
    dir("theirs", 0755, NOBODY);
    put("theirs/f", 0644, 0);
    REFUSED(at("theirs/f"), 0, "theirs` is owned by uid 65534",
            "a directory above that nobody owns");

    dir("sticky", 01777, 0);
    put("sticky/f", 0644, 0);
    OPENS(at("sticky/f"), 0, "a root-owned entry in a sticky directory opens");
    dir("sticky/d", 0755, 0);
    put("sticky/d/f", 0644, 0);
    OPENS(at("sticky/d/f"), 0, "and so does a file in a root-owned directory there");
    put("sticky/n", 0644, NOBODY);
    REFUSED(at("sticky/n"), 0, "owned by uid 65534", "an entry that nobody owns there");
    dir("sticky/nd", 0755, NOBODY);
    put("sticky/nd/f", 0644, 0);
    REFUSED(at("sticky/nd/f"), 0, "nd` is owned by uid 65534",
            "a directory that nobody owns there, above a root-owned file");

    /* Links: the last component never; on the way, followed when trusted. */
    if (symlink("ok", at("link")) < 0)
        return 99;
    REFUSED(at("link"), 0, "a symbolic link; refusing", "a link as the file");
    dir("real", 0755, 0);
    put("real/f", 0644, 0);
    if (symlink("real", at("via")) < 0 || symlink(at("real"), at("via-abs")) < 0)
        return 99;
    OPENS(at("via/f"), 0, "a relative root-owned link to a trusted directory is followed");
    OPENS(at("via-abs/f"), 0, "an absolute one too");
    OPENS(at("via"), TRUST_DIR, "a directory asked for through a link");
    if (symlink("open", at("to-open")) < 0)
        return 99;
    REFUSED(at("to-open/f"), 0, "is writable by others", "a link to an untrusted directory");
    if (symlink(at("real"), at("sticky/l")) < 0 || lchown(at("sticky/l"), NOBODY, NOBODY) < 0)
        return 99;
    REFUSED(at("sticky/l/f"), 0, "sticky/l` is owned by uid 65534",
            "a link that nobody owns, in a sticky directory");
    if (symlink("loop", at("loop")) < 0)
        return 99;
    char why[512];
    int code = 0;
    CHECK(!opens(at("loop/f"), 0, why, sizeof why, &code) && code == ELOOP, "a link loop ends");
    dir("real/up", 0755, 0);
    OPENS(at("real/up/../f"), 0, "`..` is walked, not read as text");

    /* Not regular files: refused before they could block or act. */
    if (mkfifo(at("fifo"), 0600) < 0)
        return 99;
    alarm(5);
    REFUSED(at("fifo"), 0, "a FIFO, not a regular file; refusing", "a FIFO, without blocking");
    REFUSED(at("fifo"), TRUST_APPEND | TRUST_CREATE, "a FIFO", "a FIFO to append to");
    alarm(0);
    REFUSED("/dev/null", 0, "a character device, not a regular file", "a device");
    CHECK(!opens(base, 0, why, sizeof why, &code) && code == EISDIR, "a directory as a file");
    CHECK(!opens(at("absent"), 0, why, sizeof why, &code) && code == ENOENT,
          "an absent file: ENOENT, for callers that allow it");
    CHECK(!opens(at("absent/f"), 0, why, sizeof why, &code) && code == ENOENT,
          "an absent directory above: ENOENT");
    CHECK(!opens(at("ok/f"), 0, why, sizeof why, &code) && code == ENOTDIR,
          "a file as a directory: ENOTDIR");

    /* Private objects: keys. */
    put("key", 0600, 0);
    OPENS(at("key"), TRUST_PRIVATE, "a private 0600 file");
    REFUSED(at("ok"), TRUST_PRIVATE, "open to others (mode 0644)", "a private file readable");
    dir("keys", 0700, 0);
    OPENS(at("keys"), TRUST_DIR | TRUST_PRIVATE, "a private 0700 directory");
    REFUSED(at("open"), TRUST_DIR, "writable by others", "a directory that others may write");
    REFUSED(at("real"), TRUST_DIR | TRUST_PRIVATE, "open to others (mode 0755)",
            "a private directory that others may list");

    /* One entry in a directory already walked. */
    {
        tether_error_t err = NULL;
        int d = trust_open(at("keys"), TRUST_DIR | TRUST_PRIVATE, &err);
        put("keys/k", 0600, 0);
        put("keys/r", 0644, 0);
        if (symlink("k", at("keys/l")) < 0)
            return 99;
        int fd = trust_openat(d, at("keys/k"), "k", TRUST_PRIVATE, &err);
        CHECK(d >= 0 && fd >= 0, "an entry opens from its directory's descriptor");
        if (fd >= 0)
            close(fd);
        CHECK(trust_openat(d, at("keys/r"), "r", TRUST_PRIVATE, &err) < 0 &&
                  strstr(err->msg, "open to others") != NULL,
              "an entry readable by others is refused");
        CHECK(trust_openat(d, at("keys/l"), "l", TRUST_PRIVATE, &err) < 0 &&
                  strstr(err->msg, "a symbolic link") != NULL,
              "an entry that is a link is refused");
        CHECK(trust_openat(d, "x", "../ok", 0, &err) < 0 && err->code == EINVAL,
              "a name with a slash is not an entry");
        if (d >= 0)
            close(d);
        error_free(&err);
    }

    /* Appending, and creating when absent: the audit trail. */
    OPENS(at("sticky/trail"), TRUST_APPEND | TRUST_CREATE, "an absent file is created");
    struct stat st;
    CHECK(stat(at("sticky/trail"), &st) == 0 && st.st_uid == 0 && (st.st_mode & 07777) == 0600,
          "created root's, mode 0600");
    OPENS(at("sticky/trail"), TRUST_APPEND | TRUST_CREATE, "and opened again");
    put("sticky/planted", 0644, NOBODY);
    REFUSED(at("sticky/planted"), TRUST_APPEND | TRUST_CREATE, "owned by uid 65534",
            "a file that nobody planted in a sticky directory");
    if (symlink(at("ok"), at("sticky/planted-link")) < 0 ||
        lchown(at("sticky/planted-link"), NOBODY, NOBODY) < 0)
        return 99;
    REFUSED(at("sticky/planted-link"), TRUST_APPEND | TRUST_CREATE, "a symbolic link",
            "a link that nobody planted there");
    REFUSED(at("open/trail"), TRUST_APPEND | TRUST_CREATE, "writable by others",
            "nothing is created in a directory that others may write");
    CHECK(access(at("open/trail"), F_OK) < 0, "... not even an empty file");
    CHECK(!opens(at("absent"), TRUST_APPEND, why, sizeof why, &code) && code == ENOENT,
          "without TRUST_CREATE an absent file stays absent");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", base);
    return test_done();
}

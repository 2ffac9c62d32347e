/* Libraries loaded at their first use are loaded only from the root and mount namespace
 * tether started in: a child that has entered another (a workload's, a container's) would
 * otherwise load, as root, a file the workload may have written. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../supervisor/core/crypto.h"
#include "../../supervisor/core/libarchive.h"
#include "../../supervisor/core/libseccomp.h"
#include "test.h"

/* In a child: moves it (how), then loads libcrypto, libarchive and libseccomp; 0 when all
 * refused with the message that says why, 1 when any loaded, 2 when the move failed. */
static int refused_after(int how)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (how == 0 && unshare(CLONE_NEWNS) < 0)
            _exit(2);
        if (how == 1 && (chroot("/usr") < 0 || chdir("/") < 0))
            _exit(2);
        tether_error_t e1 = NULL, e2 = NULL, e3 = NULL;
        bool refused = crypto_load(&e1) < 0 && strstr(e1->msg, "namespace") != NULL &&
                       libarchive_load(&e2) < 0 && strstr(e2->msg, "namespace") != NULL &&
                       libseccomp_load(&e3) < 0 && strstr(e3->msg, "namespace") != NULL;
        _exit(refused ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}

int main(void)
{
    if (geteuid() != 0) {
        printf("1..0 # SKIP needs root (unshare, chroot)\n");
        return 77;
    }
    CHECK(refused_after(0) == 0, "nothing loads in a mount namespace of the child's own");
    CHECK(refused_after(1) == 0, "nothing loads under another root");
    tether_error_t err = NULL;
    CHECK(crypto_load(&err) == 0, "libcrypto loads where tether started (%s)", err ? err->msg : "");
    unsigned char md[32];
    unsigned int n = 0;
    CHECK(EVP_Digest("abc", 3, md, &n, EVP_sha256(), NULL) == 1 && n == 32 && md[0] == 0xba,
          "and computes SHA-256(\"abc\")");
    err = NULL;
    CHECK(libseccomp_load(&err) == 0 && sym_seccomp_syscall_resolve_name("read") == 0,
          "libseccomp loads where tether started, and resolves `read` (%s)", err ? err->msg : "");
    return test_done();
}

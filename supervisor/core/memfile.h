/* Files that live in memory only, for a plaintext: a decrypted workload.
 *
 * A plaintext of MEMFILE_PRIVATE_MIN bytes or more goes into a tmpfs of its own, made with
 * fsopen(2) and never attached anywhere, so that no path of any mount namespace reaches it:
 * with huge=within_size, the kernel gives it huge pages whatever the host's shmem_enabled
 * (a memfd's 4 KiB pages cost more to allocate than decrypting into them), and with noswap
 * (Linux 6.4), none of it is ever written to swap.  Once written it is made immutable
 * (FS_IMMUTABLE_FL: no one opens it for writing again, root without CAP_LINUX_IMMUTABLE
 * included) and the descriptor that wrote it is closed, so that exec holds it against
 * writers from then on (ETXTBSY).
 *
 * CAP_LINUX_IMMUTABLE clears that flag, and once no process runs the file, it opens for
 * writing again; a seal is for good, whoever asks.  And no exec prevention marks that
 * tmpfs.  So the caller asks for a memfd (memfd_only) unless it knows that the workload
 * holds no capability beyond the default set.  That, a smaller plaintext, or one where a
 * private tmpfs cannot be had (no CAP_SYS_ADMIN or CAP_LINUX_IMMUTABLE, a kernel before
 * 6.0), gets a memfd, sealed against every change once written (F_SEAL_WRITE and the
 * rest). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define MEMFILE_PRIVATE_MIN (UINT64_C(2) << 20) /* a huge page: below it, none would be used */

struct memfile {
    int fd; /* the descriptor it is written through */
    int ro; /* a private tmpfs's file, opened read-only before any byte was written; else -1 */
};

/* A new, empty file named name ("/name (deleted)" in /proc/PID/exe; a memfd's
 * "/memfd:name (deleted)") for a plaintext of size bytes; with memfd_only, a memfd whatever
 * the size.  Both descriptors close on exec. */
int memfile_new(struct memfile *m, const char *name, uint64_t size, bool memfd_only,
                tether_error_t *err);
/* Closes it to writes for good: mode set (unless 0), then sealed or made immutable.  Returns
 * the descriptor to read and execute it through, which is then the caller's; m holds
 * nothing after, whatever the outcome. */
int memfile_finish(struct memfile *m, mode_t mode, tether_error_t *err);
/* Closes what m holds. */
void memfile_close(struct memfile *m);

/* Trust anchors: a file that decides (configuration, policy, signers, keys, bundles, the
 * audit trail) is opened only after a walk from / has checked that nobody but root, or the
 * user tether runs as, could have written it or renamed anything on the way to it, in the
 * manner of OpenSSH's StrictModes.  The walk opens each component from its parent's
 * descriptor, so that what was checked is what is opened.
 *
 * The rules, for each object on the path (every directory from / down, and the file):
 * - its owner is root; for a tether that is not root, root or tether's effective uid;
 * - neither group nor others may write it, except a directory with the sticky bit (/tmp):
 *   there nobody may rename or remove an entry they do not own, and every entry on the
 *   path is checked in turn;
 * - a symbolic link on the way is followed only when the link itself is trusted-owned, and
 *   its target is walked by the same rules; the last component must not be a link (a
 *   directory asked for with TRUST_DIR excepted);
 * - the file is a regular file (a directory for TRUST_DIR): a FIFO or a device is refused
 *   before it is opened for reading, so it can never block or act. */
#pragma once

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "error.h"

enum {
    TRUST_DIR = 1 << 0,     /* a directory: returned as an O_PATH descriptor */
    TRUST_PRIVATE = 1 << 1, /* the last object must give group and others no access at all */
    TRUST_APPEND = 1 << 2,  /* a file opened O_RDWR | O_APPEND instead of O_RDONLY */
    TRUST_CREATE = 1 << 3,  /* with TRUST_APPEND: created (O_EXCL, mode 0600) when absent */
};

/* Opens path (made absolute against the working directory) after checking it and every
 * directory above it.  Returns a descriptor (close-on-exec; a file is open for reading, or
 * appending, and blocking), or -1 with err: a refusal by the rules above has code 0 and a
 * message that names the path and ends in "; refusing"; a path that cannot be opened has
 * its errno (ENOENT: it is absent). */
int trust_open(const char *path, int flags, tether_error_t *err);

/* The same for name, a single component, in the directory dirfd that trust_open returned;
 * path is name's full path, for messages.  A link is refused whatever the flags. */
int trust_openat(int dirfd, const char *path, const char *name, int flags, tether_error_t *err);

/* The check of one object without the walk: st as a tether with effective uid euid sees
 * it; last says whether st is the object asked for (for TRUST_PRIVATE), shown names the
 * object in the message when it is not.  0, or -1 with a refusal naming path. */
int trust_check(const struct stat *st, uid_t euid, int flags, bool last, const char *path,
                const char *shown, tether_error_t *err);

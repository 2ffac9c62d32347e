"""Executable hashes remembered between starts of tether (measure/hashcache.c): a second launch
of an unchanged root-owned file reads no byte of it (exe.sha256_from is "cache"), and every
change a file can undergo (a write, a touch, a chmod, a rename over it) makes the next launch
read it again and hash what is there now.  Files that others may write are never cached."""
import errno
import fcntl
import hashlib
import os
import shutil
import struct
import time

from harness import Skip, case, eq, main

SETTLE = 2.5  # measure/hashcache.c remembers no file changed within the last 2 s

REPORT = ('local e = input.workload.exe\n'
          'return {allow = false, reasons = {tostring(e.sha256_from), tostring(e.sha256), '
          'tostring(e.fsverity_digest)}}')


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: the cache beside the status files is root's")


def launch(ws, path):
    """What the policy saw of path: (sha256_from, sha256, fsverity_digest)."""
    pol = ws.policy(REPORT, name="report.lua")
    p = ws.tether("run", "--policy", pol, "--", path, check_rc=77)
    line = p.stderr.strip().splitlines()[-1]
    return tuple(line.split("denied: ", 1)[1].split("; "))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fresh(ws, path, from_, what):
    got = launch(ws, path)
    eq(got[:2], (from_, sha(path)), what)


@case
def cached_hash_follows_every_change(ws):
    need_root()
    app = ws.path("app")
    shutil.copy("/bin/true", app)
    os.chmod(app, 0o755)
    time.sleep(SETTLE)
    fresh(ws, app, "read", "the first launch reads the file")
    fresh(ws, app, "cache", "the second launch does not")
    st = os.stat("/run/tether/.hashes")
    eq((st.st_uid, st.st_mode & 0o777), (0, 0o700), "the cache directory is root's alone")

    # a write (same size: only the times tell), and the launches right after it
    with open(app, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xff]))
    fresh(ws, app, "read", "after a write")
    fresh(ws, app, "read", "a file changed within the last seconds is not remembered")
    time.sleep(SETTLE)
    fresh(ws, app, "read", "settled: read once more")
    fresh(ws, app, "cache", "then remembered")

    os.utime(app, None)
    fresh(ws, app, "read", "after a touch")
    time.sleep(SETTLE)
    fresh(ws, app, "read", "settled after the touch")

    os.chmod(app, 0o700)
    os.chmod(app, 0o755)
    fresh(ws, app, "read", "after a chmod")
    time.sleep(SETTLE)
    fresh(ws, app, "read", "settled after the chmod")
    fresh(ws, app, "cache", "remembered after the chmod")

    new = ws.path("app.new")
    shutil.copy("/bin/false", new)
    os.chmod(new, 0o755)
    time.sleep(SETTLE)
    fresh(ws, new, "read", "the replacement, hashed on its own")
    os.rename(new, app)  # another inode, and a rename moves its ctime too
    fresh(ws, app, "read", "renamed over: the replacement is read")
    eq(launch(ws, app)[1], sha("/bin/false"), "the hash is the replacement's")

    # the same bytes, but someone else may write them: a private copy, never the cache
    os.chmod(app, 0o775)
    fresh(ws, app, "copy", "group-writable: run from a private copy")
    os.chmod(app, 0o755)
    os.chown(app, 65534, 65534)
    fresh(ws, app, "copy", "another owner: run from a private copy")


FS_IOC_ENABLE_VERITY = 0x40806685


@case
def fsverity_digest_where_the_file_system_has_it(ws):
    need_root()
    app = ws.path("app")
    shutil.copy("/bin/true", app)
    os.chmod(app, 0o755)
    # struct fsverity_enable_arg: version 1, SHA-256, 4096-byte blocks, no salt or signature
    arg = struct.pack("=IIIIQIIQ11Q", 1, 1, 4096, 0, 0, 0, 0, 0, *([0] * 11))
    fd = os.open(app, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_ENABLE_VERITY, arg)
    except OSError as e:
        raise Skip("fs-verity cannot be enabled on %s here: %s (the kernel or file system "
                   "lacks it)" % (os.path.dirname(app), errno.errorcode.get(e.errno, e.errno)))
    finally:
        os.close(fd)
    got = launch(ws, app)
    assert got[2].startswith("sha256:") and len(got[2]) == 71, got
    eq(got[1], sha(app), "sha256 is still the content's")
    fresh(ws, app, "cache", "a verity file cannot change: remembered at once")


if __name__ == "__main__":
    main()

"""Executable hashes remembered between starts of tether (measure/hashcache.c): a second launch
of an unchanged root-owned file reads no byte of it (exe.sha256_from is "cache"), and every
change a file can undergo (a write, a touch, a chmod, a rename over it) makes the next launch
read it again and hash what is there now.  Files that others may write are never cached."""
import errno
import fcntl
import hashlib
import json
import os
import shutil
import struct
import subprocess
import time

from harness import TETHER, Skip, case, eq, main

SETTLE = 2.5  # measure/hashcache.c remembers no file changed within the last 2 s

REPORT = ('local e = input.workload.exe\n'
          'return {allow = false, reasons = {tostring(e.sha256_from), tostring(e.sha256), '
          'tostring(e.fsverity_digest)}}')


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
    run = ws.own_run_dir()
    app = ws.path("app")
    shutil.copy("/bin/true", app)
    os.chmod(app, 0o755)
    time.sleep(SETTLE)
    fresh(ws, app, "read", "the first launch reads the file")
    fresh(ws, app, "cache", "the second launch does not")
    st = os.stat(os.path.join(run, ".hashes"))
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


@case
def the_cache_has_a_bound_however_many_files_run(ws):
    """A uid-0 workload's files are root's, so remembered: one that makes and runs file
    after file must not fill /run.  The store keeps at most 1024 entries; one that lost its
    place is read again, never answered with another file's hash."""
    run = ws.own_run_dir()
    os.mkdir(ws.path("files"))
    files = []
    for i in range(1100):
        f = ws.path("files", "f%04d" % i)
        with open(f, "wb") as out:
            out.write(b"#!/bin/false\n" + os.urandom(64))
        os.chmod(f, 0o755)
        files.append(f)
    time.sleep(SETTLE)
    pol = ws.policy("return {allow = false}", name="deny.lua")
    # one shell for the 1,100 launches, in the test's own /run/tether
    loop = ('for f in "$1"/f*; do "$0" run --policy "$2" -- "$f" 2>/dev/null; done; '
            'exit 0')
    subprocess.run([*ws.prefix, "sh", "-c", loop, TETHER, ws.path("files"), pol], check=True,
                   timeout=800)
    names = os.listdir(os.path.join(run, ".hashes"))
    assert 500 < len(names) <= 1024, "%d entries for 1,100 files" % len(names)
    eq([n for n in names if n.startswith(".")], [], "no temporary entry left behind")
    fresh(ws, files[-1], "cache", "the last file run is remembered")
    for f in files[:40]:
        got = launch(ws, f)
        assert got[0] in ("read", "cache") and got[1] == sha(f), (f, got)


@case
def a_file_no_name_reaches_is_not_remembered_across_starts(ws):
    """A deleted file (a memfd, a sealed workload's own tmpfs) is known only by its device,
    inode and times, and the next such file may have the same device and inode: the store,
    which outlives tether, never holds one."""
    run = ws.own_run_dir()
    app = ws.path("app")
    shutil.copy("/bin/true", app)
    os.chmod(app, 0o755)
    fd = os.open(app, os.O_RDONLY)
    os.unlink(app)
    time.sleep(SETTLE)
    pol = ws.policy(REPORT, name="report.lua")
    path = "/proc/self/fd/%d" % fd
    try:
        for what in ("the first launch", "the second"):
            p = subprocess.run([*ws.prefix, TETHER, "run", "--policy", pol, "--", path],
                               env=ws.env, cwd=ws.root, capture_output=True, text=True,
                               pass_fds=(fd,), timeout=60)
            eq(p.returncode, 77, "%s: %s" % (what, p.stderr))
            seen = p.stderr.strip().splitlines()[-1].split("denied: ", 1)[1].split("; ")
            eq(seen[:2], ["read", sha("/bin/true")], what + " reads the file")
    finally:
        os.close(fd)
    eq(os.listdir(os.path.join(run, ".hashes")), [], "entries in the store")


FS_IOC_ENABLE_VERITY = 0x40806685


@case
def fsverity_digest_where_the_file_system_has_it(ws):
    ws.own_run_dir()
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


SEALED_REPORT = ('local e, s = input.workload.exe, input.workload.sealed\n'
                 'return {allow = false, reasons = {tostring(s.digest_from), '
                 'tostring(e.sha256_from), tostring(e.sha256), tostring(s.digest)}}')


def sealed_launch(ws, path):
    """What the policy saw of a sealed file: (digest_from, sha256_from, sha256, digest), or
    for version 2, which has no sha256, (digest_from, digest)."""
    pol = ws.policy(SEALED_REPORT, name="sealed-report.lua")
    p = ws.tether("run", "--policy", pol, path, check_rc=77)
    line = p.stderr.strip().splitlines()[-1]
    seen = tuple(line.split("denied: ", 1)[1].split("; "))
    if seen[1:3] == ("nil", "nil"):
        return seen[0], seen[3]
    eq(seen[0], seen[1], "a version 1 file's digest and sha256 come from the same read")
    return seen[1:]


def sealed_node(ws):
    keys, key = ws.key_store("k1")
    sign = ws.path("sign.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", sign], check=True,
                   capture_output=True)
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "keystore": keys}))
    return key, sign


def inspect_digest(ws, path):
    return json.loads(ws.tether("inspect", path, check_rc=0).stdout)["digest"]


@case
def sealed_digests_are_remembered_and_follow_changes(ws):
    """A sealed file (version 1) is read once for both exe.sha256 (the whole file) and its
    digest (what is signed: the file without its signature), and both are remembered as an
    executable's hash is: a later launch reads nothing before the key is released, and a
    change makes the next launch read it again."""
    ws.own_run_dir()
    if shutil.which("openssl") is None:
        raise Skip("needs the openssl command line for a signing key")
    key, sign = sealed_node(ws)
    sealed = ws.path("w.sealed")
    v1 = ("--format-version", "1")
    ws.tether("seal", "--key", key, "--key-id", "k1", "--sign", sign, *v1, "-o", sealed,
              "/bin/true", check_rc=0)
    time.sleep(SETTLE)
    digest = inspect_digest(ws, sealed)
    assert digest != sha(sealed), "a signed file's digest leaves its signature out"
    eq(sealed_launch(ws, sealed), ("read", sha(sealed), digest), "the first launch reads it")
    eq(sealed_launch(ws, sealed), ("cache", sha(sealed), digest), "the second does not")

    # rewritten in place with another sealing of another program: same inode, new bytes
    other = ws.path("other.sealed")
    ws.tether("seal", "--key", key, "--key-id", "k1", *v1, "-o", other, "/bin/false",
              check_rc=0)
    with open(other, "rb") as f, open(sealed, "r+b") as g:
        g.truncate(0)
        g.write(f.read())
    eq(sealed_launch(ws, sealed), ("read", sha(sealed), sha(sealed)),
       "rewritten: read again (unsigned now: its digest is the whole file's sha256)")
    os.utime(sealed, None)
    eq(sealed_launch(ws, sealed)[0], "read", "after a touch")
    time.sleep(SETTLE)
    eq(sealed_launch(ws, sealed)[0], "read", "settled: read once more")
    eq(sealed_launch(ws, sealed), ("cache", sha(sealed), inspect_digest(ws, sealed)),
       "then remembered")

    # rewritten in place as version 2: known by its digest alone, remembered the same way
    ws.tether("seal", "--key", key, "--key-id", "k1", "--sign", sign, "-o", other + "2",
              "/bin/true", check_rc=0)
    with open(other + "2", "rb") as f, open(sealed, "r+b") as g:
        g.truncate(0)
        g.write(f.read())
    digest2 = inspect_digest(ws, sealed)
    eq(sealed_launch(ws, sealed), ("read", digest2), "version 2: read again, no exe.sha256")
    time.sleep(SETTLE)
    eq(sealed_launch(ws, sealed), ("read", digest2), "settled: read once more")
    eq(sealed_launch(ws, sealed), ("cache", digest2), "then remembered")

    # someone else may write it: a private copy, read as it is copied, never the cache
    os.chown(sealed, 65534, 65534)
    eq(sealed_launch(ws, sealed)[0], "copy", "another owner: a private copy")

    # the node's configuration turns the cache off
    os.chown(sealed, 0, 0)
    time.sleep(SETTLE)
    eq(sealed_launch(ws, sealed)[0], "read", "settled")
    eq(sealed_launch(ws, sealed)[0], "cache", "remembered")
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "keystore": ws.path("keys"),
                                        "hash_cache": False}))
    eq(sealed_launch(ws, sealed)[0], "read", "hash_cache: false")
    eq(launch(ws, "/bin/true")[0], "read", "hash_cache: false, for executables too")


if __name__ == "__main__":
    main()

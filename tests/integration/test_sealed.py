"""Sealed workloads: round trip, plaintext only in memory, the key nowhere it should not be,
and every refusal with a one-line reason and nothing started."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import time

from harness import (PROBE, POLICIES, Skip, case, children_of, disk_files_holding, eq, main,
                     one_line, wait_for)
from opa_server import DataAPI

ALLOW_ALL = os.path.join(POLICIES, "allow-all.lua")
HEADER_FIXED = 74


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: the key store must be root's")


class Kit:
    """A key store, a signing key, a marked copy of the probe, and a node configuration."""

    def __init__(self, ws, signers=True):
        need_root()
        if shutil.which("openssl") is None:
            raise Skip("needs the openssl command line for keys")
        self.ws = ws
        self.keys = ws.path("keys")
        os.mkdir(self.keys, 0o700)
        self.key = os.urandom(32)
        self.write_key("k1", self.key)
        self.sign = ws.path("sign.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", self.sign], check=True,
                       capture_output=True)
        self.pub = ws.path("sign.pub.pem")
        subprocess.run(["openssl", "pkey", "-in", self.sign, "-pubout", "-out", self.pub], check=True)
        # A plaintext with a unique marker: the probe with bytes appended still runs.
        self.marker = ("TETHER-PLAINTEXT-MARKER-%s" % os.urandom(8).hex()).encode()
        self.exe = ws.path("probe-marked")
        with open(PROBE, "rb") as f:
            data = f.read()
        with open(self.exe, "wb") as f:
            f.write(data + self.marker)
        os.chmod(self.exe, 0o755)
        self.configure(signers)

    def write_key(self, key_id, data):
        path = os.path.join(self.keys, key_id + ".key")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def configure(self, signers=True, **extra):
        cfg = {"audit": {"path": self.ws.audit}, "keystore": self.keys,
               "trusted_signers": [self.pub] if signers else []}
        cfg.update(extra)
        self.ws.write("tether.json", json.dumps(cfg))

    def seal(self, out="w.sealed", policy=None, sign=True, key_file=None, key_id="k1", src=None,
             version=None):
        out = self.ws.path(out)
        if os.path.exists(out):
            os.unlink(out)
        args = ["seal", "--key", key_file or os.path.join(self.keys, "k1.key"), "--key-id", key_id,
                "-o", out, src or self.exe]
        if version is not None:
            args += ["--format-version", str(version)]
        if policy is not None:
            args += ["--policy", self.ws.write("embedded.lua", policy)]
        if sign:
            args += ["--sign", self.sign]
        self.ws.tether(*args, check_rc=0)
        return out

    def run(self, sealed, *args, rc=0, policy=ALLOW_ALL, **kw):
        cmd = ["run"] + (["--policy", policy] if policy else []) + [sealed, "--", *args]
        return self.ws.tether(*cmd, check_rc=rc, **kw)


def refused(kit, sealed, rc, needle, policy=ALLOW_ALL):
    marker = kit.ws.path("ran")
    if os.path.exists(marker):
        os.unlink(marker)
    p = kit.run(sealed, "mark", marker, rc=rc, policy=policy)
    line = one_line(p.stderr)
    assert needle in line, (needle, line)
    assert not os.path.exists(marker), "the workload ran"
    return line


@case
def round_trip_executable(ws):
    kit = Kit(ws)
    sealed = kit.seal(policy='function decide(i) return {allow = i.workload.sealed ~= nil} end')
    info = json.loads(ws.tether("inspect", sealed, check_rc=0).stdout)
    eq((info["type"], info["key_id"], info["signed"], info["plaintext_size"]),
       ("executable", "k1", True, os.path.getsize(kit.exe)), "header")
    assert "allow = i.workload.sealed" in info["policy"]
    assert kit.marker not in open(sealed, "rb").read(), "the plaintext is in the sealed file"
    p = kit.run(sealed, "status")
    r = json.loads(p.stdout)
    eq(r["status"]["NoNewPrivs"], "1", "it ran, confined as any workload")
    recs = ws.audit_records()
    eq([r["event"] for r in recs], ["decision", "decision", "key_release", "exit"], "audit")
    eq(recs[1]["policy"][:9], "embedded:", "the embedded policy decided too")
    rel = recs[2]
    eq((rel["digest"], rel["key_id"], rel["source"], rel["signer"]),
       (info["digest"], "k1", "keystore", info["signer"]), "key release record")
    eq((info["format_version"], info["digest"]), (2, v2_digest(sealed)),
       "version 2, its digest as doc/sealed-format.md defines it")
    eq(recs[0]["workload"]["exe_sha256"], None,
       "version 2 has no exe.sha256 (its digest names it): null, never another value")
    eq([r["workload"]["sealed_digest"] for r in recs[:2]], [info["digest"]] * 2,
       "each decision record names the file it judged by its digest")


def v2_digest(path):
    """Version 2's digest, from doc/sealed-format.md alone: sha256 of the header, then of
    each chunk's own sha256 (its ciphertext and tag), in order."""
    data = open(path, "rb").read()
    hlen = header_len(data)
    chunk, plain = int.from_bytes(data[14:18], "big"), int.from_bytes(data[18:26], "big")
    root, off = hashlib.sha256(data[:hlen]), hlen
    for i in range(max(1, -(-plain // chunk))):
        m = min(chunk, plain - i * chunk) + 16
        root.update(hashlib.sha256(data[off:off + m]).digest())
        off += m
    return root.hexdigest()


@case
def a_version_2_file_changed_on_disk_is_drift_and_a_touch_is_not(ws):
    """Version 2 has no exe.sha256 to compare: the monitor compares the file's digest and
    its signature block.  A touch changes no byte, and the workload runs on; the file
    sealed anew under the same name, or only signed anew by another key, is drift, and the
    workload is killed."""
    kit = Kit(ws, signers=False)
    pol = ws.policy('return {allow = true, monitor = {on_drift = "kill"}}')
    stranger = ws.path("stranger.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", stranger], check=True,
                   capture_output=True)

    def resealed(sealed):
        kit.seal("again.sealed")
        os.rename(ws.path("again.sealed"), sealed)

    def resigned(sealed):
        """The same header and chunks, another signer's trailer (written in place)."""
        kit.sign, mine = stranger, kit.sign
        other = open(kit.seal("other.sealed"), "rb").read()
        kit.sign = mine
        with open(sealed, "r+b") as f:
            f.seek(-96, os.SEEK_END)
            f.write(other[-96:])

    for change in (resealed, resigned):
        sealed = kit.seal()
        ready = ws.path("ready")
        if os.path.exists(ready):
            os.unlink(ready)
        before = len(ws.audit_records())
        proc = ws.popen("run", "--policy", pol, sealed, "--", "ready", ready, "sleep", "30")
        try:
            wait_for(lambda: os.path.exists(ready), what="the workload")
            os.utime(sealed, None)
            time.sleep(1)
            eq(proc.poll(), None, "after a touch, still running")
            change(sealed)
            eq(proc.wait(timeout=20), 78, "killed for drift: " + change.__name__)
        finally:
            proc.kill()
            proc.wait()
        drift = [r for r in ws.audit_records()[before:] if r["event"] == "drift"]
        assert drift and "changed on disk" in drift[0]["reason"], drift


@case
def version_1_files_still_run(ws):
    """A file sealed in format version 1 (for older nodes) runs as before: its digest is the
    sha256 of the file without its signature, exe.sha256 the whole file's, and a relabelled
    version (1 as 2, or 2 as 1) breaks the signature and every chunk."""
    kit = Kit(ws)
    old = kit.seal("v1.sealed", version=1)
    info = json.loads(ws.tether("inspect", old, check_rc=0).stdout)
    data = open(old, "rb").read()
    eq((info["format_version"], info["digest"]), (1, hashlib.sha256(data[:-96]).hexdigest()),
       "version 1's digest")
    p = kit.run(old, "status")
    eq(json.loads(p.stdout)["status"]["NoNewPrivs"], "1", "it ran")
    recs = ws.audit_records()
    eq(recs[0]["workload"]["exe_sha256"], hashlib.sha256(data).hexdigest(), "exe.sha256")
    eq(recs[-2]["digest"], info["digest"], "the key went to version 1's digest")
    new = kit.seal("v2.sealed")
    for path, version, name in ((old, 2, "v1-as-2"), (new, 1, "v2-as-1")):
        relabelled = bytearray(open(path, "rb").read())
        relabelled[8:10] = version.to_bytes(2, "big")
        open(ws.path(name), "wb").write(bytes(relabelled))
        refused(kit, ws.path(name), 125, "signature does not verify")
    kit.configure(signers=False)
    for name in ("v1-as-2", "v2-as-1"):
        with open(ws.path(name), "r+b") as f:  # unsigned now: the chunks alone must catch it
            f.seek(12)
            f.write(b"\0")
            f.truncate(os.path.getsize(ws.path(name)) - 96)
        refused(kit, ws.path(name), 125, "failed authentication")
    out = ws.tether("seal", "--key", os.path.join(kit.keys, "k1.key"), "--key-id", "k1",
                    "--format-version", "3", "-o", ws.path("v3.sealed"), kit.exe, check_rc=125)
    assert "--format-version `3`: 1 or 2" in out.stderr.splitlines()[0], out.stderr
    assert not os.path.exists(ws.path("v3.sealed")), "a file was written"


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


@case
def decrypted_bytes_are_the_sealed_bytes_at_every_size(ws):
    """What runs is exactly what was sealed, byte for byte, whatever the size: a chunk (64
    KiB) and a read of several chunks either side of the end, and large enough to be
    decrypted by several threads."""
    kit = Kit(ws)
    with open(kit.exe, "rb") as f:
        base = f.read()
    batch = 256 << 10
    top = (len(base) + batch) // batch * batch
    for size in (top - 1, top, top + 1, top + (64 << 10), top + (64 << 10) + 1, (4 << 20) + 3):
        data = base + os.urandom(size - len(base))
        src = ws.write("plain-%d" % size, "", mode=0o755)
        with open(src, "wb") as f:
            f.write(data)
        sealed = kit.seal(out="w-%d.sealed" % size, src=src)
        got = json.loads(kit.run(sealed, "selfsum").stdout)["selfsum"]
        eq(got, "%d %016x" % (size, fnv1a64(data)), "size %d" % size)


def mount_devices(pid):
    """The devices of every mount the process's mount namespace shows."""
    with open("/proc/%d/mountinfo" % pid) as f:
        return {tuple(int(x) for x in line.split()[2].split(":")) for line in f}


@case
def the_plaintext_is_closed_to_writes_and_mounted_nowhere(ws):
    """The file a sealed workload runs from: below 2 MiB a sealed memfd; from 2 MiB a tmpfs of
    tether's own that no mount namespace shows, made immutable.  Nobody writes it, not the
    workload (root) nor root on the node, and it is exactly what was sealed."""
    import errno
    import fcntl
    import struct
    kit = Kit(ws)
    with open(kit.exe, "rb") as f:
        base = f.read()
    for size, link in ((len(base), "/memfd:tether-sealed (deleted)"),
                       (4 << 20, "/tether-sealed (deleted)")):
        data = base + os.urandom(size - len(base))
        src = ws.write("plain-%d" % size, "", mode=0o755)
        with open(src, "wb") as f:
            f.write(data)
        sealed = kit.seal(out="w-%d.sealed" % size, src=src)
        ready = ws.path("ready-%d" % size)
        proc = ws.popen("run", "--policy", ALLOW_ALL, sealed, "--", "write", "/proc/self/exe",
                        "MZ", "selfsum", "ready", ready, "sleep", "3")
        try:
            wait_for(lambda: os.path.exists(ready), what="the workload")
            pid = children_of(proc.pid)[0]
            exe = "/proc/%d/exe" % pid
            eq(os.readlink(exe), link, "what /proc/PID/exe names (size %d)" % size)
            fs = subprocess.run(["stat", "-L", "-f", "-c", "%T", exe], capture_output=True,
                                text=True, check=True).stdout.strip()
            eq(fs, "tmpfs", "memory only (size %d)" % size)
            for how in (os.O_WRONLY, os.O_RDWR | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
                try:
                    os.close(os.open(exe, how))
                    raise AssertionError("root opened the plaintext for writing (size %d)" % size)
                except OSError as e:
                    assert e.errno in (errno.EPERM, errno.ETXTBSY), (size, e)
            if size >= 2 << 20:
                st = os.stat(exe)
                dev = (os.major(st.st_dev), os.minor(st.st_dev))
                for where in (os.getpid(), pid):
                    assert dev not in mount_devices(where), \
                        "the plaintext's tmpfs is mounted where pid %d sees it" % where
                fd = os.open(exe, os.O_RDONLY)
                try:
                    flags = struct.unpack("l", fcntl.ioctl(fd, 0x80086601, b"\0" * 8))[0]
                finally:
                    os.close(fd)
                assert flags & 0x10, "FS_IMMUTABLE_FL is not set"
                try:
                    os.chmod(exe, 0o777)
                    raise AssertionError("root changed the plaintext's mode")
                except PermissionError:
                    pass
            eq(proc.wait(timeout=20), 0, "exit status")
            r = json.loads(proc.stdout.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert r["write"] in (errno.EACCES, errno.EPERM, errno.ETXTBSY), \
            "the workload wrote its own image (size %d): %r" % (size, r["write"])
        eq(r["selfsum"], "%d %016x" % (size, fnv1a64(data)), "what ran (size %d)" % size)


# The attack on a private tmpfs's file: open the image, clear its immutable flag, exec a
# program from disk (the image no longer runs, so no ETXTBSY) and write the image through
# the descriptor kept across the exec.
REWRITE_STAGE1 = """
import fcntl, os, struct, sys
fd = os.open("/proc/self/exe", os.O_RDONLY)
os.set_inheritable(fd, True)
try:
    fcntl.ioctl(fd, 0x40086602, struct.pack("l", 0))  # FS_IOC_SETFLAGS: none
    cleared = "cleared"
except OSError as e:
    cleared = e.strerror
os.execv(sys.argv[1], ["python3", "-c", sys.argv[2], str(fd), cleared])
"""
REWRITE_STAGE2 = """
import json, os, sys
fd = int(sys.argv[1])
try:
    w = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY)
    os.pwrite(w, b"EVIL", 0)
    wrote = "wrote"
except OSError as e:
    wrote = e.strerror
print(json.dumps({"link": os.readlink("/proc/self/fd/%d" % fd), "cleared": sys.argv[2],
                  "write": wrote, "head": os.pread(fd, 4, 0).hex()}))
"""


@case
def a_workload_that_may_clear_the_immutable_flag_cannot_rewrite_its_image(ws):
    """Root with CAP_LINUX_IMMUTABLE clears a file's immutable flag; once no process runs
    it, it opens for writing again.  A workload that may hold any capability beyond the
    default set (that one, those that gain it through another process, CAP_SYS_PTRACE and
    CAP_SYS_ADMIN, or CAP_DAC_READ_SEARCH, which opens files by handle) gets its plaintext in
    a sealed memfd, which no capability opens; any other keeps the private tmpfs, whose flag
    it cannot clear."""
    python = "/usr/bin/python3.11"
    if not os.path.exists(python) or os.path.getsize(python) < 2 << 20:
        raise Skip("needs Debian's %s (a sealed executable of 2 MiB or more)" % python)
    kit = Kit(ws)
    sealed = kit.seal(out="python.sealed", src=python)
    keep = ["CAP_DAC_OVERRIDE", "CAP_FOWNER"]
    # A memfd has no immutable flag to clear: "cleared" there changes nothing.
    for extra, link, cleared in (
            ([], "/tether-sealed (deleted)", "Operation not permitted"),
            (["CAP_LINUX_IMMUTABLE"], "/memfd:tether-sealed (deleted)", "cleared"),
            (["CAP_SYS_PTRACE"], "/memfd:tether-sealed (deleted)", "cleared"),
            (["CAP_SYS_ADMIN"], "/memfd:tether-sealed (deleted)", "cleared"),
            (["CAP_DAC_READ_SEARCH"], "/memfd:tether-sealed (deleted)", "cleared")):
        pol = ws.decision_policy({"allow": True, "confine": {"capabilities": keep + extra}},
                                 "caps.lua")
        p = kit.run(sealed, "-c", REWRITE_STAGE1, python, REWRITE_STAGE2, policy=pol)
        r = json.loads(p.stdout)
        what = "granted %s" % (extra or "the default")
        eq((r["write"], r["head"]), ("Operation not permitted", "7f454c46"),
           "the image rewritten (%s)" % what)
        eq((r["link"], r["cleared"]), (link, cleared), "the file, and the flag (%s)" % what)


@case
def without_what_a_private_tmpfs_needs_the_plaintext_goes_to_a_memfd(ws):
    """tether without CAP_SYS_ADMIN (no tmpfs of its own) or without CAP_LINUX_IMMUTABLE (no
    immutable flag) decrypts into a sealed memfd, and the workload runs, byte for byte."""
    if shutil.which("setpriv") is None:
        raise Skip("needs setpriv(1) (util-linux)")
    kit = Kit(ws)
    with open(kit.exe, "rb") as f:
        data = f.read()
    data += os.urandom((4 << 20) - len(data))
    src = ws.write("plain-4m", "", mode=0o755)
    with open(src, "wb") as f:
        f.write(data)
    sealed = kit.seal(out="w-4m.sealed", src=src)
    for cap in (None, "sys_admin", "linux_immutable"):
        ws.prefix = ["setpriv", "--inh-caps=-" + cap, "--bounding-set=-" + cap, "--"] if cap else []
        ready = ws.path("ready-%s" % cap)
        proc = ws.popen("run", "--policy", ALLOW_ALL, sealed, "--", "selfsum", "ready", ready,
                        "sleep", "2")
        try:
            wait_for(lambda: os.path.exists(ready), what="the workload")
            link = os.readlink("/proc/%d/exe" % children_of(proc.pid)[-1])
            eq(proc.wait(timeout=20), 0, "exit status (without %s)" % cap)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        eq(link, "/memfd:tether-sealed (deleted)" if cap else "/tether-sealed (deleted)",
           "the file it ran from (without %s)" % cap)
        r = json.loads(proc.stdout.read())
        eq(r["selfsum"], "%d %016x" % (len(data), fnv1a64(data)), "what ran (without %s)" % cap)
    ws.prefix = []


@case
def plaintext_never_touches_a_disk(ws):
    kit = Kit(ws)
    sealed = kit.seal()
    stamp = ws.path("stamp")
    open(stamp, "w").close()
    time.sleep(0.05)
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", ALLOW_ALL, sealed, "--", "ready", ready, "sleep", "1")
    wait_for(lambda: os.path.exists(ready), what="the workload")
    eq(proc.wait(timeout=20), 0, "exit status")
    os.unlink(kit.exe)  # the only place the marker was meant to be
    hits, scanned = disk_files_holding(kit.marker, stamp)
    eq(hits, [], "files on disk holding the plaintext")
    assert scanned > 0, "nothing was scanned: the check would pass blind"


@case
def key_stays_out_of_the_workload_and_the_trail(ws):
    kit = Kit(ws)
    sealed = kit.seal()
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", ALLOW_ALL, sealed, "--", "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        from harness import children_of
        pid = children_of(proc.pid)[0]
        forms = [kit.key, kit.key.hex().encode(), base64.b64encode(kit.key)]
        for what in ("environ", "cmdline"):
            data = open("/proc/%d/%s" % (pid, what), "rb").read()
            assert not any(f in data for f in forms), "the key is in the workload's " + what
        tether_env = open("/proc/%d/environ" % proc.pid, "rb").read()
        assert not any(f in tether_env for f in forms), "the key is in tether's environment"
        st = {l.split(":")[0]: l.split(":")[1].strip() for l in open("/proc/%d/status" % proc.pid)}
        eq(os.stat("/proc/%d" % proc.pid).st_uid, 0, "tether is not dumpable (its /proc is root's)")
    finally:
        proc.kill()
        proc.wait()
    trail = open(ws.audit, "rb").read()
    assert not any(f in trail for f in forms), "the key is in the audit trail"


@case
def key_released_by_opa(ws):
    kit = Kit(ws, signers=False)
    os.unlink(os.path.join(kit.keys, "k1.key"))  # only OPA has it
    srv = DataAPI().start()
    try:
        from opa_server import KEY_B64
        key_file = ws.path("opa.key")
        open(key_file, "wb").write(base64.b64decode(KEY_B64))
        sealed = kit.seal(key_file=key_file)
        kit.configure(signers=False, opa={"url": srv.url, "path": "tether/key"})
        p = kit.run(sealed, "status", policy=None)
        eq(json.loads(p.stdout)["uid"], 0, "ran")
        rel = [r for r in ws.audit_records() if r["event"] == "key_release"][0]
        eq((rel["source"], rel["engine"]), ("decision", "opa"), "released by OPA's decision")
        assert KEY_B64 not in open(ws.audit).read()
    finally:
        srv.stop()


def header_len(data):
    """From the header's own length fields (doc/sealed-format.md)."""
    kl, el = int.from_bytes(data[34:36], "big"), int.from_bytes(data[36:38], "big")
    return HEADER_FIXED + kl + el + int.from_bytes(data[38:42], "big")


def flip(path, offset, out):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0x01
    open(out, "wb").write(bytes(data))
    return out


@case
def tampering_is_refused(ws):
    kit = Kit(ws, signers=False)  # no signature: the AEAD alone must catch each change
    sealed = kit.seal(sign=False, policy='function decide(i) return {allow = true} end')
    info = json.loads(ws.tether("inspect", sealed, check_rc=0).stdout)
    data = open(sealed, "rb").read()
    hlen = header_len(data)
    chunk = info["chunk_size"] + 16
    refused(kit, flip(sealed, 20, ws.path("t1")), 125, "sealed")            # plain_size
    refused(kit, flip(sealed, 28, ws.path("t2")), 125, "failed authentication")  # nonce prefix
    refused(kit, flip(sealed, hlen - 5, ws.path("t3")), 125, "does not match its sha256")  # policy
    refused(kit, flip(sealed, hlen + 100, ws.path("t4")), 125, "chunk 1 of")  # ciphertext
    refused(kit, flip(sealed, len(data) - 3, ws.path("t5")), 125, "failed authentication")  # a tag
    open(ws.path("t6"), "wb").write(data[:-100])
    refused(kit, ws.path("t6"), 125, "truncated")
    # truncated at a chunk boundary and the size fixed up: the last-chunk flag catches it
    n = info["chunks"]
    cut = bytearray(data[:hlen + (n - 1) * chunk])
    cut[18:26] = ((n - 1) * info["chunk_size"]).to_bytes(8, "big")
    open(ws.path("t7"), "wb").write(bytes(cut))
    refused(kit, ws.path("t7"), 125, "failed authentication")
    # two chunks swapped
    c = [data[hlen + i * chunk: hlen + (i + 1) * chunk] for i in range(n - 1)]
    swapped = data[:hlen] + c[1] + c[0] + b"".join(c[2:]) + data[hlen + (n - 1) * chunk:]
    open(ws.path("t8"), "wb").write(swapped)
    refused(kit, ws.path("t8"), 125, "chunk 1 of")
    # the embedded policy transplanted from another sealed file (with its own sha256)
    other = kit.seal("other.sealed", sign=False,
                     policy='function decide(i) return {allow = true, reasons = {"x"}} end')
    od = open(other, "rb").read()
    ohlen = header_len(od)
    open(ws.path("t9"), "wb").write(od[:ohlen] + data[hlen:])
    refused(kit, ws.path("t9"), 125, "sealed")


@case
def signature_checks(ws):
    kit = Kit(ws, signers=True)
    unsigned = kit.seal("unsigned.sealed", sign=False)
    refused(kit, unsigned, 125, "unsigned, and this node trusts only signed")
    signed = kit.seal("signed.sealed")
    data = open(signed, "rb").read()
    refused(kit, flip(signed, len(data) - 10, ws.path("badsig")), 125, "signature does not verify")
    other = ws.path("other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other], check=True,
                   capture_output=True)
    kit.sign, mine = other, kit.sign
    stranger = kit.seal("stranger.sealed")
    kit.sign = mine
    refused(kit, stranger, 125, "which this node does not trust")
    kit.run(signed, "status")


@case
def key_refusals(ws):
    kit = Kit(ws, signers=False)
    sealed = kit.seal(sign=False)
    kit.write_key("k1", os.urandom(32))
    refused(kit, sealed, 125, "failed authentication")  # the wrong key
    os.unlink(os.path.join(kit.keys, "k1.key"))
    refused(kit, sealed, 125, "no key `k1` in the key store")
    kit.write_key("k1", kit.key)
    os.chmod(os.path.join(kit.keys, "k1.key"), 0o644)
    refused(kit, sealed, 125, "open to others")
    os.chmod(os.path.join(kit.keys, "k1.key"), 0o600)
    os.chmod(kit.keys, 0o755)
    refused(kit, sealed, 125, "key store")
    os.chmod(kit.keys, 0o700)
    kit.run(sealed, "status")


@case
def policy_refusals(ws):
    kit = Kit(ws, signers=False)
    denying = kit.seal("deny.sealed", sign=False,
                       policy='function decide(i) return {allow = false, reasons = {"not in this region"}} end')
    refused(kit, denying, 77, "embedded policy: not in this region")
    allowing = kit.seal("ok.sealed", sign=False)
    node_deny = ws.policy('return {allow = false, reasons = {"node says no"}}')
    refused(kit, allowing, 77, "denied: node says no", policy=node_deny)
    ev = [r["event"] for r in ws.audit_records()]
    assert "key_release" not in ev, "a key was released for a denied workload"


def make_tree(kit):
    """A root file system: the static probe as /bin/probe, and data with the marker."""
    tree = kit.ws.path("tree")
    for d in ("bin", "data", "proc"):
        os.makedirs(os.path.join(tree, d))
    shutil.copy(PROBE, os.path.join(tree, "bin", "probe"))
    with open(os.path.join(tree, "data", "secret.txt"), "wb") as f:
        f.write(kit.marker)
    return tree


def sealed_tree(kit):
    """make_tree's tree, sealed (unsigned) with /bin/probe as its entrypoint; the tree goes."""
    tree = make_tree(kit)
    out = kit.ws.path("tree.sealed")
    kit.ws.tether("seal", "--key", os.path.join(kit.keys, "k1.key"), "--key-id", "k1",
                  "--entrypoint", "/bin/probe", "-o", out, tree, check_rc=0)
    shutil.rmtree(tree)
    return out


@case
def round_trip_root_file_system(ws):
    kit = Kit(ws, signers=False)
    tree = make_tree(kit)
    out = ws.path("tree.sealed")
    ws.tether("seal", "--key", os.path.join(kit.keys, "k1.key"), "--key-id", "k1",
              "--entrypoint", "/bin/probe", "-o", out, tree, check_rc=0)
    info = json.loads(ws.tether("inspect", out, check_rc=0).stdout)
    eq((info["type"], info["entrypoint"]), ("rootfs", "/bin/probe"), "header")
    assert kit.marker not in open(out, "rb").read(), "the plaintext is in the sealed file"
    shutil.rmtree(tree)
    p = kit.run(out, "exists", "/data/secret.txt", "exists", "/etc/machine-id", "exists",
                ws.root, "try", "getpid")
    r = json.loads(p.stdout)
    eq(r["exists /data/secret.txt"], 0, "the tree is the workload's root")
    eq(r["exists /etc/machine-id"], 2, "the host's files are not there")
    eq(r["exists " + ws.root], 2, "nor this test's directory")
    eq(r["try"], {"getpid": 0}, "it ran")
    # This run's own mount point (other tests' come and go beside it under ctest -j).
    pids = {r["tether_pid"] for r in ws.audit_records()}
    eq(len(pids), 1, "one tether wrote the trail")
    mnt = "/run/tether/root.%d" % pids.pop()
    assert not os.path.exists(mnt), "the mount point %s is left behind" % mnt
    # refusals particular to trees, and to scripts, which cannot run from memory
    script = ws.write("script.sh", "#!/bin/sh\necho hi\n", 0o755)
    p = ws.tether("seal", "--key", os.path.join(kit.keys, "k1.key"), "--key-id", "k1", "-o",
                  ws.path("s.sealed"), script, check_rc=125)
    assert "is a script" in one_line(p.stderr)
    p = ws.tether("seal", "--key", os.path.join(kit.keys, "k1.key"), "--key-id", "k1", "-o",
                  ws.path("x.sealed"), ws.root, "--entrypoint", "/nope", check_rc=125)
    assert "not an executable file" in one_line(p.stderr)


@case
def a_root_workload_cannot_walk_out_of_its_root_file_system(ws):
    """The tree was a chroot: a root workload keeps CAP_SYS_CHROOT, and the classic walk (a
    chroot into a directory below, then ".." past the old root) took it to the node's
    files, where it wrote them, and to /proc/sys (core_pattern runs a program of its choice
    as the node's root).  The tree is the mount namespace's root now, and the node's file
    system is not in that namespace."""
    kit = Kit(ws, signers=False)
    out = sealed_tree(kit)
    p = kit.run(out, "unchroot", "exists", ws.root, "exists", "/etc/machine-id",
                "exists", "/proc/sys/kernel/core_pattern", "mark", ws.path("escaped"))
    r = json.loads(p.stdout)
    eq(r["unchroot"], 0, "the workload, root, could chroot")
    assert not os.path.exists(ws.path("escaped")), "the workload wrote the node's files"
    eq(r["exists " + ws.root], 2, "this test's directory is not there")
    eq(r["exists /etc/machine-id"], 2, "nor the node's files")
    eq(r["exists /proc/sys/kernel/core_pattern"], 2, "nor the node's /proc/sys")


@case
def root_file_system_plaintext_stays_in_memory(ws):
    kit = Kit(ws, signers=False)
    out = sealed_tree(kit)
    os.unlink(kit.exe)
    stamp = ws.path("stamp")
    open(stamp, "w").close()
    time.sleep(0.05)
    kit.run(out, "exists", "/data/secret.txt", "sleep", "0.5")
    hits, scanned = disk_files_holding(kit.marker, stamp)
    eq(hits, [], "files on disk holding the tree's plaintext")
    assert scanned > 0, "nothing was scanned"


@case
def require_sealed_refuses_plain_commands(ws):
    kit = Kit(ws, signers=False)
    kit.configure(signers=False, require_sealed=True)
    p = ws.tether("run", "--policy", ALLOW_ALL, "--", "true", check_rc=125)
    assert "require_sealed" in one_line(p.stderr)
    kit.run(kit.seal(sign=False), "status")


if __name__ == "__main__":
    main()

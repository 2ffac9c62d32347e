"""Integration-test harness: runs the real tether binary.

A test file defines cases with @case and ends with main().  `FILE --list` prints the case
names (CMake registers one CTest test per case); `FILE NAME` runs one case in a fresh
directory.  A case raises Skip(reason) when it cannot run here: the exit status is then 77,
which CTest reports as skipped.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
SRC = os.environ.get("TETHER_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TETHER = os.environ.get("TETHER_BIN", os.path.join(SRC, "build", "tether"))
POLICIES = os.path.join(SRC, "policies")
PROBE = os.environ.get("TETHER_PROBE", os.path.join(SRC, "build", "tests", "probe"))

_cases = {}


class Skip(Exception):
    pass


def case(fn):
    _cases[fn.__name__] = fn
    return fn


class Workspace:
    """A temporary directory with a node configuration of its own, so that no test reads
    /etc/tether or writes /var/log/tether."""

    def __init__(self, root):
        self.root = root
        self.audit = self.path("audit.jsonl")
        self.config = self.write("tether.json", json.dumps({"audit": {"path": self.audit}}))
        self.env = dict(os.environ, TETHER_CONFIG=self.config)
        self.prefix = []  # what tether runs under: see own_run_dir

    def own_run_dir(self):
        """From now on tether runs in a mount namespace of its own, where /run/tether (the
        status files and the hash cache) is a directory of this test's: nothing another test
        does there changes what this one sees.  Returns that directory."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            raise Skip("needs root and unshare(1): /run/tether is root's")
        d = self.path("run-tether")
        os.makedirs(d, mode=0o700, exist_ok=True)
        os.makedirs("/run/tether", mode=0o700, exist_ok=True)  # the mount point, as tether makes it
        self.prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                       'mount --bind "$0" /run/tether && exec "$@"', d]
        return d

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def key_store(self, key_id="k"):
        """A key store (0700) with one random 32-byte key, KEY_ID.key (0600): the
        directory and the key's file."""
        keys = self.path("keys")
        os.mkdir(keys, 0o700)
        key = os.path.join(keys, key_id + ".key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        return keys, key

    def env_for_user(self, uid):
        """An environment with a configuration and an audit trail that user uid can use."""
        os.chmod(self.root, 0o755)
        d = self.path("user-%d" % uid)
        os.makedirs(d, exist_ok=True)
        os.chown(d, uid, uid)
        cfg = os.path.join(d, "tether.json")
        with open(cfg, "w") as f:
            json.dump({"audit": {"path": os.path.join(d, "audit.jsonl")}}, f)
        os.chmod(cfg, 0o644)
        for name in os.listdir(self.root):
            if name.endswith(".lua"):
                os.chmod(self.path(name), 0o644)
        return dict(self.env, TETHER_CONFIG=cfg)

    def probe_for_users(self):
        """A copy of the probe that any user can reach (the build tree may sit under a
        directory only root can enter), still root-owned and writable by root alone."""
        dst = self.path("probe")
        if not os.path.exists(dst):
            shutil.copy(PROBE, dst)
            os.chmod(dst, 0o755)
        os.chmod(self.root, 0o755)
        return dst

    def as_user(self, uid, *args, check_rc=None):
        """Runs tether as user uid (with setpriv) in an environment made for it."""
        env = self.env_for_user(uid)
        p = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                            TETHER, *args], env=env, capture_output=True, text=True, cwd="/")
        if check_rc is not None and p.returncode != check_rc:
            raise AssertionError("tether %s as uid %d: exit %d, want %d\nstderr: %s"
                                 % (" ".join(args), uid, p.returncode, check_rc, p.stderr))
        return p

    def decision_policy(self, decision, name="policy.lua"):
        """A policy that returns this decision (a dict) for every input."""
        return self.policy("return " + lua_literal(decision), name)

    def policy(self, body, name="policy.lua"):
        """A Lua policy file from the body of decide(input)."""
        return self.write(name, "function decide(input)\n%s\nend\n" % body)

    def tether(self, *args, env=None, input=None, timeout=60, check_rc=None):
        p = subprocess.run([*self.prefix, TETHER, *args], env=env or self.env, input=input,
                           timeout=timeout, capture_output=True, text=True, cwd=self.root)
        if check_rc is not None and p.returncode != check_rc:
            raise AssertionError("tether %s: exit %d, want %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), p.returncode, check_rc, p.stdout, p.stderr))
        return p

    def popen(self, *args, **kw):
        return subprocess.Popen([*self.prefix, TETHER, *args], env=self.env, cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

    def audit_records(self, path=None):
        """The trail's records; a last line without its newline is a record being written
        (a reader may see part of a write), not yet one."""
        try:
            with open(path or self.audit) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def one_line(text, what="stderr"):
    lines = text.strip("\n").split("\n")
    if len(lines) != 1 or not lines[0]:
        raise AssertionError("%s is not exactly one line: %r" % (what, text))
    return lines[0]


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def marked(mark):
    """The live (not zombie) processes whose environment holds TETHER_TEST_MARK=mark, by
    their pids on the host: what a workload started, whatever pid namespace it is in."""
    want = ("TETHER_TEST_MARK=%s" % mark).encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if want in env and state not in "ZX":
            found.append(int(d))
    return found


def children_of(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: %s --list | CASE" % sys.argv[0])
    if sys.argv[1] == "--list":
        print("\n".join(_cases))
        return
    fn = _cases.get(sys.argv[1])
    if fn is None:
        sys.exit("no case " + sys.argv[1])
    if not os.access(TETHER, os.X_OK):
        sys.exit("tether binary not found at %s (set TETHER_BIN)" % TETHER)
    root = tempfile.mkdtemp(prefix="tether-it-")
    try:
        fn(Workspace(root))
    except Skip as e:
        print("SKIP: %s" % e)
        sys.exit(SKIP)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("PASS")


def lua_literal(v):
    """A Python value as a Lua constructor, for writing policies from test data."""
    if v is None:
        return "nil"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(lua_literal(x) for x in v) + "}"
    return "{" + ", ".join("[%s] = %s" % (lua_literal(k), lua_literal(x)) for k, x in v.items()) + "}"


def crun_ready():
    """The crun binary, ready to run: crun 1.8 refuses a hybrid hierarchy whose cgroup2 holds a
    controller, so hugetlb, the one these machines put there, goes into a v1 hierarchy of its
    own (MACHINE-NOTES.md).  Idempotent, safe beside another test doing the same, and harmless
    to everything else here."""
    path = shutil.which("crun")
    if path is None:
        raise Skip("crun is not installed (contrib/setup.sh test installs it)")
    if os.geteuid() != 0:
        raise Skip("crun needs root here")
    ctl = "/sys/fs/cgroup/unified/cgroup.controllers"
    if not os.path.exists(ctl) or "hugetlb" not in open(ctl).read().split():
        return path
    os.makedirs("/sys/fs/cgroup/hugetlb", exist_ok=True)
    r = subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup",
                        "/sys/fs/cgroup/hugetlb"], capture_output=True, text=True)
    if r.returncode != 0 and "hugetlb" in open(ctl).read().split():
        raise Skip("crun cannot run on this hybrid hierarchy: " + r.stderr.strip())
    return path


def disk_files_holding(marker, stamp):
    """Every file on a disk-backed file system changed since stamp that holds marker, and how
    many files were read (a scan of nothing would pass blind)."""
    fs = subprocess.run(["findmnt", "-rn", "-o", "TARGET,FSTYPE"], capture_output=True, text=True).stdout
    disk = [t for t, typ in (l.split(" ", 1) for l in fs.splitlines())
            if typ in ("ext4", "ext3", "ext2", "xfs", "btrfs", "f2fs", "vfat", "overlay")]
    assert disk, "no disk-backed file system found: " + fs
    hits, scanned = [], 0
    for mnt in disk:
        found = subprocess.run(["find", mnt, "-xdev", "-type", "f", "-newer", stamp, "-size", "-64M"],
                               capture_output=True, text=True).stdout.split("\n")
        for path in filter(None, found):
            try:
                with open(path, "rb") as f:
                    scanned += 1
                    if marker in f.read():
                        hits.append(path)
            except OSError:
                pass
    return hits, scanned

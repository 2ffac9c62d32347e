"""What runs is what was measured (issue 11, points 1 to 3): each case changes the workload's
bytes while tether waits for its decision, as the attacker would, and asserts that the bytes
that were measured, and only those, ran."""
import hashlib
import json
import os
import shutil
import subprocess
import time

from harness import PROBE, Skip, case, eq, main, one_line
from opa_server import DataAPI

NOBODY = 65534


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: the attacker is the user nobody")


def as_nobody(*cmd):
    subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                    *cmd], check=True, capture_output=True)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def with_opa(ws, on_request, path="tether/allow"):
    """A loopback OPA that allows, and runs on_request before it answers."""
    srv = DataAPI(on_request=lambda doc: on_request()).start()
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit},
                                        "opa": {"url": srv.url, "path": path}}))
    return srv


def node_asks_opa(ws, on_request):
    """The node's configuration as it is, asking a loopback OPA that allows, and runs
    on_request(doc) before it answers."""
    cfg = json.load(open(ws.path("tether.json")))
    srv = DataAPI(on_request=on_request).start()
    cfg["opa"] = {"url": srv.url, "path": "tether/allow"}
    ws.write("tether.json", json.dumps(cfg))
    return srv


def launch_record(ws):
    return [r for r in ws.audit_records() if r["event"] == "decision"][0]


def judged_exe(srv):
    """workload.exe as the policy saw it."""
    return json.loads(srv.requests[0]["body"])["input"]["workload"]["exe"]


@case
def script_swapped_after_the_decision_never_runs(ws):
    """The attacker owns the script's directory, not the script, and renames another file
    over it between the measurement and the exec."""
    need_root()
    os.chmod(ws.root, 0o755)
    d = ws.path("d")
    os.mkdir(d)
    os.chown(d, NOBODY, NOBODY)
    out = ws.path("out")
    open(out, "w").close()
    os.chmod(out, 0o666)
    script = os.path.join(d, "job.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho original > %s\n" % out)
    os.chmod(script, 0o755)
    original = sha(script)
    evil = os.path.join(d, "evil.sh")
    as_nobody("sh", "-c", "printf '#!/bin/sh\\necho evil > %s\\n' > %s; chmod 755 %s"
              % (out, evil, evil))
    srv = with_opa(ws, lambda: as_nobody("mv", "-f", evil, script))
    try:
        ws.tether("run", "--", script, check_rc=0)
    finally:
        srv.stop()
    assert "evil" in open(script).read(), "the swap did not happen: the check is void"
    eq(open(out).read().strip(), "original", "what ran")
    eq(launch_record(ws)["workload"]["exe_sha256"], original, "the trail names the bytes that ran")
    exe = judged_exe(srv)
    eq(exe["sha256"], original, "the policy judged the bytes that ran")
    eq(exe["interpreter"]["path"], "/bin/sh", "the interpreter is measured")
    eq(exe["interpreter"]["sha256"], sha("/bin/sh"), "its sha256")


@case
def binary_changed_in_place_after_hashing_never_runs(ws):
    """The binary's owner (a policy that allows by sha256 allows such a file) rewrites it in
    place while tether waits for the decision."""
    need_root()
    os.chmod(ws.root, 0o755)
    exe = ws.path("tool")
    shutil.copy(PROBE, exe)
    os.chown(exe, NOBODY, NOBODY)
    os.chmod(exe, 0o755)
    original = sha(exe)
    out = ws.path("out")
    evil = ws.write("evil", "#!/bin/sh\necho evil > %s\n" % out, 0o644)
    srv = with_opa(ws, lambda: as_nobody("cp", evil, exe))  # cp writes in place
    try:
        ws.tether("run", "--", exe, "mark", out, check_rc=0)
    finally:
        srv.stop()
    assert sha(exe) != original, "the file was not rewritten: the check is void"
    eq(open(out).read().strip(), "ran", "the measured bytes ran")
    rec = judged_exe(srv)
    eq((rec["sha256"], rec["private_copy"]), (original, True), "measured, and run from a copy")
    eq(launch_record(ws)["workload"]["exe_sha256"], original, "the trail names the bytes that ran")


@case
def root_only_files_run_without_a_copy(ws):
    srv = with_opa(ws, lambda: None)
    try:
        ws.tether("run", "--", "/bin/true", check_rc=0)
    finally:
        srv.stop()
    eq(judged_exe(srv)["private_copy"], False, "no copy of a root-only file")


@case
def a_copy_in_memory_is_bounded(ws):
    """A file that others may write runs from a private copy in memory, so its size is
    bounded: over 1 GiB it is refused at once, in one line, with nothing run and nothing read
    past its size; the same file made root's alone runs in place."""
    need_root()
    app = ws.path("big-app")
    shutil.copy(PROBE, app)
    os.truncate(app, (1 << 30) + 1)  # the program, then a sparse tail: it still runs
    os.chown(app, NOBODY, NOBODY)
    os.chmod(app, 0o755)
    pol = ws.policy("return {allow = true}")
    out = ws.path("ran")
    p = ws.tether("run", "--policy", pol, "--", app, "mark", out, check_rc=125)
    line = one_line(p.stderr)
    assert "at most 1 GiB" in line and "chown root" in line, line
    assert not os.path.exists(out), "it ran"
    eq([r["event"] for r in ws.audit_records()], [], "nothing to decide about")
    os.chown(app, 0, 0)
    ws.tether("run", "--policy", pol, "--", app, "mark", out, check_rc=0)
    assert os.path.exists(out), "root's file did not run in place"


@case
def a_script_cannot_make_tether_read_its_interpreter_without_end(ws):
    """Whoever writes a script names its interpreter, and so how much tether reads to hash
    it: a sparse root-owned file of 1 TiB costs nothing to make and took hours to read.  An
    interpreter is read up to 1 GiB: past it the launch is refused in one line, at once."""
    need_root()
    interp = ws.path("huge")
    with open(interp, "wb") as f:
        f.truncate(1 << 40)
    os.chmod(interp, 0o755)
    script = ws.write("script", "#!%s\n" % interp, mode=0o755)
    os.chown(script, NOBODY, NOBODY)
    pol = ws.policy("return {allow = true}")
    p = ws.tether("run", "--policy", pol, "--", script, timeout=60)
    eq(p.returncode, 126, "exit status, as for an interpreter that cannot run")
    line = one_line(p.stderr)
    assert "its interpreter" in line and "over 1 GiB" in line, line
    eq([r["event"] for r in ws.audit_records()], [], "nothing to decide about")


@case
def a_file_whose_size_says_less_than_it_holds_is_refused(ws):
    """The copy is of the size measured, which the policy sees: a file that holds more is
    refused in one line.  Here a file of /proc's, which says 0 bytes: the command line of a
    process of nobody's whose first word is a sealed file's magic, so that tether takes it
    for a sealed workload and copies it."""
    need_root()
    holder = subprocess.Popen(["TETHSEAL-not-really", "30"], executable="/bin/sleep",
                              user=NOBODY, group=NOBODY, extra_groups=[])
    try:
        path = "/proc/%d/cmdline" % holder.pid
        eq(os.stat(path).st_size, 0, "the size /proc gives")
        p = ws.tether("run", "--policy", ws.policy("return {allow = true}"), path, check_rc=125)
        line = one_line(p.stderr)
        assert "more than the 0 bytes it had when it was measured" in line, line
    finally:
        holder.kill()
        holder.wait()
    eq([r["event"] for r in ws.audit_records()], [], "nothing to decide about")


@case
def sealed_file_rewritten_after_its_check_never_runs(ws):
    """Someone who may write the sealed file changes it after the signature was checked: the
    decryption reads the bytes that were digested, from a private copy."""
    need_root()
    from test_sealed import Kit
    kit = Kit(ws)
    sealed = kit.seal()
    os.chown(sealed, NOBODY, NOBODY)
    os.chmod(ws.root, 0o755)
    other = kit.seal(out="other.sealed", src=PROBE)
    os.chmod(other, 0o644)
    digest = json.loads(ws.tether("inspect", sealed, check_rc=0).stdout)["digest"]
    srv = node_asks_opa(ws, lambda doc: as_nobody("cp", other, sealed))
    marker = ws.path("ran")
    try:
        p = ws.tether("run", sealed, "--", "mark", marker, "status")
    finally:
        srv.stop()
    assert open(sealed, "rb").read() == open(other, "rb").read(), "not rewritten: the check is void"
    eq(p.returncode, 0, "the digested bytes ran: " + p.stderr)
    assert kit.marker.decode() not in p.stdout
    rel = [r for r in ws.audit_records() if r["event"] == "key_release"]
    eq([r["digest"] for r in rel], [digest], "the key went to the digest that was checked")


class LeftoverWriter:
    """The user nobody opens a file of theirs for writing and keeps the descriptor; root then
    takes the file (chown root, mode 0755), as an operator adopting an upload would.  The
    mode says only root may write it; the descriptor still writes."""

    def __init__(self, path):
        self.go, self.done = os.pipe(), os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.go[0])
            os.close(self.done[1])
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fd = os.open(path, os.O_WRONLY)
            os.write(self.go[1], b"o")
            while True:
                cmd = os.read(self.done[0], 1 << 20)
                if not cmd:
                    os._exit(0)
                os.pwrite(fd, cmd, 0)  # overwrite from the start, same size
                os.write(self.go[1], b"w")
        os.close(self.go[1])
        os.close(self.done[0])
        os.read(self.go[0], 1)

    def write(self, data):
        os.write(self.done[1], data)
        os.read(self.go[0], 1)

    def stop(self):
        os.close(self.done[1])
        os.waitpid(self.pid, 0)


def adopted_with_a_writer(ws, src, name):
    path = ws.path(name)
    shutil.copy(src, path)
    os.chown(path, NOBODY, NOBODY)
    os.chmod(ws.root, 0o755)
    w = LeftoverWriter(path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o755)
    time.sleep(2.5)  # settled: the hash cache would remember it, were it trusted
    return path, w


@case
def root_owned_file_still_open_for_writing_runs_from_a_copy(ws):
    """A file that root owns, mode 0755, which someone else still holds open for writing: its
    bytes change after the decision unless it runs from a private copy, and its hash is never
    remembered."""
    need_root()
    app, w = adopted_with_a_writer(ws, PROBE, "app")
    original = sha(app)
    writes = []
    srv = with_opa(ws, lambda: writes or writes.append(w.write(b"\0" * 64)))
    out = ws.path("out")
    try:
        # The first launch: rewritten while tether waits; the copy, as measured, runs.
        ws.tether("run", "--", app, "mark", out, check_rc=0)
        # The second: the bytes now there (no program) are what is measured and run.
        ws.tether("run", "--", app, "mark", out, check_rc=126)
    finally:
        srv.stop()
        w.stop()
    assert open(app, "rb").read(64) == b"\0" * 64, "not rewritten: the check is void"
    assert os.path.exists(out), "the measured bytes did not run"
    exes = [json.loads(r["body"])["input"]["workload"]["exe"] for r in srv.requests]
    eq([e["sha256_from"] for e in exes], ["copy", "copy"], "run from a copy, never the cache")
    eq([e["sha256"] for e in exes], [original, sha(app)], "each launch measured what ran")


@case
def sealed_file_still_open_for_writing_is_decrypted_from_a_copy(ws):
    """The same for a sealed file: the holder of the descriptor rewrites it, under the
    same header and signature, while tether waits for its decision; what is decrypted is
    what was digested."""
    need_root()
    from test_sealed import Kit
    kit = Kit(ws)
    sealed = kit.seal()
    path, w = adopted_with_a_writer(ws, sealed, "adopted.sealed")
    digest = json.loads(ws.tether("inspect", path, check_rc=0).stdout)["digest"]
    # Garbage over the first chunk: decrypting that would fail authentication.
    srv_calls = []
    srv = node_asks_opa(ws, lambda doc: (srv_calls.append(doc), w.write(
        open(path, "rb").read(200) + b"\xff" * 4096)))
    marker = ws.path("ran")
    try:
        p = ws.tether("run", path, "--", "mark", marker, "status")
    finally:
        srv.stop()
        w.stop()
    assert open(path, "rb").read(4296)[200:] == b"\xff" * 4096, "not rewritten: the check is void"
    eq(p.returncode, 0, "the digested bytes ran: " + p.stderr)
    eq(srv_calls[0]["input"]["workload"]["sealed"]["digest_from"], "copy", "decrypted from a copy")
    rel = [r for r in ws.audit_records() if r["event"] == "key_release"]
    eq([r["digest"] for r in rel], [digest], "the key went to the digest that was checked")


@case
def policy_still_open_for_writing_is_refused(ws):
    """A trust anchor (here the policy) that root owns, mode 0644, but that someone else still
    holds open for writing is not root's alone: refused, until the writer is gone."""
    need_root()
    os.chmod(ws.root, 0o755)
    pol = ws.write("policy.lua", "function decide(input) return {allow = true} end\n")
    os.chown(pol, NOBODY, NOBODY)
    w = LeftoverWriter(pol)
    os.chown(pol, 0, 0)
    os.chmod(pol, 0o644)
    out = ws.path("out")
    try:
        p = ws.tether("run", "--policy", pol, "--", PROBE, "mark", out, check_rc=125)
        assert "open for writing by another process" in one_line(p.stderr), p.stderr
        assert not os.path.exists(out), "it ran on a policy someone else may still change"
    finally:
        w.stop()
    ws.tether("run", "--policy", pol, "--", PROBE, "mark", out, check_rc=0)


if __name__ == "__main__":
    main()

"""Exec prevention (monitor.prevent_exec): every exec in a monitored workload's tree is held by
the kernel until tether has decided, and a forbidden one never runs."""
import errno
import hashlib
import json
import os
import subprocess
import sys
import time

from harness import PROBE, TETHER, Skip, case, eq, main, marked, one_line, wait_for

DRIFT_KILLED = 78
HANG = 'string.find(string.rep("a", 4000), string.rep("a-", 40) .. "b")'


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: fanotify permission events need CAP_SYS_ADMIN")


def gate_policy(ws, on_exec, monitor='on_drift = "kill", exec_timeout_ms = 30000'):
    """Allows at launch with prevent_exec; for a held exec (input.exec) runs on_exec, Lua that
    may return a decision.  The bound is generous: a loaded test machine must not turn an
    allowed exec into a timed-out one."""
    return ws.policy("""
if input.exec ~= nil then
  local e = input.exec
  %s
end
return {allow = true, monitor = {prevent_exec = true, %s}}""" % (on_exec, monitor))


def records(ws, event):
    return [r for r in ws.audit_records() if r["event"] == event]


# The workload: exec PROGRAM and report how it failed, in a file.
TRY_EXEC = r"""
import os, sys
out, prog = sys.argv[1], sys.argv[2:]
try:
    os.execv(prog[0], prog)
except OSError as e:
    open(out, "w").write(str(e.errno))
"""


@case
def forbidden_exec_never_runs(ws):
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells here"}} end')
    ran, out = ws.path("ran"), ws.path("errno")
    # The workload ignores SIGTERM, so that it can say how its exec failed before the
    # drift's SIGKILL (after monitor.grace_s) ends it.
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "monitor": {"grace_s": 1}}))
    script = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + TRY_EXEC
    script += "\nimport time\ntime.sleep(30)\n"
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", script, out,
                  "/usr/bin/dash", "-c", "echo ran > %s" % ran, timeout=30)
    eq(p.returncode, DRIFT_KILLED, "on_drift kill: " + p.stderr)
    assert not os.path.exists(ran), "the forbidden program ran"
    eq(open(out).read(), "1", "execve failed with EPERM")
    den = records(ws, "exec_denied")
    eq([(d["path"], d["reason"]) for d in den], [("/usr/bin/dash", "no shells here")], "audited")
    eq(den[0]["sha256"], hashlib.sha256(open("/usr/bin/dash", "rb").read()).hexdigest(), "its hash")


@case
def log_lets_the_workload_go_on_without_the_program(ws):
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells"}} end',
                      'on_drift = "log", exec_timeout_ms = 30000')
    ran, out = ws.path("ran"), ws.path("errno")
    script = TRY_EXEC + "\nraise SystemExit(7)\n"
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", script, out,
                  "/usr/bin/dash", "-c", "echo ran > %s" % ran, timeout=30)
    eq(p.returncode, 7, "the workload went on to its own end: " + p.stderr)
    assert not os.path.exists(ran), "the forbidden program ran"
    eq([d["action"] for d in records(ws, "drift")], ["log"], "drift, logged")


@case
def allowed_execs_and_the_hosts_are_not_held_back(ws):
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells"}} end')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", sys.executable, "-c",
                    "import subprocess, sys, time\n"
                    "assert subprocess.run(['/bin/true']).returncode == 0\n"
                    "open(sys.argv[1], 'w').close()\n"
                    "time.sleep(30)", ready)
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload's allowed exec")
        # The host runs what the workload may not, and a loop of execs: none is held.
        r = subprocess.run(["/usr/bin/dash", "-c", "echo host"], capture_output=True, text=True,
                           timeout=10)
        eq(r.stdout.strip(), "host", "a host exec of the same program")
        eq(records(ws, "exec_denied"), [], "nothing denied")
    finally:
        proc.kill()
        proc.communicate()


@case
def the_hosts_execs_are_never_held(ws):
    """A prevented workload whose policy would hang on every exec it judges: a loop of 1,000
    execs on the host still runs through, as none of them is held."""
    need_root()
    pol = gate_policy(ws, HANG, 'on_drift = "kill", exec_timeout_ms = 60000')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "120")
    try:
        wait_for(lambda: os.path.exists(ready), what="the prevented workload")
        r = subprocess.run(["/bin/bash", "-c", "n=0; for i in $(seq 1000); do /bin/true && "
                            "n=$((n+1)); done; echo $n"], capture_output=True, text=True,
                           timeout=110)
        eq(r.stdout.strip(), "1000", "the host's loop ran through")
        eq(records(ws, "exec_denied"), [], "nothing was judged")
    finally:
        proc.kill()
        proc.communicate()


@case
def a_thousand_allowed_execs_run(ws):
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells"}} end')
    p = ws.tether("run", "--policy", pol, "--", "/bin/bash", "-c",
                  "n=0; for i in $(seq 1000); do /bin/true && n=$((n+1)); done; echo $n",
                  timeout=850)
    eq((p.returncode, p.stdout.strip()), (0, "1000"),
       "every exec ran: %s %r" % (p.stderr, records(ws, "exec_denied")))
    eq(records(ws, "exec_denied"), [], "none was denied")


@case
def an_exec_the_policy_cannot_decide_in_time_is_denied(ws):
    need_root()
    pol = gate_policy(ws, HANG, 'on_drift = "kill", exec_timeout_ms = 300')
    ran, out = ws.path("ran"), ws.path("errno")
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", TRY_EXEC, out,
                  PROBE, "mark", ran, timeout=30)
    eq(p.returncode, DRIFT_KILLED, "exit status: " + p.stderr)
    assert not os.path.exists(ran), "the exec ran"
    den = records(ws, "exec_denied")
    assert den and "timed out" in den[0]["reason"], den


@case
def a_policy_error_on_an_exec_is_a_deny(ws):
    need_root()
    pol = gate_policy(ws, 'error("broken")')
    ran, out = ws.path("ran"), ws.path("errno")
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", TRY_EXEC, out,
                  PROBE, "mark", ran, timeout=30)
    eq(p.returncode, DRIFT_KILLED, "exit status: " + p.stderr)
    assert not os.path.exists(ran), "the exec ran"
    assert "broken" in records(ws, "exec_denied")[0]["reason"]


@case
def an_exec_held_when_tether_dies_never_runs(ws):
    """The kernel lets held execs go when the group's last descriptor closes: the group is
    kept open until the tree is gone, so a held exec dies with the tree instead."""
    need_root()
    pol = gate_policy(ws, HANG, 'on_drift = "kill", exec_timeout_ms = 60000')
    ran, out, going = ws.path("ran"), ws.path("errno"), ws.path("going")
    script = "open(%r, 'w').close()\n" % going + TRY_EXEC
    env = dict(ws.env, TETHER_TEST_MARK=ws.root)
    proc = subprocess.Popen([TETHER, "run", "--policy", pol, "--", sys.executable, "-c", script,
                             out, PROBE, "mark", ran], env=env, cwd=ws.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(going), what="the workload to exec")
        time.sleep(0.3)  # the exec is held now, the policy hanging over it
        assert not os.path.exists(ran), "the exec ran before any decision"
    finally:
        proc.kill()
        proc.communicate()
    wait_for(lambda: not marked(ws.root), timeout=10, what="the tree to be gone")
    time.sleep(0.2)
    assert not os.path.exists(ran), "the held exec ran after tether died"


@case
def an_exec_from_memory_is_refused(ws):
    need_root()
    pol = gate_policy(ws, 'return {allow = true}')
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c",
                  "import os\n"
                  "try:\n"
                  "    os.memfd_create('x')\n"
                  "    print('made')\n"
                  "except OSError as e:\n"
                  "    print(e.errno)\n", timeout=30)
    eq(p.stdout.strip(), "1", "memfd_create fails with EPERM: no exec can bypass the marks")


# The workload: a new user namespace and, in it, a new mount namespace (whose mounts are
# copies, without the marks); then exec PROGRAM there, and report how either failed.
USERNS_EXEC = r"""
import ctypes, os, sys
out, prog = sys.argv[1], sys.argv[2:]
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
    open(out, "w").write("unshare %d" % ctypes.get_errno())
    sys.exit(0)
try:
    os.execv(prog[0], prog)
except OSError as e:
    open(out, "w").write("exec %d" % e.errno)
"""


@case
def a_new_user_and_mount_namespace_does_not_leave_the_marks(ws):
    """The mounts of a new mount namespace are copies, without the marks: a workload that
    made a user namespace and a mount namespace in it ran a forbidden program unheld.  Under
    prevention tether's own filter refuses both, whatever the decision's seccomp."""
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells here"}} end')
    ran, out = ws.path("ran"), ws.path("how")
    os.chmod(ws.root, 0o755)
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", USERNS_EXEC, out,
                  "/usr/bin/dash", "-c", "echo ran > %s" % ran, timeout=30)
    assert not os.path.exists(ran), "the forbidden program ran: " + p.stderr
    eq(open(out).read(), "unshare 1", "unshare fails with EPERM")
    # nor into another process's namespaces: setns fails before it looks at its descriptor
    p = ws.tether("run", "--policy", pol, "--", PROBE, "try", "setns", timeout=30)
    eq(json.loads(p.stdout)["try"]["setns"], errno.EPERM, "setns: " + p.stderr)


def interpreter_of(path):
    """The PT_INTERP of a 64-bit little-endian ELF: the loader the kernel opens for it."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data,
                                                                 phoff + i * phentsize)
        if p_type == 3:
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    raise Skip("%s names no interpreter" % path)


# The workload: exec each PROGRAM in turn (separated by --), and write how each failed.
TRY_EXECS = r"""
import os, sys
out, rest = sys.argv[1], sys.argv[2:]
progs, cur = [], []
for a in rest:
    if a == "--":
        progs.append(cur); cur = []
    else:
        cur.append(a)
progs.append(cur)
got = []
for prog in progs:
    try:
        os.execv(prog[0], prog)
    except OSError as e:
        got.append(str(e.errno))
        open(out, "w").write(" ".join(got))
"""


@case
def the_dynamic_loader_run_as_a_program_is_refused(ws):
    """`ld.so PROGRAM` maps PROGRAM with mmap, no exec of it: a policy that allows the loader
    (as every policy must, for the interpreter of each dynamically linked program) let a
    forbidden program run through it.  tether tells an exec that starts (seen at the
    execve(2) itself) from the interpreter the kernel opens for it, and refuses a loader
    run as a program.  A program whose exec fails after its open (here: an interpreter that
    does not exist) leaves nothing behind that would pass the loader's direct exec next."""
    need_root()
    loader = interpreter_of("/usr/bin/dash")
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells here"}} end',
                      'on_drift = "log", exec_timeout_ms = 30000')
    ran, out = ws.path("ran"), ws.path("errno")
    broken = ws.path("broken")
    data = open("/bin/true", "rb").read()
    assert loader.encode() in data
    open(broken, "wb").write(data.replace(loader.encode(), loader[:-1].encode() + b"X", 1))
    os.chmod(broken, 0o755)
    os.chmod(ws.root, 0o755)
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", TRY_EXECS, out,
                  broken, "--", loader, "/usr/bin/dash", "-c", "echo ran > %s" % ran,
                  timeout=30)
    assert not os.path.exists(ran), "the forbidden program ran through the loader: " + p.stderr
    eq(open(out).read(), "%d %d" % (errno.ENOENT, errno.EPERM),
       "the broken program's exec fails (ENOENT), the loader's is refused (EPERM)")
    den = records(ws, "exec_denied")
    eq([d["path"] for d in den], [os.path.realpath(loader)], "the loader's exec was denied")
    assert "loader" in den[0]["reason"], den[0]
    # Nor as the interpreter a script names on its #! line: that runs as the program.
    script = ws.path("via-loader")
    with open(script, "w") as f:
        f.write("#!%s /usr/bin/dash\necho ran > %s\n" % (loader, ran))
    os.chmod(script, 0o755)
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", TRY_EXECS, out, script,
                  timeout=30)
    assert not os.path.exists(ran), "dash ran through a #! line naming the loader: " + p.stderr
    eq(open(out).read(), str(errno.EPERM), "the script's exec fails with EPERM")
    # The same loader as the interpreter of an allowed program still runs.
    p = ws.tether("run", "--policy", pol, "--", "/bin/bash", "-c", "/bin/true && echo ok",
                  timeout=30)
    eq((p.returncode, p.stdout.strip()), (0, "ok"), "a dynamically linked program: " + p.stderr)


def dash_denied_policy(ws):
    """Prevention that denies dash by its hash (and a file with no hash); on_drift "log", so
    that the workload goes on and says what happened."""
    import hashlib
    dash = hashlib.sha256(open("/usr/bin/dash", "rb").read()).hexdigest()
    return gate_policy(ws, 'if e.sha256 == nil or e.sha256 == "%s" then '
                           'return {allow = false, reasons = {"dash, or no hash"}} end' % dash,
                       'on_drift = "log", exec_timeout_ms = 30000')


def need_two_processors():
    if not {0, 1} <= os.sched_getaffinity(0):
        raise Skip("needs processors 0 and 1: the exec waits on one, the writer runs on the other")


# The workload: over and over, a child execs FILE (a copy of /bin/true), and a little later
# the parent rewrites FILE with dash, while tether is still judging the exec.
REWRITE = r"""
import errno, os, shutil, sys, time
f, ran = sys.argv[1], sys.argv[2]
dash = open("/usr/bin/dash", "rb").read()
for i in range(1, 41):
    shutil.copy("/bin/true", f)
    os.chmod(f, 0o755)
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(f, [f, "-c", "echo ran > %s" % ran])
        finally:
            os._exit(1)
    time.sleep(i * 0.0005)
    try:
        with open(f, "wb") as w:
            w.write(dash)
    except OSError as e:
        if e.errno != errno.ETXTBSY:
            raise
    os.waitpid(pid, 0)
"""


@case
def a_program_rewritten_while_it_is_judged_does_not_run(ws):
    """The kernel denies writes to a file it executes only after its open, which is where
    the exec is held: a workload rewrote its allowed copy of /bin/true with dash after
    tether had hashed it and before the kernel read it, and dash ran (the policy denies it
    by hash).  tether holds a read lease while it judges: a writer waits, and the exec is
    denied when one tried."""
    need_root()
    pol = dash_denied_policy(ws)
    ran = ws.path("ran")
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", REWRITE, ws.path("prog"),
                  ran, timeout=120)
    eq(p.returncode, 0, "the workload ran through: " + p.stderr)
    assert not os.path.exists(ran), "dash ran in place of the program that was judged"


# The workload: a child execs FILE (a copy of /bin/true) on processor 0, where another child
# spins.  Once the exec is held (its wait shows in /proc/PID/wchan), the child is made an idle
# task: when tether allows it, it waits for processor 0, and the parent, on processor 1,
# rewrites FILE with dash in the meantime.  Each round's outcome goes to OUT.
REWRITE_AFTER = r"""
import errno, json, os, shutil, signal, sys, time
f, ran, out = sys.argv[1], sys.argv[2], sys.argv[3]
dash = open("/usr/bin/dash", "rb").read()
os.sched_setaffinity(0, {1})
hog = os.fork()
if hog == 0:
    os.sched_setaffinity(0, {0})
    while True:
        pass
rounds = []
try:
    for i in range(20):
        shutil.copy("/bin/true", f)
        os.chmod(f, 0o755)
        err = f + ".errno"
        pid = os.fork()
        if pid == 0:
            os.sched_setaffinity(0, {0})
            try:
                os.execv(f, [f, "-c", "echo ran > %s" % ran])
            except OSError as e:
                open(err, "w").write(str(e.errno))
            os._exit(1)
        held, deadline = False, time.monotonic() + 10
        while time.monotonic() < deadline:
            if open("/proc/%d/wchan" % pid).read().startswith("fanotify"):
                if not held:
                    os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
                held = True
            elif held:
                break
        try:
            with open(f, "wb") as w:
                w.write(dash)
        except OSError as e:
            if e.errno != errno.ETXTBSY:
                raise
        st = os.waitpid(pid, 0)[1]
        # A child that tether killed (a writer waited on its exec) may leave err empty.
        text = open(err).read() if os.path.exists(err) else ""
        rounds.append({"held": held, "ran": os.path.exists(ran),
                       "errno": int(text) if text else None,
                       "killed": os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL})
        if os.path.exists(err):
            os.unlink(err)
finally:
    os.kill(hog, 9)
    open(out, "w").write(json.dumps(rounds))
"""


@case
def a_program_rewritten_after_it_is_allowed_does_not_run(ws):
    """The kernel denies writes to an exec's file only once the exec is past the open that
    tether holds.  A workload rewrote its allowed copy of /bin/true with dash after tether's
    answer, while the exec's thread waited for a processor, and dash ran (CI found it on a
    loaded machine; the workload here makes the wait happen every time).  The file now stays
    leased until its thread is past that open: the exec fails with ETXTBSY, as the kernel
    fails an exec of a file a writer holds."""
    need_root()
    need_two_processors()
    pol = dash_denied_policy(ws)
    ran, out = ws.path("ran"), ws.path("rounds")
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", REWRITE_AFTER,
                  ws.path("prog"), ran, out, timeout=300)
    eq(p.returncode, 0, "the workload ran through: " + p.stderr)
    rounds = json.load(open(out))
    if not any(r["held"] for r in rounds):
        raise Skip("/proc/PID/wchan never showed the exec held (no kallsyms?): the attack "
                   "cannot time its write")
    assert not os.path.exists(ran), "dash ran in place of the program that was allowed"
    # Each round's exec ran /bin/true (the write came too late), or failed as the kernel
    # fails an exec of a file open for writing, never EPERM, which would be a denial; or,
    # on a loaded machine, tether killed it because the writer waited on its exec (see
    # a_program_rewritten_after_a_long_wait_does_not_run).
    for r in rounds:
        assert r["errno"] in (None, errno.ETXTBSY), r
    assert any(r["errno"] == errno.ETXTBSY or r["killed"] for r in rounds), rounds


# The workload: as REWRITE_AFTER, but 32 spinners, stopped until the exec is held, then keep
# the idle child from processor 0 for seconds; the parent's write waits for tether's lease
# meanwhile, and a thread of the child's computes on processor 1.  Each round's outcome goes to OUT.
REWRITE_LATE = r"""
import errno, json, os, shutil, signal, sys, threading, time
f, ran, out = sys.argv[1], sys.argv[2], sys.argv[3]
dash = open("/usr/bin/dash", "rb").read()
os.sched_setaffinity(0, {1})
hogs, rounds = [], []
def spin_up():
    for _ in range(32):
        h = os.fork()
        if h == 0:
            os.sched_setaffinity(0, {0})
            os.kill(os.getpid(), signal.SIGSTOP)
            while True:
                pass
        hogs.append(h)
        os.waitpid(h, os.WUNTRACED)
def spin_down():
    for h in hogs:
        os.kill(h, signal.SIGKILL)
        os.waitpid(h, 0)
    hogs.clear()
try:
    for i in range(4):
        shutil.copy("/bin/true", f)
        os.chmod(f, 0o755)
        spin_up()
        pid = os.fork()
        if pid == 0:
            # A sibling thread runs in user space on processor 1 once the parent waits for
            # the lease: the process's user time grows, the exec's thread's does not.
            def sibling():
                os.sched_setaffinity(0, {1})
                time.sleep(0.3)
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    pass
            threading.Thread(target=sibling, daemon=True).start()
            os.sched_setaffinity(0, {0})
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            try:
                os.execv(f, [f, "-c", "echo ran > %s" % ran])
            finally:
                os._exit(1)
        held, deadline = False, time.monotonic() + 20
        while time.monotonic() < deadline:
            if open("/proc/%d/wchan" % pid).read().startswith("fanotify"):
                if not held:
                    for h in hogs:
                        os.kill(h, signal.SIGCONT)
                held = True
            elif held:
                break
        t = time.monotonic()
        try:
            with open(f, "wb") as w:
                w.write(dash)
        except OSError as e:
            if e.errno != errno.ETXTBSY:
                raise
        waited = time.monotonic() - t
        spin_down()
        st = os.waitpid(pid, 0)[1]
        rounds.append({"held": held, "waited": waited, "ran": os.path.exists(ran),
                       "killed": os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL})
        if rounds[-1]["ran"]:
            break
finally:
    spin_down()
    open(out, "w").write(json.dumps(rounds))
"""


@case
def a_program_rewritten_after_a_long_wait_does_not_run(ws):
    """The kernel takes a lease back from its holder fs.lease-break-time seconds after a
    writer asked for it.  A workload kept its allowed exec's thread from a processor for
    longer than that (an idle task behind spinners: no privilege needed), and its writer,
    let through, rewrote the file with dash before the exec read it.  A thread still short
    of its open when a writer has waited half that time now has its process killed.  A
    thread of the child's computes meanwhile: tether took the process's user time, which
    that made grow, for the exec's thread's, took it for past its open, and let the writer
    through at once; it reads the thread's own now.  The test lowers the node's lease-break-time to 4 s while it runs (global state, restored):
    45 s would make it slow, not different."""
    need_root()
    need_two_processors()
    pol = dash_denied_policy(ws)
    ran, out = ws.path("ran"), ws.path("rounds")
    knob = "/proc/sys/fs/lease-break-time"
    old = open(knob).read().strip()
    open(knob, "w").write("4")
    try:
        p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", REWRITE_LATE,
                      ws.path("prog"), ran, out, timeout=300)
    finally:
        open(knob, "w").write(old)
    eq(p.returncode, 0, "the workload ran through: " + p.stderr)
    rounds = json.load(open(out))
    assert not os.path.exists(ran), "dash ran in place of the program that was allowed"
    if not any(r["killed"] for r in rounds):
        raise Skip("32 spinners never kept the exec from a processor for 2 s: %s" % rounds)
    killed = [d for d in records(ws, "exec_denied") if "killed" in d["reason"]]
    eq(len(killed), sum(r["killed"] for r in rounds), "each killed exec is in the trail")
    eq({d["path"] for d in killed}, {os.path.realpath(ws.path("prog"))}, "the killed execs' file")


# The workload: a child's exec of FILE (not a program) fails with ENOEXEC, and the child then
# computes, without sleeping, until FLAG exists (30 s at most: exit 1).  The parent appends
# to FILE and then makes FLAG.
FAILED_THEN_COMPUTES = r"""
import os, sys, time
f, flag = sys.argv[1], sys.argv[2]
open(f, "w").write("this is not a program\n")
os.chmod(f, 0o755)
pid = os.fork()
if pid == 0:
    try:
        os.execv(f, [f])
    except OSError:
        pass
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if os.path.exists(flag):
            os._exit(0)
    os._exit(1)
time.sleep(0.3)
with open(f, "a") as w:
    w.write("regenerated\n")
open(flag, "w").close()
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@case
def a_failed_exec_does_not_keep_its_file_from_writers(ws):
    """An allowed file stays leased until its exec is past its open.  A thread whose exec
    failed after it (ENOEXEC) and which then computed without sleeping read as "running"
    all along, and kept a writer waiting until it slept (up to the lease break time, 45 s):
    a build step that regenerates a file stalled.  Its user time now says it is past."""
    need_root()
    pol = gate_policy(ws, "", 'on_drift = "log", exec_timeout_ms = 30000')
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", FAILED_THEN_COMPUTES,
                  ws.path("notelf"), ws.path("flag"), timeout=120)
    eq(p.returncode, 0, "the writer got through while the child computed: " + p.stderr)
    eq(open(ws.path("notelf")).read(), "this is not a program\nregenerated\n", "the file")


@case
def a_held_exec_killed_before_it_is_read_does_not_stop_the_monitor(ws):
    """A held exec whose process is killed is withdrawn from the queue: if that happened
    between the monitor's wakeup and its read, the read waited for an exec that never came
    (every exec waits on the monitor first), and the monitor answered nothing again.  The
    workload races that 1,500 times, then execs a forbidden program: it is still denied."""
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells"}} end',
                      'on_drift = "log", exec_timeout_ms = 30000')
    p = ws.tether("run", "--policy", pol, "--", PROBE, "killrace", "1500", "exec",
                  "/usr/bin/dash", "-c", "true", timeout=600)
    out = json.loads(p.stdout)
    assert out["killrace_held"] > 0, out
    eq(out.get("exec"), errno.EPERM, "the forbidden exec after the race: " + p.stderr)


# The workload: a write lease on its own program, which a child then execs (its exec waits
# for the lease's break, 45 s by default); meanwhile another child execs dash.
LEASED = r"""
import fcntl, os, shutil, signal, sys, time
f, out = sys.argv[1], sys.argv[2]
shutil.copy("/bin/true", f)
os.chmod(f, 0o755)
signal.signal(signal.SIGIO, signal.SIG_IGN)
fd = os.open(f, os.O_RDONLY)
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
if os.fork() == 0:
    os.execv(f, [f])
time.sleep(0.5)
pid = os.fork()
if pid == 0:
    try:
        os.execv("/usr/bin/dash", ["dash", "-c", "true"])
    except OSError as e:
        open(out, "w").write(str(e.errno))
    os._exit(0)
os.waitpid(pid, 0)
os._exit(0)
"""


@case
def a_lease_on_a_held_program_does_not_stall_the_monitor(ws):
    """The kernel opens a held file for tether when tether reads the event; the workload's
    write lease on its own program made that open wait for the lease break time (45 s) per
    exec, with the monitor answering nothing else.  The open does not wait now (the kernel
    denies that exec), and the next exec is judged at once."""
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells"}} end',
                      'on_drift = "log", exec_timeout_ms = 30000')
    out = ws.path("errno")
    ws.tether("run", "--policy", pol, "--", sys.executable, "-c", LEASED, ws.path("prog"), out,
              timeout=30)
    eq(open(out).read(), str(errno.EPERM), "dash's exec was judged, and denied")


# The workload: execs its program while a descriptor of its own still writes it, then again
# once it is closed.
BUSY = r"""
import os, shutil, sys
f, out = sys.argv[1], sys.argv[2]
shutil.copy("/bin/true", f)
os.chmod(f, 0o755)
w = os.open(f, os.O_WRONLY)
got = []
for attempt in (1, 2):
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(f, [f])
        except OSError as e:
            os._exit(e.errno)
    got.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    if attempt == 1:
        os.close(w)
open(out, "w").write(" ".join(map(str, got)))
"""


@case
def a_program_open_for_writing_is_refused_as_the_kernel_would(ws):
    """An exec of a file that is open for writing fails with ETXTBSY, which callers take
    for a moment's wait.  tether cannot judge such a file (it could change after); it
    refuses it with ETXTBSY too (EPERM before Linux 6.14), and that is no drift: the
    second try, once the writer closed, runs."""
    need_root()
    pol = gate_policy(ws, 'return {allow = true}', 'on_drift = "kill", exec_timeout_ms = 30000')
    out = ws.path("got")
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", BUSY, ws.path("prog"), out,
                  timeout=30)
    eq(p.returncode, 0, "no drift: " + p.stderr)
    first, second = open(out).read().split()
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    eq(int(first), errno.ETXTBSY if release >= (6, 14) else errno.EPERM, "the first exec")
    eq(second, "0", "the second, with the writer gone")
    assert "open for writing" in records(ws, "exec_denied")[0]["reason"]


QUEUE = "/proc/sys/fs/fanotify/max_queued_events"


@case
def a_storm_of_execs_past_the_kernels_queue_is_still_held(ws):
    """The kernel lets a permission event go unasked when its group's queue is full (16,384
    unread events by default): a workload that had that many execs waiting at once ran the
    next one unheld.  tether's groups have no queue limit (FAN_UNLIMITED_QUEUE); a held exec
    is a task, so the tasks a workload may have bound the queue.  The node's limit is read
    when a group is made: the test lowers it to 16 until the workload runs (no other group
    is made with a limit in the meantime: tether's have none), so that 200 threads are
    enough."""
    need_root()
    pol = gate_policy(ws, 'if e.path == "/usr/bin/dash" then '
                          'return {allow = false, reasons = {"no shells"}} end',
                      'on_drift = "log", exec_timeout_ms = 30000')
    ran, ready = ws.path("ran"), ws.path("ready")
    old = open(QUEUE).read()
    try:
        open(QUEUE, "w").write("16")
        proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "execstorm", "200",
                        "/usr/bin/dash", "-c", "echo ran > %s" % ran)
        wait_for(lambda: os.path.exists(ready) or proc.poll() is not None, timeout=30,
                 what="the workload")
    finally:
        open(QUEUE, "w").write(old)
    out, err = proc.communicate(timeout=300)
    assert not os.path.exists(ran), "a forbidden exec ran unheld: " + err
    eq((proc.returncode, json.loads(out)), (0, {"execstorm_eperm": 200}),
       "every exec was held and denied: " + err)
    eq(len(records(ws, "exec_denied")), 200, "each one audited")


def forbidden_program(ws):
    """The probe with one byte more, which a gate policy (on_drift "log") forbids by its
    hash: its path, and the policy's."""
    bytes_ = open(PROBE, "rb").read() + b"\0"
    prog = ws.path("forbidden")
    with open(prog, "wb") as f:
        f.write(bytes_)
    pol = gate_policy(ws, 'if e.sha256 == "%s" then return {allow = false, reasons = {"no"}} end'
                      % hashlib.sha256(bytes_).hexdigest(),
                      monitor='on_drift = "log", exec_timeout_ms = 30000')
    return prog, pol


def forbidden_on_own_tmpfs(ws, point):
    """A prevented run that execs a forbidden program (the probe with one byte more, told by
    its hash) from a tmpfs at point, mounted in a mount namespace of the test's own (the host
    never sees it); asserts the exec was held and denied."""
    prog = os.path.join(point, "forbidden")
    src, pol = forbidden_program(ws)
    out = ws.path("errno")
    script = ('mount -t tmpfs -o mode=0755 tmpfs "$1" && cp "$2" "$3" && chmod 755 "$3" && '
              'shift 3 && exec "$@"')
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", point, src, prog, TETHER, "run", "--policy", pol, "--",
                        sys.executable, "-c", TRY_EXEC, out, prog, "mark", ws.path("ran")],
                       env=ws.env, capture_output=True, text=True, timeout=60)
    eq(p.returncode, 0, "the run (stderr %r)" % p.stderr)
    assert not os.path.exists(ws.path("ran")), "the program on the tmpfs ran unjudged"
    eq(open(out).read(), "1", "its execve failed with EPERM")
    eq(len(records(ws, "exec_denied")), 1, "audited")


@case
def a_mount_whose_name_the_mount_table_escapes_is_marked(ws):
    """The mount table writes a space in a mount point as \\040: the gate marks the mount
    at the real name, not whatever a directory literally named with the escape holds (the
    workload's own mount, where the forbidden program is, would go unmarked)."""
    need_root()
    base = ws.path("mnt")
    point = os.path.join(base, "a b")
    os.makedirs(point)
    os.makedirs(os.path.join(base, "a\\040b"))
    forbidden_on_own_tmpfs(ws, point)


@case
def a_long_mount_point_is_marked_too(ws):
    """A mount point whose escaped name is longer than a path may be (spaces, written as
    \\040, four bytes each) is read whole and marked, not passed over."""
    need_root()
    point = os.path.join(ws.path("mnt"), *([" " * 200] * 6))
    os.makedirs(point)
    forbidden_on_own_tmpfs(ws, point)


@case
def a_descriptor_on_the_hosts_mounts_is_refused(ws):
    """A file or directory opened before the workload's mount namespace was made is on the
    host's mount, which no mark holds: an execveat(2) from it would not be judged (a root
    workload writes a program into its stdout's file, makes it executable and runs it).
    Such a descriptor kept across the exec stops the start; pipes and terminals do not."""
    need_root()
    pol = gate_policy(ws, "", monitor='on_drift = "log", exec_timeout_ms = 30000')
    ran = ws.path("ran")
    log = ws.path("out.log")
    with open(log, "w") as f:
        p = subprocess.run([TETHER, "run", "--policy", pol, "--", PROBE, "mark", ran],
                           env=ws.env, stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
    eq(p.returncode, 125, "stdout on a file (stderr %r)" % p.stderr)
    line = one_line(p.stderr)
    assert "descriptor 1" in line and "exec prevention" in line, line
    assert not os.path.exists(ran), "the workload started"
    fd = os.open(ws.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        p = subprocess.run([TETHER, "run", "--policy", pol, "--", PROBE, "mark", ran],
                           env=ws.env, capture_output=True, text=True, timeout=60,
                           pass_fds=(fd,))
    finally:
        os.close(fd)
    eq(p.returncode, 125, "a directory kept open (stderr %r)" % p.stderr)
    assert "descriptor %d" % fd in one_line(p.stderr), p.stderr
    assert not os.path.exists(ran), "the workload started"
    # With pipes only, it starts.
    p = ws.tether("run", "--policy", pol, "--", PROBE, "mark", ran, check_rc=0)
    assert os.path.exists(ran), "the workload did not start: " + p.stderr


@case
def a_mount_no_mark_can_be_made_on_runs_nothing(ws):
    """A FUSE mount of another user's, without allow_other: not even root may read it, so
    no mark can be made on it.  The gate makes it noexec in the workload's mount namespace,
    and the workload, run as that user, cannot run the program there (which no mark would
    have held)."""
    need_root()
    if not os.path.exists("/dev/fuse"):
        raise Skip("no /dev/fuse")
    os.chmod(ws.root, 0o755)
    point, out = ws.path("fuse"), ws.path("out")
    os.mkdir(point)
    os.mkdir(out, 0o777)
    os.chmod(out, 0o777)
    probe = ws.path("probe")
    subprocess.run(["cp", PROBE, probe], check=True)
    os.chmod(probe, 0o755)
    ran = os.path.join(out, "ran")
    pol = ws.policy('if input.exec ~= nil then return {allow = true} end\n'
                    'return {allow = true, confine = {user = {uid = 1000, gid = 1000}}, '
                    'monitor = {prevent_exec = true, on_drift = "log", exec_timeout_ms = 30000}}')
    server = os.path.join(os.path.dirname(os.path.abspath(__file__)), "minifuse.py")
    # The FUSE server and tether in a mount namespace of the test's own; the server goes
    # when tether is done.
    script = ('"$1" "$2" "$3" "$4" 1000 > "$5" & '
              'for i in $(seq 200); do grep -q mounted "$5" && break; sleep 0.05; done; '
              'shift 5; "$@"; rc=$?; umount -l "$MNT"; kill $! 2>/dev/null; exit $rc')
    env = dict(ws.env, MNT=point)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", sys.executable, server, point, probe, ws.path("mounted"),
                        TETHER, "run", "--policy", pol, "--", probe,
                        "exec", os.path.join(point, "prog"), "mark", ran],
                       env=env, capture_output=True, text=True, timeout=60)
    eq(p.returncode, 0, "the run (stderr %r)" % p.stderr)
    assert not os.path.exists(ran), "the program on the unmarkable mount ran unjudged"
    eq(json.loads(p.stdout), {"exec": errno.EACCES}, "its exec failed: the mount is noexec")


@case
def a_grant_that_reaches_past_the_marks_is_refused(ws):
    """CAP_SYS_ADMIN (mounts, namespaces, /proc/PID/map_files), CAP_SYS_PTRACE (another
    process's root), CAP_CHECKPOINT_RESTORE (map_files: a shared anonymous mapping is a file
    on the kernel's own mount, which execveat runs), and the kernel's code or a raw device
    (CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT, CAP_MKNOD) each reach a program no mark
    holds: a prevented workload granted one does not start."""
    need_root()
    ran = ws.path("ran")
    for cap in ("CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_CHECKPOINT_RESTORE", "CAP_SYS_MODULE",
                "CAP_SYS_RAWIO", "CAP_SYS_BOOT", "CAP_MKNOD"):
        pol = ws.policy('if input.exec ~= nil then return {allow = true} end\n'
                        'return {allow = true, confine = {capabilities = {"%s"}}, '
                        'monitor = {prevent_exec = true, on_drift = "log", '
                        'exec_timeout_ms = 30000}}' % cap, name="p-%s.lua" % cap)
        p = ws.tether("run", "--policy", pol, "--", PROBE, "mark", ran, check_rc=125)
        line = one_line(p.stderr)
        assert "prevent_exec" in line and cap in line, line
        assert not os.path.exists(ran), "the workload started with " + cap


@case
def a_working_directory_on_a_covered_mount_is_refused(ws):
    """A working directory kept on a mount that another covers (on the same point) is on a
    mount no mark holds, since no path reaches it to mark it: the workload does not start
    there, where it would run the programs of the covered mount unjudged."""
    need_root()
    prog, pol = forbidden_program(ws)
    point = ws.path("cv")
    os.mkdir(point)
    script = ('mount -t tmpfs tmpfs "$1" && cp "$2" "$1/forbidden" && cd "$1" && '
              'mount -t tmpfs tmpfs "$1" && shift 2 && exec "$@"')
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", point, prog, TETHER, "run", "--policy", pol, "--", PROBE,
                        "exec", "./forbidden", "mark", ws.path("ran")],
                       env=ws.env, capture_output=True, text=True, timeout=60)
    eq(p.returncode, 125, "the run (stderr %r)" % p.stderr)
    assert "working directory" in one_line(p.stderr), p.stderr
    assert not os.path.exists(ws.path("ran")), "the covered mount's program ran unjudged"


# A script that writes the forbidden program over itself, through its own /dev/fd/N, and runs
# that descriptor (execveat(N, "", AT_EMPTY_PATH)).
SELF_REWRITING_SCRIPT = r"""#!%s
import os, sys
n = int(sys.argv[0].rsplit("/", 1)[1])
w = os.open("/proc/self/fd/%%d" %% n, os.O_WRONLY | os.O_TRUNC)
os.write(w, open(sys.argv[1], "rb").read())
os.close(w)
try:
    os.execve(n, ["prog", "mark", sys.argv[2]], {})
except OSError as e:
    open(sys.argv[3], "w").write(str(e.errno))
""" % sys.executable

# A program that keeps its own file (/proc/self/exe, O_PATH), execs python, which writes the
# forbidden program into that file and runs it through the descriptor.
KEEP_SELF = r"""
import os, sys
fd = os.open("/proc/self/exe", os.O_PATH)
os.set_inheritable(fd, True)
os.execv(sys.argv[1], [sys.argv[1], "-c", sys.argv[2], str(fd)] + sys.argv[3:])
"""
REWRITE_KEPT = r"""
import os, sys
fd, prog, ran, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
w = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_TRUNC)
os.write(w, open(prog, "rb").read())
os.close(w)
try:
    os.execve(fd, ["prog", "mark", ran], {})
except OSError as e:
    open(out, "w").write(str(e.errno))
"""


@case
def the_launched_file_rewritten_and_run_again_is_judged(ws):
    """The workload's own file, as it was launched (its script's /dev/fd/N, its
    /proc/self/exe), is on the marked copy of its mount, not on the host's: a root workload
    that writes another program into it and runs it through that descriptor is held, and
    the program, which the policy forbids, never runs."""
    need_root()
    prog, pol = forbidden_program(ws)
    script = ws.write("self.py", SELF_REWRITING_SCRIPT)
    os.chmod(script, 0o755)
    ran, out = ws.path("ran"), ws.path("errno")
    ws.tether("run", "--policy", pol, "--", script, prog, ran, out, timeout=60)
    assert not os.path.exists(ran), "the rewritten script ran unjudged"
    eq(open(out).read(), "1", "its execveat failed with EPERM")
    python = ws.path("python")
    subprocess.run(["cp", sys.executable, python], check=True)
    os.unlink(out)
    ws.tether("run", "--policy", pol, "--", python, "-c", KEEP_SELF, sys.executable,
              REWRITE_KEPT, prog, ran, out, timeout=60)
    assert not os.path.exists(ran), "the rewritten program ran unjudged"
    eq(open(out).read(), "1", "its execveat failed with EPERM")
    eq(len(records(ws, "exec_denied")), 2, "both audited")


@case
def wrapper_mode_refuses_prevent_exec(ws):
    need_root()
    pol = ws.decision_policy({"allow": True, "monitor": {"prevent_exec": True}})
    b = ws.path("b")
    os.makedirs(b)
    open(os.path.join(b, "config.json"), "w").write(json.dumps(
        {"ociVersion": "1.0.2", "process": {"args": ["/x"], "cwd": "/"}, "root": {"path": "rootfs"}}))
    p = ws.tether("run", "--policy", pol, "--bundle", b, "--", "/bin/true", timeout=30)
    eq(p.returncode, 125, "refused: " + p.stderr)
    assert "prevent_exec" in p.stderr


if __name__ == "__main__":
    main()

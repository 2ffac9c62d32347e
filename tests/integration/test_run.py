"""tether run: allow, deny, every exit code, signals, orphans, the audit records it leaves."""
import json
import os
import signal
import subprocess
import sys
import time

from harness import (POLICIES, Skip, case, children_of, eq, main, one_line, wait_for)

ALLOW_ALL = os.path.join(POLICIES, "allow-all.lua")


@case
def allow_runs_command_and_audits(ws):
    p = ws.tether("run", "--policy", ALLOW_ALL, "--", "/bin/echo", "hello", check_rc=0)
    eq(p.stdout, "hello\n", "stdout")
    eq(p.stderr, "", "stderr")
    recs = ws.audit_records()
    eq([r["event"] for r in recs], ["decision", "exit"], "audit events")
    eq(recs[0]["allow"], True, "allow")
    eq(recs[0]["engine"], "lua", "engine")
    eq(recs[0]["workload"]["argv0"], "/bin/echo", "argv0")
    import hashlib
    eq(recs[0]["workload"]["exe_sha256"], hashlib.sha256(open("/bin/echo", "rb").read()).hexdigest(), "sha256")
    eq(recs[0]["host"]["machine_id"], open("/etc/machine-id").read().strip() or None, "machine_id")
    eq(recs[1]["status"], 0, "exit status")
    ws.tether("audit", "verify", ws.audit, check_rc=0)


@case
def deny_starts_nothing(ws):
    marker = ws.path("marker")
    pol = ws.policy('return {allow = false, reasons = {"not today", "not here"}}')
    p = ws.tether("run", "--policy", pol, "--", "sh", "-c", "touch " + marker, check_rc=77)
    eq(one_line(p.stderr), "tether: denied: not today; not here", "deny line")
    eq(p.stdout, "", "stdout")
    assert not os.path.exists(marker), "the denied workload ran"
    recs = ws.audit_records()
    eq([(r["event"], r["allow"], r["reasons"]) for r in recs],
       [("decision", False, ["not today", "not here"])], "audit")


@case
def anything_but_true_is_deny(ws):
    marker = ws.path("marker")
    for value in ['"true"', "1", "nil", "{}"]:
        pol = ws.policy("return {allow = %s}" % value)
        p = ws.tether("run", "--policy", pol, "--", "touch", marker, check_rc=77)
        assert "`allow`" in p.stderr, p.stderr
        assert not os.path.exists(marker)


@case
def default_policy_allows_root_owned(ws):
    ws.tether("run", "--", "true", check_rc=0)
    eq(ws.audit_records()[0]["policy"], "builtin:default", "policy source")


@case
def default_policy_denies_writable_or_foreign(ws):
    exe = ws.path("mytrue")
    with open("/bin/true", "rb") as src, open(exe, "wb") as dst:
        dst.write(src.read())
    os.chmod(exe, 0o777)
    p = ws.tether("run", "--", exe, check_rc=77)
    line = one_line(p.stderr)
    assert "group-writable" in line and "world-writable" in line, line
    os.chmod(exe, 0o755)
    os.chown(exe, 65534, 65534)
    p = ws.tether("run", "--", exe, check_rc=77)
    assert "owned by uid 65534, not root" in p.stderr, p.stderr
    os.chown(exe, 0, 0)
    ws.tether("run", "--", exe, check_rc=0)


@case
def exit_status_is_the_workload_s(ws):
    for code in (0, 1, 3, 42, 255):
        ws.tether("run", "--policy", ALLOW_ALL, "--", "sh", "-c", "exit %d" % code, check_rc=code)
    eq(ws.audit_records()[-1]["status"], 255, "audited status")


@case
def signal_death_is_128_plus_n(ws):
    ws.tether("run", "--policy", ALLOW_ALL, "--", "sh", "-c", "kill -KILL $$", check_rc=137)
    ws.tether("run", "--policy", ALLOW_ALL, "--", "sh", "-c", "kill -SEGV $$", check_rc=139)


def env_rc(args):
    return subprocess.run(["env", "--", *args], capture_output=True).returncode


@case
def exec_failures_match_env(ws):
    garbage = ws.write("garbage", "\x7fELF this is no executable\n", 0o755)
    noexec = ws.write("noexec", "#!/bin/sh\ntrue\n", 0o644)
    badinterp = ws.write("badinterp", "#!/nonexistent/interpreter\n", 0o755)
    os.mkdir(ws.path("adir"))
    os.mkfifo(ws.path("afifo"), 0o755)  # opened to be read, it would wait for a writer
    cases = {
        "not found": ["no-such-command-anywhere"],
        "not found by path": [ws.path("missing")],
        "no exec permission": [noexec],
        "a directory": [ws.path("adir")],
        "ENOEXEC": [garbage],
        "missing interpreter": [badinterp],
        "a FIFO": [ws.path("afifo")],
    }
    want = {"not found": 127, "not found by path": 127, "no exec permission": 126,
            "a directory": 126, "ENOEXEC": 126, "missing interpreter": 127, "a FIFO": 126}
    for name, args in cases.items():
        p = ws.tether("run", "--policy", ALLOW_ALL, "--", *args)
        eq(p.returncode, want[name], name)
        # glibc's execvp, under env, hands an ENOEXEC file to /bin/sh, whose "not found"
        # gives 127; tether runs no unmeasured interpreter, so it is 126 by env's own rule.
        if name != "ENOEXEC":
            eq(p.returncode, env_rc(args), name + " (as env)")
        line = one_line(p.stderr, name)
        assert line.startswith("tether: ") and os.path.basename(args[0]) in line, line


@case
def failure_before_exec_is_125(ws):
    marker = ws.path("marker")
    cmd = ["--", "touch", marker]
    p = ws.tether("run", "--policy", ws.path("nope.lua"), *cmd, check_rc=125)
    assert "nope.lua" in one_line(p.stderr), p.stderr
    bad = ws.write("bad.lua", "function decide(input)\n  return {allow = true\nend\n")
    p = ws.tether("run", "--policy", bad, *cmd, check_rc=125)
    assert "bad.lua:" in one_line(p.stderr), p.stderr
    p = ws.tether("run", "--policy", ALLOW_ALL, "--audit", "/proc/version", *cmd, check_rc=125)
    assert "audit" in one_line(p.stderr) and "not starting" in p.stderr, p.stderr
    p = ws.tether("run", check_rc=125)
    p = ws.tether("run", "--bogus", "true", check_rc=125)
    assert not os.path.exists(marker), "the workload ran although tether failed"


@case
def argv_env_stdio_pass_through(ws):
    env = dict(ws.env, TETHER_TEST_VAR="kept")
    p = ws.tether("run", "--policy", ALLOW_ALL, "--", "sh", "-c", 'echo "$0|$1|$TETHER_TEST_VAR"; cat',
                  "zero", "one", env=env, input="from stdin\n", check_rc=0)
    eq(p.stdout, "zero|one|kept\nfrom stdin\n", "stdout")
    # options after the command belong to the command
    p = ws.tether("run", "--policy", ALLOW_ALL, "echo", "--policy", "x", check_rc=0)
    eq(p.stdout, "--policy x\n", "stdout")


@case
def labels_reach_the_policy(ws):
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "labels": {"region": "eu-de"}}))
    pol = ws.policy('return {allow = input.host.labels.region == "eu-de" and '
                    'input.workload.labels.app == "web", reasons = {"labels"}}')
    ws.tether("run", "--policy", pol, "--label", "app=web", "--", "true", check_rc=0)
    ws.tether("run", "--policy", pol, "--label", "app=db", "--", "true", check_rc=77)
    p = ws.tether("run", "--policy", pol, "--label", "app", "--", "true", check_rc=125)
    assert "key=value" in one_line(p.stderr)
    p = ws.tether("run", "--policy", pol, "-l", "a=1", "-l", "a=2", "--", "true", check_rc=125)
    assert "twice" in one_line(p.stderr)


PY_TRAP = r"""
import os, signal, sys, time
out = sys.argv[1]
def note(sig, frame):
    with open(out, "a") as f:
        f.write(signal.Signals(sig).name + "\n")
    if sig == signal.SIGTERM:
        sys.exit(0)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
          signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
    signal.signal(s, note)
open(out + ".ready", "w").close()
while True:
    time.sleep(0.01)
"""


@case
def every_listed_signal_is_forwarded(ws):
    log = ws.path("signals")
    proc = ws.popen("run", "--policy", ALLOW_ALL, "--", sys.executable, "-c", PY_TRAP, log)
    try:
        wait_for(lambda: os.path.exists(log + ".ready"), what="the workload to start")
        names = ["SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGTERM"]
        for i, name in enumerate(names):
            proc.send_signal(getattr(signal, name))
            wait_for(lambda: os.path.exists(log) and len(open(log).read().split()) == i + 1,
                     what=name + " to arrive")
        eq(proc.wait(timeout=10), 0, "exit status after the SIGTERM handler exits 0")
        eq(open(log).read().split(), names, "signals received, in order")
    finally:
        proc.kill()


@case
def sigterm_to_tether_ends_workload_143(ws):
    proc = ws.popen("run", "--policy", ALLOW_ALL, "--", "sleep", "30")
    try:
        kids = wait_for(lambda: children_of(proc.pid), what="the workload")
        wait_for(lambda: open("/proc/%d/comm" % kids[0]).read().strip() == "sleep", what="exec")
        proc.send_signal(signal.SIGTERM)
        eq(proc.wait(timeout=10), 143, "exit status")
        assert not os.path.exists("/proc/%d" % kids[0]) or \
            open("/proc/%d/stat" % kids[0]).read().split()[2] in "ZX"
    finally:
        proc.kill()


PY_ORPHAN = r"""
import json, os, sys, time
r, w = os.pipe()
child = os.fork()
if child == 0:
    gc = os.fork()
    if gc == 0:
        os.close(r)
        time.sleep(0.3)   # by now the middle process is gone: we are an orphan
        ppid = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[1])
        os.write(w, str(ppid).encode())
        os._exit(0)
    os.write(w, (str(gc) + " ").encode())
    os._exit(0)
os.close(w)
os.waitpid(child, 0)
data = b""
while True:
    chunk = os.read(r, 100)
    if not chunk:
        break
    data += chunk
gc, ppid = (int(x) for x in data.split())
deadline = time.monotonic() + 5
state = "gone"
while time.monotonic() < deadline:
    try:
        state = open("/proc/%d/stat" % gc).read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # reaped between open and read
        state = "gone"
        break
    time.sleep(0.01)
print(json.dumps({"grandchild_ppid": ppid, "tether": os.getppid(), "final_state": state}))
"""


@case
def orphans_are_adopted_and_reaped(ws):
    p = ws.tether("run", "--policy", ALLOW_ALL, "--", sys.executable, "-c", PY_ORPHAN, check_rc=0)
    r = json.loads(p.stdout)
    eq(r["grandchild_ppid"], r["tether"], "the orphan's parent is tether (subreaper)")
    eq(r["final_state"], "gone", "the orphan was reaped, not left a zombie")


if __name__ == "__main__":
    main()

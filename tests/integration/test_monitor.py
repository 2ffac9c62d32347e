"""Drift monitoring: each drift source ends in the right action with the right audit record;
each action does what it says; permitted behaviour is never acted on."""
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from harness import PROBE, Skip, TETHER, case, children_of, eq, main, marked, wait_for
from opa_server import DataAPI

DRIFT_KILLED, RESTART_LIMIT = 78, 79


def config(ws, labels=None, **monitor):
    cfg = {"audit": {"path": ws.audit}, "labels": labels or {}, "monitor": monitor}
    ws.write("tether.json", json.dumps(cfg))


def monitored_policy(ws, monitor, deny_if="false", name="policy.lua"):
    """Allows at launch with this monitor block; in the monitor phase denies when the Lua
    expression deny_if holds (it sees `input` and `p`, each process)."""
    return ws.policy("""
local monitor = %s
if input.tether.phase == "monitor" then
  for _, p in ipairs(input.processes or {}) do
    if %s then return {allow = false, reasons = {"forbidden: " .. tostring(p.exe.path)}} end
  end
  if %s then return {allow = false, reasons = {"forbidden"}} end
end
return {allow = true, reasons = {"ok"}, monitor = monitor}""" % (
        monitor, deny_if.replace("input.", "input."), "false" if "p." in deny_if else deny_if),
        name)


def events(ws):
    return [r["event"] for r in ws.audit_records()]


def start(ws, pol, *args):
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", *args)
    return proc, ready


def killed_for(ws, proc, ready, act, reason):
    """Once the workload is ready, act(); the monitor must kill it for a drift whose reason
    names reason."""
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        act()
        eq(proc.wait(timeout=20), DRIFT_KILLED, "exit status")
    finally:
        proc.kill()
    drift = [r for r in ws.audit_records() if r["event"] == "drift"][0]
    assert reason in drift["reason"], drift


def watched_run(ws, on_drift):
    """A monitored probe whose policy watches watched.conf: (its tether, the file, the path
    it marks when ready)."""
    config(ws)
    watched = ws.write("watched.conf", "a=1\n")
    pol = monitored_policy(ws, '{on_drift = "%s", watch = {"%s"}}' % (on_drift, watched))
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    return proc, watched, ready


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


@case
def forbidden_exec_is_killed(ws):
    config(ws)
    pol = monitored_policy(ws, '{on_drift = "kill"}', 'p.exe.path == "/usr/bin/dash"')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "0.3",
                    "exec", "/bin/sh", "-c", "sleep 30")
    eq(proc.wait(timeout=20), DRIFT_KILLED, "exit status")
    ev = events(ws)
    assert "drift" in ev, ev
    drift = [r for r in ws.audit_records() if r["event"] == "drift"][0]
    assert "dash" in drift["reason"] and drift["action"] == "kill", drift
    deny = [r for r in ws.audit_records() if r["event"] == "decision" and not r["allow"]][0]
    eq(deny["phase"], "monitor", "the deny came from the monitor phase")


def launched_then_changed(ws, change, owner=0):
    """Launches a copy of the probe (owned by owner), then change(its path): the monitor
    must kill the workload because its executable changed on disk."""
    config(ws)
    exe = ws.path("probe")
    shutil.copy(PROBE, exe)
    if owner:
        os.chown(exe, owner, owner)
    pol = monitored_policy(ws, '{on_drift = "kill"}')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", exe, "ready", ready, "sleep", "30")
    killed_for(ws, proc, ready, lambda: change(exe), "changed on disk")


def replace_by(exe, make):
    make(exe + ".new")
    os.rename(exe + ".new", exe)


@case
def executable_replaced_on_disk(ws):
    launched_then_changed(ws, lambda exe: replace_by(exe, lambda p: shutil.copy("/bin/true", p)))


@case
def a_file_too_large_to_read_does_not_stall_the_monitor(ws):
    """The workload runs a program whose file was grown to 15 TiB (sparse: it costs nothing
    to make, and would take hours to hash).  It is not read: the monitor stays on watch,
    and a watched file edited next is acted on as at any other time."""
    config(ws)
    watched = ws.write("watched.conf", "a=1\n")
    exe, big = ws.path("probe"), ws.path("big")
    shutil.copy(PROBE, exe)
    shutil.copy(PROBE, big)
    os.truncate(big, 15 << 40)
    pol = monitored_policy(ws, '{on_drift = "kill", watch = {"%s"}}' % watched)
    ready = ws.path("ready")
    # The launched probe execs the big one, which signals ready and sleeps.
    proc = ws.popen("run", "--policy", pol, "--", exe, "exec", big, "ready", ready, "sleep", "30")

    def edit():
        time.sleep(0.5)  # the exec's look, with the big file in it, has been taken
        append(watched, "a=2\n")
    killed_for(ws, proc, ready, edit, "watched.conf")


@case
def many_processes_of_a_large_file_do_not_stall_the_monitor(ws):
    """64 processes run one program of 512 MiB that others may write, so that no hash of
    it is remembered: a look reads it once, not once a process, and a watched file edited
    next is acted on as at any other time.  (Kept light: it shares the machine with other
    tests, some of them timed.)"""
    config(ws)
    watched = ws.write("watched.conf", "a=1\n")
    big, ready = ws.path("big"), ws.path("ready")
    shutil.copy("/bin/sleep", big)
    os.truncate(big, 512 << 20)  # sleep, then a sparse tail: it still runs
    os.chmod(big, 0o777)
    pol = monitored_policy(ws, '{on_drift = "kill", watch = {"%s"}}' % watched)
    script = "for i in $(seq 64); do %s 600 & done; touch %s; wait" % (big, ready)
    proc = ws.popen("run", "--policy", pol, "--", "/bin/sh", "-c", script)

    def edit():
        time.sleep(1)  # the looks at the execs have begun
        append(watched, "a=2\n")
    killed_for(ws, proc, ready, edit, "watched.conf")


@case
def executable_grown_past_reading_is_a_change(ws):
    """The executable the workload was launched from is grown to 15 TiB on disk by its
    owner (nobody: the workload runs from a private copy, so the file is not busy): that is
    a change, acted on at once, without reading it."""
    if os.geteuid() != 0:
        raise Skip("needs root: the file's owner is the user nobody")
    launched_then_changed(ws, lambda exe: os.truncate(exe, 15 << 40), owner=65534)


@case
def executable_replaced_by_a_fifo_is_a_change(ws):
    """A FIFO renamed over the launched executable: opening it to read would wait for a
    writer that never comes.  It is not opened; it has changed, and that is acted on."""
    launched_then_changed(ws, lambda exe: replace_by(exe, os.mkfifo))


@case
def a_locked_audit_trail_delays_a_kill_by_seconds_only(ws):
    """The drift's record waits for the trail's lock, which someone else holds and keeps:
    a few seconds, and then the kill, with the record's failure said on stderr."""
    proc, watched, ready = watched_run(ws, "kill")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        with open(ws.audit) as held:  # the launch's records are in it
            fcntl.flock(held, fcntl.LOCK_EX)
            append(watched, "a=2\n")
            eq(proc.wait(timeout=20), DRIFT_KILLED, "exit status")
    finally:
        proc.kill()
    assert "locked by another process" in proc.stderr.read()


def inotify_watches(pid):
    """The inotify watches process pid holds, over all its inotify descriptors."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:inotify":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                n += sum(line.startswith("inotify wd:") for line in f)
        except FileNotFoundError:
            pass
    return n


@case
def files_renamed_over_a_watched_path_leave_no_watches_behind(ws):
    """Each file renamed over a watched path is watched from then on, and the one before
    it no more, even while another link keeps it: 50 renames do not leave 50 watches."""
    proc, watched, ready = watched_run(ws, "log")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        before = inotify_watches(proc.pid)
        for i in range(50):
            new = ws.write("new.conf", "a=%d\n" % (i + 1))
            os.link(new, ws.path("kept.%d" % i))  # another link keeps the old file alive
            os.rename(new, watched)
            time.sleep(0.05)  # each rename seen on its own, as a slow attacker's would be
        wait_for(lambda: sum(r["event"] == "drift" for r in ws.audit_records()) >= 1,
                 what="the drift records")
        time.sleep(0.5)  # every event read
        after = inotify_watches(proc.pid)
    finally:
        proc.kill()
    assert after <= before, "watches: %d before 50 renames, %d after" % (before, after)


@case
def node_label_change_in_the_configuration(ws):
    config(ws, labels={"region": "eu-de"})
    pol = monitored_policy(ws, '{on_drift = "kill"}', 'input.host.labels.region ~= "eu-de"')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        config(ws, labels={"region": "us-east"})
        eq(proc.wait(timeout=20), DRIFT_KILLED, "exit status")
    finally:
        proc.kill()
    ev = events(ws)
    assert ev.index("config_reloaded") < ev.index("drift"), ev


@case
def watched_file_edited(ws):
    proc, watched, ready = watched_run(ws, "kill")
    killed_for(ws, proc, ready, lambda: append(watched, "a=2\n"), "watched.conf")


@case
def ttl_expiry_asks_again(ws):
    config(ws)
    # No interval: only the ttl makes tether ask again, and the monitor phase denies.
    pol = ws.policy('if input.tether.phase == "monitor" then '
                    'return {allow = false, reasons = {"key expired and not renewed"}} end '
                    'return {allow = true, ttl_s = 1}')
    t0 = time.monotonic()
    p = ws.tether("run", "--policy", pol, "--", PROBE, "sleep", "30", timeout=30)
    eq(p.returncode, DRIFT_KILLED, "exit status")
    assert 0.9 < time.monotonic() - t0 < 10, "asked again at the ttl"
    ev = events(ws)
    assert ev.index("ttl_expired") < ev.index("drift"), ev


@case
def an_opa_that_stops_accepting_is_an_outage_not_a_deny(ws):
    """OPA's port still listening but never accepting (a hung or draining server, or one
    caught between its listener and its stop): nothing is sent, and the monitor counts it as
    OPA unreachable, within the grace period, not as a deny that kills at once."""
    srv = DataAPI().start()
    port = int(srv.url.rsplit(":", 1)[1])
    cfg = {"audit": {"path": ws.audit}, "monitor": {"fail_grace_s": 2},
           "opa": {"url": srv.url, "path": "tether/monitored", "connect_timeout_ms": 200}}
    ws.write("tether.json", json.dumps(cfg))
    ready = ws.path("ready")
    proc = ws.popen("run", "--", PROBE, "ready", ready, "sleep", "30")
    hung = socket.socket()
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        time.sleep(0.3)
        assert proc.poll() is None, "killed while OPA answered: %r" % ws.audit_records()
        # The grace may begin during the stop (a look then finds nobody at all).
        t_down = time.monotonic()
        srv.stop()
        hung.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hung.bind(("127.0.0.1", port))
        hung.listen(64)
        eq(proc.wait(timeout=30), DRIFT_KILLED, "exit status")
        assert time.monotonic() - t_down >= 2.0, \
            "killed before the grace period ended: %r" % ws.audit_records()
    finally:
        proc.kill()
        hung.close()
    recs = ws.audit_records()
    ev = [r["event"] for r in recs]
    assert ev.index("policy_unreachable") < ev.index("drift"), ev
    # (A look between the stop and the new listener finds no server at all: the grace may
    # begin there.  The deny that ends it is the hung port's.)
    deny = [r for r in recs if r["event"] == "decision" and not r["allow"]][-1]
    assert "nothing sent: the server did not accept" in deny["reasons"][0], deny


@case
def opa_down_past_the_grace_period(ws):
    srv = DataAPI().start()
    cfg = {"audit": {"path": ws.audit}, "monitor": {"fail_grace_s": 1},
           "opa": {"url": srv.url, "path": "tether/monitored", "connect_timeout_ms": 200}}
    ws.write("tether.json", json.dumps(cfg))
    ready = ws.path("ready")
    proc = ws.popen("run", "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        time.sleep(0.3)
        assert proc.poll() is None, "killed while OPA answered"
        # OPA is unreachable from the moment its stop begins (a look during it gets no
        # answer), so the grace period is counted from then.
        t_down = time.monotonic()
        srv.stop()
        eq(proc.wait(timeout=20), DRIFT_KILLED, "exit status")
        assert time.monotonic() - t_down >= 1.0, "killed before the grace period ended"
    finally:
        proc.kill()
    ev = events(ws)
    assert ev.index("policy_unreachable") < ev.index("drift"), ev


@case
def kill_escalates_to_sigkill(ws):
    config(ws, grace_s=1)
    pol = monitored_policy(ws, '{on_drift = "kill", interval_ms = 100}',
                           'input.workload ~= nil')
    t0 = time.monotonic()
    p = ws.tether("run", "--policy", pol, "--", PROBE, "ignore-term", "sleep", "30", timeout=30)
    eq(p.returncode, DRIFT_KILLED, "exit status")
    assert time.monotonic() - t0 >= 1.0, "SIGKILL came before the grace period"
    killed = [r for r in ws.audit_records() if r["event"] == "killed"]
    eq([r["signal"] for r in killed], ["SIGKILL"], "escalation recorded")


STUBBORN = r"""
import os, signal, subprocess, sys, time
env = dict(os.environ, TETHER_TEST_MARK=sys.argv[2])
child = subprocess.Popen([sys.argv[1], "ignore-term", "sleep", "60"], env=env)
time.sleep(0.3)
os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 30"])
"""


@case
def kill_takes_the_whole_tree(ws):
    config(ws, grace_s=30)
    pol = monitored_policy(ws, '{on_drift = "kill"}', 'p.exe.path == "/usr/bin/dash"')
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c", STUBBORN, PROBE, ws.root,
                  timeout=20)
    eq(p.returncode, DRIFT_KILLED, "exit status")
    wait_for(lambda: not marked(ws.root), timeout=5,
             what="the child that ignores SIGTERM to be gone")


COUNTER = r"""
import sys, time
n = 0
while True:
    n += 1
    with open(sys.argv[1], "w") as f:
        f.write(str(n))
    time.sleep(0.02)
"""


@case
def stop_and_thaw(ws):
    config(ws, labels={"mode": "run"})
    pol = monitored_policy(ws, '{on_drift = "stop"}', 'input.host.labels.mode == "stop"')
    counter = ws.path("counter")
    proc = ws.popen("run", "--policy", pol, "--", sys.executable, "-c", COUNTER, counter)
    read = lambda: int(open(counter).read() or 0)
    try:
        wait_for(lambda: os.path.exists(counter) and read() > 3, what="the counter")
        config(ws, labels={"mode": "stop"})
        wait_for(lambda: "stopped" in events(ws), what="the stop")
        time.sleep(0.1)
        frozen_at = read()
        time.sleep(0.5)
        eq(read(), frozen_at, "the workload is frozen")
        config(ws, labels={"mode": "run"})
        wait_for(lambda: "thawed" in events(ws), what="the thaw")
        wait_for(lambda: read() > frozen_at + 3, what="the counter to move again")
        proc.send_signal(signal.SIGTERM)
        eq(proc.wait(timeout=10), 143, "the thawed workload still takes signals")
    finally:
        proc.kill()


@case
def restart_up_to_the_limit(ws):
    config(ws, restart_max=2, restart_backoff_ms=100)
    pol = monitored_policy(ws, '{on_drift = "restart"}', 'p.exe.path == "/usr/bin/dash"')
    p = ws.tether("run", "--policy", pol, "--", PROBE, "sleep", "0.2", "exec", "/bin/sh", "-c",
                  "sleep 30", timeout=60)
    eq(p.returncode, RESTART_LIMIT, "exit status")
    ev = events(ws)
    eq(ev.count("restart"), 2, "restarts")
    eq(ev.count("drift"), 3, "drifts")
    eq(ev[-2:], ["restart_limit", "exit"], "gave up, on record")
    eq([r["phase"] for r in ws.audit_records() if r["event"] == "decision" and r["allow"]
        and r["phase"] == "launch"], ["launch"] * 3, "each restart was a full gated launch")


@case
def permitted_behaviour_is_never_acted_on(ws):
    config(ws, heartbeat_s=1)
    pol = monitored_policy(ws, '{on_drift = "kill", interval_ms = 20}',
                           'p.exe.path == "/usr/bin/dash"')
    p = ws.tether("run", "--policy", pol, "--", sys.executable, "-c",
                  "import time, subprocess\n"
                  "for i in range(6):\n"
                  "    subprocess.run(['/bin/true']); time.sleep(0.5)\n", timeout=30)
    eq(p.returncode, 0, "ended on its own: " + p.stderr)
    ev = events(ws)
    assert "drift" not in ev and "stopped" not in ev, ev
    assert ev.count("heartbeat") >= 2, "the heartbeat shows the monitor alive: %s" % ev
    monitor_decisions = [r for r in ws.audit_records()
                         if r["event"] == "decision" and r["phase"] == "monitor"]
    assert all(r["allow"] for r in monitor_decisions) and monitor_decisions, monitor_decisions


@case
def status_lists_supervised_workloads(ws):
    config(ws)
    pol = monitored_policy(ws, '{on_drift = "log", interval_ms = 100}')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        time.sleep(0.3)
        mine = lambda: [s for s in json.loads(ws.tether("status", "--json", check_rc=0).stdout)
                        if s["tether_pid"] == proc.pid]
        # The entry is written at the start, and again with the first monitor-phase decision.
        s = wait_for(lambda: [s for s in mine() if s["allow"] is not None],
                     what="the status entry with a decision")[0]
        eq((s["state"], s["allow"], s["monitored"], s["argv"][0]),
           ("running", True, True, PROBE), "status")
        table = ws.tether("status", check_rc=0).stdout
        line = [l for l in table.splitlines() if l.startswith(str(proc.pid))]
        assert line and "running" in line[0] and "allow" in line[0], table
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        eq(mine(), [], "gone once the run ended")
    finally:
        proc.kill()


SCOPE_POLICY = """
if input.tether.phase ~= "monitor" then
  return {allow = true, monitor = {interval_ms = %d, on_drift = "kill"}}
end
local n, bad = 0, false
for _, p in ipairs(input.processes) do
  n = n + 1
  if p.exe.path == "%s" then bad = true end
end
if bad or (input.processes_scope == "tree" and n >= %d) then
  return {allow = false, reasons = {input.processes_scope .. " " .. n}}
end
return {allow = true}"""

SLEEPERS = 30


def scope_run(ws, interval_ms, then):
    """A tree of SLEEPERS sleepers and its shell, which then runs `then`; the deny that
    killed it: (its trigger, the scope and number of processes the policy saw)."""
    forbidden = ws.path("forbidden")
    shutil.copy("/usr/bin/sleep", forbidden)
    config(ws)
    pol = ws.policy(SCOPE_POLICY % (interval_ms, forbidden, SLEEPERS + 1), "scope.lua")
    # The first look at the whole tree is made before the sleepers start (every look is a
    # whole one until then): on a loaded machine the first exec's look may come late, and
    # see them all.
    script = ('sleep 0.8; i=0; while [ $i -lt %d ]; do sleep 60 & i=$((i+1)); done; sleep 1.5; '
              '/bin/true; sleep 0.5; %s' % (SLEEPERS, then.replace("FORBIDDEN", forbidden)))
    proc = ws.popen("run", "--policy", pol, "--", "/bin/sh", "-c", script)
    eq(proc.wait(timeout=60), DRIFT_KILLED, "killed")
    deny = [r for r in ws.audit_records() if r["event"] == "decision" and not r["allow"]][0]
    scope, n = deny["reasons"][0].split()
    return deny["trigger"], scope, int(n)


@case
def an_exec_look_judges_what_changed_and_the_interval_the_tree(ws):
    """A look that an exec triggers measures and judges the processes with an event since
    the last look, so that its cost does not grow with the tree; the look on the interval
    judges the whole tree, where a rule over all processes belongs."""
    trigger, scope, n = scope_run(ws, 60000, "exec FORBIDDEN 30")
    eq((trigger, scope), ("exec in the workload's tree", "changed"), "the exec's look")
    assert n <= 3, "the exec's look measured %d processes of a tree of %d" % (n, SLEEPERS + 1)
    os.unlink(ws.audit)
    trigger, scope, n = scope_run(ws, 500, "sleep 30")
    eq((trigger, scope), ("interval", "tree"), "the interval's look")
    assert n >= SLEEPERS + 1, "the interval's look saw %d processes" % n


@case
def an_exec_storm_beside_the_workload_leaves_the_exec_look_to_what_changed(ws):
    """The process connector reports the whole host's events, and the look an exec triggers
    measures those of its processes in the workload's tree: a host that runs thousands of
    processes a second beside it (here a shell running /bin/true in a loop) must not make
    that look a whole one.  (Events the kernel drops, where the monitor cannot keep up, do:
    one loop leaves it the time.)"""
    storm = [subprocess.Popen(["/bin/sh", "-c", "while :; do /bin/true; done"])]
    try:
        trigger, scope, n = scope_run(ws, 60000, "exec FORBIDDEN 30")
    finally:
        for p in storm:
            p.kill()
            p.wait()
    eq((trigger, scope), ("exec in the workload's tree", "changed"), "the exec's look")
    assert n <= 3, "the exec's look measured %d processes of a tree of %d" % (n, SLEEPERS + 1)


@case
def a_process_whose_main_thread_ended_is_still_seen(ws):
    """A program whose main thread has ended (pthread_exit) while another runs on has no
    /proc/PID/exe; the look finds its program through a live thread's link."""
    forbidden = ws.path("forbidden")
    shutil.copy(PROBE, forbidden)
    config(ws)
    # Judged by the interval's look only, when the process has long been headless.
    pol = ws.policy("""
if input.tether.phase ~= "monitor" then
  return {allow = true, monitor = {interval_ms = 300, on_drift = "kill"}}
end
if input.processes_scope ~= "tree" then return {allow = true} end
for _, p in ipairs(input.processes) do
  if p.exe.path == "%s" then return {allow = false, reasons = {"headless " .. p.exe.sha256}} end
end
return {allow = true}""" % forbidden, "headless.lua")
    proc = ws.popen("run", "--policy", pol, "--", "/bin/sh", "-c",
                    "%s headless 30 & wait" % forbidden)
    eq(proc.wait(timeout=30), DRIFT_KILLED, "killed")
    deny = [r for r in ws.audit_records() if r["event"] == "decision" and not r["allow"]][0]
    import hashlib
    eq(deny["reasons"], ["headless " + hashlib.sha256(open(PROBE, "rb").read()).hexdigest()],
       "seen, path and hash")


if __name__ == "__main__":
    main()

"""systemd hosts (doc/supervision.md): where systemd owns the cgroup hierarchy, a monitored
workload's cgroup is a transient scope that tether asks systemd for over D-Bus; without
one, tether falls back to no cgroup.

These machines run no systemd.  Each case starts a bus of its own (dbus-daemon with a
configuration of the test's) and fake_systemd.py on it, which answers StartTransientUnit
as systemd does and makes the scope's cgroup in a directory of the test's own in the
cgroup2 hierarchy; tether is pointed at that bus by DBUS_SYSTEM_BUS_ADDRESS and told that
systemd manages the host by TETHER_SYSTEMD_DIR.  systemd itself is not run here."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

from harness import Skip, TETHER, case, eq, main, one_line, wait_for

DRIFT_KILLED = 78
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_systemd.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-dbus and python3-gi live

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""

# The workload: says which cgroup it sees itself in and its pid, then counts.
WORKLOAD = r"""
import os, sys, time
out = sys.argv[1]
with open(out + ".cgroup", "w") as f:
    f.write(open("/proc/self/cgroup").read())
n = 0
while True:
    n += 1
    with open(out, "w") as f:
        f.write(str(n))
    time.sleep(0.02)
"""


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                return left.split()[4]
    return None


def need():
    if os.geteuid() != 0:
        raise Skip("needs root: cgroups made and entered for the fake systemd")
    if shutil.which("dbus-daemon") is None:
        raise Skip("no dbus-daemon (package dbus-daemon)")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import dbus, dbus.service, gi.repository.GLib"],
                           capture_output=True)
    if probe.returncode != 0:
        raise Skip("%s has no dbus or gi (packages python3-dbus, python3-gi)" % SYSTEM_PYTHON)
    mnt = cgroup2_mount()
    if mnt is None or not os.access(mnt, os.W_OK):
        raise Skip("no writable cgroup2 hierarchy")
    return mnt


class FakeSystemd:
    """A private bus, the fake manager on it (mode as fake_systemd.py takes it, or None for
    no manager and no bus at all), and a cgroup directory of the test's own."""

    def __init__(self, ws, mode):
        mnt = need()
        self.ws = ws
        self.root = os.path.join(mnt, "tether-test-systemd-%s" % uuid.uuid4().hex[:12])
        self.rel = self.root[len(mnt):]
        self.log = ws.path("manager.jsonl")
        self.marker = ws.path("run-systemd-system")
        os.mkdir(self.marker)
        self.socket = ws.path("bus")
        self.procs = []
        self.env = dict(ws.env, TETHER_SYSTEMD_DIR=self.marker,
                        DBUS_SYSTEM_BUS_ADDRESS="unix:path=" + self.socket)
        os.mkdir(self.root)
        if mode is None:
            return  # no bus: nothing listens at the address
        cfg = ws.write("bus.conf", BUS_CONFIG % self.socket)
        daemon = subprocess.Popen(["dbus-daemon", "--config-file=" + cfg, "--nofork",
                                   "--print-address=1"], stdout=subprocess.PIPE, text=True)
        self.procs.append(daemon)
        address = daemon.stdout.readline().strip()
        if not address:
            raise AssertionError("dbus-daemon did not start")
        ready = ws.path("manager-ready")
        self.procs.append(subprocess.Popen([SYSTEM_PYTHON, FAKE, address, self.root, mode,
                                            self.log, ready]))
        wait_for(lambda: os.path.exists(ready), what="the fake manager on the bus")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            p.terminate()
            p.wait(timeout=10)
        # What the scopes hold goes, then the directories, deepest first.
        for top, dirs, _ in os.walk(self.root, topdown=False):
            try:
                with open(os.path.join(top, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
            for _ in range(100):
                try:
                    os.rmdir(top)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)

    def calls(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def scope_dir(self, unit, slice_="system.slice"):
        return os.path.join(self.root, slice_, unit)


def config(ws, **monitor):
    cfg = {"audit": {"path": ws.audit}, "labels": {"mode": ws.mode}, "monitor": monitor}
    ws.write("tether.json", json.dumps(cfg))


def set_mode(ws, mode, **monitor):
    ws.mode = mode
    config(ws, **monitor)


def policy(ws, on_drift):
    return ws.policy("""
if input.tether.phase == "monitor" and input.host.labels.mode == "drift" then
  return {allow = false, reasons = {"drift"}}
end
return {allow = true, monitor = {interval_ms = 100, on_drift = "%s"}}""" % on_drift)


def events(ws):
    return [r["event"] for r in ws.audit_records()]


def cgroup_of(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return None


def init_of(proc):
    """tether's child: the workload's init."""
    def first():
        try:
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return None
        for k in kids:
            try:
                with open("/proc/%d/comm" % k) as f:
                    if f.read().strip() == "tether-init":
                        return k
            except FileNotFoundError:
                pass
        return None
    return wait_for(first, what="the workload's init")


def state_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def start(ws, sd, on_drift, **monitor):
    set_mode(ws, "run", **monitor)
    pol = policy(ws, on_drift)
    counter = ws.path("counter")
    # Debug lines say why there is no scope; a file holds them (a pipe could fill up).
    with open(ws.path("stderr"), "w") as err:
        proc = subprocess.Popen([TETHER, "run", "--policy", pol, "--", sys.executable, "-c",
                                 WORKLOAD, counter], env=dict(sd.env, TETHER_LOG="debug"),
                                cwd=ws.root, stdout=subprocess.DEVNULL, stderr=err)
    read = lambda: int(open(counter).read() or 0)
    wait_for(lambda: os.path.exists(counter) and os.path.exists(counter + ".cgroup")
             and read() > 2, timeout=20, what="the workload to run")
    return proc, read, counter


def workload_pid(init):
    with open("/proc/%d/task/%d/children" % (init, init)) as f:
        return int(f.read().split()[0])


@case
def scope_holds_the_init_and_stop_freezes_it(ws):
    with FakeSystemd(ws, "ok") as sd:
        proc, read, counter = start(ws, sd, "stop")
        try:
            init = init_of(proc)
            unit = "tether-%d-0.scope" % proc.pid
            # What was asked: the call runc's and podman's drivers make, for our init only.
            calls = sd.calls()
            eq(len(calls), 1, "StartTransientUnit calls")
            c = calls[0]
            eq((c["name"], c["mode"], c["aux"]), (unit, "fail", []), "name, mode, aux")
            eq(c["properties"]["PIDs"], [init], "PIDs: the init alone")
            eq(c["properties"]["Delegate"], True, "Delegate")
            eq(c["property_order"], ["Description", "Delegate", "CollectMode", "PIDs"],
               "properties (no Slice unless configured)")
            # The init and the workload are in the scope, and the workload sees it as its
            # cgroup namespace's root: the init made that namespace after the move.
            scope = sd.scope_dir(unit)
            eq(cgroup_of(init), sd.rel + "/system.slice/" + unit, "the init's cgroup")
            wl = workload_pid(init)
            members = [int(x) for x in open(os.path.join(scope, "cgroup.procs")).read().split()]
            assert init in members and wl in members, (members, init, wl)
            eq(open(counter + ".cgroup").read().strip().split("\n")[-1], "0::/",
               "the workload's view of its cgroup")
            # The status file names the scope as the workload's cgroup.
            status = json.load(open("/run/tether/%d.json" % proc.pid))
            eq(status["cgroup"], scope, "status cgroup")
            # stop freezes the scope (the cgroup freezer, not SIGSTOP).
            set_mode(ws, "drift")
            wait_for(lambda: "stopped" in events(ws), what="the stop")
            wait_for(lambda: "frozen 1" in open(os.path.join(scope, "cgroup.events")).read(),
                     what="the scope to be frozen")
            assert state_of(wl) != "T", "frozen by the freezer, not stopped by SIGSTOP"
            frozen_at = read()
            time.sleep(0.4)
            eq(read(), frozen_at, "the workload is frozen")
            set_mode(ws, "run")
            wait_for(lambda: "thawed" in events(ws), what="the thaw")
            wait_for(lambda: read() > frozen_at + 2, what="the counter to move again")
            proc.send_signal(signal.SIGTERM)
            eq(proc.wait(timeout=15), 143, "the workload ended by the forwarded SIGTERM")
            # systemd's to remove, not tether's: the (fake's) scope is still there, empty.
            assert os.path.isdir(scope), "tether removed systemd's scope"
            wait_for(lambda: open(os.path.join(scope, "cgroup.procs")).read() == "",
                     what="the scope to be empty")
        finally:
            proc.kill()
            proc.wait()


STUBBORN = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(60)
"""


@case
def drift_kill_empties_the_scope_in_the_configured_slice(ws):
    with FakeSystemd(ws, "ok") as sd:
        set_mode(ws, "run", grace_s=1, systemd_slice="tether-test.slice")
        pol = policy(ws, "kill")
        pidfile = ws.path("child")
        proc = subprocess.Popen([TETHER, "run", "--policy", pol, "--", sys.executable, "-c",
                                 STUBBORN, pidfile], env=sd.env, cwd=ws.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read(), timeout=20,
                     what="the workload's child")
            unit = "tether-%d-0.scope" % proc.pid
            eq(sd.calls()[0]["properties"].get("Slice"), "tether-test.slice", "Slice")
            scope = sd.scope_dir(unit, "tether-test.slice")
            members = [int(x) for x in open(os.path.join(scope, "cgroup.procs")).read().split()]
            eq(len(members), 3, "init, workload and its child in the scope: %s" % members)
            set_mode(ws, "drift", grace_s=1, systemd_slice="tether-test.slice")
            eq(proc.wait(timeout=20), DRIFT_KILLED, "exit status")
            killed = [r for r in ws.audit_records() if r["event"] == "killed"]
            eq([r["signal"] for r in killed], ["SIGKILL"], "SIGTERM ignored, then SIGKILL")
            wait_for(lambda: open(os.path.join(scope, "cgroup.procs")).read() == "",
                     what="the scope to be empty")
            for pid in members:
                assert not os.path.exists("/proc/%d" % pid) or state_of(pid) in "ZX", pid
        finally:
            proc.kill()
            proc.wait()


@case
def each_restart_gets_a_new_scope(ws):
    with FakeSystemd(ws, "ok") as sd:
        set_mode(ws, "drift", restart_max=1, restart_backoff_ms=100, grace_s=1)
        pol = policy(ws, "restart")
        p = subprocess.run([TETHER, "run", "--policy", pol, "--", "/bin/sleep", "30"],
                           env=sd.env, cwd=ws.root, capture_output=True, text=True, timeout=60)
        eq(p.returncode, 79, "restart limit: " + p.stderr)
        calls = sd.calls()
        names = [c["name"] for c in calls]
        eq(len(names), 2, "a scope for the start and one for the restart: %s" % names)
        prefix = names[0][:-len("0.scope")]
        eq(names, [prefix + "0.scope", prefix + "1.scope"], "a new unit name each start")
        assert calls[0]["properties"]["PIDs"] != calls[1]["properties"]["PIDs"], calls
        for name in names:
            eq(open(os.path.join(sd.scope_dir(name), "cgroup.procs")).read(), "",
               "%s is empty" % name)


@case
def no_job_signal_the_cgroup_is_polled(ws):
    with FakeSystemd(ws, "nosignal") as sd:
        proc, _, _ = start(ws, sd, "stop")
        try:
            init = init_of(proc)
            unit = "tether-%d-0.scope" % proc.pid
            eq(cgroup_of(init), sd.rel + "/system.slice/" + unit, "the init's cgroup")
            status = json.load(open("/run/tether/%d.json" % proc.pid))
            eq(status["cgroup"], sd.scope_dir(unit), "the scope is the workload's cgroup")
        finally:
            proc.kill()
            proc.wait()


@case
def tether_killed_the_scope_empties_and_is_left_to_systemd(ws):
    with FakeSystemd(ws, "ok") as sd:
        proc, _, _ = start(ws, sd, "log")
        try:
            init = init_of(proc)
            wl = workload_pid(init)
            scope = sd.scope_dir("tether-%d-0.scope" % proc.pid)
            status_file = "/run/tether/%d.json" % proc.pid
            wait_for(lambda: os.path.exists(status_file), what="the status file")
            proc.kill()
            proc.wait()
            # The init dies with tether, and its pid namespace with it: the scope empties.
            wait_for(lambda: open(os.path.join(scope, "cgroup.procs")).read() == "",
                     what="the scope to be empty")
            assert not os.path.exists("/proc/%d" % wl) or state_of(wl) in "ZX", "workload"
            subprocess.run([TETHER, "status"], env=sd.env, cwd=ws.root, capture_output=True,
                           timeout=30)
            assert not os.path.exists(status_file), "the stale status file is swept"
            assert os.path.isdir(scope), "tether status removed systemd's scope"
        finally:
            proc.kill()
            proc.wait()


def assert_fallback(ws, sd, why):
    """The workload runs with no cgroup, and stop is SIGSTOP."""
    proc, read, counter = start(ws, sd, "stop")
    try:
        init = init_of(proc)
        eq(cgroup_of(init), cgroup_of(proc.pid), "the init stays in tether's cgroup")
        status = json.load(open("/run/tether/%d.json" % proc.pid))
        eq(status["cgroup"], None, "no cgroup for the workload")
        wl = workload_pid(init)
        set_mode(ws, "drift")
        wait_for(lambda: "stopped" in events(ws), what="the stop")
        wait_for(lambda: state_of(wl) == "T", what="SIGSTOP")
        set_mode(ws, "run")
        wait_for(lambda: "thawed" in events(ws), what="the thaw")
        wait_for(lambda: state_of(wl) != "T", what="SIGCONT")
        proc.send_signal(signal.SIGTERM)
        eq(proc.wait(timeout=15), 143, "exit status")
        err = open(ws.path("stderr")).read()
        assert why in err, err
    finally:
        proc.kill()
        proc.wait()


@case
def no_bus_falls_back(ws):
    with FakeSystemd(ws, None) as sd:
        assert_fallback(ws, sd, "no systemd scope for the workload (the system bus")


@case
def start_transient_unit_refused_falls_back(ws):
    with FakeSystemd(ws, "fail") as sd:
        assert_fallback(ws, sd, "already exists")
        eq(len(sd.calls()), 1, "one request")


@case
def job_failed_falls_back(ws):
    with FakeSystemd(ws, "jobfail") as sd:
        assert_fallback(ws, sd, 'the job ended "failed"')


@case
def cgroup_required_refuses_without_a_scope(ws):
    with FakeSystemd(ws, "fail") as sd:
        set_mode(ws, "run", cgroup="required")
        pol = policy(ws, "kill")
        ran = ws.path("ran")
        p = subprocess.run([TETHER, "run", "--policy", pol, "--", "/bin/sh", "-c",
                            "echo ran > " + ran], env=sd.env, cwd=ws.root, capture_output=True,
                           text=True, timeout=30)
        eq(p.returncode, 125, "exit status: " + p.stderr)
        line = one_line(p.stderr)
        assert "`monitor.cgroup` is \"required\"" in line and "already exists" in line, line
        assert not os.path.exists(ran), "the workload ran"
        failed = [r for r in ws.audit_records() if r["event"] == "launch_failed"]
        assert failed and "monitor.cgroup" in failed[0]["reason"], failed


if __name__ == "__main__":
    main()

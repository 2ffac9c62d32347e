"""How the monitor's cost grows with the workload, against the same workload unmonitored in
the same run.

1. Trees of 1, 100 and 1,000 processes (sleepers), whose main process then runs EXECS execs
   of /bin/true under a monitor with a 100 ms interval: the CPU tether and its helpers spend
   (the whole run's CPU, tether and workload, minus the same run unmonitored), per exec, and
   tether's peak RSS.  The monitor also looks at the whole tree every 100 ms, whatever
   happens in it, which costs in proportion to the tree and the time: so the same tree is
   also monitored for as long with no execs, and what that costs is the interval's, not the
   execs'.  The per-exec cost (the rest, per exec) should not grow with the tree beyond
   measuring the new process.
2. An exec storm: 1,000 execs as fast as the machine runs them, monitored against unmonitored:
   the wall-time ratio, and whether the monitor had caught up when the storm ended.

Usage: bench_scale.py TETHER [EXECS]"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

tether = os.path.abspath(sys.argv[1])
execs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
d = tempfile.mkdtemp()
audit = "/dev/shm/tether-bench-scale.%d" % os.getpid()
cfg = os.path.join(d, "tether.json")
json.dump({"audit": {"path": audit}, "monitor": {"grace_s": 5}}, open(cfg, "w"))
env = dict(os.environ, TETHER_CONFIG=cfg)


def policy(monitored):
    path = os.path.join(d, "monitored.lua" if monitored else "plain.lua")
    block = ', monitor = {interval_ms = 100, on_drift = "log"}' if monitored else ""
    with open(path, "w") as f:
        f.write("function decide(input) return {allow = true%s} end\n" % block)
    return path


# N-1 sleepers, forked subshells that block on a FIFO and exec nothing (so that only the
# measured execs are exec events), then the execs, then the sleepers are ended (an
# unmonitored run has no init to end them).
SCRIPT = """
n=$1; execs=$2; fifo=$3; idle=$4; pids=
exec 3<>"$fifo"
i=1; while [ $i -lt $n ]; do (read x <&3) & pids="$pids $!"; i=$((i+1)); done
i=0; while [ $i -lt $execs ]; do /bin/true; i=$((i+1)); done
[ "$idle" = 0.00 ] || sleep "$idle"
kill $pids 2>/dev/null
exit 0
"""
FIFO = os.path.join(d, "fifo")
os.mkfifo(FIFO)


def run(monitored, n, count, idle=0.0):
    """CPU seconds of tether and everything it reaped, wall seconds, tether's peak RSS (kB).
    With idle, the tree sleeps that long after its execs (one exec: sleep(1))."""
    t0 = time.monotonic()
    p = subprocess.Popen([tether, "run", "--policy", policy(monitored), "--", "/bin/sh", "-c",
                          SCRIPT, "sh", str(n), str(count), FIFO, "%.2f" % idle], env=env,
                         stdout=subprocess.DEVNULL)
    hwm = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            with open("/proc/%d/status" % p.pid) as f:
                hwm = max([hwm] + [int(l.split()[1]) for l in f if l.startswith("VmHWM")])
        except OSError:
            pass
        time.sleep(0.02)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bench_scale: tether exited %d" % os.waitstatus_to_exitcode(status))
    return ru.ru_utime + ru.ru_stime, wall, hwm


print("tree size  monitored CPU  unmonitored CPU  interval's CPU  monitor CPU per exec  "
      "tether peak RSS")
per_exec = {}
for n in (1, 100, 1000):
    cm, wm, hwm = run(True, n, execs)
    cu, wu, _ = run(False, n, execs)
    # The same tree, monitored and not, for as long, with no execs: the interval's share.
    # (Its making and ending take w0 of the time; the idle wait makes up the rest.)
    _, w0, _ = run(True, n, 0)
    idle = max(wm - w0, 0.1)
    ci, _, _ = run(True, n, 0, idle)
    cui, _, _ = run(False, n, 0, idle)
    interval = max(ci - cui, 0)
    per_exec[n] = max(cm - cu - interval, 0) / execs * 1000
    print("%9d  %11.2f s  %13.2f s  %12.2f s  %17.2f ms  %12.1f MB" %
          (n, cm, cu, interval, per_exec[n], hwm / 1024))
print("per-exec cost, 1,000 processes against 1: ratio %.2f%s" %
      (per_exec[1000] / per_exec[1] if per_exec[1] > 0 else float("nan"),
       " (0: the tree's looks on the interval account for all the monitor's CPU there, and "
       "the execs' share is within this run's noise)" if per_exec[1000] == 0 else ""))

# The storm: as fast as /bin/true can be run, 1,000 times.
_, wu, _ = run(False, 1, 1000)
cm, wm, _ = run(True, 1, 1000)
print("exec storm, 1,000 execs: %.2f s monitored against %.2f s unmonitored (%.0f execs/s); "
      "ratio %.2f" % (wm, wu, 1000 / wu, wm / wu))
os.unlink(audit)

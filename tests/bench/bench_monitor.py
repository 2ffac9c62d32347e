"""Monitoring benchmarks.

1. Detection latency: from a forbidden exec in the workload (the probe stamps the monotonic
   clock and its pid right before it execs /bin/sh) to the workload's death (seen by this
   script through a pidfd on that pid): median and 99th percentile over many trials.  Target:
   median under 20 ms.
2. CPU: the monitor's own CPU time over a period at a 100 ms interval, as a share of one core.
   Target: under 1%.
3. Memory: tether's peak resident set (VmHWM) while supervising.  Target: at most 6 MB
   (conmon, which podman leaves beside each container, holds about 2).
Each figure is printed with its ratio to the target (below 1.0 meets it).

Usage: bench_monitor.py TETHER PROBE [TRIALS] [SECONDS]
"""
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

tether, probe = sys.argv[1], sys.argv[2]
trials = int(sys.argv[3]) if len(sys.argv) > 3 else 50
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 60
d = tempfile.mkdtemp()
cfg = os.path.join(d, "tether.json")
json.dump({"audit": {"path": "/dev/shm/tether-bench-monitor.jsonl"}, "monitor": {"grace_s": 5}},
          open(cfg, "w"))
env = dict(os.environ, TETHER_CONFIG=cfg)
pol = os.path.join(d, "policy.lua")
open(pol, "w").write("""
function decide(input)
  if input.tether.phase == "monitor" then
    for _, p in ipairs(input.processes or {}) do
      if p.exe.path == "/usr/bin/dash" then return {allow = false, reasons = {"a shell"}} end
    end
  end
  return {allow = true, monitor = {interval_ms = 100, on_drift = "kill"}}
end""")



def host_pid(tether_pid, nspid):
    """The probe writes its pid as its own pid namespace numbers it (a monitored workload runs
    under an init of its own): the host's number of tether's descendant with that pid."""
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            st = dict(l.split(":", 1) for l in open("/proc/%s/status" % e))
        except (OSError, ValueError):
            continue
        ns = st.get("NSpid", "").split()
        if len(ns) < 2 or int(ns[-1]) != nspid:
            continue
        pid = int(e)
        for _ in range(4):  # the workload, its init, tether
            try:
                pid = int(dict(l.split(":", 1) for l in open("/proc/%d/status" % pid))["PPid"])
            except (OSError, ValueError, KeyError):
                break
            if pid == tether_pid:
                return int(e)
    raise ProcessLookupError(nspid)


lat = []
stamp = os.path.join(d, "stamp")
for _ in range(trials):
    if os.path.exists(stamp):
        os.unlink(stamp)
    p = subprocess.Popen([tether, "run", "--policy", pol, "--", probe, "sleep", "0.05", "stamp",
                          stamp, "exec", "/bin/sh", "-c", "sleep 30"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (os.path.exists(stamp) and open(stamp).read().endswith("\n")):
        time.sleep(0.0002)
    t_exec, nspid = (int(x) for x in open(stamp).read().split())
    try:
        fd = os.pidfd_open(host_pid(p.pid, nspid))
        select.select([fd], [], [], 30)  # readable when the process has ended
        os.close(fd)
    except ProcessLookupError:
        pass  # already gone: counted as now
    end = time.monotonic_ns()
    p.wait(timeout=30)
    if p.returncode != 78:
        sys.exit("bench_monitor: tether exited %d, not 78" % p.returncode)
    lat.append((end - t_exec) / 1e6)
lat.sort()
med, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
print("detection latency, forbidden exec to the workload's death (%d trials): median %.1f ms, "
      "p99 %.1f ms; ratio to the 20 ms target %.2f" % (trials, med, p99, med / 20))

p = subprocess.Popen([tether, "run", "--policy", pol, "--", "sleep", str(seconds + 5)], env=env)
time.sleep(1)
tick = os.sysconf("SC_CLK_TCK")
cpu = lambda: sum(int(x) for x in open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()[11:13])
c0, t0 = cpu(), time.monotonic()
time.sleep(seconds)
c1, t1 = cpu(), time.monotonic()
hwm = next(int(l.split()[1]) for l in open("/proc/%d/status" % p.pid) if l.startswith("VmHWM"))
p.terminate()
p.wait()
share = (c1 - c0) / tick / (t1 - t0) * 100
print("monitor CPU over %.0f s at a 100 ms interval: %.2f%% of one core; ratio to the 1%% "
      "target %.2f" % (t1 - t0, share, share))
print("tether peak resident memory while supervising: %.1f MB (%d kB); ratio to the 6 MB target "
      "%.2f" % (hwm / 1024, hwm, hwm / 1024 / 6))
os.unlink("/dev/shm/tether-bench-monitor.jsonl")

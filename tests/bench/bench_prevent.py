"""Exec prevention benchmark: the time of N execs of /bin/true in a shell loop, bare, inside a
monitored workload (detection only), and inside a prevented one (monitor.prevent_exec: each
exec held for a policy decision), printed as ratios to the bare loop measured in the same run.  fapolicyd, the peer the issue
names, is not run here: it gates every exec of the host while it runs, which a shared build
machine cannot allow.

Usage: bench_prevent.py TETHER [N]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

tether = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 500
d = tempfile.mkdtemp()
cfg = os.path.join(d, "tether.json")
json.dump({"audit": {"path": os.path.join(d, "audit.jsonl")}}, open(cfg, "w"))
env = dict(os.environ, TETHER_CONFIG=cfg)
loop = ["/bin/bash", "-c", "for i in $(seq %d); do /bin/true; done" % n]


def policy(name, monitor):
    p = os.path.join(d, name)
    open(p, "w").write("function decide(input)\n"
                       "  if input.exec ~= nil and input.exec.path == '/usr/bin/dash' then\n"
                       "    return {allow = false, reasons = {'no shells'}}\n"
                       "  end\n"
                       "  return {allow = true, monitor = %s}\n"
                       "end\n" % monitor)
    return p


def timed(cmd):
    t0 = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


watched = policy("watched.lua", "{interval_ms = 60000}")
prevented = policy("prevented.lua", "{interval_ms = 60000, prevent_exec = true}")
bare = timed(loop)
detect = timed([tether, "run", "--policy", watched, "--"] + loop)
prevent = timed([tether, "run", "--policy", prevented, "--"] + loop)
print("%d execs of /bin/true: bare %.3f s" % (n, bare))
print("  monitored (detection only): %.3f s, %.2fx bare" % (detect, detect / bare))
print("  prevented (each exec judged): %.3f s, %.2fx bare, %.2f ms per exec more"
      % (prevent, prevent / bare, (prevent - bare) * 1000 / n))

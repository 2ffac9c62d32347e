"""`runc run` of the probe bundle with the tether hook (createRuntime) against without it, in
the same run, interleaved: the median added milliseconds, and the ratio.  Target: a ratio of
at most 1.25 (the hook is two starts of tether, createRuntime and poststop).

Usage: bench_oci.py TETHER PROBE [RUNS]"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

tether, probe = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
runc = shutil.which("runc")
if runc is None or os.geteuid() != 0:
    print("runc hook: skipped (needs runc and root)")
    sys.exit(0)
d = tempfile.mkdtemp()
conf = os.path.join(d, "tether.json")
pol = os.path.join(d, "policy.lua")
open(pol, "w").write("function decide(input) return {allow = true} end\n")
json.dump({"audit": {"path": "/dev/shm/tether-bench-oci.jsonl"}, "policy": pol}, open(conf, "w"))


def make(name, hook):
    b = os.path.join(d, name)
    os.makedirs(os.path.join(b, "rootfs"))
    shutil.copy(probe, os.path.join(b, "rootfs", "probe"))
    subprocess.run([runc, "spec"], cwd=b, check=True)
    c = json.load(open(os.path.join(b, "config.json")))
    c["process"]["terminal"] = False
    c["process"]["args"] = ["/probe", "try", "getpid"]
    if hook:
        c["hooks"] = {
            "createRuntime": [{"path": tether, "args": ["tether", "hook", "createRuntime",
                                                        "--config", conf]}],
            "poststop": [{"path": tether, "args": ["tether", "hook", "poststop", "--config", conf]}],
        }
    json.dump(c, open(os.path.join(b, "config.json"), "w"))
    return b


plain, hooked = make("plain", False), make("hooked", True)
t = {"plain": [], "hooked": []}
for i in range(runs + 3):
    for name, b in (("plain", plain), ("hooked", hooked)):
        t0 = time.monotonic()
        subprocess.run([runc, "run", "-b", b, "bench-%s-%d" % (name, i)], check=True,
                       stdout=subprocess.DEVNULL)
        if i >= 3:  # warm-up runs are not counted
            t[name].append((time.monotonic() - t0) * 1000)
mp, mh = statistics.median(t["plain"]), statistics.median(t["hooked"])
print("runc run with the tether hook (createRuntime + poststop) vs `runc run -b BUNDLE ID` "
      "without (%d runs each): median %.1f ms vs %.1f ms; added %.1f ms; ratio %.2f "
      "(target <= 1.25)" % (runs, mh, mp, mh - mp, mh / mp))
shutil.rmtree(d)
os.unlink("/dev/shm/tether-bench-oci.jsonl")

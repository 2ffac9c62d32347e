"""Exec prevention benchmark: the time of N execs of /bin/true in a shell loop, bare, inside a
monitored workload (detection only), and inside a prevented one (monitor.prevent_exec: each
exec held for a policy decision), printed as ratios to the bare loop measured in the same run; with --fapolicyd also under
fapolicyd, the peer, with the equivalent rule (it gates every exec of the host while it runs,
so only on request; its configuration is restored afterwards).

Usage: bench_prevent.py TETHER [N] [--fapolicyd]
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
prevented = policy("prevented.lua",
                   "{interval_ms = 60000, prevent_exec = true, exec_timeout_ms = 20000}")
bare = timed(loop)
detect = timed([tether, "run", "--policy", watched, "--"] + loop)
prevent = timed([tether, "run", "--policy", prevented, "--"] + loop)
print("%d execs of /bin/true: bare %.3f s" % (n, bare))
print("  monitored (detection only): %.3f s, %.2fx bare" % (detect, detect / bare))
print("  prevented (each exec judged): %.3f s, %.2fx bare, %.2f ms per exec more"
      % (prevent, prevent / bare, (prevent - bare) * 1000 / n))


def fapolicyd_loop():
    """The same loop under fapolicyd with the equivalent rule (execute /bin/true by its
    sha256, allow the rest), started for the measurement only: it gates every exec of the
    host while it runs.  Its configuration is put back afterwards."""
    import shutil
    conf = "/etc/fapolicyd"
    if shutil.which("fapolicyd") is None or not os.path.isdir(conf):
        return None, "fapolicyd is not installed (apt-get install fapolicyd)"
    saved = os.path.join(d, "fapolicyd.saved")
    shutil.copytree(conf, saved, symlinks=True)
    proc = None
    try:
        true_sha = subprocess.run(["sha256sum", "/usr/bin/true"], capture_output=True,
                                  text=True, check=True).stdout.split()[0]
        for f in os.listdir(os.path.join(conf, "rules.d")):
            os.unlink(os.path.join(conf, "rules.d", f))
        open(os.path.join(conf, "rules.d", "50-bench.rules"), "w").write(
            "allow perm=execute all : sha256hash=%s\nallow perm=any all : all\n" % true_sha)
        text = open(os.path.join(conf, "fapolicyd.conf")).read()
        # It runs as root here: dropping to its own user needs what a container may lack.
        text = text.replace("uid = fapolicyd", "uid = root").replace("gid = fapolicyd", "gid = root")
        open(os.path.join(conf, "fapolicyd.conf"), "w").write(text)
        subprocess.run(["fagenrules"], check=True, capture_output=True)
        proc = subprocess.Popen(["fapolicyd", "--debug-deny"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(5)  # it marks every mount, then answers
        if proc.poll() is not None:
            return None, "fapolicyd did not start"
        return timed(loop), None
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(conf)
        shutil.copytree(saved, conf, symlinks=True)


if "--fapolicyd" in sys.argv:
    fap, why = fapolicyd_loop()
    if fap is None:
        print("  fapolicyd: not measured: %s" % why)
    else:
        print("  fapolicyd (hash rule for /bin/true): %.3f s, %.2fx bare; tether prevented is "
              "%.2fx fapolicyd" % (fap, fap / bare, prevent / fap))
else:
    print("  fapolicyd: not measured (pass --fapolicyd: it gates every exec of the host while "
          "it runs)")

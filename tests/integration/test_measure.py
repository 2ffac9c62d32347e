"""tether measure: every field of the input document agrees with its source; unknowns are null."""
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess

from harness import Skip, case, eq, main


def measure(ws, *args, **kw):
    p = ws.tether("measure", *args, check_rc=0, **kw)
    return json.loads(p.stdout)


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def os_release():
    out = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        if os.path.exists(path):
            for line in open(path):
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v.strip('"\'')
            return out
    return out


@case
def host_section_matches_its_sources(ws):
    doc = measure(ws)
    eq(sorted(doc), ["container", "host", "processes", "tether", "workload"], "top level")
    eq(doc["tether"]["phase"], "launch", "phase")
    eq(doc["tether"]["version"], "0.1.0", "version")
    t = datetime.datetime.strptime(doc["tether"]["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs((datetime.datetime.utcnow() - t).total_seconds()) < 60, "time is now, in UTC"
    h = doc["host"]
    eq(h["hostname"], socket.gethostname(), "hostname")
    eq(h["machine_id"], read("/etc/machine-id"), "machine_id")
    eq(h["boot_id"], read("/proc/sys/kernel/random/boot_id"), "boot_id")
    eq(h["arch"], platform.machine(), "arch")
    eq(h["kernel"]["release"], os.uname().release, "release")
    eq(h["kernel"]["version"], os.uname().version, "version")
    eq(h["kernel"]["cmdline"], read("/proc/cmdline"), "cmdline")
    eq(h["kernel"]["tainted"], int(read("/proc/sys/kernel/tainted")), "tainted")
    lockdown = read("/sys/kernel/security/lockdown")
    eq(h["kernel"]["lockdown"], re.search(r"\[(\w+)\]", lockdown).group(1) if lockdown else None, "lockdown")
    rel = os_release()
    eq(h["os"], {"id": rel.get("ID"), "version_id": rel.get("VERSION_ID"),
                 "pretty_name": rel.get("PRETTY_NAME")}, "os")
    sb = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0a3ec5c2a8b"
    want_sb = None
    if os.path.exists(sb):
        data = open(sb, "rb").read()
        want_sb = bool(data[4]) if len(data) == 5 else None
    eq(h["secure_boot"], want_sb, "secure_boot")
    eq(h["labels"], {}, "labels")
    eq(doc["workload"], None, "no command, no workload")
    eq(doc["container"], None, "container")
    eq(doc["processes"], None, "processes")


@case
def cmdline_params_are_parsed(ws):
    doc = measure(ws)
    raw = doc["host"]["kernel"]["cmdline"]
    params = doc["host"]["kernel"]["cmdline_params"]
    first = raw.split("--")[0].split()
    for word in first:
        if '"' in word:
            continue
        k, _, v = word.partition("=")
        assert k in params, k
        if "=" not in word and params[k] is not True:
            raise AssertionError("flag %s should be true" % k)


@case
def workload_section_of_a_command(ws):
    env = dict(ws.env, PATH="/nonexistent:/usr/bin:/bin")
    doc = measure(ws, "--label", "app=web", "--label", "tier=1", "--", "true", "--x", env=env)
    w = doc["workload"]
    eq(w["argv"], ["true", "--x"], "argv")
    eq(w["cwd"], ws.root, "cwd")
    eq(w["user"], {"uid": os.getuid(), "gid": os.getgid()}, "user")
    eq(w["labels"], {"app": "web", "tier": "1"}, "labels")
    eq(w["sealed"], None, "sealed")
    exe = w["exe"]
    eq(exe["path"], "/usr/bin/true", "found through PATH, in PATH order")
    st = os.stat("/usr/bin/true")
    eq(exe["sha256"], hashlib.sha256(open("/usr/bin/true", "rb").read()).hexdigest(), "sha256")
    eq((exe["size"], exe["owner_uid"], exe["owner_gid"], exe["mode"]),
       (st.st_size, st.st_uid, st.st_gid, st.st_mode & 0o7777), "stat fields")


@case
def node_labels_come_from_the_configuration(ws):
    ws.write("tether.json", json.dumps({"labels": {"region": "eu-de", "cluster": "prod-1"}}))
    eq(measure(ws)["host"]["labels"], {"region": "eu-de", "cluster": "prod-1"}, "host labels")


@case
def unknown_values_are_null(ws):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise Skip("needs unshare(1) and root for a private mount namespace")
    from harness import TETHER
    script = ("mount --bind /dev/null /etc/machine-id && "
              "mount -t tmpfs none /proc/sys/kernel/random 2>/dev/null; "
              "exec %s measure --compact -- %s/missing-command" % (TETHER, ws.root))
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       env=ws.env, capture_output=True, text=True)
    if p.returncode != 0 and "unshare" in p.stderr:
        raise Skip("unshare failed: " + p.stderr.strip())
    eq(p.returncode, 0, "exit status: " + p.stderr)
    doc = json.loads(p.stdout)
    eq(doc["host"]["machine_id"], None, "an empty machine-id is null, not guessed")
    eq(doc["workload"]["exe"], None, "a missing executable is null")
    assert "missing-command" in p.stderr, "the missing command is named on stderr"


@case
def unreadable_executable_has_null_hash(ws):
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        raise Skip("needs setpriv(1) to measure as another user")
    exe = ws.write("exec-only", "#!/bin/sh\n", 0o711)
    from harness import TETHER
    os.chmod(ws.root, 0o755)
    cmd = [TETHER, "measure", "--compact", "--", exe]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
    p = subprocess.run(cmd, env=ws.env, capture_output=True, text=True)
    eq(p.returncode, 0, "exit status: " + p.stderr)
    exe_doc = json.loads(p.stdout)["workload"]["exe"]
    eq(exe_doc["sha256"], None, "unreadable: sha256 is null")
    eq(exe_doc["mode"], 0o711, "but the rest is measured")


if __name__ == "__main__":
    main()

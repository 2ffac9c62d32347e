"""Trust anchors: every file that decides is root's and writable by nobody else along its
path, or it is refused by name, exit 125, and nothing runs.  Each case plants what the
unprivileged user `nobody` could plant, and checks that the same setup made by root works."""
import json
import os
import subprocess
import time

from harness import PROBE, TETHER, Skip, case, eq, main, one_line, wait_for

NOBODY = 65534
ALLOW = 'return {allow = true, reasons = {"ok"}}'


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: the attacker's files belong to another user")


def refused(ws, args, *needles, env=None, rc=125):
    """tether ARGS fails with rc and one line holding each needle; the workload's marker is
    never written."""
    marker = ws.path("marker")
    p = ws.tether(*args, "--", PROBE, "mark", marker, env=env, timeout=20)
    eq(p.returncode, rc, "exit status (stderr: %s)" % p.stderr)
    line = one_line(p.stderr)
    for n in needles:
        assert n in line, (n, line)
    assert "refusing" in line, line
    assert not os.path.exists(marker), "the workload ran"
    return line


def runs(ws, args, env=None):
    marker = ws.path("marker")
    ws.tether(*args, "--", PROBE, "mark", marker, env=env, timeout=20, check_rc=0)
    assert os.path.exists(marker), "the workload did not run"
    os.unlink(marker)


@case
def policy_owned_by_nobody_is_refused(ws):
    need_root()
    pol = ws.policy(ALLOW)
    os.chown(pol, NOBODY, NOBODY)
    refused(ws, ["run", "--policy", pol], pol, "owned by uid 65534, not root")
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "policy": pol}))
    refused(ws, ["run"], pol, "owned by uid 65534")
    os.chown(pol, 0, 0)
    runs(ws, ["run"])
    os.chmod(pol, 0o664)
    refused(ws, ["run"], pol, "writable by group (mode 0664)")


@case
def policy_in_a_directory_nobody_may_write_is_refused(ws):
    need_root()
    d = ws.path("policies")
    os.mkdir(d, 0o755)
    pol = os.path.join(d, "policy.lua")
    with open(pol, "w") as f:
        f.write("function decide(input)\n%s\nend\n" % ALLOW)
    os.chown(d, NOBODY, NOBODY)
    refused(ws, ["run", "--policy", pol], pol, "`%s` is owned by uid 65534" % d)
    os.chown(d, 0, 0)
    os.chmod(d, 0o777)
    refused(ws, ["run", "--policy", pol], pol, "`%s` is writable by group and others" % d)
    # A sticky directory is fine above an entry that root owns: nobody can rename it.
    os.chmod(d, 0o1777)
    runs(ws, ["run", "--policy", pol])
    # ... and a link on the way is walked like any directory.
    os.chmod(d, 0o755)
    os.symlink(d, ws.path("via"))
    runs(ws, ["run", "--policy", ws.path("via", "policy.lua")])
    os.lchown(ws.path("via"), NOBODY, NOBODY)
    refused(ws, ["run", "--policy", ws.path("via", "policy.lua")], "via` is owned by uid 65534")
    os.symlink(pol, ws.path("link.lua"))
    refused(ws, ["run", "--policy", ws.path("link.lua")], "link.lua`: a symbolic link")


@case
def reloaded_policy_planted_by_nobody_is_refused(ws):
    """A live reload reads the new policy through the same walk: a file that nobody owns is
    refused (and audited as drift), and the old policy goes on deciding."""
    need_root()
    pol = ws.policy('if input.tether.phase == "monitor" then return {allow = true, reasons = '
                    '{"old policy"}} end\n'
                    'return {allow = true, monitor = {interval_ms = 100, on_drift = "log"}}')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        planted = ws.policy('return {allow = false, reasons = {"planted policy"}}', "planted.lua")
        os.chown(planted, NOBODY, NOBODY)
        os.rename(planted, pol)
        drift = wait_for(lambda: [r for r in ws.audit_records() if r["event"] == "drift"],
                         what="the refused reload on record")[0]
        assert pol in drift["reason"] and "owned by uid 65534" in drift["reason"], drift
        assert "refusing" in drift["reason"], drift
        time.sleep(0.5)  # evaluations go on, with the old policy
        assert proc.poll() is None, "the workload ended"
        recs = ws.audit_records()
        assert "policy_reloaded" not in [r["event"] for r in recs], recs
        assert not [r for r in recs if "planted policy" in json.dumps(r)], "the planted policy decided"
        # The same change made by root is reloaded: the refusal above was the owner's doing.
        again = ws.policy('return {allow = true, reasons = {"root policy"}}', "again.lua")
        os.rename(again, pol)
        wait_for(lambda: "policy_reloaded" in [r["event"] for r in ws.audit_records()],
                 what="the reload of root's file")
    finally:
        proc.kill()
        proc.wait()


@case
def reloaded_configuration_planted_by_nobody_is_refused(ws):
    need_root()
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "labels": {"region": "eu"}}))
    pol = ws.policy('if input.tether.phase == "monitor" and input.host.labels.region ~= "eu" then '
                    'return {allow = false, reasons = {"planted labels"}} end\n'
                    'return {allow = true, monitor = {interval_ms = 100, on_drift = "log"}}')
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        planted = ws.write("planted.json", json.dumps({"audit": {"path": ws.audit},
                                                        "labels": {"region": "us"}}))
        os.chown(planted, NOBODY, NOBODY)
        os.rename(planted, ws.config)
        drift = wait_for(lambda: [r for r in ws.audit_records() if r["event"] == "drift"],
                         what="the refused reload on record")[0]
        assert ws.config in drift["reason"] and "owned by uid 65534" in drift["reason"], drift
        time.sleep(0.5)
        recs = ws.audit_records()
        assert "config_reloaded" not in [r["event"] for r in recs], recs
        assert not [r for r in recs if "planted labels" in json.dumps(r)], "the planted labels counted"
        assert proc.poll() is None, "the workload ended"
    finally:
        proc.kill()
        proc.wait()


@case
def configuration_fifo_does_not_hang(ws):
    fifo = ws.path("fifo")
    os.mkfifo(fifo)
    for env, args in ((dict(ws.env, TETHER_CONFIG=fifo), ["run"]),
                      (ws.env, ["run", "--config", fifo])):
        t = time.monotonic()
        refused(ws, args, fifo, "a FIFO, not a regular file", env=env)
        assert time.monotonic() - t < 5, "tether took %.1fs" % (time.monotonic() - t)
    refused(ws, ["run", "--config", "/dev/null"], "a character device")


@case
def audit_file_planted_in_a_sticky_directory_is_refused(ws):
    need_root()
    logs = ws.path("logs")
    os.mkdir(logs)
    os.chmod(logs, 0o1777)
    trail = os.path.join(logs, "audit.jsonl")
    ws.write("tether.json", json.dumps({"audit": {"path": trail}}))
    pol = ws.policy(ALLOW)
    # nobody creates the trail first: its records would be theirs to edit
    fd = os.open(trail, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    os.chown(trail, NOBODY, NOBODY)
    refused(ws, ["run", "--policy", pol], trail, "owned by uid 65534")
    eq(os.path.getsize(trail), 0, "nothing was written to the planted file")
    # or a link to somewhere root would append to
    os.unlink(trail)
    target = ws.path("elsewhere.jsonl")
    os.symlink(target, trail)
    os.lchown(trail, NOBODY, NOBODY)
    refused(ws, ["run", "--policy", pol], trail, "a symbolic link")
    assert not os.path.exists(target), "the link was followed"
    # When absent, root's tether creates it, root's and private.
    os.unlink(trail)
    runs(ws, ["run", "--policy", pol])
    st = os.stat(trail)
    eq((st.st_uid, st.st_mode & 0o7777), (0, 0o600), "the trail's owner and mode")
    eq([r["event"] for r in ws.audit_records(trail)], ["decision", "exit"], "records")


def as_nobody(ws, tmp, marker):
    env = ws.env_for_user(NOBODY)
    env.pop("XDG_RUNTIME_DIR", None)
    env["TMPDIR"] = tmp
    probe = ws.probe_for_users()
    return subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                           "--clear-groups", TETHER, "run", "--", probe, "mark", marker],
                          env=env, capture_output=True, text=True, cwd="/", timeout=20)


@case
def status_directory_made_by_someone_else_is_refused(ws):
    """Without XDG_RUNTIME_DIR a user's status files go to $TMPDIR/tether-UID; whoever made
    that directory first could read and forge them."""
    need_root()
    tmp = ws.path("tmp")  # a private /tmp: the real one is shared with other tests
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    state = os.path.join(tmp, "tether-%d" % NOBODY)
    marker = os.path.join(tmp, "marker")
    os.mkdir(state, 0o700)  # root made it
    p = as_nobody(ws, tmp, marker)
    eq(p.returncode, 125, "exit status: " + p.stderr)
    line = one_line(p.stderr)
    assert state in line and "owned by uid 0, not 65534; refusing" in line, line
    assert not os.path.exists(marker), "the workload ran"
    os.chown(state, NOBODY, NOBODY)
    os.chmod(state, 0o755)
    p = as_nobody(ws, tmp, marker)
    eq(p.returncode, 125, "exit status: " + p.stderr)
    assert "open to others (mode 0755)" in one_line(p.stderr), p.stderr
    os.rmdir(state)
    p = as_nobody(ws, tmp, marker)
    eq(p.returncode, 0, "exit status with no directory yet: " + p.stderr)
    st = os.stat(state)
    eq((st.st_uid, st.st_mode & 0o7777), (NOBODY, 0o700), "made by tether, its user's, 0700")
    assert os.path.exists(marker), "the workload did not run"


def bundle(ws, name="b"):
    b = ws.path(name)
    os.makedirs(os.path.join(b, "rootfs"))
    cfg = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
           "process": {"args": ["/probe"], "user": {"uid": 0, "gid": 0}, "cwd": "/"}}
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


def hook(ws, b, cid):
    st = json.dumps({"ociVersion": "1.0.2", "id": cid, "status": "creating", "pid": os.getpid(),
                     "bundle": b})
    return subprocess.run([TETHER, "hook", "createRuntime", "--config", ws.config], input=st,
                          capture_output=True, text=True, timeout=20)


def hook_refused(ws, b, *needles):
    p = hook(ws, b, "tether-trust-%d" % os.getpid())
    eq(p.returncode, 77, "hook exit status: " + p.stderr)
    line = one_line(p.stderr)
    for n in needles + ("refusing",):
        assert n in line, (n, line)


@case
def symlinked_config_json_in_a_bundle_is_refused(ws):
    need_root()
    pol = ws.policy(ALLOW)
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "policy": pol}))
    b = bundle(ws)
    cfg = os.path.join(b, "config.json")
    runs(ws, ["run", "--bundle", b])
    # The runtime would read the link's target, which its owner may change at will.
    os.rename(cfg, ws.path("judged.json"))
    os.symlink(ws.path("judged.json"), cfg)
    refused(ws, ["run", "--bundle", b], cfg, "a symbolic link")
    hook_refused(ws, b, cfg, "a symbolic link")


@case
def bundle_config_json_writable_by_nobody_is_refused(ws):
    need_root()
    pol = ws.policy(ALLOW)
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "policy": pol}))
    b = bundle(ws)
    cfg = os.path.join(b, "config.json")
    os.chown(cfg, NOBODY, NOBODY)
    refused(ws, ["run", "--bundle", b], cfg, "owned by uid 65534")
    hook_refused(ws, b, cfg, "owned by uid 65534")
    os.chown(cfg, 0, 0)
    os.chmod(cfg, 0o666)
    refused(ws, ["run", "--bundle", b], cfg, "writable by group and others (mode 0666)")
    hook_refused(ws, b, cfg, "writable by group and others")
    os.chmod(cfg, 0o644)
    # The bundle directory: whoever may write it may swap config.json after the decision.
    os.chown(b, NOBODY, NOBODY)
    refused(ws, ["run", "--bundle", b], cfg, "`%s` is owned by uid 65534" % b)
    hook_refused(ws, b, cfg, "`%s` is owned by uid 65534" % b)
    os.chown(b, 0, 0)
    runs(ws, ["run", "--bundle", b])
    p = hook(ws, b, "tether-trust-ok-%d" % os.getpid())
    eq(p.returncode, 0, "hook with root's bundle: " + p.stderr)
    subprocess.run([TETHER, "hook", "poststop", "--config", ws.config], capture_output=True,
                   input=json.dumps({"ociVersion": "1.0.2", "id": "tether-trust-ok-%d" % os.getpid(),
                                     "status": "stopped", "bundle": b}), text=True)


if __name__ == "__main__":
    main()

"""OCI integration with the real runc: the hook gates containers, the wrapper measures the
bundle, and every malformed input is a deny with a reason."""
import hashlib
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import time

from harness import PROBE, TETHER, Skip, case, crun_ready, eq, main, one_line, wait_for


def cid(name):
    """A container id of this test's own: runc's state and /run/tether/ID are shared by
    every test (and checkout) on the machine."""
    return "%s-%d" % (name, os.getpid())


def runc():
    path = shutil.which("runc")
    if path is None:
        raise Skip("runc is not installed (contrib/setup.sh test installs it)")
    if os.geteuid() != 0:
        raise Skip("runc needs root here")
    return path


def bundle(ws, args, hooks=True, name="b"):
    """A bundle whose rootfs holds the static probe; config.json from `runc spec`."""
    b = ws.path(name)
    os.makedirs(os.path.join(b, "rootfs"))
    shutil.copy(PROBE, os.path.join(b, "rootfs", "probe"))
    subprocess.run([runc(), "spec"], cwd=b, check=True)
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"]["readonly"] = False
    cfg.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = "probe:1"
    if hooks:
        conf = ws.path("tether.json")
        cfg["hooks"] = {
            "createRuntime": [{"path": TETHER, "args": ["tether", "hook", "createRuntime",
                                                        "--config", conf]}],
            "poststop": [{"path": TETHER, "args": ["tether", "hook", "poststop", "--config", conf]}],
        }
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    return b


def node(ws, body, **extra):
    pol = ws.policy(body)
    ws.write("tether.json", json.dumps(dict({"audit": {"path": ws.audit}, "policy": pol}, **extra)))


IMAGE_ID = "ab" * 32
NOBODY = 65534


def record(cid, image_name, image_id=IMAGE_ID):
    """A container's record in containers/storage's containers.json, as podman writes it."""
    return {"id": cid, "names": [cid], "image": image_id, "layer": "cd" * 32,
            "metadata": json.dumps({"image-name": image_name, "image-id": image_id, "name": cid,
                                    "created-at": 1700000000}),
            "created": "2026-01-01T00:00:00Z"}


def storage(ws, containers, images=None):
    """A containers/storage root of the test's own: overlay-containers/containers.json and
    overlay-images/images.json, root's and writable by root alone."""
    root = ws.path("storage")
    if images is None:
        images = [{"id": IMAGE_ID, "digest": "sha256:" + "ef" * 32, "names": ["whatever:1"]}]
    for sub, name, recs in (("overlay-containers", "containers.json", containers),
                            ("overlay-images", "images.json", images)):
        os.makedirs(os.path.join(root, sub), mode=0o755, exist_ok=True)
        with open(os.path.join(root, sub, name), "w") as f:
            json.dump(recs, f)
        os.chmod(os.path.join(root, sub, name), 0o644)
    os.chmod(root, 0o755)
    return root


def run_container(ws, b, cid):
    return subprocess.run([runc(), "run", "-b", b, cid], capture_output=True, text=True, timeout=60)


@case
def allowed_container_runs(ws):
    node(ws, 'local c = input.container\n'
             'return {allow = c ~= nil and c.process.args[1] == "/probe" and '
             'c.image.name == "localhost/probe:1" and c.claimed.name == "probe:1", '
             'reasons = {"container ok"}}',
         container={"podman_storage": storage(ws, [record(cid("tether-ok"), "localhost/probe:1")])})
    b = bundle(ws, ["/probe", "try", "getpid"])
    p = run_container(ws, b, cid("tether-ok"))
    eq(p.returncode, 0, "runc: " + p.stderr)
    eq(json.loads(p.stdout), {"try": {"getpid": 0}}, "the container's output arrived")
    recs = ws.audit_records()
    gate = [r for r in recs if r["event"] == "decision"][0]
    eq((gate["phase"], gate["stage"], gate["container_id"], gate["allow"]),
       ("hook", "createRuntime", cid("tether-ok"), True), "gate record")
    assert "poststop" in [r["event"] for r in recs], "poststop recorded"
    assert not os.path.exists("/run/tether/" + cid("tether-ok")), "poststop removed the state"


@case
def denied_container_never_runs(ws):
    node(ws, 'return {allow = false, reasons = {"image not approved here"}}')
    b = bundle(ws, ["/probe", "mark", "/ran"])
    p = run_container(ws, b, cid("tether-no"))
    assert p.returncode != 0, "runc started a denied container"
    assert "image not approved here" in p.stderr, "runc's error carries tether's reason: " + p.stderr
    assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "the workload ran"
    subprocess.run([runc(), "delete", "--force", cid("tether-no")], capture_output=True)


def hook(ws, stage, state, rc):
    p = subprocess.run([TETHER, "hook", stage, "--config", ws.path("tether.json")],
                       input=state, capture_output=True, text=True)
    eq(p.returncode, rc, "%s exit status: %s" % (stage, p.stderr))
    return p


@case
def malformed_inputs_are_denies(ws):
    node(ws, 'return {allow = true}')
    good = bundle(ws, ["/probe"], hooks=False)
    state = lambda **kw: json.dumps(dict({"ociVersion": "1.0.2", "id": cid("c1"),
                                          "status": "creating", "pid": os.getpid(),
                                          "bundle": good}, **kw))
    for text, needle in (("{not json", "invalid JSON"), ("[]", "not a JSON object"),
                         (state(id=""), "`id`"), (state(bundle="relative"), "absolute"),
                         (state(pid="x"), "`pid`"), ("x" * (2 << 20), "larger than")):
        p = hook(ws, "createRuntime", text, 77)
        assert needle in one_line(p.stderr), (needle, p.stderr)
    p = hook(ws, "createRuntime", state(bundle=ws.path("missing")), 77)
    assert "config.json" in one_line(p.stderr)
    bad = bundle(ws, ["/probe"], hooks=False, name="bad")
    open(os.path.join(bad, "config.json"), "w").write('{"process": 1}')
    p = hook(ws, "createRuntime", state(bundle=bad), 77)
    assert "config.json" in one_line(p.stderr)
    # annotations are merged by name, a search each: tens of thousands took seconds a look
    many = {"a.%05d" % i: "x" for i in range(1025)}
    p = hook(ws, "createRuntime", state(annotations=many), 77)
    assert "more than 1024 annotations" in one_line(p.stderr), p.stderr
    cfg = json.load(open(os.path.join(good, "config.json")))
    cfg["annotations"] = many
    json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
    p = hook(ws, "createRuntime", state(bundle=bad), 77)
    assert "more than 1024 annotations" in one_line(p.stderr), p.stderr
    # poststart and poststop never block, whatever they are given
    hook(ws, "poststart", "{not json", 0)
    hook(ws, "poststop", "[]", 0)
    p = subprocess.run([TETHER, "hook", "sideways"], input="{}", capture_output=True, text=True)
    eq(p.returncode, 125, "unknown stage")


@case
def poststop_removes_the_state(ws):
    node(ws, 'return {allow = true}')
    b = bundle(ws, ["/probe"], hooks=False)
    st = json.dumps({"ociVersion": "1.0.2", "id": cid("tether-st"), "status": "creating",
                     "pid": os.getpid(), "bundle": b})
    hook(ws, "createRuntime", st, 0)
    assert os.path.isfile("/run/tether/%s/decision.json" % cid("tether-st")), "state written"
    hook(ws, "poststop", st, 0)
    assert not os.path.exists("/run/tether/" + cid("tether-st")), "poststop removed it"


@case
def state_of_a_container_gone_without_poststop_is_swept(ws):
    """A runtime that dies (or is killed) calls no poststop hook: the next tether status
    removes the state of a container whose init is gone, and only that."""
    node(ws, 'return {allow = true}')
    b = bundle(ws, ["/probe"], hooks=False)
    inits = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    ids = [cid("tether-sw%d" % i) for i in range(2)]
    try:
        for init, c in zip(inits, ids):
            hook(ws, "createRuntime", json.dumps({"ociVersion": "1.0.2", "id": c,
                                                  "status": "creating", "pid": init.pid,
                                                  "bundle": b}), 0)
            assert os.path.isfile("/run/tether/%s/decision.json" % c), "state written"
        inits[0].kill()
        inits[0].wait()
        subprocess.run([TETHER, "status"], check=True, capture_output=True)
        assert not os.path.exists("/run/tether/" + ids[0]), "the dead container's state is left"
        assert os.path.isdir("/run/tether/" + ids[1]), "a live container's state was removed"
    finally:
        for init in inits:
            init.kill()
            init.wait()
        for c in ids:
            hook(ws, "poststop", json.dumps({"ociVersion": "1.0.2", "id": c, "status": "stopped",
                                             "bundle": b}), 0)


def forbid_in_containers(ws, path, on_drift):
    """The node's policy: containers run under exec prevention, and path is forbidden."""
    node(ws, 'if input.exec ~= nil and input.exec.path == "%s" then\n'
             '  return {allow = false, reasons = {"not in this container"}}\n'
             'end\n'
             'return {allow = true, monitor = {prevent_exec = true, on_drift = "%s", '
             'exec_timeout_ms = 30000}}' % (path, on_drift))


def runc_run_once(b, name):
    """runc run of bundle b, whatever its outcome, deleted afterwards."""
    c = cid(name)
    try:
        return subprocess.run([runc(), "run", "-b", b, c], capture_output=True, text=True,
                              timeout=60)
    finally:
        subprocess.run([runc(), "delete", "--force", c], capture_output=True)


def run_and_delete(ws, b, name):
    """runc run of bundle b under a container id of its own, deleted afterwards."""
    c = cid(name)
    try:
        return run_container(ws, b, c)
    finally:
        subprocess.run([runc(), "delete", "--force", c], capture_output=True)


@case
def forbidden_exec_in_a_prevented_container_never_runs(ws):
    """monitor.prevent_exec under the hook: the marks go on the container's own mounts, so
    runc's exec of the container's program is judged (and allowed), and a forbidden exec in
    the container fails with EPERM and never runs."""
    forbid_in_containers(ws, "/forbidden", "kill")
    b = bundle(ws, ["/probe", "mark", "/started", "exec", "/forbidden", "mark", "/ran"])
    shutil.copy(PROBE, os.path.join(b, "rootfs", "forbidden"))
    p = run_and_delete(ws, b, "tether-pv")
    assert os.path.exists(os.path.join(b, "rootfs", "started")), "the allowed program ran: " + p.stderr
    assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "the forbidden program ran"
    den = [r for r in ws.audit_records() if r["event"] == "exec_denied"]
    eq([(d["path"], d["reason"]) for d in den], [("/forbidden", "not in this container")],
       "the denial, audited")


@case
def a_mount_the_runtime_makes_after_the_hook_is_marked_too(ws):
    """runc binds a path of readonlyPaths onto itself after the createRuntime hook, when the
    container's mounts were first marked, and after a createContainer hook, whose exec in
    the container is held before it: the monitor marks the mounts again at each held exec
    until the container's init has exec'd its program, so a forbidden program there fails
    with EPERM and never runs."""
    forbid_in_containers(ws, "/opt/forbidden", "log")
    for hook in (None, "createContainer"):
        b = bundle(ws, ["/probe", "mark", "/started", "exec", "/opt/forbidden", "mark", "/ran"],
                   name="b-%s" % (hook or "plain"))
        os.makedirs(os.path.join(b, "rootfs", "opt"))
        shutil.copy(PROBE, os.path.join(b, "rootfs", "opt", "forbidden"))
        cfg = json.load(open(os.path.join(b, "config.json")))
        cfg["linux"]["readonlyPaths"] = cfg["linux"].get("readonlyPaths", []) + ["/opt"]
        if hook:
            cfg["hooks"][hook] = [{"path": "/bin/true", "args": ["true"]}]
        json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
        before = len(ws.audit_records())
        p = run_and_delete(ws, b, "tether-ro%s" % ("h" if hook else ""))
        what = "with a %s hook" % hook if hook else "without other hooks"
        assert os.path.exists(os.path.join(b, "rootfs", "started")), what + ": " + p.stderr
        assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "ran, " + what
        eq(json.loads(p.stdout).get("exec"), errno.EPERM, "the exec failed with EPERM, " + what)
        den = [r for r in ws.audit_records()[before:] if r["event"] == "exec_denied"]
        eq([(d["path"], d["reason"]) for d in den], [("/opt/forbidden", "not in this container")],
           "the denial, audited, " + what)


@case
def a_container_granted_what_reaches_past_the_marks_does_not_start(ws):
    """A container whose configuration grants CAP_SYS_ADMIN, CAP_SYS_PTRACE,
    CAP_CHECKPOINT_RESTORE, or the kernel's code or a raw device (CAP_SYS_MODULE,
    CAP_SYS_RAWIO, CAP_SYS_BOOT, CAP_MKNOD) reaches programs no mark holds: under exec
    prevention the hook denies it and it never starts."""
    forbid_in_containers(ws, "/forbidden", "log")
    for cap in ("CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_CHECKPOINT_RESTORE", "CAP_SYS_MODULE",
                "CAP_SYS_RAWIO", "CAP_SYS_BOOT", "CAP_MKNOD"):
        b = bundle(ws, ["/probe", "mark", "/started"], name="b-%s" % cap)
        cfg = json.load(open(os.path.join(b, "config.json")))
        cfg["process"]["capabilities"]["bounding"].append(cap)
        json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
        p = runc_run_once(b, "tether-cap")
        assert p.returncode != 0, "runc run succeeded with " + cap
        assert "prevent_exec" in p.stderr and cap in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(b, "rootfs", "started")), "started with " + cap


@case
def a_container_whose_root_may_write_proc_sys_is_not_prevented(ws):
    """Root in a container whose /proc/sys (or /sys) is writable could point
    kernel.core_pattern (or /sys/kernel/uevent_helper) at a program, which the kernel runs as
    the node's root outside every mark: under exec prevention the hook denies such a
    container.  runc's default lists /proc/sys in readonlyPaths and mounts /sys read-only:
    the same container starts, with the path written "/proc/sys/" too."""
    forbid_in_containers(ws, "/forbidden", "log")

    def no_proc_sys(cfg):
        cfg["linux"]["readonlyPaths"] = [p for p in cfg["linux"].get("readonlyPaths", [])
                                         if p not in ("/proc/sys", "/proc")]

    def slash(cfg):
        no_proc_sys(cfg)
        cfg["linux"]["readonlyPaths"].append("/proc/sys/")

    def second_proc(cfg):
        cfg["mounts"].append({"destination": "/mnt", "type": "proc", "source": "proc"})

    def sysfs_rw(cfg):
        for m in cfg["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m.get("options", []) if o != "ro"]

    def proc_ro_then_rw(cfg):  # runc mounts in order: the later, writable /proc wins
        no_proc_sys(cfg)
        cfg["mounts"].insert(0, {"destination": "/proc", "type": "proc", "source": "proc",
                                 "options": ["ro"]})

    def ro_then_rw_options(cfg):  # the kernel takes the last of ro and rw
        cfg["mounts"].append({"destination": "/mnt", "type": "proc", "source": "proc",
                              "options": ["ro", "rw"]})

    def bind_dotdot(cfg):
        cfg["mounts"].append({"destination": "/mnt", "type": "bind",
                              "source": "/tmp/../proc/sys", "options": ["rbind", "rw"]})

    def bind_relative(cfg):  # relative to the bundle
        cfg["mounts"].append({"destination": "/mnt", "type": "bind",
                              "source": "../../../../../../../../../proc/sys",
                              "options": ["rbind", "rw"]})

    for name, change, starts in (("default", None, True), ("slash", slash, True),
                                 ("no-proc-sys", no_proc_sys, False),
                                 ("second-proc", second_proc, False),
                                 ("sysfs-rw", sysfs_rw, False),
                                 ("proc-ro-then-rw", proc_ro_then_rw, False),
                                 ("ro-then-rw", ro_then_rw_options, False),
                                 ("bind-dotdot", bind_dotdot, False),
                                 ("bind-relative", bind_relative, False)):
        b = bundle(ws, ["/probe", "mark", "/started"], name="b-%s" % name)
        cfg = json.load(open(os.path.join(b, "config.json")))
        if change:
            change(cfg)
        json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
        p = runc_run_once(b, "tether-ps")
        started = os.path.exists(os.path.join(b, "rootfs", "started"))
        if starts:
            eq(p.returncode, 0, "%s (stderr %r)" % (name, p.stderr))
            assert started, "the %s container did not start" % name
        else:
            assert p.returncode != 0 and "/proc/sys" in p.stderr, (name, p.stderr)
            assert not started, "the %s container started" % name


@case
def a_process_in_a_cgroup_below_the_containers_is_still_in_it(ws):
    """A container whose cgroup file system is writable (systemd in a container has one, and
    puts every process in a group below the container's) makes a group of its own and moves
    into it: it is still the container's, so its forbidden exec is held and denied."""
    forbid_in_containers(ws, "/forbidden", "log")
    b = bundle(ws, ["/probe", "mkdir", "/sys/fs/cgroup/below", "write",
                    "/sys/fs/cgroup/below/cgroup.procs", "0", "mark", "/moved",
                    "exec", "/forbidden", "mark", "/ran"])
    shutil.copy(PROBE, os.path.join(b, "rootfs", "forbidden"))
    cfg = json.load(open(os.path.join(b, "config.json")))
    for m in cfg["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            m["options"] = [o for o in m.get("options", []) if o != "ro"]
    ns = cfg["linux"]["namespaces"]
    if not any(n["type"] == "cgroup" for n in ns):
        ns.append({"type": "cgroup"})
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    p = run_and_delete(ws, b, "tether-pcg")
    assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "the forbidden program ran"
    out = json.loads(p.stdout)
    if out.get("write") != 0:
        raise Skip("the container could not move into a group of its own: %r" % out)
    eq(out.get("exec"), errno.EPERM, "the exec failed with EPERM")
    den = [r for r in ws.audit_records() if r["event"] == "exec_denied"]
    eq([(d["path"], d["reason"]) for d in den], [("/forbidden", "not in this container")],
       "the denial, audited")


@case
def runc_exec_into_a_prevented_container_is_judged(ws):
    """A process that runc exec puts into a prevented container execs through the
    container's marked mounts: a forbidden program fails, an allowed one runs."""
    forbid_in_containers(ws, "/forbidden", "log")
    b = bundle(ws, ["/probe", "ready", "/ready", "sleep", "60"])
    shutil.copy(PROBE, os.path.join(b, "rootfs", "forbidden"))
    c = cid("tether-px")
    proc = subprocess.Popen([runc(), "run", "-b", b, c], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(b, "rootfs", "ready")),
                 what="the container to start")
        bad = subprocess.run([runc(), "exec", c, "/forbidden", "mark", "/ran"],
                             capture_output=True, text=True, timeout=30)
        good = subprocess.run([runc(), "exec", c, "/probe", "mark", "/fine"],
                              capture_output=True, text=True, timeout=30)
    finally:
        subprocess.run([runc(), "kill", c, "KILL"], capture_output=True)
        proc.communicate(timeout=30)
        subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    assert bad.returncode != 0, "runc exec of the forbidden program succeeded"
    assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "the forbidden program ran"
    eq(good.returncode, 0, "runc exec of an allowed program: " + good.stderr)
    assert os.path.exists(os.path.join(b, "rootfs", "fine")), "the allowed program did not run"
    den = [r for r in ws.audit_records() if r["event"] == "exec_denied"]
    eq([d["path"] for d in den], ["/forbidden"], "the denial, audited")


@case
def container_measurement(ws):
    node(ws, 'return {allow = true}')
    b = bundle(ws, ["/probe", "status"], hooks=False)
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["process"]["env"] = ["PATH=/bin", "API_TOKEN=s3cret"]
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    # The wrapper measures the bundle; the policy sees the container section.
    pol = ws.policy('local c = input.container\n'
                    'if c == nil then return {allow = false, reasons = {"no container"}} end\n'
                    'return {allow = c.process.env_names[1] == "API_TOKEN" and c.process.env_names[2] == "PATH" and c.process.env_truncated == false and c.seccomp == %s '
                    'and c.root == "%s/rootfs", reasons = {c.config_sha256}}'
                    % ("true" if "seccomp" in cfg.get("linux", {}) else "false", b), "wrap.lua")
    p = ws.tether("run", "--policy", pol, "--bundle", b, "--", runc(), "run", "-b", b,
                  cid("tether-wrap"), timeout=60)
    eq(p.returncode, 0, "wrapper: " + p.stderr)
    rec = ws.audit_records()[0]
    import hashlib
    eq(rec["reasons"], [hashlib.sha256(open(os.path.join(b, "config.json"), "rb").read()).hexdigest()],
       "config_sha256")
    assert "s3cret" not in open(ws.audit).read(), "an environment value leaked"
    p = ws.tether("run", "--policy", pol, "--bundle", ws.path("nope"), "--", "true", check_rc=125)
    assert "config.json" in one_line(p.stderr)


# --- the entrypoint, measured inside the container's root file system ---

def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def set_process(b, **fields):
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["process"].update(fields)
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))


def another_probe(path):
    """A binary other than the probe at path (renamed over it): the probe with bytes after
    it, which runs all the same."""
    shutil.copy(PROBE, path + ".new")
    with open(path + ".new", "ab") as f:
        f.write(b"\0another build")
    os.rename(path + ".new", path)
    return sha256_of(path)


# What a policy saw of the entrypoint: "PATH SHA256 RESOLVED_IN", or "null: EXE_ERROR".
SEEN = ('local p = input.container.process\n'
        'local e = p.exe\n'
        'local seen = e and table.concat({e.path, tostring(e.sha256), e.resolved_in}, " ")\n'
        '  or ("null: " .. tostring(p.exe_error))\n')


def seen_by_a_gate(ws, b, name):
    """What the gate saw of the entrypoint when runc starts bundle b, under a policy that
    denies every container."""
    node(ws, SEEN + 'return {allow = false, reasons = {seen}}')
    c = cid(name)
    p = run_container(ws, b, c)
    subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    assert p.returncode != 0, "runc started a denied container"
    return records(ws, "decision", c)[-1]["reasons"][0]


@case
def policy_admits_the_entrypoint_by_its_hash(ws):
    """At createRuntime the hook measures /probe in the container's root file system, where
    runc has made the container's mounts; a policy that admits that hash alone denies the
    same bundle once /probe is another binary, which then never runs."""
    want = sha256_of(PROBE)
    node(ws, SEEN + 'local ok = e ~= nil and e.sha256 == "%s"\n'
                    'return {allow = ok, reasons = {seen}}' % want)
    b = bundle(ws, ["/probe", "try", "getpid"])
    p = run_container(ws, b, cid("tether-ep"))
    eq(p.returncode, 0, "runc: " + p.stderr)
    eq(records(ws, "decision", cid("tether-ep"))[0]["reasons"], ["/probe %s init" % want],
       "what the gate saw")
    other = another_probe(os.path.join(b, "rootfs", "probe"))
    set_process(b, args=["/probe", "mark", "/ran"])
    p = run_container(ws, b, cid("tether-ep2"))
    subprocess.run([runc(), "delete", "--force", cid("tether-ep2")], capture_output=True)
    assert p.returncode != 0, "runc started a container whose entrypoint is another binary"
    assert "/probe %s init" % other in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "the other binary ran"


@case
def entrypoint_replaced_in_a_running_container_is_drift(ws):
    """A container's monitor measures the entrypoint again, in the init's root (pivoted by
    then): a /probe replaced while the container runs is drift."""
    want = sha256_of(PROBE)
    node(ws, SEEN + 'if e == nil or e.sha256 ~= "%s" then\n'
                    '  return {allow = false, reasons = {input.tether.phase .. ": " .. seen}}\n'
                    'end\n'
                    'return {allow = true, monitor = {interval_ms = 100, on_drift = "kill"}}'
         % want)
    b = bundle(ws, ["/probe", "ready", "/ready", "sleep", "60"])
    c = cid("tether-epm")
    proc = subprocess.Popen([runc(), "run", "-b", b, c], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(b, "rootfs", "ready")), timeout=20,
                 what="the container to start")
        wait_for(lambda: records(ws, "monitor_started", c), what="the monitor")
        time.sleep(0.5)  # a few looks at the probe itself
        eq(records(ws, "drift", c), [], "drift before /probe was replaced")
        other = another_probe(os.path.join(b, "rootfs", "probe"))
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
        subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    assert rc in (137, 143), "runc's status: %d" % rc
    eq(records(ws, "drift", c)[0]["reason"], "monitor: /probe %s init" % other, "drift")


@case
def entrypoint_links_stay_inside_the_root(ws):
    """Links in the image never lead the hook (root on the host) out of the image: an
    absolute link to a host path is looked up in the root file system, a relative one that
    climbs past / stops at it, and a link into /proc is refused."""
    b = bundle(ws, ["/app"])
    rootfs = os.path.join(b, "rootfs")
    app = os.path.join(rootfs, "app")
    os.symlink("/usr/bin/id", app)
    eq(seen_by_a_gate(ws, b, "tether-ln1"), "null: `/app`: not found", "no /usr/bin/id in the image")
    os.makedirs(os.path.join(rootfs, "usr", "bin"))
    shutil.copy(PROBE, os.path.join(rootfs, "usr", "bin", "id"))
    mine = "/app %s init" % sha256_of(PROBE)
    assert sha256_of("/usr/bin/id") != sha256_of(PROBE)
    eq(seen_by_a_gate(ws, b, "tether-ln2"), mine, "the image's /usr/bin/id, not the host's")
    os.unlink(app)
    os.symlink("../../../../../../../../usr/bin/id", app)
    eq(seen_by_a_gate(ws, b, "tether-ln3"), mine, "a link that climbs past /")
    for n, target in enumerate(["/proc/1/exe", "/proc/1/root/usr/bin/id"]):
        os.unlink(app)
        os.symlink(target, app)
        eq(seen_by_a_gate(ws, b, "tether-lp%d" % n),
           "null: `/app`: too many symbolic links, or a link into /proc, which is refused",
           target)


@case
def fifo_device_or_directory_entrypoint_does_not_block_the_hook(ws):
    """An entrypoint that is no regular file is never opened for reading: a FIFO would block
    the hook, a device would run its driver's open.  The gate decides, at once."""
    b = bundle(ws, ["/app"])
    app = os.path.join(b, "rootfs", "app")
    for n, (make, kind) in enumerate([
            (lambda: os.mkfifo(app), "a FIFO"),
            (lambda: os.mknod(app, 0o755 | stat.S_IFCHR, os.makedev(1, 3)), "a character device"),
            (lambda: os.mkdir(app), "a directory")]):
        make()
        t0 = time.monotonic()
        eq(seen_by_a_gate(ws, b, "tether-ff%d" % n), "null: `/app`: %s, not a regular file" % kind,
           kind)
        assert time.monotonic() - t0 < 30, "the gate took %.1f s" % (time.monotonic() - t0)
        (os.rmdir if os.path.isdir(app) else os.unlink)(app)


@case
def entrypoint_found_through_the_containers_path(ws):
    """A program name without a slash is looked up in the PATH of process.env, as runc looks:
    the first directory that holds a regular file with an execute bit; the container runs
    that very file."""
    b = bundle(ws, ["tool", "try", "getpid"])
    set_process(b, env=["PATH=/decoy:/empty:/opt/bin:/usr/bin", "TERM=xterm"])
    rootfs = os.path.join(b, "rootfs")
    for d in ("decoy/tool", "empty", "opt/bin", "usr/bin"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy(PROBE, os.path.join(rootfs, "decoy", "tool"))
    os.chmod(os.path.join(rootfs, "decoy", "tool"), 0o644)
    shutil.copy(PROBE, os.path.join(rootfs, "opt", "bin", "tool"))
    later = another_probe(os.path.join(rootfs, "usr", "bin", "tool"))
    want = sha256_of(PROBE)
    assert later != want
    node(ws, SEEN + 'return {allow = e ~= nil and e.sha256 == "%s", reasons = {seen}}' % want)
    p = run_container(ws, b, cid("tether-path"))
    eq((p.returncode, json.loads(p.stdout or "null")), (0, {"try": {"getpid": 0}}),
       "runc ran the tool: " + p.stderr)
    eq(records(ws, "decision", cid("tether-path"))[0]["reasons"], ["/opt/bin/tool %s init" % want],
       "what the gate saw")


@case
def entrypoint_the_runtime_could_find_elsewhere_is_refused(ws):
    """The image names every directory of PATH.  Two of them led runc to another file than
    the one the gate measured: a `..` after a link (Go's exec.LookPath cleans it away by the
    name, the kernel resolves it through the link), and a link into the container's /proc
    (/proc/self is runc there, and nothing for tether, which skipped the entry).  The gate
    now stops the search there: a deny, and neither file runs."""
    want = sha256_of(PROBE)
    node(ws, SEEN + 'return {allow = e ~= nil and e.sha256 == "%s", reasons = {seen}}' % want)
    cases = {
        "dotdot": (["PATH=/lnk/..:/real"], "/", "/lnk/../app", "a `..` in a `PATH` directory"),
        "proc": (["PATH=/p:/real"], "/w", "/p/app", "leads into /proc"),
    }
    for name, (env, cwd, where, why) in cases.items():
        b = bundle(ws, ["app", "mark", "/ran"], name="b-" + name)
        set_process(b, env=env, cwd=cwd)
        rootfs = os.path.join(b, "rootfs")
        for d in ("real/bin", "w"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(PROBE, os.path.join(rootfs, "real", "app"))  # what the gate measured
        os.symlink("/real/bin", os.path.join(rootfs, "lnk"))
        os.symlink("/proc/self/cwd", os.path.join(rootfs, "p"))
        for other in ("app", "w/app"):  # what runc would have run
            shutil.copy(PROBE, os.path.join(rootfs, other))
            another_probe(os.path.join(rootfs, other))
        c = cid("tether-" + name)
        p = run_container(ws, b, c)
        subprocess.run([runc(), "delete", "--force", c], capture_output=True)
        assert p.returncode != 0, "%s: runc started the container: %s" % (name, p.stdout)
        assert not os.path.exists(os.path.join(rootfs, "ran")), name + ": a program ran"
        reason = records(ws, "decision", c)[-1]["reasons"][0]
        assert where in reason and why in reason, (name, reason)


@case
def entrypoint_others_could_swap_before_the_start_has_no_hash(ws):
    """runc executes the entrypoint by its path after the hooks, and `runc start` may come
    long after `runc create`: a user who may write a directory on the way (here /app, the
    image's, owned by nobody) renamed another program over the measured one in between,
    and it ran as root.  Such an entrypoint has no sha256 now, and `replaceable` says why:
    a policy that admits by hash denies it.  Root's /app is admitted."""
    want = sha256_of(PROBE)
    node(ws, SEEN + 'return {allow = e ~= nil and e.sha256 == "%s", '
                    'reasons = {seen, tostring(e and e.replaceable)}}' % want)
    b = bundle(ws, ["/app/run", "mark", "/ran"])
    app = os.path.join(b, "rootfs", "app")
    os.makedirs(app)
    shutil.copy(PROBE, os.path.join(app, "run"))
    os.chown(app, NOBODY, NOBODY)
    c = cid("tether-swap")
    # Not through pipes: a created container would hold them open.
    with open(ws.path("create.err"), "w+") as err:
        p = subprocess.run([runc(), "create", "-b", b, c], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        why = err.read()
    try:
        eq(p.returncode != 0, True, "runc create of a container whose entrypoint nobody can "
                                    "swap: " + why)
        reasons = records(ws, "decision", c)[-1]["reasons"]
        eq(reasons[0], "/app/run nil init", "what the gate saw")
        assert "`/app`" in reasons[1] and "uid %d" % NOBODY in reasons[1], reasons
    finally:
        subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    os.chown(app, 0, 0)
    p = run_container(ws, b, cid("tether-noswap"))
    eq(p.returncode, 0, "root's /app: " + p.stderr)
    assert os.path.exists(os.path.join(b, "rootfs", "ran")), "it did not run"


@case
def entrypoint_lookups_the_container_user_or_a_later_writer_would_change_are_refused(ws):
    """Two more ways runc found another file than the gate (found by a helper reviewing the
    fixes above): runc looks up PATH as the container's user, so a directory that user may
    not search is passed over by runc and not by tether, root; and a PATH directory passed
    over because it was empty could be filled by its owner (nobody) before runc looks."""
    want = sha256_of(PROBE)
    node(ws, SEEN + 'return {allow = e ~= nil and e.sha256 == "%s", '
                    'reasons = {seen, tostring(e and e.replaceable)}}' % want)
    # the user's view: /usr/local/bin (0700) holds the measured file, runc would take /usr/bin's
    b = bundle(ws, ["app", "mark", "/out/ran"], name="b-user")
    set_process(b, env=["PATH=/usr/local/bin:/usr/bin"], user={"uid": 1000, "gid": 1000})
    rootfs = os.path.join(b, "rootfs")
    for d in ("usr/local/bin", "usr/bin", "out"):
        os.makedirs(os.path.join(rootfs, d))
    os.chmod(os.path.join(rootfs, "usr", "local", "bin"), 0o700)
    os.chmod(os.path.join(rootfs, "out"), 0o777)
    shutil.copy(PROBE, os.path.join(rootfs, "usr", "local", "bin", "app"))
    shutil.copy(PROBE, os.path.join(rootfs, "usr", "bin", "app"))
    another_probe(os.path.join(rootfs, "usr", "bin", "app"))
    c = cid("tether-user")
    p = run_container(ws, b, c)
    subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    assert p.returncode != 0, "runc started the container: " + p.stdout
    assert not os.path.exists(os.path.join(rootfs, "out", "ran")), "a program ran"
    reason = records(ws, "decision", c)[-1]["reasons"][0]
    assert "`/usr/local/bin`: mode 0700 gives others no search" in reason, reason
    # an empty PATH directory of nobody's before the measured file
    b = bundle(ws, ["app", "mark", "/ran"], name="b-later")
    set_process(b, env=["PATH=/opt/bin:/usr/bin"])
    rootfs = os.path.join(b, "rootfs")
    for d in ("opt/bin", "usr/bin"):
        os.makedirs(os.path.join(rootfs, d))
    os.chown(os.path.join(rootfs, "opt", "bin"), NOBODY, NOBODY)
    shutil.copy(PROBE, os.path.join(rootfs, "usr", "bin", "app"))
    c = cid("tether-later")
    p = run_container(ws, b, c)
    subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    assert p.returncode != 0, "runc started the container: " + p.stdout
    eq(records(ws, "decision", c)[-1]["reasons"],
       ["/usr/bin/app nil init", "`/opt/bin`: owned by uid %d, not root; refusing" % NOBODY],
       "what the gate saw")


@case
def a_nest_of_links_is_walked_within_one_budget(ws):
    """The walk that checks what an entrypoint's path goes through followed each link's
    target again for every link before it: 19 links made the gate take 8 s, and the image
    chooses how many.  One budget of 40 links now covers the whole walk, as the kernel's."""
    node(ws, SEEN + 'return {allow = false, reasons = {seen, tostring(e and e.replaceable)}}')
    b = bundle(ws, ["/" + "l/" * 30 + "probe"])
    os.symlink(".", os.path.join(b, "rootfs", "l"))
    c = cid("tether-links")
    p = subprocess.run([runc(), "run", "-b", b, c], capture_output=True, text=True, timeout=60)
    subprocess.run([runc(), "delete", "--force", c], capture_output=True)
    assert p.returncode != 0, "a denied container ran"
    eq(records(ws, "decision", c)[-1]["reasons"][1:],
       ["`/%sprobe`: too many links" % ("l/" * 30)], "the gate's answer")


@case
def entrypoint_default_path_and_the_bundle_fallback(ws):
    """Without PATH in process.env the runtimes' default is searched, a relative PATH entry
    is passed over, a relative program is found under process.cwd, and a state without a
    pid has the entrypoint looked up in the bundle's root, which the input says."""
    node(ws, SEEN + 'return {allow = true, reasons = {seen}}')
    b = bundle(ws, ["tool"], hooks=False)
    rootfs = os.path.join(b, "rootfs")
    for d in ("bin", "sbin"):
        os.makedirs(os.path.join(rootfs, d))
        shutil.copy(PROBE, os.path.join(rootfs, d, "tool"))
    other = another_probe(os.path.join(rootfs, "sbin", "tool"))
    want = sha256_of(PROBE)

    def seen(name, pid, **process):
        set_process(b, **process)
        c = cid(name)
        st = dict({"ociVersion": "1.0.2", "id": c, "status": "creating", "bundle": b},
                  **({"pid": pid} if pid else {}))
        hook(ws, "createRuntime", json.dumps(st), 0)
        hook(ws, "poststop", json.dumps(st), 0)
        return records(ws, "decision", c)[-1]["reasons"][0]

    eq(seen("tether-dp1", os.getpid(), env=["TERM=xterm"]), "/sbin/tool %s init" % other,
       "the default PATH, /sbin before /bin")
    eq(seen("tether-dp2", os.getpid(), env=["PATH=sbin:/bin"]), "/bin/tool %s init" % want,
       "a relative PATH entry")
    eq(seen("tether-dp3", os.getpid(), args=["./tool"], cwd="/bin"),
       "/bin/./tool %s init" % want, "a relative program")
    eq(seen("tether-dp4", None, args=["/bin/tool"]), "/bin/tool %s bundle" % want, "no pid")


@case
def forbidden_binary_in_a_container_is_killed_by_its_monitor(ws):
    node(ws, 'if input.tether.phase == "monitor" then\n'
             '  for _, p in ipairs(input.processes or {}) do\n'
             '    if p.exe.path == "/forbidden" then\n'
             '      return {allow = false, reasons = {"forbidden binary in the container"}}\n'
             '    end\n'
             '  end\n'
             'end\n'
             'return {allow = true, monitor = {interval_ms = 100, on_drift = "kill"}}')
    b = bundle(ws, ["/probe", "sleep", "0.5", "exec", "/forbidden", "sleep", "30"])
    shutil.copy(PROBE, os.path.join(b, "rootfs", "forbidden"))
    p = run_container(ws, b, cid("tether-mon"))
    assert p.returncode in (143, 137), "runc: %d %s" % (p.returncode, p.stderr)
    ev = [(r["event"], r.get("container_id")) for r in ws.audit_records()]
    assert ("drift", cid("tether-mon")) in ev, ev
    drift = [r for r in ws.audit_records() if r["event"] == "drift"][0]
    eq((drift["reason"], drift["action"]), ("forbidden binary in the container", "kill"), "drift")
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "monitor_ended" not in [e for e, _ in ev]:
        time.sleep(0.05)
        ev = [(r["event"], r.get("container_id")) for r in ws.audit_records()]
    assert ("monitor_ended", cid("tether-mon")) in ev, "the monitor ended with its container"
    assert not os.path.exists("/run/tether/" + cid("tether-mon")), "poststop removed the state"


ALLOW_ONE_IMAGE = ('local img = input.container and input.container.image\n'
                   'if img and img.name == "localhost/tether-ok:1" then\n'
                   '  return {allow = true, reasons = {"approved image"}}\n'
                   'end\n'
                   'return {allow = false, reasons = {"image " .. tostring(img and img.name) '
                   '.. " is not approved"}}')


def gate(ws, cid, claims, rc):
    """The createRuntime hook for container cid, whose bundle's annotations claim claims."""
    b = ws.path("b-" + cid)
    if not os.path.exists(b):
        bundle(ws, ["/probe"], hooks=False, name="b-" + cid)
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["annotations"] = claims
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    st = json.dumps({"ociVersion": "1.0.2", "id": cid, "status": "creating", "pid": os.getpid(),
                     "bundle": b})
    p = hook(ws, "createRuntime", st, rc)
    if rc == 0:
        hook(ws, "poststop", st, 0)
    return p


@case
def an_image_claiming_an_allowed_name_is_denied(ws):
    """An image named localhost/claims:1 that claims, in its annotations, to be the allowed
    localhost/tether-ok:1: the root-owned storage record decides, and it is denied."""
    tag = str(os.getpid())
    claims = {"org.opencontainers.image.ref.name": "localhost/tether-ok:1",
              "io.kubernetes.cri-o.ImageName": "localhost/tether-ok:1",
              "org.opencontainers.image.digest": "sha256:" + "00" * 32}
    node(ws, ALLOW_ONE_IMAGE, container={"podman_storage": storage(ws, [
        record("claims-" + tag, "localhost/claims:1"),
        record("ok-" + tag, "localhost/tether-ok:1")])})
    p = gate(ws, "claims-" + tag, claims, 77)
    eq(one_line(p.stderr), "tether: denied: container claims-%s: image localhost/claims:1 is "
       "not approved" % tag, "the reason names the recorded image")
    # The same policy allows the container whose record names the approved image.
    gate(ws, "ok-" + tag, claims, 0)
    # runc used directly: no record of the container, so no image name, whatever it claims.
    p = gate(ws, "direct-" + tag, claims, 77)
    assert "image nil is not approved" in one_line(p.stderr), p.stderr
    recs = [r for r in ws.audit_records() if r["event"] == "decision"]
    eq([r["allow"] for r in recs], [False, True, False], "decisions on record")
    # CRI-O's own keys count only on a node that says its runtime is CRI-O.
    node(ws, ALLOW_ONE_IMAGE, container={"podman_storage": ws.path("none"), "runtime": "cri-o"})
    gate(ws, "crio-" + tag, {"io.kubernetes.cri-o.ImageName": "localhost/tether-ok:1"}, 0)
    p = gate(ws, "crio2-" + tag, {"org.opencontainers.image.ref.name": "localhost/tether-ok:1"}, 77)
    assert "image nil" in one_line(p.stderr)


@case
def untrusted_container_storage_is_refused(ws):
    """Records that someone other than root could have written are not believed: the gate
    denies, naming the file."""
    tag = str(os.getpid())
    root = storage(ws, [record("ok-" + tag, "localhost/tether-ok:1")])
    node(ws, ALLOW_ONE_IMAGE, container={"podman_storage": root})
    cj = os.path.join(root, "overlay-containers", "containers.json")
    claims = {}
    gate(ws, "ok-" + tag, claims, 0)
    os.chmod(cj, 0o666)
    p = gate(ws, "ok-" + tag, claims, 77)
    assert cj in one_line(p.stderr) and "not trusted" in p.stderr, p.stderr
    os.chmod(cj, 0o644)
    os.chown(cj, 65534, 65534)  # nobody's
    p = gate(ws, "ok-" + tag, claims, 77)
    assert cj in one_line(p.stderr) and "owner 65534" in p.stderr, p.stderr
    os.chown(cj, 0, 0)
    os.chmod(os.path.join(root, "overlay-containers"), 0o777)
    p = gate(ws, "ok-" + tag, claims, 77)
    assert "overlay-containers` is not trusted" in one_line(p.stderr), p.stderr
    os.chmod(os.path.join(root, "overlay-containers"), 0o755)
    # A link to a file that nobody may write is still refused: the file is opened as named.
    os.rename(cj, cj + ".real")
    os.symlink(cj + ".real", cj)
    p = gate(ws, "ok-" + tag, claims, 77)
    assert cj in one_line(p.stderr), p.stderr
    os.unlink(cj)
    os.mkfifo(cj, 0o644)
    p = gate(ws, "ok-" + tag, claims, 77)
    assert "not a regular file" in one_line(p.stderr), p.stderr
    os.unlink(cj)
    os.rename(cj + ".real", cj)
    gate(ws, "ok-" + tag, claims, 0)


@case
def container_section_of_the_configuration(ws):
    for section, needle in (({"runtime": "docker"}, "`container.runtime` must be"),
                            ({"podman_storage": "var/lib"}, "must be an absolute path"),
                            ({"storage": "/x"}, "unknown key `container.storage`")):
        ws.write("bad.json", json.dumps({"container": section}))
        p = ws.tether("measure", "--config", ws.path("bad.json"), check_rc=125)
        assert needle in one_line(p.stderr), (needle, p.stderr)


@case
def wrapper_with_the_default_policy(ws):
    """The default policy allows a root-owned runtime and leaves the container's confinement
    to its config.json; at a hook it says it does not judge containers."""
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}}))
    b = bundle(ws, ["/probe", "try", "getpid"], hooks=False)
    p = ws.tether("run", "--bundle", b, "--", runc(), "run", "-b", b, cid("tether-def"), timeout=60)
    eq((p.returncode, json.loads(p.stdout)), (0, {"try": {"getpid": 0}}), "ran: " + p.stderr)
    pol = ws.decision_policy({"allow": True, "confine": {"seccomp": "default"}}, "confining.lua")
    p = ws.tether("run", "--policy", pol, "--bundle", b, "--", runc(), "run", "-b", b, cid("tether-c"),
                  check_rc=125)
    assert "config.json instead" in one_line(p.stderr)
    st = json.dumps({"ociVersion": "1.0.2", "id": cid("tether-dh"), "status": "creating",
                     "pid": os.getpid(), "bundle": b})
    p = hook(ws, "createRuntime", st, 77)
    assert "does not judge containers" in one_line(p.stderr)


# --- the container monitor and its guard, on a stand-in container ---
#
# A process of the test's own, in a cgroup of the test's own, stands in for a container's
# init; `tether hook createRuntime` is given the state a runtime would give.  Each case has
# its own container id (so its own /run/tether/ID), cgroup and audit file.

def cgroup2_mount():
    for line in open("/proc/self/mountinfo"):
        left, right = line.split(" - ", 1)
        if right.startswith("cgroup2 "):
            return left.split()[4]
    raise Skip("no cgroup2 hierarchy")


class StandIn:
    """A stand-in container: an init in a cgroup of its own, and its bundle and state."""

    def __init__(self, ws, name, args=(PROBE, "sleep", "60")):
        if os.geteuid() != 0:
            raise Skip("a cgroup for the stand-in container needs root here")
        self.ws = ws
        self.id = "tether-%s-%d" % (name, os.getpid())
        own = [l[3:] for l in open("/proc/self/cgroup").read().splitlines() if l.startswith("0::")]
        if not own:
            raise Skip("this process is in no cgroup2 group")
        self.cg = os.path.join(cgroup2_mount() + own[0].rstrip("/"), self.id)
        os.mkdir(self.cg)
        self.bundle = ws.path("bundle-" + name)
        os.makedirs(os.path.join(self.bundle, "rootfs"))
        json.dump({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                   "process": {"args": ["/probe"], "cwd": "/", "user": {"uid": 0, "gid": 0}}},
                  open(os.path.join(self.bundle, "config.json"), "w"))
        self.procs = []
        self.init = self.start(*args)
        self.statedir = "/run/tether/" + self.id

    def start(self, *args):
        """A process of the container (it writes itself into the cgroup before exec)."""
        procs = os.path.join(self.cg, "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write("0")
        p = subprocess.Popen(list(args), preexec_fn=enter, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def state(self):
        return json.dumps({"ociVersion": "1.0.2", "id": self.id, "status": "creating",
                           "pid": self.init.pid, "bundle": self.bundle})

    def members(self):
        try:
            return [int(x) for x in open(os.path.join(self.cg, "cgroup.procs")).read().split()]
        except FileNotFoundError:
            return []

    def pid_of(self, what):
        return int(open(os.path.join(self.statedir, what + ".pid")).read())

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        hook(self.ws, "poststop", self.state(), 0)
        try:
            open(os.path.join(self.cg, "cgroup.kill"), "w").write("1")
        except OSError:
            pass
        wait_for(lambda: not self.members(), what="the cgroup to empty")
        os.rmdir(self.cg)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return False


def records(ws, event, cid):
    return [r for r in ws.audit_records() if r["event"] == event and r.get("container_id") == cid]


def watched(ws, policy_body, name, **monitor):
    """A node whose policy is policy_body, a stand-in container, and its monitor started."""
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "policy": ws.policy(policy_body),
                                        "monitor": dict({"grace_s": 1}, **monitor)}))
    c = StandIn(ws, name)
    try:
        hook(ws, "createRuntime", c.state(), 0)
        assert records(ws, "monitor_started", c.id), "the monitor started"
    except BaseException:
        c.close()
        raise
    return c


KILL_ON_DRIFT = 'return {allow = true, monitor = {on_drift = "kill"}}'


@case
def killed_container_monitor_kills_its_container(ws):
    c = watched(ws, KILL_ON_DRIFT, "mkill")
    try:
        other = c.start(PROBE, "sleep", "60")
        monitor, guard = c.pid_of("monitor"), c.pid_of("guard")
        assert alive(monitor) and alive(guard), "monitor and guard run"
        os.kill(monitor, signal.SIGKILL)
        c.init.wait(timeout=10)
        other.wait(timeout=10)
        eq((c.init.returncode, other.returncode), (-9, -9), "the container's processes were killed")
        wait_for(lambda: not alive(guard), what="the guard to exit")
        fail = records(ws, "monitor_failed", c.id)
        eq(len(fail), 1, "one monitor_failed record")
        assert "died" in fail[0]["reason"] and fail[0]["action"] == "kill", fail[0]
        eq(records(ws, "drift", c.id), [], "no drift record: the monitor did not act")
    finally:
        c.close()


@case
def hung_container_monitor_is_taken_over_by_its_guard(ws):
    c = watched(ws, KILL_ON_DRIFT, "mhang")
    try:
        monitor = c.pid_of("monitor")
        os.kill(monitor, signal.SIGSTOP)
        t0 = time.monotonic()
        c.init.wait(timeout=20)
        took = time.monotonic() - t0
        eq(c.init.returncode, -9, "the container was killed")
        # The bound is GUARD_IDLE_MS (5 s) without a beat.
        assert 4 <= took <= 15, "killed after %.1f s" % took
        wait_for(lambda: not alive(monitor), what="the hung monitor to be killed")
        fail = records(ws, "monitor_failed", c.id)
        eq(len(fail), 1, "one monitor_failed record")
        assert "no heartbeat for 5000 ms" in fail[0]["reason"], fail[0]
    finally:
        c.close()


@case
def stopped_container_monitor_with_on_drift_stop_freezes(ws):
    c = watched(ws, 'return {allow = true, monitor = {on_drift = "stop"}}', "mstop")
    try:
        os.kill(c.pid_of("monitor"), signal.SIGKILL)
        wait_for(lambda: records(ws, "monitor_failed", c.id), what="monitor_failed")
        wait_for(lambda: "frozen 1" in open(os.path.join(c.cg, "cgroup.events")).read(),
                 what="the container's cgroup to freeze")
        assert alive(c.init.pid), "stop does not kill"
        eq(records(ws, "monitor_failed", c.id)[0]["action"], "stop", "action")
    finally:
        open(os.path.join(c.cg, "cgroup.freeze"), "w").write("0")
        c.close()


@case
def killed_guard_is_replaced(ws):
    c = watched(ws, KILL_ON_DRIFT, "gkill")
    try:
        guard = c.pid_of("guard")
        os.kill(guard, signal.SIGKILL)
        wait_for(lambda: records(ws, "guard_failed", c.id), what="guard_failed")
        new = wait_for(lambda: c.pid_of("guard") != guard and c.pid_of("guard"),
                       what="a new guard")
        assert alive(new) and alive(c.init.pid), "a new guard, and the container runs on"
        assert "signal 9" in records(ws, "guard_failed", c.id)[0]["reason"]
        # The new guard guards: the monitor's death still ends the container.
        os.kill(c.pid_of("monitor"), signal.SIGKILL)
        c.init.wait(timeout=10)
        eq(len(records(ws, "monitor_failed", c.id)), 1, "monitor_failed")
    finally:
        c.close()


@case
def policy_hanging_in_the_monitor_phase_is_drift(ws):
    # string.find backtracks for minutes inside one C call: no instruction hook sees it.
    c = watched(ws, 'if input.tether.phase == "monitor" then\n'
                    '  string.find(string.rep("a", 4000), string.rep("a-", 40) .. "b")\n'
                    'end\n'
                    'return {allow = true, monitor = {on_drift = "kill", interval_ms = 200}}',
                "phang")
    try:
        c.init.wait(timeout=30)
        drift = wait_for(lambda: records(ws, "drift", c.id), what="the drift record")[0]
        assert "timed out" in drift["reason"] and drift["action"] == "kill", drift
        eq(records(ws, "monitor_failed", c.id), [], "the monitor itself went on")
        wait_for(lambda: records(ws, "monitor_ended", c.id), what="the monitor's end")
    finally:
        c.close()


@case
def forbidden_exec_in_the_container_is_drift(ws):
    forbidden = ws.path("forbidden")
    shutil.copy(PROBE, forbidden)
    # No interval: only the exec event can bring the look that finds it.
    c = watched(ws, 'if input.tether.phase == "monitor" then\n'
                    '  for _, p in ipairs(input.processes or {}) do\n'
                    '    if p.exe.path == "%s" then\n'
                    '      return {allow = false, reasons = {"forbidden: " .. p.exe.path}}\n'
                    '    end\n'
                    '  end\n'
                    'end\n'
                    'return {allow = true, monitor = {on_drift = "kill"}}' % forbidden, "exec")
    try:
        time.sleep(0.5)
        eq(records(ws, "drift", c.id), [], "nothing happened before the exec")
        bad = c.start(forbidden, "sleep", "60")
        bad.wait(timeout=10)
        c.init.wait(timeout=10)
        drift = records(ws, "drift", c.id)[0]
        eq((drift["reason"], drift["action"]), ("forbidden: " + forbidden, "kill"), "drift")
        deny = [r for r in records(ws, "decision", c.id) if not r["allow"]][0]
        eq((deny["phase"], deny["trigger"]), ("monitor", "exec in the workload's tree"), "deny")
    finally:
        c.close()


@case
def replaced_policy_is_reloaded_and_denies(ws):
    c = watched(ws, KILL_ON_DRIFT, "reload")
    try:
        pol = ws.path("policy.lua")
        ws.write("policy.new", "function decide(input)\n"
                 "  return {allow = false, reasons = {\"revoked\"}}\nend\n")
        os.rename(ws.path("policy.new"), pol)
        c.init.wait(timeout=10)
        ev = [r["event"] for r in ws.audit_records() if r.get("container_id") == c.id]
        assert "policy_reloaded" in ev and ev.index("policy_reloaded") < ev.index("drift"), ev
        eq(records(ws, "drift", c.id)[0]["reason"], "revoked", "drift reason")
    finally:
        c.close()


@case
def broken_configuration_is_drift(ws):
    c = watched(ws, KILL_ON_DRIFT, "badcfg")
    try:
        ws.write("tether.json", '{"audit": 5}')
        c.init.wait(timeout=10)
        drift = records(ws, "drift", c.id)[0]
        assert "no longer valid" in drift["reason"], drift
        # poststop cannot read the configuration either, and still cleans up.
        hook(ws, "poststop", c.state(), 0)
        assert not os.path.exists(c.statedir), "poststop removed the state"
    finally:
        c.close()


@case
def heartbeat_status_and_a_clean_stop(ws):
    c = watched(ws, 'return {allow = true, monitor = {on_drift = "kill", interval_ms = 100}}',
                "beat", heartbeat_s=1)
    try:
        monitor, guard = c.pid_of("monitor"), c.pid_of("guard")
        wait_for(lambda: len(records(ws, "heartbeat", c.id)) >= 2, what="two heartbeats")
        beat = records(ws, "heartbeat", c.id)[-1]
        eq(beat["allow"], True, "heartbeat")
        st = [s for s in json.loads(ws.tether("status", "--json", check_rc=0).stdout)
              if s.get("container_id") == c.id]
        eq((len(st), st[0]["tether_pid"], st[0]["pid"], st[0]["argv"]),
           (1, monitor, c.init.pid, ["container", c.id]), "status")
        c.init.kill()
        c.init.wait()
        hook(ws, "poststop", c.state(), 0)
        wait_for(lambda: not alive(monitor) and not alive(guard), what="monitor and guard to end")
        eq(records(ws, "monitor_failed", c.id), [], "a clean stop is no failure")
        assert records(ws, "monitor_ended", c.id), "monitor_ended"
        assert not os.path.exists(c.statedir), "poststop removed the state"
        assert not os.path.exists("/run/tether/%d.json" % monitor), "the status file went"
    finally:
        c.close()


@case
def stop_request_while_the_container_runs_is_drift(ws):
    c = watched(ws, KILL_ON_DRIFT, "term")
    try:
        os.kill(c.pid_of("monitor"), signal.SIGTERM)
        c.init.wait(timeout=15)
        drift = records(ws, "drift", c.id)[0]
        assert "asked to end" in drift["reason"], drift
    finally:
        c.close()


@case
def real_runc_container_dies_with_its_monitor(ws):
    node(ws, 'return {allow = true, monitor = {on_drift = "kill"}}')
    name = cid("tether-rmon")
    b = bundle(ws, ["/probe", "sleep", "60"])
    p = subprocess.Popen([runc(), "run", "-b", b, name], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        pidfile = "/run/tether/%s/monitor.pid" % name
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read(), timeout=20,
                 what="the monitor")
        st = lambda: json.loads(subprocess.run([runc(), "state", name], capture_output=True,
                                               text=True).stdout or "{}").get("status")
        wait_for(lambda: st() == "running", what="the container to run")
        os.kill(int(open(pidfile).read()), signal.SIGKILL)
        eq(p.wait(timeout=20), 137, "runc run's status: the container was killed")
        assert st() != "running", "the container is gone"
        fail = records(ws, "monitor_failed", name)
        eq(len(fail), 1, "monitor_failed")
    finally:
        p.kill()
        p.wait()
        subprocess.run([runc(), "delete", "--force", name], capture_output=True)


# --- seeing what was decided (tether status) and cleaning up after failed starts ---

def status_of(ws, c):
    st = json.loads(ws.tether("status", "--json", "--config", ws.path("tether.json"),
                              check_rc=0).stdout)
    return [s for s in st if s.get("container_id") == c]


@case
def status_shows_a_container_gated_by_a_real_runc_hook(ws):
    name = cid("tether-stat")
    node(ws, 'if input.tether.phase == "hook" then\n'
             '  return {allow = true, reasons = {"gate: image " .. input.container.image.name},\n'
             '          monitor = {on_drift = "log", interval_ms = 200}}\n'
             'end\n'
             'return {allow = true, reasons = {"monitor: still fine"},\n'
             '        monitor = {on_drift = "log", interval_ms = 200}}',
         container={"podman_storage": storage(ws, [record(name, "localhost/probe:1")])})
    b = bundle(ws, ["/probe", "sleep", "60"])
    p = subprocess.Popen([runc(), "run", "-b", b, name], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        pidfile = "/run/tether/%s/monitor.pid" % name
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read(), timeout=20,
                 what="the monitor")
        monitor = int(open(pidfile).read())
        s = wait_for(lambda: [s for s in status_of(ws, name) if s["reasons"] ==
                              ["monitor: still fine"]], what="the monitor's decision")[0]
        eq((s["tether_pid"], s["state"], s["allow"], s["image"], s["argv"], s["monitored"]),
           (monitor, "running", True, "localhost/probe:1", ["container", name], True), "entry")
        table = ws.tether("status", "--config", ws.path("tether.json"), check_rc=0).stdout
        line = [l for l in table.splitlines() if ("container " + name) in l]
        assert len(line) == 1, table
        for want in [str(monitor), "running", "allow", "localhost/probe:1", "monitor: still fine"]:
            assert want in line[0], (want, line[0])
        assert table.splitlines()[0].split()[-3:] == ["COMMAND", "IMAGE", "REASON"], table
    finally:
        p.kill()
        p.wait()
        subprocess.run([runc(), "delete", "--force", name], capture_output=True)
    wait_for(lambda: not status_of(ws, name), what="the container to leave the list")


@case
def status_shows_a_container_without_a_monitor_as_gated(ws):
    node(ws, 'return {allow = true, reasons = {"fine without a monitor"}}')
    b = bundle(ws, ["/probe"], hooks=False)
    init = subprocess.Popen(["sleep", "60"])
    c = cid("tether-gated")
    st = json.dumps({"ociVersion": "1.0.2", "id": c, "status": "creating", "pid": init.pid,
                     "bundle": b})
    try:
        hook(ws, "createRuntime", st, 0)
        s = status_of(ws, c)
        eq([(x["tether_pid"], x["pid"], x["state"], x["allow"], x["reasons"], x["image"])
            for x in s], [(None, init.pid, "gated", True, ["fine without a monitor"], None)],
           "entry")
        line = [l for l in ws.tether("status", check_rc=0).stdout.splitlines() if c in l]
        assert line and line[0].startswith("-") and "gated" in line[0] and \
            "fine without a monitor" in line[0], line
        init.kill()
        init.wait()
        eq(status_of(ws, c), [], "a container whose init ended is not listed")
        assert not os.path.exists("/run/tether/" + c), "and its state was swept"
    finally:
        init.kill()
        init.wait()
        hook(ws, "poststop", st, 0)


@case
def status_denied_shows_a_refused_containers_reason(ws):
    name = cid("tether-sden")
    node(ws, 'return {allow = false, reasons = {"image " .. input.container.image.name ..\n'
             '                                  " is not approved here"}}',
         container={"podman_storage": storage(ws, [record(name, "localhost/probe:1")])})
    b = bundle(ws, ["/probe", "mark", "/ran"])
    p = run_container(ws, b, name)
    subprocess.run([runc(), "delete", "--force", name], capture_output=True)
    assert p.returncode != 0, "runc started a denied container"
    assert "image localhost/probe:1 is not approved here" in p.stderr, p.stderr
    out = ws.tether("status", "--denied", "--config", ws.path("tether.json"),
                    check_rc=0).stdout.splitlines()
    eq(len(out), 1, "one denial: %r" % out)
    assert out[0].endswith("denied(hook) container %s (localhost/probe:1): image "
                           "localhost/probe:1 is not approved here" % name), out[0]
    d = json.loads(ws.tether("status", "--denied", "--json", "--config",
                             ws.path("tether.json"), check_rc=0).stdout)
    eq([(x["container_id"], x["image"], x["stage"]) for x in d],
       [(name, "localhost/probe:1", "createRuntime")], "json")


@case
def failed_start_under_crun_leaves_no_state(ws):
    """crun calls no poststop hook when the start fails after the gate allowed it."""
    rt = crun_ready()
    b = bundle(ws, ["/does-not-exist"])
    for monitored in (True, False):
        name = cid("tether-fail%d" % monitored)
        node(ws, 'return {allow = true%s}' % (', monitor = {on_drift = "kill"}' if monitored
                                              else ""))
        p = subprocess.run([rt, "run", "-b", b, name], capture_output=True, text=True, timeout=60)
        subprocess.run([rt, "delete", "--force", name], capture_output=True)
        assert p.returncode != 0, "crun started it"
        eq([r["allow"] for r in records(ws, "decision", name)], [True], "the gate allowed it")
        eq([r for r in records(ws, "poststop", name)], [], "crun called no poststop hook")
        if monitored:
            # The monitor sees the init end, and removes the state as it goes (at once: any
            # tether's sweep on the node would also remove it, later).
            wait_for(lambda: not os.path.exists("/run/tether/" + name), timeout=2,
                     what="the state to go")
        else:
            # The next gate on the node sweeps it.
            other = subprocess.Popen(["sleep", "60"])
            oid = cid("tether-next")
            st = json.dumps({"ociVersion": "1.0.2", "id": oid, "status": "creating",
                             "pid": other.pid, "bundle": b})
            try:
                hook(ws, "createRuntime", st, 0)
                assert not os.path.exists("/run/tether/" + name), "the failed start's state is left"
            finally:
                other.kill()
                other.wait()
                hook(ws, "poststop", st, 0)


@case
def failed_start_under_runc_leaves_no_state(ws):
    name = cid("tether-rfail")
    node(ws, 'return {allow = true}')
    b = bundle(ws, ["/does-not-exist"])
    p = run_container(ws, b, name)
    subprocess.run([runc(), "delete", "--force", name], capture_output=True)
    assert p.returncode != 0, "runc started it"
    eq([r["allow"] for r in records(ws, "decision", name)], [True], "the gate allowed it")
    assert not os.path.exists("/run/tether/" + name), "the state is left"


@case
def poststop_without_a_readable_configuration_still_cleans_up(ws):
    node(ws, 'return {allow = true}')
    b = bundle(ws, ["/probe"], hooks=False)
    for n, spoil in enumerate([lambda: os.unlink(ws.path("tether.json")),
                               lambda: ws.write("tether.json", "{not json"),
                               lambda: os.chmod(ws.path("tether.json"), 0o666)]):
        node(ws, 'return {allow = true}')
        c = cid("tether-nocfg%d" % n)
        st = json.dumps({"ociVersion": "1.0.2", "id": c, "status": "creating",
                         "pid": os.getpid(), "bundle": b})
        hook(ws, "createRuntime", st, 0)
        assert os.path.isdir("/run/tether/" + c), "state written"
        spoil()
        p = hook(ws, "poststop", st, 0)
        assert "config" in p.stderr, p.stderr
        assert not os.path.exists("/run/tether/" + c), "poststop left the state (case %d)" % n


@case
def crun_writes_the_reason_where_its_hooks_stderr_annotation_says(ws):
    """crun keeps a hook's stderr from its caller; run.oci.hooks.stderr names a file for it."""
    rt = crun_ready()
    name = cid("tether-cerr")
    node(ws, 'return {allow = false, reasons = {"not on this node"}}')
    b = bundle(ws, ["/probe", "mark", "/ran"])
    cfg = json.load(open(os.path.join(b, "config.json")))
    err = ws.path("hooks.err")
    cfg["annotations"]["run.oci.hooks.stderr"] = err
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    p = subprocess.run([rt, "run", "-b", b, name], capture_output=True, text=True, timeout=60)
    subprocess.run([rt, "delete", "--force", name], capture_output=True)
    assert p.returncode != 0, "crun started a denied container"
    eq(open(err).read(), "tether: denied: container %s: not on this node\n" % name, "hook stderr")


if __name__ == "__main__":
    main()

"""OCI integration with the real runc: the hook gates containers, the wrapper measures the
bundle, and every malformed input is a deny with a reason."""
import json
import os
import shutil
import subprocess

from harness import PROBE, TETHER, Skip, case, eq, main, one_line


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
         container={"podman_storage": storage(ws, [record("tether-ok", "localhost/probe:1")])})
    b = bundle(ws, ["/probe", "try", "getpid"])
    p = run_container(ws, b, "tether-ok")
    eq(p.returncode, 0, "runc: " + p.stderr)
    eq(json.loads(p.stdout), {"try": {"getpid": 0}}, "the container's output arrived")
    recs = ws.audit_records()
    gate = [r for r in recs if r["event"] == "decision"][0]
    eq((gate["phase"], gate["stage"], gate["container_id"], gate["allow"]),
       ("hook", "createRuntime", "tether-ok", True), "gate record")
    assert "poststop" in [r["event"] for r in recs], "poststop recorded"
    assert not os.path.exists("/run/tether/tether-ok"), "poststop removed the state"


@case
def denied_container_never_runs(ws):
    node(ws, 'return {allow = false, reasons = {"image not approved here"}}')
    b = bundle(ws, ["/probe", "mark", "/ran"])
    p = run_container(ws, b, "tether-no")
    assert p.returncode != 0, "runc started a denied container"
    assert "image not approved here" in p.stderr, "runc's error carries tether's reason: " + p.stderr
    assert not os.path.exists(os.path.join(b, "rootfs", "ran")), "the workload ran"
    subprocess.run([runc(), "delete", "--force", "tether-no"], capture_output=True)


def hook(ws, stage, state, rc):
    p = subprocess.run([TETHER, "hook", stage, "--config", ws.path("tether.json")],
                       input=state, capture_output=True, text=True)
    eq(p.returncode, rc, "%s exit status: %s" % (stage, p.stderr))
    return p


@case
def malformed_inputs_are_denies(ws):
    node(ws, 'return {allow = true}')
    good = bundle(ws, ["/probe"], hooks=False)
    state = lambda **kw: json.dumps(dict({"ociVersion": "1.0.2", "id": "c1", "status": "creating",
                                          "pid": os.getpid(), "bundle": good}, **kw))
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
    # poststart and poststop never block, whatever they are given
    hook(ws, "poststart", "{not json", 0)
    hook(ws, "poststop", "[]", 0)
    p = subprocess.run([TETHER, "hook", "sideways"], input="{}", capture_output=True, text=True)
    eq(p.returncode, 125, "unknown stage")


@case
def poststop_removes_the_state(ws):
    node(ws, 'return {allow = true}')
    b = bundle(ws, ["/probe"], hooks=False)
    st = json.dumps({"ociVersion": "1.0.2", "id": "tether-st", "status": "creating",
                     "pid": os.getpid(), "bundle": b})
    hook(ws, "createRuntime", st, 0)
    assert os.path.isfile("/run/tether/tether-st/decision.json"), "state written at the gate"
    hook(ws, "poststop", st, 0)
    assert not os.path.exists("/run/tether/tether-st"), "poststop removed it"


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
    p = ws.tether("run", "--policy", pol, "--bundle", b, "--", runc(), "run", "-b", b, "tether-wrap",
                  timeout=60)
    eq(p.returncode, 0, "wrapper: " + p.stderr)
    rec = ws.audit_records()[0]
    import hashlib
    eq(rec["reasons"], [hashlib.sha256(open(os.path.join(b, "config.json"), "rb").read()).hexdigest()],
       "config_sha256")
    assert "s3cret" not in open(ws.audit).read(), "an environment value leaked"
    p = ws.tether("run", "--policy", pol, "--bundle", ws.path("nope"), "--", "true", check_rc=125)
    assert "config.json" in one_line(p.stderr)


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
    p = run_container(ws, b, "tether-mon")
    assert p.returncode in (143, 137), "runc: %d %s" % (p.returncode, p.stderr)
    ev = [(r["event"], r.get("container_id")) for r in ws.audit_records()]
    assert ("drift", "tether-mon") in ev, ev
    drift = [r for r in ws.audit_records() if r["event"] == "drift"][0]
    eq((drift["reason"], drift["action"]), ("forbidden binary in the container", "kill"), "drift")
    import time
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "monitor_ended" not in [e for e, _ in ev]:
        time.sleep(0.05)
        ev = [(r["event"], r.get("container_id")) for r in ws.audit_records()]
    assert ("monitor_ended", "tether-mon") in ev, "the monitor ended with its container"
    assert not os.path.exists("/run/tether/tether-mon"), "poststop removed the state"


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
    p = ws.tether("run", "--bundle", b, "--", runc(), "run", "-b", b, "tether-def", timeout=60)
    eq((p.returncode, json.loads(p.stdout)), (0, {"try": {"getpid": 0}}), "ran: " + p.stderr)
    pol = ws.decision_policy({"allow": True, "confine": {"seccomp": "default"}}, "confining.lua")
    p = ws.tether("run", "--policy", pol, "--bundle", b, "--", runc(), "run", "-b", b, "tether-c",
                  check_rc=125)
    assert "config.json instead" in one_line(p.stderr)
    st = json.dumps({"ociVersion": "1.0.2", "id": "tether-dh", "status": "creating",
                     "pid": os.getpid(), "bundle": b})
    p = hook(ws, "createRuntime", st, 77)
    assert "does not judge containers" in one_line(p.stderr)


if __name__ == "__main__":
    main()

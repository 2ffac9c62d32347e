"""OCI images (`tether run --image oci:DIR[:REF]`): layouts written here by hand, encrypted by
Debian's real skopeo (ocicrypt's JWE, RSA and EC keys); runs where the policy allows, a key
release only then, every tampering and a wrong key refused with nothing started, whiteouts,
and no plaintext on any disk afterwards."""
import base64
import gzip
import hashlib
import hmac
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

from harness import (PROBE, POLICIES, TETHER, Skip, case, disk_files_holding, eq, main,
                     one_line)

ALLOW_ALL = os.path.join(POLICIES, "allow-all.lua")
REF = "org.opencontainers.image.ref.name"
JWE = "org.opencontainers.image.enc.keys.jwe"
PUBOPTS = "org.opencontainers.image.enc.pubopts"
PROVIDER = "org.opencontainers.image.enc.keys.provider.tether"
OWN_POLICY = "org.tether.policy"

# Releases the key only in eu-de, and says so.
GEOFENCE = """
function decide(input)
  local labels = input.host.labels or {}
  if labels.region ~= "eu-de" then
    return {allow = false, reasons = {"images run in eu-de only"}}
  end
  return {allow = true, key = {id = "%s"}}
end
"""


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: an image's tree is a tmpfs in a private mount namespace")


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """An OCI image layout written the way skopeo writes one: oci-layout, index.json and
    blobs/sha256/<hex>."""

    def __init__(self, path):
        self.path = path

    def blob_path(self, digest):
        return os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])

    def put(self, data):
        d = sha(data)
        os.makedirs(os.path.dirname(self.blob_path(d)), exist_ok=True)
        with open(self.blob_path(d), "wb") as f:
            f.write(data)
        return d

    def read(self, digest):
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def index(self):
        with open(os.path.join(self.path, "index.json")) as f:
            return json.load(f)

    def write_index(self, idx):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(idx, f)

    def manifest(self):
        return json.loads(self.read(self.index()["manifests"][0]["digest"]))

    def replace_manifest(self, m):
        """Writes a changed manifest and points the index at it: only the bytes below it
        (layers, annotations) can then tell that anything changed."""
        data = json.dumps(m).encode()
        idx = self.index()
        idx["manifests"][0].update(digest=self.put(data), size=len(data))
        self.write_index(idx)


def tar_layer(entries):
    """A gzip tar layer from (name, kind, data, mode, uid) tuples, built in memory only."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data, mode, uid in entries:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime, ti.uid, ti.gid = mode, 0, uid, uid
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    raw = bio.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def write_image(path, layers, config, ref="app", annotations=None):
    os.makedirs(path)
    lay = Layout(path)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids = [], []
    for entries in layers:
        raw, gz = tar_layer(entries)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": lay.put(gz), "size": len(gz)})
        diff_ids.append(sha(raw))
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": lay.put(cfg), "size": len(cfg)},
                    "layers": descs, "annotations": annotations or {}}).encode()
    lay.write_index({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": lay.put(m),
         "size": len(m), "annotations": {REF: ref}}]})
    return lay


class Kit:
    """A marker, an image holding it with the static probe, a key store, and a node
    configuration in a region."""

    def __init__(self, ws, region="eu-de"):
        need_root()
        self.ws = ws
        self.marker = "TETHER-IMAGE-MARKER-%s" % os.urandom(8).hex()
        self.keys = ws.path("keys")
        os.mkdir(self.keys, 0o700)
        self.configure(region)
        with open(PROBE, "rb") as f:
            self.probe = f.read()

    def configure(self, region, **extra):
        cfg = {"audit": {"path": self.ws.audit}, "keystore": self.keys,
               "labels": {"region": region}}
        cfg.update(extra)
        self.ws.write("tether.json", json.dumps(cfg))

    def plain(self, name="plain", config=None, extra_layers=(), user_entries=()):
        base = [("bin", "dir", None, 0o755, 0), ("bin/probe", "file", self.probe, 0o755, 0),
                ("data", "dir", None, 0o755, 0),
                ("data/marker.txt", "file", (self.marker + "\n").encode(), 0o644, 0)]
        cfg = {"Entrypoint": ["/bin/probe"], "Cmd": ["cat", "/data/marker.txt"],
               "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/data"}
        cfg.update(config or {})
        return write_image(self.ws.path(name), [base + list(user_entries)] + list(extra_layers),
                           cfg, annotations={"org.example.team": "billing"})

    def key(self, name, kind):
        """A private key made by openssl, in the key store as <name>.pem; its public half."""
        priv = os.path.join(self.keys, name + ".pem")
        opts = {"rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]}[kind]
        subprocess.run(["openssl", "genpkey", *opts, "-out", priv], check=True, capture_output=True)
        os.chmod(priv, 0o600)
        pub = self.ws.path(name + ".pub.pem")
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True,
                       capture_output=True)
        return pub

    def encrypt(self, src, pub, name="enc"):
        """skopeo copy --encryption-key jwe:PUB: ocicrypt itself encrypts every layer."""
        if shutil.which("skopeo") is None:
            raise Skip("needs skopeo (contrib/setup.sh test installs it)")
        dst = self.ws.path(name)
        p = subprocess.run(["skopeo", "--insecure-policy", "copy", "--encryption-key", "jwe:" + pub,
                            "oci:%s:app" % src.path, "oci:%s:app" % dst], capture_output=True,
                           text=True)
        if p.returncode != 0:
            raise AssertionError("skopeo copy --encryption-key: " + p.stderr)
        return Layout(dst)

    def run(self, lay, *args, rc=0, policy=ALLOW_ALL, ref="app"):
        cmd = ["run", "--policy", policy, "--image", "oci:%s:%s" % (lay.path, ref)]
        if args:
            cmd += ["--", *args]
        return self.ws.tether(*cmd, check_rc=rc)

    def events(self):
        return [r["event"] for r in self.ws.audit_records()]

    def refused(self, lay, needle, rc=125, policy=ALLOW_ALL):
        """Refused with a one-line reason naming the cause, and nothing started."""
        before = len(self.ws.audit_records())
        p = self.run(lay, rc=rc, policy=policy)
        line = one_line(p.stderr)
        assert needle in line, (needle, line)
        eq(p.stdout, "", "the workload's output (it must not have run)")
        after = [r["event"] for r in self.ws.audit_records()[before:]]
        assert "exit" not in after, "the workload ran: %r" % after
        return line, after


# An image's own /proc/self/mountinfo, listing no mount at all.
FAKE_PROC = [("proc", "dir", None, 0o555, 0), ("proc/self", "dir", None, 0o555, 0),
             ("proc/self/mountinfo", "file", b"", 0o444, 0)]
GATED = """
if input.exec ~= nil then
  if input.exec.path == "/bin/other" then return {allow = false, reasons = {"not this one"}} end
  return {allow = true}
end
return {allow = true, monitor = {prevent_exec = true, on_drift = "log", exec_timeout_ms = 30000}}"""


@case
def plain_image_runs(ws):
    kit = Kit(ws)
    lay = kit.plain()
    r = json.loads(kit.run(lay).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "Entrypoint + Cmd, a file from the image")
    # ARGS replace Cmd; the image's Env and WorkingDir hold; the host is not there.
    r = json.loads(kit.run(lay, "cwd", "env", "GREETING", "env", "TETHER_CONFIG", "exists",
                           "/etc/machine-id", "status").stdout)
    eq(r["cwd"], "/data", "WorkingDir")
    eq(r["env GREETING"], "hello", "the image's Env")
    eq(r["env TETHER_CONFIG"], None, "tether's own environment is not the workload's")
    eq(r["exists /etc/machine-id"], 2, "the host's files are not in the tree")
    eq(r["uid"], 0, "no User: root")
    pids = {rec["tether_pid"] for rec in ws.audit_records()}
    for pid in pids:
        assert not os.path.exists("/run/tether/root.%d" % pid), "a mount point is left behind"
    assert "key_release" not in kit.events(), "a plain image needs no key"


@case
def an_images_workload_has_its_execs_judged(ws):
    """monitor.prevent_exec holds every exec of an image's workload too, though its root, the
    image's tree, has no /proc of its own to list its mounts from: a program the policy
    forbids never runs (EPERM, audited), one it allows does.  The image's own
    proc/self/mountinfo, which lists no mount, is not what is marked by."""
    kit = Kit(ws)
    lay = kit.plain(user_entries=FAKE_PROC + [("bin/other", "file", kit.probe, 0o755, 0)])
    pol = ws.policy(GATED)
    r = json.loads(kit.run(lay, "exec", "/bin/other", "cat", "/data/marker.txt",
                           policy=pol).stdout)
    eq(r, {"exec": 1}, "the forbidden program's execve failed with EPERM")
    den = [(d["path"], d["reason"]) for d in ws.audit_records() if d["event"] == "exec_denied"]
    eq(den, [("/bin/other", "not this one")], "audited")
    r = json.loads(kit.run(lay, "exec", "/bin/probe", "cat", "/data/marker.txt",
                           policy=pol).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "an allowed program runs")


# Runs a command with fsopen(2) failing (ENOSYS), as under a kernel before 5.2 or a seccomp
# profile older than the new mount API.
NO_FSOPEN = r"""
import ctypes, os, sys
s = ctypes.CDLL("libseccomp.so.2")
s.seccomp_init.restype = ctypes.c_void_p
ctx = ctypes.c_void_p(s.seccomp_init(0x7fff0000))
nr = s.seccomp_syscall_resolve_name(b"fsopen")
if nr < 0 or s.seccomp_rule_add(ctx, 0x00050000 | 38, nr, 0) != 0 or s.seccomp_load(ctx) != 0:
    sys.exit("no seccomp filter")
os.execv(sys.argv[1], sys.argv[1:])
"""


@case
def an_images_mount_table_is_never_what_marks(ws):
    """Where the gate cannot make a proc of its own, it reads /proc only if it is a proc: in
    an image's tree /proc/self/mountinfo is a file of the image's, which may list nothing.
    The workload does not start, and the forbidden program never runs."""
    kit = Kit(ws)
    lay = kit.plain(user_entries=FAKE_PROC + [("bin/other", "file", kit.probe, 0o755, 0)])
    pol = ws.policy(GATED)
    before = len(ws.audit_records())
    p = subprocess.run([sys.executable, "-c", NO_FSOPEN, TETHER, "run", "--policy", pol,
                        "--image", "oci:%s:app" % lay.path, "--", "exec", "/bin/other", "cat",
                        "/data/marker.txt"], env=ws.env, capture_output=True, text=True,
                       timeout=60)
    eq(p.returncode, 125, "exit status (stderr %r)" % p.stderr)
    assert "mount table" in one_line(p.stderr), p.stderr
    assert kit.marker not in p.stdout, "the forbidden program ran"
    after = [r["event"] for r in ws.audit_records()[before:]]
    assert "exit" not in after, "the workload ran: %r" % after

def cosign_sign(ws, lay, key, reference="localhost/app"):
    """A cosign signature of the image, as cosign stores it in a layout: a manifest tagged
    sha256-<hex>.sig whose layer is the simple-signing payload, signed with openssl (ECDSA
    P-256 over SHA-256, DER)."""
    mdigest = lay.index()["manifests"][0]["digest"]
    payload = json.dumps({"critical": {"identity": {"docker-reference": reference},
                                       "image": {"docker-manifest-digest": mdigest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()
    pfile = ws.path("payload.json")
    open(pfile, "wb").write(payload)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, pfile], check=True,
                         capture_output=True).stdout
    cfg = b"{}"
    sm = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                "digest": lay.put(cfg), "size": len(cfg)},
                     "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                                 "digest": lay.put(payload), "size": len(payload),
                                 "annotations": {"dev.cosignproject.cosign/signature":
                                                 base64.b64encode(sig).decode()}}]}).encode()
    idx = lay.index()
    idx["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": lay.put(sm), "size": len(sm),
                             "annotations": {REF: "sha256-%s.sig" % mdigest[7:]}})
    lay.write_index(idx)
    return mdigest


@case
def signed_images_are_verified_and_can_be_required(ws):
    kit = Kit(ws)
    lay = kit.plain()
    good, other = ws.path("cosign.key"), ws.path("other.key")
    for k in (good, other):
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", k], check=True, capture_output=True)
    pub = ws.path("cosign.pub")
    subprocess.run(["openssl", "pkey", "-in", good, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    os.chmod(pub, 0o644)
    # Unsigned, and signatures required: refused before the policy is asked.
    kit.configure("eu-de", trusted_image_signers=[pub], require_signed_images=True)
    line, events = kit.refused(lay, "require_signed_images")
    assert "decision" not in events, events
    # Signed with a key the node does not trust: still refused.
    cosign_sign(ws, lay, other)
    kit.refused(lay, "require_signed_images")
    # Signed with the trusted key: the policy sees it verified, and it runs.
    mdigest = cosign_sign(ws, lay, good)
    pol = ws.policy('for _, s in ipairs(input.image.signatures) do\n'
                    '  if s.verified and s.digest_matches then\n'
                    '    return {allow = true, reasons = {"signed by " .. s.signer}}\n'
                    '  end\n'
                    'end\n'
                    'return {allow = false, reasons = {"unsigned"}}', "signed.lua")
    r = json.loads(kit.run(lay, policy=pol).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "the signed image ran")
    dec = [x for x in ws.audit_records() if x["event"] == "decision"][-1]
    eq(dec["reasons"], ["signed by " + pub], "the policy saw the verified signature")
    assert mdigest.startswith("sha256:")


@case
def input_image_is_what_the_layout_holds(ws):
    kit = Kit(ws)
    lay = kit.plain(config={"User": "1234:99"})
    m = lay.manifest()
    want = {"ref": "app", "manifest_digest": lay.index()["manifests"][0]["digest"],
            "config_digest": m["config"]["digest"], "encrypted": False,
            "layer0": m["layers"][0]["digest"], "mt0": m["layers"][0]["mediaType"],
            "team": "billing", "ep": "/bin/probe", "cmd1": "/data/marker.txt",
            "env": "GREETING,PATH", "user": "1234:99", "wd": "/data", "sigs": 0}
    checks = """
  local i = input.image
  local got = {ref = i.ref, manifest_digest = i.manifest_digest, config_digest = i.config_digest,
    encrypted = i.encrypted, layer0 = i.layers[1].digest, mt0 = i.layers[1].media_type,
    team = i.annotations["org.example.team"], ep = i.config.entrypoint[1], cmd1 = i.config.cmd[2],
    env = table.concat(i.config.env_names, ","), user = i.config.user, wd = i.config.working_dir,
    sigs = #i.signatures}
  local want = %s
  for k, v in pairs(want) do
    if got[k] ~= v then return {allow = false, reasons = {"input.image: " .. k .. " = " .. tostring(got[k])}} end
  end
  if input.workload.argv[1] ~= "/bin/probe" then return {allow = false, reasons = {"argv"}} end
  return {allow = true}
""" % lua_table(want)
    p = kit.run(lay, "status", policy=ws.policy(checks))
    r = json.loads(p.stdout)
    eq((r["uid"], r["gid"]), (1234, 99), "the image's numeric User")


def lua_table(d):
    from harness import lua_literal
    return lua_literal(d)


@case
def user_by_name_from_the_image(ws):
    kit = Kit(ws)
    passwd = b"root:x:0:0:root:/root:/bin/sh\napp:x:4321:765:app:/home/app:/bin/sh\n"
    group = b"root:x:0:\nstaff:x:50:\n"
    etc = [("etc", "dir", None, 0o755, 0), ("etc/passwd", "file", passwd, 0o644, 0),
           ("etc/group", "file", group, 0o644, 0)]
    lay = kit.plain(config={"User": "app"}, user_entries=etc)
    r = json.loads(kit.run(lay, "status").stdout)
    eq((r["uid"], r["gid"]), (4321, 765), "User by name: its passwd entry")
    shutil.rmtree(lay.path)
    lay = kit.plain(config={"User": "app:staff"}, user_entries=etc)
    r = json.loads(kit.run(lay, "status").stdout)
    eq((r["uid"], r["gid"]), (4321, 50), "user:group by name")
    shutil.rmtree(lay.path)
    lay = kit.plain(config={"User": "nosuch"}, user_entries=etc)
    line, _ = kit.refused(lay, "nosuch")
    assert "/etc/passwd" in line, line


@case
def whiteouts(ws):
    kit = Kit(ws)
    upper = [("data/.wh.gone.txt", "file", b"", 0o644, 0),
             ("cache/.wh..wh..opq", "file", b"", 0o644, 0),
             ("cache/new.txt", "file", b"new\n", 0o644, 0),
             ("data/added.txt", "file", b"added\n", 0o644, 0)]
    lower_extra = [("data/gone.txt", "file", b"gone\n", 0o644, 0), ("cache", "dir", None, 0o755, 0),
                   ("cache/old.txt", "file", b"old\n", 0o644, 0),
                   ("cache/sub", "dir", None, 0o755, 0),
                   ("cache/sub/deep.txt", "file", b"deep\n", 0o644, 0)]
    lay = kit.plain(user_entries=lower_extra, extra_layers=[upper])
    r = json.loads(kit.run(lay, "exists", "/data/gone.txt", "exists", "/data/marker.txt", "exists",
                           "/cache/old.txt", "exists", "/cache/sub", "cat", "/cache/new.txt", "cat",
                           "/data/added.txt", "exists", "/data/.wh.gone.txt", "exists",
                           "/cache/.wh..wh..opq").stdout)
    eq(r, {"exists /data/gone.txt": 2, "exists /data/marker.txt": 0, "exists /cache/old.txt": 2,
           "exists /cache/sub": 2, "cat /cache/new.txt": "new", "cat /data/added.txt": "added",
           "exists /data/.wh.gone.txt": 2, "exists /cache/.wh..wh..opq": 2},
       "the upper layer's whiteouts removed the lower layer's files, and are not files")
    # A whiteout that climbs out of the tree is refused before anything runs.
    shutil.rmtree(lay.path)
    lay = kit.plain(extra_layers=[[("data/../../.wh.etc", "file", b"", 0o644, 0)]])
    kit.refused(lay, "root file system: layer 1")


def encrypted_round(ws, kind):
    kit = Kit(ws)
    pub = kit.key("k-" + kind, kind)
    plain = kit.plain()
    lay = kit.encrypt(plain, pub)
    shutil.rmtree(plain.path)  # only the encrypted image is left on disk
    layers = lay.manifest()["layers"]
    assert all(l["mediaType"].endswith("+encrypted") for l in layers), layers
    geofence = ws.write("geofence.lua", GEOFENCE % ("k-" + kind))
    stamp = ws.path("stamp")
    open(stamp, "w").close()
    time.sleep(0.05)

    # allowed in eu-de: the key is released, on record, and the image's file is shown
    r = json.loads(kit.run(lay, policy=geofence).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "the decrypted image ran")
    recs = ws.audit_records()
    rel = [x for x in recs if x["event"] == "key_release"]
    eq(len(rel), 1, "one key_release record")
    eq((rel[0]["key_id"], rel[0]["source"], rel[0]["digest"]),
       ("k-" + kind, "keystore", lay.index()["manifests"][0]["digest"]), "the key_release record")

    # denied in us-east: 77, no key released, nothing ran
    kit.configure("us-east")
    _, after = kit.refused(lay, "images run in eu-de only", rc=77, policy=geofence)
    assert "key_release" not in after, "a key was released for a denied image"

    # a wrong key (another of the same kind) opens nothing
    kit.configure("eu-de")
    kit.key("other", kind)
    kit.refused(lay, "wrong key", policy=ws.write("other.lua", GEOFENCE % "other"))
    # a key of the other kind neither
    kit.key("rsa2" if kind != "rsa" else "ec2", "rsa" if kind != "rsa" else "p256")
    kit.refused(lay, "wrong key",
                policy=ws.write("o2.lua", GEOFENCE % ("rsa2" if kind != "rsa" else "ec2")))

    hits, scanned = disk_files_holding(kit.marker.encode(), stamp)
    eq(hits, [], "files on disk holding the image's plaintext")
    assert scanned > 0, "nothing was scanned: the check would pass blind"


@case
def encrypted_rsa(ws):
    encrypted_round(ws, "rsa")


@case
def encrypted_ec_p256(ws):
    encrypted_round(ws, "p256")


@case
def encrypted_ec_p384(ws):
    encrypted_round(ws, "p384")


def scratch_copy(ws, lay):
    """A fresh copy of a layout to tamper with."""
    dst = ws.path("t")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(lay.path, dst)
    return Layout(dst)


def flip_blob(lay, digest, offset):
    """Changes one byte of a blob in place (its name, the digest, stays)."""
    path = lay.blob_path(digest)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 1]))


@case
def tampering_is_refused(ws):
    kit = Kit(ws)
    pub = kit.key("k1", "rsa")
    plain = kit.plain()
    enc = kit.encrypt(plain, pub)
    policy = ws.write("allow-key.lua", GEOFENCE % "k1")

    def fresh():
        return scratch_copy(ws, enc)

    # a layer's bytes: its digest no longer matches
    lay = fresh()
    flip_blob(lay, lay.manifest()["layers"][0]["digest"], 100)
    kit.refused(lay, "does not match its digest", policy=policy)

    # the layer changed and the manifest and index rewritten to match: only the HMAC sees it,
    # and it sees it before anything is decrypted
    lay = fresh()
    m = lay.manifest()
    data = bytearray(lay.read(m["layers"][0]["digest"]))
    data[100] ^= 1
    m["layers"][0]["digest"] = lay.put(bytes(data))
    lay.replace_manifest(m)
    _, after = kit.refused(lay, "HMAC does not match", policy=policy)
    assert "launch_failed" in after, after

    # the manifest's bytes: its digest in the index no longer matches
    lay = fresh()
    flip_blob(lay, lay.index()["manifests"][0]["digest"], 10)
    kit.refused(lay, "does not match its descriptor", policy=policy)

    # the pubopts annotation with another HMAC
    lay = fresh()
    m = lay.manifest()
    ann = m["layers"][0]["annotations"]
    opts = json.loads(base64.b64decode(ann[PUBOPTS]))
    opts["hmac"] = base64.b64encode(bytes(32)).decode()
    ann[PUBOPTS] = base64.b64encode(json.dumps(opts).encode()).decode()
    lay.replace_manifest(m)
    kit.refused(lay, "HMAC does not match", policy=policy)

    # the JWE annotation's ciphertext: it no longer authenticates
    lay = fresh()
    m = lay.manifest()
    ann = m["layers"][0]["annotations"]
    jwe = json.loads(base64.b64decode(ann[JWE]))
    ct = bytearray(base64.urlsafe_b64decode(jwe["ciphertext"] + "=" * (-len(jwe["ciphertext"]) % 4)))
    ct[0] ^= 1
    jwe["ciphertext"] = base64.urlsafe_b64encode(bytes(ct)).decode().rstrip("=")
    ann[JWE] = base64.b64encode(json.dumps(jwe).encode()).decode()
    lay.replace_manifest(m)
    kit.refused(lay, "does not authenticate", policy=policy)

    # the config's bytes
    lay = fresh()
    flip_blob(lay, lay.manifest()["config"]["digest"], 5)
    kit.refused(lay, "image config", policy=policy)

    # an encrypted image and a decision that releases no key
    kit.refused(fresh(), "released no key")


@case
def key_value_carries_the_pem(ws):
    kit = Kit(ws)
    pub = kit.key("k1", "p256")
    enc = kit.encrypt(kit.plain(), pub)
    with open(os.path.join(kit.keys, "k1.pem")) as f:
        pem = f.read()
    os.unlink(os.path.join(kit.keys, "k1.pem"))  # only the decision has it
    lua_pem = pem.replace("\n", "\\n")
    policy = ws.policy('return {allow = true, key = {value = "%s"}}' % lua_pem)
    r = json.loads(kit.run(enc, policy=policy).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "the image ran with key.value's PEM")
    rel = [x for x in ws.audit_records() if x["event"] == "key_release"]
    eq((len(rel), rel[0]["source"], rel[0]["key_id"]), (1, "decision", None), "the record")
    with open(ws.audit) as f:
        trail = f.read()
    body = "".join(pem.strip().split("\n")[1:-1])
    assert body[:40] not in trail, "the key is in the audit trail"
    # base64 of the PEM works as well; garbage is refused by name
    policy = ws.policy('return {allow = true, key = {value = "%s"}}'
                       % base64.b64encode(pem.encode()).decode(), name="b64.lua")
    kit.run(enc, policy=policy)
    policy = ws.policy('return {allow = true, key = {value = "AAAA"}}', name="bad.lua")
    kit.refused(enc, "no unencrypted PEM or DER private key", policy=policy)


@case
def layout_refusals(ws):
    kit = Kit(ws)
    lay = kit.plain()
    # the layout's directory must be a trust anchor like a bundle
    os.chmod(lay.path, 0o777)
    kit.refused(lay, "writable")
    os.chmod(lay.path, 0o755)
    # a blob that is a link
    d = lay.manifest()["config"]["digest"]
    real = lay.blob_path(d)
    os.rename(real, real + ".real")
    os.symlink(real + ".real", real)
    kit.refused(lay, "symbolic link")
    os.unlink(real)
    os.rename(real + ".real", real)
    # a reference that is not there; no reference when there is one manifest is fine
    p = kit.ws.tether("run", "--policy", ALLOW_ALL, "--image", "oci:%s:nosuch" % lay.path,
                      check_rc=125)
    assert "no manifest is named `nosuch`" in one_line(p.stderr)
    kit.ws.tether("run", "--policy", ALLOW_ALL, "--image", "oci:%s" % lay.path, check_rc=0)
    p = kit.ws.tether("run", "--policy", ALLOW_ALL, "--image", "docker://x", check_rc=125)
    assert "oci:DIR" in one_line(p.stderr)
    # a non-root tether cannot make the tree
    mine = ws.decision_policy({"allow": True}, "nobody.lua")  # one nobody may read, wherever
    p = ws.as_user(65534, "run", "--policy", mine, "--image", "oci:%s:app" % lay.path,
                   check_rc=125)
    assert "needs root" in one_line(p.stderr)


def provider_encrypt(kit, src, key_id, name="penc"):
    """Encrypts every layer of src as ocicrypt does for `--encryption-key provider:tether:ID`
    (Debian's skopeo is too old to call key providers): AES-256-CTR under a fresh layer key
    (openssl enc), HMAC-SHA256 over the ciphertext in enc.pubopts, and the layer options
    (PrivateLayerBlockCipherOptions) wrapped by `tether keyprovider` answering ocicrypt's
    keywrap request; its answer is stored as ocicrypt stores it."""
    dst = kit.ws.path(name)
    shutil.copytree(src.path, dst)
    lay = Layout(dst)
    m = lay.manifest()
    for l in m["layers"]:
        plain = lay.read(l["digest"])
        symkey, nonce = os.urandom(32), os.urandom(16)
        ct = subprocess.run(["openssl", "enc", "-aes-256-ctr", "-nosalt", "-K", symkey.hex(),
                             "-iv", nonce.hex()], input=plain, check=True,
                            capture_output=True).stdout
        mac = hmac.new(symkey, ct, hashlib.sha256).digest()
        pubopts = {"cipher": "AES_256_CTR_HMAC_SHA256", "hmac": base64.b64encode(mac).decode(),
                   "cipheroptions": {}}
        privopts = json.dumps({"symkey": base64.b64encode(symkey).decode(),
                               "cipheroptions": {"nonce": base64.b64encode(nonce).decode()},
                               "digest": l["digest"]}, separators=(",", ":")).encode()
        req = json.dumps({"op": "keywrap",
                          "keywrapparams": {"ec": {"Parameters": {"tether": [
                              base64.b64encode(key_id.encode()).decode()]},
                              "DecryptConfig": {"Parameters": None}},
                              "optsdata": base64.b64encode(privopts).decode()},
                          "keyunwrapparams": {"dc": None, "annotation": None}},
                         separators=(",", ":"))
        ans = json.loads(kit.ws.tether("keyprovider", input=req, check_rc=0).stdout)
        l.update(mediaType=l["mediaType"] + "+encrypted", digest=lay.put(ct), size=len(ct),
                 annotations={PROVIDER: ans["keywrapresults"]["annotation"],
                              PUBOPTS: base64.b64encode(json.dumps(pubopts).encode()).decode()})
    lay.replace_manifest(m)
    return lay


def store_key(kit, name, key=None):
    path = os.path.join(kit.keys, name + ".key")
    with open(path, "wb") as f:
        f.write(key or os.urandom(32))
    os.chmod(path, 0o600)


@case
def provider_wrapped_image_runs_where_allowed(ws):
    """An image wrapped for tether's keyprovider (provider:tether:app1) runs directly: the
    decision names the key, the packet opens only with it, each layer's HMAC is checked before
    a byte is decrypted, and nothing of it is left on disk."""
    kit = Kit(ws)
    store_key(kit, "app1")
    store_key(kit, "other")
    plain = kit.plain()
    lay = provider_encrypt(kit, plain, "app1")
    shutil.rmtree(plain.path)
    stamp = ws.path("stamp")
    open(stamp, "w").close()
    time.sleep(0.05)
    geofence = ws.write("geofence.lua", GEOFENCE % "app1")

    # what the policy sees: each layer's key id, and no JWE
    p = kit.run(lay, rc=77, policy=ws.policy(
        'local l = input.image.layers[1]\n'
        'return {allow = false, reasons = {tostring(l.encrypted), tostring(l.jwe), '
        'tostring(l.tether_key_id)}}', name="see.lua"))
    assert "true; false; app1" in one_line(p.stderr), p.stderr

    r = json.loads(kit.run(lay, policy=geofence).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "the provider-wrapped image ran")
    rel = [x for x in ws.audit_records() if x["event"] == "key_release"]
    eq([(x["key_id"], x["wrap"], x["source"]) for x in rel], [("app1", "tether", "keystore")],
       "one key_release record, for the packets' key")

    # elsewhere: denied, no key released
    kit.configure("us-east")
    _, after = kit.refused(lay, "images run in eu-de only", rc=77, policy=geofence)
    assert "key_release" not in after, after
    kit.configure("eu-de")
    # an allow alone releases nothing; a decision for another key is refused by name
    kit.refused(lay, "released no key")
    kit.refused(lay, "wrapped for key `app1`", policy=ws.write("o.lua", GEOFENCE % "other"))
    # the same key id with other bytes in the key store: the packet does not open
    store_key(kit, "app1")
    kit.refused(lay, "does not open", policy=geofence)

    hits, scanned = disk_files_holding(kit.marker.encode(), stamp)
    eq(hits, [], "files on disk holding the image's plaintext")
    assert scanned > 0, "nothing was scanned: the check would pass blind"


@case
def provider_wrapped_tampering_is_refused(ws):
    kit = Kit(ws)
    key = os.urandom(32)
    store_key(kit, "app1", key)
    enc = provider_encrypt(kit, kit.plain(), "app1")
    policy = ws.write("allow-key.lua", GEOFENCE % "app1")

    def fresh():
        return scratch_copy(ws, enc)

    # the ciphertext changed, manifest and index rewritten to match: the HMAC refuses it
    lay = fresh()
    m = lay.manifest()
    data = bytearray(lay.read(m["layers"][0]["digest"]))
    data[50] ^= 1
    m["layers"][0]["digest"] = lay.put(bytes(data))
    lay.replace_manifest(m)
    kit.refused(lay, "HMAC does not match", policy=policy)

    # the packet moved to another key id (its AAD binds the id): it does not open
    store_key(kit, "app2", key)
    lay = fresh()
    m = lay.manifest()
    ann = m["layers"][0]["annotations"]
    pkt = json.loads(base64.b64decode(ann[PROVIDER]))
    pkt["key_id"] = "app2"
    ann[PROVIDER] = base64.b64encode(json.dumps(pkt).encode()).decode()
    lay.replace_manifest(m)
    kit.refused(lay, "does not open", policy=ws.write("app2.lua", GEOFENCE % "app2"))

    # a packet that is not one
    lay = fresh()
    m = lay.manifest()
    m["layers"][0]["annotations"][PROVIDER] = base64.b64encode(b"{}").decode()
    lay.replace_manifest(m)
    kit.refused(lay, "keyprovider packet", policy=policy)


OWN = """
function decide(input)
  if input.host.labels.datacenter ~= "fra02" then
    return {allow = false, reasons = {"this image runs in fra02 only"}}
  end
  return {allow = true}
end
"""


@case
def image_policy_travels_with_the_image(ws):
    """A Lua policy in the manifest's org.tether.policy annotation (where buildah config
    --annotation puts it) is asked after the node's policy, and both must allow; skopeo's
    encryption keeps it; a signature covers it."""
    kit = Kit(ws)
    pub = kit.key("k1", "p256")
    plain = kit.plain()
    m = plain.manifest()
    m["annotations"][OWN_POLICY] = OWN
    plain.replace_manifest(m)
    enc = kit.encrypt(plain, pub)
    eq(enc.manifest()["annotations"].get(OWN_POLICY), OWN, "skopeo kept the policy")
    node_policy = ws.write("node.lua", GEOFENCE % "k1")

    kit.configure("eu-de", labels={"region": "eu-de", "datacenter": "fra02"})
    r = json.loads(kit.run(enc, policy=node_policy).stdout)
    eq(r, {"cat /data/marker.txt": kit.marker}, "both policies allowed")
    decisions = [x for x in ws.audit_records() if x["event"] == "decision"]
    eq([x["allow"] for x in decisions], [True, True], "the node's decision, then the image's")
    assert decisions[1]["policy"].startswith("embedded:"), decisions[1]

    # the node allows, the image's own policy does not: 77, and no key is released
    kit.configure("eu-de", labels={"region": "eu-de", "datacenter": "ams01"})
    line, after = kit.refused(enc, "this image runs in fra02 only", rc=77, policy=node_policy)
    assert "embedded policy" in line, line
    assert "key_release" not in after, after

    # the policy sees its own digest
    p = kit.run(enc, rc=77, policy=ws.policy(
        'return {allow = false, reasons = {input.image.policy_sha256}}', name="sha.lua"))
    assert hashlib.sha256(OWN.encode()).hexdigest() in p.stderr, p.stderr

    # an embedded policy runs under the node's budgets
    m = plain.manifest()
    m["annotations"][OWN_POLICY] = "local s = string.rep('x', 1 << 30)\n" + OWN
    plain.replace_manifest(m)
    kit.configure("eu-de", labels={"region": "eu-de", "datacenter": "fra02"})
    kit.refused(plain, "memory limit", policy=ALLOW_ALL)


@case
def image_policy_is_covered_by_the_signature(ws):
    """Whoever swaps the image's policy for a laxer one changes the manifest, and the
    signature made over it no longer matches: refused where signatures are required."""
    kit = Kit(ws)
    lay = kit.plain()
    m = lay.manifest()
    m["annotations"][OWN_POLICY] = OWN
    lay.replace_manifest(m)
    key, pub = ws.path("cosign.key"), ws.path("cosign.pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    cosign_sign(ws, lay, key)
    kit.configure("eu-de", labels={"region": "eu-de", "datacenter": "fra02"},
                  trusted_image_signers=[pub], require_signed_images=True)
    kit.run(lay)  # signed, and both policies allow

    # the attacker rewrites the policy to allow anywhere, and the index to match
    m = lay.manifest()
    m["annotations"][OWN_POLICY] = "function decide(input) return {allow = true} end"
    data = json.dumps(m).encode()
    idx = lay.index()
    idx["manifests"][0].update(digest=lay.put(data), size=len(data))
    lay.write_index(idx)
    kit.configure("eu-de", labels={"region": "eu-de", "datacenter": "ams01"},
                  trusted_image_signers=[pub], require_signed_images=True)
    kit.refused(lay, "require_signed_images")


def image_of(ws, name, layers, env):
    """An OCI layout with the probe as /bin/probe, more layers, and the config's Env."""
    probe = open(PROBE, "rb").read()
    base = [("bin", "dir", None, 0o755, 0), ("bin/probe", "file", probe, 0o755, 0)]
    lay = ws.path(name)
    write_image(lay, [base + layers[0]] + layers[1:],
                {"Entrypoint": ["/bin/probe"], "Cmd": ["status"], "Env": env})
    return lay


@case
def an_images_conversion_modules_are_never_loaded(ws):
    """glibc loads the module its gconv-modules list names for a conversion, from the root
    it has at its first iconv_open.  libarchive converts a pax header's names while it
    unpacks, after pivot_root into the image's tree: the image's list and module, loaded as
    root before confinement, unless the list was read from the node first."""
    need_root()
    if shutil.which("gcc") is None:
        raise Skip("needs gcc to build the image's module")
    src = ws.write("evil.c", "#include <unistd.h>\n"
                   "__attribute__((constructor)) static void loaded(void)\n"
                   "{ write(2, \"IMAGE-MODULE-LOADED\\n\", 20); }\n"
                   "int gconv_init(void *s) { return 1; }\nint gconv(void) { return 1; }\n")
    so = ws.path("EVIL.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", so, src], check=True)
    g = "usr/lib/x86_64-linux-gnu/gconv"
    dirs = [("/".join(g.split("/")[:i + 1]), "dir", None, 0o755, 0) for i in range(4)]
    conf = ("module\tUTF-8//\tANSI_X3.4-1968//\tEVIL\t1\n"
            "module\tISO-10646/UTF8/\tANSI_X3.4-1968//\tEVIL\t1\n"
            "module\tANSI_X3.4-1968//\tUTF-8//\tEVIL\t1\n").encode()
    planted = dirs + [(g + "/gconv-modules", "file", conf, 0o644, 0),
                      (g + "/EVIL.so", "file", open(so, "rb").read(), 0o755, 0)]
    # A name longer than ustar's 100 bytes: its pax header is what libarchive converts.
    long_name = [("data", "dir", None, 0o755, 0), ("data/" + "x" * 150, "file", b"x", 0o644, 0)]
    lay = image_of(ws, "gconv", [planted, long_name], ["PATH=/bin"])
    p = ws.tether("run", "--policy", os.path.join(POLICIES, "allow-all.lua"), "--image",
                  "oci:%s:app" % lay, "--", "exists", "/" + g + "/EVIL.so", "exists",
                  "/data/" + "x" * 150, check_rc=0)
    assert "IMAGE-MODULE-LOADED" not in p.stderr, "the image's module was loaded: " + p.stderr
    r = json.loads(p.stdout)
    eq((r["exists /" + g + "/EVIL.so"], r["exists /data/" + "x" * 150]), (0, 0),
       "the module was in the tree, and the long name unpacked")


@case
def an_images_env_never_reaches_tether(ws):
    """The image's Env is the workload's, never tether's: DBUS_SYSTEM_BUS_ADDRESS in it
    would name a program that sd-bus runs (unixexec:), as root on the node, when tether asks
    systemd for a scope.  Here the node looks like a systemd host (TETHER_SYSTEMD_DIR, as
    test_systemd does) and the workload is monitored, so tether opens the system bus."""
    need_root()
    mark = ws.path("host-command-ran")
    cmd = "touch " + mark
    addr = "unixexec:path=/bin/sh,argv0=sh,argv1=-c,argv2=" + "".join(
        c if c.isalnum() or c in "/-_." else "%%%02x" % ord(c) for c in cmd)
    lay = image_of(ws, "dbus", [[]], ["PATH=/bin", "DBUS_SYSTEM_BUS_ADDRESS=" + addr])
    os.mkdir(ws.path("systemd"))
    env = dict(ws.env, TETHER_SYSTEMD_DIR=ws.path("systemd"))
    env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    policy = ws.decision_policy({"allow": True, "monitor": {"interval_ms": 500,
                                                            "on_drift": "log"}})
    p = ws.tether("run", "--policy", policy, "--image", "oci:%s:app" % lay, "--", "env",
                  "DBUS_SYSTEM_BUS_ADDRESS", env=env)
    assert not os.path.exists(mark), "the image's Env ran a command on the node: " + p.stderr
    eq(p.returncode, 0, "tether run --image: " + p.stderr)
    eq(json.loads(p.stdout)["env DBUS_SYSTEM_BUS_ADDRESS"], addr, "the workload's Env")


if __name__ == "__main__":
    main()

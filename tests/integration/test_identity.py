"""Workload identity and secrets (decision `identity` and `secrets`): a real workload reads its
token and secrets from a tmpfs of its own; the token verifies against `tether identity jwks`
with python3-jwt (Debian's) and its claims are the measured facts; it is renewed under a short
ttl; on drift the credentials are gone before the workload is stopped; a denied workload gets
nothing; no token or secret byte is in the trail, the workload's environ or cmdline, or on a
disk, and the host's mount namespace never sees the tmpfs."""
import base64
import json
import os
import shutil
import subprocess
import time

from harness import (PROBE, SRC, TETHER, Skip, case, disk_files_holding, eq, main, marked,
                     one_line, wait_for)

SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-jwt lives

VERIFY = r"""
import json, sys, jwt
jwks, token, aud = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
key = jwt.PyJWK(jwks["keys"][0])
header = jwt.get_unverified_header(token)
assert header["kid"] == jwks["keys"][0]["kid"], header
options = {"verify_exp": sys.argv[4] == "exp"}
print(json.dumps(jwt.decode(token, key.key, algorithms=["ES256"], audience=aud,
                            options=options)))
"""


def workload(mark, tether_pid):
    """The workload's processes (the mark is in tether's environment too, and its init's)."""
    def mine(pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                return f.read().strip() not in ("tether", "tether-init")
        except OSError:
            return False
    return [x for x in marked(mark) if x != tether_pid and mine(x)]


class Node:
    """A key store with the node's identity key and a secret, and a node configuration."""

    def __init__(self, ws, region="eu-de"):
        if os.geteuid() != 0:
            raise Skip("needs root: the credentials' tmpfs is mounted in the workload's own "
                       "mount namespace")
        self.ws = ws
        self.keys = ws.path("keys")
        os.makedirs(os.path.join(self.keys, "secrets"), mode=0o700)
        os.chmod(self.keys, 0o700)
        pem = os.path.join(self.keys, "node.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", pem], check=True, capture_output=True)
        os.chmod(pem, 0o600)
        self.db = "TETHER-SECRET-%s" % os.urandom(8).hex()
        path = os.path.join(self.keys, "secrets", "db")
        with open(path, "w") as f:
            f.write(self.db)
        os.chmod(path, 0o600)
        self.configure(region)

    def configure(self, region):
        self.ws.write("tether.json", json.dumps({
            "keystore": self.keys, "audit": {"path": self.ws.audit},
            "identity": {"key": "node", "trust_domain": "example.org"},
            "labels": {"region": region, "cluster": "c1", "datacenter": "fra02"}}))

    def jwks(self):
        return self.ws.write("jwks.json", self.ws.tether("identity", "jwks", check_rc=0).stdout)

    def verify(self, token, aud, exp=True):
        """The token's claims, once its signature (and, with exp, its lifetime) checks."""
        if subprocess.run([SYSTEM_PYTHON, "-c", "import jwt, cryptography"],
                          capture_output=True).returncode:
            raise Skip("%s lacks jwt or cryptography (Debian packages python3-jwt, "
                       "python3-cryptography)" % SYSTEM_PYTHON)
        p = subprocess.run([SYSTEM_PYTHON, "-c", VERIFY, self.jwks(), token, aud,
                            "exp" if exp else "-"], capture_output=True, text=True)
        assert p.returncode == 0, "the token does not verify: " + p.stderr
        return json.loads(p.stdout)


API = base64.b64encode(b"TETHER-API-KEY-0123").decode()

POLICY = """
function decide(input)
  if input.host.labels.region ~= "eu-de" then
    return {allow = false, reasons = {"credentials are released in eu-de only"}}
  end
  return {allow = true, identity = {audience = "vault", ttl_s = %(ttl)d},
          secrets = {{name = "db", id = "db"}, {name = "api", value = "%(api)s"}},
          monitor = {on_drift = "%(drift)s"}}
end
"""


def policy(ws, ttl=300, drift="kill"):
    return ws.write("cred.lua", POLICY % {"ttl": ttl, "api": API, "drift": drift})


READER = ('echo "$TETHER_IDENTITY"; cat "$TETHER_IDENTITY"; echo; cat "$TETHER_SECRETS/db"; '
          'echo; cat "$TETHER_SECRETS/api"; echo; exec sleep %s')


@case
def workload_reads_a_verified_token_and_its_secrets(ws):
    node = Node(ws)
    stamp = ws.path("stamp")
    open(stamp, "w").close()
    time.sleep(0.05)
    mark = "id-%d" % os.getpid()
    ws.env["TETHER_TEST_MARK"] = mark
    p = ws.popen("run", "--policy", policy(ws), "--", "sh", "-c", READER % "5")
    path = p.stdout.readline().strip()
    token = p.stdout.readline().strip()
    eq((p.stdout.readline().strip(), p.stdout.readline().strip()),
       (node.db, base64.b64decode(API).decode()), "the secrets, as the workload reads them")
    pids = wait_for(lambda: workload(mark, p.pid), what="the workload")

    # the token verifies against the node's JWKS, and says what was measured
    claims = node.verify(token, "vault")
    dec = [r for r in ws.audit_records() if r["event"] == "decision"][0]
    t = claims["tether"]
    eq((t["region"], t["cluster"], t["datacenter"]), ("eu-de", "c1", "fra02"), "labels")
    eq(t["machine_id"], open("/etc/machine-id").read().strip(), "machine_id")
    eq(t["exe_sha256"], dec["workload"]["exe_sha256"], "the measured executable")
    eq(t["decision"], dec["hash"], "the decision's audit record")
    eq(claims["sub"], "spiffe://example.org/eu-de/c1/" + t["exe_sha256"], "the default subject")
    assert claims["exp"] - claims["iat"] == 300, claims
    # and with openssl alone (contrib/identity/verify-openssl.sh), the token on a pipe
    pub = ws.write("node.pub.pem", subprocess.run(
        ["openssl", "pkey", "-in", os.path.join(node.keys, "node.pem"), "-pubout"],
        check=True, capture_output=True, text=True).stdout)
    script = os.path.join(SRC, "contrib", "identity", "verify-openssl.sh")
    v = subprocess.run([script, pub, "/dev/stdin"], input=token, capture_output=True, text=True)
    eq((v.returncode, json.loads(v.stdout)), (0, claims), "verify-openssl.sh: " + v.stderr)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    v = subprocess.run([script, pub, "/dev/stdin"], input=forged, capture_output=True, text=True)
    assert v.returncode != 0, "a forged signature verified"

    # the tmpfs: the workload's alone, invisible from the host's mount namespace
    assert os.listdir(os.path.dirname(path)) == [], "the host sees the credentials"
    with open("/proc/self/mountinfo") as f:
        assert "tether-creds" not in f.read(), "the tmpfs is in the host's mount namespace"
    eq(path, "/run/tether-creds/identity", "$TETHER_IDENTITY")
    st = os.stat("/proc/%d/root%s" % (pids[0], path))
    eq((st.st_mode & 0o777, st.st_uid), (0o400, 0), "the token file")
    st = os.stat("/proc/%d/root%s" % (pids[0], os.path.dirname(path)))
    eq((st.st_mode & 0o777, st.st_uid), (0o555, 0), "its directory: root's, read-only")

    # nowhere else: environ, cmdline, the trail
    for pid in pids:
        for what in ("environ", "cmdline"):
            with open("/proc/%d/%s" % (pid, what), "rb") as f:
                data = f.read()
            for secret in (token.encode(), node.db.encode(), base64.b64decode(API)):
                assert secret not in data, "a credential in /proc/%d/%s" % (pid, what)
    eq(p.wait(timeout=30), 0, "exit status")
    with open(ws.audit) as f:
        trail = f.read()
    for secret in (token, token.split(".")[2], node.db, base64.b64decode(API).decode(), API):
        assert secret not in trail, "a credential in the audit trail"
    events = [r["event"] for r in ws.audit_records()]
    eq(events.count("secret_release"), 2, "secret_release records")
    eq(events.count("identity_issued"), 1, "identity_issued records")
    assert "credentials_removed" in events, events
    for what, secret in (("secret", node.db), ("token", token.split(".")[2])):
        hits, scanned = disk_files_holding(secret.encode(), stamp)
        eq(hits, [], "files on disk changed since the launch holding the " + what)


@case
def token_is_renewed_before_it_expires(ws):
    node = Node(ws)
    # ttl 12 s: renewed at 8 s; the workload reads its token at once and after 10 s
    p = ws.popen("run", "--policy", policy(ws, ttl=12), "--", "sh", "-c",
                 'cat "$TETHER_IDENTITY"; echo; sleep 10; cat "$TETHER_IDENTITY"; echo')
    first, second = p.stdout.readline().strip(), p.stdout.readline().strip()
    eq(p.wait(timeout=60), 0, "exit status")
    # the first may have expired by now on a slow machine: its signature still checks
    c1, c2 = node.verify(first, "vault", exp=False), node.verify(second, "vault")
    assert c1["jti"] != c2["jti"] and c2["iat"] > c1["iat"], (c1, c2)
    issued = [r for r in ws.audit_records() if r["event"] == "identity_issued"]
    eq([r["trigger"] for r in issued], ["launch", "renewal"], "identity_issued records")


@case
def on_drift_the_credentials_go_first(ws):
    node = Node(ws)
    mark = "drift-%d" % os.getpid()
    ws.env["TETHER_TEST_MARK"] = mark
    p = ws.popen("run", "--policy", policy(ws, drift="stop"), "--", "sh", "-c",
                 'echo "$TETHER_IDENTITY"; exec sleep 60')
    path = p.stdout.readline().strip()
    pid = wait_for(lambda: workload(mark, p.pid), what="the workload")[0]
    root = "/proc/%d/root" % pid
    assert os.path.exists(root + path), "the token before the drift"
    try:
        node.configure("us-east")  # the node moved: the policy now denies
        wait_for(lambda: "stopped" in [r["event"] for r in ws.audit_records()], timeout=20,
                 what="the workload to be stopped")
        assert not os.path.exists(root + path), "the token outlived the drift"
        assert not os.path.exists(root + os.path.dirname(path) + "/secrets"), "the secrets"
        events = [r["event"] for r in ws.audit_records()]
        assert events.index("credentials_removed") < events.index("stopped"), events
    finally:
        p.kill()
        p.wait()


@case
def denied_workload_gets_nothing(ws):
    node = Node(ws, region="us-east")
    marker = ws.path("ran")
    p = ws.tether("run", "--policy", policy(ws), "--", "touch", marker, check_rc=77)
    assert "eu-de only" in one_line(p.stderr), p.stderr
    assert not os.path.exists(marker), "the workload ran"
    events = [r["event"] for r in ws.audit_records()]
    for e in ("identity_issued", "secret_release"):
        assert e not in events, events
    if os.path.isdir("/run/tether-creds"):
        eq(os.listdir("/run/tether-creds"), [], "the host's mount point")
    del node


@case
def refusals_are_one_line(ws):
    node = Node(ws)
    # no identity.key configured
    ws.write("tether.json", json.dumps({"keystore": node.keys, "audit": {"path": ws.audit},
                                        "labels": {"region": "eu-de"}}))
    marker = ws.path("ran")
    p = ws.tether("run", "--policy", policy(ws), "--", "touch", marker, check_rc=125)
    assert "identity.key" in one_line(p.stderr), p.stderr
    # a secret the key store does not hold
    node.configure("eu-de")
    pol = ws.policy('return {allow = true, secrets = {{name = "x", id = "nosuch"}}}',
                    name="nosuch.lua")
    p = ws.tether("run", "--policy", pol, "--", "touch", marker, check_rc=125)
    assert "nosuch" in one_line(p.stderr), p.stderr
    # malformed requests are denies that name the field
    for body, field in (('identity = {ttl_s = 60}', "identity.audience"),
                        ('identity = {audience = "a", ttl_s = 1}', "identity.ttl_s"),
                        ('secrets = {{name = "../x", id = "db"}}', "secrets[0].name"),
                        ('secrets = {{name = "x", value = "!!"}}', "secrets[0].value")):
        pol = ws.policy("return {allow = true, %s}" % body, name="bad.lua")
        p = ws.tether("run", "--policy", pol, "--", "touch", marker, check_rc=77)
        assert field in one_line(p.stderr), (field, p.stderr)
    assert not os.path.exists(marker), "a workload ran"


@case
def a_workload_of_another_user_reads_its_own(ws):
    """Under confine.user the files are that user's, readable by it, in a directory it can
    neither change nor replace."""
    node = Node(ws)
    pol = ws.write("nobody.lua", """
function decide(input)
  return {allow = true, identity = {audience = "vault"}, secrets = {{name = "db", id = "db"}},
          confine = {user = {uid = 65534, gid = 65534}}}
end""")
    p = ws.tether("run", "--policy", pol, "--", "sh", "-c",
                  'id -u; cat "$TETHER_SECRETS/db"; echo; head -c 20 "$TETHER_IDENTITY"; echo; '
                  'touch /run/tether-creds/x 2>/dev/null && echo wrote; '
                  'mv "$TETHER_IDENTITY" /run/tether-creds/y 2>/dev/null && echo moved; '
                  'chmod 0700 /run/tether-creds 2>/dev/null && echo chmod; exit 0', check_rc=0)
    lines = p.stdout.splitlines()
    eq(lines[:2], ["65534", node.db], "the user and its secret")
    assert lines[2].startswith("eyJ"), lines
    eq(lines[3:], [], "what the workload could change in its credentials' directory")


@case
def runc_container_reads_its_token_and_secret(ws):
    """A container gated by the hook: the tmpfs is mounted in its mount namespace at
    createRuntime (before the runtime pivots into its root), at /run/tether-creds."""
    runc = shutil.which("runc")
    if runc is None:
        raise Skip("runc is not installed (contrib/setup.sh test installs it)")
    node = Node(ws)
    ws.config = ws.write("tether.json", json.dumps(dict(
        json.load(open(ws.path("tether.json"))), policy=policy(ws))))
    b = ws.path("bundle")
    os.makedirs(os.path.join(b, "rootfs"))
    shutil.copy(PROBE, os.path.join(b, "rootfs", "probe"))
    subprocess.run([runc, "spec"], cwd=b, check=True)
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["process"].update(terminal=False, args=[
        "/probe", "cat", "/run/tether-creds/identity", "cat", "/run/tether-creds/secrets/db",
        "cat", "/run/tether-creds/secrets/api"])
    cfg["root"]["readonly"] = False
    cfg["hooks"] = {stage: [{"path": TETHER, "args": ["tether", "hook", stage, "--config",
                                                      ws.config]}]
                    for stage in ("createRuntime", "poststop")}
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    cid = "tether-cred-%d" % os.getpid()
    try:
        p = subprocess.run([runc, "run", "-b", b, cid], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run([runc, "delete", "--force", cid], capture_output=True)
    eq(p.returncode, 0, "runc run: " + p.stderr)
    out = json.loads(p.stdout)
    eq((out["cat /run/tether-creds/secrets/db"], out["cat /run/tether-creds/secrets/api"]),
       (node.db, base64.b64decode(API).decode()), "the secrets the container read")
    claims = node.verify(out["cat /run/tether-creds/identity"], "vault")
    eq(claims["tether"]["container_id"], cid, "the token names the container")
    assert not os.listdir(os.path.join(b, "rootfs", "run", "tether-creds")), \
        "the credentials reached the bundle's directory on disk"
    recs = [r for r in ws.audit_records() if r.get("container_id") == cid]
    events = [r["event"] for r in recs]
    eq((events.count("identity_issued"), events.count("secret_release")), (1, 2), "records")

    # an image whose /run is a link out of its root: refused, and nothing lands outside
    shutil.rmtree(os.path.join(b, "rootfs", "run"))
    outside = ws.path("outside")
    os.mkdir(outside)
    os.symlink(outside, os.path.join(b, "rootfs", "run"))
    cid2 = cid + "-link"
    try:
        p = subprocess.run([runc, "run", "-b", b, cid2], capture_output=True, text=True,
                           timeout=60)
    finally:
        subprocess.run([runc, "delete", "--force", cid2], capture_output=True)
    assert p.returncode != 0 and "run/tether-creds" in p.stderr, p.stderr
    eq(os.listdir(outside), [], "what the link points to")
    assert "identity_issued" not in [r["event"] for r in ws.audit_records()
                                     if r.get("container_id") == cid2], "a token was issued"


if __name__ == "__main__":
    main()

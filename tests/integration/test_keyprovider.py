"""`tether keyprovider`: the ocicrypt keyprovider protocol, byte for byte as ocicrypt's
json.Marshal writes the requests (tests/fixtures/keyprovider/), since Debian's skopeo is too old
to call key providers.  A key is unwrapped only on an allow; every answer is audited; a
refusal is one line on stderr, nothing on stdout, and a non-zero exit."""
import base64
import json
import os

from harness import SRC, Skip, case, eq, main

FIX = os.path.join(SRC, "tests", "fixtures", "keyprovider")
KEY = bytes.fromhex(open(os.path.join(FIX, "app1.key.hex")).read().strip())
OPTSDATA = open(os.path.join(FIX, "optsdata.json"), "rb").read()
NOBODY = 65534


def fixture(name):
    return open(os.path.join(FIX, name)).read()


def node(ws, keys=None, region="eu-de"):
    """A key store holding app1 (and keys), and a configuration naming it."""
    store = ws.path("keys")
    os.makedirs(store, mode=0o700, exist_ok=True)
    for name, key in dict({"app1": KEY}, **(keys or {})).items():
        p = os.path.join(store, name + ".key")
        with open(p, "wb") as f:
            f.write(key)
        os.chmod(p, 0o600)
    ws.config = ws.write("tether.json", json.dumps({
        "audit": {"path": ws.audit}, "keystore": store, "labels": {"region": region}}))
    ws.env["TETHER_CONFIG"] = ws.config
    return store


def allow_eu(ws):
    return ws.policy('if input.tether.phase == "keyprovider" and '
                     'input.host.labels.region == "eu-de" then\n'
                     '  return {allow = true, reasons = {"eu"}}\nend\n'
                     'return {allow = false, reasons = {"keys are released in eu-de only"}}')


def provider(ws, request, *args):
    return ws.tether("keyprovider", *args, input=request)


def refused(p, what, rc=125):
    eq(p.returncode, rc, what + ": exit status (stderr %r)" % p.stderr)
    eq(p.stdout, "", what + ": nothing on stdout")
    lines = p.stderr.strip().splitlines()
    eq(len(lines), 1, what + ": one line on stderr: %r" % p.stderr)
    return lines[0]


def unwrap_request(annotation_bytes):
    """A keyunwrap request as ocicrypt marshals it (KeyProviderKeyWrapProtocolInput)."""
    return json.dumps({"op": "keyunwrap", "keywrapparams": {"ec": None, "optsdata": None},
                       "keyunwrapparams": {"dc": {"Parameters": {"tether": ["RW5hYmxlZA=="]}},
                                           "annotation": base64.b64encode(annotation_bytes).decode()}},
                      separators=(",", ":"))


def wrap_request(key_ids, optsdata):
    return json.dumps({"op": "keywrap",
                       "keywrapparams": {"ec": {"Parameters": {"tether": [
                           base64.b64encode(k.encode()).decode() for k in key_ids]},
                           "DecryptConfig": {"Parameters": None}},
                           "optsdata": base64.b64encode(optsdata).decode()},
                       "keyunwrapparams": {"dc": None, "annotation": None}},
                      separators=(",", ":"))


def fixture_packet():
    req = json.loads(fixture("unwrap-request.json"))
    return base64.b64decode(req["keyunwrapparams"]["annotation"])


@case
def wrap_fixture_gets_a_protocol_answer(ws):
    node(ws)
    p = provider(ws, fixture("wrap-request.json"))
    eq(p.returncode, 0, "keywrap: " + p.stderr)
    answer = json.loads(p.stdout)
    eq(list(answer), ["keywrapresults"], "the answer's members")
    packet = json.loads(base64.b64decode(answer["keywrapresults"]["annotation"]))
    eq(packet["tether_keyprovider"], 1, "packet version")
    eq(packet["key_id"], "app1", "packet key id")
    eq(packet["cipher"], "AES_256_GCM", "packet cipher")
    assert OPTSDATA not in p.stdout.encode() and b"symkey" not in base64.b64decode(
        answer["keywrapresults"]["annotation"]), "the options are sealed"
    recs = ws.audit_records()
    eq([r["event"] for r in recs], ["key_wrap"], "audit")
    eq(recs[0]["key_id"], "app1", "audited key id")
    assert "symkey" not in open(ws.audit).read()


@case
def unwrap_fixture_released_on_allow(ws):
    node(ws)
    p = provider(ws, fixture("unwrap-request.json"), "--policy", allow_eu(ws))
    eq(p.returncode, 0, "keyunwrap: " + p.stderr)
    answer = json.loads(p.stdout)
    eq(list(answer), ["keyunwrapresults"], "the answer's members")
    eq(base64.b64decode(answer["keyunwrapresults"]["optsdata"]), OPTSDATA, "the options")
    recs = ws.audit_records()
    eq([r["event"] for r in recs], ["decision", "key_release"], "audit")
    eq((recs[0]["phase"], recs[0]["allow"]), ("keyprovider", True), "the decision")
    eq((recs[1]["key_id"], recs[1]["source"], recs[1]["phase"]), ("app1", "keystore", "keyprovider"),
       "the key release")
    assert "symkey" not in open(ws.audit).read() and KEY.hex() not in open(ws.audit).read()


@case
def unwrap_denied_elsewhere(ws):
    node(ws, region="us-east")
    p = provider(ws, fixture("unwrap-request.json"), "--policy", allow_eu(ws))
    line = refused(p, "deny", rc=77)
    assert "keys are released in eu-de only" in line, line
    recs = ws.audit_records()
    eq([r["event"] for r in recs], ["decision"], "a deny releases nothing")
    eq(recs[0]["allow"], False, "audited as a deny")


@case
def builtin_default_policy_denies_unwrap(ws):
    """Without a policy naming the keyprovider phase, nothing is released."""
    node(ws)
    p = provider(ws, fixture("unwrap-request.json"))
    assert p.returncode != 0 and p.stdout == "", (p.returncode, p.stdout)
    assert "key_release" not in [r["event"] for r in ws.audit_records()]


@case
def policy_sees_the_request_and_the_requester(ws):
    node(ws)
    pol = ws.policy('local k = input.keyprovider\n'
                    'return {allow = false, reasons = {k.op, k.key_id, k.packet.sha256,'
                    ' tostring(k.packet.version), k.packet.cipher, tostring(k.requester.pid),'
                    ' tostring(input.workload)}}')
    p = provider(ws, fixture("unwrap-request.json"), "--policy", pol)
    eq(p.returncode, 77, p.stderr)
    rec = ws.audit_records()[0]
    import hashlib
    want = sorted(["keyunwrap", "app1", hashlib.sha256(fixture_packet()).hexdigest(), "1",
                   "AES_256_GCM", str(os.getpid()), "nil"])
    eq(sorted(rec["reasons"]), want, "what the policy saw")


@case
def wrap_then_unwrap_round_trip(ws):
    node(ws, keys={"app2": os.urandom(32)})
    opts = json.dumps({"symkey": base64.b64encode(os.urandom(32)).decode(),
                       "digest": "sha256:" + "ab" * 32, "cipheroptions": {}}).encode()
    p = provider(ws, wrap_request(["app2"], opts))
    eq(p.returncode, 0, p.stderr)
    ann = base64.b64decode(json.loads(p.stdout)["keywrapresults"]["annotation"])
    p = provider(ws, unwrap_request(ann), "--policy", allow_eu(ws))
    eq(p.returncode, 0, p.stderr)
    eq(base64.b64decode(json.loads(p.stdout)["keyunwrapresults"]["optsdata"]), opts, "round trip")
    eq([r["event"] for r in ws.audit_records()], ["key_wrap", "decision", "key_release"], "audit")


@case
def malformed_requests_are_refused(ws):
    node(ws, keys={"app2": KEY})  # the same key under another id: only the AAD tells them apart
    pol = allow_eu(ws)
    good = json.loads(fixture_packet())
    def packet(**kw):
        d = dict(good, **kw)
        return json.dumps(d).encode()
    ct = bytearray(base64.b64decode(good["ciphertext"]))
    ct[0] ^= 1
    cases = [
        ("not JSON", "{", "request: invalid JSON"),
        ("not an object", "[]", "must be an object"),
        ("no op", '{"keywrapparams":{}}', "`op`"),
        ("unknown op", '{"op":"keydelete"}', "`op`"),
        ("wrap without parameters", '{"op":"keywrap","keywrapparams":{"ec":null}}',
         "keywrapparams.ec.Parameters"),
        ("wrap without a tether key", wrap_request([], b"x").replace('"tether":[]', '"other":[]'),
         "names no key"),
        ("bare provider:tether", wrap_request(["Enabled"], b"x"), "no key id"),
        ("two keys", wrap_request(["app1", "app2"], b"x"), "more than one key"),
        ("a key id with a slash", wrap_request(["../app1"], b"x"), "not one"),
        ("optsdata not base64", wrap_request(["app1"], b"x").replace('"eA=="', '"e!=="'),
         "keywrapparams.optsdata"),
        ("a key not in the store", wrap_request(["app9"], b"x"), "no key `app9`"),
        ("unwrap without annotation", '{"op":"keyunwrap","keyunwrapparams":{"dc":null}}',
         "keyunwrapparams.annotation"),
        ("annotation not base64",
         '{"op":"keyunwrap","keyunwrapparams":{"annotation":"%%%%"}}', "keyunwrapparams.annotation"),
        ("packet not JSON", unwrap_request(b"tether"), "keyprovider packet"),
        ("packet of another version", unwrap_request(packet(tether_keyprovider=2)), "version 2"),
        ("packet with an unknown member", unwrap_request(packet(extra=1)), "unknown member"),
        ("packet with a short nonce", unwrap_request(packet(nonce="AAAA")), "`nonce`"),
        ("tampered ciphertext",
         unwrap_request(packet(ciphertext=base64.b64encode(bytes(ct)).decode())), "does not open"),
        ("packet moved to another key id", unwrap_request(packet(key_id="app2")), "does not open"),
    ]
    for what, request, needle in cases:
        before = len(ws.audit_records())
        p = provider(ws, request, "--policy", pol)
        line = refused(p, what)
        assert needle in line, "%s: %r lacks %r" % (what, line, needle)
        events = [r["event"] for r in ws.audit_records()[before:]]
        assert events and events[-1] == "keyprovider_failed", (what, events)
        assert "key_release" not in events, what


@case
def key_store_others_may_read_is_refused(ws):
    store = node(ws)
    os.chmod(os.path.join(store, "app1.key"), 0o644)
    line = refused(provider(ws, fixture("unwrap-request.json"), "--policy", allow_eu(ws)),
                   "a readable key")
    assert "app1.key" in line, line
    assert "key_release" not in [r["event"] for r in ws.audit_records()]


@case
def another_user_gets_no_key(ws):
    """nobody, with the node's own configuration and an audit trail it may write, and a
    policy that allows: the key store is root's alone."""
    if os.geteuid() != 0:
        raise Skip("needs root to run as nobody")
    node(ws)
    os.chmod(ws.root, 0o755)
    pol = allow_eu(ws)
    env = dict(ws.env, TETHER_CONFIG=ws.config)
    mine = ws.path("nobody")
    os.makedirs(mine)
    os.chown(mine, NOBODY, NOBODY)
    import subprocess
    from harness import TETHER
    p = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                        TETHER, "keyprovider", "--policy", pol, "--audit", os.path.join(mine, "audit.jsonl")],
                       env=env, cwd="/",
                       input=fixture("unwrap-request.json"), capture_output=True, text=True)
    assert p.returncode != 0, p
    assert p.stderr.startswith("tether: ") and "app1" in p.stderr, p.stderr
    eq(p.stdout, "", "no answer for nobody")
    assert "key_release" not in [r["event"] for r in ws.audit_records()]


@case
def help_names_the_protocol(ws):
    p = ws.tether("keyprovider", "--help", check_rc=0)
    assert "OCICRYPT_KEYPROVIDER_CONFIG" in p.stdout and "keyunwrap" in p.stdout
    p = ws.tether("--help", check_rc=0)
    assert "keyprovider" in p.stdout


if __name__ == "__main__":
    main()

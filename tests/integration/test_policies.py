"""The example policies on shared input fixtures: each Lua policy gives its expected decision,
and, where an `opa` binary is available, each Rego twin gives the same decision as its Lua
policy."""
import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

from harness import POLICIES, SRC, Skip, case, eq, main

FIXTURES = sorted(glob.glob(os.path.join(SRC, "tests", "fixtures", "inputs", "*.json")))
EXPECTED = os.path.join(SRC, "tests", "fixtures", "expected")
PAIRS = ["default", "allow-all", "geofence"]
APPROVED = "c79bf44242829108e323378531f4ac839513ca1fba45efd6583643526e1e9fd2"


def policy_file(ws, name, ext):
    """The shipped policy; geofence with the fixtures' executable approved, in both twins."""
    src = open(os.path.join(POLICIES, name + "." + ext)).read()
    if name == "geofence":
        marker = {"lua": '-- ["<64 hex digits>"] = "description",',
                  "rego": '# "<64 hex digits>": "description",'}[ext]
        line = {"lua": '["%s"] = "true",', "rego": '"%s": "true",'}[ext] % APPROVED
        assert marker in src, "the geofence allowlist marker moved"
        src = src.replace(marker, line)
    return ws.write("%s.%s" % (name, ext), src)


def normal(d):
    """A decision as the contract defines it; reasons compared as a set (Rego sets have no
    order of their own)."""
    return {"allow": d.get("allow") is True, "reasons": sorted(d.get("reasons") or []),
            "confine": d.get("confine") or None, "monitor": d.get("monitor") or None,
            "ttl_s": d.get("ttl_s")}


def lua_decision(ws, name, fixture):
    p = ws.tether("eval", "--compact", "--policy", policy_file(ws, name, "lua"), "--input", fixture)
    assert p.returncode in (0, 77), p.stderr
    d = json.loads(p.stdout)
    eq(p.returncode, 0 if d["allow"] else 77, "exit status matches allow")
    return normal(d)


@case
def lua_policies_give_the_expected_decisions(ws):
    assert FIXTURES, "no fixtures"
    for name in PAIRS:
        for fx in FIXTURES:
            want = json.load(open(os.path.join(EXPECTED, name, os.path.basename(fx))))
            eq(lua_decision(ws, name, fx), want, "%s on %s" % (name, os.path.basename(fx)))


def find_opa():
    opa = os.environ.get("TETHER_TEST_OPA") or shutil.which("opa")
    if not opa:
        raise Skip("no opa binary: set TETHER_TEST_OPA or put opa on PATH "
                   "(OPA is not packaged by Debian, nor published on npm as a binary)")
    return opa


@case
def rego_twins_decide_as_the_lua_policies(ws):
    opa = find_opa()
    for name in PAIRS:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        srv = subprocess.Popen([opa, "run", "--server", "--addr", "127.0.0.1:%d" % port,
                                policy_file(ws, name, "rego")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = "http://127.0.0.1:%d" % port
            for _ in range(200):
                try:
                    urllib.request.urlopen(url + "/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            for fx in FIXTURES:
                p = ws.tether("eval", "--compact", "--opa", url, "--input", fx)
                assert p.returncode in (0, 77), p.stderr
                eq(normal(json.loads(p.stdout)), lua_decision(ws, name, fx),
                   "%s.rego vs %s.lua on %s" % (name, name, os.path.basename(fx)))
        finally:
            srv.terminate()
            srv.wait()


if __name__ == "__main__":
    main()

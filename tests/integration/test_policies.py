"""The example policies on shared input fixtures: each Lua policy gives its expected decision,
and, where an `opa` binary is available, each Rego twin gives the same decision as its Lua
policy, both from `opa eval` and through tether's OPA engine.  The fixtures include missing
fields, nulls and values of the wrong type, where Rego's undefined can turn a deny into an
allow."""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

from harness import POLICIES, SRC, Skip, case, eq, main

FIXTURES = sorted(glob.glob(os.path.join(SRC, "tests", "fixtures", "inputs", "*.json")))
EXPECTED = os.path.join(SRC, "tests", "fixtures", "expected")
PAIRS = ["default", "allow-all", "geofence", "image-eu"]
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
            "key": d.get("key") or None, "confine": d.get("confine") or None, "monitor": d.get("monitor") or None,
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
        eq(sorted(os.listdir(os.path.join(EXPECTED, name))),
           sorted(os.path.basename(fx) for fx in FIXTURES), "expected decisions of " + name)
        for fx in FIXTURES:
            want = json.load(open(os.path.join(EXPECTED, name, os.path.basename(fx))))
            got = lua_decision(ws, name, fx)
            assert not any(r.startswith("policy error:") for r in got["reasons"]), \
                "%s raised an error on %s: %s" % (name, os.path.basename(fx), got["reasons"])
            eq(got, want, "%s on %s" % (name, os.path.basename(fx)))


@case
def default_twins_refuse_the_same_loader_variables(ws):
    """The one list that both twins of the default policy must hold alike; checked without
    OPA, so that it holds on every machine."""
    lua = open(os.path.join(POLICIES, "default.lua")).read()
    rego = open(os.path.join(POLICIES, "default.rego")).read()
    lua_block = re.search(r"local LOADER_VARIABLES = \{(.*?)\n\}", lua, re.S).group(1)
    rego_block = re.search(r"loader_variables := \{(.*?)\n\}", rego, re.S).group(1)
    lua_names = re.findall(r"^\s*([A-Z_]+) = true,$", lua_block, re.M)
    rego_names = re.findall(r'^\s*"([A-Z_]+)",$', rego_block, re.M)
    eq(len(lua_names), lua_block.count("true"), "every Lua entry parsed")
    eq(len(rego_names), rego_block.count('"') // 2, "every Rego entry parsed")
    eq(sorted(lua_names), sorted(rego_names), "loader variables")
    for must in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH"):
        assert must in lua_names, must


@case
def builtin_default_is_default_lua(ws):
    """The policy compiled into tether (no --policy) decides as policies/default.lua."""
    for fx in FIXTURES:
        p = ws.tether("eval", "--compact", "--input", fx)
        assert p.returncode in (0, 77), p.stderr
        want = json.load(open(os.path.join(EXPECTED, "default", os.path.basename(fx))))
        eq(normal(json.loads(p.stdout)), want, "built-in default on " + os.path.basename(fx))


@case
def builtin_default_refuses_ld_preload_at_run(ws):
    """LD_PRELOAD in tether's environment reaches the workload: the built-in default must
    deny, and the command must not run."""
    m = ws.tether("measure", "--compact", "--", "/bin/true", check_rc=0)
    if "env_names" not in (json.loads(m.stdout).get("workload") or {}):
        raise Skip("this tether does not measure workload.env_names yet")
    marker = ws.path("ran")
    env = dict(ws.env, LD_PRELOAD=ws.path("evil.so"))
    p = ws.tether("run", "--", "/bin/sh", "-c", "echo > " + marker, env=env)
    eq(p.returncode, 77, "exit status (stderr: %s)" % p.stderr)
    assert "LD_PRELOAD" in p.stderr, p.stderr
    assert not os.path.exists(marker), "the workload ran"
    p = ws.tether("run", "--", "/bin/sh", "-c", "echo > " + marker, check_rc=0)
    assert os.path.exists(marker), "the same command without LD_PRELOAD did not run"


def find_opa():
    opa = os.environ.get("TETHER_TEST_OPA") or shutil.which("opa")
    if not opa:
        raise Skip("no opa binary: set TETHER_TEST_OPA or put opa on PATH "
                   "(OPA is not packaged by Debian, nor published on npm as a binary)")
    return opa


def opa_eval_decision(opa, rego, fixture):
    """data.tether.decision from `opa eval`: the Rego alone, with the fixture as it is (no
    trip through tether's JSON, which prints 1000.0 as 1000)."""
    p = subprocess.run([opa, "eval", "--format", "json", "--data", rego, "--input", fixture,
                        "data.tether.decision"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "opa eval on %s: %s" % (fixture, p.stderr)
    result = json.loads(p.stdout).get("result")
    assert result, "%s: data.tether.decision is undefined on %s" % (rego, fixture)
    return normal(result[0]["expressions"][0]["value"])


@case
def rego_twins_decide_as_the_lua_policies(ws):
    opa = find_opa()
    for name in PAIRS:
        rego = policy_file(ws, name, "rego")
        for fx in FIXTURES:
            eq(opa_eval_decision(opa, rego, fx), lua_decision(ws, name, fx),
               "opa eval %s.rego vs %s.lua on %s" % (name, name, os.path.basename(fx)))
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

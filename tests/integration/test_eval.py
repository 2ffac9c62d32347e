"""tether eval: offline decisions from an input document, exit 0 on allow and 77 on deny."""
import json
import os

from harness import POLICIES, case, eq, main, one_line


@case
def eval_allow_and_deny(ws):
    inp = ws.write("in.json", ws.tether("measure", "--", "/bin/true", check_rc=0).stdout)
    p = ws.tether("eval", "--input", inp, check_rc=0)
    d = json.loads(p.stdout)
    eq(d["allow"], True, "allow")
    eq(sorted(d), ["allow", "confine", "identity", "key", "monitor", "reasons", "secrets", "ttl_s"],
       "normal form")
    pol = ws.policy('return {allow = false, reasons = {"no " .. input.workload.argv[1]}}')
    p = ws.tether("eval", "--policy", pol, "--input", inp, check_rc=77)
    eq(json.loads(p.stdout)["reasons"], ["no /bin/true"], "reasons")
    p = ws.tether("eval", "--policy", pol, "--input", "-", input=open(inp).read(), check_rc=77)
    eq(json.loads(p.stdout)["allow"], False, "from stdin")


@case
def eval_geofence(ws):
    true_doc = json.loads(ws.tether("measure", "--", "/bin/true", check_rc=0).stdout)
    sha = true_doc["workload"]["exe"]["sha256"]
    src = open(os.path.join(POLICIES, "geofence.lua")).read()
    src = src.replace('-- ["<64 hex digits>"] = "description",', '["%s"] = "true",' % sha)
    pol = ws.write("geofence.lua", src)
    for region, want in (("eu-de", 0), ("us-east", 77), (None, 77)):
        doc = json.loads(json.dumps(true_doc))
        doc["host"]["labels"] = {"region": region} if region else {}
        inp = ws.write("in.json", json.dumps(doc))
        p = ws.tether("eval", "--policy", pol, "--input", inp, check_rc=want)
        if want:
            assert "region" in json.loads(p.stdout)["reasons"][0]
    doc["host"]["labels"] = {"region": "eu-fr"}
    doc["workload"]["exe"]["sha256"] = "0" * 64
    inp = ws.write("in.json", json.dumps(doc))
    p = ws.tether("eval", "--policy", pol, "--input", inp, check_rc=77)
    assert "allowlist" in p.stdout


@case
def eval_bad_input(ws):
    for text, what in (("{not json", "invalid JSON at line 1"), ("[1]", "must be a JSON object")):
        inp = ws.write("in.json", text)
        p = ws.tether("eval", "--input", inp, check_rc=125)
        assert what in one_line(p.stderr), p.stderr
    p = ws.tether("eval", check_rc=125)
    assert "--input is required" in p.stderr
    p = ws.tether("eval", "--input", ws.path("nope.json"), check_rc=125)
    assert "nope.json" in one_line(p.stderr)


@case
def help_for_every_verb(ws):
    for verb in ("run", "measure", "eval", "audit"):
        p = ws.tether(verb, "--help", check_rc=0)
        assert p.stdout.startswith("Usage: tether " + verb), p.stdout
    p = ws.tether("--help", check_rc=0)
    for verb in ("run", "measure", "eval", "audit"):
        assert "  " + verb in p.stdout
    eq(ws.tether("--version", check_rc=0).stdout, "tether 0.1.0\n", "version")
    p = ws.tether("frobnicate", check_rc=125)
    assert "unknown verb" in p.stderr


if __name__ == "__main__":
    main()

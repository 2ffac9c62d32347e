"""The node configuration: every bad file is a one-line error naming the file and the key,
exit 125, and nothing runs."""
import json
import os

from harness import case, eq, main, one_line


def refused(ws, text, *needles, env=None):
    marker = ws.path("marker")
    cfg = ws.write("bad.json", text)
    p = ws.tether("run", "--config", cfg, "--", "touch", marker, env=env, check_rc=125)
    line = one_line(p.stderr)
    for n in ("bad.json",) + needles:
        assert n in line, (n, line)
    assert not os.path.exists(marker)


@case
def bad_configurations_are_refused(ws):
    refused(ws, '{"labels": {"region": "eu"', "invalid JSON at line 1")
    refused(ws, '{\n  "audit": {"path": 3}\n}', "`audit.path` must be a string")
    refused(ws, '{"opa": {"timeout_ms": "fast"}}', "`opa.timeout_ms` must be an integer")
    refused(ws, '{"opa": {"retries": 1.5}}', "`opa.retries`")
    refused(ws, '{"opa": {"frobnicate": 1}}', "unknown key `opa.frobnicate`")
    refused(ws, '{"polcy": "/etc/tether/policy.lua"}', "unknown key `polcy`")
    refused(ws, '{"labels": {"region": 1}}', "`labels.region` must be a string")
    refused(ws, '{"require_sealed": "yes"}', "`require_sealed` must be true or false")
    refused(ws, '{"trusted_signers": "a.pem"}', "`trusted_signers` must be an array")
    refused(ws, '{"labels": {}, "labels": {}}', "`labels` is given twice")
    refused(ws, '[]', "top level must be an object")


@case
def missing_given_configuration_is_an_error(ws):
    marker = ws.path("marker")
    p = ws.tether("run", "--config", ws.path("none.json"), "--", "touch", marker, check_rc=125)
    assert "none.json" in one_line(p.stderr) and "No such file" in p.stderr
    env = dict(ws.env, TETHER_CONFIG=ws.path("none2.json"))
    p = ws.tether("run", "--", "touch", marker, env=env, check_rc=125)
    assert "none2.json" in one_line(p.stderr)
    p = ws.tether("run", "--config", ws.root, "--", "touch", marker, check_rc=125)
    assert "Is a directory" in one_line(p.stderr)
    assert not os.path.exists(marker)


@case
def settings_this_build_cannot_honour_are_refused(ws):
    marker = ws.path("marker")
    for cfg, needle in (({"require_sealed": True}, "require_sealed"),):
        cfg["audit"] = {"path": ws.audit}
        ws.write("tether.json", json.dumps(cfg))
        p = ws.tether("run", "--", "touch", marker, check_rc=125)
        assert needle in one_line(p.stderr), p.stderr
        assert not os.path.exists(marker)


@case
def configuration_sets_policy_and_audit(ws):
    pol = ws.policy('return {allow = false, reasons = {"from the configured policy"}}')
    audit = ws.path("elsewhere", "trail.jsonl")
    ws.write("tether.json", json.dumps({"policy": pol, "audit": {"path": audit}}))
    p = ws.tether("run", "--", "true", check_rc=77)
    assert "from the configured policy" in p.stderr
    eq(len(ws.audit_records(audit)), 1, "record in the configured trail")
    # the command line wins over the file
    ws.tether("run", "--policy", os.path.join(os.environ.get("TETHER_SRC", "."), "policies", "allow-all.lua"),
              "--", "true", check_rc=0)


if __name__ == "__main__":
    main()

"""OpenSSL's configuration is tether's: the providers it names (a FIPS provider, say) are the
ones that hash.  A configuration that gives no SHA-256 leaves tether unable to measure or to
chain its audit trail, and then nothing runs: one line, exit 125, and no record of garbage."""
import json
import os

from harness import POLICIES, PROBE, case, eq, main, one_line

ALLOW_ALL = os.path.join(POLICIES, "allow-all.lua")

# Only OpenSSL's null provider: it implements no algorithm at all.
NULL_ONLY = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
null = null_sect
[null_sect]
activate = 1
"""

# The default provider, named explicitly: the same configuration mechanism, with SHA-256.
DEFAULT_ONLY = NULL_ONLY.replace("null = null_sect", "default = null_sect")


def env_with(ws, text, name):
    env = dict(ws.env, OPENSSL_CONF=ws.write(name, text))
    return env


@case
def a_configuration_without_sha256_runs_nothing(ws):
    ran = ws.path("ran")
    args = ("run", "--policy", ALLOW_ALL, "--", PROBE, "mark", ran)
    # The control: the same mechanism with the default provider runs it.
    ws.tether(*args, env=env_with(ws, DEFAULT_ONLY, "default.cnf"), check_rc=0)
    assert os.path.exists(ran), "the control did not run"
    os.unlink(ran)
    n = len(ws.audit_records())

    null = env_with(ws, NULL_ONLY, "null.cnf")
    p = ws.tether(*args, env=null, check_rc=125)
    assert "SHA-256" in one_line(p.stderr) and "OPENSSL_CONF" in p.stderr, p.stderr
    assert not os.path.exists(ran), "the workload ran without a SHA-256"
    eq(len(ws.audit_records()), n, "records written without a hash to chain them")

    # A sealed file cannot be made (the null provider has no randomness either).
    p = ws.tether("seal", "--key", ws.write("k", "x" * 32), "--key-id", "k", "-o",
                  ws.path("w.sealed"), PROBE, env=null, check_rc=125)
    one_line(p.stderr)
    assert not os.path.exists(ws.path("w.sealed")), "a sealed file was written"

    # A container's gate: allowed under the control, refused without SHA-256.
    os.mkdir(ws.path("rootfs"))
    ws.write("config.json", json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                                        "process": {"args": ["/app"], "env": []}}))
    node = json.load(open(ws.config))
    node["policy"] = ALLOW_ALL
    ws.write("tether.json", json.dumps(node))
    state = json.dumps({"ociVersion": "1.0.2", "id": "openssl-null-%d" % os.getpid(),
                        "status": "creating", "bundle": ws.root})
    p = ws.tether("hook", "createRuntime", input=state, env=env_with(ws, DEFAULT_ONLY, "d.cnf"))
    eq(p.returncode, 0, "the control's gate: " + p.stderr)
    ws.tether("hook", "poststop", input=state, env=env_with(ws, DEFAULT_ONLY, "d.cnf"))
    p = ws.tether("hook", "createRuntime", input=state, env=null)
    assert p.returncode != 0 and "SHA-256" in p.stderr, (p.returncode, p.stderr)

if __name__ == "__main__":
    main()

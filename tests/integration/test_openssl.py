"""OpenSSL's configuration is tether's: the providers it names (a FIPS provider, say) are the
ones that hash.  A configuration that gives no SHA-256 leaves tether unable to measure or to
chain its audit trail, and then nothing runs: one line, exit 125, and no record of garbage.

Where OpenSSL is as installed (its configuration file the one Debian ships, byte for byte, no
module but its own, no OPENSSL_* variable, no FIPS kernel), SHA-256 is libnettle's and a start of tether that
needs no other cryptography maps no libcrypto.  The digests are the same either way."""
import hashlib
import json
import os
import shutil
import subprocess

from harness import POLICIES, PROBE, TETHER, Skip, case, eq, main, one_line, wait_for

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


SYSTEM_CONF = os.path.realpath("/usr/lib/ssl/openssl.cnf")
MODULES = "/usr/lib/x86_64-linux-gnu/ossl-modules"
LIBCRYPTO = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"


def in_namespace(ws, binds):
    """A prefix that runs a command in a mount namespace of its own, with each (file, over)
    of binds bound over the node's: nothing outside this test sees the change."""
    if not binds:
        return []
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        raise Skip("needs root and unshare(1): OpenSSL's files are changed in a namespace")
    script = 'while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 99; shift 2; done; ' \
             'shift; exec "$@"'
    flat = [x for pair in binds for x in pair]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            *flat, "--"]


def maps_libcrypto(ws, env=None, binds=()):
    """Whether tether has libcrypto mapped while its (allowed) workload runs."""
    ready = ws.path("ready")
    if os.path.exists(ready):
        os.unlink(ready)
    p = subprocess.Popen([*in_namespace(ws, binds), TETHER, "run", "--policy", ALLOW_ALL, "--",
                          PROBE, "ready", ready, "sleep", "30"], env=env or ws.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(ready) or p.poll() is not None, 20, "the workload")
        assert p.poll() is None, "tether ended: %s" % p.stderr.read()
        with open("/proc/%d/maps" % p.pid) as f:
            return "libcrypto.so" in f.read()
    finally:
        p.terminate()
        p.wait(timeout=20)


@case
def sha256_is_openssls_wherever_openssl_is_configured(ws):
    if not os.path.exists(SYSTEM_CONF) or not os.path.isdir(MODULES) or \
            not os.path.exists(LIBCRYPTO):
        raise Skip("OpenSSL's library, configuration or modules are not where Debian has them")
    eq(maps_libcrypto(ws), False, "libcrypto mapped for a plain run, OpenSSL as installed")
    # The environment names a configuration: OpenSSL's, even the same file.
    env = dict(ws.env, OPENSSL_CONF=SYSTEM_CONF)
    eq(maps_libcrypto(ws, env), True, "libcrypto mapped with OPENSSL_CONF")
    env = dict(ws.env, OPENSSL_MODULES=MODULES)
    eq(maps_libcrypto(ws, env), True, "libcrypto mapped with OPENSSL_MODULES")
    # Another libcrypto than the build's may be the one loaded: it reads its own files.
    env = dict(ws.env, LD_LIBRARY_PATH=ws.path("nowhere"))
    eq(maps_libcrypto(ws, env), True, "libcrypto mapped with LD_LIBRARY_PATH")
    vendor = ws.path("vendor")
    os.mkdir(vendor)
    shutil.copy(os.path.realpath(LIBCRYPTO), vendor)
    conf = ws.write("ld.so.conf", vendor + "\ninclude /etc/ld.so.conf.d/*.conf\n")
    cache = ws.path("ld.so.cache")
    subprocess.run(["ldconfig", "-X", "-C", cache, "-f", conf], check=True)
    eq(maps_libcrypto(ws, binds=[(cache, "/etc/ld.so.cache")]), True,
       "libcrypto mapped with a vendor's libcrypto in the loader's cache")
    # A provider beside OpenSSL's own, that a configuration could make the default.
    mods = ws.path("modules")
    os.mkdir(mods)
    for name in os.listdir(MODULES):
        shutil.copy(os.path.join(MODULES, name), mods)
    eq(maps_libcrypto(ws, binds=[(mods, MODULES)]), False, "the same modules, copied")
    shutil.copy(os.path.join(MODULES, "legacy.so"), os.path.join(mods, "fips.so"))
    eq(maps_libcrypto(ws, binds=[(mods, MODULES)]), True, "libcrypto mapped beside a fips.so")
    # The system's configuration file: the same bytes copied over it change nothing; any
    # change at all (even a comment) makes SHA-256 OpenSSL's, under that file.
    stock = open(SYSTEM_CONF).read()
    same = ws.write("same.cnf", stock)
    eq(maps_libcrypto(ws, binds=[(same, SYSTEM_CONF)]), False, "the same file, copied")
    for line in ("# a comment", "[default_sect]\nactivate = 1", ".include /etc/ssl/more.cnf"):
        conf = ws.write("added.cnf", stock + "\n" + line + "\n")
        eq(maps_libcrypto(ws, binds=[(conf, SYSTEM_CONF)]), True, "libcrypto mapped with " + line)
    # Both compute the same digest, and the trail they wrote together is one chain.
    want = hashlib.sha256(open(PROBE, "rb").read()).hexdigest()
    got = {r["workload"]["exe_sha256"] for r in ws.audit_records() if r["event"] == "decision"}
    eq(got, {want}, "the probe's digest in the trail")
    ws.tether("audit", "verify", ws.audit, check_rc=0)


@case
def a_system_configuration_without_sha256_runs_nothing(ws):
    """The configuration file where OpenSSL looks without OPENSSL_CONF is obeyed too."""
    if not os.path.exists(SYSTEM_CONF):
        raise Skip("OpenSSL's configuration is not where Debian has it")
    ran = ws.path("ran")
    default = ws.write("default.cnf", DEFAULT_ONLY)
    args = [TETHER, "run", "--policy", ALLOW_ALL, "--", PROBE, "mark", ran]
    p = subprocess.run([*in_namespace(ws, [(default, SYSTEM_CONF)]), *args], env=ws.env,
                       capture_output=True, text=True, timeout=60)
    eq(p.returncode, 0, "the control: " + p.stderr)
    assert os.path.exists(ran), "the control did not run"
    os.unlink(ran)
    n = len(ws.audit_records())
    # The null provider alone, plainly; and with its words split by continued lines, which
    # OpenSSL joins before it reads a key (a reading of the file for such words missed it).
    continued = NULL_ONLY.replace("provider_sect", "p_sect").replace("null_sect", "n_sect")
    continued = continued.replace("providers", "provi\\\nders")
    continued = continued.replace("activate", "acti\\\nvate")
    for name, text in (("null.cnf", NULL_ONLY), ("continued.cnf", continued)):
        conf = ws.write(name, open(SYSTEM_CONF).read() + "\n" + text)
        p = subprocess.run([*in_namespace(ws, [(conf, SYSTEM_CONF)]), *args], env=ws.env,
                           capture_output=True, text=True, timeout=60)
        eq(p.returncode, 125, "tether run under %s, without SHA-256 (%s)" % (name, p.stderr))
        assert "SHA-256" in one_line(p.stderr), p.stderr
        assert not os.path.exists(ran), "the workload ran without a SHA-256"
        eq(len(ws.audit_records()), n, "records written without a hash to chain them")


if __name__ == "__main__":
    main()

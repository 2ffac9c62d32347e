"""Optional libraries: libcurl (with libssl) for OPA, libarchive for root file systems,
libcrypto for keys, signatures and sealed files, and libseccomp for confining a workload are
loaded only when their feature is used.  With one of them unloadable (the file replaced by an
empty one, in a mount namespace of the test's own), a plain `tether run` still works, and the
feature that needs it fails closed with one line that names the library."""
import json
import os
import subprocess

from harness import POLICIES, TETHER, Skip, case, eq, main, one_line

ALLOW_ALL = os.path.join(POLICIES, "allow-all.lua")


def library(soname):
    """The file the loader finds for soname, from its cache."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.split(" ")[0] == soname:
            return os.path.realpath(path.strip())
    raise Skip("%s is not installed" % soname)


def without(ws, soname, *args, rc=None):
    """tether ARGS with soname made unloadable: an empty file bound over it in a private
    mount namespace, so nothing outside this test sees the change."""
    if os.geteuid() != 0:
        raise Skip("needs root: the library is hidden by a bind mount in a mount namespace")
    lib = library(soname)
    script = 'mount --bind /dev/null "$1" && shift && exec "$@"'
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                        "sh", lib, TETHER, *args], env=ws.env, capture_output=True, text=True,
                       timeout=60)
    if rc is not None:
        eq(p.returncode, rc, "exit status of tether %s (stderr %r)" % (" ".join(args), p.stderr))
    return p


@case
def without_libcurl_only_opa_fails(ws):
    p = without(ws, "libcurl.so.4", "run", "--policy", ALLOW_ALL, "--", "echo", "plain", rc=0)
    eq(p.stdout, "plain\n", "a plain tether run")
    inp = ws.write("in.json", ws.tether("measure", "--", "/bin/true", check_rc=0).stdout)
    p = without(ws, "libcurl.so.4", "eval", "--opa", "http://127.0.0.1:9", "--input", inp,
                rc=125)
    line = one_line(p.stderr)
    assert "OPA" in line and "libcurl.so.4" in line and "libcurl4" in line, line
    # configured rather than asked for: the same, and the workload does not start
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit},
                                        "opa": {"url": "http://127.0.0.1:9"}}))
    marker = ws.path("ran")
    p = without(ws, "libcurl.so.4", "run", "--", "touch", marker, rc=125)
    assert "libcurl.so.4" in one_line(p.stderr), p.stderr
    assert not os.path.exists(marker), "the workload started"


@case
def without_libarchive_only_trees_fail(ws):
    p = without(ws, "libarchive.so.13", "run", "--policy", ALLOW_ALL, "--", "echo", "plain",
                rc=0)
    eq(p.stdout, "plain\n", "a plain tether run")
    tree = ws.path("tree")
    os.makedirs(os.path.join(tree, "bin"))
    os.symlink("/bin/true", os.path.join(tree, "bin", "app"))
    keys, key = ws.key_store()
    p = without(ws, "libarchive.so.13", "seal", "--key", key,
                "--key-id", "k", "--entrypoint", "/bin/app", "-o", ws.path("t.sealed"), tree,
                rc=125)
    line = one_line(p.stderr)
    assert "libarchive.so.13" in line and "libarchive13" in line, line
    assert not os.path.exists(ws.path("t.sealed")), "a sealed file was written"
    layout = ws.path("layout")
    os.mkdir(layout)
    before = len(ws.audit_records())
    p = without(ws, "libarchive.so.13", "run", "--policy", ALLOW_ALL, "--image",
                "oci:%s:app" % layout, rc=125)
    assert "libarchive.so.13" in one_line(p.stderr), p.stderr
    eq(ws.audit_records()[before:], [], "records of an image that cannot be unpacked")


@case
def without_libcrypto_only_cryptography_fails(ws):
    """SHA-256 is libnettle's where OpenSSL is as installed, so measuring, deciding and the
    audit chain need no libcrypto; a key, a seal or a signature does, and stops there."""
    p = without(ws, "libcrypto.so.3", "run", "--policy", ALLOW_ALL, "--", "echo", "plain",
                rc=0)
    eq(p.stdout, "plain\n", "a plain tether run")
    keys, key = ws.key_store()
    p = without(ws, "libcrypto.so.3", "seal", "--key", key, "--key-id", "k", "-o",
                ws.path("w.sealed"), "/bin/true", rc=125)
    line = one_line(p.stderr)
    assert "libcrypto.so.3" in line and "libssl3" in line, line
    assert not os.path.exists(ws.path("w.sealed")), "a sealed file was written"
    # A sealed workload, made with libcrypto, does not start without it: no key is released
    # and nothing runs half-decrypted.
    ws.tether("seal", "--key", key, "--key-id", "k", "-o", ws.path("w.sealed"), "/bin/true",
              check_rc=0)
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "keystore": keys}))
    ws.tether("run", "--policy", ALLOW_ALL, ws.path("w.sealed"), check_rc=0)
    before = len(ws.audit_records())
    p = without(ws, "libcrypto.so.3", "run", "--policy", ALLOW_ALL, ws.path("w.sealed"),
                rc=125)
    assert "libcrypto.so.3" in one_line(p.stderr), p.stderr
    after = [r["event"] for r in ws.audit_records()[before:]]
    assert "key_release" not in after and "exit" not in after, after
    p = subprocess.run([TETHER, "audit", "verify", ws.audit], env=ws.env, capture_output=True,
                       text=True)
    eq(p.returncode, 0, "the trail written without libcrypto verifies: " + p.stderr)


@case
def without_libseccomp_no_workload_starts_and_judging_still_works(ws):
    """Every workload is confined, so without libseccomp `tether run` stops before it
    measures, decides or releases anything; what only judges (measure, eval) still works,
    and a decision that names system calls is refused, not half-applied."""
    marker = ws.path("ran")
    p = without(ws, "libseccomp.so.2", "run", "--policy", ALLOW_ALL, "--", "touch", marker,
                rc=125)
    line = one_line(p.stderr)
    assert "libseccomp.so.2" in line and "libseccomp2" in line, line
    assert not os.path.exists(marker), "the workload started"
    eq(ws.audit_records(), [], "records of a run that could not confine")
    p = without(ws, "libseccomp.so.2", "measure", "--", "/bin/true", rc=0)
    inp = ws.write("in.json", p.stdout)
    p = without(ws, "libseccomp.so.2", "eval", "--policy", ALLOW_ALL, "--input", inp, rc=0)
    eq(json.loads(p.stdout)["allow"], True, "an allow-all decision")
    calls = ws.write("calls.lua", "function decide(input) return {allow = true, confine = "
                     "{seccomp = {default_action = 'allow', syscalls = {errno = {'uname'}}}}} "
                     "end\n")
    p = without(ws, "libseccomp.so.2", "eval", "--policy", calls, "--input", inp, rc=77)
    d = json.loads(p.stdout)
    assert not d["allow"] and "libseccomp.so.2" in " ".join(d["reasons"]), d
    # and with it, the same decision stands
    p = ws.tether("eval", "--policy", calls, "--input", inp, check_rc=0)
    eq(json.loads(p.stdout)["allow"], True, "the same decision with libseccomp")


if __name__ == "__main__":
    main()

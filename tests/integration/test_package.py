"""The Debian package: `cmake --build B --target package` makes tether_VERSION_ARCH.deb, which
lintian accepts, which installs with apt-get, runs `tether run -- /bin/true`, gates nothing
until the operator enables it, and which `dpkg -r` removes without a trace.

The case builds the package in a build tree of its own from the source tree.  It installs
into the real system, so it holds an exclusive lock (/run/tether-package-test.lock) that
keeps two checkouts' runs apart, refuses to replace a tether that is installed already,
and removes the package again whatever happens.  The other tests run the build tree's
binary (TETHER_BIN), never /usr/bin/tether."""
import fcntl
import glob
import os
import shutil
import subprocess
import tempfile

from harness import SRC, Skip, case, eq, main

LOCK = "/run/tether-package-test.lock"
BUILD_TOOLS = ["cmake", "dpkg-deb", "dpkg-shlibdeps", "apt-get", "dpkg", "gzip", "cc"]

# Where the package may put files, and where it must not: a runtime reads hooks from these
# directories, and systemd units from those, so a file there would gate or start something.
EXPECTED = [
    "./usr/bin/tether",
    "./usr/share/man/man1/tether.1.gz",
    "./usr/share/doc/tether/copyright",
    "./usr/share/doc/tether/changelog.gz",
    "./usr/share/doc/tether/operations.md",
    "./usr/share/tether/policies/default.lua",
    "./usr/share/tether/policies/default.rego",
    "./usr/share/tether/hooks.d/tether.json",
    "./usr/share/tether/hooks.d/tether-poststop.json",
    "./usr/share/doc/tether/examples/systemd/tether@.service",
    "./usr/share/doc/tether/examples/systemd/tether-sweep.timer",
    "./usr/share/doc/tether/examples/kubernetes/README.md",
    "./usr/share/doc/tether/examples/opa/README.md",
]
FORBIDDEN = ["./etc/", "./usr/share/containers/", "./lib/systemd/", "./usr/lib/systemd/",
             "./var/", "./run/"]


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout,
                                                    p.stderr))
    return p.stdout


def installed(name="tether"):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True,
                       text=True)
    return p.returncode == 0 and "installed" in p.stdout.split()[-1:]


def build_package(tmp):
    build = os.path.join(tmp, "build")
    run(["cmake", "-S", SRC, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
         "-DTETHER_TESTS=OFF", "-DTETHER_WERROR=ON"], timeout=300)
    run(["cmake", "--build", build, "-j2", "--target", "package"], timeout=900)
    debs = glob.glob(os.path.join(build, "tether_*.deb"))
    if len(debs) != 1:
        raise AssertionError("want one tether_*.deb in %s, found %r" % (build, debs))
    return debs[0]


def check_contents(deb):
    fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture", "Depends"])
    recommends = run(["dpkg-deb", "-f", deb, "Recommends"])
    arch = run(["dpkg", "--print-architecture"]).strip()
    version = open(os.path.join(SRC, "CMakeLists.txt")).read().split("VERSION ", 2)[2].split()[0]
    eq(os.path.basename(deb), "tether_%s_%s.deb" % (version, arch), "package file name")
    # Dependencies come from the binary's shared libraries (dpkg-shlibdeps), and libseccomp2,
    # which every run loads with dlopen; the libraries it loads with dlopen when an optional
    # feature is used are recommended.
    for lib in ("libc6", "libcjson1", "liblua5.4-0", "libseccomp2"):
        if lib not in fields:
            raise AssertionError("Depends lacks %s:\n%s" % (lib, fields))
    for lib in ("libcurl4", "libarchive13", "libsystemd0"):
        if lib not in recommends or lib in fields:
            raise AssertionError("%s should be recommended, not depended on:\n%s%s"
                                 % (lib, fields, recommends))
    names = [line.split()[5] for line in run(["dpkg-deb", "-c", deb]).splitlines()]
    for want in EXPECTED:
        if want not in names:
            raise AssertionError("the package lacks %s" % want)
    for name in names:
        if any(name.startswith(bad) for bad in FORBIDDEN):
            raise AssertionError("the package installs %s, where it would act unasked" % name)
    extract = deb + ".d"
    run(["dpkg-deb", "-x", deb, extract])
    for stage in ("tether.json", "tether-poststop.json"):
        text = open(os.path.join(extract, "usr/share/tether/hooks.d", stage)).read()
        if '"path": "/usr/bin/tether"' not in text:
            raise AssertionError("hooks.d/%s does not name /usr/bin/tether:\n%s" % (stage, text))


def lintian(deb):
    if not shutil.which("lintian"):
        print("lintian is not installed: not run (contrib/setup.sh test installs it)")
        return
    p = subprocess.run(["lintian", "--fail-on", "error,warning", deb], capture_output=True, text=True,
                       timeout=300)
    print(p.stdout, end="")
    if p.returncode != 0:
        raise AssertionError("lintian: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))


def hook_files():
    found = []
    for d in ("/usr/share/containers/oci/hooks.d", "/etc/containers/oci/hooks.d"):
        found += glob.glob(os.path.join(d, "tether*"))
    return sorted(found)


@case
def package_builds_installs_runs(ws):
    missing = [t for t in BUILD_TOOLS if not shutil.which(t)]
    if missing:
        raise Skip("cannot build or install a Debian package here: no %s" % ", ".join(missing))
    if os.geteuid() != 0:
        raise Skip("installing a package needs root")
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed() or os.path.exists("/usr/bin/tether"):
            raise Skip("tether is installed on this host already; the test would replace it")
        hooks_before = hook_files()
        tmp = tempfile.mkdtemp(prefix="tether-package-", dir=os.environ.get("TETHER_BUILD"))
        try:
            deb = build_package(tmp)
            check_contents(deb)
            lintian(deb)
            try:
                run(["apt-get", "install", "-y", "-q", "--no-install-recommends", deb],
                    env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), timeout=600)
                if not installed():
                    raise AssertionError("apt-get installed no tether")
                p = subprocess.run(["/usr/bin/tether", "run", "--", "/bin/true"], env=ws.env,
                                   capture_output=True, text=True, timeout=60)
                eq((p.returncode, p.stderr), (0, ""), "/usr/bin/tether run -- /bin/true")
                # The built-in default policy of the installed binary: an executable that
                # root does not own is denied.
                theirs = ws.path("true")
                shutil.copy("/bin/true", theirs)
                os.chown(theirs, 65534, 65534)
                p = subprocess.run(["/usr/bin/tether", "run", "--", theirs], env=ws.env,
                                   capture_output=True, text=True, timeout=60)
                eq(p.returncode, 77, "/usr/bin/tether run -- a file of nobody's")
                allows = [r["allow"] for r in ws.audit_records() if r["event"] == "decision"]
                eq(allows, [True, False], "the decisions in the audit trail")
                run(["/usr/bin/tether", "audit", "verify", ws.audit], env=ws.env)
                eq(hook_files(), hooks_before, "hooks.d files after installing")
            finally:
                subprocess.run(["dpkg", "-r", "tether"], capture_output=True, timeout=300)
            if installed() or os.path.exists("/usr/bin/tether"):
                raise AssertionError("dpkg -r left tether installed")
            left = [p for p in ("/usr/share/tether", "/usr/share/doc/tether",
                                "/usr/share/man/man1/tether.1.gz") if os.path.exists(p)]
            eq(left, [], "files left after dpkg -r")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


main()

"""The systemd units of contrib/systemd/ pass `systemd-analyze verify`.

These machines run no systemd as PID 1; `systemd-analyze verify --root=DIR` needs none.  It
loads the units from a root of the test's own: the host's unit files (systemd's package,
for sysinit.target and the like), the units under test in etc/systemd/system, and the
tether binary at usr/bin/tether, since verify checks that ExecStart's program exists.  A
warning (an unknown key, a bad value) counts as a failure, as does any non-zero exit."""
import os
import shutil
import subprocess

from harness import SRC, Skip, TETHER, case, main

UNITS = os.path.join(SRC, "contrib", "systemd")
HOST_UNITS = "/lib/systemd/system"


def make_root(ws, name="root", binary=True):
    if not shutil.which("systemd-analyze"):
        raise Skip("systemd-analyze is not installed (Debian package systemd)")
    if not os.path.exists(os.path.join(HOST_UNITS, "sysinit.target")):
        raise Skip("%s has no sysinit.target (Debian package systemd)" % HOST_UNITS)
    root = ws.path(name)
    os.makedirs(os.path.join(root, "usr", "lib", "systemd"))
    shutil.copytree(HOST_UNITS, os.path.join(root, "usr", "lib", "systemd", "system"),
                    symlinks=True)
    etc = os.path.join(root, "etc", "systemd", "system")
    os.makedirs(etc)
    for name in os.listdir(UNITS):
        if name.endswith((".service", ".timer")):
            shutil.copy(os.path.join(UNITS, name), etc)
    os.symlink("tether@.service", os.path.join(etc, "tether@sshd.service"))
    if binary:
        os.makedirs(os.path.join(root, "usr", "bin"))
        shutil.copy(TETHER, os.path.join(root, "usr", "bin", "tether"))
    return root


def verify(root, *units):
    """None when the units verify cleanly, else what systemd-analyze said."""
    p = subprocess.run(["systemd-analyze", "verify", "--root=" + root, "--man=no", *units],
                       capture_output=True, text=True, timeout=60)
    said = (p.stdout + p.stderr).strip()
    if p.returncode != 0 or said:
        return "exit %d: %s" % (p.returncode, said)
    return None


ALL = ["tether@sshd.service", "tether-sweep.service", "tether-sweep.timer"]


@case
def units_verify(ws):
    root = make_root(ws)
    why = verify(root, *ALL)
    if why:
        raise AssertionError("systemd-analyze verify: " + why)


@case
def units_verify_catches_mistakes(ws):
    # The check above can fail: a misspelt key is only a warning to systemd-analyze (exit
    # 0), a missing program an error.
    root = make_root(ws)
    unit = os.path.join(root, "etc", "systemd", "system", "tether-sweep.service")
    with open(unit, "a") as f:
        f.write("ExecStrat=/usr/bin/tether status\n")
    why = verify(root, "tether-sweep.service")
    if not why or "ExecStrat" not in why:
        raise AssertionError("a misspelt key was not reported: %r" % why)

    bare = make_root(ws, "bare", binary=False)
    why = verify(bare, "tether@sshd.service")
    if not why or "/usr/bin/tether" not in why:
        raise AssertionError("a missing /usr/bin/tether was not reported: %r" % why)


main()

"""tether as podman 4.3 runs it: a hooks.d directory, crun as the runtime (which hides a hook's
stderr), conmon, a storage of the test's own.  What an operator sees: a denied container never
runs and `tether status --denied` names the reason; an allowed one runs, and `tether status`
lists it with its monitor while it does."""
import json
import os
import shutil
import subprocess
import time

from harness import PROBE, TETHER, Skip, case, crun_ready, eq, main, wait_for

# podman 4.3 starts nothing until its default ulimits fit this sandbox (MACHINE-NOTES.md).
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
"""


class Podman:
    """podman with everything of its own under the test's workspace: storage, run root,
    hooks directory and containers.conf; no systemd, no network."""

    def __init__(self, ws, policy):
        if shutil.which("podman") is None:
            raise Skip("podman is not installed (contrib/setup.sh test installs it)")
        self.crun = crun_ready()
        self.ws = ws
        self.rootfs = ws.path("rootfs")
        os.makedirs(os.path.join(self.rootfs, "data"))
        shutil.copy(PROBE, os.path.join(self.rootfs, "probe"))
        hooks = ws.path("hooks.d")
        os.mkdir(hooks)
        pol = ws.policy(policy)
        ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "policy": pol}))
        # The files contrib/hooks.d ships, with this build's binary and this test's config.
        for name in ("tether.json", "tether-poststop.json"):
            with open(os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "hooks.d",
                                   name)) as f:
                hook = json.load(f)
            hook["hook"]["path"] = TETHER
            hook["hook"]["args"] = [a if a != "/etc/tether/tether.json" else ws.config
                                    for a in hook["hook"]["args"]]
            with open(os.path.join(hooks, name), "w") as f:
                json.dump(hook, f)
        self.env = dict(os.environ, CONTAINERS_CONF=ws.write("containers.conf", CONTAINERS_CONF))
        self.base = ["podman", "--root", ws.path("storage"), "--runroot", ws.path("runroot"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file", "--runtime", self.crun, "--hooks-dir", hooks]
        self.names = []

    def run(self, name, *args, detach=False):
        self.names.append(name)
        cmd = self.base + ["run", "--name", name, "--network", "none"]
        cmd += ["-d"] if detach else ["--rm"]
        cmd += ["--rootfs", self.rootfs]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120,
                              env=self.env)

    def close(self):
        for name in self.names:
            subprocess.run(self.base + ["rm", "-f", "-t", "0", name], capture_output=True,
                           env=self.env, timeout=120)


@case
def podman_denied_container_never_runs_and_status_says_why(ws):
    pm = Podman(ws, 'return {allow = false, reasons = {"not on this node"}}')
    name = "tether-pm-deny-%d" % os.getpid()
    try:
        p = pm.run(name, "/probe", "mark", "/data/ran")
        assert p.returncode != 0, "podman started a denied container"
        # What podman prints: crun kept the hook's stderr, so only the exit code is there.
        assert "exit code: 77" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(pm.rootfs, "data", "ran")), "the container ran"
        st = ws.tether("status", "--denied", check_rc=0).stdout
        lines = [l for l in st.splitlines() if "not on this node" in l]
        eq(len(lines), 1, "one denial with its reason in `tether status --denied`:\n" + st)
        assert "container " in lines[0], lines[0]
    finally:
        pm.close()


@case
def podman_allowed_container_is_listed_with_its_monitor(ws):
    pm = Podman(ws, 'return {allow = true, reasons = {"welcome"}, '
                    'monitor = {interval_ms = 200, on_drift = "kill"}}')
    name = "tether-pm-allow-%d" % os.getpid()
    try:
        p = pm.run(name, "/probe", "sleep", "30", detach=True)
        eq(p.returncode, 0, "podman run -d: " + p.stderr)
        cid = p.stdout.strip()
        assert len(cid) == 64, p.stdout

        def listed():
            out = ws.tether("status", "--json", check_rc=0).stdout
            return [c for c in json.loads(out) if c.get("container_id") == cid]

        # monitored, and its monitor's first look made (until then "allow" is null)
        found = wait_for(lambda: [c for c in listed() if c.get("monitored") and c.get("allow")],
                         timeout=20, what="the container and its monitor in `tether status --json`")
        c = found[0]
        eq((c["argv"], c["allow"], c["reasons"]), (["container", cid], True, ["welcome"]),
           "its entry: " + json.dumps(c))
        text = ws.tether("status", check_rc=0).stdout
        assert cid[:12] in text and "welcome" in text, text
        decisions = [r for r in ws.audit_records() if r.get("event") == "decision"
                     and r.get("container_id") == cid]
        eq([r["allow"] for r in decisions][:1], [True], "the gate's decision, audited")
        # podman stops it; the poststop hook and the monitor clean up after it.
        subprocess.run(pm.base + ["rm", "-f", "-t", "0", name], capture_output=True,
                       env=pm.env, timeout=120)
        wait_for(lambda: not os.path.exists("/run/tether/" + cid), timeout=20,
                 what="/run/tether/ID to be removed after the container")
        time.sleep(0.2)
        eq(listed(), [], "the container after it ended")
    finally:
        pm.close()


if __name__ == "__main__":
    main()

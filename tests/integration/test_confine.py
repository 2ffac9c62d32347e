"""Confinement at launch, asserted from the inside by the static probe as the workload."""
import json
import os
import shutil
import signal
import subprocess

from harness import (PROBE, TETHER, Skip, case, children_of, eq, main, one_line, wait_for)

CAP_NET_BIND_SERVICE = 1 << 10
SYSCALLS = ["getpid", "uname", "unshare", "setns", "ptrace", "bpf", "mount", "umount2",
            "kexec_load", "init_module", "perf_event_open", "keyctl", "add_key", "userfaultfd",
            "process_vm_readv", "clock_settime", "open_by_handle_at", "io_uring_setup",
            "socket_vsock", "clone_newuts", "clone3"]
DENIED_BY_DEFAULT = set(SYSCALLS) - {"getpid", "uname", "clone3"}
EPERM, ENOSYS = 1, 38


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: confinement of other users, capabilities and namespaces")


def probe(ws, confine, *actions, check_rc=0, env=None, user=None):
    pol = ws.decision_policy({"allow": True, "confine": confine} if confine is not None
                             else {"allow": True})
    cmd = ["run", "--policy", pol, "--", PROBE if user is None else ws.probe_for_users(), *actions]
    if user is None:
        p = ws.tether(*cmd, env=env, check_rc=check_rc)
    else:
        p = ws.as_user(user, *cmd, check_rc=check_rc)
    return json.loads(p.stdout) if p.stdout.strip() else p


def cap_names():
    names = {}
    for line in open("/usr/include/linux/capability.h"):
        f = line.split()
        if len(f) == 3 and f[0] == "#define" and f[1].startswith("CAP_") and f[2].isdigit():
            names[int(f[2])] = f[1]
    return names


def all_caps():
    """Every capability tether holds here, by name, for a decision that keeps them all."""
    have = int(host_status()["CapEff"], 16)
    return [n for i, n in sorted(cap_names().items()) if have & (1 << i)]


# podman's default set (containers.conf), which a root workload keeps without a
# `capabilities` list: doc/supervision.md.
DEFAULT_ROOT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                     "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
                     "CAP_SETUID", "CAP_SYS_CHROOT"]


def cap_mask(names):
    bits = {n: i for i, n in cap_names().items()}
    return sum(1 << bits[n] for n in names)


def host_status():
    st = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        st[k] = v.strip()
    return st


@case
def no_confine_block_sets_nnp_and_core_only(ws):
    r = probe(ws, None, "status")
    st, mine = r["status"], host_status()
    eq(st["NoNewPrivs"], "1", "no_new_privs")
    eq(r["rlimits"]["core"], [0, 0], "core dumps off")
    eq(st["Seccomp"], "0", "no seccomp filter")
    if os.geteuid() == 0:
        for k in ("CapEff", "CapPrm", "CapBnd"):
            eq(int(st[k], 16), cap_mask(DEFAULT_ROOT_CAPS), k + " is the default root set")
    else:
        for k in ("CapEff", "CapPrm", "CapBnd"):
            eq(st[k], mine[k], k + " unchanged")
    eq(r["rlimits"]["nofile"][1], int(os.popen("ulimit -Hn").read()), "other limits unchanged")


@case
def dropped_capabilities_are_absent(ws):
    need_root()
    r = probe(ws, {"capabilities": ["CAP_NET_BIND_SERVICE"], "seccomp": "unconfined"},
              "status", "bind", "80")
    st = r["status"]
    for k in ("CapEff", "CapPrm", "CapInh", "CapBnd"):
        eq(int(st[k], 16), CAP_NET_BIND_SERVICE, k)
    eq(int(st["CapAmb"], 16), 0, "no ambient capabilities for root")
    eq(r["bind"], 0, "port 80 can be bound with the kept capability")
    r = probe(ws, {"capabilities": [], "seccomp": "unconfined"}, "status", "bind", "80")
    eq(int(r["status"]["CapEff"], 16), 0, "no capabilities at all")
    eq(int(r["status"]["CapBnd"], 16), 0, "empty bounding set")
    eq(r["bind"], 13, "port 80 is refused (EACCES) without it, even to root")


@case
def ambient_capabilities_for_a_non_root_user(ws):
    need_root()
    confine = {"user": {"uid": 65534, "gid": 65534}, "capabilities": ["net_bind_service"]}
    r = probe(ws, confine, "status", "bind", "81")
    eq((r["uid"], r["gid"], r["groups"]), (65534, 65534, []), "user, group, no supplementary groups")
    for k in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
        eq(int(r["status"][k], 16), CAP_NET_BIND_SERVICE, k)
    eq(r["bind"], 0, "the non-root workload binds port 81 through its ambient capability")
    r = probe(ws, {"user": {"uid": 65534, "gid": 65534}}, "status", "bind", "81")
    eq(int(r["status"]["CapEff"], 16), 0, "a user switch without capabilities keeps none")
    eq(r["bind"], 13, "and cannot bind port 81")


@case
def no_new_privs_only_off_when_asked(ws):
    need_root()
    eq(probe(ws, {}, "status")["status"]["NoNewPrivs"], "1", "on in an empty block")
    r = probe(ws, {"no_new_privs": False, "seccomp": "unconfined"}, "status")
    eq(r["status"]["NoNewPrivs"], "0", "off when the decision says false")


@case
def default_seccomp_denies_the_documented_list(ws):
    everything = {"seccomp": "unconfined"}
    if os.geteuid() == 0:
        everything["capabilities"] = all_caps()
    unfiltered = probe(ws, everything, "try", ",".join(SYSCALLS))["try"]
    r = probe(ws, dict(everything, seccomp="default"), "status", "try", ",".join(SYSCALLS))
    eq(r["status"]["Seccomp"], "2", "filter mode")
    for name in SYSCALLS:
        if name in DENIED_BY_DEFAULT:
            eq(r["try"][name], EPERM, name + " is denied with EPERM")
            assert unfiltered[name] != EPERM, "%s gives EPERM even unfiltered: the check is void" % name
        elif name == "clone3":
            eq(r["try"][name], ENOSYS, "clone3 answers ENOSYS (libc falls back to clone)")
        else:
            eq(r["try"][name], unfiltered[name], name + " is untouched")
    # A confine block without "seccomp" gets the default filter, too.
    eq(probe(ws, {"no_new_privs": True}, "status")["status"]["Seccomp"], "2", "default when absent")


@case
def custom_filter_actions(ws):
    f = {"default_action": "allow", "syscalls": {"errno": ["uname"], "log": ["getppid"]}}
    r = probe(ws, {"seccomp": f}, "try", "uname,unshare,getpid")
    eq(r["try"], {"uname": EPERM, "unshare": 0, "getpid": 0}, "errno only for the listed call")
    # kill: the workload dies of SIGSYS, and tether exits 128+31.
    f = {"default_action": "allow", "syscalls": {"kill": ["bpf"]}}
    p = probe(ws, {"seccomp": f}, "sigsys", "bpf", check_rc=159)
    assert "survived" not in p.stdout
    # an allowlist with default errno: everything else fails with EPERM (tether execs the
    # measured file with execveat, which the list must allow)
    f = {"default_action": "errno",
         "syscalls": {"allow": ["execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list",
                                "rseq", "prlimit64", "mprotect", "readlinkat", "getrandom", "execveat",
                                "write", "exit_group", "getpid", "newfstatat", "uname"]}}
    r = probe(ws, {"seccomp": f}, "try", "getpid,unshare,uname")
    eq(r["try"], {"getpid": 0, "unshare": EPERM, "uname": 14}, "allowlist")


@case
def pid_namespace_makes_the_workload_pid_1(ws):
    need_root()
    r = probe(ws, {"namespaces": ["pid", "mount"], "seccomp": "unconfined"}, "status")
    eq(r["pid"], 1, "PID 1 in its namespace")
    eq(r["ppid"], 0, "its parent is outside")
    assert r["ns"]["pid"] != os.readlink("/proc/self/ns/pid"), "a new pid namespace"
    # /proc is remounted: the workload sees only its own namespace's processes
    pol = ws.decision_policy({"allow": True, "confine": {"namespaces": ["pid", "mount"]}})
    p = ws.tether("run", "--policy", pol, "--", "sh", "-c", "ls /proc | grep -c '^[0-9]'",
                  check_rc=0)
    assert int(p.stdout) <= 3, "more processes visible than the namespace holds: " + p.stdout


@case
def other_namespaces_are_new(ws):
    need_root()
    confine = {"namespaces": ["net", "ipc", "uts", "cgroup", "mount"], "seccomp": "unconfined"}
    r = probe(ws, confine, "status", "bind", "82")
    for ns in ("net", "ipc", "uts", "cgroup", "mnt"):
        assert r["ns"][ns] != os.readlink("/proc/self/ns/" + ns), ns + " namespace is new"
    eq(r["ns"]["pid"], os.readlink("/proc/self/ns/pid"), "pid namespace unchanged")
    eq(r["bind"], 0, "loopback is up in the new network namespace")


@case
def signals_reach_pid_1_and_tether_reaps(ws):
    need_root()
    pol = ws.decision_policy({"allow": True, "confine": {"namespaces": ["pid"]}})
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "trap", "42", "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        proc.send_signal(signal.SIGTERM)
        eq(proc.wait(timeout=10), 42, "SIGTERM reached the workload's handler as PID 1")
    finally:
        proc.kill()


@case
def rlimits_are_set(ws):
    confine = {"rlimits": {"nofile": 64, "fsize": {"soft": 1024, "hard": 4096},
                           "cpu": "unlimited", "core": {"soft": 0, "hard": "unlimited"}},
               "seccomp": "unconfined"}
    r = probe(ws, confine, "status")["rlimits"]
    eq(r["nofile"], [64, 64], "nofile")
    eq(r["fsize"], [1024, 4096], "fsize")
    eq(r["cpu"], [-1, -1], "cpu")
    eq(r["core"], [0, -1], "core as asked")
    eq(probe(ws, {}, "status")["rlimits"]["core"], [0, 0], "core off by default")


def refused(ws, confine, needle, rc=77, user=None):
    marker = ws.path("marker")
    pol = ws.decision_policy({"allow": True, "confine": confine})
    probe = PROBE if user is None else ws.probe_for_users()
    cmd = ["run", "--policy", pol, "--", probe, "mark", marker]
    if user is None:
        p = ws.tether(*cmd, check_rc=rc)
    else:
        p = ws.as_user(user, *cmd, check_rc=rc)
    line = one_line(p.stderr)
    assert needle in line, (needle, line)
    assert not os.path.exists(marker), "the workload started"
    return line


@case
def every_refusal_names_what_is_wrong(ws):
    refused(ws, {"capabilities": ["CAP_NET_BIND_SERVICE", "CAP_FLY", "sys_frobnicate"]},
            "unknown capability `CAP_FLY`, `sys_frobnicate`")
    refused(ws, {"seccomp": {"default_action": "allow", "syscalls": {"errno": ["getpid", "nosuchcall"]}}},
            "unknown system call `nosuchcall`")
    refused(ws, {"seccomp": {"default_action": "explode"}}, "`confine.seccomp.default_action`")
    refused(ws, {"seccomp": "strict"}, "`confine.seccomp`")
    refused(ws, {"namespaces": ["pid", "time"]}, "unknown namespace `time`")
    refused(ws, {"user": {"uid": -1, "gid": 0}}, "`confine.user.uid`")
    refused(ws, {"user": {"uid": 4294967295, "gid": 0}}, "`confine.user.uid`")
    refused(ws, {"rlimits": {"stack": 1}}, "`confine.rlimits.stack`")
    refused(ws, {"rlimits": {"nofile": {"soft": 10, "hard": 5}}}, "soft is above hard")
    refused(ws, {"frobnicate": True}, "`confine.frobnicate`")
    recs = ws.audit_records()
    assert all(not r["allow"] and "invalid decision" in r["reasons"][0] for r in recs), \
        "each refusal is audited as a deny"


@case
def failures_in_the_child_are_125_naming_the_step(ws):
    need_root()
    if shutil.which("setpriv") is None:
        raise Skip("needs setpriv(1)")
    # As an unprivileged user: the kernel refuses namespaces, users and capabilities.
    refused(ws, {"namespaces": ["net"]}, "confine: namespaces", rc=125, user=65534)
    refused(ws, {"namespaces": ["pid"]}, "namespaces: pid", rc=125, user=65534)
    refused(ws, {"user": {"uid": 0, "gid": 0}}, "confine: user", rc=125, user=65534)
    refused(ws, {"capabilities": ["CAP_NET_ADMIN"]}, "confine: capabilities", rc=125, user=65534)
    # A limit above the hard limit cannot be raised without CAP_SYS_RESOURCE.
    refused(ws, {"rlimits": {"nofile": 1 << 30}}, "confine: rlimits", rc=125, user=65534)
    # no_new_privs off with a filter needs CAP_SYS_ADMIN, which the workload dropped.
    refused(ws, {"no_new_privs": False, "capabilities": [], "seccomp": "default"},
            "confine: seccomp", rc=125)
    recs = [r for r in ws.audit_records(ws.path("user-65534", "audit.jsonl"))
            if r["event"] == "launch_failed"]
    eq(len(recs), 5, "each failure in the child is audited")
    assert all("confine" in r["reason"] for r in recs), recs


@case
def unprivileged_tether_runs_the_default_confinement(ws):
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        raise Skip("needs root and setpriv(1) to run tether as another user")
    probe_copy = ws.probe_for_users()
    r = json.loads(ws.as_user(65534, "run", "--", probe_copy, "status", check_rc=0).stdout)
    eq((r["status"]["Seccomp"], r["status"]["NoNewPrivs"], int(r["status"]["CapEff"], 16)),
       ("2", "1", 0), "default policy: seccomp, no_new_privs, no capabilities")


@case
def default_policy_confines(ws):
    r = json.loads(ws.tether("run", "--", PROBE, "status", "try", "ptrace", check_rc=0).stdout)
    eq(r["status"]["Seccomp"], "2", "the default filter")
    eq(r["try"]["ptrace"], EPERM, "ptrace denied")
    if os.geteuid() == 0:
        eq(int(r["status"]["CapEff"], 16), cap_mask(DEFAULT_ROOT_CAPS),
           "a root workload keeps podman's default capabilities")


@case
def measure_pid_reports_confinement(ws):
    need_root()
    confine = {"capabilities": ["CAP_NET_BIND_SERVICE", "CAP_KILL"], "namespaces": ["net"],
               "seccomp": "default"}
    pol = ws.decision_policy({"allow": True, "confine": confine})
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        pid = children_of(proc.pid)[0]
        m = json.loads(ws.tether("measure", "--pid", str(pid), check_rc=0).stdout)
        eq(m["pid"], pid, "pid")
        eq(m["ppid"], proc.pid, "ppid is tether")
        eq(m["exe"]["path"], os.path.realpath(PROBE), "exe path")
        import hashlib
        eq(m["exe"]["sha256"], hashlib.sha256(open(PROBE, "rb").read()).hexdigest(), "exe sha256")
        eq(m["capabilities"]["effective"], ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "effective")
        eq(m["capabilities"]["bounding"], ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "bounding")
        eq(m["capabilities"]["ambient"], [], "ambient")
        eq((m["seccomp"], m["no_new_privs"]), (2, True), "seccomp, no_new_privs")
        net = int(os.readlink("/proc/self/ns/net").split("[")[1][:-1])
        assert m["namespaces"]["net"] != net, "its own network namespace"
        eq(m["namespaces"]["pid"], int(os.readlink("/proc/self/ns/pid").split("[")[1][:-1]), "pid ns")
        eq(m["cgroup"], open("/proc/%d/cgroup" % pid).read().strip().split("::")[-1], "cgroup")
    finally:
        proc.kill()
        proc.wait()
    p = ws.tether("measure", "--pid", "999999999", check_rc=125)
    assert "999999999" in one_line(p.stderr)


if __name__ == "__main__":
    main()

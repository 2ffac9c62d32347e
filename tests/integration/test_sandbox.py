"""The Lua sandbox, through the real binary: each attempt to break out ends in a deny with a
reason, quickly, and the command is never started."""
import os

from harness import case, eq, main, one_line

ATTACKS = {
    "io_open": ("io.open('/etc/shadow')", "io"),
    "os_execute": ("os.execute('touch %(marker)s')", "os"),
    "require": ("require('os')", "require"),
    "dofile": ("dofile('/etc/passwd')", "dofile"),
    "loadfile": ("loadfile('/etc/passwd')", "loadfile"),
    "load_bytecode": ("load('\\27Lua\\84\\0')", "load"),
    "debug": ("debug.sethook()", "debug"),
    "setmetatable_G": ("setmetatable(_G, {})", "protected metatable"),
    "string_rep_bomb": ("local s = string.rep('x', 1 << 30)", "memory limit"),
    "table_growth": ("local t = {} for i = 1, 1e9 do t[i] = {i} end", "limit"),
    # Whichever budget runs out first: time comes first on a slow (emulated) machine.
    "infinite_loop": ("while true do end", "budget"),
    "pcall_swallows_budget": ("while true do pcall(function() while true do end end) end", "budget"),
}


def attack(name):
    body, reason = ATTACKS[name]

    def run(ws):
        marker = ws.path("marker")
        pol = ws.policy((body % {"marker": marker}) + "\nreturn {allow = true}")
        p = ws.tether("run", "--policy", pol, "--", "touch", marker, timeout=30, check_rc=77)
        line = one_line(p.stderr)
        assert line.startswith("tether: denied: policy error: ") and reason in line, line
        assert not os.path.exists(marker), "the command ran, or the policy escaped"
        rec = ws.audit_records()[-1]
        eq((rec["event"], rec["allow"]), ("decision", False), "audit record")
    run.__name__ = "sandbox_" + name
    return run


for _name in ATTACKS:
    case(attack(_name))


@case
def stuck_library_call_is_stopped(ws):
    """string.find with a pathological pattern never returns to the VM, where the budget
    lives; the watchdog stops tether, closed, and nothing runs."""
    marker = ws.path("marker")
    pol = ws.policy('string.find(string.rep("a", 30000), ".-.-.-.-b")\nreturn {allow = true}')
    p = ws.tether("run", "--policy", pol, "--", "touch", marker, timeout=30, check_rc=125)
    assert "overran its time budget" in one_line(p.stderr), p.stderr
    assert not os.path.exists(marker)


@case
def print_goes_to_the_debug_log(ws):
    pol = ws.policy('print("hello", 1, nil, true)\nreturn {allow = true}')
    env = dict(ws.env, TETHER_LOG="debug")
    p = ws.tether("run", "--policy", pol, "--", "true", env=env, check_rc=0)
    assert "tether: debug: policy: hello\t1\tnil\ttrue\n" in p.stderr, p.stderr
    eq(ws.tether("run", "--policy", pol, "--", "true", check_rc=0).stderr, "", "quiet by default")


@case
def bytecode_policy_is_refused(ws):
    import shutil
    import subprocess
    luac = shutil.which("luac5.4")
    src = ws.policy("return {allow = true}")
    if luac:
        subprocess.run([luac, "-o", ws.path("policy.luac"), src], check=True)
        pol = ws.path("policy.luac")
    else:
        pol = ws.write("policy.luac", "\x1bLua\x54\x00fake bytecode")
    p = ws.tether("run", "--policy", pol, "--", "true", check_rc=125)
    assert "binary chunk" in one_line(p.stderr), p.stderr


if __name__ == "__main__":
    main()

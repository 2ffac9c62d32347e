"""tether audit verify: the trail left by real runs verifies; tampering is found by line.
A trail whose lock someone holds is waited for a few seconds, not for ever; one that cannot
grow refuses the launch and keeps its chain."""
import fcntl
import json
import os
import resource
import subprocess

from harness import TETHER, case, eq, main, one_line


def make_trail(ws, runs=3):
    for _ in range(runs):
        ws.tether("run", "--", "true", check_rc=0)
    return open(ws.audit).read().splitlines()


def write(ws, lines):
    with open(ws.audit, "w") as f:
        f.write("".join(line + "\n" for line in lines))


@case
def intact_trail_verifies(ws):
    lines = make_trail(ws)
    p = ws.tether("audit", "verify", ws.audit, check_rc=0)
    head = json.loads(lines[-1])["hash"]
    eq(p.stdout, "%s: intact, %d records, head %s\n" % (ws.audit, len(lines), head), "report")
    # without an argument, the configured path is verified
    ws.tether("audit", "verify", check_rc=0)


@case
def tampering_is_found(ws):
    lines = make_trail(ws)
    edited = list(lines)
    edited[2] = edited[2].replace('"allow":true', '"allow":false')
    write(ws, edited)
    p = ws.tether("audit", "verify", ws.audit, check_rc=1)
    assert "line 3: the record was edited" in one_line(p.stdout), p.stdout

    write(ws, lines[:1] + lines[2:])
    p = ws.tether("audit", "verify", ws.audit, check_rc=1)
    assert "line 2:" in p.stdout and "removed" in p.stdout, p.stdout

    write(ws, lines[:3] + [lines[4], lines[3]] + lines[5:])
    p = ws.tether("audit", "verify", ws.audit, check_rc=1)
    assert "line 4:" in p.stdout, p.stdout

    write(ws, lines[1:])
    p = ws.tether("audit", "verify", ws.audit, check_rc=1)
    assert "line 1:" in p.stdout, p.stdout


@case
def unreadable_trail_is_125(ws):
    p = ws.tether("audit", "verify", ws.path("missing.jsonl"), check_rc=125)
    assert "missing.jsonl" in one_line(p.stderr)
    ws.tether("audit", check_rc=125)


@case
def a_trail_locked_by_someone_else_is_not_waited_for_without_end(ws):
    """Whoever may open the trail may take its lock and keep it: the launch is refused
    after a few seconds, in one line, with nothing run."""
    make_trail(ws, runs=1)
    marker = ws.path("ran")
    with open(ws.audit) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        p = ws.tether("run", "--", "touch", marker, timeout=30)
    eq(p.returncode, 125, "exit status")
    assert "locked by another process" in one_line(p.stderr), p.stderr
    assert not os.path.exists(marker), "it ran without its record"


def limited(ws, fsize, *args):
    """tether ARGS, started with RLIMIT_FSIZE at fsize bytes, as a shell's `ulimit -f` or a
    unit's LimitFSIZE= starts it."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
    return subprocess.run([TETHER, *args], env=ws.env, cwd=ws.root, capture_output=True,
                          text=True, timeout=60, preexec_fn=limit)


@case
def a_trail_that_cannot_grow_refuses_the_launch_and_stays_whole(ws):
    """A write past RLIMIT_FSIZE used to end tether by SIGXFSZ, and left half a record: now
    it is a one-line refusal, nothing runs, and the trail is as it was."""
    before = make_trail(ws, runs=2)
    size = os.path.getsize(ws.audit)
    marker = ws.path("ran")
    p = limited(ws, size + 100, "run", "--", "touch", marker)
    eq(p.returncode, 125, "exit status (not killed by SIGXFSZ, 153)")
    line = one_line(p.stderr)
    assert "audit log" in line and "File too large" in line, line
    assert not os.path.exists(marker), "it ran without its record"
    eq(open(ws.audit).read().splitlines(), before, "the trail, without part of a record")
    ws.tether("audit", "verify", ws.audit, check_rc=0)
    ws.tether("run", "--", "true", check_rc=0)
    ws.tether("audit", "verify", ws.audit, check_rc=0)


@case
def the_workload_gets_the_file_size_signal_tether_was_given(ws):
    """tether ignores SIGXFSZ for itself; its workload must not inherit that: past the
    limit a program is ended by the signal (153 in the shell), as under env(1)."""
    make_trail(ws, runs=1)
    script = 'head -c 100000 /dev/zero > "$1"; echo $?'
    p = limited(ws, 65536, "run", "--", "sh", "-c", script, "sh", ws.path("out"))
    eq((p.returncode, p.stdout), (0, "153\n"), "what the workload's shell saw")
    ref = subprocess.run(["env", "sh", "-c", script, "sh", ws.path("out2")], capture_output=True,
                         text=True, preexec_fn=lambda: resource.setrlimit(
                             resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY)))
    eq(p.stdout, ref.stdout, "the same as under env(1)")


if __name__ == "__main__":
    main()

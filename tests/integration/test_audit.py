"""tether audit verify: the trail left by real runs verifies; tampering is found by line.
A trail whose lock someone holds is waited for a few seconds, not for ever."""
import fcntl
import json
import os

from harness import case, eq, main, one_line


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


if __name__ == "__main__":
    main()

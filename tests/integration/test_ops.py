"""Operating tether: audit verify --head, records shipped to syslog, Prometheus metrics
(metrics.textfile and status --prometheus, checked by promtool) and status --denied.
Each case has its own trail, syslog socket and metrics directory in its workspace."""
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from harness import PROBE, Skip, case, eq, main, one_line, wait_for


def node(ws, **extra):
    ws.write("tether.json", json.dumps(dict({"audit": {"path": ws.audit}}, **extra)))


def runs(ws, n=3, allow=True):
    pol = ws.decision_policy({"allow": allow, "reasons": ["ok" if allow else "not here"]},
                             name="allow.lua" if allow else "deny.lua")
    for _ in range(n):
        ws.tether("run", "--policy", pol, "--", "/bin/true", check_rc=0 if allow else 77)


def trail_lines(ws):
    return open(ws.audit).read().splitlines()


# --- audit verify --head ---

@case
def head_that_the_trail_reaches_passes(ws):
    node(ws)
    runs(ws, 2)
    lines = trail_lines(ws)
    head = json.loads(lines[-1])["hash"]
    mid = json.loads(lines[1])["hash"]
    p = ws.tether("audit", "verify", "--head", head, check_rc=0)
    assert "reaches" in p.stdout and "record %d" % len(lines) in p.stdout, p.stdout
    ws.tether("audit", "verify", "--head", "%d:%s" % (len(lines), head), check_rc=0)
    # An older head is still reached once more records follow it.
    ws.tether("audit", "verify", "--head", "2:" + mid, check_rc=0)


@case
def cut_tail_is_detected(ws):
    node(ws)
    runs(ws, 3)
    lines = trail_lines(ws)
    head = json.loads(lines[-1])["hash"]
    ws.write("audit.jsonl", "\n".join(lines[:-2]) + "\n", mode=0o600)
    # The chain alone still verifies: only the head shows the cut.
    ws.tether("audit", "verify", check_rc=0)
    p = ws.tether("audit", "verify", "--head", head, check_rc=1)
    line = one_line(p.stdout, "stdout")
    assert "not in the trail" in line and "cut" in line, line
    p = ws.tether("audit", "verify", "--head", "%d:%s" % (len(lines), head), check_rc=1)
    line = one_line(p.stdout, "stdout")
    assert "tail cut" in line and "ends at record %d" % (len(lines) - 2) in line, line


@case
def replaced_file_is_detected(ws):
    node(ws)
    runs(ws, 2)
    lines = trail_lines(ws)
    head = json.loads(lines[-1])["hash"]
    os.rename(ws.audit, ws.path("old.jsonl"))
    runs(ws, 3)  # a new chain of its own, longer than the old one
    ws.tether("audit", "verify", check_rc=0)
    p = ws.tether("audit", "verify", "--head", "%d:%s" % (len(lines), head), check_rc=1)
    line = one_line(p.stdout, "stdout")
    assert "file replaced" in line and "record %d is not the head" % len(lines) in line, line
    p = ws.tether("audit", "verify", "--head", head, check_rc=1)
    assert "replaced" in one_line(p.stdout, "stdout")


@case
def head_that_is_not_a_hash_is_refused(ws):
    node(ws)
    runs(ws, 1)
    for bad in ["abc", "x" * 64, "0:" + "a" * 64, "A" * 64, "1:" + "a" * 63]:
        p = ws.tether("audit", "verify", "--head", bad, check_rc=125)
        assert "--head" in one_line(p.stderr), p.stderr


# --- syslog ---

class Listener:
    """A unix datagram socket of the test's own, standing in for /dev/log."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.got = []
        self.stop = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop:
            try:
                self.got.append(self.sock.recv(1 << 20).decode())
            except socket.timeout:
                pass

    def close(self):
        self.stop = True
        self.t.join()
        self.sock.close()


SYSLOG_LINE = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d tether\[(\d+)\]: (.*)$", re.S)


@case
def each_record_arrives_at_the_syslog_socket(ws):
    sock = ws.path("log.sock")
    node(ws, audit={"path": ws.audit, "syslog": True, "syslog_socket": sock})
    lis = Listener(sock)
    try:
        runs(ws, 1)
        runs(ws, 1, allow=False)
        lines = trail_lines(ws)
        wait_for(lambda: len(lis.got) >= len(lines), what="the records at the socket")
    finally:
        lis.close()
    eq(len(lis.got), len(lines), "one datagram per record")
    for dgram, line in zip(lis.got, lines):
        m = SYSLOG_LINE.match(dgram)
        assert m, dgram
        rec = json.loads(line)
        eq(m.group(3), line, "the message is the record's line")
        want = 10 * 8 + (5 if rec.get("allow") is False else 6)  # authpriv.notice / .info
        eq(int(m.group(1)), want, "priority of %s" % rec["event"])
        eq(int(m.group(2)), rec["tether_pid"], "pid")


@case
def long_record_is_shortened_and_keeps_its_hash(ws):
    sock = ws.path("log.sock")
    node(ws, audit={"path": ws.audit, "syslog": True, "syslog_socket": sock})
    pol = ws.decision_policy({"allow": False, "reasons": ["é" * 6000]})
    lis = Listener(sock)
    try:
        ws.tether("run", "--policy", pol, "--", "/bin/true", check_rc=77)
        wait_for(lambda: lis.got, what="the record at the socket")
    finally:
        lis.close()
    rec = json.loads(trail_lines(ws)[0])
    msg = SYSLOG_LINE.match(lis.got[0]).group(3)
    assert len(msg.encode()) <= 4096, len(msg.encode())
    short = json.loads(msg)  # still one JSON object, cut between characters
    eq(short["hash"], rec["hash"], "the hash")
    eq(short["truncated"], len(trail_lines(ws)[0].encode()), "the original length")
    assert trail_lines(ws)[0].startswith(short["record"]) and len(short["record"]) > 1000, \
        "the start of the record"
    ws.tether("audit", "verify", "--head", short["hash"], check_rc=0)


@case
def unreachable_syslog_is_a_warning(ws):
    node(ws, audit={"path": ws.audit, "syslog": True, "syslog_socket": ws.path("nobody.sock")})
    p = ws.tether("run", "--", "/bin/true", check_rc=0)
    assert "syslog" in p.stderr and "only in the trail" in p.stderr, p.stderr
    eq([r["event"] for r in ws.audit_records()], ["decision", "exit"], "the trail has them")


@case
def shipping_settings_are_checked(ws):
    for extra, field in [({"audit": {"syslog": "yes"}}, "audit.syslog"),
                         ({"audit": {"syslog_socket": "dev/log"}}, "audit.syslog_socket"),
                         ({"audit": {"syslog_socket": "/" + "a" * 120}}, "audit.syslog_socket"),
                         ({"metrics": {"textfile": "/var/lib/node/tether.txt"}}, "metrics.textfile"),
                         ({"metrics": {"textfile": "tether.prom"}}, "metrics.textfile"),
                         ({"metrics": {"dir": "/x"}}, "metrics.dir")]:
        ws.write("tether.json", json.dumps(extra))
        p = ws.tether("run", "--", "/bin/true", check_rc=125)
        assert "`%s`" % field in one_line(p.stderr), p.stderr


# --- metrics ---

def promtool(text):
    tool = shutil.which("promtool")
    if tool is None:
        raise Skip("promtool is not installed (Debian's prometheus; contrib/setup.sh test)")
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
    eq((p.returncode, p.stdout + p.stderr), (0, ""), "promtool check metrics")


def samples(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


@case
def textfile_counts_every_tether_exactly(ws):
    os.makedirs(ws.path("textfile"))
    prom = ws.path("textfile", "tether.prom")
    node(ws, metrics={"textfile": prom})
    allow = ws.decision_policy({"allow": True}, name="allow.lua")
    deny = ws.decision_policy({"allow": False, "reasons": ["no"]}, name="deny.lua")
    # Many tethers at once, each writing the textfile at its records.
    procs = [ws.popen("run", "--policy", allow if i % 3 else deny, "--", "/bin/true")
             for i in range(12)]
    for p in procs:
        p.communicate(timeout=60)
    text = open(prom).read()
    promtool(text)
    s = samples(text)
    eq(s['tether_decisions_total{engine="lua",phase="launch",outcome="allow"}'], 8, "allowed")
    eq(s['tether_decisions_total{engine="lua",phase="launch",outcome="deny"}'], 4, "denied")
    eq(s['tether_decision_latency_seconds_count{engine="lua",phase="launch"}'], 12, "latency")
    eq(s['tether_audit_records_total{event="exit"}'], 8, "exits")
    assert 'tether_monitors_running' in text, text
    eq(oct(os.stat(prom).st_mode & 0o777), "0o644", "node_exporter reads it")
    # The same counts from the whole trail.
    p = ws.tether("status", "--prometheus", check_rc=0)
    promtool(p.stdout)
    for k, v in samples(p.stdout).items():
        if k != "tether_monitors_running":
            eq(v, s[k], k)
    eq([f for f in os.listdir(ws.path("textfile")) if f.endswith(".tmp")], [], "no temporaries")


@case
def textfile_starts_again_on_a_new_trail(ws):
    os.makedirs(ws.path("textfile"))
    prom = ws.path("textfile", "tether.prom")
    node(ws, metrics={"textfile": prom})
    runs(ws, 3)
    key = 'tether_decisions_total{engine="lua",phase="launch",outcome="allow"}'
    eq(samples(open(prom).read())[key], 3, "three")
    os.rename(ws.audit, ws.path("rotated.jsonl"))
    runs(ws, 1)
    eq(samples(open(prom).read())[key], 1, "counted from the new trail")
    # A forged state is not believed: the counts come from the trail again.
    st = json.load(open(prom + ".state"))
    st["metrics"]["counters"]["tether_decisions_total"] = {k.split("{", 1)[1][:-1]: 1000
                                                           for k in [key]}
    st["head"] = "0" * 64
    open(prom + ".state", "w").write(json.dumps(st))
    runs(ws, 1)
    eq(samples(open(prom).read())[key], 2, "recounted")


@case
def monitors_running_gauge_counts_a_monitored_run(ws):
    node(ws)
    pol = ws.decision_policy({"allow": True, "monitor": {"on_drift": "log", "interval_ms": 200}})
    ready = ws.path("ready")
    proc = ws.popen("run", "--policy", pol, "--", PROBE, "ready", ready, "sleep", "30")
    try:
        wait_for(lambda: os.path.exists(ready), what="the workload")
        text = wait_for(lambda: (lambda t: samples(t)["tether_monitors_running"] >= 1 and t)(
            ws.tether("status", "--prometheus", check_rc=0).stdout), what="the gauge")
        promtool(text)
    finally:
        proc.kill()
        proc.communicate()


# --- status --denied ---

@case
def denied_lists_the_reasons_newest_last(ws):
    node(ws)
    for why in ["first reason", "second reason", "third reason"]:
        pol = ws.decision_policy({"allow": False, "reasons": [why, "and more"]})
        ws.tether("run", "--policy", pol, "--", "/bin/true", check_rc=77)
        runs(ws, 1)
    out = ws.tether("status", "--denied", check_rc=0).stdout.splitlines()
    eq(len(out), 3, "one line per denial: %r" % out)
    assert out[0].endswith("denied(launch) /bin/true: first reason; and more"), out[0]
    assert out[2].endswith("third reason; and more"), out[2]
    out = ws.tether("status", "--denied", "--limit", "2", check_rc=0).stdout.splitlines()
    assert len(out) == 2 and "second reason" in out[0], out
    js = json.loads(ws.tether("status", "--denied", "--json", check_rc=0).stdout)
    eq([(d["event"], d["phase"], d["reason"]) for d in js],
       [("decision", "launch", w + "; and more") for w in
        ["first reason", "second reason", "third reason"]], "json")
    hashes = [r["hash"] for r in ws.audit_records() if r.get("allow") is False]
    eq([d["hash"] for d in js], hashes, "each names its record")
    eq(ws.tether("status", "--denied", "--since", "1h", check_rc=0).stdout.count("\n"), 3, "1h")
    time.sleep(1.1)
    eq(ws.tether("status", "--denied", "--since", "1s", check_rc=0).stdout, "", "none in 1 s")
    for bad in [["--since", "5y"], ["--since", "-1"], ["--limit", "x"]]:
        p = ws.tether("status", "--denied", *bad, check_rc=125)
        assert bad[0] in one_line(p.stderr), p.stderr
    ws.tether("status", "--since", "1h", check_rc=125)


@case
def denied_without_a_trail_is_empty(ws):
    node(ws)
    eq(ws.tether("status", "--denied", check_rc=0).stdout, "", "nothing denied yet")
    eq(ws.tether("status", "--denied", "--json", check_rc=0).stdout, "[]\n", "json")
    ws.write("tether.json", '{"audit": 5}')
    p = ws.tether("status", "--denied", check_rc=125)
    assert "audit" in one_line(p.stderr), p.stderr


if __name__ == "__main__":
    main()

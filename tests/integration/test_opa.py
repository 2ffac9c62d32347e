"""The OPA engine against a real HTTP(S) server on loopback speaking the Data API."""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from harness import Skip, case, eq, main, one_line, wait_for
from opa_server import KEY_B64, TOKEN, DataAPI, RawServer, closed_port, make_pki, tls_context

NOBODY = 65534


def configure(ws, **opa):
    # Timeouts that a slow (emulated, loaded) machine's TLS handshake fits in; the cases about
    # timeouts set their own.
    opa.setdefault("connect_timeout_ms", 10000)
    opa.setdefault("timeout_ms", 20000)
    ws.write("tether.json", json.dumps({"audit": {"path": ws.audit}, "opa": opa}))


def measured_input(ws):
    return ws.write("in.json", ws.tether("measure", "--", "/bin/true", check_rc=0).stdout)


def evaluate(ws, url, path, rc, **opa):
    configure(ws, url=url, path=path, **opa)
    p = ws.tether("eval", "--compact", "--input", measured_input(ws), check_rc=rc, timeout=30)
    return p


def denied_with(ws, url, path, needle, **opa):
    configure(ws, url=url, path=path, **opa)
    marker = ws.path("marker")
    p = ws.tether("run", "--", "touch", marker, check_rc=77, timeout=30)
    line = one_line(p.stderr)
    assert line.startswith("tether: denied: ") and needle in line, (needle, line)
    assert not os.path.exists(marker), "the workload started"
    return line


@case
def request_is_the_documented_data_api_call(ws):
    srv = DataAPI().start()
    try:
        inp = measured_input(ws)
        configure(ws, url=srv.url, path="tether/echo")
        p = ws.tether("eval", "--compact", "--input", inp, check_rc=0)
        eq(json.loads(p.stdout)["allow"], True, "allow")
        r = srv.requests[-1]
        eq((r["method"], r["path"]), ("POST", "/v1/data/tether/echo"), "method and path")
        eq(r["headers"]["Content-Type"], "application/json", "content type")
        eq(json.loads(r["body"]), {"input": json.load(open(inp))}, "body is {input: document}")
        # --opa on the command line wins over the configuration's URL
        configure(ws, url="http://127.0.0.1:1", path="tether/allow")
        ws.tether("eval", "--opa", srv.url, "--input", inp, check_rc=0)
        eq(srv.requests[-1]["path"], "/v1/data/tether/allow", "path from the configuration")
    finally:
        srv.stop()


@case
def allow_and_deny_are_audited_with_opa_facts(ws):
    srv = DataAPI().start()
    try:
        configure(ws, url=srv.url, path="tether/allow")
        p = ws.tether("run", "--", "echo", "started", check_rc=0)
        eq(p.stdout, "started\n", "the workload ran")
        rec = ws.audit_records()[0]
        eq((rec["engine"], rec["url"], rec["path"], rec["decision_id"], rec["allow"]),
           ("opa", srv.url + "/", "tether/allow", "dec-1", True), "audit record")
        line = denied_with(ws, srv.url, "tether/deny", "opa says no")
        eq(line, "tether: denied: opa says no", "deny line")
        eq(ws.audit_records()[-1]["decision_id"], "dec-2", "decision_id of the deny")
    finally:
        srv.stop()


@case
def undefined_and_error_answers_are_denies(ws):
    srv = DataAPI().start()
    try:
        denied_with(ws, srv.url, "tether/undefined", "the decision `tether/undefined` is undefined")
        denied_with(ws, srv.url, "tether/bad", "HTTP 400 invalid_parameter: rego_type_error: x")
        denied_with(ws, srv.url, "tether/auth", "HTTP 401 unauthorized: authentication required")
        denied_with(ws, srv.url, "tether/error", "HTTP 500 internal_error: storage failure")
        denied_with(ws, srv.url, "tether/garbage", "invalid JSON")
        denied_with(ws, srv.url, "tether/redirect", "HTTP 307")
        eq([r["path"] for r in srv.requests].count("/v1/data/tether/allow"), 0,
           "the redirect was not followed")
    finally:
        srv.stop()


@case
def bearer_token_from_a_file(ws):
    srv = DataAPI().start()
    try:
        tok = ws.write("token", TOKEN + "\n", 0o600)
        configure(ws, url=srv.url, path="tether/auth", bearer_token_file=tok)
        p = ws.tether("run", "--", "true", check_rc=0)
        eq(srv.requests[-1]["headers"]["Authorization"], "Bearer " + TOKEN, "header sent")
        trail = open(ws.audit).read()
        assert TOKEN not in trail and TOKEN not in p.stderr, "the token leaked"
        os.chmod(tok, 0o644)
        p = ws.tether("run", "--", "true", check_rc=125)
        assert "may be read by others" in one_line(p.stderr)
        assert TOKEN not in p.stderr
    finally:
        srv.stop()


@case
def slow_answer_times_out_closed(ws):
    srv = DataAPI().start()
    try:
        t0 = time.monotonic()
        denied_with(ws, srv.url, "tether/slow", "timed out", timeout_ms=500)
        assert time.monotonic() - t0 < 2.5, "the timeout was not kept"
    finally:
        srv.stop()


@case
def oversized_answer_is_refused(ws):
    srv = DataAPI().start()
    try:
        denied_with(ws, srv.url, "tether/huge", "larger than 4096 bytes", max_response_bytes=4096)
        evaluate(ws, srv.url, "tether/huge", 0, max_response_bytes=1 << 20)
    finally:
        srv.stop()


@case
def chunked_answer_works(ws):
    srv = DataAPI().start()
    try:
        p = evaluate(ws, srv.url, "tether/chunked", 0)
        eq(json.loads(p.stdout)["reasons"], ["in chunks"], "reasons")
    finally:
        srv.stop()


@case
def https_with_a_test_ca(ws):
    if shutil.which("openssl") is None:
        raise Skip("needs the openssl command line to make a CA")
    pki = make_pki(ws.root)
    srv = DataAPI(tls=tls_context(pki)).start()
    try:
        evaluate(ws, srv.url, "tether/allow", 0, ca_file=pki["ca.pem"])
        localhost = srv.url.replace("127.0.0.1", "localhost")
        evaluate(ws, localhost, "tether/allow", 0, ca_file=pki["ca.pem"])
        denied_with(ws, srv.url, "tether/allow", "certificate")  # the system CAs do not know it
    finally:
        srv.stop()


@case
def ca_file_others_may_write_is_refused(ws):
    """opa.ca_file decides whom tether believes is OPA: like every trust anchor it must be
    root's and writable by nobody else, directories above included."""
    if shutil.which("openssl") is None:
        raise Skip("needs the openssl command line to make a CA")
    if os.geteuid() != 0:
        raise Skip("needs root: the attacker is the user nobody")
    pki = make_pki(ws.root)
    srv = DataAPI(tls=tls_context(pki)).start()
    try:
        evaluate(ws, srv.url, "tether/allow", 0, ca_file=pki["ca.pem"])  # the control
        os.chown(pki["ca.pem"], 65534, 65534)
        configure(ws, url=srv.url, path="tether/allow", ca_file=pki["ca.pem"])
        p = ws.tether("eval", "--input", measured_input(ws), check_rc=125)
        line = one_line(p.stderr)
        assert "opa.ca_file" in line and "refusing" in line, line
        eq(len(srv.requests), 1, "no request after the refusal")
    finally:
        srv.stop()


@case
def mutual_tls_required(ws):
    if shutil.which("openssl") is None:
        raise Skip("needs the openssl command line to make a CA")
    pki = make_pki(ws.root)
    srv = DataAPI(tls=tls_context(pki, require_client=True)).start()
    try:
        evaluate(ws, srv.url, "tether/allow", 0, ca_file=pki["ca.pem"],
                 client_cert=pki["client.pem"], client_key=pki["client.key"])
        denied_with(ws, srv.url, "tether/allow", "OPA", ca_file=pki["ca.pem"])
        eq(len(srv.requests), 1, "no request was answered without the client certificate")
        configure(ws, url=srv.url, client_cert=pki["client.pem"])
        p = ws.tether("run", "--", "true", check_rc=125)
        assert "go together" in one_line(p.stderr)
    finally:
        srv.stop()


@case
def server_down_is_a_deny(ws):
    url = "http://127.0.0.1:%d" % closed_port()
    line = denied_with(ws, url, "tether/allow", "onnect", retries=2)
    assert "127.0.0.1" in line


@case
def fail_open_only_when_unreachable(ws):
    url = "http://127.0.0.1:%d" % closed_port()
    configure(ws, url=url, path="tether/allow", fail_open=True)
    p = ws.tether("run", "--", "echo", "ran anyway", check_rc=0)
    eq(p.stdout, "ran anyway\n", "the workload started")
    line = one_line(p.stderr)
    assert line.startswith("tether: warning: ") and "opa.fail_open" in line, line
    events = [r["event"] for r in ws.audit_records()]
    eq(events, ["decision", "fail_open", "exit"], "audited")
    eq(ws.audit_records()[1]["url"], url + "/", "the record names the server")
    srv = DataAPI().start()
    try:
        for path, needle in (("tether/deny", "opa says no"), ("tether/error", "HTTP 500"),
                             ("tether/undefined", "undefined")):
            denied_with(ws, srv.url, path, needle, fail_open=True)
    finally:
        srv.stop()


@case
def plain_http_only_to_loopback(ws):
    for url in ("http://10.0.0.1:8181", "http://opa.example:8181", "ftp://127.0.0.1/",
                "gopher://127.0.0.1", "not a url"):
        configure(ws, url=url)
        p = ws.tether("run", "--", "true", check_rc=125)
        assert "opa.url" in one_line(p.stderr), p.stderr
    p = ws.tether("run", "--opa", "http://10.0.0.1", "--policy", "x.lua", "--", "true", check_rc=125)
    assert "exclude each other" in p.stderr
    # localhost names both families; OPA may listen on one, and a user on the other.  Over
    # HTTPS (the certificate authenticates) it is fine: https_with_a_test_ca.
    for url in ("http://localhost:8181", "http://LocalHost.:8181"):
        configure(ws, url=url)
        p = ws.tether("run", "--", "true", check_rc=125)
        assert "must name the address OPA listens on, 127.0.0.1 or [::1], not localhost" in \
            one_line(p.stderr), p.stderr


@case
def unix_socket(ws):
    sock = ws.path("opa.sock")
    srv = DataAPI(unix_path=sock).start()
    try:
        evaluate(ws, "unix://" + sock, "tether/allow", 0)
        eq(srv.requests[-1]["path"], "/v1/data/tether/allow", "path over the socket")
    finally:
        srv.stop()


@case
def credentials_stay_out_of_the_trail(ws):
    srv = DataAPI().start()
    try:
        url = srv.url.replace("http://", "http://alice:hunter2@") + "/?token=abc"
        configure(ws, url=url, path="tether/allow")
        ws.tether("run", "--", "true", check_rc=0)
        trail = open(ws.audit).read()
        assert "hunter2" not in trail and "token=abc" not in trail, trail
        eq(ws.audit_records()[0]["url"], srv.url + "/", "url without credentials")
    finally:
        srv.stop()


@case
def released_key_never_shows(ws):
    srv = DataAPI().start()
    try:
        p = evaluate(ws, srv.url, "tether/key", 0)
        d = json.loads(p.stdout)
        eq(d["key"], {"value": "(redacted)"}, "eval shows no key")
        p = ws.tether("run", "--", "true", check_rc=0)
        for text in (p.stdout, p.stderr, open(ws.audit).read()):
            assert KEY_B64 not in text, "the key leaked"
    finally:
        srv.stop()


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root: the attacker is another user, nobody")


def squatter(ws, unix=False, slow=False, extra=(), uid=NOBODY, root_listens=False):
    """A raw server run as nobody (or uid), the way another local user would squat OPA's
    address (slow: leaving each connection in its accept queue for 0.2 s; root_listens: root
    listens, then the process becomes uid and accepts, as a service handed its socket by
    root does): returns (process, url, the log of what it received)."""
    need_root()
    if shutil.which("setpriv") is None:
        raise Skip("needs setpriv to run the squatter as nobody")
    os.chmod(ws.root, 0o755)
    d = ws.path("squat")
    os.mkdir(d, 0o755)
    os.chown(d, uid, uid)
    script = ws.path("opa_server.py")
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "opa_server.py"), script)
    os.chmod(script, 0o644)
    as_user = [] if root_listens else ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                                       "--clear-groups"]
    proc = subprocess.Popen(as_user + [sys.executable, script, "squat", d]
                            + (["unix"] if unix else []) + (["slow"] if slow else [])
                            + (["drop=%d" % uid] if root_listens else [])
                            + list(extra), cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = os.path.join(d, "port")
    try:
        wait_for(lambda: os.path.exists(port), what="the squatter's listener")
    except AssertionError:
        proc.kill()
        raise
    return proc, open(port).read(), os.path.join(d, "log")


def log_records(log, n):
    wait_for(lambda: os.path.exists(log) and len(open(log).readlines()) >= n,
             what="%d connections logged" % n)
    time.sleep(0.2)  # a retry would be logged by now
    return [json.loads(line) for line in open(log)]


def squatter_gets_nothing(ws, unix, slow=False, uid=NOBODY, root_listens=False):
    proc, url, log = squatter(ws, unix, slow, uid=uid, root_listens=root_listens)
    try:
        tok = ws.write("token", TOKEN + "\n", 0o600)
        line = denied_with(ws, url, "tether/allow", "nothing sent", bearer_token_file=tok,
                           fail_open=True, retries=3)
        assert ("served by uid %d " % uid in line or "listener is uid %d " % uid in line), line
        recs = log_records(log, 1)
        eq(len(recs), 1, "connections (no retry)")
        eq(recs[0]["bytes"], 0, "bytes the squatter received")
        assert "fail_open" not in [r["event"] for r in ws.audit_records()], "failed open"
        # The same server, once the node names its uid, gets the request: the refusal above
        # was the owner check's.
        configure(ws, url=url, path="tether/allow", bearer_token_file=tok, server_uid=uid)
        ws.tether("run", "--", "true", check_rc=0, timeout=30)
        recs = log_records(log, 2)
        assert "Bearer " + TOKEN in recs[1]["data"], recs[1]
    finally:
        proc.kill()
        proc.wait()


@case
def squatted_loopback_port_gets_no_request(ws):
    squatter_gets_nothing(ws, unix=False)


@case
def unix_socket_served_by_another_user_gets_no_request(ws):
    squatter_gets_nothing(ws, unix=True)


@case
def unix_socket_slow_to_accept_gets_no_request_until_named(ws):
    """Waiting in the accept queue, the server's end has no owner yet: tether waits for the
    accept, and the accepted end is nobody's."""
    squatter_gets_nothing(ws, unix=True, slow=True)


@case
def a_unix_socket_root_listens_on_and_a_user_accepts_on_gets_no_request(ws):
    """Root binds and listens; the process then becomes uid 4321 and accepts (socket
    activation, a master and its workers, a listener handed over).  SO_PEERCRED names the
    listener, root; the accepted end, which gets the request, is 4321's: nothing is sent.
    A squatter of OPA's path can point it at such a socket."""
    squatter_gets_nothing(ws, unix=True, uid=4321, root_listens=True)


@case
def a_unix_peer_found_by_a_wrapped_inode_number_is_not_trusted(ws):
    """Socket inode numbers wrap at 2^32: after about 2^32 pipe() calls, a user's accepted end
    can have the number of a root-owned socket, which sock_diag's lookup by number may find
    first.  Simulated (diag_collide.c, preloaded: the lookup of the accepted end answers with
    a root socket of a pair that is not tether's): the socket found must be tether's peer,
    and is not, so nothing is sent.  Root listens, uid 4321 accepts, as a handed-over
    listener would."""
    need_root()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Skip("needs a C compiler to build the preloaded simulation")
    shim = ws.path("diag_collide.so")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diag_collide.c")
    subprocess.run([cc, "-shared", "-fPIC", "-o", shim, src, "-ldl"], check=True)
    pair = socket.socketpair()
    proc, url, log = squatter(ws, unix=True, uid=4321, root_listens=True)
    try:
        configure(ws, url=url, path="tether/allow")
        env = dict(ws.env, LD_PRELOAD=shim, COLLIDE_INO=str(os.fstat(pair[0].fileno()).st_ino),
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        p = ws.tether("eval", "--compact", "--input", measured_input(ws), env=env, timeout=30)
        eq(p.returncode, 77, "exit (stderr %r)" % p.stderr)
        line = json.loads(p.stdout)["reasons"][0]
        assert "nothing sent: the server closed the connection before anything was sent" in line, \
            line
        recs = log_records(log, 1)
        eq(recs[0]["bytes"], 0, "bytes the accepting user received")
    finally:
        proc.kill()
        proc.wait()
        pair[0].close()
        pair[1].close()


@case
def a_squatter_bound_to_lo_beside_roots_listener_gets_no_request(ws):
    """Root listens on OPA's port on every IPv6 address, IPv6 only; a user binds the same
    port on 127.0.0.1 to the loopback device (SO_BINDTODEVICE: no privilege needed), takes
    tether's connection and closes its listener.  Root's listener is no proof of who
    accepted: the accepted end is found as the kernel found it, and is nobody's."""
    need_root()
    root = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    root.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    root.bind(("::", 0))
    root.listen(4)
    port = root.getsockname()[1]
    try:
        proc, url, log = squatter(ws, extra=("lo", "port=%d" % port))
        try:
            eq(url, "http://127.0.0.1:%d" % port, "the squatter took the port")
            tok = ws.write("token", TOKEN + "\n", 0o600)
            line = denied_with(ws, url, "tether/allow", "nothing sent", bearer_token_file=tok)
            assert "uid %d" % NOBODY in line, line
            recs = log_records(log, 1)
            eq(recs[0]["bytes"], 0, "bytes the squatter received")
        finally:
            proc.kill()
            proc.wait()
    finally:
        root.close()


@case
def a_squatter_slow_to_accept_gets_no_request(ws):
    """The connection waits in the squatter's accept queue while tether checks it.  Until it
    is accepted it has no socket file, and older kernels (Debian 12's 6.1) list it as uid 0:
    tether waits for the accept, and the accepted end is nobody's.  Named as
    opa.server_uid, the same slow server gets the request (tether waited for it)."""
    squatter_gets_nothing(ws, unix=False, slow=True)


@case
def an_answer_cut_short_is_a_deny_and_never_fails_open(ws):
    """A trusted OPA that hangs up halfway through its answer (stopping): no answer, which a
    monitor takes as an outage; at launch a deny, never failed open, and no key released."""
    srv = RawServer(mode="short").start()
    try:
        line = denied_with(ws, srv.url, "tether/allow", "OPA", fail_open=True, retries=0)
        assert "fail_open" not in [r["event"] for r in ws.audit_records()], "failed open"
        assert srv.conns and srv.conns[0]["bytes"] > 0, "the request was not sent"
        assert "transfer closed" in line, line  # curl's PARTIAL_FILE: the path under test
    finally:
        srv.stop()


@case
def a_squatter_that_never_accepts_in_time_is_an_attack_not_an_outage(ws):
    """A connection not accepted within opa.connect_timeout_ms is no answer (an OPA that is
    stopping: a monitor gives it its grace), unless a listener that could have taken it is
    not trusted: then it is the squatter it looks like, named in the refusal."""
    proc, url, log = squatter(ws, slow=True)
    try:
        line = denied_with(ws, url, "tether/allow", "nothing sent", connect_timeout_ms=50)
        assert "did not accept the connection within 50 ms" in line, line
        assert "has a listener of uid %d " % NOBODY in line, line
    finally:
        proc.kill()
        proc.wait()
    # The same port held by root and never accepted: no answer, and no listener named.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    try:
        url = "http://127.0.0.1:%d" % hung.getsockname()[1]
        line = denied_with(ws, url, "tether/allow", "nothing sent", connect_timeout_ms=50)
        assert "did not accept" in line and "has a listener" not in line, line
    finally:
        hung.close()


@case
def in_a_user_namespace_the_overflow_uid_vouches_for_nobody(ws):
    """tether in a user namespace that maps root alone (unshare --map-root-user) sees every
    other user's socket as uid 65534, the overflow uid.  A node that names nobody (65534) as
    opa.server_uid trusts nobody there: a squatter running as another user, uid 4321, gets
    no request.  (In the initial namespace, which maps every uid, 65534 is nobody alone:
    squatted_loopback_port_gets_no_request trusts it once named.)"""
    need_root()
    if shutil.which("unshare") is None:
        raise Skip("needs unshare(1) (util-linux) to make a user namespace")
    if subprocess.run(["unshare", "--user", "--map-root-user", "true"]).returncode != 0:
        raise Skip("this kernel or sandbox makes no user namespaces")
    inp = measured_input(ws)
    proc, url, log = squatter(ws, uid=4321)
    try:
        configure(ws, url=url, path="tether/allow", server_uid=NOBODY)
        ws.prefix = ["unshare", "--user", "--map-root-user"]
        p = ws.tether("eval", "--compact", "--input", inp, check_rc=77, timeout=30)
        line = json.loads(p.stdout)["reasons"][0]
        assert "nothing sent" in line and "uid %d, which this user namespace shows for every " \
            "uid it does not map" % NOBODY in line, line
        recs = log_records(log, 1)
        eq(recs[0]["bytes"], 0, "bytes the squatter received")
    finally:
        proc.kill()
        proc.wait()


@case
def a_user_namespace_that_maps_every_uid_in_pieces_leaves_nobody_nobodys(ws):
    """A user namespace whose map covers every uid, in two pieces, leaves none unmapped:
    there uid 65534 is nobody alone, and a server run as nobody, once named as
    opa.server_uid, gets the request."""
    need_root()
    inp = measured_input(ws)
    proc, url, log = squatter(ws)
    try:
        tok = ws.write("token", TOKEN + "\n", 0o600)
        configure(ws, url=url, path="tether/allow", bearer_token_file=tok, server_uid=NOBODY)
        helper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "userns_run.py")
        ws.prefix = [sys.executable, helper, "0 0 1000;1000 1000 4294966295", "--"]
        p = ws.tether("eval", "--compact", "--input", inp, timeout=30)
        if p.returncode == 125 and not p.stdout:
            raise Skip("this kernel or sandbox makes no user namespaces: " + p.stderr.strip())
        eq(p.returncode, 0, "exit (stderr %r)" % p.stderr)
        eq(json.loads(p.stdout)["allow"], True, "allow")
        recs = log_records(log, 1)
        assert "Bearer " + TOKEN in recs[0]["data"], recs[0]
    finally:
        proc.kill()
        proc.wait()


@case
def fail_open_on_a_connect_timeout(ws):
    """A listener whose accept queue is full drops SYNs: no connection within the connect
    timeout, the other case of an OPA that cannot be reached at all."""
    import socket
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = lsn.getsockname()[1]
    # Fill the accept queue until a fresh connect stays pending: from then on the kernel drops
    # every SYN, however slow this machine is to complete the first handshakes.
    import select
    fillers = []
    try:
        for _ in range(16):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(c)
            if not select.select([], [c], [], 1.0)[1]:
                break
        else:
            raise Skip("the listener's accept queue never filled: cannot make a connect hang")
        configure(ws, url="http://127.0.0.1:%d" % port, path="tether/allow", fail_open=True,
                  retries=0, connect_timeout_ms=300)
        p = ws.tether("run", "--", "echo", "ran anyway", check_rc=0, timeout=30)
        eq(p.stdout, "ran anyway\n", "the workload started")
        line = one_line(p.stderr)
        assert "timeout" in line.lower() and "opa.fail_open" in line, p.stderr
    finally:
        for c in fillers:
            c.close()
        lsn.close()


@case
def fail_open_never_after_a_connection(ws):
    """A reset, an empty reply, a TLS 1.3 client-certificate rejection and a timeout all
    come after OPA was reached: a deny, without a retry, whatever fail_open says."""
    servers = [(RawServer("reset"), "Recv failure"), (RawServer("empty"), "Empty reply"),
               (RawServer("reset-at-once"), "OPA")]
    if shutil.which("openssl") is not None:
        pki = make_pki(ws.root)
        tls = tls_context(pki, require_client=True)
        tls.minimum_version = tls.maximum_version = __import__("ssl").TLSVersion.TLSv1_3
        servers.append((RawServer("tls-reject", tls=tls), "OPA"))
    for srv, needle in servers:
        srv.start()
        try:
            extra = {"ca_file": pki["ca.pem"]} if srv.tls else {}
            denied_with(ws, srv.url, "tether/allow", needle, fail_open=True, retries=3, **extra)
            eq(len(srv.conns), 1, "%s: connections" % srv.mode)
            if srv.mode in ("reset", "empty"):
                eq(srv.conns[0]["bytes"] > 0, True, "%s: the request was sent" % srv.mode)
        finally:
            srv.stop()
    srv = DataAPI().start()
    try:
        denied_with(ws, srv.url, "tether/slow", "timed out", fail_open=True, retries=3,
                    timeout_ms=500)
        eq(len(srv.requests), 1, "slow: requests")
    finally:
        srv.stop()
    assert "fail_open" not in [r["event"] for r in ws.audit_records()], "failed open"


def found_in_memory(pid, needles):
    """Which of needles are in a readable mapping of process pid, read through
    /proc/PID/mem.  Mappings above 1 GiB are reservations (a sanitizer's shadow), not
    heap, and are skipped."""
    found, step = set(), 4 << 20
    overlap = max(len(n) for n in needles)
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            if f[1][0] != "r" or (len(f) > 5 and f[5] in ("[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if hi - lo > 1 << 30:
                continue
            for at in range(lo, hi, step):
                try:
                    data = os.pread(mem.fileno(), min(step + overlap, hi - at), at)
                except OSError:
                    continue
                found.update(n for n in needles if n in data)
    return found


@case
def released_key_is_wiped_from_memory(ws):
    need_root()
    pki = make_pki(ws.root) if shutil.which("openssl") else None
    for tls in ([None, pki] if pki else [None]):
        srv = DataAPI(tls=tls_context(pki) if tls else None).start()
        proc = None
        try:
            extra = {"ca_file": pki["ca.pem"]} if tls else {}
            configure(ws, url=srv.url, path="tether/key-watched", **extra)
            proc = ws.popen("run", "--", "sleep", "60")
            wait_for(lambda: any(r["event"] == "decision" for r in ws.audit_records()),
                     what="the decision")
            time.sleep(0.3)
            seen = b"key released, watched"  # the decision's reason, kept for the run
            found = found_in_memory(proc.pid, [seen, KEY_B64.encode(), base64.b64decode(KEY_B64)])
            assert seen in found, "the scan does not see tether's heap"
            assert KEY_B64.encode() not in found, "the base64 key is in tether's memory"
            assert base64.b64decode(KEY_B64) not in found, "the key is in tether's memory"
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
            srv.stop()
            if os.path.exists(ws.audit):
                os.unlink(ws.audit)


@case
def client_key_must_be_private_and_ours(ws):
    if shutil.which("openssl") is None:
        raise Skip("needs the openssl command line to make a CA")
    need_root()
    pki = make_pki(ws.root)
    srv = DataAPI(tls=tls_context(pki, require_client=True)).start()
    try:
        key = pki["client.key"]
        configure(ws, url=srv.url, path="tether/allow", ca_file=pki["ca.pem"],
                  client_cert=pki["client.pem"], client_key=key)
        for mode, owner, needle in ((0o644, 0, "may be read by others (mode 0644)"),
                                    (0o640, 0, "may be read by others (mode 0640)"),
                                    (0o600, NOBODY, "owned by uid %d" % NOBODY)):
            os.chmod(key, mode)
            os.chown(key, owner, owner)
            p = ws.tether("run", "--", "true", check_rc=125)
            line = one_line(p.stderr)
            assert "opa.client_key" in line and key in line and needle in line, line
        eq(len(srv.requests), 0, "requests made with a refused key")
        os.chown(key, 0, 0)
        ws.tether("run", "--", "true", check_rc=0)
        eq(len(srv.requests), 1, "requests with the key in order")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()

"""A real HTTP(S) server on loopback that answers as OPA's REST Data API documents:
POST /v1/data/<path> with {"input": ...} -> 200 {"result": ..., "decision_id": ...}, 200 {}
when undefined, and {"code", "message"} with 4xx/5xx.  The last segment of the path picks
the behaviour, so that one server covers every case; every request is recorded.

Used by test_opa.py, in-process, on a thread: started by the test and stopped after it.
RawServer is a lower-level peer for the attacks and the failures after connect: it records
every connection and the bytes it received.  `python3 opa_server.py squat DIR [unix] [slow]
[lo port=N] [drop=UID]` runs
one as a separate process (so that it can run as another user; with drop=UID, started as
root, it listens as root and accepts as UID), writing DIR/port and a JSON line per
connection to DIR/log.
"""
import http.server
import json
import os
import select
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time

TOKEN = "s3cret-token-for-tests"
KEY_B64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="  # 32 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.server.conns.add(self.connection)

    def finish(self):
        super().finish()
        self.server.conns.discard(self.connection)

    def _send(self, status, doc=None, raw=None, chunked=False, headers=()):
        body = raw if raw is not None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                part = body[i:i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self):
        with self.server.lock:
            self.server.busy += 1
        try:
            self._post()
        finally:
            with self.server.lock:
                self.server.busy -= 1

    def _post(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        srv = self.server
        rec = {"method": "POST", "path": self.path, "headers": dict(self.headers.items()),
               "body": raw.decode(errors="replace")}
        srv.requests.append(rec)
        try:
            doc = json.loads(raw)
        except ValueError:
            return self._send(400, {"code": "invalid_parameter", "message": "body is not JSON"})
        if not self.path.startswith("/v1/data/"):
            return self._send(404, {"code": "resource_not_found", "message": "no such API"})
        mode = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        did = "dec-%d" % len(srv.requests)
        if srv.on_request is not None:  # what a test does while tether waits for the answer
            srv.on_request(doc)
        if mode == "allow":
            return self._send(200, {"result": {"allow": True, "reasons": ["opa says yes"]},
                                    "decision_id": did})
        if mode == "monitored":
            return self._send(200, {"result": {"allow": True, "reasons": ["watched"],
                                               "monitor": {"interval_ms": 100, "on_drift": "kill"}},
                                    "decision_id": did})
        if mode == "deny":
            return self._send(200, {"result": {"allow": False, "reasons": ["opa says no"]},
                                    "decision_id": did})
        if mode == "echo":  # allow when the input came through whole
            ok = isinstance(doc.get("input"), dict) and "host" in doc["input"]
            return self._send(200, {"result": {"allow": ok, "reasons": ["echo"]}})
        if mode == "undefined":
            return self._send(200, {"decision_id": did})
        if mode == "bad":
            return self._send(400, {"code": "invalid_parameter", "message": "rego_type_error: x"})
        if mode == "auth":
            if self.headers.get("Authorization") != "Bearer " + TOKEN:
                return self._send(401, {"code": "unauthorized",
                                        "message": "authentication required"})
            return self._send(200, {"result": {"allow": True, "reasons": ["token accepted"]}})
        if mode == "error":
            return self._send(500, {"code": "internal_error", "message": "storage failure"})
        if mode == "slow":
            time.sleep(3)
            return self._send(200, {"result": {"allow": True}})
        if mode == "huge":
            return self._send(200, {"result": {"allow": True, "reasons": ["x" * (64 << 10)]}})
        if mode == "chunked":
            return self._send(200, {"result": {"allow": True, "reasons": ["in chunks"]}},
                              chunked=True)
        if mode == "garbage":
            return self._send(200, raw=b"<html>not json</html>")
        if mode == "redirect":
            return self._send(307, {}, headers=[("Location", "/v1/data/tether/allow")])
        if mode == "key":
            return self._send(200, {"result": {"allow": True, "reasons": ["key released"],
                                               "key": {"value": KEY_B64}}, "decision_id": did})
        if mode == "key-watched":  # and then no other decision for a minute
            return self._send(200, {"result": {"allow": True, "reasons": ["key released, watched"],
                                               "key": {"value": KEY_B64},
                                               "monitor": {"interval_ms": 60000}},
                                    "decision_id": did})
        return self._send(200, {"decision_id": did})  # any other path: undefined


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class DataAPI:
    """start() -> self; .url; .requests; stop().  on_request(doc), when given, runs before
    each answer: what happens while tether waits for the decision."""

    def __init__(self, tls=None, unix_path=None, on_request=None):
        self.tls = tls
        self.unix_path = unix_path
        self.on_request = on_request

    def start(self):
        if self.unix_path:
            self.httpd = UnixServer(self.unix_path, Handler)
            self.url = "unix://" + self.unix_path
        else:
            self.httpd = Server(("127.0.0.1", 0), Handler)
            port = self.httpd.server_address[1]
            self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", port)
        if self.tls:
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.requests = []
        self.httpd.conns = set()
        self.httpd.lock = threading.Lock()
        self.httpd.busy = 0
        self.httpd.on_request = self.on_request
        self.requests = self.httpd.requests
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Down as a dead server is: no listener, and no open connection either.  A request
        being answered is answered first (an OPA that stops drains its requests)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        end = time.monotonic() + 5
        while self.httpd.busy and time.monotonic() < end:
            time.sleep(0.01)
        for c in list(self.httpd.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate,
    made with the openssl command line."""
    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, cwd=d, capture_output=True)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=tether test CA")
    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ext in (("server", ["-extfile", "san.cnf"]), ("client", [])):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", name + ".pem", "-days", "2", *ext)
    return {k: os.path.join(d, k) for k in ("ca.pem", "server.pem", "server.key",
                                             "client.pem", "client.key")}


def tls_context(pki, require_client=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca.pem"])
    return ctx


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


KEY_ANSWER = json.dumps({"result": {"allow": True, "reasons": ["answered by the raw server"],
                                    "key": {"value": KEY_B64}}}).encode()


def read_request(conn, timeout=2.0):
    """Whatever the peer sends within timeout, up to the end of one HTTP request."""
    conn.settimeout(timeout)
    data = b""
    try:
        while True:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                n = 0
                for line in head.split(b"\r\n"):
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                if len(body) >= n:
                    break
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, OSError):
        pass
    return data


class RawServer:
    """A listener on loopback TCP (or a unix socket) that records each connection as
    {"bytes", "data"} and then, by mode: "answer" (a 200 that releases a key), "short" (the
    same, cut short: its Content-Length says 100 bytes more), "reset" (an
    RST once the request is in), "empty" (closes without a reply), "reset-at-once" (an RST before anything is read),
    "tls-reject" (a TLS 1.3
    server that requires a client certificate: the client learns after its handshake).
    With accept_delay, each connection waits that long in the accept queue.  With port, the
    listener takes that port; with device, it is bound to that device (SO_BINDTODEVICE, open
    to every user), and closed after its first accept.  With drop_to, the process gives up
    root for that uid once it listens, before it accepts anything."""

    def __init__(self, mode="answer", unix_path=None, tls=None, log=None, accept_delay=0,
                 port=0, device=None, drop_to=None):
        self.mode, self.unix_path, self.tls, self.log = mode, unix_path, tls, log
        self.accept_delay, self.want_port, self.device = accept_delay, port, device
        self.drop_to = drop_to
        self.conns = []

    def start(self):
        if self.unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.unix_path)
            self.url = "unix://" + self.unix_path
        else:
            self.sock = socket.socket()
            if self.device:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                                     self.device.encode())
            self.sock.bind(("127.0.0.1", self.want_port))
            self.port = self.sock.getsockname()[1]
            self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        self.sock.listen(16)
        if self.drop_to is not None:
            if self.unix_path:
                os.chmod(self.unix_path, 0o777)
            os.setgroups([])
            os.setresgid(self.drop_to, self.drop_to, self.drop_to)
            os.setresuid(self.drop_to, self.drop_to, self.drop_to)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def _serve(self):
        while True:
            try:
                if self.accept_delay:
                    select.select([self.sock], [], [])
                    time.sleep(self.accept_delay)
                conn, _ = self.sock.accept()
                if self.device:
                    self.sock.close()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        rec = {"bytes": 0, "data": ""}
        self.conns.append(rec)
        try:
            if self.mode == "tls-reject":
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                    rec["data"] = read_request(conn).decode(errors="replace")
                except (ssl.SSLError, OSError) as e:
                    rec["tls_error"] = str(e)
                return
            if self.mode == "reset-at-once":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            data = read_request(conn)
            rec["bytes"], rec["data"] = len(data), data.decode(errors="replace")
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "short" and data:  # an answer cut short: OPA stopping
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(KEY_ANSWER) + 100,
                                                                KEY_ANSWER))
            elif self.mode == "answer" and data:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(KEY_ANSWER), KEY_ANSWER))
        finally:
            if self.log:
                with open(self.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            conn.close()

    def stop(self):
        self.sock.close()


if __name__ == "__main__" and len(sys.argv) >= 3 and sys.argv[1] == "squat":
    d = sys.argv[2]
    unix = os.path.join(d, "opa.sock") if "unix" in sys.argv[3:] else None
    delay = 0.2 if "slow" in sys.argv[3:] else 0
    port = [int(a[5:]) for a in sys.argv[3:] if a.startswith("port=")]
    drop = [int(a[5:]) for a in sys.argv[3:] if a.startswith("drop=")]
    srv = RawServer(unix_path=unix, log=os.path.join(d, "log"), accept_delay=delay,
                    port=port[0] if port else 0, device="lo" if "lo" in sys.argv[3:] else None,
                    drop_to=drop[0] if drop else None)
    srv.start()
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(srv.url)
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    while True:
        time.sleep(60)

#!/usr/bin/env python3
"""The HTTP front door (http:// endpoints) with real clients: Python's urllib and http.client,
curl, Prometheus's promtool and prometheus_client parser, headless Chromium; and hostile HTTP
(oversized headers and bodies, slowloris, malformed requests, pipelining, a client that never
reads), after which the server's brine endpoint must still serve.

Usage: http_front_door_test.py EXAMPLES_PYTHON_DIR calculator_server bank_server ARTIFACT_DIR

Loopback only. Every wait has a deadline; nothing sleeps to synchronise (polls with deadlines
where the server acts on a timer).
"""
import http.client
import json
import re
import select
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, sys.argv[1])
from brine_json import Connection  # noqa: E402

import harness  # noqa: E402
import tls_certs  # noqa: E402
from harness import check, stop  # noqa: E402

CALC, BANK, ARTIFACTS = sys.argv[2], sys.argv[3], sys.argv[4]


def start(argv, env=None):
    """Starts a server; returns (process, {scheme: uri})."""
    p, uris = harness.start(argv, env)
    return p, {u.split("://")[0]: u for u in uris}


def base(uris):
    return uris["http"]


def request(url, method="GET", body=None, headers=None, timeout=10):
    """(status, headers, body bytes) of one request through urllib."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def brine_call_works(uris):
    with Connection(uris["tcp"]) as c:
        assert c.call("add", {"a": 20, "b": 22}) == {"value": 42.0}


# --- every route and error status, with urllib and with curl --------------------------------

def route_table(b):
    """(method, path, body, headers, expected status, a check of the body)."""
    js = lambda want: lambda body: json.loads(body) == want  # noqa: E731
    has = lambda *parts: lambda body: all(p.encode() in body for p in parts)  # noqa: E731
    return [
        ("GET", "/healthz", None, {}, 200, js({"status": "serving"})),
        ("HEAD", "/healthz", None, {}, 200, lambda body: body == b""),
        ("GET", "/readyz", None, {}, 200, js({"status": "ready"})),
        ("GET", "/metrics", None, {}, 200, has("# TYPE brine_server_calls_total counter")),
        ("GET", "/", None, {}, 200, has('<table id="methods">', "<td>add</td>")),
        ("GET", "/v1", None, {}, 200, has('"name":"add"', '"declaration":')),
        ("POST", "/v1/add", '{"a":2,"b":3}', {"Content-Type": "application/json"}, 200,
         js({"value": 5.0})),
        ("POST", "/v1/sum", '{"values":[1,2,3.5]}', {}, 200, js({"value": 6.5})),
        ("POST", "/v1/divide", '{"numerator":1,"denominator":0}', {}, 500,
         lambda body: json.loads(body) == {"code": 13, "status": "INTERNAL",
                                           "message": "division by zero",
                                           "type": "std::domain_error"}),
        ("POST", "/v1/add", '{"a":2', {}, 400, has('"status":"INVALID_ARGUMENT"')),
        ("POST", "/v1/add", '{"a":"two","b":3}', {}, 400, has('"code":3')),
        ("POST", "/v1/no_such_method", "{}", {}, 404, has('"status":"NOT_FOUND"')),
        ("POST", "/v1/nobody/add", "[]", {}, 404, has("no object 'nobody'")),
        ("POST", "/v1/primes", '{"value":5}', {}, 400, has('"status":"FAILED_PRECONDITION"')),
        ("POST", "/v1/~describe", "{}", {}, 404, has("no method")),
        ("POST", "/v1/wait", '{"milliseconds":2000}', {"Brine-Timeout-Ms": "50"}, 504,
         has('"status":"DEADLINE_EXCEEDED"')),
        ("POST", "/v1/add", "{}", {"Brine-Timeout-Ms": "soon"}, 400, has("Brine-Timeout-Ms")),
        ("POST", "/v1/add", "{}", {"Brine-Metadata-Bad Key": "x"}, 400, has("metadata")),
        ("GET", "/v1/add", None, {}, 405, has("use POST")),
        ("POST", "/metrics", "", {}, 405, has("use GET")),
        ("GET", "/no/such/page", None, {}, 404, has("no route")),
    ]


def test_routes_urllib(uris):
    b = base(uris)
    for method, path, body, headers, status, ok in route_table(b):
        got, hdrs, data = request(b + path, method, body, headers)
        assert got == status, (method, path, got, data)
        assert ok(data), (method, path, data[:300])
        if path == "/metrics" and status == 200:
            assert hdrs["Content-Type"].startswith("text/plain; version=0.0.4"), hdrs
        if path == "/" and status == 200:
            assert hdrs["Content-Type"].startswith("text/html"), hdrs
        if method != "HEAD" and path not in ("/metrics", "/"):
            assert hdrs["Content-Type"] == "application/json", (path, hdrs["Content-Type"])


def test_routes_curl(uris):
    b = base(uris)
    for method, path, body, headers, status, ok in route_table(b):
        out = os.path.join(ARTIFACTS, "curl-body")
        argv = ["curl", "-s", "-S", "--max-time", "10", "-o", out, "-w", "%{http_code}", "-X",
                method]
        if method == "HEAD":
            argv = ["curl", "-s", "-S", "--max-time", "10", "-I", "-o", out, "-w",
                    "%{http_code}"]
        if body is not None:
            argv += ["--data-binary", body]
        for k, v in headers.items():
            argv += ["-H", f"{k}: {v}"]
        r = subprocess.run(argv + [b + path], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, (path, r.stderr)
        assert int(r.stdout) == status, (method, path, r.stdout)
        with open(out, "rb") as f:
            data = f.read()
        if method != "HEAD":
            assert ok(data), (method, path, data[:300])


def test_tokens_from_headers():
    p, uris = start([CALC, "--listen", "http://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"],
                    {"BRINE_SERVER_TOKENS": '["s3cret"]', "BRINE_SERVER_OPEN_METHODS": '["~ready"]'})
    try:
        b = base(uris)
        status, _, body = request(b + "/v1/add", "POST", '{"a":1,"b":1}')
        assert status == 401, (status, body)
        status, _, body = request(b + "/v1/add", "POST", '{"a":1,"b":1}',
                                  {"Authorization": "Bearer wrong"})
        assert status == 401, (status, body)
        status, _, body = request(b + "/v1/add", "POST", '{"a":1,"b":1}',
                                  {"Authorization": "Bearer s3cret"})
        assert status == 200 and json.loads(body) == {"value": 2.0}, (status, body)
        assert request(b + "/readyz")[0] == 200      # an open method
        assert request(b + "/metrics")[0] == 401     # the rest needs the token
        assert request(b + "/metrics", headers={"Authorization": "Bearer s3cret"})[0] == 200
    finally:
        stop(p)


def test_objects_over_one_connection():
    p, uris = start([BANK, "--listen", "http://127.0.0.1:0"])
    try:
        host, port = uris["http"][len("http://"):].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("POST", "/v1/bank/open", body='["http"]')
        r = c.getresponse()
        ref = json.loads(r.read())
        assert r.status == 200 and ref["object"].startswith("@"), (r.status, ref)
        # The reference lives as long as this connection: keep-alive keeps it.
        c.request("POST", f"/v1/{ref['object']}/deposit", body="[1000]")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read()) == 1000
        c.close()
        # On another connection it does not exist.
        status, _, body = request(uris["http"] + f"/v1/{ref['object']}/deposit", "POST", "[1]")
        assert status == 404, (status, body)
    finally:
        stop(p)


def test_describe(uris):
    status, _, body = request(base(uris) + "/v1")
    assert status == 200
    d = json.loads(body)
    assert d["wire"] == 1 and d["brine"], d
    add = [m for m in d["methods"] if m["name"] == "add" and "json" in m["codecs"]]
    assert len(add) == 1, add
    add = add[0]
    assert add["declaration"] == "calc::Number add(calc::AddRequest)", add
    assert add["json"] == {"request": {"a": 0.0, "b": 0.0}, "response": {"value": 0.0}}, add
    assert add["shape"] == "unary" and len(add["fingerprint"]) == 16, add
    primes = [m for m in d["methods"] if m["name"] == "primes"]
    assert primes and all(m["shape"] == "server-stream" for m in primes), primes
    assert not any(m["name"].startswith("~") for m in d["methods"])
    # Turned off: the call is NOT_FOUND.
    p, u = start([CALC, "--listen", "http://127.0.0.1:0"], {"BRINE_SERVER_DESCRIBE": "false"})
    try:
        status, _, body = request(base(u) + "/v1")
        assert status == 404, (status, body)
    finally:
        stop(p)


# --- metrics accepted by Prometheus's own tools ------------------------------------------------

def test_metrics_promtool_and_parser(uris):
    b = base(uris)
    for _ in range(5):
        request(b + "/v1/add", "POST", '{"a":1,"b":2}')
    request(b + "/v1/divide", "POST", '{"numerator":1,"denominator":0}')
    status, _, text = request(b + "/metrics")
    assert status == 200
    with open(os.path.join(ARTIFACTS, "metrics.txt"), "wb") as f:
        f.write(text)
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is missing"
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    # prometheus_client comes from Debian (python3-prometheus-client), for /usr/bin/python3.
    code = (
        "import sys\n"
        "from prometheus_client.parser import text_string_to_metric_families\n"
        "fams = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}\n"
        "calls = {(s.labels['method'], s.labels['code']): s.value\n"
        "         for s in fams['brine_server_calls'].samples}\n"
        "assert calls[('add', 'OK')] >= 5, calls\n"
        "assert calls[('divide', 'INTERNAL')] >= 1, calls\n"
        "h = fams['brine_server_call_duration_seconds']\n"
        "assert h.type == 'histogram', h.type\n"
        "b = [s.value for s in h.samples if s.name.endswith('_bucket')\n"
        "     and s.labels['method'] == 'add']\n"
        "assert b == sorted(b) and b[-1] >= 5, b\n"
        "assert fams['brine_server_connections_open'].type == 'gauge'\n"
        "print('prometheus_client parsed', len(fams), 'families')\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code], input=text, capture_output=True,
                       timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)


# --- the status page in a real browser ---------------------------------------------------------

def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("chromium (Debian package chromium) is missing")


def test_status_page_in_chromium(uris):
    b = base(uris)
    request(b + "/v1/add", "POST", '{"a":1,"b":2}')
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--user-data-dir=" + os.path.join(ARTIFACTS, "chromium-profile")]
    r = subprocess.run([chromium()] + flags + ["--dump-dom", b + "/"], capture_output=True,
                       text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert '<table id="methods">' in dom, dom[:2000]
    assert "<td>add</td>" in dom and "<td>divide</td>" in dom, dom[:2000]
    assert 'http-equiv="refresh"' in dom, dom[:500]
    shot = os.path.join(ARTIFACTS, "status-page.png")
    if os.path.exists(shot):
        os.remove(shot)
    r = subprocess.run([chromium()] + flags + ["--screenshot=" + shot, "--window-size=1200,900",
                                               b + "/"], capture_output=True, text=True,
                       timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print("      screenshot:", shot)


# --- hostile HTTP -------------------------------------------------------------------------------

def raw(uris, data, timeout=10, shut=False):
    """Sends `data` on a fresh connection and reads until the server closes it."""
    host, port = base(uris)[len("http://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        s.close()


def statuses(data):
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def test_oversized_headers(uris):
    got = raw(uris, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert statuses(got) == [431], got[:200]


def test_oversized_bodies(uris):
    # The hostile server's max_frame_size is 65536.
    got = raw(uris, b"POST /v1/add HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    assert statuses(got) == [413], got[:200]
    chunk = b"a" * 30000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    got = raw(uris, b"POST /v1/add HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
              chunked)
    assert statuses(got) == [413], got[:200]


def test_malformed(uris):
    assert statuses(raw(uris, b"BLAH\r\n\r\n")) == [400]
    assert statuses(raw(uris, b"GET / HTTP/1.1\r\nHost x\r\n\r\n")) == [400]


def test_slowloris(uris):
    # A request that never completes is closed after frame_timeout (300 ms here), answered 408.
    t0 = time.monotonic()
    got = raw(uris, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1", timeout=10)
    took = time.monotonic() - t0
    assert statuses(got) == [408], got[:200]
    assert took < 5, took
    # A connection that sends nothing at all is closed after first_frame_timeout.
    t0 = time.monotonic()
    raw(uris, b"", timeout=10)
    assert time.monotonic() - t0 < 5


def test_pipelined(uris):
    reqs = (b"POST /v1/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n{\"milliseconds\":1}"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /v1/add HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"a\":1,\"b\":2}"
            b"POST /v1/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = raw(uris, reqs)
    assert statuses(got) == [200, 200, 200, 404, 200], got
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in got.split(b"HTTP/1.1 ")[1:]]
    assert json.loads(bodies[0]) == {"value": 1.0}, bodies[0]
    assert json.loads(bodies[2]) == {"value": 3.0}, bodies[2]
    assert json.loads(bodies[4]) == {"status": "ready"}, bodies[4]
    # Many pipelined at once (more than the channel reads ahead): all answered, in order.
    bodies = [b'{"a":%d,"b":0}' % (i % 10) for i in range(200)]
    many = b"".join(b"POST /v1/add HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(b), b) for b in bodies)
    got = raw(uris, many + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(got) == [200] * 201, statuses(got)[:5]
    values = [json.loads(p.split(b"\r\n\r\n", 1)[1])["value"]
              for p in got.split(b"HTTP/1.1 ")[1:-1]]
    assert values == [float(i % 10) for i in range(200)], values[:12]


def test_half_close_and_head_and_continue(uris):
    # A client that sends its request and half-closes still gets its answer.
    got = raw(uris, b"POST /v1/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n"
                    b'{"milliseconds":200}', shut=True)
    assert statuses(got) == [200], got
    assert got.endswith(b'{"value":200.0}\n'), got
    # HEAD gets no body, whatever the status, so the next response follows at once.
    got = raw(uris, b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(got) == [404, 200], got
    assert b"\r\n\r\nHTTP/1.1 200 OK" in got, got
    # Expect: 100-continue is answered before the body is sent.
    host, port = base(uris)[len("http://"):].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(b"POST /v1/add HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = s.recv(1)
            assert chunk, interim
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        s.sendall(b'{"a":1,"b":2}')
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        assert statuses(got) == [200] and got.endswith(b'{"value":3.0}\n'), got
    finally:
        s.close()


def metric(uris, name):
    _, _, text = request(base(uris) + "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name + " not found")


def test_client_that_never_reads(uris):
    host, port = base(uris)[len("http://"):].rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.setblocking(False)
    try:
        # Describe answers (several KiB each), asked for until the server stops taking requests
        # because nothing it writes is read: the kernel's buffers fill, then its own.
        asks = b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n" * 100
        deadline = time.monotonic() + 20
        blocked_since = None
        while True:
            assert time.monotonic() < deadline, "the server kept reading"
            try:
                s.send(asks)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 0.2:
                    break
                select.select([], [s], [], 0.05)
            except OSError:
                break   # closed already
        # Meanwhile its other endpoints serve; and it gives up on this one after frame_timeout
        # (300 ms) without progress.
        brine_call_works(uris)
        assert request(base(uris) + "/healthz")[0] == 200
        deadline = time.monotonic() + 10
        while metric(uris, "brine_server_connections_open") > 1:   # the scraper's own
            assert time.monotonic() < deadline, "the stalled connection was not closed"
            time.sleep(0.05)
    finally:
        s.close()


def test_readyz_while_draining():
    p, uris = start([CALC, "--listen", "http://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"])
    host, port = uris["http"][len("http://"):].rsplit(":", 1)
    slow = http.client.HTTPConnection(host, int(port), timeout=10)
    probe = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        probe.request("GET", "/readyz")
        r = probe.getresponse()
        assert r.status == 200, r.status
        r.read()
        slow.request("POST", "/v1/wait", body='{"milliseconds":1500}')
        # Wait until the call runs, then ask the server to stop: it drains (the call may finish).
        deadline = time.monotonic() + 10
        while True:
            _, _, text = request(uris["http"] + "/metrics")
            if b"brine_server_calls_in_flight 2" in text:   # the wait and this scrape
                break
            assert time.monotonic() < deadline
        p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:
            probe.request("GET", "/readyz")
            r = probe.getresponse()
            body = r.read()
            if r.status == 503:
                assert json.loads(body) == {"status": "draining"}, body
                break
            assert r.status == 200 and time.monotonic() < deadline, (r.status, body)
        r = slow.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"value": 1500.0}
    finally:
        slow.close()
        probe.close()
        assert p.wait(timeout=15) == 0, p.returncode


def test_connection_limit():
    p, uris = start([CALC, "--listen", "http://127.0.0.1:0"], {"BRINE_SERVER_MAX_CONNECTIONS": "1"})
    try:
        host, port = uris["http"][len("http://"):].rsplit(":", 1)
        first = http.client.HTTPConnection(host, int(port), timeout=10)
        first.request("GET", "/readyz")
        r = first.getresponse()
        assert r.status == 200, r.status
        r.read()
        # A second connection is told 429 (RESOURCE_EXHAUSTED) and closed, or only closed when
        # its request arrives after the close.
        second = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            second.request("GET", "/healthz")
            r = second.getresponse()
            assert r.status == 429, r.status
            assert b"max_connections" in r.read()
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            pass
        second.close()
        # The first one serves on.
        first.request("POST", "/v1/add", body='{"a":1,"b":1}')
        r = first.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"value": 2.0}
        first.close()
    finally:
        stop(p)


def test_https():
    ca, crt, key = tls_certs.make(os.path.join(ARTIFACTS, "tls"))
    env = {"BRINE_SERVER_TLS_CERTIFICATE": crt, "BRINE_SERVER_TLS_PRIVATE_KEY": key}
    p, uris = start([CALC, "--listen", "https://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"],
                    env)
    try:
        b = uris["https"]
        r = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "--cacert", ca, "-X", "POST",
                            "--data-binary", '{"a":2,"b":5}', b + "/v1/add"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and json.loads(r.stdout) == {"value": 7.0}, (r.stdout, r.stderr)
        import ssl
        ctx = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(b + "/healthz", context=ctx, timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read()) == {"status": "serving"}
        # An untrusting client fails the handshake; the server serves on.
        r = subprocess.run(["curl", "-s", "--max-time", "10", b + "/healthz"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode != 0, r
        brine_call_works(uris)
    finally:
        stop(p)


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    p, uris = start([CALC, "--listen", "http://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"])
    try:
        check("routes and statuses (urllib)", lambda: test_routes_urllib(uris))
        check("routes and statuses (curl)", lambda: test_routes_curl(uris))
        check("describe", lambda: test_describe(uris))
        check("metrics: promtool and prometheus_client", lambda: test_metrics_promtool_and_parser(uris))
        check("status page in headless chromium", lambda: test_status_page_in_chromium(uris))
        check("pipelined requests", lambda: test_pipelined(uris))
        check("half-close, HEAD, Expect: 100-continue",
              lambda: test_half_close_and_head_and_continue(uris))
        check("the brine endpoint serves", lambda: brine_call_works(uris))
    finally:
        stop(p)
    check("tokens from Authorization headers", test_tokens_from_headers)
    check("remote objects over one keep-alive connection", test_objects_over_one_connection)
    check("readyz is 503 while draining", test_readyz_while_draining)
    check("https:// with curl and urllib", test_https)
    check("the connection limit counts HTTP connections", test_connection_limit)

    hostile = {"BRINE_MAX_FRAME_SIZE": "65536", "BRINE_SERVER_FRAME_TIMEOUT_MS": "300",
               "BRINE_SERVER_FIRST_FRAME_TIMEOUT_MS": "300"}
    p, uris = start([CALC, "--listen", "http://127.0.0.1:0", "--listen", "tcp://127.0.0.1:0"],
                    hostile)
    try:
        check("oversized headers: 431", lambda: test_oversized_headers(uris))
        check("oversized bodies: 413", lambda: test_oversized_bodies(uris))
        check("malformed requests: 400", lambda: test_malformed(uris))
        check("slowloris: 408 and closed", lambda: test_slowloris(uris))
        check("a client that never reads is closed", lambda: test_client_that_never_reads(uris))
        check("the brine endpoint serves after all that", lambda: brine_call_works(uris))
    finally:
        stop(p)
    return harness.report()


if __name__ == "__main__":
    sys.exit(main())

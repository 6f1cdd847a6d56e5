"""The nginx front door, for real: Debian's nginx with the rendered config in front of a 2-worker gunicorn.

Both on free 127.0.0.1 ports, started by the tests and stopped at teardown. What is checked: nginx accepts
the rendered configs (`nginx -t`), slow clients do not take /predict down (and never reach gunicorn), the
413 is JSON a real client can read, nginx's own errors are JSON, writes are rate-limited per client and
/predict is not, and the forwarding headers the app sees are the proxy's, not the client's.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from app.cli.configs import compose_frontdoor
from benchmarks.slow_clients import Drippers
from tests.helpers import (
    SETOSA,
    ApiServer,
    Door,
    free_port,
    nginx_binary,
    render_native,
    scrape,
    start_api,
    start_door,
    value,
    wait_until,
)

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 2  # seconds; short so the slow-client test ends quickly (the default is 5)
WRITE_RATE, WRITE_BURST = 2, 5
LIMIT = 1024 * 1024
TOO_LARGE = {"error": f"request body is larger than {LIMIT} bytes"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, trained_models) -> Iterator[tuple[ApiServer, Door]]:
    """gunicorn (2 workers) on 127.0.0.1 behind the rendered nginx, with short client timeouts."""
    tmp = tmp_path_factory.mktemp("frontdoor")
    models_dir = tmp / "models"
    shutil.copytree(trained_models, models_dir)
    api = start_api(tmp, models_dir, workers=2)
    try:
        door = start_door(
            api.port,
            "--client-timeout",
            str(CLIENT_TIMEOUT),
            "--write-rate",
            str(WRITE_RATE),
            "--write-burst",
            str(WRITE_BURST),
        )
    except BaseException:
        api.stop()
        raise
    yield api, door
    door.stop()
    api.stop()


def predict(url: str, timeout: float = 5.0) -> requests.Response:
    return requests.post(f"{url}/predict", json={"features": SETOSA}, timeout=timeout)


# ---------------------------------------------------------------------------------------------------------


def test_nginx_accepts_the_rendered_configs(tmp_path):
    """`nginx -t` on the native rendering, and on the Compose one with only its container-only address changed."""
    nginx = nginx_binary()
    directory = Path(tempfile.mkdtemp(prefix="frontdoor-t-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        native = render_native(directory, free_port(), free_port())
        result = subprocess.run([nginx, "-t", "-e", "stderr", "-c", str(native)], capture_output=True, text=True)
        assert result.returncode == 0 and "syntax is ok" in result.stderr, result.stderr
        # The container's config names flask-api (not resolvable here) and re-resolves it with "resolve", which
        # needs nginx >= 1.27.3 (the image's; Debian 12 has 1.22): those two words become a loopback address.
        text = compose_frontdoor().render()
        assert text.count("server flask-api:5000 resolve;") == 1
        text = text.replace("server flask-api:5000 resolve;", "server 127.0.0.1:5000;")
        text = text.replace('"/tmp/', f'"{directory}/')
        compose = directory / "compose.conf"
        compose.write_text(text, encoding="utf-8")
        result = subprocess.run([nginx, "-t", "-e", "stderr", "-c", str(compose)], capture_output=True, text=True)
        assert result.returncode == 0 and "syntax is ok" in result.stderr, result.stderr
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_seed_examples_through_the_front_door(stack):
    _, door = stack
    r = predict(door.url)
    assert r.status_code == 200 and r.json()["prediction"] == 0, r.text
    assert r.headers["Server"] == "nginx", "server_tokens off: no version"
    assert requests.get(f"{door.url}/health", timeout=5).json()["status"] == "healthy"
    assert "prediction_requests_total" in requests.get(f"{door.url}/metrics", timeout=5).text
    # The app's own errors pass through unchanged.
    bad = requests.post(f"{door.url}/predict", json={"features": [1, 2]}, timeout=5)
    assert bad.status_code == 400 and "error" in bad.json() and bad.headers.get("X-Served-By")
    # A body over nginx's 16 KB memory buffer goes through a temp file the workers (nobody, as root) can write.
    rows = requests.post(f"{door.url}/predict", json={"instances": [SETOSA] * 1000}, timeout=10)
    assert rows.status_code == 200 and rows.json()["predictions"] == [0] * 1000


def test_slow_clients_do_not_take_predict_down_and_never_reach_gunicorn(stack):
    """64 connections dripping headers and 64 dripping bodies, one byte every 0.5 s, replaced as nginx closes
    them; meanwhile every /predict probe is answered, correctly. Then the drippers go quiet and nginx closes
    every one of them within its timeout. gunicorn counts exactly the probes: no slow request reached it."""
    api, door = stack
    before = value(scrape(api.url), "prediction_requests_total")
    drip = Drippers(door.port, headers=64, bodies=64, interval=0.5).start()
    answers: list[tuple[int, int | None]] = []
    latencies: list[float] = []
    try:
        assert drip.alive() == 128 and drip.connect_errors == 0
        deadline = time.monotonic() + 3 * CLIENT_TIMEOUT + 1  # long enough for nginx to cut every header dripper
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                r = predict(door.url, timeout=5)
                answers.append((r.status_code, r.json().get("prediction")))
            except requests.RequestException as exc:
                answers.append((0, None))
                print(f"probe failed: {exc!r}")
            latencies.append((time.perf_counter() - started) * 1000)
        assert drip.alive() >= 100, f"the drip kept up its pressure (open: {drip.alive()})"
        during = list(drip.ended)
        drip.silence()
        wait_until(lambda: drip.alive() == 0, timeout=CLIENT_TIMEOUT + 10, message="nginx to close the quiet ones")
    finally:
        drip.stop()
    latencies.sort()
    print(f"{len(answers)} probes, p50 {latencies[len(latencies) // 2]:.1f} ms, max {latencies[-1]:.1f} ms")
    assert len(answers) >= 20, answers
    assert answers == [(200, 0)] * len(answers), [a for a in answers if a != (200, 0)]

    # nginx cut every header dripper at the header timeout (the whole header must come within it), and body
    # drippers (a byte every 0.5 s is within the body timeout) only once they went quiet.
    header_ends = [e for e in during if e.kind == "header"]
    assert len(header_ends) >= 64, f"only {len(header_ends)} header drippers were closed by nginx"
    assert all(e.ended - e.opened < CLIENT_TIMEOUT + 2 for e in header_ends), header_ends
    assert not [e for e in during if e.kind == "body"], "a body dripper within the timeout was closed"
    quiet = [e for e in drip.ended if e.silent_since is not None]
    assert {e.kind for e in quiet} == {"header", "body"} and len(quiet) == 128, len(quiet)
    assert all(e.ended - e.silent_since < CLIENT_TIMEOUT + 3 for e in quiet)
    assert {e.how.split(" ")[0] for e in drip.ended} <= {"eof", "reset", "answered"}
    assert all(e.how.startswith("answered HTTP/1.1 408") for e in drip.ended if e.how.startswith("answered"))

    after = value(scrape(api.url), "prediction_requests_total")
    assert after - before == len(answers), "gunicorn saw exactly the probes, no partial request"


def test_too_large_bodies_get_a_json_413_the_client_can_read(stack, tmp_path):
    _, door = stack
    headers = {"Content-Type": "application/json"}
    # requests sends the whole body before it reads: nginx must drain it rather than reset the connection.
    big = requests.post(f"{door.url}/predict", data=b" " * (2 * LIMIT), headers=headers, timeout=30)
    assert big.status_code == 413 and big.json() == TOO_LARGE, big.text
    assert big.headers["Content-Type"] == "application/json"

    # Chunked, with no length up front: refused while it arrives, same answer.
    def chunks():
        for _ in range(40):
            yield b" " * 65536

    chunked = requests.post(f"{door.url}/predict", data=chunks(), headers=headers, timeout=30)
    assert chunked.status_code == 413 and chunked.json() == TOO_LARGE, chunked.text

    # curl (which sends Expect: 100-continue for a large body) reads the same JSON.
    body = tmp_path / "big.json"
    body.write_bytes(b" " * (LIMIT + 1))
    out = subprocess.run(
        [
            *("curl", "-sS", "--max-time", "30", "-X", "POST", "-H", "Content-Type: application/json"),
            *("--data-binary", f"@{body}", "-w", "\n%{http_code}", f"{door.url}/predict"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text, _, code = out.stdout.rpartition("\n")
    assert code == "413" and json.loads(text) == TOO_LARGE, out

    # Exactly the limit passes on to the app (whitespace after the JSON is still JSON).
    row = json.dumps({"features": SETOSA}).encode()
    exact = requests.post(f"{door.url}/predict", data=row + b" " * (LIMIT - len(row)), headers=headers, timeout=30)
    assert exact.status_code == 200 and exact.json()["prediction"] == 0, exact.text


def _raw(port: int, data: bytes, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read one response: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n", 400),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9_000 + b"\r\n\r\n", 431),
        (b"GET /_frontdoor/error/502 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ],
)
def test_nginx_errors_are_json(stack, request_bytes, status):
    _, door = stack
    code, headers, body = _raw(door.port, request_bytes)
    assert code == status, body
    assert headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"error"}, body
    assert "nginx" not in body.decode() and "<html" not in body.decode()


def test_an_unreachable_api_is_a_json_502(tmp_path):
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        door = start_door(held.getsockname()[1], ready=None)
        try:
            r = requests.get(f"{door.url}/health", timeout=10)
        finally:
            door.stop()
    assert r.status_code == 502 and r.json() == {"error": "the API is not reachable"}
    assert r.headers["Content-Type"] == "application/json"


def test_writes_are_rate_limited_per_client_and_predict_is_not(stack):
    api, door = stack
    n = 40
    writes = [
        requests.post(f"{door.url}/feedback", json={"prediction_id": "nope", "label": 0}, timeout=5) for _ in range(n)
    ]
    limited = [r for r in writes if r.status_code == 429]
    assert limited and len(limited) <= n - WRITE_BURST, [r.status_code for r in writes]
    assert all(r.status_code != 429 for r in writes[:WRITE_BURST]), "the burst is allowed"
    for r in limited:
        assert r.headers["Content-Type"] == "application/json" and set(r.json()) == {"error"}, r.text
    # The same bucket covers the admin writes.
    assert requests.put(f"{door.url}/config", json={}, headers=api.admin_headers, timeout=5).status_code == 429
    assert requests.post(f"{door.url}/models/reload", headers=api.admin_headers, timeout=5).status_code == 429
    # /predict and reads at the same pace are never limited.
    assert {predict(door.url).status_code for _ in range(n)} == {200}
    assert {requests.get(f"{door.url}/health", timeout=5).status_code for _ in range(n)} == {200}
    # Per client address: another address on this machine still has its whole burst.
    body = json.dumps({"prediction_id": "nope", "label": 0}).encode()
    request = (
        b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    code, _, _ = _raw(door.port, request, source="127.0.0.2")
    assert code != 429


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with the headers it received and its connection's client port."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict]] = []

    def log_message(self, *args):
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        seen = {"headers": {k.lower(): v for k, v in self.headers.items()}, "peer": self.client_address[1]}
        type(self).seen.append(seen)
        data = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-ID", "from-the-app")  # nginx answers with its own, once
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


def test_forwarding_headers_are_the_proxys(tmp_path):
    """What the app receives: the client address in X-Forwarded-For (replacing the client's claim) and X-Real-IP,
    the client's Host, a request id (the client's when sane, else nginx's), no forwarded host or prefix the
    client made up, HTTP/1.1 on connections nginx keeps open."""
    handler = type("Echo", (_Echo,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    door = start_door(server.server_address[1], ready="/")
    try:
        forged = {
            "X-Forwarded-For": "6.6.6.6",
            "X-Real-IP": "6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Prefix": "/evil",
            "Forwarded": "for=6.6.6.6",
            "X-Request-ID": "client-id-123",
        }
        r = requests.get(f"{door.url}/anything", headers=forged, timeout=5)
        got = r.json()["headers"]
        assert got["x-forwarded-for"] == "127.0.0.1" and got["x-real-ip"] == "127.0.0.1"
        assert "x-forwarded-host" not in got and "x-forwarded-prefix" not in got and "forwarded" not in got
        assert got["host"] == f"127.0.0.1:{door.port}"
        assert got["x-request-id"] == "client-id-123" and r.headers["X-Request-ID"] == "client-id-123"
        assert r.raw.headers.getlist("X-Request-ID") == ["client-id-123"], "one request id, the proxy's"

        odd = requests.get(f"{door.url}/", headers={"X-Request-ID": "no spaces; or {braces}"}, timeout=5)
        generated = odd.json()["headers"]["x-request-id"]
        assert len(generated) == 32 and int(generated, 16) >= 0 and odd.headers["X-Request-ID"] == generated
        assert requests.get(f"{door.url}/", timeout=5).headers["X-Request-ID"] != generated

        with requests.Session() as session:  # several client requests, few upstream connections
            for _ in range(20):
                session.post(f"{door.url}/predict", json={}, timeout=5)
        peers = {seen["peer"] for seen in handler.seen[-20:]}
        assert len(peers) <= 2, f"nginx reuses its upstream connections (saw {len(peers)})"
    finally:
        door.stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_nginx_workers_do_not_run_as_root(stack):
    _, door = stack
    out = subprocess.run(
        ["ps", "-o", "user=,args=", "--ppid", str(door.process.pid)], capture_output=True, text=True, check=True
    )
    workers = [line.split(None, 1) for line in out.stdout.splitlines() if "worker process" in line]
    assert workers, out.stdout
    assert all(user != "root" for user, _ in workers), workers

"""Connection limits of `unipelt serve` over raw sockets: stalled headers and bodies are cut,
idle keep-alive connections closed, and a write without a valid token is refused before its
body is read."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import pytest

from harness.service_process import ServiceProcess, start_service

pytestmark = [pytest.mark.service, pytest.mark.slow]
TOKEN = "conn-token"
TIMEOUT_S = 1  # header, body and keep-alive timeouts of the service under test
MIN_RATE = 5  # bytes per second a body must average (after TIMEOUT_S of grace)
PATIENCE_S = 6.0  # how long a test waits for the service to act (a shared, slow machine)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> ServiceProcess:
    env = {
        "UNIPELT_API_TOKEN": TOKEN,
        "UNIPELT_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "UNIPELT_BODY_TIMEOUT_S": str(TIMEOUT_S),
        "UNIPELT_KEEP_ALIVE_S": str(TIMEOUT_S),
        "UNIPELT_MIN_BODY_RATE": str(MIN_RATE),
    }
    svc = start_service(tmp_path_factory.mktemp("conn"), env, serve=True)
    yield svc
    svc.stop()


def connect(service: ServiceProcess) -> socket.socket:
    url = urlparse(service.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=PATIENCE_S)
    return sock


def read_until_closed(sock: socket.socket, seconds: float = PATIENCE_S) -> tuple[bytes, bool]:
    """(bytes received, whether the server closed the connection) within `seconds`."""
    data, deadline = b"", time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def upload_head(token: str | None, length: int = 60_000_000) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        "PUT /adapters HTTP/1.1\r\nHost: test\r\n" + auth + "Content-Type: multipart/form-data; "
        f"boundary=b\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing-token", "wrong-token"])
def test_upload_without_a_valid_token_is_refused_before_its_body(service, token):
    """Headers announce 60 MB, then the client stalls: the 401 comes anyway, at once."""
    with connect(service) as sock:
        sock.sendall(upload_head(token))
        response, _ = read_until_closed(sock, TIMEOUT_S * 0.9)  # before a body timeout
        assert response.startswith(b"HTTP/1.1 401"), response[:200]
        assert b'"error":"unauthorized"' in response.replace(b" ", b""), response


def test_partial_headers_are_cut_after_the_header_timeout(service):
    with connect(service) as sock:
        sock.sendall(b"PUT /adapters HTTP/1.1\r\nHost: test\r\n")
        started = time.monotonic()
        data, closed = read_until_closed(sock)
        assert closed and data == b"", data[:200]
        assert time.monotonic() - started >= TIMEOUT_S * 0.5


def test_dripped_headers_are_cut_by_a_total_deadline(service):
    """One byte every 0.2 s never lets the headers complete: the deadline does not move."""
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 200
    with connect(service) as sock:
        started = time.monotonic()
        try:
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                assert time.monotonic() - started < PATIENCE_S, "never cut"
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            data, closed = read_until_closed(sock, 1.0)
            assert closed, data[:200]


def test_a_connection_that_sends_nothing_is_closed(service):
    with connect(service) as sock:
        data, closed = read_until_closed(sock)
        assert closed and data == b""


def test_a_stalled_body_is_cut_after_the_body_timeout(service):
    with connect(service) as sock:
        sock.sendall(upload_head(TOKEN, length=1000) + b"--b\r\n")
        data, closed = read_until_closed(sock)
        assert closed, data[:200]


def test_a_dripped_body_is_cut_by_the_minimum_rate(service):
    """One byte every 0.5 s: every pause is shorter than the body timeout, but 2 bytes/s is
    under the minimum rate, so the connection is closed once the grace is used up."""
    head = (
        b"POST /v1/nope/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with connect(service) as sock:
        sock.sendall(head + b'{"inputs": "')
        started, cut, data = time.monotonic(), False, b""
        while time.monotonic() - started < PATIENCE_S:
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            data, closed = read_until_closed(sock, 0.5)
            if closed:
                cut = True
                break
        assert cut and data == b"", f"a body dripped at 2 bytes/s was never cut: {data[:200]!r}"
        assert time.monotonic() - started >= TIMEOUT_S * 0.5  # the grace was given


def test_a_slow_but_steady_body_is_served(service):
    """Pauses shorter than the body timeout, a total longer than every timeout, above the
    minimum rate (10 bytes/s): served."""
    body = b'{"inputs": "a film"}'
    head = (
        "POST /v1/nope/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(service) as sock:
        sock.sendall(head)
        for i in range(0, len(body), 4):
            time.sleep(TIMEOUT_S * 0.4)
            sock.sendall(body[i : i + 4])
        sock.settimeout(PATIENCE_S)
        response = sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 404"), response[:200]


def test_an_idle_keep_alive_connection_is_closed(service):
    with connect(service) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        started = time.monotonic()
        data, closed = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"status":"ok"}'), data
        assert closed and time.monotonic() - started < TIMEOUT_S + 3

"""Tests for kerasapps.serving.http_limits: a real uvicorn on a loopback port, abused over raw sockets.

The app serves an empty model base, so ``GET /v1/models/x`` is a quick 404 JSON from the
app (no TensorFlow needed). After each abuse the server must still answer a good
request promptly, without its memory having grown.

Timers are checked by what closes a connection, and when: a timer under test is set well
apart from every other timer, and a bound on elapsed time only has to tell those apart
(``SLACK_S`` of scheduling delay allowed), so a busy two-core runner meets it. Waits for the
server's side of a connection watch uvicorn's connection set rather than sleeping.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time

import pytest
from serving_helpers import live_server

from kerasapps.serving.http_limits import LINGER_S, uvicorn_config_kwargs
from kerasapps.serving.options import ServingOptions
from kerasapps.serving.server import create_app

GOOD = b"GET /v1/models/x HTTP/1.1\r\nHost: localhost\r\n\r\n"
MAX_RSS_GROWTH = 50 * 2**20
SLACK_S = 3.0  # scheduling delay a loaded runner may add to any timer or answer


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@contextlib.contextmanager
def running_server(tmp_path, **limits):
    """A uvicorn in a thread serving an empty model base with ``limits``, set up as ``serve`` does; yields
    ``(port, uvicorn.Server)``."""
    app = create_app(str(tmp_path), poll_interval_s=0, **limits)
    with live_server(app, **uvicorn_config_kwargs(app.state.server.options)) as (url, server):
        yield int(url.rsplit(":", 1)[1]), server


@contextlib.contextmanager
def running(tmp_path, **limits):
    """:func:`running_server`, yielding the port only."""
    with running_server(tmp_path, **limits) as (port, _):
        yield port


def wait_until(condition, within: float = 30.0) -> bool:
    """Whether ``condition()`` holds within ``within`` seconds (checked every 10 ms)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One response (status, lowercased headers, body), by Content-Length or up to EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response; got {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    if "content-length" in headers:
        while len(body) < int(headers["content-length"]):
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a response body"
            body += chunk
    else:
        while chunk := sock.recv(65536):
            body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset, nothing more to read) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def refusal(port: int, payload: bytes, piece: int | None = None) -> tuple[int, dict, bytes]:
    """Send ``payload`` (in ``piece``-byte writes if given), read the refusal, check the connection closes."""
    with connect(port) as sock:
        for start in range(0, len(payload), piece or len(payload)):
            try:
                sock.sendall(payload[start:start + (piece or len(payload))])
            except OSError:  # the server refused part-way and stopped reading
                break
        status, headers, body = read_response(sock)
        assert headers["connection"] == "close"
        assert closed_by_server(sock, within=LINGER_S + SLACK_S)
    return status, headers, body


def assert_healthy(port: int, rss_before: int) -> None:
    started = time.monotonic()
    with connect(port, timeout=SLACK_S) as sock:
        sock.sendall(GOOD)
        status, headers, body = read_response(sock)
    assert time.monotonic() - started < SLACK_S
    assert (status, headers["content-type"]) == (404, "application/json")
    assert "error" in json.loads(body)
    assert rss_bytes() - rss_before < MAX_RSS_GROWTH


def assert_json_error(status: int, headers: dict, body: bytes, expected_status: int, words: str) -> None:
    assert status == expected_status, body
    assert headers["content-type"] == "application/json"
    assert words in json.loads(body)["error"]


def request_with(headers: list[str]) -> bytes:
    return ("GET /v1/models/x HTTP/1.1\r\nHost: localhost\r\n" + "".join(h + "\r\n" for h in headers)
            + "\r\n").encode("latin-1")


def test_config_kwargs_map_the_options():
    options = ServingOptions(max_header_bytes=4096, keep_alive_timeout_s=2.5, max_connections=7)
    kwargs = uvicorn_config_kwargs(options)
    assert kwargs["h11_max_incomplete_event_size"] == 4096
    assert kwargs["timeout_keep_alive"] == 2.5
    assert kwargs["ws"] == "none" and kwargs["limit_concurrency"] is None
    assert kwargs["http"].keywords == {"max_headers": 100, "header_timeout_s": 10.0, "max_connections": 7}


@pytest.mark.parametrize("size, piece", [(20 * 1024, None), (20 * 1024, 1024), (2**20, None)],
                         ids=["20KiB-one-write", "20KiB-in-1KiB-writes", "1MiB-one-write"])
def test_oversized_headers_get_431(tmp_path, size, piece):
    with running(tmp_path) as port:
        rss = rss_bytes()
        # Just under the limit still reaches the app.
        with connect(port) as sock:
            sock.sendall(request_with(["X-Pad: " + "a" * 15_000]))
            assert read_response(sock)[0] == 404
        for _ in range(3):
            answer = refusal(port, request_with(["X-Pad: " + "a" * size]), piece)
            assert_json_error(*answer, 431, "max_header_bytes")
        assert_healthy(port, rss)


def test_too_many_headers_get_431(tmp_path):
    with running(tmp_path) as port:
        rss = rss_bytes()
        with connect(port) as sock:  # Host plus 99: at the limit
            sock.sendall(request_with([f"X-H{i}: 1" for i in range(99)]))
            assert read_response(sock)[0] == 404
        answer = refusal(port, request_with([f"X-H{i}: 1" for i in range(150)]))
        assert_json_error(*answer, 431, "more than 100 header fields")
        assert_healthy(port, rss)


def test_malformed_request_gets_400_json(tmp_path):
    with running(tmp_path) as port:
        rss = rss_bytes()
        assert_json_error(*refusal(port, b"NOT HTTP AT ALL\r\n\r\n"), 400, "Invalid HTTP request")
        assert_healthy(port, rss)


@pytest.mark.parametrize("after_response", [False, True], ids=["fresh", "keep-alive"])
def test_slow_headers_get_408(tmp_path, after_response):
    with running(tmp_path, header_timeout_s=1.0, keep_alive_timeout_s=10.0) as port:
        rss = rss_bytes()
        with connect(port) as sock:
            if after_response:
                sock.sendall(GOOD)
                assert read_response(sock)[0] == 404
            started = time.monotonic()
            for byte in GOOD[:-2]:  # never completes
                sock.sendall(bytes([byte]))
                if select.select([sock], [], [], 0.2)[0]:
                    break
            status, headers, body = read_response(sock)
            elapsed = time.monotonic() - started
            assert_json_error(status, headers, body, 408, "header_timeout_s")
            assert 0.9 < elapsed < 1.0 + SLACK_S  # the header timer's 408, long before the keep-alive timer
            assert closed_by_server(sock, within=LINGER_S + SLACK_S)
        assert_healthy(port, rss)


def test_header_timer_is_off_while_a_body_is_read(tmp_path):
    body = b'{"instances": [1]}'
    with running(tmp_path, header_timeout_s=0.5) as port, connect(port) as sock:
        sock.sendall(b"POST /v1/models/x:predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 6):  # 3 pieces over ~1.2 s
            time.sleep(0.4)
            sock.sendall(body[i:i + 6])
        status, headers, answer = read_response(sock)  # the connection was not dropped mid-body
        assert (status, headers["content-type"]) == (404, "application/json")  # the app's answer, not a 408


def test_silent_connection_closed_without_response(tmp_path):
    with running(tmp_path, header_timeout_s=1.0) as port:
        rss = rss_bytes()
        with connect(port) as sock:
            started = time.monotonic()
            assert closed_by_server(sock, within=1.0 + SLACK_S)  # EOF: no bytes, no 408
            assert 0.9 < time.monotonic() - started < 1.0 + SLACK_S
        assert_healthy(port, rss)


def test_idle_keep_alive_connection_closed(tmp_path):
    with running(tmp_path, keep_alive_timeout_s=0.5, header_timeout_s=30.0) as port:
        rss = rss_bytes()
        with connect(port) as sock:
            sock.sendall(GOOD)
            assert read_response(sock)[0] == 404
            started = time.monotonic()
            assert closed_by_server(sock, within=0.5 + SLACK_S)  # the keep-alive timer, not the header timer
            assert 0.4 < time.monotonic() - started < 0.5 + SLACK_S
        assert_healthy(port, rss)


def test_connections_past_the_bound_get_503(tmp_path):
    with running_server(tmp_path, max_connections=4, header_timeout_s=60.0) as (port, server):
        connections = server.server_state.connections
        rss = rss_bytes()
        idle = [connect(port) for _ in range(4)]
        try:
            assert wait_until(lambda: len(connections) == 4), len(connections)  # the server accepted them
            for _ in range(3):
                with connect(port) as extra:
                    status, headers, body = read_response(extra)  # answered without asking
                    assert_json_error(status, headers, body, 503, "max_connections=4")
                    assert closed_by_server(extra, within=LINGER_S + SLACK_S)
            for sock in idle:  # undisturbed, and still usable
                sock.sendall(GOOD)
                assert read_response(sock)[0] == 404
            idle.pop().close()
            assert wait_until(lambda: len(connections) <= 3), len(connections)  # the server noticed the close
            with connect(port) as sock:
                sock.sendall(GOOD)
                assert read_response(sock)[0] == 404
        finally:
            for sock in idle:
                sock.close()
        assert wait_until(lambda: not connections), len(connections)
        assert_healthy(port, rss)

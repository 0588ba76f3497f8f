"""The lean probe server: answers, refusals, and garbage that must not bring it down."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entitlement_sidecar.sidecar.probes import TEXT, ProbeServer, Response, respond


def _route(path: str) -> Response:
    if path == "/boom":
        raise RuntimeError("bug")
    if path == "/livez":
        return 200, TEXT, b"ok\n"
    return 404, TEXT, b"not found\n"


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    """A ProbeServer on a loopback port, polled by a thread until the test ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    probe = ProbeServer(listener, _route, request_timeout=0.5)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            probe.poll(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield "127.0.0.1", listener.getsockname()[1]
    stop.set()
    thread.join(5)
    probe.close()


def _exchange(address: tuple[str, int], raw: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.0 200 OK"),
        (b"GET /livez?verbose=1 HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK"),
        (b"GET /livez HTTP/1.0\n\n", b"HTTP/1.0 200 OK"),
        (b"GET /nope HTTP/1.1\r\n\r\n", b"HTTP/1.0 404 Not Found"),
        (b"POST /livez HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.0 405 Method Not Allowed"),
        (b"DELETE /livez HTTP/1.1\r\n\r\n", b"HTTP/1.0 405 Method Not Allowed"),
        (b"GET /boom HTTP/1.1\r\n\r\n", b"HTTP/1.0 500 Internal Server Error"),
        (b"\x00\xff garbage\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
        (b"GET\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
        (b"GET livez HTTP/1.1\r\n\r\n", b"HTTP/1.0 400 Bad Request"),
        (b"GET /" + b"a" * 9000, b"HTTP/1.0 431 Request Header Fields Too Large"),
    ],
    ids=[
        "get",
        "query",
        "bare-newlines",
        "404",
        "post",
        "delete",
        "route-bug",
        "binary",
        "no-target",
        "relative-target",
        "oversized",
    ],
)
def test_requests_get_the_right_answer(
    server: tuple[str, int], request_bytes: bytes, status_line: bytes
) -> None:
    """Each request gets its status line; the server keeps serving afterwards."""
    assert _exchange(server, request_bytes).startswith(status_line)
    assert _exchange(server, b"GET /livez HTTP/1.0\r\n\r\n").endswith(b"ok\n")


def test_head_gets_headers_without_a_body(server: tuple[str, int]) -> None:
    """HEAD answers like GET, with Content-Length but no body."""
    response = _exchange(server, b"HEAD /livez HTTP/1.1\r\n\r\n")
    assert response.startswith(b"HTTP/1.0 200 OK")
    assert response.endswith(b"\r\n\r\n")
    assert b"Content-Length: 3" in response


def test_a_silent_client_is_timed_out_without_blocking_others(server: tuple[str, int]) -> None:
    """A client that never finishes its request gets 408 while others are served meanwhile."""
    with socket.create_connection(server, timeout=5) as slow:
        slow.sendall(b"GET /livez HTTP/1.1\r\n")
        assert _exchange(server, b"GET /livez HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")
        assert slow.recv(1024).startswith(b"HTTP/1.0 408")


def test_clients_that_vanish_do_not_break_the_server(server: tuple[str, int]) -> None:
    """Connections closed mid-request, or with nothing sent, are cleaned up quietly."""
    for payload in (b"", b"GET /li"):
        sock = socket.create_connection(server, timeout=5)
        if payload:
            sock.sendall(payload)
        sock.close()
    assert _exchange(server, b"GET /livez HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200")


@settings(max_examples=300, deadline=None)
@given(head=st.binary(max_size=300))
def test_any_request_head_gets_an_http_answer(head: bytes) -> None:
    """Whatever bytes arrive as a request head, the answer is a well-formed HTTP/1.0 response."""
    answer = respond(head, _route)
    assert answer.startswith(b"HTTP/1.0 ")
    assert b"\r\n\r\n" in answer

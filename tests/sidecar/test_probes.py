"""The lean probe server: answers, refusals, and garbage that must not bring it down."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entitlement_sidecar.sidecar.commands.run import BACKLOG
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
    listener = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
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


def _kubelet_probe(address: tuple[str, int], timeout: float = 2.0) -> bytes:
    """One probe the way the kubelet sends it: a fresh connection, kube-probe's headers."""
    request = (
        b"GET /livez HTTP/1.1\r\nHost: pod:9841\r\nUser-Agent: kube-probe/1.33\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


class Crowd:
    """Hostile clients on one selector thread: idle, slow-loris, or reopening whatever is closed."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.selector = selectors.DefaultSelector()
        self.reopen = False
        self.reopened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def open(self, count: int, first_bytes: bytes = b"") -> None:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(self.address)
            self.selector.register(sock, selectors.EVENT_READ, first_bytes)
            if first_bytes:
                with contextlib.suppress(OSError):
                    sock.send(first_bytes)

    def _loop(self) -> None:
        while not self.stop.is_set():
            for key, _mask in self.selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(sock)
                    sock.close()
                    if self.reopen:
                        self.reopened += 1
                        self.open(1, key.data)

    def __enter__(self) -> Crowd:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


@pytest.mark.parametrize(
    ("idle", "slow", "reopen"),
    [(300, 0, False), (0, 300, False), (200, 100, True)],
    ids=["300-idle", "300-slow-loris", "reconnecting"],
)
def test_kubelet_probes_are_answered_while_hundreds_of_connections_are_held(
    server: tuple[str, int], idle: int, slow: int, reopen: bool
) -> None:
    """Hundreds of idle, slow or reconnecting clients never keep a kubelet probe unanswered."""
    with Crowd(server) as crowd:
        crowd.reopen = reopen
        crowd.open(idle)
        crowd.open(slow, b"GET /livez HTTP/1.1\r\nX-Slow: 1\r\n")
        time.sleep(0.3)
        answers = [_kubelet_probe(server) for _ in range(20)]
    assert all(a.startswith(b"HTTP/1.0 200 OK") and a.endswith(b"ok\n") for a in answers)
    if reopen:
        assert crowd.reopened > 0  # the server did drop clients, and they came straight back


def test_a_full_table_drops_the_longest_waiting_connection_for_a_new_one() -> None:
    """At the connection cap, a new client is served and the oldest silent one is closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    probe = ProbeServer(listener, _route, max_connections=4)
    silent = [socket.create_connection(address, timeout=5) for _ in range(4)]
    for _ in range(10):
        probe.poll(0.01)
    client = socket.create_connection(address, timeout=5)
    client.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
    for _ in range(10):
        probe.poll(0.01)
    assert client.recv(1024).startswith(b"HTTP/1.0 200 OK")
    assert silent[0].recv(1024) == b""  # closed unanswered
    assert probe.dropped == 1
    assert len(probe.connections) == 3
    for sock in [*silent, client]:
        sock.close()
    probe.close()

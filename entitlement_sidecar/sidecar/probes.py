"""A lean HTTP/1.0 responder for the probe endpoints, on `selectors` and raw sockets.

`http.server` would pull in `email`, `http.client` and friends (~18 MiB RSS) into a process that
stays alive in every pod, for four tiny GET endpoints. This serves them with one thread: GET/HEAD
only (405 otherwise), request head capped at 8 KiB, 5 s to send it, `Connection: close` after each
response, and no input can raise out of the loop. Probe hits are not logged.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Callable

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[str], Response]  # path -> response

MAX_HEAD = 8192
REQUEST_TIMEOUT = 5.0
MAX_CONNECTIONS = 64
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    500: "Internal Server Error",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
TEXT = "text/plain; charset=utf-8"


def render(status: int, content_type: str, body: bytes, *, head: bool = False) -> bytes:
    """A complete HTTP/1.0 response."""
    lines = [
        f"HTTP/1.0 {status} {REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    if status == 405:
        lines.append("Allow: GET, HEAD")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (b"" if head else body)


def respond(head_bytes: bytes, route: Route) -> bytes:
    """The response to one request head (everything up to the blank line)."""
    try:
        request_line = head_bytes.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii")
        method, target, version = request_line.split(" ")
    except ValueError:
        return render(400, TEXT, b"bad request\n")
    if not version.startswith("HTTP/") or not target.startswith("/"):
        return render(400, TEXT, b"bad request\n")
    if method not in {"GET", "HEAD"}:
        return render(405, TEXT, b"method not allowed\n")
    try:
        status, content_type, body = route(target.split("?", 1)[0])
    except Exception:
        status, content_type, body = 500, TEXT, b"internal error\n"
    return render(status, content_type, body, head=method == "HEAD")


class _Connection:
    __slots__ = ("deadline", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.deadline = deadline


class ProbeServer:
    """Serves `route` on `listener`; the caller drives it with `poll()` from its own loop."""

    def __init__(
        self, listener: socket.socket, route: Route, *, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.listener = listener
        self.route = route
        self.request_timeout = request_timeout
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, _Connection] = {}
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, self._accept)

    def watch(self, fileobj: int, callback: Callable[[], None]) -> None:
        """Also call `callback` when `fileobj` becomes readable (a signal wake-up pipe, say)."""
        self.selector.register(fileobj, selectors.EVENT_READ, lambda _key: callback())

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for activity and handle it."""
        now = time.monotonic()
        if self.connections:
            timeout = max(0.0, min(timeout, *(c.deadline - now for c in self.connections.values())))
        for key, _mask in self.selector.select(timeout):
            key.data(key)
        now = time.monotonic()
        for conn in [c for c in self.connections.values() if c.deadline <= now]:
            if not conn.outbox:
                conn.outbox = render(408, TEXT, b"request timeout\n")
                self._flush(conn)
            self._close(conn)

    def close(self) -> None:
        for conn in list(self.connections.values()):
            self._close(conn)
        self.selector.close()
        self.listener.close()

    def _accept(self, _key: selectors.SelectorKey) -> None:
        try:
            sock, _addr = self.listener.accept()
        except OSError:
            return
        if len(self.connections) >= MAX_CONNECTIONS:
            sock.close()
            return
        sock.setblocking(False)
        conn = _Connection(sock, time.monotonic() + self.request_timeout)
        self.connections[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, lambda _key: self._readable(conn))

    def _readable(self, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(conn)
            return
        conn.inbox += chunk
        end = conn.inbox.find(b"\r\n\r\n")
        if end < 0 and b"\n\n" in conn.inbox:
            end = conn.inbox.find(b"\n\n")
        if end >= 0:
            conn.outbox = respond(conn.inbox[:end], self.route)
        elif len(conn.inbox) > MAX_HEAD:
            conn.outbox = render(431, TEXT, b"request head too large\n")
        else:
            return
        self.selector.modify(conn.sock, selectors.EVENT_WRITE, lambda _key: self._writable(conn))
        self._writable(conn)

    def _writable(self, conn: _Connection) -> None:
        if self._flush(conn):
            self._close(conn)

    def _flush(self, conn: _Connection) -> bool:
        """Send what we can; True when done (or the peer is gone)."""
        try:
            sent = conn.sock.send(conn.outbox)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        conn.outbox = conn.outbox[sent:]
        return not conn.outbox

    def _close(self, conn: _Connection) -> None:
        if self.connections.pop(conn.sock.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

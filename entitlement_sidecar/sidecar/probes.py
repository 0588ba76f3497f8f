"""A lean HTTP/1.0 responder for the probe endpoints, on `selectors` and raw sockets.

`http.server` would pull in `email`, `http.client` and friends (~18 MiB RSS) into a process that
stays alive in every pod, for four tiny GET endpoints. This serves them with one thread: GET/HEAD
only (405 otherwise), request head capped at 4 KiB, 5 s to send it, `Connection: close` after each
response, and no input can raise out of the loop. Probe hits are not logged.

Anyone who reaches the pod IP can open connections, so none of them may keep the kubelet out:
a new connection is always accepted (the oldest one still waiting for its request is dropped to
make room once `MAX_CONNECTIONS` are open), its request is read and answered at once when it is
already there (the kubelet sends it with the handshake), the accept queue is deep, and the
bookkeeping is O(1) per event however many idle, slow or reconnecting clients there are.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time
from collections.abc import Callable

Response = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[str], Response]  # path -> response

MAX_HEAD = 4096
REQUEST_TIMEOUT = 5.0
MAX_CONNECTIONS = 256  # open at once; the oldest waiting one makes room for a new one
ACCEPTS_PER_EVENT = 64  # then the other ready sockets get their turn
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
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


def _discard_input(sock: socket.socket, limit: int = 65536) -> None:
    """Read and drop what the peer has already sent (up to `limit` bytes), without waiting."""
    with contextlib.suppress(OSError):
        while limit > 0 and (chunk := sock.recv(min(limit, 16384))):
            limit -= len(chunk)


class _Connection:
    __slots__ = ("deadline", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.deadline = deadline


class ProbeServer:
    """Serves `route` on `listener`; the caller drives it with `poll()` from its own loop.

    `connections` keeps accept order, which is also deadline order (one timeout for all), so the
    next deadline and the connection to drop when full are both its first entry.
    """

    def __init__(
        self,
        listener: socket.socket,
        route: Route,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.listener = listener
        self.route = route
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, _Connection] = {}
        self.dropped = 0  # connections closed unanswered to make room (for tests and logs)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, self._accept)

    def watch(self, fileobj: int, callback: Callable[[], None]) -> None:
        """Also call `callback` when `fileobj` becomes readable (a signal wake-up pipe, say)."""
        self.selector.register(fileobj, selectors.EVENT_READ, lambda _key: callback())

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for activity and handle it."""
        oldest = next(iter(self.connections.values()), None)
        if oldest is not None:
            timeout = max(0.0, min(timeout, oldest.deadline - time.monotonic()))
        for key, _mask in self.selector.select(timeout):
            key.data(key)
        now = time.monotonic()
        while self.connections:
            conn = next(iter(self.connections.values()))
            if conn.deadline > now:
                break
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
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS and self._drop_oldest():
                    continue
                return
            if len(self.connections) >= self.max_connections:
                self._drop_oldest()
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self.request_timeout)
            self.connections[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, lambda _key, c=conn: self._read(c))
            self._read(conn)  # the request usually arrived with the handshake

    def _drop_oldest(self) -> bool:
        """Close the longest-waiting connection unanswered; False when there is none."""
        oldest = next(iter(self.connections.values()), None)
        if oldest is None:
            return False
        self.dropped += 1
        self._close(oldest)
        return True

    def _read(self, conn: _Connection) -> None:
        if conn.outbox:  # answered already; waiting to write the rest
            return
        try:
            chunk = conn.sock.recv(MAX_HEAD + 1)
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
            _discard_input(conn.sock)  # unread input would turn our close into a reset
        else:
            return
        conn.inbox = b""
        if self._flush(conn):
            self._close(conn)
        else:
            self.selector.modify(conn.sock, selectors.EVENT_WRITE, lambda _key: self._write(conn))

    def _write(self, conn: _Connection) -> None:
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

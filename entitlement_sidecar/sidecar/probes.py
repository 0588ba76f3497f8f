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

The usage intake is served by the same loop and the same connection handling: `add_listener`
adds a listener whose requests may be of any method and carry a bounded body, answered by a
handler. Each listener keeps its own pool of connections (its own `MAX_CONNECTIONS`, its own
oldest-first dropping), so a crowd on one port never closes the other's connections.
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
Headers = tuple[tuple[str, str], ...]
# A listener added with `add_listener` (the usage intake) takes any method and a body:
# (method, target, lower-cased headers, body) -> (status, content type, body, extra headers).
Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, str, bytes, Headers]]

MAX_HEAD = 4096
REQUEST_TIMEOUT = 5.0
MAX_CONNECTIONS = 256  # open at once; the oldest waiting one makes room for a new one
ACCEPTS_PER_EVENT = 64  # then the other ready sockets get their turn
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}
TEXT = "text/plain; charset=utf-8"


def render(
    status: int, content_type: str, body: bytes, *, head: bool = False, headers: Headers = ()
) -> bytes:
    """A complete HTTP/1.0 response."""
    lines = [
        f"HTTP/1.0 {status} {REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in headers]
    if status == 405 and not any(name == "Allow" for name, _ in headers):
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


def _head(head_bytes: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(method, target, lower-cased headers) of a request head, or None when malformed."""
    lines = head_bytes.decode("latin-1").split("\n")
    try:
        method, target, version = lines[0].rstrip("\r").split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/") or not target.startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.rstrip("\r").partition(":")
        if not colon or not name or name != name.strip():
            return None
        headers[name.lower()] = value.strip()
    return method, target, headers


def respond_with_body(conn: _Connection, head_end: int, body_start: int) -> bytes | None:
    """The answer of a body-carrying listener's handler, or None while the body is arriving."""
    handler, max_body = conn.pool.handler, conn.pool.max_body
    assert handler is not None
    parsed = _head(conn.inbox[:head_end]) if head_end <= MAX_HEAD else None
    if parsed is None:
        return _early(conn, 400, "bad request")
    method, target, headers = parsed
    if "transfer-encoding" in headers:
        return _early(conn, 411, "send a Content-Length (chunked bodies are not accepted)")
    length = headers.get("content-length", "" if method in {"POST", "PUT", "PATCH"} else "0")
    if not length.isdigit():
        return _early(conn, 411, "Content-Length required")
    if int(length) > max_body:
        return _early(conn, 413, f"body larger than {max_body} bytes")
    body = conn.inbox[body_start : body_start + int(length)]
    if len(body) < int(length):
        if headers.get("expect", "").lower() == "100-continue" and not conn.continued:
            conn.continued = True
            with contextlib.suppress(OSError):
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None
    try:
        status, content_type, payload, extra = handler(method, target, headers, body)
    except Exception:
        status, content_type, payload, extra = 500, TEXT, b"internal error\n", ()
    return render(status, content_type, payload, head=method == "HEAD", headers=extra)


def _early(conn: _Connection, status: int, reason: str) -> bytes:
    """An answer before the request was read in full: the rest is read and dropped first."""
    conn.linger = True
    return render(status, TEXT, reason.encode() + b"\n")


class _Pool:
    """One listener and its connections, in accept order (which is also deadline order)."""

    __slots__ = ("connections", "handler", "listener", "max_body")

    def __init__(self, listener: socket.socket, handler: Handler | None, max_body: int) -> None:
        self.listener = listener
        self.handler = handler
        self.max_body = max_body
        self.connections: dict[int, _Connection] = {}


class _Connection:
    __slots__ = ("continued", "deadline", "inbox", "linger", "outbox", "pool", "sock")

    def __init__(self, sock: socket.socket, deadline: float, pool: _Pool) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.deadline = deadline
        self.pool = pool
        self.linger = False  # answered early: read (and drop) the rest of the request first
        self.continued = False


class ProbeServer:
    """Serves `route` on `listener`; the caller drives it with `poll()` from its own loop.

    Each listener's pool keeps accept order, which is also deadline order (one timeout for all),
    so its next deadline and the connection to drop when full are both its first entry.
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
        self.pools: list[_Pool] = []
        self.dropped = 0  # connections closed unanswered to make room (for tests and logs)
        self.connections = self._add_pool(listener, None, 0).connections  # the probes'

    def _add_pool(self, listener: socket.socket, handler: Handler | None, size: int) -> _Pool:
        pool = _Pool(listener, handler, size)
        listener.setblocking(False)
        self.pools.append(pool)
        self.selector.register(listener, selectors.EVENT_READ, lambda _key: self._accept(pool))
        return pool

    def add_listener(self, listener: socket.socket, handler: Handler, max_body: int) -> None:
        """Also serve `listener` with `handler`: any method, bodies of up to `max_body` bytes."""
        self._add_pool(listener, handler, max_body)

    def remove_listener(self, listener: socket.socket) -> None:
        """Stop accepting on `listener` and close it; its open connections still get answers."""
        for pool in self.pools[1:]:
            if pool.listener is listener:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(listener)
                listener.close()

    def unwatch(self, fileobj: int) -> None:
        """Stop watching `fileobj` (before closing it)."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fileobj)

    def watch(self, fileobj: int, callback: Callable[[], None]) -> None:
        """Also call `callback` when `fileobj` becomes readable (a signal wake-up pipe, say)."""
        self.selector.register(fileobj, selectors.EVENT_READ, lambda _key: callback())

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for activity and handle it."""
        heads = [next(iter(p.connections.values()), None) for p in self.pools]
        deadlines = [conn.deadline for conn in heads if conn is not None]
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - time.monotonic()))
        for key, _mask in self.selector.select(timeout):
            key.data(key)
        now = time.monotonic()
        for pool in self.pools:
            while pool.connections:
                conn = next(iter(pool.connections.values()))
                if conn.deadline > now:
                    break
                if not conn.outbox and not conn.linger:
                    conn.outbox = render(408, TEXT, b"request timeout\n")
                    self._flush(conn)
                self._close(conn)

    def close(self) -> None:
        for pool in self.pools:
            for conn in list(pool.connections.values()):
                self._close(conn)
        for pool in self.pools[1:]:
            self.remove_listener(pool.listener)
        self.selector.close()
        self.listener.close()

    def _accept(self, pool: _Pool) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, _addr = pool.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS and self._drop_oldest(pool):
                    continue
                return
            if len(pool.connections) >= self.max_connections:
                self._drop_oldest(pool)
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self.request_timeout, pool)
            pool.connections[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, lambda _key, c=conn: self._read(c))
            self._read(conn)  # the request usually arrived with the handshake

    def _drop_oldest(self, pool: _Pool) -> bool:
        """Close the longest-waiting connection unanswered; False when there is none."""
        oldest = next(iter(pool.connections.values()), None)
        if oldest is None:
            return False
        self.dropped += 1
        self._close(oldest)
        return True

    def _read(self, conn: _Connection) -> None:
        if conn.outbox:  # answered already; waiting to write the rest
            return
        try:
            chunk = conn.sock.recv(65536 if conn.pool.handler else MAX_HEAD + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(conn)
            return
        if conn.linger and not conn.inbox:  # the rest of a request answered early: dropped
            return
        conn.inbox += chunk
        answer = self._answer(conn)
        if answer is None:
            return
        conn.outbox, conn.inbox = answer, b""
        if self._flush(conn):
            self._done(conn)
        else:
            self.selector.modify(conn.sock, selectors.EVENT_WRITE, lambda _key: self._write(conn))

    def _answer(self, conn: _Connection) -> bytes | None:
        """The response once the request is complete (or refused), else None."""
        end, gap = conn.inbox.find(b"\r\n\r\n"), 4
        if end < 0 and b"\n\n" in conn.inbox:
            end, gap = conn.inbox.find(b"\n\n"), 2
        if end >= 0 and conn.pool.handler is not None:
            return respond_with_body(conn, end, end + gap)
        if end >= 0:
            return respond(conn.inbox[:end], self.route)
        if len(conn.inbox) > MAX_HEAD:
            _discard_input(conn.sock)  # unread input would turn our close into a reset
            return render(431, TEXT, b"request head too large\n")
        return None

    def _write(self, conn: _Connection) -> None:
        if self._flush(conn):
            self._done(conn)

    def _done(self, conn: _Connection) -> None:
        """Answer sent: close, or (after an early answer) read the rest of the request first."""
        if not conn.linger:
            self._close(conn)
            return
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)  # the peer sees the end of our answer
        self.selector.modify(conn.sock, selectors.EVENT_READ, lambda _key: self._read(conn))

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
        if conn.pool.connections.pop(conn.sock.fileno(), None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

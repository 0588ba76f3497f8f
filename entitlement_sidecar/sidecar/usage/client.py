"""A tiny HTTP/1.0 client for the intake, over loopback TCP or the Unix socket.

For `entitlement-sidecar usage add|show` (shell-based apps) and the demo: one request, one
answer, the connection closed by the server. Standard library sockets only, so the command
starts fast; `http.client` would also pull in the `email` package.
"""

from __future__ import annotations

import socket


class Reply:
    """The intake's answer: status, headers (lower-cased names) and body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    port: int = 0,
    unix: str | None = None,
    timeout: float = 10.0,
) -> Reply:
    """Send one request to 127.0.0.1:`port` (or the Unix socket `unix`); `OSError` if none."""
    lines = [
        f"{method} {path} HTTP/1.0",
        f"Host: 127.0.0.1:{port}" if not unix else "Host: localhost",
    ]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")
    family = socket.AF_UNIX if unix else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(unix if unix else ("127.0.0.1", port))
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse(b"".join(chunks))


def parse(raw: bytes) -> Reply:
    """A complete HTTP/1.x response; `OSError` when it is not one."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP answer: {raw[:60]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)

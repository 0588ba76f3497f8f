"""One HTTP request in and one answer out, as plain data: what the core sees instead of sockets.

The HTTP handler (`server.py`) builds a `Request` from the bytes it read (headers in the order and
spelling they arrived, because SigV4 signs them) and sends back whatever `Outcome` the core
returns. Everything between the two is pure and testable without a socket.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Request:
    """An HTTP request: method, raw path and query (still percent-encoded), headers, body."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in arrival order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Outcome:
    """What to send back: status, body, content type and extra headers, or nothing (`drop`)."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = JSON_CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False


def request_id() -> str:
    """A fresh x-amzn-RequestId."""
    return str(uuid.uuid4())

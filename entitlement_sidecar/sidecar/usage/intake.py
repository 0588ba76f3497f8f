"""The intake's HTTP side: `POST /v1/usage` (one event or a batch) and `GET /v1/usage`.

Only processes in the pod's (or awsvpc task's) network namespace can reach it: the listener is
bound to 127.0.0.1 (plus, optionally, a Unix socket on the status volume for ECS bridge mode). A
POST must say `Content-Type: application/json` (so no browser can send one without a CORS
preflight, which gets 405) and name a loopback `Host` (so a DNS-rebinding page cannot either).
Answers: 202 `{"accepted": N, "duplicates": M, "carried": K}` once every new event is on disk;
400 with a problem document naming the field; 409 when an id was already used for an event with
other content; 413 for a body over `MAX_BODY`; 415; 429 with
`Retry-After` when the journal is full; 503 when the journal cannot be written or the sidecar is
shutting down. Nothing is acknowledged that is not durable, and nothing here raises.
"""

from __future__ import annotations

import json

from entitlement_sidecar.sidecar.usage import events
from entitlement_sidecar.sidecar.usage.journal import Conflict, JournalFull, Refusal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from entitlement_sidecar.sidecar.usage.journal import Journal

PATH = "/v1/usage"
MAX_BODY = 256 * 1024
PROBLEM = "application/problem+json"
JSON = "application/json"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", ""})
TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    503: "Service Unavailable",
}

# status, content type, body, extra headers
Answer = tuple[int, str, bytes, tuple[tuple[str, str], ...]]


def problem(
    status: int, detail: str, field: str | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> Answer:
    """An RFC 9457 problem document."""
    doc: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error")}
    doc.update(status=status, detail=detail)
    if field is not None:
        doc["field"] = field
    return status, PROBLEM, json.dumps(doc).encode() + b"\n", headers


def answer(status: int, doc: object) -> Answer:
    return status, JSON, json.dumps(doc).encode() + b"\n", ()


class Counters:
    """What the intake did since this process started (for /metrics)."""

    __slots__ = ("accepted", "duplicates", "refused")

    def __init__(self) -> None:
        self.accepted: dict[str, int] = {}
        self.duplicates = 0
        self.refused: dict[str, int] = {}

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class Intake:
    """Answers one intake request; the journal makes accepted events durable first."""

    def __init__(
        self,
        journal: Journal,
        accepted: events.Rules,
        *,
        clock: Callable[[], float],
        view: Callable[[float], dict[str, Any]],
        retry_after: Callable[[float], int],
        log: Callable[..., None],
    ) -> None:
        self.journal = journal
        self.rules = accepted
        self.clock = clock
        self.view = view
        self.retry_after = retry_after
        self.log = log
        self.counters = Counters()
        self.closed = False
        self.full = False  # the last append was refused for size (until the next seal)
        self.broken: str | None = None  # why the journal cannot be written

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        """The answer to one complete request."""
        path = target.split("?", 1)[0]
        if path != PATH:
            return problem(404, f"no such resource; usage goes to {PATH}")
        if host_name(headers.get("host", "")) not in LOOPBACK_HOSTS:
            self.counters.refuse("host")
            return problem(403, "the usage intake answers loopback requests only", "Host")
        if method == "GET":
            return answer(200, self.view(self.clock()))
        if method != "POST":
            return problem(405, "use POST to report usage, GET to read it", headers=_ALLOW)
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != JSON:
            self.counters.refuse("media_type")
            return problem(415, "send usage as application/json", "Content-Type")
        return self._post(body)

    def _post(self, body: bytes) -> Answer:
        if self.closed:
            self.counters.refuse("stopping")
            return problem(503, "the sidecar is shutting down: this usage was not recorded")
        now = self.clock()
        parsed = events.parse(body, self.rules, now)
        if isinstance(parsed, events.Problem):
            self.counters.refuse("invalid")
            return problem(400, parsed.detail, parsed.field)
        batch, is_batch = parsed
        try:
            done = self.journal.append(batch, now)
        except Refusal as refused:
            reason = "conflict" if isinstance(refused, Conflict) else "invalid"
            self.counters.refuse(reason)
            field = f"events[{refused.index}].{refused.field}" if is_batch else refused.field
            return problem(409 if reason == "conflict" else 400, refused.detail, field)
        except JournalFull:
            self.full = True
            self.counters.refuse("full")
            wait = self.retry_after(now)
            self.log(
                "WARNING",
                "usage journal full: events refused with 429",
                journal_bytes=self.journal.size,
                max_bytes=self.journal.max_bytes,
            )
            return problem(
                429,
                f"the usage journal is full ({self.journal.max_bytes} bytes, "
                "ENTITLEMENT_USAGE_JOURNAL_BYTES) until the next hour is sealed: this usage "
                "was not recorded, send it again later",
                headers=(("Retry-After", str(wait)),),
            )
        except OSError as exc:
            self.counters.refuse("unavailable")
            self.broken = exc.strerror or str(exc)
            self.log("ERROR", "cannot write the usage journal", detail=self.broken)
            return problem(503, f"the usage journal cannot be written ({self.broken})")
        self.broken = None
        self.full = False
        for dimension, count in done.by_dimension.items():
            self.counters.accepted[dimension] = self.counters.accepted.get(dimension, 0) + count
        self.counters.duplicates += done.duplicates
        return answer(
            202,
            {"accepted": done.accepted, "duplicates": done.duplicates, "carried": done.carried},
        )


_ALLOW = (("Allow", "GET, POST"),)


def host_name(value: str) -> str:
    """The host part of a `Host` header, lower case, without the port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.split(":", 1)[0]

"""What the usage journal says: open hours, sealed hours and send results, rebuilt line by line.

The `run` parent keeps this state in step with the file it appends to (`journal.Journal`); the
sender child rebuilds it from the file to know what to send (`keep_bodies` keeps each sealed
hour's allocations). Replaying is tolerant: a torn last line (a crash mid-append, never
acknowledged) can be cut off, and a line that does not read as one of ours is counted in
`unreadable` (the parent logs it and the next compaction drops it) instead of stopping anything.
Usage whose hour is already sealed is carried into the first hour after the last sealed one:
AWS records never change.
"""

from __future__ import annotations

import json
import os

from entitlement_sidecar.sidecar.usage.ids import NEW, IdIndex, content, digest
from entitlement_sidecar.sidecar.usage.plan import SEAL_DELAY
from entitlement_sidecar.sidecar.usage.units import HOUR, MAX_UNITS, hour_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from entitlement_sidecar.sidecar.usage.events import Tags

JOURNAL_FILE = "usage.journal"
VERSION = 1
SENT, FAILED, EXPIRED, TRANSIENT = "Sent", "Failed", "Expired", "Transient"
FINAL = frozenset({SENT, FAILED, EXPIRED})
RESULTS = (SENT, TRANSIENT, FAILED, EXPIRED)
RECENT = 48


class OpenHour:
    """An hour still taking events: totals per dimension (micro-units) and the ids seen."""

    __slots__ = ("events", "ids", "totals")

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.ids = IdIndex()
        self.events = 0


class Send:
    """The send state of one sealed (hour, dimension)."""

    __slots__ = ("attempts", "code", "record_id", "result", "units")

    def __init__(self, units: int, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.units = units
        self.result: str | None = state.get("r") if state.get("r") in FINAL else None
        self.attempts = count_field(state.get("n"))
        self.code: str | None = text_field(state.get("c"))
        self.record_id: str | None = text_field(state.get("id"))

    def state(self) -> dict[str, Any]:
        fields = {"r": self.result, "n": self.attempts, "c": self.code, "id": self.record_id}
        return {k: v for k, v in fields.items() if v}


class SealedHour:
    """An hour whose record is fixed: its timestamp and each dimension's send state."""

    __slots__ = ("dims", "timestamp")

    def __init__(self, timestamp: int, dims: dict[str, Send]) -> None:
        self.timestamp = timestamp
        self.dims = dims

    def pending(self) -> list[str]:
        return [d for d, send in sorted(self.dims.items()) if send.result is None]


def count_field(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def text_field(value: object) -> str | None:
    return value[:256] if isinstance(value, str) and value else None


def scan(path: str) -> Iterator[tuple[int, dict[str, Any] | None, bool]]:
    """(end offset, record or None when unreadable, complete line) for each line of `path`."""
    try:
        handle = open(path, "rb", buffering=65536)  # noqa: SIM115 - a generator closes it below
    except FileNotFoundError:
        return
    with handle:
        offset = 0
        for raw in handle:
            offset += len(raw)
            complete = raw.endswith(b"\n")
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                record = None
            yield offset, record if isinstance(record, dict) else None, complete


def hour_field(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 and value % HOUR == 0 else None


def units_field(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_UNITS else None


def tags_field(value: object) -> Tags:
    """Tags as written in an event line (`[[key, value], ...]`), sorted."""
    if not isinstance(value, list):
        return ()
    pairs = [tuple(p) for p in value if isinstance(p, list) and len(p) == 2]
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


class State:
    """What the journal file says, rebuilt line by line (the sender child reads it this way)."""

    def __init__(self, status_dir: str | Path, now: float, *, keep_bodies: bool = False) -> None:
        self.path = os.path.join(status_dir, JOURNAL_FILE)
        self.start = now
        self.sealed_through: int | None = None
        self.open: dict[int, OpenHour] = {}
        self.sealed: dict[int, SealedHour] = {}
        self.sends: dict[str, dict[str, int]] = {}
        self.recent: list[dict[str, Any]] = []
        self.unreadable = 0
        self.keep_bodies = keep_bodies
        self.bodies: dict[int, dict[str, Any]] = {}  # hour -> sealed dims (keep_bodies only)

    def replay(self, *, repair: bool = False) -> bool:
        """Rebuild the state from the file; True when there was no usable file.

        With `repair`, a torn last line (a crash mid-append, never acknowledged) is cut off.
        """
        good = 0
        seen_header = False
        for offset, record, complete in scan(self.path):
            if record is None or not complete:
                if complete:
                    self.unreadable += 1
                    good = offset
                continue  # a torn last line: cut off below
            good = offset
            if not self._apply(record, seen_header):
                self.unreadable += 1
            seen_header = True
        if repair and good and good < self._file_size():
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
        return not seen_header

    def _file_size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def _apply(self, record: dict[str, Any], seen_header: bool) -> bool:
        kind = record.get("k")
        if kind == "state" and not seen_header:
            return self._apply_state(record)
        if kind == "e":
            return self._apply_event(record)
        if kind == "s":
            return self._apply_seal(record)
        if kind == "o":
            return self._apply_outcome(record)
        return False

    def _apply_state(self, record: dict[str, Any]) -> bool:
        start = record.get("start")
        if isinstance(start, int | float) and not isinstance(start, bool) and start > 0:
            self.start = float(start)
        self.sealed_through = hour_field(record.get("sealed_through"))
        sends = record.get("sends")
        if isinstance(sends, dict):
            for dimension, counts in sends.items():
                if isinstance(counts, dict):
                    for result, count in counts.items():
                        if result in RESULTS:
                            self._tally(str(dimension), result, count_field(count))
        recent = record.get("recent")
        if isinstance(recent, list):
            self.recent = [r for r in recent if isinstance(r, dict)][-RECENT:]
        return record.get("v") == VERSION

    def _apply_event(self, record: dict[str, Any]) -> bool:
        hour, units, dimension = (
            hour_field(record.get("h")),
            units_field(record.get("q")),
            record.get("d"),
        )
        if hour is None or units is None or not isinstance(dimension, str):
            return False
        if hour not in self.open and hour <= (self.sealed_through or -1):
            return False  # its hour is sealed: it cannot be an event this journal kept
        slot = self.open.setdefault(hour, OpenHour())
        slot.totals[dimension] = slot.totals.get(dimension, 0) + units
        slot.events += 1
        event_id = record.get("i")
        if isinstance(event_id, str):
            slot.ids.add(digest(event_id), content(dimension, units, tags_field(record.get("g"))))
        return True

    def _apply_seal(self, record: dict[str, Any]) -> bool:
        hour, timestamp, dims = hour_field(record.get("h")), record.get("ts"), record.get("dims")
        if hour is None or not isinstance(timestamp, int) or not isinstance(dims, dict):
            return False
        sends = {}
        for dimension, body in dims.items():
            units = units_field(body.get("q")) if isinstance(body, dict) else None
            if units is None:
                return False
            sends[str(dimension)] = Send(units, body)
        self.sealed[hour] = SealedHour(timestamp, sends)
        if self.keep_bodies:
            self.bodies[hour] = dims
        self.sealed_through = max(hour, self.sealed_through or 0)
        return True

    def _apply_outcome(self, record: dict[str, Any]) -> bool:
        hour, dimension, result = hour_field(record.get("h")), record.get("d"), record.get("r")
        if hour is None or not isinstance(dimension, str) or result not in RESULTS:
            return False
        sealed = self.sealed.get(hour)
        send = sealed.dims.get(dimension) if sealed else None
        if sealed is None or send is None or send.result is not None:
            return True  # a late or repeated report (a previous child): already settled
        self._tally(dimension, result)
        send.attempts += 1 if result in {SENT, TRANSIENT, FAILED} else 0
        send.code = text_field(record.get("c")) or (None if result == SENT else send.code)
        if result in FINAL:
            send.result = result
            send.record_id = text_field(record.get("id"))
            self.recent = [*self.recent, self._recent(hour, sealed, dimension, send)][-RECENT:]
        return True

    def _tally(self, dimension: str, result: str, count: int = 1) -> None:
        counts = self.sends.setdefault(dimension, {})
        counts[result] = counts.get(result, 0) + count

    @staticmethod
    def _recent(hour: int, sealed: SealedHour, dimension: str, send: Send) -> dict[str, Any]:
        return {
            "h": hour,
            "ts": sealed.timestamp,
            "d": dimension,
            "q": send.units,
            "r": send.result,
            "id": send.record_id,
            "c": send.code,
        }

    def target_hour(self, moment: float, now: float) -> int:
        """The open hour usage at `moment` counts in: its own, while that one is still open.

        Usage of an hour that is closed (ended more than the seal delay ago, or sealed: AWS
        records never change, and an old hour could only expire unsent) counts in the current
        hour, after the last sealed one; usage from before this journal started counts in the
        start hour. So only the current hour, the one before it during its seal delay, and usage
        carried past an hour sent early are ever open.
        """
        hour = max(hour_of(moment), hour_of(self.start))
        if hour + HOUR + SEAL_DELAY <= now:
            hour = hour_of(now)
        if self.sealed_through is not None:
            hour = max(hour, self.sealed_through + HOUR)
        return hour

    def check(self, event_id: int, what: int) -> str:
        """Whether an id digest is new to every open hour, a repeat, or a conflict."""
        for slot in self.open.values():
            found = slot.ids.check(event_id, what)
            if found != NEW:
                return found
        return NEW

    def seen(self, event_id: str) -> bool:
        """True when some open hour holds an event with this id."""
        key = digest(event_id)
        return any(slot.ids.check(key, -1) != NEW for slot in self.open.values())

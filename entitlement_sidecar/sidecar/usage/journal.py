"""The usage journal: every acknowledged event, each hour's sealed record and each send's result.

One append-only file of JSON lines on the status volume (`usage.journal`), written by the `run`
parent only. An event is appended and `fdatasync`ed before the app gets its 202, so a restarted
sidecar container replays everything it acknowledged. Sealing an hour is a compaction: the file
is rewritten (temp file, fsync, rename, fsync of the directory) with that hour's events replaced
by one record holding its totals per dimension and tag set, so the request is fixed before the
first call (write-ahead) and a crash leaves either the old file or the new one. Send results are
appended as they arrive; hours whose every dimension reached a final result are dropped at the
next compaction (their counts and the last results stay in the header line). The size is bounded:
an append that would pass `max_bytes` is refused (`JournalFull`) and nothing is acknowledged.

Lines: `state` (the header: start, sealed_through, sends by dimension and result, recent
results), `e` (an event: hour, dimension, micro-units, id, tags), `s` (a sealed hour: timestamp
and per dimension the quantity, allocations and send state), `o` (one send result). A torn last
line (a crash mid-append, never acknowledged) is cut off; any other unreadable line is counted,
logged by the caller, and dropped by the compaction that follows.
"""

from __future__ import annotations

import contextlib
import json
import os

from entitlement_sidecar.atomic import fsync_directory
from entitlement_sidecar.sidecar.usage.units import HOUR, MAX_UNITS, hour_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

    from entitlement_sidecar.sidecar.usage.events import Event, Tags

JOURNAL_FILE = "usage.journal"
VERSION = 1
SENT, FAILED, EXPIRED, TRANSIENT = "Sent", "Failed", "Expired", "Transient"
FINAL = frozenset({SENT, FAILED, EXPIRED})
RESULTS = (SENT, TRANSIENT, FAILED, EXPIRED)
RECENT = 48
_OPEN_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class JournalFull(Exception):
    """Appending would pass the journal's size bound; nothing was written."""


class Overflow(Exception):
    """An event would take its hour's total past AWS's largest quantity; `index` names it."""

    def __init__(self, index: int, dimension: str, hour: int) -> None:
        super().__init__(f"event {index}: the total of {dimension} would pass the maximum")
        self.index = index
        self.dimension = dimension
        self.hour = hour


class Accepted:
    """What one append did: events counted (and by dimension), duplicates, events carried."""

    __slots__ = ("accepted", "by_dimension", "carried", "duplicates")

    def __init__(self, by_dimension: dict[str, int], duplicates: int, carried: int) -> None:
        self.by_dimension = by_dimension
        self.accepted = sum(by_dimension.values())
        self.duplicates = duplicates
        self.carried = carried


class OpenHour:
    """An hour still taking events: totals per dimension (micro-units) and the ids seen."""

    __slots__ = ("events", "ids", "totals")

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.ids: set[str] = set()
        self.events = 0


class Send:
    """The send state of one sealed (hour, dimension)."""

    __slots__ = ("attempts", "code", "record_id", "result", "units")

    def __init__(self, units: int, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.units = units
        self.result: str | None = state.get("r") if state.get("r") in FINAL else None
        self.attempts = _count(state.get("n"))
        self.code: str | None = _short(state.get("c"))
        self.record_id: str | None = _short(state.get("id"))

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


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _short(value: object) -> str | None:
    return value[:256] if isinstance(value, str) and value else None


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


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


def _hour(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 and value % HOUR == 0 else None


def _units(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_UNITS else None


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
        self.sealed_through = _hour(record.get("sealed_through"))
        sends = record.get("sends")
        if isinstance(sends, dict):
            for dimension, counts in sends.items():
                if isinstance(counts, dict):
                    for result, count in counts.items():
                        if result in RESULTS:
                            self._tally(str(dimension), result, _count(count))
        recent = record.get("recent")
        if isinstance(recent, list):
            self.recent = [r for r in recent if isinstance(r, dict)][-RECENT:]
        return record.get("v") == VERSION

    def _apply_event(self, record: dict[str, Any]) -> bool:
        hour, units, dimension = _hour(record.get("h")), _units(record.get("q")), record.get("d")
        if hour is None or units is None or not isinstance(dimension, str):
            return False
        if hour not in self.open and hour <= (self.sealed_through or -1):
            return False  # its hour is sealed: it cannot be an event this journal kept
        slot = self.open.setdefault(hour, OpenHour())
        slot.totals[dimension] = slot.totals.get(dimension, 0) + units
        slot.events += 1
        event_id = record.get("i")
        if isinstance(event_id, str):
            slot.ids.add(event_id)
        return True

    def _apply_seal(self, record: dict[str, Any]) -> bool:
        hour, timestamp, dims = _hour(record.get("h")), record.get("ts"), record.get("dims")
        if hour is None or not isinstance(timestamp, int) or not isinstance(dims, dict):
            return False
        sends = {}
        for dimension, body in dims.items():
            units = _units(body.get("q")) if isinstance(body, dict) else None
            if units is None:
                return False
            sends[str(dimension)] = Send(units, body)
        self.sealed[hour] = SealedHour(timestamp, sends)
        if self.keep_bodies:
            self.bodies[hour] = dims
        self.sealed_through = max(hour, self.sealed_through or 0)
        return True

    def _apply_outcome(self, record: dict[str, Any]) -> bool:
        hour, dimension, result = _hour(record.get("h")), record.get("d"), record.get("r")
        if hour is None or not isinstance(dimension, str) or result not in RESULTS:
            return False
        sealed = self.sealed.get(hour)
        send = sealed.dims.get(dimension) if sealed else None
        if sealed is None or send is None or send.result is not None:
            return True  # a late or repeated report (a previous child): already settled
        self._tally(dimension, result)
        send.attempts += 1 if result in {SENT, TRANSIENT, FAILED} else 0
        send.code = _short(record.get("c")) or (None if result == SENT else send.code)
        if result in FINAL:
            send.result = result
            send.record_id = _short(record.get("id"))
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

    def target_hour(self, moment: float) -> int:
        """The open hour usage at `moment` counts in: its own, unless that one is sealed.

        Usage from before this journal started counts in the start hour; usage of an hour whose
        record is already fixed (sealed, maybe sent: AWS records never change) is carried into
        the first hour after the last sealed one.
        """
        hour = max(hour_of(moment), hour_of(self.start))
        if self.sealed_through is not None:
            hour = max(hour, self.sealed_through + HOUR)
        return hour

    def seen(self, event_id: str) -> bool:
        return any(event_id in slot.ids for slot in self.open.values())


class Journal(State):
    """The parent's journal: the state above, kept in step with the file it appends to."""

    def __init__(self, status_dir: str | Path, max_bytes: int, now: float) -> None:
        super().__init__(status_dir, now)
        self.max_bytes = max_bytes
        self.size = 0
        self._fd = -1
        created = self.replay(repair=True)
        if created or self.unreadable:
            self.compact({})
        else:
            self._open_append()

    # -- appending ------------------------------------------------------------------------

    def append(self, events: list[Event], now: float) -> Accepted:
        """Make `events` durable (all or none); raise `JournalFull`, `Overflow` or `OSError`."""
        lines: list[bytes] = []
        staged: dict[tuple[int, str], int] = {}
        staged_ids: set[str] = set()
        placed: list[tuple[int, Event]] = []
        duplicates = carried = 0
        for index, event in enumerate(events):
            if event.id is not None and (event.id in staged_ids or self.seen(event.id)):
                duplicates += 1
                continue
            moment = now if event.time is None else event.time
            hour = self.target_hour(moment)
            carried += hour != hour_of(moment)
            key = (hour, event.dimension)
            slot = self.open.get(hour)
            before = slot.totals.get(event.dimension, 0) if slot else 0
            staged[key] = staged.get(key, 0) + event.units
            if before + staged[key] > MAX_UNITS:
                raise Overflow(index, event.dimension, hour)
            if event.id is not None:
                staged_ids.add(event.id)
            placed.append((hour, event))
            lines.append(_line(_event_record(hour, event)))
        if lines:
            data = b"".join(lines)
            if self.size + len(data) > self.max_bytes:
                raise JournalFull(f"{self.size + len(data)} bytes > {self.max_bytes}")
            self._write(data)
            for hour, event in placed:
                slot = self.open.setdefault(hour, OpenHour())
                slot.totals[event.dimension] = slot.totals.get(event.dimension, 0) + event.units
                slot.events += 1
                if event.id is not None:
                    slot.ids.add(event.id)
        by_dimension: dict[str, int] = {}
        for _hour, event in placed:
            by_dimension[event.dimension] = by_dimension.get(event.dimension, 0) + 1
        return Accepted(by_dimension, duplicates, carried)

    def record(self, outcome: dict[str, Any]) -> bool:
        """Append one send result reported by the child; False when it was not one."""
        hour, dimension = _hour(outcome.get("h")), outcome.get("d")
        if hour is None or not isinstance(dimension, str) or outcome.get("r") not in RESULTS:
            return False
        sealed = self.sealed.get(hour)
        if sealed is None or dimension not in sealed.pending():
            return False  # settled already (a repeated report): nothing to record
        clean = {"k": "o", "h": hour, "d": dimension, "r": outcome["r"]}
        for name in ("c", "m", "id"):
            if isinstance(outcome.get(name), str) and outcome[name]:
                clean[name] = outcome[name][:256]
        self._write(_line(clean))
        self._apply_outcome(clean)
        return True

    def _write(self, data: bytes) -> None:
        before = self.size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):  # no half-written, unacknowledged line left
                os.ftruncate(self._fd, before)
            raise
        self.size = before + len(data)

    def _open_append(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | _OPEN_FLAGS)
        self.size = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- sealing ----------------------------------------------------------------------------

    def droppable(self, hour: int) -> bool:
        return not self.sealed[hour].pending()

    def compact(self, seals: dict[int, int]) -> None:
        """Rewrite the file atomically: `seals` (hour -> timestamp) sealed, settled hours gone.

        Raises `OSError` with the old file intact (and the state unchanged) when it cannot.
        """
        seals = {h: ts for h, ts in seals.items() if h in self.open}
        drop = {h for h in self.sealed if self.droppable(h)}
        sealed_through = max([*seals, self.sealed_through or 0]) or None
        tmp = self.path + ".tmp"
        totals: dict[int, dict[str, dict[Tags, int]]] = {h: {} for h in seals}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _OPEN_FLAGS, 0o600)
        try:
            with os.fdopen(fd, "wb", buffering=65536) as out:
                out.write(_line(self._header(sealed_through)))
                for _offset, record, complete in scan(self.path):
                    if record is not None and complete:
                        self._carry(record, out, seals, drop, totals)
                for hour in sorted(seals):
                    out.write(_line(_seal_record(hour, seals[hour], totals[hour])))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_directory(os.path.dirname(self.path) or ".")
        for hour, timestamp in seals.items():
            dims = {d: Send(sum(by_tags.values())) for d, by_tags in totals[hour].items()}
            self.sealed[hour] = SealedHour(timestamp, dims)
            del self.open[hour]
        for hour in drop:
            del self.sealed[hour]
        self.sealed_through = sealed_through
        self.unreadable = 0
        self._open_append()

    def _header(self, sealed_through: int | None) -> dict[str, Any]:
        return {
            "k": "state",
            "v": VERSION,
            "start": self.start,
            "sealed_through": sealed_through,
            "sends": self.sends,
            "recent": self.recent,
        }

    def _carry(
        self,
        record: dict[str, Any],
        out: Any,
        seals: dict[int, int],
        drop: set[int],
        totals: dict[int, dict[str, dict[Tags, int]]],
    ) -> None:
        """Copy one old line into the new file, or fold it into a seal, or leave it behind."""
        kind, hour = record.get("k"), _hour(record.get("h"))
        if kind == "e" and hour is not None and hour in self.open:
            if hour in seals:
                units, dimension = _units(record.get("q")), record.get("d")
                if units is not None and isinstance(dimension, str):
                    by_tags = totals[hour].setdefault(dimension, {})
                    tags = _tags(record.get("g"))
                    by_tags[tags] = by_tags.get(tags, 0) + units
            else:
                out.write(_line(record))
        elif kind == "s" and hour is not None and hour in self.sealed and hour not in drop:
            dims = record["dims"]
            for dimension, send in self.sealed[hour].dims.items():
                dims[dimension] = {**_seal_body(dims.get(dimension, {})), **send.state()}
            out.write(_line(record))


def _event_record(hour: int, event: Event) -> dict[str, Any]:
    record: dict[str, Any] = {"k": "e", "h": hour, "d": event.dimension, "q": event.units}
    if event.id is not None:
        record["i"] = event.id
    if event.tags:
        record["g"] = [list(tag) for tag in event.tags]
    return record


def _tags(value: object) -> Tags:
    if not isinstance(value, list):
        return ()
    pairs = [tuple(p) for p in value if isinstance(p, list) and len(p) == 2]
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


def _seal_body(body: dict[str, Any]) -> dict[str, Any]:
    """The fixed part of a sealed dimension (quantity, allocations), without its send state."""
    return {k: v for k, v in body.items() if k in {"q", "a"}}


def _seal_record(
    hour: int, timestamp: int, by_dimension: dict[str, dict[Tags, int]]
) -> dict[str, Any]:
    dims: dict[str, Any] = {}
    for dimension, by_tags in sorted(by_dimension.items()):
        body: dict[str, Any] = {"q": sum(by_tags.values())}
        if any(by_tags):  # some usage carried tags: allocations, untagged usage included
            ranked = sorted(by_tags.items())
            body["a"] = [[[list(tag) for tag in tags], units] for tags, units in ranked]
        dims[dimension] = body
    return {"k": "s", "h": hour, "ts": timestamp, "dims": dims}

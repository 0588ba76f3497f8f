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
and per dimension the quantity, allocations and send state), `o` (one send result).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os

from entitlement_sidecar.atomic import fsync_directory
from entitlement_sidecar.sidecar.usage.ids import CONFLICT, SAME, content, digest
from entitlement_sidecar.sidecar.usage.state import (
    RESULTS,
    VERSION,
    OpenHour,
    SealedHour,
    Send,
    State,
    hour_field,
    scan,
    tags_field,
    units_field,
)
from entitlement_sidecar.sidecar.usage.units import MAX_UNITS, hour_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from entitlement_sidecar.sidecar.usage.events import Event, Tags

_OPEN_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
LOCK_FILE = "usage.lock"


class JournalFull(Exception):
    """Appending would pass the journal's size bound; nothing was written."""


class Refusal(Exception):
    """Event `index` of a batch cannot be counted (nothing of the batch was written)."""

    def __init__(self, index: int, field: str, detail: str) -> None:
        super().__init__(f"event {index}: {field}: {detail}")
        self.index = index
        self.field = field
        self.detail = detail


class Overflow(Refusal):
    """The event would take its hour's total past AWS's largest quantity."""


class Conflict(Refusal):
    """The event's id was already used for an event with other content."""


class Accepted:
    """What one append did: events counted (and by dimension), duplicates, events carried."""

    __slots__ = ("accepted", "by_dimension", "carried", "duplicates")

    def __init__(self, by_dimension: dict[str, int], duplicates: int, carried: int) -> None:
        self.by_dimension = by_dimension
        self.accepted = sum(by_dimension.values())
        self.duplicates = duplicates
        self.carried = carried


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


class JournalBusy(OSError):
    """Another live process keeps this journal (two sidecars on one status volume)."""


class Journal(State):
    """The parent's journal: the state above, kept in step with the file it appends to.

    One writer only: the journal is locked (`flock` on `usage.lock`) for this process's life, so a
    second sidecar on the same status volume cannot interleave its appends or seals with ours.
    """

    def __init__(self, status_dir: str | Path, max_bytes: int, now: float) -> None:
        super().__init__(status_dir, now)
        self.max_bytes = max_bytes
        self.size = 0
        self._fd = -1
        self._lock = os.open(
            os.path.join(status_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o600
        )
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            raise JournalBusy(f"{self.path} is kept by another running sidecar") from None
        created = self.replay(repair=True)
        if created or self.unreadable:
            self.compact({})
        else:
            self._open_append()

    # -- appending ------------------------------------------------------------------------

    def append(self, events: list[Event], now: float) -> Accepted:
        """Make `events` durable (all or none); `JournalFull`, `Refusal` or `OSError` otherwise."""
        lines: list[bytes] = []
        staged: dict[tuple[int, str], int] = {}
        staged_ids: dict[int, int] = {}
        placed: list[tuple[int, Event, int, int]] = []
        duplicates = carried = 0
        for index, event in enumerate(events):
            key = what = 0
            if event.id is not None:
                key, what = digest(event.id), content(event.dimension, event.units, event.tags)
                known = staged_ids.get(key)
                seen = (
                    self.check(key, what)
                    if known is None
                    else (SAME if known == what else CONFLICT)
                )
                if seen == SAME:
                    duplicates += 1
                    continue
                if seen == CONFLICT:
                    raise Conflict(index, "id", "this id was already used for another event")
                staged_ids[key] = what
            moment = now if event.time is None else event.time
            hour = self.target_hour(moment, now)
            carried += hour != hour_of(moment)
            slot = self.open.get(hour)
            total = staged.get((hour, event.dimension), 0) + event.units
            staged[(hour, event.dimension)] = total
            if total + (slot.totals.get(event.dimension, 0) if slot else 0) > MAX_UNITS:
                raise Overflow(
                    index,
                    "quantity",
                    f"the hour's total of {event.dimension} would pass AWS's largest quantity "
                    "(9999999999.999999)",
                )
            placed.append((hour, event, key, what))
            lines.append(_line(_event_record(hour, event)))
        if lines:
            data = b"".join(lines)
            if self.size + len(data) > self.max_bytes:
                raise JournalFull(f"{self.size + len(data)} bytes > {self.max_bytes}")
            self._write(data)
            for hour, event, key, what in placed:
                slot = self.open.setdefault(hour, OpenHour())
                slot.totals[event.dimension] = slot.totals.get(event.dimension, 0) + event.units
                slot.events += 1
                if event.id is not None:
                    slot.ids.add(key, what)
        by_dimension: dict[str, int] = {}
        for _hour, event, _key, _what in placed:
            by_dimension[event.dimension] = by_dimension.get(event.dimension, 0) + 1
        return Accepted(by_dimension, duplicates, carried)

    def record(self, outcome: dict[str, Any]) -> bool:
        """Append one send result reported by the child; False when it was not one."""
        hour, dimension = hour_field(outcome.get("h")), outcome.get("d")
        if hour is None or not isinstance(dimension, str) or outcome.get("r") not in RESULTS:
            return False
        sealed = self.sealed.get(hour)
        if sealed is None or dimension not in sealed.pending():
            return False  # settled already (a repeated report): nothing to record
        clean: dict[str, Any] = {"k": "o", "h": hour, "d": dimension, "r": outcome["r"]}
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
        if self._lock >= 0:
            os.close(self._lock)  # releases the lock
            self._lock = -1

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
        kind, hour = record.get("k"), hour_field(record.get("h"))
        if kind == "e" and hour is not None and hour in self.open:
            if hour in seals:
                units, dimension = units_field(record.get("q")), record.get("d")
                if units is not None and isinstance(dimension, str):
                    by_tags = totals[hour].setdefault(dimension, {})
                    tags = tags_field(record.get("g"))
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

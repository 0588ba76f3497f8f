"""Time-weighted usage per UTC hour: the pure accounting core of the metering operator.

A workload's usage in hour H is the average over H of its annotated rate (replicas applied),
counting only the time it existed and was annotated: the integral of the rate over the part of H
it was observed, divided by one hour. The `Accumulator` keeps one open segment per workload (its
current rates since they last changed, across hour boundaries) and folds it into per-hour totals
when the workload changes, splitting at hour boundaries to the microsecond; closing an hour adds
each open segment's share of it. An unchanged workload's state never changes, so a checkpoint
only rewrites what changed.

Usage is exact: a rate is taken to 12 decimal places as an integer (`rate_units`) and usage is
rate units x microseconds, an integer, so folding a segment in one piece or in several (a restart
at any microsecond) gives the same number. It becomes an AWS quantity once, in `allocation.split`.

No I/O and no clock of its own: every method takes `now`. The checkpoint stores each workload's
`Entry` (what is folded, plus the open segment); `restore()` rebuilds from it after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

HOUR = timedelta(hours=1)
MICROSECOND = timedelta(microseconds=1)
RATE_SCALE = 10**12  # rates are exact to 12 decimal places
MICROS_PER_HOUR = 3_600_000_000
USAGE_PER_QUANTITY_HOUR = RATE_SCALE * MICROS_PER_HOUR  # usage units of one quantity for 1 h

Tags = tuple[tuple[str, str], ...]
Rates = tuple[tuple[str, int], ...]  # (dimension, rate units), sorted, zero rates left out


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def rate_units(rate: Decimal) -> int:
    """A rate per hour as an integer of 10^-12 units (half-even beyond 12 decimals)."""
    return int((rate * RATE_SCALE).to_integral_value(ROUND_HALF_EVEN))


def usage_of(quantity_hours: Decimal) -> int:
    """Usage units of a quantity held for an hour (tests, and documents written by people)."""
    return int((quantity_hours * USAGE_PER_QUANTITY_HOUR).to_integral_value(ROUND_HALF_EVEN))


def quantity_hours(usage: int) -> Decimal:
    """Usage units as quantity-hours, for people (rounded to 12 decimals)."""
    return (Decimal(usage) / USAGE_PER_QUANTITY_HOUR).quantize(Decimal("1e-12"))


@dataclass
class WorkloadUsage:
    """One workload's usage of one dimension in one hour (usage units) and its latest tags."""

    usage: int
    tags: Tags = ()


# dimension -> workload key -> usage (one completed hour, as the sender splits it)
HourUsage = dict[str, dict[str, WorkloadUsage]]


@dataclass(frozen=True)
class Entry:
    """One workload as checkpointed: usage of its ended segments per open hour and dimension,
    its latest tags, and its open segment (rates since `since`, possibly hours ago)."""

    tags: Tags = ()
    usage: Mapping[datetime, Mapping[str, int]] = field(default_factory=dict)
    rates: Rates = ()
    since: datetime | None = None

    def in_hour(self, hour: datetime, until: datetime) -> dict[str, int]:
        """Usage per dimension in `hour`, counting the open segment up to `until`."""
        totals = dict(self.usage.get(hour, {}))
        if self.since is not None:
            start, end = max(self.since, hour), min(until, hour + HOUR)
            if end > start:
                micros = (end - start) // MICROSECOND
                for dimension, rate in self.rates:
                    totals[dimension] = totals.get(dimension, 0) + rate * micros
        return totals


@dataclass(slots=True)
class _Segment:
    rates: tuple[int, ...]  # rate units by dimension index (compact: 100,000 workloads)
    tags: Tags
    since: datetime


@dataclass(slots=True)
class _Folded:
    usage: dict[str, int]
    tags: Tags


class Accumulator:
    """Per-hour, per-workload usage integrated from rate observations."""

    def __init__(self, now: datetime) -> None:
        self._open: dict[str, _Segment] = {}
        self._hours: dict[datetime, dict[str, _Folded]] = {}
        self._open_from = hour_start(now)  # hours before this are closed: never added to
        self._touched: set[str] = set()
        self._dimensions: list[str] = []  # index -> name, each name held once
        self._index: dict[str, int] = {}
        self._counts: list[int] = []  # open segments using each dimension

    def observe(
        self, key: str, rates: Mapping[str, Decimal] | None, tags: Tags, now: datetime
    ) -> None:
        """From `now` on, workload `key` uses `rates` per hour (None: gone or not metered).
        The same rates and tags again change nothing (a status update, a resync)."""
        units = self._units(rates or {})
        segment = self._open.get(key)
        if segment is not None and segment.rates == units and segment.tags == tags:
            return
        self._touched.add(key)
        if segment is not None:
            self._fold(key, segment, now)
            self._count(segment.rates, -1)
            del self._open[key]
            now = max(now, segment.since)  # a clock that went back never counts time twice
        if any(units):
            self._open[key] = _Segment(units, tags, now)
            self._count(units, 1)

    def close(self, now: datetime) -> list[tuple[datetime, ClosedHour]]:
        """Remove and return every completed hour still held, oldest first, empty ones included.

        Empty hours are those the accumulator watched without usage (the caller decides whether a
        zero record is sent); hours before it started watching are never returned.
        """
        current = hour_start(now)
        watched = set()
        hour = self._open_from
        while hour < current:
            watched.add(hour)
            hour += HOUR
        closed = []
        segments = dict(self._open)  # observe() replaces segments, never changes one
        for hour in sorted(watched | {hour for hour in self._hours if hour < current}):
            folded = self._hours.pop(hour, {})
            self._touched.update(folded)  # their entries lose this hour
            closed.append((hour, ClosedHour(self, hour, folded, segments)))
        self._open_from = max(self._open_from, current)
        return closed

    def hours(self, now: datetime) -> list[datetime]:
        """The hours held at `now` (with usage, or not closed while segments are open)."""
        held = set(self._hours)
        if self._open:
            hour, current = self._open_from, hour_start(now)
            while hour <= current:
                held.add(hour)
                hour += HOUR
        return sorted(held)

    def dimensions(self, hour: datetime) -> set[str]:
        """Dimensions with usage in `hour` so far, or in an open segment."""
        found = {d for entry in self._hours.get(hour, {}).values() for d in entry.usage}
        return found | {d for d, n in zip(self._dimensions, self._counts, strict=True) if n}

    def entries(self, keys: Iterable[str] | None = None) -> dict[str, Entry]:
        """The checkpoint entries of `keys` (default: all); a workload with nothing is absent."""
        chosen = set(self._open).union(*self._hours.values()) if keys is None else set(keys)
        entries: dict[str, Entry] = {}
        for key in chosen:
            segment = self._open.get(key)
            folded = {h: held[key] for h, held in self._hours.items() if key in held}
            if segment is None and not folded:
                continue
            latest = folded[max(folded)].tags if folded else ()
            entries[key] = Entry(
                tags=segment.tags if segment is not None else latest,
                usage={h: dict(f.usage) for h, f in folded.items() if f.usage},
                rates=self._pairs(segment.rates) if segment is not None else (),
                since=segment.since if segment is not None else None,
            )
        return entries

    def touch(self, key: str) -> None:
        """Mark `key`'s entry changed (a checkpoint that failed gives its keys back)."""
        self._touched.add(key)

    def take_touched(self) -> set[str]:
        """Workloads whose entries changed since the last call (what a checkpoint rewrites)."""
        touched, self._touched = self._touched, set()
        return touched

    def restore(
        self,
        entries: Mapping[str, Entry],
        observed: Mapping[datetime, datetime | None],
        now: datetime,
    ) -> None:
        """Replace all totals with a checkpoint: its entries, and the hours still open with the
        moment each was last known to be observed; restart every open segment at `now`.

        A checkpointed open segment counts up to its hour's moment (never past the hour); what
        this instance integrated before `now` is dropped: the checkpoint is the record, and the
        time between it and `now` is the bounded loss of a restart.
        """
        self._hours = {}
        for hour, moment in observed.items():
            until = min(moment, hour + HOUR) if moment is not None else hour
            held = {}
            for key, entry in entries.items():
                usage = {d: u for d, u in entry.in_hour(hour, until).items() if u}
                if usage:
                    held[key] = _Folded(usage, entry.tags)
            self._hours[hour] = held
        for segment in self._open.values():
            segment.since = now
        self._open_from = hour_start(now)
        self._touched = set(self._open) | set(entries)

    def restore_hours(
        self, hours: Mapping[datetime, Mapping[str, Mapping[str, WorkloadUsage]]]
    ) -> None:
        """Give closed hours back (their close could not be written; the next tick retries).
        Their open segments' shares come back as folded usage."""
        for hour, usage in hours.items():
            held = self._hours.setdefault(hour, {})
            for dimension, workloads in usage.items():
                for key, w in workloads.items():
                    entry = held.setdefault(key, _Folded({}, w.tags))
                    entry.usage[dimension] = w.usage
            self._touched.update(held)
        if not hours:
            return
        self._open_from = min([self._open_from, *hours])
        for segment in self._open.values():  # their shares are in the folded usage now
            segment.since = max(segment.since, max(hours) + HOUR)
        self._touched.update(self._open)

    def metered(self) -> dict[str, int]:
        """Dimension -> workloads now metered in it (cheap: kept as segments change)."""
        return {d: n for d, n in zip(self._dimensions, self._counts, strict=True) if n}

    def current_rates(self) -> dict[str, Mapping[str, Decimal]]:
        """Workload key -> rates now in force (for metrics and tests)."""
        return {
            key: {d: Decimal(u).scaleb(-12) for d, u in self._pairs(segment.rates)}
            for key, segment in self._open.items()
        }

    def _units(self, rates: Mapping[str, Decimal]) -> tuple[int, ...]:
        units = [0] * len(self._dimensions)
        for dimension, rate in rates.items():
            index = self._index.get(dimension)
            if index is None:
                index = self._index[dimension] = len(self._dimensions)
                self._dimensions.append(dimension)
                self._counts.append(0)
                units.append(0)
            units[index] = rate_units(rate)
        while units and not units[-1]:  # the same rates compare equal as dimensions are added
            units.pop()
        return tuple(units)

    def _count(self, units: tuple[int, ...], delta: int) -> None:
        for index, rate in enumerate(units):
            if rate:
                self._counts[index] += delta

    def _pairs(self, units: tuple[int, ...]) -> Rates:
        return tuple(sorted((self._dimensions[i], u) for i, u in enumerate(units) if u))

    def _fold(self, key: str, segment: _Segment, until: datetime) -> None:
        """Add an ended segment to the hours it covered (never to an hour already closed)."""
        start = max(segment.since, self._open_from)
        while start < until:
            hour = hour_start(start)
            end = min(until, hour + HOUR)
            micros = (end - start) // MICROSECOND
            held = self._hours.setdefault(hour, {})
            entry = held.get(key)
            if entry is None:
                entry = held[key] = _Folded({}, segment.tags)
            entry.tags = segment.tags
            for index, rate in enumerate(segment.rates):
                if rate:
                    dimension = self._dimensions[index]
                    entry.usage[dimension] = entry.usage.get(dimension, 0) + rate * micros
            start = end


class ClosedHour(Mapping[str, dict[str, WorkloadUsage]]):
    """A closed hour's usage per dimension, computed when asked for one dimension (of 100,000
    workloads, one dimension's at a time is what the operator ever holds)."""

    def __init__(
        self,
        accumulator: Accumulator,
        hour: datetime,
        folded: Mapping[str, _Folded],
        segments: Mapping[str, _Segment],
    ) -> None:
        self.hour = hour
        self._folded = folded
        self._segments = segments
        self._dimensions = accumulator._dimensions
        self._start = max(hour, accumulator._open_from)
        used = {
            i
            for s in segments.values()
            if s.since < hour + HOUR
            for i, r in enumerate(s.rates)
            if r
        }
        self._names = sorted(
            {self._dimensions[i] for i in used} | {d for f in folded.values() for d in f.usage}
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, dimension: str) -> dict[str, WorkloadUsage]:
        """The dimension's usage per workload: the open segments' share of the hour (hot: one
        entry per workload), plus the ended segments."""
        if dimension not in self._names:
            raise KeyError(dimension)
        index = self._dimensions.index(dimension) if dimension in self._dimensions else -1
        workloads: dict[str, WorkloadUsage] = {}
        start, end = self._start, self.hour + HOUR
        if index >= 0:
            for key, segment in self._segments.items():
                since = segment.since
                if since < end and len(segment.rates) > index and (rate := segment.rates[index]):
                    micros = (end - (since if since > start else start)) // MICROSECOND
                    workloads[key] = WorkloadUsage(rate * micros, segment.tags)
        for key, entry in self._folded.items():
            amount = entry.usage.get(dimension, 0)
            held = workloads.get(key)
            if held is not None:
                held.usage += amount  # its tags: the open segment's, the latest
            elif amount:
                workloads[key] = WorkloadUsage(amount, entry.tags)
        return workloads

"""Time-weighted usage per UTC hour: the pure accounting core of the metering operator.

A workload's usage in hour H is the average over H of its annotated rate (replicas applied),
counting only the time it existed, was annotated and was observed: the integral of the rate over
that part of H, divided by one hour. The `Accumulator` keeps one open segment per workload (its
current rates since they last changed, across hour boundaries) and folds it into per-hour totals
when the workload changes, splitting at hour boundaries to the microsecond; closing an hour adds
each open segment's share of it (`closed.ClosedHour`). An unchanged workload's state never
changes, so a checkpoint only rewrites what changed.

Usage is exact: a rate is taken to 12 decimal places as an integer (`rate_units`) and usage is
rate units x microseconds, an integer, so folding a segment in one piece or in several gives the
same number. It becomes an AWS quantity once, in `allocation.split`.

Restarts. The checkpoint stores each workload's `Entry` (what is folded, plus the open segment).
`restore()` rebuilds from it: a workload the new instance sees with the rates and tags of its
checkpointed open segment *continues* that segment (its entry stays as written), and the time
between the last checkpoint and the resume becomes a *gap* (`timeline.Gaps`) that no segment
counts; any other checkpointed segment is folded up to the checkpoint. So a clean restart bills
exactly what no restart bills, a crash loses only the gap, and a resume rewrites only the entries
of workloads that changed. No I/O and no clock of its own: every method takes `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import NamedTuple

from entitlement_sidecar.operator.closed import ClosedHour, Usages, WorkloadUsage
from entitlement_sidecar.operator.timeline import HOUR_US, Gaps, hour_of, micros, moment

HOUR = timedelta(hours=1)
RATE_SCALE = 10**12  # rates are exact to 12 decimal places
MICROS_PER_HOUR = HOUR_US
USAGE_PER_QUANTITY_HOUR = RATE_SCALE * MICROS_PER_HOUR  # usage units of one quantity for 1 h

Tags = tuple[tuple[str, str], ...]
Rates = tuple[tuple[str, int], ...]  # (dimension, rate units), sorted, zero rates left out
Interval = tuple[datetime, datetime]

__all__ = [
    "HOUR",
    "Accumulator",
    "ClosedHour",
    "Entry",
    "Usages",
    "WorkloadUsage",
    "hour_start",
    "quantity_hours",
    "rate_units",
    "usage_of",
]


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


class Entry(NamedTuple):
    """One workload as checkpointed: usage of its ended segments per open hour and dimension,
    its latest tags, and its open segment (rates since `since`, possibly hours ago). A tuple:
    a checkpoint builds 100,000 of them."""

    tags: Tags = ()
    usage: Mapping[datetime, Mapping[str, int]] = MappingProxyType({})
    rates: Rates = ()
    since: datetime | None = None


@dataclass(slots=True)
class _Segment:
    rates: tuple[int, ...]  # rate units by dimension index (compact: 100,000 workloads)
    tags: Tags
    since: int  # microseconds since the epoch


@dataclass(slots=True)
class _Folded:
    usage: dict[str, int]
    tags: Tags


class Accumulator:
    """Per-hour, per-workload usage integrated from rate observations."""

    def __init__(self, now: datetime) -> None:
        self._open: dict[str, _Segment] = {}
        self._hours: dict[datetime, dict[str, _Folded]] = {}
        self._open_from = hour_of(micros(now))  # hours before it are closed (but `_restored`)
        self._restored: set[int] = set()  # earlier hours a resume reopened from the ledger
        self._gaps = Gaps()
        self._touched: set[str] = set()
        self._dimensions: list[str] = []  # index -> name, each name held once
        self._index: dict[str, int] = {}
        self._order: list[int] = []  # indexes by dimension name (entries list them sorted)
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
        at = micros(now)
        if segment is not None:
            self._fold(key, segment.rates, segment.tags, segment.since, at)
            self._count(segment.rates, -1)
            del self._open[key]
            at = max(at, segment.since)  # a clock that went back never counts time twice
        if any(units):
            self._open[key] = _Segment(units, tags, at)
            self._count(units, 1)

    def close(self, now: datetime) -> list[tuple[datetime, ClosedHour]]:
        """Remove and return every completed hour still held, oldest first, empty ones included.

        Empty hours are those the accumulator watched without usage (the caller decides whether a
        zero record is sent); hours before it started watching, and hours nobody observed at all
        (inside a gap), are never returned.
        """
        current = hour_of(micros(now))
        starts = set(self._watched(current)) | {h for h in self._restored if h < current}
        starts |= {micros(h) for h in self._hours if micros(h) < current}
        segments = dict(self._open)  # observe() replaces segments, never changes one
        used = set(self.metered())
        closed = []
        for start in sorted(starts):
            hour = moment(start)
            folded = self._hours.pop(hour, {})
            self._touched.update(folded)  # their entries lose this hour
            gaps = Gaps(self._gaps.within(start, start + HOUR_US))
            closed.append(
                (
                    hour,
                    ClosedHour(
                        hour,
                        start,
                        folded,
                        segments,
                        dimensions=self._dimensions,
                        used=used,
                        gaps=gaps,
                    ),
                )
            )
        self._restored = {h for h in self._restored if h >= current}
        self._open_from = max(self._open_from, current)
        self._gaps.forget_before(min([self._open_from, *self._restored]))
        return closed

    def hours(self, now: datetime) -> list[datetime]:
        """The hours held at `now` (with usage, reopened by a resume, or not closed while
        segments are open)."""
        held = set(self._hours) | {moment(h) for h in self._restored}
        if self._open:
            held |= {moment(h) for h in self._watched(hour_of(micros(now)) + HOUR_US)}
        return sorted(held)

    def dimensions(self, hour: datetime) -> set[str]:
        """Dimensions with usage in `hour` so far, or in an open segment."""
        found = {d for entry in self._hours.get(hour, {}).values() for d in entry.usage}
        return found | set(self.metered())

    def unobserved(self, hour: datetime) -> list[Interval]:
        """The gaps inside `hour` (its ledger object keeps them for the next resume)."""
        start = micros(hour)
        return [(moment(s), moment(e)) for s, e in self._gaps.within(start, start + HOUR_US)]

    def entries(self, keys: Iterable[str] | None = None) -> dict[str, Entry]:
        """The checkpoint entries of `keys` (default: all); a workload with nothing is absent."""
        return dict(self.each_entry(keys))

    def each_entry(self, keys: Iterable[str] | None = None) -> Iterator[tuple[str, Entry]]:
        """`entries()` one at a time (a checkpoint encodes each at once: 100,000 entries that
        never live long enough for the garbage collector to look at them)."""
        chosen = set(self._open).union(*self._hours.values()) if keys is None else keys
        held = sorted((h, f) for h, f in self._hours.items() if f)
        segments, pairs = self._open, self._pairs
        for key in chosen:
            segment = segments.get(key)
            usage: dict[datetime, Mapping[str, int]] = {}
            latest: _Folded | None = None
            for hour, folded in held:
                found = folded.get(key)
                if found is not None:
                    latest = found
                    if found.usage:
                        usage[hour] = dict(found.usage)
            if segment is not None:
                since = moment(segment.since)
                yield key, Entry(segment.tags, usage, pairs(segment.rates), since)
            elif latest is not None:
                yield key, Entry(latest.tags, usage)

    def touch(self, key: str) -> None:
        """Mark `key`'s entry changed (a checkpoint that failed gives its keys back)."""
        self._touched.add(key)

    def take_touched(self) -> set[str]:
        """Workloads whose entries changed since the last call (what a checkpoint rewrites)."""
        touched, self._touched = self._touched, set()
        return touched

    def restore(
        self,
        entries: Mapping[str, Entry] | Iterable[tuple[str, Entry]],
        observed: Mapping[datetime, datetime | None],
        now: datetime,
        gaps: Iterable[Interval] = (),
    ) -> None:
        """Replace all totals with a checkpoint: its entries (read once, in any order), the hours
        still open with the moment each was last observed, and the gaps already inside them.

        The time from the last observation to `now` becomes a gap. A workload observed now with
        the rates and tags of its checkpointed open segment continues it; another checkpointed
        segment counts in each open hour up to that hour's last observation, and what this
        instance observed runs from `now`. Only the entries that changed are touched.
        """
        at = micros(now)
        seen = [micros(m) for m in observed.values() if m is not None]
        last = max(seen, default=None)
        self._gaps = Gaps((micros(a), micros(b)) for a, b in gaps)
        if last is not None:
            self._gaps.add(last, at)
        self._open_from = hour_of(at)
        self._restored = {micros(h) for h in observed if micros(h) < self._open_from}
        self._hours = {hour: {} for hour in observed}
        self._touched = set()
        limits = {micros(h): micros(m) for h, m in observed.items() if m is not None}
        found: set[str] = set()
        rows = entries.items() if isinstance(entries, Mapping) else entries
        for key, entry in rows:
            found.add(key)
            if not self._restore_entry(key, entry, limits, at, continues=last is not None):
                self._touched.add(key)
        for key, segment in self._open.items():
            if key not in found:  # new since the checkpoint: from now on
                segment.since = at
                self._touched.add(key)

    def _restore_entry(
        self, key: str, entry: Entry, limits: Mapping[int, int], at: int, *, continues: bool
    ) -> bool:
        """Take one checkpointed entry back; whether it stays as written."""
        unchanged = True
        for hour, usage in entry.usage.items():
            held = self._hours.get(hour)
            if held is None:
                unchanged = False  # that hour was finalized since: the entry loses it
            elif usage:
                held[key] = _Folded(dict(usage), entry.tags)
        segment = self._open.get(key)
        if entry.since is not None and entry.rates:
            since = micros(entry.since)
            if (
                continues
                and segment is not None
                and segment.tags == entry.tags
                and self._pairs(segment.rates) == entry.rates
            ):
                segment.since = since  # the same rates as checkpointed: the segment runs on
                return unchanged
            units = self._units(dict(entry.rates))
            for start, limit in limits.items():  # the checkpointed segment ends where last seen
                end = min(limit, start + HOUR_US)
                self._fold_span(key, units, entry.tags, max(since, start), end)
            unchanged = False
        if segment is not None:  # observed otherwise than checkpointed: from now on
            segment.since = at
            return False
        return unchanged

    def restore_hours(
        self, hours: Mapping[datetime, Mapping[str, Mapping[str, WorkloadUsage]]]
    ) -> None:
        """Give closed hours back (their close could not be written; the next tick retries).
        Their open segments' shares come back as folded usage."""
        for hour, usage in hours.items():
            held = self._hours.setdefault(hour, {})
            for dimension, workloads in usage.items():
                for key, w in Usages.of(workloads).items():
                    entry = held.setdefault(key, _Folded({}, w.tags))
                    entry.usage[dimension] = w.usage
            self._touched.update(held)
        if not hours:
            return
        starts = {micros(h) for h in hours}
        self._restored |= {h for h in starts if h < self._open_from}
        resume = max(starts) + HOUR_US
        for segment in self._open.values():  # their shares are in the folded usage now
            segment.since = max(segment.since, resume)
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

    def _watched(self, until: int) -> list[int]:
        """Hours from the first one watched up to `until` (exclusive), but those nobody
        observed at all."""
        gaps = self._gaps
        return [
            h for h in range(self._open_from, until, HOUR_US) if not gaps.covers(h, h + HOUR_US)
        ]

    def _units(self, rates: Mapping[str, Decimal] | Mapping[str, int]) -> tuple[int, ...]:
        units = [0] * len(self._dimensions)
        for dimension, rate in rates.items():
            index = self._index.get(dimension)
            if index is None:
                index = self._index[dimension] = len(self._dimensions)
                self._dimensions.append(dimension)
                self._counts.append(0)
                self._order = sorted(range(len(self._dimensions)), key=self._dimensions.__getitem__)
                units.append(0)
            units[index] = rate if isinstance(rate, int) else rate_units(rate)
        while units and not units[-1]:  # the same rates compare equal as dimensions are added
            units.pop()
        return tuple(units)

    def _count(self, units: tuple[int, ...], delta: int) -> None:
        for index, rate in enumerate(units):
            if rate:
                self._counts[index] += delta

    def _pairs(self, units: tuple[int, ...]) -> Rates:
        size, names = len(units), self._dimensions
        return tuple([(names[i], units[i]) for i in self._order if i < size and units[i]])

    def _fold(self, key: str, rates: tuple[int, ...], tags: Tags, since: int, until: int) -> None:
        """Add an ended segment to the open hours it covered (never to a closed hour)."""
        for hour in sorted(self._restored):
            if hour + HOUR_US > since and hour < until:
                end = min(until, hour + HOUR_US)
                self._fold_span(key, rates, tags, max(since, hour), end)
        start = max(since, self._open_from)
        while start < until:
            hour = hour_of(start)
            end = min(until, hour + HOUR_US)
            self._fold_span(key, rates, tags, start, end)
            start = end

    def _fold_span(
        self, key: str, rates: tuple[int, ...], tags: Tags, start: int, end: int
    ) -> None:
        """Add `rates` over the observed part of [start, end) (inside one hour) to that hour."""
        observed = self._gaps.observed(start, end)
        if observed <= 0:
            return
        held = self._hours.setdefault(moment(hour_of(start)), {})
        entry = held.get(key)
        if entry is None:
            entry = held[key] = _Folded({}, tags)
        entry.tags = tags
        usage = entry.usage
        for index, rate in enumerate(rates):
            if rate:
                dimension = self._dimensions[index]
                usage[dimension] = usage.get(dimension, 0) + rate * observed

"""Time-weighted usage per UTC hour: the pure accounting core of the metering operator.

A workload's usage in hour H is the average over H of its annotated rate (replicas applied),
counting only the time it existed and was annotated: the integral of the rate over the part of H
it was observed, divided by one hour. The `Accumulator` keeps one open segment per workload (its
current rates since the last observation) and folds segments into per-hour totals whenever a
workload changes or the clock advances, splitting at hour boundaries to the microsecond.

No I/O and no clock of its own: every method takes `now`. The operator checkpoints `hours()` into
the ledger and `restore()`s it after a restart; `close(now)` hands over completed hours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal

HOUR = timedelta(hours=1)
MICROS_PER_HOUR = Decimal(3_600_000_000)
# Enough digits that rate x microseconds / hour is exact for any realistic rate.
_CONTEXT = Context(prec=40)

Tags = tuple[tuple[str, str], ...]


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class WorkloadUsage:
    """One workload's usage of one dimension in one hour (quantity-hours) and its latest tags."""

    usage: Decimal
    tags: Tags = ()


# hour start -> dimension -> workload key -> usage
HourUsage = dict[str, dict[str, WorkloadUsage]]


@dataclass
class _Segment:
    rates: Mapping[str, Decimal]
    tags: Tags
    since: datetime


class Accumulator:
    """Per-hour, per-dimension, per-workload usage integrated from rate observations."""

    def __init__(self, now: datetime) -> None:
        self._open: dict[str, _Segment] = {}
        self._hours: dict[datetime, HourUsage] = {}
        self._open_from = hour_start(now)

    def observe(
        self, key: str, rates: Mapping[str, Decimal] | None, tags: Tags, now: datetime
    ) -> None:
        """From `now` on, workload `key` uses `rates` per hour (None: gone or not metered)."""
        segment = self._open.pop(key, None)
        if segment is not None:
            self._fold(key, segment, now)
        if rates:
            self._open[key] = _Segment(dict(rates), tags, now)

    def advance(self, now: datetime) -> None:
        """Fold every open segment up to `now` (before a checkpoint or a close)."""
        for key, segment in self._open.items():
            self._fold(key, segment, now)
            segment.since = max(segment.since, now)

    def close(self, now: datetime) -> list[tuple[datetime, HourUsage]]:
        """Remove and return every completed hour still held, oldest first, empty ones included.

        Empty hours are those the accumulator watched without usage (the caller decides whether a
        zero record is sent); hours before it started watching are never returned.
        """
        self.advance(now)
        current = hour_start(now)
        watched = set()
        hour = self._open_from
        while hour < current:
            watched.add(hour)
            hour += HOUR
        done = sorted(watched | {hour for hour in self._hours if hour < current})
        self._open_from = max(self._open_from, current)
        return [(hour, self._hours.pop(hour, {})) for hour in done]

    def hours(self) -> Iterator[tuple[datetime, HourUsage]]:
        """The hours held now (normally only the current one), for checkpoints."""
        yield from sorted(self._hours.items())

    def restore(self, hours: Mapping[datetime, HourUsage], now: datetime) -> None:
        """Replace all totals with a checkpoint, and restart every open segment at `now`.

        What this instance integrated before `now` is dropped: the checkpoint is the record, and
        the time between it and `now` is the bounded loss of a restart.
        """
        self._hours = {
            hour: {
                dimension: {key: WorkloadUsage(w.usage, w.tags) for key, w in workloads.items()}
                for dimension, workloads in usage.items()
            }
            for hour, usage in hours.items()
        }
        for segment in self._open.values():
            segment.since = now
        self._open_from = hour_start(now)

    def restore_hours(self, hours: Mapping[datetime, HourUsage]) -> None:
        """Give closed hours back (their close could not be written; the next tick retries)."""
        for hour, usage in hours.items():
            held = self._hours.setdefault(hour, {})
            for dimension, workloads in usage.items():
                held.setdefault(dimension, {}).update(workloads)

    def current_rates(self) -> dict[str, Mapping[str, Decimal]]:
        """Workload key -> rates now in force (for metrics and tests)."""
        return {key: segment.rates for key, segment in self._open.items()}

    def _fold(self, key: str, segment: _Segment, until: datetime) -> None:
        start = segment.since
        while start < until:
            hour = hour_start(start)
            end = min(until, hour + HOUR)
            micros = Decimal((end - start) // timedelta(microseconds=1))
            usage = self._hours.setdefault(hour, {})
            for dimension, rate in segment.rates.items():
                if not rate:
                    continue
                workloads = usage.setdefault(dimension, {})
                share = _CONTEXT.divide(_CONTEXT.multiply(rate, micros), MICROS_PER_HOUR)
                entry = workloads.get(key)
                if entry is None:
                    workloads[key] = WorkloadUsage(share, segment.tags)
                else:
                    entry.usage = _CONTEXT.add(entry.usage, share)
                    entry.tags = segment.tags
            start = end

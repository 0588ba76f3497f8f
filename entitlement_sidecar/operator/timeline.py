"""Time as the accounting counts it: integer microseconds, UTC hours, and unobserved gaps.

Usage is rate units x microseconds (see `accounting`), so moments are kept as integer
microseconds since the Unix epoch: exact, cheap to subtract 100,000 times at an hour's close,
and smaller than a `datetime`. A *gap* is time no operator observed (between the last checkpoint
of an instance that died and the resume of the next one): an open segment that runs across it
counts its rates for the time before and after the gap, never during it. `Gaps` keeps them
sorted and disjoint, and forgets those before the oldest hour still open. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
HOUR_US = 3_600_000_000

Interval = tuple[int, int]  # [start, end) in microseconds


def micros(moment: datetime) -> int:
    """`moment` as microseconds since the epoch."""
    return (moment - EPOCH) // MICROSECOND


def moment(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def hour_of(us: int) -> int:
    """The start of the UTC hour holding `us`."""
    return us - us % HOUR_US


class Gaps:
    """Unobserved intervals, sorted and disjoint (a handful at most: one per crash)."""

    __slots__ = ("_spans",)

    def __init__(self, spans: Iterable[Interval] = ()) -> None:
        self._spans: list[Interval] = []
        for start, end in sorted(spans):
            self.add(start, end)

    def __bool__(self) -> bool:
        return bool(self._spans)

    def __iter__(self) -> Iterator[Interval]:
        return iter(list(self._spans))

    def __repr__(self) -> str:
        return f"Gaps({self._spans!r})"

    def add(self, start: int, end: int) -> None:
        """Mark [start, end) unobserved (merged with the gaps it touches)."""
        if end <= start:
            return
        kept: list[Interval] = []
        for span in self._spans:
            if span[1] < start or span[0] > end:
                kept.append(span)
            else:
                start, end = min(start, span[0]), max(end, span[1])
        kept.append((start, end))
        self._spans = sorted(kept)

    def overlap(self, start: int, end: int) -> int:
        """Microseconds of [start, end) inside a gap."""
        total = 0
        for gap_start, gap_end in self._spans:
            if gap_start >= end:
                break
            low, high = max(start, gap_start), min(end, gap_end)
            if high > low:
                total += high - low
        return total

    def observed(self, start: int, end: int) -> int:
        """Microseconds of [start, end) someone observed (0 when the interval is empty)."""
        if end <= start:
            return 0
        return end - start - (self.overlap(start, end) if self._spans else 0)

    def covers(self, start: int, end: int) -> bool:
        """Whether all of [start, end) is unobserved."""
        return self.overlap(start, end) == end - start

    def within(self, start: int, end: int) -> list[Interval]:
        """The parts of the gaps inside [start, end) (what an hour's ledger object keeps)."""
        return [(max(start, s), min(end, e)) for s, e in self._spans if s < end and e > start]

    def forget_before(self, start: int) -> None:
        """Drop what ends at or before `start` (no open hour reaches back there)."""
        self._spans = [span for span in self._spans if span[1] > start]

"""A closed hour's usage, one dimension at a time, as columns.

At an hour's close every workload's share of it is computed once per dimension: 100,000 workloads
give 100,000 (key, usage, tags) rows, which are kept as three parallel lists (`Usages`) rather
than an object per workload (half the time of the close went into building those). `ClosedHour`
computes a dimension's rows when asked (the operator holds one dimension's at a time): the open
segments' share of the hour (rate x observed microseconds, gaps left out), plus the ended
segments folded before. Everything here is pure; `accounting.Accumulator.close` builds them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from entitlement_sidecar.operator.timeline import HOUR_US, Gaps

if TYPE_CHECKING:
    from entitlement_sidecar.operator.accounting import Tags, _Folded, _Segment


@dataclass
class WorkloadUsage:
    """One workload's usage of one dimension in one hour (usage units) and its latest tags."""

    usage: int
    tags: Tags = ()


class Usages(Mapping[str, WorkloadUsage]):
    """One dimension's usage in one hour: `workloads` (keys), `units` (usage units) and `tags`,
    row by row.

    A read-only Mapping of key -> WorkloadUsage for small callers and tests (its index is built
    on the first lookup); the split reads the columns."""

    __slots__ = ("_index", "tags", "units", "workloads")

    def __init__(self, workloads: list[str], units: list[int], tags: list[Tags]) -> None:
        self.workloads = workloads
        self.units = units
        self.tags = tags
        self._index: dict[str, int] | None = None

    @classmethod
    def of(cls, workloads: Mapping[str, WorkloadUsage]) -> Usages:
        if isinstance(workloads, Usages):
            return workloads
        rows = list(workloads.items())
        return cls([k for k, _ in rows], [w.usage for _, w in rows], [w.tags for _, w in rows])

    def __getitem__(self, key: str) -> WorkloadUsage:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.workloads)}
        row = self._index[key]
        return WorkloadUsage(self.units[row], self.tags[row])

    def __iter__(self) -> Iterator[str]:
        return iter(self.workloads)

    def __len__(self) -> int:
        return len(self.workloads)


class ClosedHour(Mapping[str, Usages]):
    """A closed hour's usage per dimension, computed when asked for one dimension."""

    def __init__(
        self,
        hour: datetime,
        start: int,
        folded: Mapping[str, _Folded],
        segments: Mapping[str, _Segment],
        *,
        dimensions: Sequence[str],
        used: set[str],
        gaps: Gaps,
    ) -> None:
        self.hour = hour
        self._start = start
        self._folded = folded
        self._segments = segments
        self._dimensions = list(dimensions)
        self._gaps = gaps
        self._names = sorted(used | {d for f in folded.values() for d in f.usage})

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, dimension: str) -> Usages:
        """The dimension's rows: the open segments' share of the hour (hot: one row per
        workload), plus the ended segments' usage folded before."""
        if dimension not in self._names:
            raise KeyError(dimension)
        extra = {k: amount for k, f in self._folded.items() if (amount := f.usage.get(dimension))}
        keys: list[str] = []
        units: list[int] = []
        tags: list[Tags] = []
        if dimension in self._dimensions:
            index = self._dimensions.index(dimension)
            self._open_share(index, extra, keys, units, tags)
        for key, amount in extra.items():  # ended segments only (no open one in this dimension)
            keys.append(key)
            units.append(amount)
            tags.append(self._folded[key].tags)
        return Usages(keys, units, tags)

    def _open_share(
        self,
        index: int,
        extra: dict[str, int],
        keys: list[str],
        units: list[int],
        tags: list[Tags],
    ) -> None:
        start, end = self._start, self._start + HOUR_US
        gaps = self._gaps if self._gaps else None
        add_key, add_units, add_tags = keys.append, units.append, tags.append
        for key, segment in self._segments.items():
            rates = segment.rates
            if len(rates) <= index or not (rate := rates[index]):
                continue
            since = segment.since
            if since >= end:
                continue
            begin = since if since > start else start
            amount = rate * (end - begin if gaps is None else gaps.observed(begin, end))
            if extra:
                amount += extra.pop(key, 0)  # its tags: the open segment's, the latest
            if amount:
                add_key(key)
                add_units(amount)
                add_tags(segment.tags)

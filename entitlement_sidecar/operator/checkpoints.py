"""Writing and reading the checkpoint (log-structured, see `layout.py`), one head per hour and
dimension.

A checkpoint at `now` (the Lease holder only):

    1. the lines of workloads touched since the last checkpoint are written as a new log piece
       (with the lines of the open piece it replaces), or, at the very first checkpoint of a
       large cluster, straight as base shards; then the root is switched to name them
       (conditioned on its resourceVersion: a 409 means another instance writes the
       checkpoint now, and this one stops);
    2. once the log has outgrown its budget, a compaction writes `SLICE` new base shards per
       checkpoint and switches the root to them when the last one is written;
    3. each open hour's dimension objects (the heads, created when missing) get `observedUntil`
       (`now`, at most the hour's end), the gaps nobody observed in the hour, and the counts,
       conditioned on the version they were read at, so an hour a newer holder closed is never
       touched;
    4. a few pieces no root names any more are deleted (an hourly sweep also finds those a
       crash or a stalled ex-leader left).

Every step leaves a consistent checkpoint behind: the root names complete pieces only, and the
heads move after the lines they count. On resume the new holder first writes the root (a fence:
a stalled ex-leader's switch is then refused), then reads the pieces it names one at a time into
the accumulator (`Accumulator.restore` decides which entries continue as written).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.accounting import HOUR, Accumulator, Entry
from entitlement_sidecar.operator.layout import Compaction, Layout, Piece
from entitlement_sidecar.operator.ledger import HourRecord, Phase
from entitlement_sidecar.operator.pieces import Line, Pieces, Superseded, has, pack
from entitlement_sidecar.operator.shards import PAYLOAD_BYTES, encode_line, line_size

log = logging.getLogger(__name__)
BATCH = 2000  # entries read from the accumulator (under its lock) at a time
SLICE = 12  # base shards a compaction writes per checkpoint (about 2 MiB)
GARBAGE_PER_TICK = 16  # pieces deleted per checkpoint; the rest wait for the next
WHOLE = 1 << 30  # "no limit" for a compaction written in one go

__all__ = ["Checkpointer", "Superseded"]


class Checkpointer:
    """The checkpoint of one product, and the heads of the hours the accumulator holds."""

    def __init__(self, pieces: Pieces, *, lock: threading.Lock) -> None:
        self.pieces = pieces  # the objects on the API server, and how to write them
        self.store = pieces.store
        self.product_code = pieces.product_code
        self.metrics = pieces.metrics
        self._hold = pieces.hold  # raises when the Lease lapsed: no write after that
        self._hook = pieces.hook
        self._lock = lock  # the accumulator's: taken around reads of it, never around I/O
        self.layout = Layout()
        self._compaction: Compaction | None = None
        self._unnamed: list[Piece] = []  # log pieces created, not yet named by the root
        self._heads: dict[datetime, set[str]] = {}

    # -- writing --

    def write(
        self, accumulator: Accumulator, now: datetime, known: Mapping[str, HourRecord]
    ) -> None:
        """Checkpoint: the changed lines and the root, a slice of a compaction, the heads of
        every open hour, then some garbage."""
        with self._lock:
            touched = accumulator.take_touched()
            hours = accumulator.hours(now)
            dimensions = {hour: accumulator.dimensions(hour) for hour in hours}
            gaps = {hour: accumulator.unobserved(hour) for hour in hours}
        try:
            heads = [
                self._head(hour, dimension, known)
                for hour in hours
                for dimension in sorted(dimensions[hour] | self._heads.get(hour, set()))
            ]
            layout = self.layout
            if touched and not layout.base and layout.should_compact(len(touched)):
                self._compact(accumulator, layout.plan(touched), WHOLE)  # the first: base
            elif touched:
                self._append(accumulator, touched)
            if self._compaction is None and layout.log_bytes() > layout.log_budget():
                self._compaction = layout.plan()
            if self._compaction is not None:
                self._compact(accumulator, self._compaction, SLICE)
            for head in heads:
                if head is not None:
                    status = ledger.head_status(
                        min(now, head.hour + HOUR),
                        layout.pieces(),
                        layout.workloads(),
                        gaps[head.hour],
                    )
                    self._write_head(head, status)
        except BaseException:  # not (all) written: rewrite these entries next time
            self._abandon()
            with self._lock:
                for key in touched:
                    accumulator.touch(key)
            raise
        self.pieces.collect(GARBAGE_PER_TICK)

    def _append(self, accumulator: Accumulator, touched: set[str]) -> None:
        """A new log piece with the changed lines, and those of the open piece while they fit."""
        layout = self.layout
        current = layout.open_piece()
        keys = set(touched)
        fits = current is not None and (
            current.live + len(touched) * layout.line_guess() <= PAYLOAD_BYTES
        )
        if current is not None and fits:
            keys |= current.sizes.keys()
        for run in pack(self._lines(accumulator, sorted(keys)), PAYLOAD_BYTES):
            self._unnamed.append(self.pieces.create("log", run))
        new = list(self._unnamed)
        kept = layout.log[:-1] if current is not None and fits else list(layout.log)
        base, log_ = list(layout.base), [*kept, *new]
        self.pieces.name(base, log_)
        self._unnamed = []
        self.pieces.forget(layout.commit(base, log_, new))

    def _compact(self, accumulator: Accumulator, compaction: Compaction, limit: int) -> None:
        """Write up to `limit` new base shards of `compaction`; once its last one is written,
        switch the root to them."""
        keys, written = compaction.keys, 0
        while not compaction.done and written < limit:
            run: list[Line] = []
            used, position = 0, compaction.position
            for key, line, size, tombstone in self._lines(accumulator, keys[position:]):
                if run and used + size > PAYLOAD_BYTES:
                    break
                position += 1
                if tombstone:
                    compaction.gone.append(key)  # nothing left: its tombstone is dropped
                elif line:
                    run.append((key, line, size, False))
                    used += size
            if run:
                compaction.new.append(self.pieces.create("base", run))
                written += 1
            compaction.position = position
        if not compaction.done:
            return
        self.pieces.name(*self.layout.finish(compaction))
        kept = len(self.layout.base)
        self.pieces.forget(self.layout.commit_compaction(compaction))
        self._compaction = None
        self.metrics.compactions.inc()
        log.info(
            "checkpoint compacted",
            extra={"written": len(compaction.new), "replaced": kept - len(self.layout.base)},
        )

    def _lines(self, accumulator: Accumulator, keys: Sequence[str]) -> Iterator[Line]:
        """Each key's line as the accumulator has it now, a batch at a time under its lock
        (no text: nothing to write); a key without an entry that has a line somewhere gets a
        tombstone (its earlier lines must not come back)."""
        where = self.layout.where
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            with self._lock:
                lines = {key: encode_line(key, e) for key, e in accumulator.each_entry(batch)}
            for key in batch:
                line = lines.get(key)
                if line is not None:
                    yield key, line, line_size(line), False
                elif key in where:
                    tombstone = encode_line(key, Entry())
                    yield key, tombstone, line_size(tombstone), True
                else:
                    yield key, "", 0, False

    def _abandon(self) -> None:
        """After a failure: what was written and not named is garbage; a compaction under way
        starts over later."""
        self.pieces.forget(self._unnamed)
        self._unnamed = []
        if self._compaction is not None:
            self.pieces.forget(self._compaction.new)
            self._compaction = None

    def sweep(self) -> None:
        """Queue every checkpoint object nothing names for deletion (see `Pieces.sweep`)."""
        base, log_ = self.layout.names()
        named = {self.pieces.root, *base, *log_, *(p.name for p in self._unnamed)}
        if self._compaction is not None:
            named |= {p.name for p in self._compaction.new}
        self.pieces.sweep(named)

    # -- reading --

    def resume(
        self, accumulator: Accumulator, heads: list[HourRecord], now: datetime
    ) -> dict[datetime, Any]:
        """Fence the root, then restore the accumulator from the pieces it names and these
        Accumulating heads; return the open hours with the moment each was last observed."""
        observed: dict[datetime, Any] = {}
        gaps: list[tuple[datetime, datetime]] = []
        for head in heads:
            if head.phase is Phase.ACCUMULATING:
                self._heads.setdefault(head.hour, set()).add(head.dimension)
                moments = [observed.get(head.hour), head.observed_until]
                observed[head.hour] = max((m for m in moments if m), default=None)
                gaps += head.unobserved
        base, log_ = self.pieces.fence()
        with self._lock:
            accumulator.restore(self._read(base, log_), observed, now, gaps)
        return observed

    def _read(self, base: list[str], log_: list[str]) -> Iterator[tuple[str, Entry]]:
        """The entries in force, one piece at a time (a log line overrides earlier ones and the
        base), rebuilding the layout as they go by."""
        layout = self.layout = Layout()
        latest: dict[str, tuple[Piece, Entry]] = {}
        for name in log_:
            piece = Piece(name)
            for key, line, entry in self.pieces.read(name):
                if key in latest:
                    latest[key][0].supersede(key)
                piece.add(key, line_size(line), gone=not has(entry))
                latest[key] = (piece, entry)
            layout.log.append(piece)
        for name in base:
            piece = Piece(name)
            for key, line, entry in self.pieces.read(name):
                if key in latest or key in layout.where:  # superseded (or a stray duplicate)
                    piece.total += line_size(line)
                    continue
                piece.add(key, line_size(line))
                layout.where[key] = piece
                yield key, entry
            layout.base.append(piece)
        for key, (piece, entry) in latest.items():
            layout.where[key] = piece
            if has(entry):
                yield key, entry

    # -- heads --

    def dimensions(self, hour: datetime) -> set[str]:
        """The dimensions whose hour objects exist for `hour` (each must be closed)."""
        return set(self._heads.get(hour, ()))

    def closed(self, hour: datetime) -> None:
        self._heads.pop(hour, None)

    def _head(
        self, hour: datetime, dimension: str, known: Mapping[str, HourRecord]
    ) -> HourRecord | None:
        """The dimension's hour object, created when missing; None once it left Accumulating."""
        name = ledger.object_name(self.product_code, dimension, hour)
        record = known.get(name)
        if record is None:
            self._hold("checkpoint")
            fresh = ledger.new_object(self.product_code, dimension, hour, self.store.namespace)
            obj = self.store.create(fresh) or self.store.get(name)
            record = ledger.decode(obj) if obj is not None else None
        if record is None or record.phase is not Phase.ACCUMULATING:
            return None
        self._heads.setdefault(hour, set()).add(dimension)
        return record

    def _write_head(self, head: HourRecord, status: dict[str, Any]) -> None:
        """Patch a head conditioned on the version read; after a conflict look once more."""
        record: HourRecord | None = head
        for _ in range(2):
            if record is None or record.phase is not Phase.ACCUMULATING:
                return
            self._hold("checkpoint")
            self._hook("before_checkpoint", record.name)
            if self.store.patch_status(record.name, status, record.version) is not None:
                self.metrics.checkpoints.inc(dimension=record.dimension)
                return
            self.metrics.fenced.inc(step="checkpoint")
            log.warning(
                "hour changed by another writer since it was read; checkpoint not written",
                extra={"hour_usage": record.name},
            )
            obj = self.store.get(record.name)
            record = ledger.decode(obj) if obj is not None else None

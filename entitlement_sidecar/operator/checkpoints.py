"""Writing and reading the checkpoint: shard objects of workload entries, one head per hour and
dimension.

A checkpoint at `now` (the Lease holder only):

    1. the entries of workloads touched since the last checkpoint are encoded and placed by the
       `ShardMap` (a workload that changed nothing keeps its entry, "these rates since then",
       valid across hours, so its shard is not rewritten);
    2. the shards that changed are written: created, or patched conditioned on the
       resourceVersion this instance last wrote (409: another instance writes them now);
    3. each open hour's dimension objects (the heads, created when missing) get `observedUntil`
       (`now`, at most the hour's end) and the counts, conditioned on the version they were read
       at, so an hour a newer holder closed is never touched.

On resume, an open segment counts in each open hour up to that hour's `observedUntil`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from entitlement_sidecar.operator import ledger, shards
from entitlement_sidecar.operator.accounting import HOUR, Accumulator, Entry
from entitlement_sidecar.operator.ledger import HourRecord, Phase
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.shards import ShardMap
from entitlement_sidecar.operator.store import LedgerStore

log = logging.getLogger(__name__)
BATCH = 5000  # entries encoded at a time


class Superseded(Exception):
    """Another instance wrote a checkpoint shard since we did: it holds the Lease now."""


class Checkpointer:
    """The checkpoint shards and the heads of the hours the accumulator holds."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        product_code: str,
        metrics: Metrics,
        hold: Callable[[str], None],
        hook: Callable[[str, str], None],
        lock: threading.Lock,
    ) -> None:
        self.store = store
        self.product_code = product_code
        self.metrics = metrics
        self._hold = hold  # raises when the Lease lapsed: no write after that
        self._hook = hook
        self._lock = lock  # the accumulator's: taken around reads of it, never around I/O
        self._map = ShardMap()
        self._heads: dict[datetime, set[str]] = {}

    def write(
        self, accumulator: Accumulator, now: datetime, known: Mapping[str, HourRecord]
    ) -> None:
        """Checkpoint: changed shards first, then the heads of every open hour. Entries are
        encoded a batch at a time and again when their shard is written, so a checkpoint of
        100,000 workloads never holds them all encoded at once."""
        with self._lock:
            touched = accumulator.take_touched()
            hours = accumulator.hours(now)
            dimensions = {hour: accumulator.dimensions(hour) for hour in hours}
        try:
            pending = list(touched)
            for start in range(0, len(pending), BATCH):
                batch = pending[start : start + BATCH]
                with self._lock:
                    entries = accumulator.entries(batch)
                for key in batch:
                    entry = entries.get(key)
                    if entry is None:
                        self._map.drop(key)
                    else:
                        self._map.put(key, shards.entry_size(shards.encode_entry(key, entry)))
            heads = [
                self._head(hour, dimension, known)
                for hour in hours
                for dimension in sorted(dimensions[hour] | self._heads.get(hour, set()))
            ]
            for index in self._map.take_dirty():
                self._write_shard(accumulator, index, now)
            for head in heads:
                if head is not None:
                    status = ledger.head_status(
                        min(now, head.hour + HOUR), len(self._map.shards), len(self._map.where)
                    )
                    self._write_head(head, status)
        except BaseException:  # not (all) written: rewrite these entries next time
            with self._lock:
                for key in touched:
                    accumulator.touch(key)
            raise

    def load(self, heads: list[HourRecord]) -> tuple[dict[str, Entry], dict[datetime, Any]]:
        """The stored entries, and the open hours (of these Accumulating heads) with the moment
        each was last observed."""
        selector = f"{ledger.CHECKPOINT_LABEL}={ledger.checkpoint_key(self.product_code)}"
        entries, self._map = shards.restore(self.store.select(selector))
        observed: dict[datetime, Any] = {}
        for head in heads:
            if head.phase is Phase.ACCUMULATING:
                self._heads.setdefault(head.hour, set()).add(head.dimension)
                moments = [observed.get(head.hour), head.observed_until]
                observed[head.hour] = max((m for m in moments if m), default=None)
        return entries, observed

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

    def _write_shard(self, accumulator: Accumulator, index: int, now: datetime) -> None:
        shard = self._map.shards[index - 1]
        keys = self._map.keys(index)
        with self._lock:
            entries = accumulator.entries(keys)
        status = {
            "observedUntil": ledger.to_time(now),
            "entries": [shards.encode_entry(key, entries[key]) for key in keys if key in entries],
        }
        obj = ledger.shard_object(self.product_code, index, self.store.namespace)
        name = obj["metadata"]["name"]
        self._hold("checkpoint")
        if not shard.version:
            current = self.store.create(obj) or self.store.get(name)
            shard.version = (current or {}).get("metadata", {}).get("resourceVersion", "")
        self._hook("before_checkpoint", name)
        written = self.store.patch_status(name, status, shard.version, answer=False)
        if written is None:
            self.metrics.fenced.inc(step="checkpoint")
            log.warning("checkpoint shard written by another instance", extra={"shard": name})
            raise Superseded(name)
        shard.version = written["metadata"].get("resourceVersion") or ""

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

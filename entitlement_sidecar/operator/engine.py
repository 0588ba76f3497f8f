"""The metering engine: watch observations in, one tick of the close/send loop at a time.

`observe()` is called by the kopf watch handlers for every Deployment/StatefulSet/DaemonSet
event; it only updates the in-memory `Accumulator`. `tick()` is the hourly machinery, driven every
`TICK_SECONDS` by a background task in production and called directly with a fake clock in tests:

    1. hold the Lease, or do nothing (only the holder writes the ledger or calls AWS; an
       instance takes it only once its watch has listed every workload);
    2. on becoming the holder, resume the accumulating hours from the ledger checkpoints;
    3. checkpoint the accumulating hours (every CHECKPOINT_SECONDS, and always before a close);
    4. close completed hours: write-ahead each dimension's final request (Pending);
    5. send what is due (Pending/Sending), expire what left the 6-hour window;
    6. refresh the gauges, label finished hours, delete those past retention (and, hourly,
       checkpoint pieces nothing names).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.accounting import HOUR, Accumulator, ClosedHour
from entitlement_sidecar.operator.annotations import PREFIX, WorkloadRef, parse
from entitlement_sidecar.operator.checkpoints import Checkpointer, Superseded
from entitlement_sidecar.operator.ledger import FINAL, UNSENT, HourRecord, Phase
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.pieces import Pieces
from entitlement_sidecar.operator.sender import Sender
from entitlement_sidecar.operator.store import Lease, LedgerStore

log = logging.getLogger(__name__)
# A resume later than this after the last checkpoint is an outage, not a restart: an Event.
GAP_ALERT = timedelta(minutes=10)


class LeaseLost(Exception):
    """The Lease lapsed mid-tick; `step` is the write that was not made."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


@dataclass
class Engine:
    """The operator's state and its one-step loop (all collaborators injected)."""

    sender: Sender
    store: LedgerStore
    lease: Lease
    metrics: Metrics
    now: Callable[[], datetime]
    dimensions: frozenset[str]
    tag_keys: frozenset[str] = frozenset()
    checkpoint_interval: timedelta = timedelta(seconds=60)
    retention: timedelta | None = timedelta(days=90)
    wall: Callable[[], float] = time.time  # for the liveness stamp only, never for billing
    ready: Callable[[], bool] = field(default=lambda: True)  # every workload listed once
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _accumulator: Accumulator = field(init=False)
    _checkpoints: Checkpointer = field(init=False)
    _leader: bool = field(default=False, init=False)
    _last_checkpoint: datetime | None = field(default=None, init=False)
    _warned: dict[str, str] = field(default_factory=dict, init=False)
    _last_retention: datetime | None = field(default=None, init=False)
    _last_sweep: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._accumulator = Accumulator(self.now())
        self._checkpoints = self._new_checkpointer()

    def observe(
        self, ref: WorkloadRef, notes: Mapping[str, str], status: Mapping[str, Any], *, gone: bool
    ) -> tuple[str, ...]:
        """Record a workload's state from now on; return problems not yet reported for it."""
        parsed = (
            None
            if gone
            else parse(ref.kind, notes, status, dimensions=self.dimensions, tag_keys=self.tag_keys)
        )
        key = sys.intern(ref.key)  # held once, by the watcher and the accumulator alike
        with self._lock:
            if parsed is None:
                self._accumulator.observe(key, None, (), self.now())
            else:
                self._accumulator.observe(key, parsed.rates, parsed.tags, self.now())
            problems = parsed.problems if parsed is not None else ()
            seen = repr(sorted((k, v) for k, v in notes.items() if k.startswith(PREFIX)))
            if not problems or gone:
                self._warned.pop(key, None)
                return ()
            if self._warned.get(key) == seen:
                return ()
            self._warned[key] = seen
        self.metrics.invalid_annotations.inc(len(problems), kind=ref.kind)
        return problems

    def tick(self) -> None:
        """One run of the close/send loop at `now()` (see the module docstring); a completed run
        stamps `last_tick_timestamp_seconds` with the wall clock (a failed one does not)."""
        self._tick()
        self.metrics.last_tick.set(self.wall())

    def _tick(self) -> None:
        now = self.now()
        holder = (self._leader or self.ready()) and self.lease.acquire()
        self.metrics.leader.set(1.0 if holder else 0.0)
        if not holder:
            self._leader = False
            with self._lock:  # a standby keeps observing but holds no finished hours
                self._accumulator.close(now)
            return
        try:
            self._lead(now)
        except (LeaseLost, Superseded) as lost:  # a long or stalled tick: the holder carries on
            self.metrics.fenced.inc(step="tick")
            log.warning(
                "the Lease lapsed during the tick (this instance stalled); stopped: %s", lost
            )
            self._leader = False

    def _lead(self, now: datetime) -> None:
        objects = self._open_objects()
        if not self._leader:
            self._resume(objects, now)
        known = {obj["metadata"]["name"]: ledger.decode(obj) for obj in objects}
        closed = self._checkpoint_and_close(now, known)
        for index, (hour, usage) in enumerate(closed):
            try:
                dimensions = set(usage) | self._checkpoints.dimensions(hour)
                dimensions |= self.dimensions if self.sender.send_zero else set()
                for dimension in sorted(dimensions):
                    self._hold("write_ahead")
                    self.sender.finalize(dimension, hour, usage.get(dimension, {}))
            except BaseException:
                with self._lock:  # finalize is idempotent: give the hours back, retry next tick
                    self._accumulator.restore_hours(dict(closed[index:]))
                raise
            self._checkpoints.closed(hour)
        self._hold("sending")
        records = [ledger.decode(obj) for obj in (self._open_objects() if closed else objects)]
        sent = [self._send(record) if record.phase in UNSENT else record for record in records]
        self._housekeeping([record for record in sent if record is not None], now)

    def _hold(self, step: str) -> None:
        """Before a ledger write: renew the Lease once half of it has run (a long tick keeps it;
        a renewal succeeds only if nobody took it over), and stop the tick once it has lapsed
        (the resourceVersion precondition catches what slips between this check and the write)."""
        if not self.lease.valid(self.lease.duration / 2) and not self.lease.acquire():
            raise LeaseLost(step)
        if not self.lease.valid(timedelta(0)):
            raise LeaseLost(step)

    def _send(self, record: HourRecord) -> HourRecord | None:
        """Send one hour; a failure of this one (say, the API server refusing a patch) is logged
        and retried next tick without holding back the other hours."""
        try:
            phase = self.sender.send(record)
        except Exception:
            log.exception(
                "sending an hour failed; retrying next tick", extra={"hour_usage": record.name}
            )
            self.metrics.tick_errors.inc()
            return record
        return replace(record, phase=phase) if phase is not None else None

    def shutdown(self) -> None:
        """On SIGTERM: checkpoint what was observed up to now and release the Lease, so a
        replacement resumes at once and loses only the time it took to start."""
        if not self._leader or not self.lease.acquire():  # renewed, unless another took over
            return
        now = self.now()
        known = {obj["metadata"]["name"]: ledger.decode(obj) for obj in self._open_objects()}
        try:
            self._checkpoints.write(self._accumulator, now, known)
        except (LeaseLost, Superseded):
            log.warning("the Lease had lapsed: no final checkpoint (the holder's stands)")
        self._leader = False
        self.lease.release()
        log.info("checkpointed and released the Lease")

    def current_rates(self) -> dict[str, Mapping[str, Any]]:
        """Workload key -> rates in force (tests and metrics)."""
        with self._lock:
            return dict(self._accumulator.current_rates())

    def _resume(self, objects: list[dict[str, Any]], now: datetime) -> None:
        records = [ledger.decode(obj) for obj in objects]
        self._checkpoints = self._new_checkpointer()
        hours = self._checkpoints.resume(self._accumulator, records, now)
        self._leader = True
        self._last_sweep = now
        self._last_checkpoint = now
        log.info("holding the Lease; resumed accumulating hours", extra={"hours": len(hours)})
        self._report_gap(records, objects, now)

    def _step(self, point: str, name: str) -> None:
        """Between two checkpoint writes: the sender's hook as it is now (tests swap it)."""
        self.sender.hook(point, name)

    def _new_checkpointer(self) -> Checkpointer:
        pieces = Pieces(
            self.store,
            product_code=self.sender.product_code,
            identity=self.sender.identity,
            metrics=self.metrics,
            hold=self._hold,
            hook=self._step,
        )
        return Checkpointer(pieces, lock=self._lock)

    def _report_gap(
        self, records: list[HourRecord], objects: list[dict[str, Any]], now: datetime
    ) -> None:
        """Count (and past GAP_ALERT, alert on) the time between the last checkpoint and this
        resume: usage in it was observed by nobody and is not billed."""
        seen = [
            (r.observed_until, i)
            for i, r in enumerate(records)
            if r.phase is Phase.ACCUMULATING and r.observed_until  # closed ones stop at hour end
        ]
        if not seen:
            return
        last, index = max(seen)
        gap = now - last
        if gap <= timedelta(0):
            return
        self.metrics.unobserved.inc(gap.total_seconds())
        if gap < GAP_ALERT:
            return
        text = (
            f"no operator observed workloads from {ledger.to_time(last)} to {ledger.to_time(now)}"
            f" ({gap.total_seconds() / 3600:.1f} h): usage in that time is not billed"
        )
        log.warning(
            "observation gap", extra={"since": ledger.to_time(last), "seconds": gap.total_seconds()}
        )
        self.sender.events.warn(dict(objects[index]), "ObservationGap", text, now)

    def _checkpoint_and_close(
        self, now: datetime, known: Mapping[str, HourRecord]
    ) -> list[tuple[datetime, ClosedHour]]:
        """Checkpoint when due (and always before an hour is closed), then close what ended."""
        with self._lock:
            held = self._accumulator.hours(now)
        due = (
            self._last_checkpoint is None or now - self._last_checkpoint >= self.checkpoint_interval
        )
        if due or any(hour + HOUR <= now for hour in held):
            try:
                self._checkpoints.write(self._accumulator, now, known)
                self._last_checkpoint = now
            except (LeaseLost, Superseded):
                raise
            except Exception:  # the API server refusing a write: closing and sending go on
                log.exception("checkpoint failed; closing and sending go on")
                self.metrics.tick_errors.inc()
        with self._lock:
            return self._accumulator.close(now)

    def _open_objects(self) -> list[dict[str, Any]]:
        """The open ledger objects of this product (one list per tick)."""
        product = self.sender.product_code
        objects = self.store.list(open_only=True)
        return [obj for obj in objects if (obj.get("spec") or {}).get("productCode") == product]

    def _housekeeping(self, records: list[HourRecord], now: datetime) -> None:
        records = [self._settle_empty(record, now) for record in records]
        counts: dict[str, float] = {phase.value: 0.0 for phase in Phase}
        for record in records:
            counts[record.phase.value] += 1
            if record.phase in FINAL and record.open_label:
                self.store.mark_closed(record.name)
        self.metrics.hours.replace(({"phase": phase}, n) for phase, n in counts.items())
        unsent = [r.hour for r in records if r.phase in UNSENT]
        oldest = min(unsent, default=None)
        self.metrics.oldest_unsent_age.set((now - oldest).total_seconds() if oldest else 0.0)
        self.metrics.oldest_unsent_deadline.replace(
            [({}, (ledger.deadline(oldest) - now).total_seconds())] if oldest else []
        )
        with self._lock:
            metered = self._accumulator.metered()
        self.metrics.workloads.replace(
            ({"dimension": d}, float(metered.get(d, 0))) for d in sorted(self.dimensions)
        )
        last = self._last_retention
        if self.retention is not None and (last is None or now - last >= HOUR):
            self._last_retention = now
            self._expire_old(now - self.retention)
        if self._last_sweep is not None and now - self._last_sweep >= HOUR:
            self._last_sweep = now
            self._checkpoints.sweep()

    def _settle_empty(self, record: HourRecord, now: datetime) -> HourRecord:
        """A completed hour still Accumulating without any checkpoint (its writer died between
        creating the object and the first status patch) has no usage to send: Skipped, so it
        stops being listed and retention can delete it."""
        if (
            record.phase is not Phase.ACCUMULATING
            or record.observed_until is not None
            or record.hour + HOUR > now
        ):
            return record
        with self._lock:
            if record.hour in self._accumulator.hours(now):
                return record
        status = {"phase": Phase.SKIPPED.value, "quantity": "0"}
        if self.store.patch_status(record.name, status, record.version) is None:
            return record  # someone else wrote it: look again next tick
        return replace(record, phase=Phase.SKIPPED)

    def _expire_old(self, before: datetime) -> None:
        """Delete finished hours older than `before`, with their allocation parts."""
        for obj in self.store.list(open_only=False):
            record = ledger.decode(obj)
            if record.phase in FINAL and record.hour + HOUR <= before:
                for part in self.store.select(f"{ledger.PART_LABEL}={record.name}"):
                    self.store.delete(part["metadata"]["name"])
                self.store.delete(record.name)

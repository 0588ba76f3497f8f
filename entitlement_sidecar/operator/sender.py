"""The write-ahead send sequence: close an hour into the ledger, then send it exactly once.

    finalize: split the usage, write quantity + allocations + ClientToken (Pending)  [write-ahead]
    send:     Pending --claim (owner, attempts)--> Sending, re-read, MeterUsage, Sent + record id

Every request is rebuilt from the ledger object as read back, so a resend after a crash is
identical (same quantity, allocations, ClientToken). A `Sending` hour found at the start of a send
means an instance crashed after claiming it: the call may or may not have reached AWS. It is sent
again with the same ClientToken, marked `resent`, and counted (the ambiguous case). Transient
errors go back to Pending with a backoff; permanent ones end in Failed with the AWS code and an
Event; an hour still unsent at the window's deadline minus a safety margin ends in Expired.
What to do with an hour is decided by `decision.decide()`; this module only carries it out.

`hook(point, name)` is called between the steps so tests can stop the sequence anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from entitlement_sidecar.aws.metering import MeterRequest, meter_usage
from entitlement_sidecar.errors import PermanentError, TransientError
from entitlement_sidecar.operator import ledger, shards
from entitlement_sidecar.operator.accounting import HOUR, WorkloadUsage
from entitlement_sidecar.operator.allocation import Split, client_token, split
from entitlement_sidecar.operator.decision import Action, decide
from entitlement_sidecar.operator.ledger import FINAL, HourRecord, Phase
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.store import EventSink, LedgerStore
from entitlement_sidecar.retry import Backoff

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

log = logging.getLogger(__name__)
Hook = Callable[[str, str], None]


def no_hook(point: str, name: str) -> None:
    """The production hook: do nothing between steps."""


# Conflicts (another writer changed the hour since it was read) re-read and decide again this
# many times within one tick; more means a live competitor: the next tick looks again.
ATTEMPTS = 3


@dataclass
class Sender:
    """Finalizes hours into the ledger and sends them (one instance: the Lease holder)."""

    store: LedgerStore
    events: EventSink
    client: MarketplaceMeteringClient
    metrics: Metrics
    identity: str
    now: Callable[[], datetime]
    rng: Callable[[], float]
    product_code: str
    holds_lease: Callable[[], bool]
    dry_run: bool = False
    send_zero: bool = False
    jitter: timedelta = timedelta(minutes=5)
    margin: timedelta = timedelta(minutes=10)
    grace: timedelta = timedelta(minutes=5)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=15.0, maximum=600.0))
    hook: Hook = no_hook

    def finalize(self, dimension: str, hour: datetime, usage: Mapping[str, WorkloadUsage]) -> None:
        """Write the hour's final request (Pending), unless its object is already past that."""
        name = ledger.object_name(self.product_code, dimension, hour)
        result = split(usage)
        if result.dropped_tag_keys:
            log.warning(
                "more than 5 tag keys in one hour (TAG_KEYS changed?); dropped some",
                extra={"hour_usage": name, "dropped": list(result.dropped_tag_keys)},
            )
        send_after = hour + HOUR + max(ledger.MIN_SEND_DELAY, self.jitter * self.rng())
        parts = shards.chunks(shards.allocation_documents(result.allocations))
        for _ in range(ATTEMPTS):
            obj = self.store.get(name)
            if obj is None and (result.quantity or self.send_zero):
                fresh = ledger.new_object(self.product_code, dimension, hour, self.store.namespace)
                obj = self.store.create(fresh) or self.store.get(name)
            if obj is None:
                return  # nothing used, nothing to send, nothing recorded
            record = ledger.decode(obj)
            if record.phase is not Phase.ACCUMULATING:
                return
            if not result.quantity and not self.send_zero:
                status = {"phase": Phase.SKIPPED.value, "quantity": "0", "shards": None}
            else:
                try:
                    token = client_token(self.product_code, dimension, hour, result)
                    status = ledger.pending_status(
                        result,
                        token,
                        dry_run=self.dry_run,
                        send_after=send_after,
                        hour=hour,
                        parts=parts,
                    )
                except ValueError as error:  # a request AWS would refuse (over 10 digits)
                    if self._finish(record, Phase.FAILED, "InvalidRequest", str(error)):
                        return
                    continue
                if len(parts) > 1:
                    self._write_parts(record, token, parts)
            self.hook("before_write_ahead", name)
            if self._write(record, status, "write_ahead") is not None:
                log.info("hour closed", extra={"hour_usage": name, "quantity": status["quantity"]})
                self.hook("after_write_ahead", name)
                return
        raise RuntimeError(f"{name}: changed by another writer on every attempt; next tick")

    def _write_parts(self, record: HourRecord, token: str, parts: list[list[Any]]) -> None:
        """Allocation parts, before the commit that names them. A part is named by the
        ClientToken, so whoever writes a part of that name writes exactly these allocations."""
        for index, documents in enumerate(parts, start=1):
            obj = ledger.part_object(record, token, index, self.store.namespace)
            if self.store.get(obj["metadata"]["name"]) is None:
                self.store.create(obj)
            self.store.patch_status(obj["metadata"]["name"], {"allocations": documents}, "")

    def send(self, record: HourRecord | None) -> Phase | None:
        """Carry out `decide()` for one hour (re-reading and deciding again after a conflict);
        return its phase now, None if it is gone."""
        for _ in range(ATTEMPTS):
            if record is None:
                return None
            now = self.now()
            decision = decide(record, now, self.margin, me=self.identity, grace=self.grace)
            if decision.action is Action.EXPIRE:
                if self._finish(record, Phase.EXPIRED, "WindowExpired", decision.message):
                    return Phase.EXPIRED
            elif decision.action in {Action.SEND, Action.RESEND}:
                self.hook("before_claim", record.name)
                claimed = self._claim(record, ambiguous=record.owner != self.identity)
                if claimed is not None:
                    return self._call(claimed, now)
            else:
                return record.phase
            record = self._reread(record.name)
        return record.phase if record is not None else None

    def _claim(self, record: HourRecord, *, ambiguous: bool) -> HourRecord | None:
        """Pending/Sending -> Sending owned by us, only if nobody wrote the object since we read
        it (resourceVersion precondition); the object as written is the request we send."""
        resend = record.phase is Phase.SENDING
        claim = {
            "phase": Phase.SENDING.value,
            "owner": self.identity,
            "claimedAt": ledger.to_time(self.now()),
            "attempts": record.attempts + 1,
            "resent": record.resent or (resend and ambiguous),
        }
        obj = self._write(record, claim, "claim")
        if obj is None:
            return None
        self.hook("after_claim", record.name)
        if resend and ambiguous:
            self.metrics.ambiguous_resends.inc(dimension=record.dimension)
            log.warning(
                "resending an hour whose outcome was not recorded (same ClientToken)",
                extra={"hour_usage": record.name, "previous_owner": record.owner},
            )
        return ledger.decode(obj)

    def _call(self, claimed: HourRecord, now: datetime) -> Phase:
        """MeterUsage with the claimed request, if the Lease still runs past the margin; then
        its outcome into the ledger (conditioned on the claim)."""
        if not self.holds_lease():
            self.metrics.fenced.inc(step="call")
            log.warning(
                "the Lease lapsed before the call (this instance stalled): not sent, claim given "
                "back",
                extra={"hour_usage": claimed.name},
            )
            self._write(claimed, {"phase": Phase.PENDING.value}, "release")
            return claimed.phase
        request = self._request(claimed)
        if request is None:
            return Phase.FAILED
        try:
            record_id = meter_usage(self.client, request)
        except TransientError as error:
            self._retry_later(claimed, error, now)
            return Phase.PENDING
        except PermanentError as error:
            self._finish(claimed, Phase.FAILED, error.code, error.message)
            return Phase.FAILED
        self.hook("after_call", claimed.name)
        return self._record_sent(claimed, record_id)

    def _request(self, claimed: HourRecord) -> MeterRequest | None:
        """The claimed request with its allocations (from its parts, for a large hour), checked
        against its ClientToken, the hash of the whole request fixed at the write-ahead."""
        documents: list[Any] = []
        for index in range(1, claimed.allocation_parts + 1):
            part = self.store.get(ledger.part_name(claimed.name, claimed.client_token, index))
            documents.extend(((part or {}).get("status") or {}).get("allocations") or ())
        if claimed.allocation_parts:
            claimed = replace(claimed, allocations=ledger.allocations_of(documents))
        result = Split(claimed.quantity or Decimal(0), claimed.allocations, 0)
        token = client_token(claimed.product_code, claimed.dimension, claimed.hour, result)
        if token != claimed.client_token:
            message = "the ledger's allocations do not match the write-ahead ClientToken"
            self._finish(claimed, Phase.FAILED, "InvalidRequest", message)
            return None
        return claimed.request()

    def _record_sent(self, claimed: HourRecord, record_id: str) -> Phase:
        phase = Phase.DRY_RUN if claimed.dry_run else Phase.SENT
        late = not self.holds_lease()
        written = self._write(
            claimed,
            {
                "phase": phase.value,
                "meteringRecordId": record_id,
                "sentAt": ledger.to_time(self.now()),
                "errorCode": None,
                "message": None,
                "nextAttemptAt": None,
            },
            "outcome",
        )
        if written is None:
            log.error(
                "MeterUsage accepted this instance's call, but another instance settled the hour "
                "meanwhile: compare its record with this one",
                extra={"hour_usage": claimed.name, "record_id": record_id},
            )
            return claimed.phase
        if late:
            self.metrics.fenced.inc(step="late_outcome")
            log.warning(
                "recorded the outcome of a call made before the Lease lapsed",
                extra={"hour_usage": claimed.name, "record_id": record_id},
            )
        self.metrics.sends.inc(dimension=claimed.dimension, result=phase.value)
        quantity = float(claimed.quantity or 0)
        self.metrics.sent_quantity.inc(quantity, dimension=claimed.dimension, result=phase.value)
        log.info("hour sent", extra={"hour_usage": claimed.name, "record_id": record_id})
        return phase

    def _retry_later(self, record: HourRecord, error: TransientError, now: datetime) -> None:
        delay = timedelta(seconds=self.backoff.cap(record.attempts) * (0.5 + 0.5 * self.rng()))
        status = {
            "phase": Phase.PENDING.value,
            "errorCode": error.code,
            "message": error.message[:512],
            "nextAttemptAt": ledger.to_time(now + delay),
        }
        if self._write(record, status, "outcome") is None:
            return
        self.metrics.sends.inc(dimension=record.dimension, result="Transient")
        log.warning(
            "transient MeterUsage failure; will retry",
            extra={"hour_usage": record.name, "code": error.code, "delay": delay.total_seconds()},
        )

    def _finish(self, record: HourRecord, phase: Phase, code: str, message: str) -> bool:
        """Record a final failure (Failed, Expired) with an Event; False after a conflict."""
        status = {"phase": phase.value, "errorCode": code, "message": message[:512]}
        obj = self._write(record, status, "outcome")
        if obj is None:
            return False
        self.metrics.sends.inc(dimension=record.dimension, result=phase.value)
        text = f"{record.dimension} {ledger.to_time(record.hour)}: {code}: {message}"
        log.error(
            "hour not billed", extra={"hour_usage": record.name, "code": code, "phase": phase.value}
        )
        self.events.warn(obj, f"Hour{phase.value}", text, self.now())
        return True

    def _write(
        self, record: HourRecord, status: dict[str, Any], step: str
    ) -> dict[str, Any] | None:
        """One status transition from `record` as read, conditioned on its resourceVersion: the
        object as written, or None (counted, logged) when another writer got there first. A final
        phase is never left: no transition starts from one."""
        if record.phase in FINAL:
            raise ValueError(f"{record.name} is {record.phase.value}: a final phase is never left")
        obj = self.store.patch_status(record.name, status, record.version)
        if obj is None:
            self.metrics.fenced.inc(step=step)
            log.warning(
                "hour changed by another writer since it was read; not written",
                extra={"hour_usage": record.name, "step": step, "owner": record.owner},
            )
        return obj

    def _reread(self, name: str) -> HourRecord | None:
        obj = self.store.get(name)
        return ledger.decode(obj) if obj is not None else None

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from entitlement_sidecar.aws.metering import meter_usage
from entitlement_sidecar.errors import PermanentError, TransientError
from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.accounting import HOUR, WorkloadUsage
from entitlement_sidecar.operator.allocation import client_token, split
from entitlement_sidecar.operator.decision import Action, decide
from entitlement_sidecar.operator.ledger import HourRecord, Phase
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.store import EventSink, LedgerStore
from entitlement_sidecar.retry import Backoff

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

log = logging.getLogger(__name__)
Hook = Callable[[str, str], None]


def no_hook(point: str, name: str) -> None:
    """The production hook: do nothing between steps."""


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
    dry_run: bool = False
    send_zero: bool = False
    jitter: timedelta = timedelta(minutes=5)
    margin: timedelta = timedelta(minutes=10)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=15.0, maximum=600.0))
    hook: Hook = no_hook

    def finalize(self, dimension: str, hour: datetime, usage: Mapping[str, WorkloadUsage]) -> None:
        """Write the hour's final request (Pending), unless its object is already past that."""
        name = ledger.object_name(self.product_code, dimension, hour)
        obj = self.store.get(name)
        if obj is not None and ledger.decode(obj).phase is not Phase.ACCUMULATING:
            return
        result = split(usage)
        if result.dropped_tag_keys:
            log.warning(
                "more than 5 tag keys in one hour (TAG_KEYS changed?); dropped some",
                extra={"hour_usage": name, "dropped": list(result.dropped_tag_keys)},
            )
        if not result.quantity and not self.send_zero:
            if obj is not None:
                self.store.patch_status(name, {"phase": Phase.SKIPPED.value, "quantity": "0"})
            return
        fresh = ledger.new_object(self.product_code, dimension, hour, self.store.namespace)
        if obj is None:
            self.store.create(fresh)
        send_after = hour + HOUR + max(ledger.MIN_SEND_DELAY, self.jitter * self.rng())
        try:
            token = client_token(self.product_code, dimension, hour, result)
            status = ledger.pending_status(
                result, token, dry_run=self.dry_run, send_after=send_after, hour=hour
            )
        except ValueError as error:  # a request AWS would refuse (a total over 10 digits)
            self._finish(ledger.decode(fresh), Phase.FAILED, "InvalidRequest", str(error))
            return
        self.hook("before_write_ahead", name)
        self.store.patch_status(name, status)
        log.info("hour closed", extra={"hour_usage": name, "quantity": status["quantity"]})
        self.hook("after_write_ahead", name)

    def send(self, record: HourRecord) -> Phase:
        """Carry out `decide()` for one hour; return its phase now."""
        now = self.now()
        decision = decide(record, now, self.margin)
        if decision.action is Action.EXPIRE:
            self._finish(record, Phase.EXPIRED, "WindowExpired", decision.message)
            return Phase.EXPIRED
        if decision.action not in {Action.SEND, Action.RESEND}:
            return record.phase
        ambiguous = decision.action is Action.RESEND
        claimed = self._claim(record, ambiguous)
        if claimed is None:
            return record.phase
        self.hook("after_claim", record.name)
        if ambiguous:
            self.metrics.ambiguous_resends.inc(dimension=record.dimension)
            log.warning(
                "resending an hour whose outcome was not recorded (same ClientToken)",
                extra={"hour_usage": record.name, "previous_owner": record.owner},
            )
        return self._call(claimed, now)

    def _call(self, claimed: HourRecord, now: datetime) -> Phase:
        """MeterUsage with the claimed (re-read) request, then its outcome into the ledger."""
        try:
            record_id = meter_usage(self.client, claimed.request())
        except TransientError as error:
            self._retry_later(claimed, error, now)
            return Phase.PENDING
        except PermanentError as error:
            self._finish(claimed, Phase.FAILED, error.code, error.message)
            return Phase.FAILED
        record = claimed
        self.hook("after_call", record.name)
        phase = Phase.DRY_RUN if claimed.dry_run else Phase.SENT
        self.store.patch_status(
            record.name,
            {
                "phase": phase.value,
                "meteringRecordId": record_id,
                "sentAt": ledger.to_time(self.now()),
                "errorCode": None,
                "message": None,
                "nextAttemptAt": None,
            },
        )
        self.metrics.sends.inc(dimension=record.dimension, result=phase.value)
        log.info("hour sent", extra={"hour_usage": record.name, "record_id": record_id})
        return phase

    def _claim(self, record: HourRecord, ambiguous: bool) -> HourRecord | None:
        """Pending/Sending -> Sending owned by us, only if nobody wrote the object since we read
        it (resourceVersion precondition); the re-read proves the claim is ours."""
        claim = {
            "phase": Phase.SENDING.value,
            "owner": self.identity,
            "attempts": record.attempts + 1,
            "resent": record.resent or ambiguous,
        }
        obj = None
        if self.store.claim_status(record.name, claim, record.version):
            obj = self.store.get(record.name)
        if obj is None:
            log.warning(
                "hour changed by another writer; not sent", extra={"hour_usage": record.name}
            )
            return None
        claimed = ledger.decode(obj)
        if claimed.phase is not Phase.SENDING or claimed.owner != self.identity:
            log.warning("hour claimed by another instance", extra={"hour_usage": record.name})
            return None
        return claimed

    def _retry_later(self, record: HourRecord, error: TransientError, now: datetime) -> None:
        delay = timedelta(seconds=self.backoff.cap(record.attempts) * (0.5 + 0.5 * self.rng()))
        self.store.patch_status(
            record.name,
            {
                "phase": Phase.PENDING.value,
                "errorCode": error.code,
                "message": error.message[:512],
                "nextAttemptAt": ledger.to_time(now + delay),
            },
        )
        self.metrics.sends.inc(dimension=record.dimension, result="Transient")
        log.warning(
            "transient MeterUsage failure; will retry",
            extra={"hour_usage": record.name, "code": error.code, "delay": delay.total_seconds()},
        )

    def _finish(self, record: HourRecord, phase: Phase, code: str, message: str) -> None:
        obj = self.store.patch_status(
            record.name,
            {
                "phase": phase.value,
                "errorCode": code,
                "message": message[:512],
            },
        )
        self.metrics.sends.inc(dimension=record.dimension, result=phase.value)
        text = f"{record.dimension} {ledger.to_time(record.hour)}: {code}: {message}"
        log.error(
            "hour not billed", extra={"hour_usage": record.name, "code": code, "phase": phase.value}
        )
        self.events.warn(
            _ref(obj, record.name, self.store.namespace), f"Hour{phase.value}", text, self.now()
        )


def _ref(obj: Mapping[str, Any] | None, name: str, namespace: str) -> dict[str, Any]:
    if obj and "metadata" in obj:
        return dict(obj)
    return {
        "apiVersion": ledger.API_VERSION,
        "kind": ledger.KIND,
        "metadata": {"name": name, "namespace": namespace},
    }

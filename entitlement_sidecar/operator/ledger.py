"""The ledger's data model: HourlyUsage objects <-> domain values, and the phase rules.

One HourlyUsage per (product, dimension, UTC hour), named deterministically so any operator
instance finds the same object. Its life:

    Accumulating --close--> Pending --claim--> Sending --call ok--> Sent | DryRun
         |                     ^                  |--permanent error--> Failed
         `--zero, not sent--> Skipped              `--transient error--> Pending (backoff)
    Pending/Sending past the window's deadline --> Expired (alert)

The write-ahead `Pending` status carries the final quantity, allocations and ClientToken, so a
restarted operator resends the identical request. Everything here is pure: dicts in, dicts out;
`store.py` does the HTTP.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.metering import Allocation, MeterRequest, format_quantity
from entitlement_sidecar.operator.accounting import HourUsage, WorkloadUsage
from entitlement_sidecar.operator.allocation import Split

GROUP = "metering.entitlement-sidecar.io"
VERSION = "v1alpha1"
PLURAL = "hourlyusages"
KIND = "HourlyUsage"
API_VERSION = f"{GROUP}/{VERSION}"
# Label selecting the hours the send loop still has to look at (a hint; the phase decides).
OPEN_LABEL = f"{GROUP}/open"
# Never send earlier than this after an hour ends (see `report_timestamp`).
MIN_SEND_DELAY = timedelta(seconds=60)
# AWS accepts a record at most this long after its hour's timestamp.
WINDOW = timedelta(seconds=rules.METER_WINDOW_SECONDS)


class Phase(StrEnum):
    """Where an hour is in its lifecycle (see the module docstring)."""

    ACCUMULATING = "Accumulating"
    PENDING = "Pending"
    SENDING = "Sending"
    SENT = "Sent"
    DRY_RUN = "DryRun"
    SKIPPED = "Skipped"
    FAILED = "Failed"
    EXPIRED = "Expired"


FINAL = frozenset({Phase.SENT, Phase.DRY_RUN, Phase.SKIPPED, Phase.FAILED, Phase.EXPIRED})
UNSENT = frozenset({Phase.PENDING, Phase.SENDING})


def report_timestamp(hour: datetime) -> datetime:
    """The MeterUsage Timestamp of `hour`: its last second. AWS rounds it down to the hour, it is
    never before usage it reports (AWS: not before the start of the software usage), and it is
    sent at least `MIN_SEND_DELAY` after the hour ends, so a small clock skew cannot make it lie
    in the future."""
    return hour + timedelta(hours=1, seconds=-1)


def deadline(hour: datetime) -> datetime:
    """When AWS stops accepting `hour`: 6 hours after its reported timestamp."""
    return report_timestamp(hour) + WINDOW


def object_name(product_code: str, dimension: str, hour: datetime) -> str:
    """`<dimension-slug>-<yyyymmddhh>-<hash>`: deterministic, a valid Kubernetes name."""
    slug = re.sub(r"[^a-z0-9]+", "-", dimension.lower()).strip("-")[:40].strip("-") or "dim"
    stamp = hour.astimezone(UTC).strftime("%Y%m%d%H")
    digest = hashlib.sha256(f"{product_code}\n{dimension}\n{stamp}".encode()).hexdigest()[:10]
    return f"{slug}-{stamp}-{digest}"


def to_time(moment: datetime) -> str:
    """RFC 3339 UTC with a Z, to the microsecond when needed."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class HourRecord:
    """One ledger object, decoded."""

    name: str
    product_code: str
    dimension: str
    hour: datetime
    phase: Phase
    workloads: Mapping[str, WorkloadUsage] = field(default_factory=dict)
    quantity: Decimal | None = None
    allocations: tuple[Allocation, ...] = ()
    client_token: str = ""
    dry_run: bool = False
    send_after: datetime | None = None
    next_attempt_at: datetime | None = None
    owner: str = ""
    claimed_at: datetime | None = None
    attempts: int = 0
    resent: bool = False
    record_id: str = ""
    error_code: str = ""
    open_label: bool = True
    version: str = ""
    observed_until: datetime | None = None

    @property
    def deadline(self) -> datetime:
        return deadline(self.hour)

    def request(self) -> MeterRequest:
        """The write-ahead MeterUsage request (only for Pending/Sending records)."""
        if self.quantity is None or not self.client_token:
            raise ValueError(f"{self.name} has no write-ahead request")
        return MeterRequest(
            product_code=self.product_code,
            timestamp=report_timestamp(self.hour),
            dimension=self.dimension,
            quantity=self.quantity,
            client_token=self.client_token,
            allocations=self.allocations,
            dry_run=self.dry_run,
        )


def new_object(product_code: str, dimension: str, hour: datetime, namespace: str) -> dict[str, Any]:
    """A fresh HourlyUsage (spec only: the API server ignores status on create)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": object_name(product_code, dimension, hour),
            "namespace": namespace,
            "labels": {OPEN_LABEL: "true"},
        },
        "spec": {"productCode": product_code, "dimension": dimension, "hour": to_time(hour)},
    }


def decode(obj: Mapping[str, Any], *, workloads: bool = False) -> HourRecord:
    """The domain view of an HourlyUsage object (missing status = Accumulating, nothing yet).

    The per-workload checkpoint (up to one entry per workload) is decoded only on request."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    quantity = status.get("quantity")
    return HourRecord(
        name=obj["metadata"]["name"],
        product_code=spec["productCode"],
        dimension=spec["dimension"],
        hour=from_time(spec["hour"]),
        phase=Phase(status.get("phase") or Phase.ACCUMULATING),
        workloads={
            key: WorkloadUsage(Decimal(value["usage"]), _tags(value.get("tags")))
            for key, value in (status.get("workloads") or {}).items()
        }
        if workloads
        else {},
        quantity=Decimal(quantity) if quantity is not None else None,
        allocations=tuple(
            Allocation(Decimal(a["quantity"]), _tags(a.get("tags")))
            for a in status.get("allocations") or ()
        ),
        client_token=status.get("clientToken") or "",
        dry_run=bool(status.get("dryRun")),
        send_after=_maybe_time(status.get("sendAfter")),
        next_attempt_at=_maybe_time(status.get("nextAttemptAt")),
        owner=status.get("owner") or "",
        claimed_at=_maybe_time(status.get("claimedAt")),
        attempts=int(status.get("attempts") or 0),
        resent=bool(status.get("resent")),
        record_id=status.get("meteringRecordId") or "",
        error_code=status.get("errorCode") or "",
        open_label=(obj["metadata"].get("labels") or {}).get(OPEN_LABEL) != "false",
        version=obj["metadata"].get("resourceVersion") or "",
        observed_until=_maybe_time(status.get("observedUntil")),
    )


def checkpoint_status(
    usage: Mapping[str, WorkloadUsage], observed_until: datetime
) -> dict[str, Any]:
    """Status of an accumulating hour: per-workload usage so far."""
    return {
        "phase": Phase.ACCUMULATING.value,
        "observedUntil": to_time(observed_until),
        "workloads": {
            key: {"usage": _decimal_text(w.usage), "tags": dict(w.tags)} for key, w in usage.items()
        },
        "workloadCount": len(usage),
    }


def pending_status(
    result: Split, token: str, *, dry_run: bool, send_after: datetime, hour: datetime
) -> dict[str, Any]:
    """The write-ahead status: the final request, fixed before any call is made."""
    return {
        "phase": Phase.PENDING.value,
        "quantity": format_quantity(result.quantity),
        "allocations": [
            {"quantity": format_quantity(a.quantity), "tags": dict(a.tags)}
            for a in result.allocations
        ],
        "clientToken": token,
        "dryRun": dry_run,
        "sendAfter": to_time(send_after),
        "deadline": to_time(deadline(hour)),
        "workloadCount": result.workloads,
        "attempts": 0,
        "workloads": None,  # the allocations now carry the attribution; keep the object small
    }


def hours_from(records: list[HourRecord]) -> dict[datetime, HourUsage]:
    """Checkpointed usage of accumulating records, regrouped by hour and dimension."""
    hours: dict[datetime, HourUsage] = {}
    for record in records:
        if record.phase is Phase.ACCUMULATING and record.workloads:
            hours.setdefault(record.hour, {})[record.dimension] = dict(record.workloads)
    return hours


def _tags(raw: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((raw or {}).items()))


def _maybe_time(text: str | None) -> datetime | None:
    return from_time(text) if text else None


def _decimal_text(value: Decimal) -> str:
    """Up to 15 decimals, no exponent (precise enough for a checkpoint, readable by people)."""
    text = f"{value.quantize(Decimal('1e-15')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text

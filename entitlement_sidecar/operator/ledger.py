"""The ledger's data model: HourlyUsage objects <-> domain values, and the phase rules.

One HourlyUsage per (product, dimension, UTC hour), named deterministically so any operator
instance finds the same object (labelled `open`). Beside it, objects of the same kind carry what
would not fit one object: the checkpoint (`layout.py`: spec.checkpoint `root`, `base` or `log`,
labelled `checkpoint`, one set per product for all hours and dimensions; pieces are written once
and the root names those in force) and, for a large hour, its allocation parts (spec.part,
labelled `part-of`, named by the ClientToken so a stale writer's parts never replace the
committed ones). An hour's life:

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.metering import Allocation, MeterRequest, format_quantity
from entitlement_sidecar.operator.allocation import Split

GROUP = "metering.entitlement-sidecar.io"
VERSION = "v1alpha1"
PLURAL = "hourlyusages"
KIND = "HourlyUsage"
API_VERSION = f"{GROUP}/{VERSION}"
# Label selecting the hours the send loop still has to look at (a hint; the phase decides).
OPEN_LABEL = f"{GROUP}/open"
CHECKPOINT_LABEL = f"{GROUP}/checkpoint"  # on checkpoint objects: `checkpoint_key(product)`
PART_LABEL = f"{GROUP}/part-of"  # on allocation parts: the name of their hour object
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
    allocation_parts: int = 0
    shards: int = 0
    unobserved: tuple[tuple[datetime, datetime], ...] = ()

    @property
    def deadline(self) -> datetime:
        return deadline(self.hour)

    def request(self) -> MeterRequest:
        """The write-ahead MeterUsage request (only for Pending/Sending records, with the
        allocations of their parts loaded)."""
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


def decode(obj: Mapping[str, Any]) -> HourRecord:
    """The domain view of an HourlyUsage object (missing status = Accumulating, nothing yet)."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    quantity = status.get("quantity")
    return HourRecord(
        name=obj["metadata"]["name"],
        product_code=spec["productCode"],
        dimension=spec.get("dimension") or "",
        hour=from_time(spec["hour"]),
        phase=Phase(status.get("phase") or Phase.ACCUMULATING),
        quantity=Decimal(quantity) if quantity is not None else None,
        allocations=allocations_of(status.get("allocations") or ()),
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
        allocation_parts=int(status.get("allocationParts") or 0),
        shards=int(status.get("shards") or 0),
        unobserved=tuple(_interval(text) for text in status.get("unobserved") or ()),
    )


def allocations_of(documents: Iterable[Mapping[str, Any]]) -> tuple[Allocation, ...]:
    return tuple(Allocation(Decimal(a["quantity"]), _tags(a.get("tags"))) for a in documents)


def head_status(
    observed_until: datetime,
    pieces: int,
    workloads: int,
    unobserved: Sequence[tuple[datetime, datetime]] = (),
) -> dict[str, Any]:
    """Status of an accumulating hour: how far the checkpoint observes it, and the gaps in it
    nobody observed (RFC 3339 intervals `start/end`)."""
    return {
        "phase": Phase.ACCUMULATING.value,
        "observedUntil": to_time(observed_until),
        "shards": pieces,
        "workloadCount": workloads,
        "unobserved": [f"{to_time(a)}/{to_time(b)}" for a, b in unobserved] or None,
    }


def checkpoint_key(product_code: str) -> str:
    """The label value (and name stem) of a product's checkpoint objects."""
    return hashlib.sha256(f"{product_code}\ncheckpoint".encode()).hexdigest()[:10]


def root_name(product_code: str) -> str:
    """The checkpoint's root: it names the pieces in force."""
    return f"checkpoint-{checkpoint_key(product_code)}"


def root_object(product_code: str, namespace: str) -> dict[str, Any]:
    """A fresh checkpoint root (spec only; the pieces it names go in its status)."""
    return _checkpoint_object(product_code, root_name(product_code), "root", namespace)


def piece_object(
    product_code: str, name: str, kind: str, lines: Sequence[str], namespace: str
) -> dict[str, Any]:
    """A checkpoint piece (`kind` base or log): entry lines, written once, never changed."""
    obj = _checkpoint_object(product_code, name, kind, namespace)
    obj["spec"]["entries"] = list(lines)
    return obj


def _checkpoint_object(product_code: str, name: str, kind: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {CHECKPOINT_LABEL: checkpoint_key(product_code)},
        },
        "spec": {"productCode": product_code, "checkpoint": kind},
    }


def part_object(record: HourRecord, token: str, index: int, namespace: str) -> dict[str, Any]:
    """Allocation part `index` (1-based) of the request with ClientToken `token`."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": part_name(record.name, token, index),
            "namespace": namespace,
            "labels": {PART_LABEL: record.name},
        },
        "spec": {
            "productCode": record.product_code,
            "dimension": record.dimension,
            "hour": to_time(record.hour),
            "part": index,
        },
    }


def part_name(hour_name: str, token: str, index: int) -> str:
    return f"{hour_name}-{token[:10]}-{index}"


def pending_status(
    result: Split,
    token: str,
    *,
    dry_run: bool,
    send_after: datetime,
    hour: datetime,
    parts: Sequence[Sequence[Mapping[str, Any]]],
) -> dict[str, Any]:
    """The write-ahead status: the final request, fixed before any call is made. The
    allocations are inline when they fit one object, else in `len(parts)` part objects."""
    return {
        "phase": Phase.PENDING.value,
        "quantity": format_quantity(result.quantity),
        "allocations": list(parts[0]) if len(parts) == 1 else None,
        "allocationParts": len(parts) if len(parts) > 1 else None,
        "allocationCount": len(result.allocations),
        "clientToken": token,
        "dryRun": dry_run,
        "sendAfter": to_time(send_after),
        "deadline": to_time(deadline(hour)),
        "workloadCount": result.workloads,
        "attempts": 0,
        "shards": None,
    }


def _tags(raw: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((raw or {}).items()))


def _interval(text: str) -> tuple[datetime, datetime]:
    start, _, end = text.partition("/")
    return from_time(start), from_time(end)


def _maybe_time(text: str | None) -> datetime | None:
    return from_time(text) if text else None

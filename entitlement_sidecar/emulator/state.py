"""Everything the emulator remembers between requests, behind one lock.

Accepted metering records, registrations, idempotency tokens, token buckets, fault counters and
request counts live in `State`; handlers mutate it only while holding `State.lock` and never
sleep under it. `State.snapshot()` is what `GET /_emulator/records` returns.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from entitlement_sidecar.emulator.scenario import Fault, Scenario
from entitlement_sidecar.emulator.seats import LicenseBook
from entitlement_sidecar.emulator.signing import KeyRing
from entitlement_sidecar.emulator.sigv4 import Authorization

Tags = tuple[tuple[str, str], ...]
Allocations = tuple[tuple[Tags, Decimal], ...]


def decimal_text(value: Decimal) -> str:
    """A quantity as a plain decimal string compared by value: 17, 17.0 and 17.00 give "17"."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z suffix."""
    return moment.isoformat().replace("+00:00", "Z")


def _json_view(record: Any) -> dict[str, Any]:
    """A record's introspection view: ISO times, decimal strings, allocations as objects."""
    view: dict[str, Any] = {}
    for item in fields(record):
        value = getattr(record, item.name)
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, Decimal):
            value = decimal_text(value)
        elif item.name == "allocations":
            value = allocations_json(value)
        view[item.name] = value
    return view


@dataclass(frozen=True)
class MeterRecord:
    """One accepted MeterUsage record (one per caller, product, dimension and hour)."""

    caller: str
    account: str
    product_code: str
    dimension: str
    hour: datetime
    timestamp: datetime
    quantity: Decimal
    allocations: Allocations
    client_token: str | None
    metering_record_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    to_json = _json_view


@dataclass(frozen=True)
class BatchRecord:
    """One accepted BatchMeterUsage record (one per level, customer, dimension and hour)."""

    caller: str
    product_code: str
    customer: str
    customer_aws_account_id: str
    customer_identifier: str | None
    license_arn: str | None
    dimension: str
    hour: datetime
    timestamp: datetime
    quantity: Decimal
    allocations: Allocations
    also_billed_as: str | None = None
    metering_record_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    to_json = _json_view


def allocations_json(allocations: Allocations) -> list[dict[str, Any]]:
    """Allocations as `[{"quantity": "3", "tags": {"k": "v"}}]`."""
    return [{"quantity": decimal_text(q), "tags": dict(tags)} for tags, q in allocations]


@dataclass
class TokenBucket:
    """A classic token bucket: `rate` tokens per second, burst of max(rate, 1).

    A throttled call takes no token: AWS describes its API token buckets that way (each request
    takes a token; an empty bucket throttles), and the Metering quota page gives only the rates.
    """

    rate: float
    tokens: float
    last: float

    def take(self, monotonic_now: float) -> bool:
        """Spend one token if there is one."""
        burst = max(self.rate, 1.0)
        elapsed = max(0.0, monotonic_now - self.last)
        self.tokens = min(burst, self.tokens + elapsed * self.rate)
        self.last = monotonic_now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class State:
    """The emulator's memory; hold `lock` for every read or write."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    registered: set[tuple[str, str]] = field(default_factory=set)
    meter: dict[tuple[str, str, str, datetime], MeterRecord] = field(default_factory=dict)
    meter_log: list[MeterRecord] = field(default_factory=list)
    tokens: dict[tuple[str, str], tuple[tuple[Any, ...], str]] = field(default_factory=dict)
    batch: dict[tuple[str, str, str, str, datetime], BatchRecord] = field(default_factory=dict)
    batch_levels: dict[tuple[str, str, str, datetime, str], str] = field(default_factory=dict)
    batch_log: list[BatchRecord] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)
    fault_used: Counter[int] = field(default_factory=Counter)
    licenses: LicenseBook = field(default_factory=LicenseBook)  # License Manager (seats.py)

    def clear(self) -> None:
        """Forget records, tokens, buckets, fault counters and counts (caller holds the lock)."""
        self.registrations.clear()
        self.registered.clear()
        self.meter.clear()
        self.meter_log.clear()
        self.tokens.clear()
        self.batch.clear()
        self.batch_levels.clear()
        self.batch_log.clear()
        self.requests.clear()
        self.buckets.clear()
        self.fault_used.clear()
        self.licenses.clear()

    def allow(self, operation: str, account: str, rate: float | None, monotonic_now: float) -> bool:
        """Whether the account's bucket for `operation` has a token (caller holds the lock)."""
        if rate is None:
            return True
        key = (operation, account)
        bucket = self.buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = self.buckets[key] = TokenBucket(rate, max(rate, 1.0), monotonic_now)
        return bucket.take(monotonic_now)

    def take_faults(self, scenario: Scenario, operation: str) -> list[Fault]:
        """Consume the faults that hit this request: delays and holds, then at most one other."""
        hit: list[Fault] = []
        for index, fault in enumerate(scenario.faults):
            if fault.op not in {None, operation}:
                continue
            if fault.kind == "unprocessed" and operation != "BatchMeterUsage":
                continue
            if fault.count is not None and self.fault_used[index] >= fault.count:
                continue
            self.fault_used[index] += 1
            hit.append(fault)
            if fault.kind not in {"delay", "hold"}:
                break
        return hit

    def snapshot(self) -> dict[str, Any]:
        """The JSON document of `GET /_emulator/records` (caller holds the lock)."""
        return {
            "registrations": [dict(r) for r in self.registrations],
            "meter_usage": [r.to_json() for r in self.meter_log],
            "batch_meter_usage": [r.to_json() for r in self.batch_log],
            "requests": dict(self.requests),
        }


@dataclass(frozen=True)
class Call:
    """One authenticated API request as the operation handlers see it."""

    operation: str
    caller: Authorization
    account: str
    body: dict[str, Any]
    now: datetime
    faults: frozenset[str] = frozenset()  # kinds of the injected faults that hit this request


@dataclass(frozen=True)
class World:
    """What a handler works with: the current scenario, the shared state and the keys."""

    scenario: Scenario
    state: State
    keys: KeyRing
    rotation_at: datetime

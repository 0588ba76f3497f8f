"""Turn one hour's per-workload usage into one MeterUsage quantity and its exact allocations.

AWS wants `UsageQuantityAsDecimal` with at most 6 decimals and UsageAllocations that sum EXACTLY
to it, at most 2,500 of them, each with a unique tag set, at most 5 distinct tag keys per request.
The split is deterministic (same usage in -> same request out, so a resend after a crash is
byte-identical): the total is the exact sum rounded half-up to micro-units, each workload gets its
floor in micro-units, and the leftover units go to the largest remainders, ties broken by key.
Beyond 2,500 workloads the smallest are merged into one `workload=other` allocation. More than 5
distinct tag keys (only possible when TAG_KEYS changed mid-hour: checkpointed tags meet new ones)
keep `namespace`, `workload` and the user keys carrying the most quantity (ties by name); the
others are dropped from that hour's allocations, never the hour itself.

Tag values follow AWS's rules; the operator's own values (namespace, `Kind/name`) are always valid
Kubernetes names, and one over 256 characters is shortened deterministically (prefix, `@`, hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.metering import Allocation, format_quantity
from entitlement_sidecar.operator.accounting import WorkloadUsage
from entitlement_sidecar.operator.annotations import WorkloadRef

MAX_ALLOCATIONS = rules.ALLOCATIONS_PER_REQUEST
MAX_TAG_KEYS = rules.TAG_KEYS_PER_REQUEST
MAX_TAG_VALUE = rules.TAG_VALUE_MAX
OTHER_TAGS = (("workload", "other"),)
_MICRO = Decimal("0.000001")


@dataclass(frozen=True)
class Split:
    """The hour's total for one dimension and its allocations (summing exactly to it)."""

    quantity: Decimal
    allocations: tuple[Allocation, ...]
    workloads: int
    dropped_tag_keys: tuple[str, ...] = ()


def split(workloads: Mapping[str, WorkloadUsage]) -> Split:
    """The exact, deterministic split of `workloads` (key -> usage) into allocations."""
    exact = {key: w.usage for key, w in workloads.items() if w.usage > 0}
    total_units = int((sum(exact.values(), Decimal(0)) / _MICRO).to_integral_value(ROUND_HALF_UP))
    units: dict[str, int] = {}
    remainders: list[tuple[Decimal, str]] = []
    for key, usage in exact.items():
        scaled = usage / _MICRO
        floor = int(scaled.to_integral_value(ROUND_FLOOR))
        units[key] = floor
        remainders.append((scaled - floor, key))
    leftover = total_units - sum(units.values())
    for _, key in sorted(remainders, key=lambda item: (-item[0], item[1]))[:leftover]:
        units[key] += 1
    ranked = sorted(((u, key) for key, u in units.items() if u > 0), key=lambda i: (-i[0], i[1]))
    allocations = [
        Allocation(_to_quantity(u), workload_tags(key, workloads[key].tags)) for u, key in ranked
    ]
    if len(allocations) > MAX_ALLOCATIONS:
        rest = sum(u for u, _ in ranked[MAX_ALLOCATIONS - 1 :])
        allocations = [
            *allocations[: MAX_ALLOCATIONS - 1],
            Allocation(_to_quantity(rest), OTHER_TAGS),
        ]
    allocations, dropped = _limit_tag_keys(allocations)
    return Split(_to_quantity(total_units), tuple(allocations), len(exact), dropped)


def _limit_tag_keys(allocations: list[Allocation]) -> tuple[list[Allocation], tuple[str, ...]]:
    """At most MAX_TAG_KEYS distinct keys: our own two, then user keys by quantity carried."""
    weight: dict[str, Decimal] = {}
    for allocation in allocations:
        for key, _ in allocation.tags:
            weight[key] = weight.get(key, Decimal(0)) + allocation.quantity
    if len(weight) <= MAX_TAG_KEYS:
        return allocations, ()
    own = {"namespace", "workload"}
    ranked = sorted((k for k in weight if k not in own), key=lambda k: (-weight[k], k))
    keep = own | set(ranked[: MAX_TAG_KEYS - len(own)])
    trimmed = [
        Allocation(a.quantity, tuple(tag for tag in a.tags if tag[0] in keep)) for a in allocations
    ]
    return trimmed, tuple(sorted(set(weight) - keep))


def workload_tags(key: str, user_tags: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Allocation tags of a workload: namespace, workload (`Kind/name`) and its user tags.

    Sorted by key: the API server stores maps with sorted keys, and a resend read back from the
    ledger must be identical to the first send.
    """
    ref = WorkloadRef.from_key(key)
    own = (("namespace", _fit(ref.namespace)), ("workload", _fit(f"{ref.kind}/{ref.name}")))
    return tuple(sorted(own + tuple(user_tags)))


def client_token(product_code: str, dimension: str, hour: datetime, result: Split) -> str:
    """A 64-character ClientToken fixed by everything in the request (same request, same token)."""
    document = {
        "product": product_code,
        "dimension": dimension,
        "hour": hour.isoformat(),
        "quantity": format_quantity(result.quantity),
        "allocations": [
            [format_quantity(a.quantity), [list(tag) for tag in a.tags]] for a in result.allocations
        ],
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _to_quantity(units: int) -> Decimal:
    return Decimal(units).scaleb(-6)


def _fit(value: str) -> str:
    if len(value) <= MAX_TAG_VALUE:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: MAX_TAG_VALUE - 9]}@{digest}"

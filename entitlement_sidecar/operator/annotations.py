"""The user contract on workloads: parse and validate the metering annotations.

A Deployment, StatefulSet or DaemonSet opts in with
`metering.entitlement-sidecar.io/dimensions: '{"users": 5, "gb": "2.5"}'` (quantity per hour per
dimension), optionally `.../per-replica: "true"` (times ready replicas / ready pods) and
`.../tags: '{"team": "a"}'` (extra allocation tags, keys from the operator's allow-list).

Everything here is pure: one workload's annotations and status in, its hourly rate per dimension
and one-line problems out. Problems never raise; the caller turns them into Warning Events and
skips what they name (one dimension, or the whole workload when nothing can be trusted).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from entitlement_sidecar.aws import rules

PREFIX = "metering.entitlement-sidecar.io"
DIMENSIONS_KEY = f"{PREFIX}/dimensions"
PER_REPLICA_KEY = f"{PREFIX}/per-replica"
TAGS_KEY = f"{PREFIX}/tags"

# Ready replicas per kind: where a per-replica workload's multiplier comes from.
READY_FIELD = {
    "Deployment": "readyReplicas",
    "StatefulSet": "readyReplicas",
    "DaemonSet": "numberReady",
}

# Reserved allocation tag keys the operator always sets itself.
RESERVED_TAG_KEYS = frozenset({"namespace", "workload"})
# AWS tag rules for allocation tags, used with fullmatch: `$` alone would let a trailing newline
# (YAML block scalars) through.
TAG_KEY_PATTERN = re.compile(rules.TAG_KEY)
TAG_VALUE_PATTERN = re.compile(rules.TAG_VALUE)
# One workload's rate above this is a typo, not usage (AWS caps a record at 10 integer digits).
MAX_RATE = Decimal(10) ** 9


@dataclass(frozen=True)
class WorkloadRef:
    """Which workload: namespace, kind and name. `key` is how the ledger names it."""

    namespace: str
    kind: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"

    @classmethod
    def from_key(cls, key: str) -> WorkloadRef:
        namespace, kind, name = key.split("/", 2)
        return cls(namespace, kind, name)


@dataclass(frozen=True)
class Rates:
    """A workload's validated usage rates (per hour, replicas applied) and its user tags."""

    rates: Mapping[str, Decimal] = field(default_factory=dict)
    tags: tuple[tuple[str, str], ...] = ()
    problems: tuple[str, ...] = ()


def parse(
    kind: str,
    annotations: Mapping[str, str],
    status: Mapping[str, Any],
    *,
    dimensions: frozenset[str],
    tag_keys: frozenset[str],
) -> Rates | None:
    """The workload's rates, or None when it carries no dimensions annotation (not metered)."""
    raw = annotations.get(DIMENSIONS_KEY)
    if raw is None:
        return None
    problems: list[str] = []
    quantities = _parse_quantities(raw, dimensions, problems)
    tags = _parse_tags(annotations.get(TAGS_KEY), tag_keys, problems)
    multiplier = _multiplier(kind, annotations.get(PER_REPLICA_KEY), status, problems)
    if tags is None or multiplier is None:
        return Rates(problems=tuple(problems))
    rates = {dimension: quantity * multiplier for dimension, quantity in quantities.items()}
    return Rates(rates=rates, tags=tags, problems=tuple(problems))


def _parse_quantities(
    raw: str, dimensions: frozenset[str], problems: list[str]
) -> dict[str, Decimal]:
    try:
        document = json.loads(raw, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        problems.append(f"{DIMENSIONS_KEY} is not valid JSON: {error}")
        return {}
    if not isinstance(document, dict):
        problems.append(f"{DIMENSIONS_KEY} must be a JSON object of dimension -> quantity")
        return {}
    quantities: dict[str, Decimal] = {}
    for dimension, value in sorted(document.items()):
        if dimension not in dimensions:
            problems.append(
                f"dimension {dimension!r} is not one of the product's dimensions; ignored"
            )
            continue
        quantity = _quantity(value)
        if quantity is None:
            problems.append(
                f"dimension {dimension!r}: {value!r} is not a non-negative number "
                f"below {MAX_RATE}; ignored"
            )
            continue
        quantities[dimension] = quantity
    return quantities


def _quantity(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, Decimal | str):
        return None
    try:
        quantity = Decimal(value)
    except InvalidOperation:
        return None
    if not quantity.is_finite() or quantity < 0 or quantity >= MAX_RATE:
        return None
    return quantity


def _reject(constant: str) -> object:
    raise ValueError(f"{constant} is not a number")


def _parse_tags(
    raw: str | None, tag_keys: frozenset[str], problems: list[str]
) -> tuple[tuple[str, str], ...] | None:
    """User tags, sorted by key; None (and a problem) if the annotation cannot be used at all."""
    if raw is None:
        return ()
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as error:
        problems.append(f"{TAGS_KEY} is not valid JSON: {error}; workload not metered")
        return None
    if not isinstance(document, dict):
        problems.append(f"{TAGS_KEY} must be a JSON object of key -> value; workload not metered")
        return None
    for key, value in document.items():
        if key not in tag_keys:
            problems.append(f"tag key {key!r} is not in the allowed tag keys; workload not metered")
            return None
        if not isinstance(value, str) or not TAG_VALUE_PATTERN.fullmatch(value):
            problems.append(
                f"tag {key!r}: value must be 1-256 letters, digits, spaces or +-=._:/@; "
                "workload not metered"
            )
            return None
    return tuple(sorted(document.items()))


def _multiplier(
    kind: str, raw: str | None, status: Mapping[str, Any], problems: list[str]
) -> Decimal | None:
    if raw is None or raw.strip().lower() == "false":
        return Decimal(1)
    if raw.strip().lower() != "true":
        problems.append(f'{PER_REPLICA_KEY} must be "true" or "false"; workload not metered')
        return None
    ready = status.get(READY_FIELD.get(kind, "readyReplicas"), 0)
    return (
        Decimal(ready)
        if isinstance(ready, int) and not isinstance(ready, bool) and ready > 0
        else Decimal(0)
    )

"""The workload annotation contract: parsing, validation and one-line problems."""

from __future__ import annotations

from decimal import Decimal

import pytest

from entitlement_sidecar.operator.annotations import (
    DIMENSIONS_KEY,
    PER_REPLICA_KEY,
    TAGS_KEY,
    Rates,
    WorkloadRef,
    parse,
)

DIMENSIONS = frozenset({"users", "gb"})
TAG_KEYS = frozenset({"team", "env"})


def _parse(
    notes: dict[str, str], kind: str = "Deployment", status: dict[str, int] | None = None
) -> Rates:
    parsed = parse(kind, notes, status or {}, dimensions=DIMENSIONS, tag_keys=TAG_KEYS)
    assert parsed is not None
    return parsed


def test_unannotated_workload_is_not_metered() -> None:
    """A workload without the dimensions annotation is not metered at all."""
    assert parse("Deployment", {"other": "x"}, {}, dimensions=DIMENSIONS, tag_keys=TAG_KEYS) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"users": 5}', {"users": Decimal(5)}),
        ('{"users": 5, "gb": "2.5"}', {"users": Decimal(5), "gb": Decimal("2.5")}),
        ('{"gb": 0.1}', {"gb": Decimal("0.1")}),
        ('{"users": 0}', {"users": Decimal(0)}),
        ("{}", {}),
    ],
    ids=["int", "int-and-string", "float-exact", "zero", "empty-object"],
)
def test_valid_quantities(raw: str, expected: dict[str, Decimal]) -> None:
    """Numbers and numeric strings are accepted exactly (floats parsed as decimals)."""
    parsed = _parse({DIMENSIONS_KEY: raw})
    assert expected == dict(parsed.rates)
    assert parsed.problems == ()


@pytest.mark.parametrize(
    ("raw", "kept", "fragment"),
    [
        ("not json", {}, "not valid JSON"),
        ('["users", 5]', {}, "must be a JSON object"),
        ('{"users": -1, "gb": 2}', {"gb": Decimal(2)}, "'users'"),
        ('{"users": "many"}', {}, "not a non-negative number"),
        ('{"users": true}', {}, "not a non-negative number"),
        ('{"users": NaN}', {}, "not valid JSON"),
        ('{"users": "Infinity"}', {}, "not a non-negative number"),
        ('{"users": 1e12}', {}, "not a non-negative number"),
        ('{"cpu": 3, "users": 1}', {"users": Decimal(1)}, "not one of the product's dimensions"),
        ("[" * 100_000, {}, "not valid JSON"),
    ],
    ids=[
        "not-json",
        "not-object",
        "negative",
        "non-numeric",
        "bool",
        "nan",
        "infinity",
        "huge",
        "unknown-dim",
        "nested-too-deep",
    ],
)
def test_bad_quantities_are_reported_and_skipped(
    raw: str, kept: dict[str, Decimal], fragment: str
) -> None:
    """A bad value skips its dimension (everything when unparsable), with a one-line reason."""
    parsed = _parse({DIMENSIONS_KEY: raw})
    assert kept == dict(parsed.rates)
    assert len(parsed.problems) == 1
    assert fragment in parsed.problems[0]
    assert "\n" not in parsed.problems[0]


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("Deployment", {"readyReplicas": 3}, Decimal(6)),
        ("StatefulSet", {"readyReplicas": 2}, Decimal(4)),
        ("DaemonSet", {"numberReady": 5, "readyReplicas": 1}, Decimal(10)),
        ("Deployment", {}, Decimal(0)),
        ("DaemonSet", {"readyReplicas": 4}, Decimal(0)),
    ],
    ids=[
        "deployment",
        "statefulset",
        "daemonset-number-ready",
        "no-status",
        "daemonset-wrong-field",
    ],
)
def test_per_replica_multiplies_by_ready(
    kind: str, status: dict[str, int], expected: Decimal
) -> None:
    """per-replica multiplies by readyReplicas (Deployment, StatefulSet) or numberReady."""
    parsed = _parse({DIMENSIONS_KEY: '{"users": 2}', PER_REPLICA_KEY: "true"}, kind, status)
    assert {"users": expected} == dict(parsed.rates)


def test_per_replica_false_or_absent_is_per_workload() -> None:
    """Without per-replica (or with "false") the quantity is per workload."""
    notes = {DIMENSIONS_KEY: '{"users": 2}', PER_REPLICA_KEY: "False"}
    assert {"users": Decimal(2)} == dict(_parse(notes, status={"readyReplicas": 7}).rates)


def test_per_replica_garbage_skips_workload() -> None:
    """An unreadable per-replica value skips the whole workload with a reason."""
    parsed = _parse({DIMENSIONS_KEY: '{"users": 2}', PER_REPLICA_KEY: "yes"})
    assert dict(parsed.rates) == {}
    assert "per-replica" in parsed.problems[0]


def test_tags_are_sorted_and_kept() -> None:
    """Allowed user tags are kept, sorted by key."""
    parsed = _parse({DIMENSIONS_KEY: '{"users": 1}', TAGS_KEY: '{"team": "a b", "env": "prod/1"}'})
    assert parsed.tags == (("env", "prod/1"), ("team", "a b"))
    assert parsed.problems == ()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ('{"owner": "x"}', "not in the allowed tag keys"),
        ('{"team": "a*b"}', "value must be"),
        ('{"team": "payments\\n"}', "value must be"),
        ('{"team": ""}', "value must be"),
        ('{"team": 3}', "value must be"),
        ('{"team": "' + "x" * 257 + '"}', "value must be"),
        ("[1]", "must be a JSON object"),
        ("{", "not valid JSON"),
        ('{"team": ' * 100_000, "not valid JSON"),
    ],
    ids=[
        "key-not-allowed",
        "bad-char",
        "trailing-newline",
        "empty",
        "not-string",
        "too-long",
        "not-object",
        "not-json",
        "nested-too-deep",
    ],
)
def test_bad_tags_skip_the_workload(raw: str, fragment: str) -> None:
    """A bad tags annotation is rejected, never sanitized: the workload is not metered."""
    parsed = _parse({DIMENSIONS_KEY: '{"users": 1}', TAGS_KEY: raw})
    assert dict(parsed.rates) == {}
    assert fragment in parsed.problems[0]


def test_workload_ref_key_round_trips() -> None:
    """A workload key names namespace, kind and name, and parses back."""
    ref = WorkloadRef("shop", "StatefulSet", "db")
    assert ref.key == "shop/StatefulSet/db"
    assert ref == WorkloadRef.from_key(ref.key)

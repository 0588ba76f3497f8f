"""The exact, deterministic split of an hour's usage into one quantity and its allocations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entitlement_sidecar.aws.metering import Allocation, MeterRequest, format_quantity
from entitlement_sidecar.operator.accounting import WorkloadUsage, usage_of
from entitlement_sidecar.operator.allocation import (
    MAX_ALLOCATIONS,
    OTHER_TAGS,
    _wire_size,
    client_token,
    split,
    workload_tags,
)

HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)


def usages(values: dict[str, str]) -> dict[str, WorkloadUsage]:
    return {key: WorkloadUsage(usage_of(Decimal(value))) for key, value in values.items()}


@pytest.mark.parametrize(
    ("values", "total", "shares"),
    [
        ({"ns/Deployment/a": "5"}, "5", ["5"]),
        ({"ns/Deployment/a": "2.5", "ns/Deployment/b": "1.25"}, "3.75", ["2.5", "1.25"]),
        (
            {
                "ns/Deployment/a": "0.3333333333",
                "ns/Deployment/b": "0.3333333333",
                "ns/Deployment/c": "0.3333333334",
            },
            "1",
            ["0.333334", "0.333333", "0.333333"],
        ),
        (
            {"ns/Deployment/b": "0.0000005", "ns/Deployment/a": "0.0000005"},
            "0.000001",
            ["0.000001"],
        ),
        ({"ns/Deployment/a": "0.00000049"}, "0", []),
        ({"ns/Deployment/a": "0", "ns/Deployment/b": "1"}, "1", ["1"]),
    ],
    ids=["single", "exact", "thirds", "tie-by-key", "below-a-micro-unit", "zero-dropped"],
)
def test_allocations_sum_exactly_to_the_total(
    values: dict[str, str], total: str, shares: list[str]
) -> None:
    """Allocations are micro-unit exact, sum to the total and break ties by key."""
    result = split(usages(values))
    assert Decimal(total) == result.quantity
    assert [Decimal(share) for share in shares] == [a.quantity for a in result.allocations]
    assert result.quantity == sum((a.quantity for a in result.allocations), Decimal(0))


def test_tie_goes_to_the_first_key() -> None:
    """With equal remainders the extra micro-unit goes to the lexicographically first key."""
    result = split(usages({"ns/Deployment/b": "0.0000005", "ns/Deployment/a": "0.0000005"}))
    assert ("workload", "Deployment/a") in result.allocations[0].tags


def test_many_random_splits_stay_exact() -> None:
    """Hundreds of irregular usages still sum exactly, and the split is deterministic."""
    values = {
        f"ns/Deployment/w{i:03d}": str(Decimal(i * 7919 % 1000) / Decimal(3)) for i in range(1, 400)
    }
    first = split(usages(values))
    assert first == split(usages(dict(reversed(list(values.items())))))
    assert first.quantity == sum((a.quantity for a in first.allocations), Decimal(0))
    assert all(a.quantity.as_tuple().exponent >= -6 for a in first.allocations)  # type: ignore[operator]


def test_over_2500_workloads_merge_the_smallest_into_other() -> None:
    """Beyond 2,500 workloads the smallest merge into one `workload=other` allocation."""
    values = {f"ns/Deployment/w{i:05d}": str(i) for i in range(1, 3001)}
    result = split(usages(values))
    assert len(result.allocations) == MAX_ALLOCATIONS
    assert result.workloads == 3000
    other = result.allocations[-1]
    assert other.tags == OTHER_TAGS
    assert Decimal(sum(range(1, 502))) == other.quantity  # w1..w501 are the smallest
    assert Decimal(sum(range(1, 3001))) == result.quantity
    assert result.quantity == sum((a.quantity for a in result.allocations), Decimal(0))
    assert len({a.tags for a in result.allocations}) == MAX_ALLOCATIONS


def test_tags_name_namespace_and_workload_plus_user_tags() -> None:
    """Each allocation carries namespace, `Kind/name` and the user tags, sorted by key."""
    tags = workload_tags("shop/StatefulSet/db", (("team", "a"), ("env", "prod")))
    assert tags == (
        ("env", "prod"),
        ("namespace", "shop"),
        ("team", "a"),
        ("workload", "StatefulSet/db"),
    )


def test_long_workload_tag_is_shortened_deterministically() -> None:
    """A `Kind/name` over 256 characters is cut to 256 with a hash suffix, always the same."""
    key = "ns/StatefulSet/" + "x" * 250
    value = dict(workload_tags(key, ()))["workload"]
    assert len(value) == 256
    assert value == dict(workload_tags(key, ()))["workload"]
    assert value != dict(workload_tags(key + "y", ()))["workload"]


def test_more_than_five_tag_keys_keep_those_carrying_most_quantity() -> None:
    """Over 5 distinct tag keys, the user keys carrying the least quantity are dropped (ties by
    name), keeping namespace, workload and every allocation; the split is still exact."""
    workloads = {
        "ns/Deployment/a": WorkloadUsage(usage_of(Decimal(1)), (("k1", "v"), ("k2", "v"))),
        "ns/Deployment/b": WorkloadUsage(usage_of(Decimal(2)), (("k3", "v"), ("k4", "v"))),
    }
    result = split(workloads)
    assert result.dropped_tag_keys == ("k2",)
    assert [dict(a.tags) for a in result.allocations] == [
        {"namespace": "ns", "workload": "Deployment/b", "k3": "v", "k4": "v"},
        {"namespace": "ns", "workload": "Deployment/a", "k1": "v"},
    ]
    assert sum(a.quantity for a in result.allocations) == result.quantity == Decimal(3)
    assert split(usages({"ns/Deployment/a": "1"})).dropped_tag_keys == ()


def test_client_token_is_fixed_by_the_request() -> None:
    """Same request, same 64-character token; any change in quantity or split changes it."""
    one = split(usages({"ns/Deployment/a": "1", "ns/Deployment/b": "2"}))
    other = split(usages({"ns/Deployment/a": "2", "ns/Deployment/b": "1"}))
    token = client_token("prod-1", "users", HOUR, one)
    assert len(token) == 64
    assert token == client_token("prod-1", "users", HOUR, one)
    assert token != client_token("prod-1", "users", HOUR, other)
    assert token != client_token("prod-1", "gb", HOUR, one)
    request = MeterRequest("prod-1", HOUR, "users", one.quantity, token, one.allocations)
    assert request.to_params()["UsageQuantityAsDecimal"] == "3"


def test_long_tags_merge_the_smallest_so_the_request_fits_awss_body_limit() -> None:
    """With the longest names and tags, 2,500 allocations would exceed the 1 MB request body:
    the largest keep their own allocation, the rest merge into `workload=other`, exactly."""
    tags = (("a" * 100, "v" * 256), ("b" * 100, "v" * 256), ("c" * 100, "v" * 256))
    workloads = {
        f"{'n' * 63}/StatefulSet/{i:05d}{'x' * 248}": WorkloadUsage(usage_of(Decimal(i + 1)), tags)
        for i in range(2500)
    }
    result = split(workloads)
    request = MeterRequest("prod", HOUR, "users", result.quantity, "t" * 64, result.allocations)
    assert len(json.dumps(request.to_params(), default=str)) < 1024 * 1024
    assert result.allocations[-1].tags == OTHER_TAGS
    assert 100 < len(result.allocations) < 2500
    assert sum(a.quantity for a in result.allocations) == result.quantity == 2500 * 2501 // 2


TEXTS = st.one_of(st.text(max_size=40), st.text(st.characters(codec="ascii"), max_size=40))


@settings(max_examples=300, deadline=None)
@given(
    quantity=st.decimals(min_value=0, max_value=10**9, places=6),
    tags=st.lists(st.tuples(TEXTS, TEXTS), max_size=6),
)
def test_an_allocations_counted_size_is_its_encoded_size(
    quantity: Decimal, tags: list[tuple[str, str]]
) -> None:
    """The request-size budget counts each allocation without encoding it when no tag needs an
    escape: the count equals the encoded size for any tags (quotes, backslashes, control
    characters and non-ASCII take the encoding path)."""
    allocation = Allocation(quantity, tuple(tags))
    document = {
        "AllocatedUsageQuantityAsDecimal": format_quantity(quantity),
        "Tags": [{"Key": key, "Value": value} for key, value in tags],
    }
    assert _wire_size(allocation) == len(json.dumps(document)) + 2

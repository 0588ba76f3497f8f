"""MeterUsage UsageAllocations and tags: exact sums, unique tag sets, the model's tag pattern."""

from __future__ import annotations

from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import FIXED_NOW, PAID, aws_error, loose_client


def alloc(quantity: int | str, **tags: str) -> dict[str, Any]:
    """One allocation; an int goes in AllocatedUsageQuantity, a str in ...AsDecimal."""
    item: dict[str, Any] = (
        {"AllocatedUsageQuantity": quantity}
        if isinstance(quantity, int)
        else {"AllocatedUsageQuantityAsDecimal": quantity}
    )
    if tags:
        item["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return item


def send(emu: Emulator, quantity: dict[str, Any], allocations: list[dict[str, Any]]) -> str:
    """MeterUsage with allocations through a client that skips botocore's checks."""
    reply = loose_client(emu).meter_usage(
        ProductCode=PAID,
        Timestamp=FIXED_NOW,
        UsageDimension="users",
        UsageAllocations=allocations,  # type: ignore[arg-type]
        **quantity,
    )
    return reply["MeteringRecordId"]


def test_allocations_are_recorded(clocked: Emulator) -> None:
    """Allocations that sum exactly are accepted and kept with the record."""
    send(
        clocked,
        {"UsageQuantityAsDecimal": "3.5"},
        [alloc("1.25", team="a"), alloc("2.25", team="b", env="prod"), alloc("0")],
    )
    [record] = clocked.records()["meter_usage"]
    assert sorted((a["quantity"], tuple(sorted(a["tags"]))) for a in record["allocations"]) == [
        ("0", ()),
        ("1.25", ("team",)),
        ("2.25", ("env", "team")),
    ]


def test_space_to_equals_range_of_the_model_pattern_is_accepted(clocked: Emulator) -> None:
    """The model's tag pattern holds the range ' -=' (space..'='), so '#' and '!' pass."""
    send(clocked, {"UsageQuantity": 2}, [alloc(2, **{"cost#center": "a!b (x)"})])
    assert len(clocked.records()["meter_usage"]) == 1


def test_same_quantity_other_allocations_is_a_duplicate(clocked: Emulator) -> None:
    """A recorded hour cannot be re-split: other allocations answer DuplicateRequestException."""
    send(clocked, {"UsageQuantity": 2}, [alloc(1, team="a"), alloc(1, team="b")])
    with aws_error("DuplicateRequestException"):
        send(clocked, {"UsageQuantity": 2}, [alloc(2, team="a")])


@pytest.mark.parametrize(
    ("quantity", "allocations", "expected"),
    [
        ({"UsageQuantity": 3}, [alloc(1, t="a"), alloc(1, t="b")], "InvalidUsageAllocations"),
        ({"UsageQuantity": 2}, [alloc(1, t="a"), alloc(1, t="a")], "InvalidUsageAllocations"),
        ({"UsageQuantity": 2}, [alloc(1), alloc(1)], "InvalidUsageAllocations"),
        ({"UsageQuantity": 2}, [alloc("2", t="a")], "InvalidUsageAllocations"),
        ({"UsageQuantityAsDecimal": "2"}, [alloc(2, t="a")], "InvalidUsageAllocations"),
        ({"UsageQuantity": 2}, [{"Tags": [{"Key": "t", "Value": "a"}]}], "InvalidUsageAllocations"),
        (
            {"UsageQuantity": 2},
            [{"AllocatedUsageQuantity": 2, "AllocatedUsageQuantityAsDecimal": "2"}],
            "InvalidUsageAllocations",
        ),
        ({"UsageQuantity": 0}, [], "InvalidUsageAllocations"),
        (
            {"UsageQuantity": 2501},
            [alloc(1, n=str(i)) for i in range(2501)],
            "InvalidUsageAllocations",
        ),
        ({"UsageQuantity": 1}, [alloc(1, **{f"k{i}": "v" for i in range(6)})], "InvalidTag"),
        (
            {"UsageQuantity": 6},
            [alloc(1, **{f"k{i}": "v"}) for i in range(6)],
            "InvalidTag",
        ),
        (
            {"UsageQuantity": 1},
            [
                {
                    "AllocatedUsageQuantity": 1,
                    "Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
                }
            ],
            "InvalidTag",
        ),
        ({"UsageQuantity": 1}, [{"AllocatedUsageQuantity": 1, "Tags": []}], "InvalidTag"),
        ({"UsageQuantity": 1}, [alloc(1, **{"k" * 101: "v"})], "InvalidTag"),
        ({"UsageQuantity": 1}, [alloc(1, k="v" * 257)], "InvalidTag"),
        ({"UsageQuantity": 1}, [alloc(1, k="what?")], "InvalidTag"),
        ({"UsageQuantity": 1}, [alloc(1, **{"a~b": "v"})], "InvalidTag"),
        ({"UsageQuantity": 1}, [alloc(1, team="a\n")], "InvalidTag"),
    ],
    ids=[
        "sum-too-small",
        "repeated-tag-set",
        "two-untagged",
        "decimal-under-int",
        "int-under-decimal",
        "no-quantity",
        "both-quantities",
        "empty-list",
        "2501-allocations",
        "six-tags",
        "six-distinct-keys",
        "repeated-key",
        "empty-tag-list",
        "key-too-long",
        "value-too-long",
        "question-mark",
        "tilde-in-key",
        "trailing-newline-in-value",
    ],
)
def test_invalid_allocations(
    clocked: Emulator,
    quantity: dict[str, Any],
    allocations: list[dict[str, Any]],
    expected: str,
) -> None:
    """Each broken allocation rule answers its modeled exception and records nothing."""
    with aws_error(f"{expected}Exception"):
        send(clocked, quantity, allocations)
    assert clocked.records()["meter_usage"] == []

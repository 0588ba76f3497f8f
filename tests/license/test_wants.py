"""What the seller asks License Manager for, and what an answer grants."""

from __future__ import annotations

import pytest

from entitlement_sidecar.sidecar.license.wants import Wants, parse_wants

USAGE = "AWS::Marketplace::Usage"


@pytest.mark.parametrize(
    ("text", "tiers", "counted"),
    [
        ("basic,pro,enterprise", ("basic", "pro", "enterprise"), ()),
        ("seats=1", (), (("seats", 1),)),
        (" pro , seats = 2 ,", ("pro",), (("seats", 2),)),
        (USAGE, (USAGE,), ()),
    ],
    ids=["tiers", "counted", "both-with-blanks", "usage-only"],
)
def test_the_setting_reads_tiers_and_counted_units(
    text: str, tiers: tuple[str, ...], counted: tuple[tuple[str, int], ...]
) -> None:
    """`NAME` is a tier, `NAME=COUNT` counted units; blanks and empty items are ignored."""
    assert parse_wants(text) == Wants(tiers, counted)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "at least one"),
        ("seats=0", "from 1"),
        ("seats=x", "whole number"),
        ("a b", "API name"),
        ("pro,pro", "twice"),
        (f"{USAGE}=1", "not counted"),
        ("seats=1000001", "from 1"),
    ],
    ids=["empty", "zero", "not-a-number", "blank-in-name", "duplicate", "usage-counted", "huge"],
)
def test_bad_settings_are_refused_with_the_reason(text: str, problem: str) -> None:
    """Each malformed list is a ValueError whose message says what is wrong."""
    with pytest.raises(ValueError, match=problem):
        parse_wants(text)


TIERS = Wants(("basic", "pro", "enterprise"))
SEATS = Wants((), (("seats", 1),))
BOTH = Wants(("pro",), (("seats", 1),))


@pytest.mark.parametrize(
    ("wants", "allowed", "granted"),
    [
        (TIERS, [("pro", "None", "Enabled")], {"pro": True}),
        (
            TIERS,
            [("basic", "None", None), ("enterprise", "None", None)],
            {"basic": True, "enterprise": True},
        ),
        (TIERS, [], None),
        (TIERS, [("other", "None", None)], None),
        (SEATS, [("seats", "Count", "1")], {"seats": 1}),
        (SEATS, [("seats", "None", None)], None),
        (SEATS, [("seats", "Count", "0")], None),
        (BOTH, [("pro", "None", None), ("seats", "Count", "1")], {"pro": True, "seats": 1}),
        (BOTH, [("seats", "Count", "1")], None),
        (BOTH, [("pro", "None", None)], None),
    ],
    ids=[
        "one-tier",
        "two-tiers",
        "nothing",
        "unlisted-tier",
        "seat",
        "counted-as-none",
        "zero-units",
        "tier-and-seat",
        "seat-without-tier",
        "tier-without-seat",
    ],
)
def test_a_checkout_grants_a_tier_and_every_counted_unit(
    wants: Wants, allowed: list[tuple[str, str, str | None]], granted: dict[str, int | bool] | None
) -> None:
    """At least one listed tier (when tiers are listed) and all counted units, or nothing."""
    assert wants.granted(allowed) == granted


def test_the_tier_reported_is_the_last_listed_one_granted() -> None:
    """List tiers lowest first: the highest granted is the tier."""
    assert TIERS.tier({"basic": True, "enterprise": True}) == "enterprise"
    assert TIERS.tier({"seats": 1}) is None


def test_the_heartbeat_never_asks_for_counted_units() -> None:
    """Re-checks name the tiers, or AWS::Marketplace::Usage when only units are configured."""
    assert BOTH.heartbeat_items() == [("pro", "None", None)]
    assert SEATS.heartbeat_items() == [(USAGE, "None", None)]
    assert all(unit == "None" for _, unit, _ in TIERS.heartbeat_items())
    assert BOTH.checkout_items() == [("pro", "None", None), ("seats", "Count", "1")]


@pytest.mark.parametrize(
    ("wants", "allowed", "held", "result"),
    [
        (SEATS, [(USAGE, "None", "Enabled")], {"seats": 1}, {"seats": 1}),
        (SEATS, [], {"seats": 1}, None),
        (BOTH, [("pro", "None", None)], {"seats": 1}, {"pro": True, "seats": 1}),
        (TIERS, [("basic", "None", None)], {}, {"basic": True}),
        (TIERS, [(USAGE, "None", None)], {}, None),
    ],
    ids=["subscribed", "unsubscribed", "tier-and-held-seat", "downgraded-tier", "no-tier"],
)
def test_a_heartbeat_keeps_held_units_while_the_agreement_stands(
    wants: Wants,
    allowed: list[tuple[str, str, str | None]],
    held: dict[str, int | bool],
    result: dict[str, int | bool] | None,
) -> None:
    """Held units count while the tier (or the Usage entitlement) is still granted."""
    assert wants.still_granted(allowed, held) == result

"""Quantities in micro-units, hours, and the pure decisions of when to seal, send and give up."""

from __future__ import annotations

import pytest

from entitlement_sidecar.sidecar.usage import plan
from entitlement_sidecar.sidecar.usage.units import (
    MAX_UNITS,
    format_quantity,
    hour_of,
    parse_quantity,
    record_timestamp,
)

from .conftest import H10, HOUR

H11 = H10 + HOUR


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("0", 0),
        ("12.5", 12_500_000),
        ("0.000001", 1),
        ("9999999999.999999", MAX_UNITS),
        ("3.10", 3_100_000),
        ("01", None),
        ("1.0000001", None),
        ("-1", None),
        ("1e3", None),
        (" 1", None),
        ("1.", None),
        ("", None),
        ("99999999999", None),
    ],
    ids=repr,
)
def test_quantities_are_aws_decimals_in_micro_units(text: str, units: int | None) -> None:
    """AWS's decimal form parses exactly; anything else is refused, never rounded."""
    assert parse_quantity(text) == units


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (0, "0"),
        (1, "0.000001"),
        (12_500_000, "12.5"),
        (3_000_000, "3"),
        (MAX_UNITS, "9999999999.999999"),
    ],
    ids=["zero", "one-millionth", "decimal", "whole", "largest"],
)
def test_quantities_format_without_trailing_zeros(units: int, text: str) -> None:
    """Micro-units print as AWS's shortest decimal string."""
    assert format_quantity(units) == text
    assert parse_quantity(text) == units


@pytest.mark.parametrize(
    ("moment", "hour"),
    [(H10, H10), (H10 + 3599.999, H10), (H11, H11), (H11 - 0.001, H10)],
    ids=["start", "last-millisecond", "next-hour", "just-before"],
)
def test_hour_of_takes_the_utc_hour(moment: float, hour: int) -> None:
    """An instant belongs to the hour it falls in, edges included."""
    assert hour_of(moment) == hour


@pytest.mark.parametrize(
    ("sealed_at", "timestamp"),
    [(H11 + 60, H11 - 1), (H10 + 1800.7, H10 + 1800), (H10 + 0.2, H10), (H10 - 5, H10)],
    ids=["after-the-hour", "at-shutdown", "first-second", "clock-behind"],
)
def test_a_record_is_stamped_inside_its_hour_and_never_in_the_future(
    sealed_at: float, timestamp: int
) -> None:
    """Completed hours carry their last second; an early seal the sealing second."""
    assert record_timestamp(H10, sealed_at) == timestamp


@pytest.mark.parametrize(
    ("now", "due"),
    [(H11 + 59.999, []), (H11 + 60, [H10]), (H11 + 4000, [H10, H11])],
    ids=["one-ms-early", "on-time", "late"],
)
def test_an_hour_is_sealed_sixty_seconds_after_it_ends(now: float, due: list[int]) -> None:
    """The seal waits 60 s past the hour's end, for skew and retries across the boundary."""
    assert list(plan.due_seals([H10, H11], now)) == due


def test_shutdown_seals_every_hour_that_has_begun() -> None:
    """At shutdown the current hour is stamped now; an hour not begun yet waits."""
    seals = plan.shutdown_seals([H10, H11, H11 + HOUR], H11 + 10.5)
    assert seals == {H10: H11 - 1, H11: H11 + 10}


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        (H11 - 1 + 6 * HOUR - 30.001, False),
        (H11 - 1 + 6 * HOUR - 30, True),
        (H11 + 10 * HOUR, True),
    ],
    ids=["last-chance", "margin-reached", "long-gone"],
)
def test_no_call_starts_in_the_last_thirty_seconds_of_the_window(now: float, expired: bool) -> None:
    """AWS takes a record up to 6 hours after its timestamp; we stop 30 s before."""
    assert plan.expired(H11 - 1, now) is expired


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [(1, 7.5, 15), (2, 15, 30), (6, 240, 480), (7, 300, 600), (30, 300, 600)],
    ids=["first", "second", "sixth", "capped", "long-outage"],
)
def test_rounds_back_off_exponentially_with_jitter(failures: int, low: float, high: float) -> None:
    """15 s doubling to 10 min, each wait between half and all of its cap."""
    assert plan.backoff(failures, 0.0) == low
    assert plan.backoff(failures, 1.0) == high


def test_the_first_round_after_a_seal_falls_within_the_jitter() -> None:
    """A random point in [now, now + jitter]."""
    assert plan.first_round(100.0, 300.0, 0.0) == 100.0
    assert plan.first_round(100.0, 300.0, 0.5) == 250.0

"""Pure usage rules, table-tested without a server: windows, hours, quantities by value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.state import decimal_text
from entitlement_sidecar.emulator.usage import check_batch_window, check_meter_window, hour_of


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO text."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "now", "accepted"),
    [
        ("2026-03-31T23:00", "2026-04-01T05:59:59", True),
        ("2026-03-31T23:00", "2026-04-01T06:00:00", False),
        ("2026-04-01T00:00", "2026-04-01T06:00:00", True),
        ("2026-04-09T12:00:01", "2026-04-10T12:00:00", True),
        ("2026-04-09T12:00:00", "2026-04-10T12:00:00", False),
        ("2026-04-10T12:00:01", "2026-04-10T12:00:00", False),
    ],
    ids=[
        "last-month-in-grace",
        "last-month-after-grace",
        "this-month",
        "just-inside-24h",
        "exactly-24h",
        "future",
    ],
)
def test_batch_window(when: str, now: str, accepted: bool) -> None:
    """Batch records: 24 hours back, and the previous month only until 06:00 UTC on the 1st."""
    if accepted:
        check_batch_window(at(when), at(now))
        return
    with pytest.raises(ApiError) as caught:
        check_batch_window(at(when), at(now))
    assert caught.value.code == "TimestampOutOfBoundsException"


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(0), True),
        (timedelta(hours=-6), True),
        (timedelta(hours=-6, microseconds=-1), False),
        (timedelta(microseconds=1), False),
    ],
    ids=["now", "six-hours", "just-older", "just-future"],
)
def test_meter_window(offset: timedelta, accepted: bool) -> None:
    """MeterUsage: from six hours ago up to now, to the microsecond."""
    now = at("2026-04-10T12:00:00")
    if accepted:
        check_meter_window(now + offset, now)
        return
    with pytest.raises(ApiError, match="Timestamp"):
        check_meter_window(now + offset, now)


@pytest.mark.parametrize(
    ("when", "hour"),
    [("2026-04-10T12:59:59.999999", "2026-04-10T12:00"), ("2026-04-10T13:00", "2026-04-10T13:00")],
    ids=["last-microsecond", "on-the-hour"],
)
def test_hour_of(when: str, hour: str) -> None:
    """Timestamps round down to their UTC hour."""
    assert hour_of(at(when)) == at(hour)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("17", "17"),
        ("17.00", "17"),
        ("17.50", "17.5"),
        ("100", "100"),
        ("0.000", "0"),
        ("0.000001", "0.000001"),
        ("9999999999.999999", "9999999999.999999"),
    ],
    ids=["int", "trailing-zeros", "half", "hundred", "zero", "micro", "largest"],
)
def test_decimal_text(value: str, text: str) -> None:
    """Quantities print as plain decimals without exponent or trailing zeros."""
    assert decimal_text(Decimal(value)) == text

"""MeterUsage: one record per caller, product, dimension and hour; idempotency; validation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import FIXED_NOW, PAID, error_code, loose_client, recent


def meter(emu: Emulator, caller: str = "AKIDPOD1", **params: Any) -> str:
    """Send one MeterUsage with defaults for the required fields; return the record id."""
    request: dict[str, Any] = {
        "ProductCode": PAID,
        "Timestamp": FIXED_NOW - timedelta(minutes=10),
        "UsageDimension": "users",
    }
    request.update(params)
    reply = emu.client(access_key_id=caller).meter_usage(**request)
    return reply.get("MeteringRecordId", "")


def test_identical_repeat_returns_the_same_record(clocked: Emulator) -> None:
    """Sending the same hour twice is idempotent: one record, one id."""
    first = meter(clocked, UsageQuantity=5)
    assert meter(clocked, UsageQuantity=5) == first
    records = clocked.records()["meter_usage"]
    assert len(records) == 1
    record = records[0]
    assert record["metering_record_id"] == first
    assert (record["caller"], record["product_code"], record["dimension"]) == (
        "AKIDPOD1",
        PAID,
        "users",
    )
    assert (record["hour"], record["quantity"]) == ("2026-03-10T14:00:00Z", "5")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"UsageQuantity": 17}, {"UsageQuantityAsDecimal": "17.00"}),
        ({"UsageQuantityAsDecimal": "17.0"}, {"UsageQuantity": 17}),
        ({"UsageQuantityAsDecimal": "17.5"}, {"UsageQuantityAsDecimal": "17.500000"}),
    ],
    ids=["int-then-decimal", "decimal-then-int", "trailing-zeros"],
)
def test_quantities_compare_by_value(
    clocked: Emulator, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """17, 17.0 and "17.00" are the same quantity, whichever field carries it."""
    assert meter(clocked, **first) == meter(clocked, **second)
    assert len(clocked.records()["meter_usage"]) == 1


def test_same_hour_other_quantity_is_a_duplicate(clocked: Emulator) -> None:
    """A different quantity for an already recorded hour answers DuplicateRequestException."""
    meter(clocked, UsageQuantity=5, Timestamp=FIXED_NOW.replace(minute=1))
    client = clocked.client()
    with pytest.raises(client.exceptions.DuplicateRequestException):
        client.meter_usage(
            ProductCode=PAID,
            Timestamp=FIXED_NOW.replace(minute=29),
            UsageDimension="users",
            UsageQuantity=6,
        )
    assert [r["quantity"] for r in clocked.records()["meter_usage"]] == ["5"]


def test_records_are_per_caller_dimension_and_hour(clocked: Emulator) -> None:
    """Other pods, other dimensions and other hours each get their own record."""
    ids = {
        meter(clocked, "AKIDPOD1", UsageQuantity=1),
        meter(clocked, "AKIDPOD2", UsageQuantity=2),
        meter(clocked, "AKIDPOD1", UsageQuantity=3, UsageDimension="gb"),
        meter(clocked, "AKIDPOD1", UsageQuantity=4, Timestamp=FIXED_NOW - timedelta(hours=1)),
    }
    assert len(ids) == 4
    assert len(clocked.records()["meter_usage"]) == 4


@pytest.mark.parametrize(
    ("timestamp", "accepted"),
    [
        (FIXED_NOW - timedelta(hours=6), True),
        (FIXED_NOW - timedelta(hours=6, seconds=1), False),
        (FIXED_NOW, True),
        (FIXED_NOW + timedelta(seconds=1), False),
    ],
    ids=["six-hours-edge", "older-than-six-hours", "now", "future"],
)
def test_timestamp_window(clocked: Emulator, timestamp: Any, accepted: bool) -> None:
    """Timestamps from six hours ago up to the emulator clock are accepted, others refused."""
    client = clocked.client()
    if accepted:
        meter(clocked, Timestamp=timestamp, UsageQuantity=1)
        return
    with pytest.raises(client.exceptions.TimestampOutOfBoundsException):
        meter(clocked, Timestamp=timestamp, UsageQuantity=1)


def test_clock_offset_moves_the_window(clocked: Emulator) -> None:
    """With the clock set two hours back, a timestamp one hour ago is in the future."""
    clocked.set_scenario(
        {"clock_offset_seconds": -7200, "products": {PAID: {"dimensions": ["users"]}}}
    )
    with pytest.raises(clocked.client().exceptions.TimestampOutOfBoundsException):
        meter(clocked, Timestamp=FIXED_NOW - timedelta(hours=1), UsageQuantity=1)


@pytest.mark.parametrize(
    ("params", "region", "expected"),
    [
        ({"ProductCode": "prod-unknown"}, "us-east-1", "InvalidProductCodeException"),
        ({"UsageDimension": "cpu"}, "us-east-1", "InvalidUsageDimensionException"),
        ({"ProductCode": "prod-lapsed"}, "us-east-1", "CustomerNotEntitledException"),
        ({}, "eu-central-1", "InvalidEndpointRegionException"),
    ],
    ids=["unknown-product", "unknown-dimension", "not-entitled", "other-region"],
)
def test_scenario_errors(
    clocked: Emulator, params: dict[str, Any], region: str, expected: str
) -> None:
    """Product, dimension, entitlement and region problems answer their modeled exceptions."""
    client = clocked.client(region=region)
    request: dict[str, Any] = {
        "ProductCode": PAID,
        "Timestamp": FIXED_NOW,
        "UsageDimension": "users",
        "UsageQuantity": 1,
    }
    request.update(params)
    with pytest.raises(getattr(client.exceptions, expected)):
        client.meter_usage(**request)
    assert clocked.records()["meter_usage"] == []


def test_client_token_reuse_with_other_parameters_conflicts(clocked: Emulator) -> None:
    """The same ClientToken with another quantity answers IdempotencyConflictException."""
    meter(clocked, UsageQuantity=1, ClientToken="tok-1")
    with pytest.raises(clocked.client().exceptions.IdempotencyConflictException):
        meter(clocked, UsageQuantity=1, ClientToken="tok-1", UsageDimension="gb")


def test_client_token_is_account_scoped_by_default(clocked: Emulator) -> None:
    """Another pod of the same account replaying a token gets the original record, no new one."""
    first = meter(clocked, "AKIDPOD1", UsageQuantity=1, ClientToken="tok-2")
    assert meter(clocked, "AKIDPOD2", UsageQuantity=1, ClientToken="tok-2") == first
    assert len(clocked.records()["meter_usage"]) == 1


def test_client_token_can_be_caller_scoped(clocked: Emulator) -> None:
    """With `client_token_scope: caller` each pod's token is its own."""
    clocked.set_scenario(
        {"client_token_scope": "caller", "products": {PAID: {"dimensions": ["users"]}}}
    )
    first = meter(clocked, "AKIDPOD1", UsageQuantity=1, ClientToken="tok-3")
    assert meter(clocked, "AKIDPOD2", UsageQuantity=1, ClientToken="tok-3") != first
    assert len(clocked.records()["meter_usage"]) == 2


def test_dry_run_validates_and_records_nothing(clocked: Emulator) -> None:
    """DryRun answers an empty success, records nothing, and still validates."""
    assert meter(clocked, UsageQuantity=1, DryRun=True) == ""
    assert clocked.records()["meter_usage"] == []
    with pytest.raises(clocked.client().exceptions.InvalidUsageDimensionException):
        meter(clocked, UsageQuantity=1, DryRun=True, UsageDimension="cpu")


def test_dry_run_error_reply(clocked: Emulator) -> None:
    """`dry_run_reply: error` answers the documented DryRunOperation code."""
    clocked.set_scenario({"dry_run_reply": "error", "products": {PAID: {"dimensions": ["users"]}}})
    with pytest.raises(clocked.client().exceptions.ClientError) as caught:
        meter(clocked, UsageQuantity=1, DryRun=True)
    assert error_code(caught.value) == "DryRunOperation"
    assert clocked.records()["meter_usage"] == []


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"UsageQuantity": 1, "UsageQuantityAsDecimal": "1"}, "can't specify both"),
        ({"UsageQuantityAsDecimal": "1.1234567"}, "regular expression"),
        ({"UsageQuantityAsDecimal": "01"}, "regular expression"),
        ({"UsageQuantity": -1}, "greater than or equal to 0"),
        ({"UsageQuantity": 2**31}, "less than or equal to 2147483647"),
        ({"UsageDimension": ""}, "length greater than or equal to 1"),
        ({"ClientToken": "t" * 65}, "less than or equal to 64"),
    ],
    ids=[
        "both-quantities",
        "seven-decimals",
        "leading-zero",
        "negative",
        "too-big",
        "empty-dimension",
        "long-token",
    ],
)
def test_request_validation(clocked: Emulator, params: dict[str, Any], fragment: str) -> None:
    """Constraint violations answer ValidationException with the rule in the message."""
    client = loose_client(clocked)
    request: dict[str, Any] = {
        "ProductCode": PAID,
        "Timestamp": recent(),
        "UsageDimension": "users",
    }
    request.update(params)
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.meter_usage(**request)
    assert error_code(caught.value) == "ValidationException"
    assert fragment in str(caught.value)

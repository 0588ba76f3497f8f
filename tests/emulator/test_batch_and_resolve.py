"""BatchMeterUsage (per-record statuses, whole-batch rejections) and ResolveCustomer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import FIXED_NOW, PAID, aws_error, loose_client

ACCOUNT = "123456789012"
SCENARIO: dict[str, Any] = {
    "products": {
        PAID: {"dimensions": ["users"]},
        "prod-lapsed": {"entitled": False, "dimensions": ["users"]},
    },
    "customers": {
        "token-abc": {"customer_aws_account_id": ACCOUNT, "product": PAID},
        "token-old": {"customer_aws_account_id": "210987654321", "product": PAID, "expired": True},
        "token-lapsed": {"customer_aws_account_id": "111122223333", "product": "prod-lapsed"},
    },
}


@pytest.fixture
def saas(clocked: Emulator) -> Emulator:
    """The fixed-clock emulator with SaaS customers."""
    clocked.set_scenario(SCENARIO)
    return clocked


def record(**fields: Any) -> dict[str, Any]:
    """A usage record for the default customer at FIXED_NOW."""
    base: dict[str, Any] = {
        "Timestamp": FIXED_NOW - timedelta(minutes=5),
        "Dimension": "users",
        "CustomerAWSAccountId": ACCOUNT,
        "Quantity": 1,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def batch(emu: Emulator, records: list[dict[str, Any]], product: str | None = PAID) -> Any:
    """One BatchMeterUsage through a client without client-side validation."""
    params: dict[str, Any] = {"UsageRecords": records}
    if product is not None:
        params["ProductCode"] = product
    return loose_client(emu).batch_meter_usage(**params)


def test_statuses_per_record(saas: Emulator) -> None:
    """Success, CustomerNotSubscribed and DuplicateRecord come back record by record."""
    first = batch(saas, [record(Quantity=2)])["Results"][0]
    assert first["Status"] == "Success"
    results = batch(
        saas,
        [
            record(Quantity=2),
            record(Quantity=3),
            record(CustomerAWSAccountId="999999999999"),
        ],
    )["Results"]
    assert [r["Status"] for r in results] == ["Success", "DuplicateRecord", "CustomerNotSubscribed"]
    assert results[0]["MeteringRecordId"] == first["MeteringRecordId"]
    assert len(saas.records()["batch_meter_usage"]) == 1


def test_license_arn_and_legacy_identifier(saas: Emulator) -> None:
    """Records name the buyer by account + LicenseArn (no ProductCode) or by CustomerIdentifier."""
    resolved = saas.client().resolve_customer(RegistrationToken="token-abc")
    by_license = record(LicenseArn=resolved["LicenseArn"])
    legacy = record(CustomerAWSAccountId=None, CustomerIdentifier=resolved["CustomerIdentifier"])
    assert batch(saas, [by_license], product=None)["Results"][0]["Status"] == "Success"
    assert batch(saas, [legacy])["Results"][0]["Status"] == "Success"
    stored = saas.records()["batch_meter_usage"]
    assert [r["license_arn"] for r in stored] == [resolved["LicenseArn"], None]


def test_unsubscribed_product_customer(saas: Emulator) -> None:
    """A customer of a product that is not entitled is CustomerNotSubscribed."""
    results = batch(saas, [record(CustomerAWSAccountId="111122223333")], product="prod-lapsed")
    assert results["Results"][0]["Status"] == "CustomerNotSubscribed"


@pytest.mark.parametrize(
    ("records", "product", "expected"),
    [
        (
            [record(), record(Timestamp=FIXED_NOW - timedelta(hours=24))],
            PAID,
            "TimestampOutOfBoundsException",
        ),
        (
            [record(Timestamp=FIXED_NOW + timedelta(seconds=1))],
            PAID,
            "TimestampOutOfBoundsException",
        ),
        ([record(Dimension="cpu")], PAID, "InvalidUsageDimensionException"),
        ([record()], "prod-unknown", "InvalidProductCodeException"),
        ([record(CustomerIdentifier="c-1")], PAID, "InvalidCustomerIdentifierException"),
        ([record(CustomerAWSAccountId=None)], PAID, "InvalidCustomerIdentifierException"),
        ([record()], None, "InvalidLicenseException"),
        (
            [record(LicenseArn="arn:aws:license-manager::1:license:l-0")],
            None,
            "InvalidLicenseException",
        ),
        (
            [record(Quantity=2, UsageAllocations=[{"AllocatedUsageQuantity": 1}])],
            PAID,
            "InvalidUsageAllocationsException",
        ),
        ([record(Quantity=1, QuantityAsDecimal="1")], PAID, "ValidationException"),
        ([record()] * 26, PAID, "ValidationException"),
    ],
    ids=[
        "one-record-too-old",
        "future",
        "unknown-dimension",
        "unknown-product",
        "both-identifiers",
        "no-identifier",
        "no-product-no-license",
        "unknown-license",
        "bad-allocations",
        "both-quantities",
        "26-records",
    ],
)
def test_whole_batch_rejections(
    saas: Emulator, records: list[dict[str, Any]], product: str | None, expected: str
) -> None:
    """One bad record rejects the whole batch and nothing is recorded."""
    with aws_error(expected):
        batch(saas, records, product=product)
    assert saas.records()["batch_meter_usage"] == []


def test_batch_window_is_24_hours(saas: Emulator) -> None:
    """A record 23 hours old is accepted (the model's 24-hour window for UsageRecord)."""
    old = record(Timestamp=FIXED_NOW - timedelta(hours=23))
    assert batch(saas, [old])["Results"][0]["Status"] == "Success"


def test_unprocessed_fault(saas: Emulator) -> None:
    """The `unprocessed` fault hands every record back in UnprocessedRecords, once."""
    saas.set_scenario(
        {**SCENARIO, "faults": [{"op": "BatchMeterUsage", "kind": "unprocessed", "count": 1}]}
    )
    first = batch(saas, [record()])
    assert (first["Results"], len(first["UnprocessedRecords"])) == ([], 1)
    assert batch(saas, first["UnprocessedRecords"])["Results"][0]["Status"] == "Success"


def test_resolve_customer(saas: Emulator) -> None:
    """A scenario token resolves to the customer's identifiers."""
    reply = saas.client().resolve_customer(RegistrationToken="token-abc")
    assert (reply["CustomerAWSAccountId"], reply["ProductCode"]) == (ACCOUNT, PAID)
    assert reply["LicenseArn"].startswith(f"arn:aws:license-manager::{ACCOUNT}:license:")
    assert reply["CustomerIdentifier"]


@pytest.mark.parametrize(
    ("token", "expected"),
    [("token-old", "ExpiredTokenException"), ("token-nope", "InvalidTokenException")],
    ids=["expired", "unknown"],
)
def test_resolve_customer_errors(saas: Emulator, token: str, expected: str) -> None:
    """Expired and unknown registration tokens answer their modeled exceptions."""
    client = saas.client()
    with pytest.raises(getattr(client.exceptions, expected)):
        client.resolve_customer(RegistrationToken=token)


def test_other_region_is_refused_at_the_signature(saas: Emulator) -> None:
    """BatchMeterUsage and ResolveCustomer signed for another region: 403 InvalidSignature."""
    client = saas.client(region="eu-west-1")
    with aws_error("InvalidSignatureException"):
        client.resolve_customer(RegistrationToken="token-abc")
    with aws_error("InvalidSignatureException"):
        client.batch_meter_usage(ProductCode=PAID, UsageRecords=[])

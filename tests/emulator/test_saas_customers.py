"""SaaS buyers as clients name them: Smithy defaults, two identifiers, two levels, AgreementId."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import FIXED_NOW, PAID, aws_error, loose_client, send, signed

ACCOUNT = "123456789012"
SCENARIO: dict[str, Any] = {
    "products": {
        PAID: {"dimensions": ["users"]},
        "prod-new": {"dimensions": ["users"], "saas_integration": "concurrent-agreements"},
    },
    "customers": {
        "token-abc": {
            "customer_aws_account_id": ACCOUNT,
            "product": PAID,
            "customer_identifier": "cust-abc",
        },
        "token-new": {
            "customer_aws_account_id": "210987654321",
            "product": "prod-new",
            "agreement_id": "agmt-0123456789abcdef",
        },
    },
}
WHEN = FIXED_NOW - timedelta(minutes=5)


@pytest.fixture
def saas(clocked: Emulator) -> Emulator:
    """The fixed-clock emulator with a legacy and a concurrent-agreements SaaS product."""
    clocked.set_scenario(SCENARIO)
    return clocked


def batch(emu: Emulator, records: list[dict[str, Any]], product: str | None = PAID) -> Any:
    """One BatchMeterUsage through a client without client-side validation."""
    params: dict[str, Any] = {"UsageRecords": records}
    if product is not None:
        params["ProductCode"] = product
    return loose_client(emu).batch_meter_usage(**params)


def usage(quantity: int = 1, **buyer: str) -> dict[str, Any]:
    """One `users` record at WHEN for the buyer named by `buyer`."""
    return {"Timestamp": WHEN, "Dimension": "users", "Quantity": quantity, **buyer}


def raw_call(emu: Emulator, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST `body` as it is (no SDK serializer), signed with botocore's own SigV4 signer."""
    raw = json.dumps(body, default=lambda moment: moment.timestamp()).encode()
    headers = signed(emu.url + "/", raw, f"AWSMPMeteringService.{operation}")
    status, _, answer = send(emu, raw, headers)
    return status, answer


def test_smithy_defaults_are_not_set(saas: Emulator) -> None:
    """`ProductCode: ""` and `CustomerIdentifier: ""`, as a Smithy-generated client sends them,
    mean "not set": a license-level record by account id is accepted."""
    license_arn = saas.client().resolve_customer(RegistrationToken="token-abc")["LicenseArn"]
    record = usage(CustomerIdentifier="", CustomerAWSAccountId=ACCOUNT, LicenseArn=license_arn)
    status, reply = raw_call(saas, "BatchMeterUsage", {"ProductCode": "", "UsageRecords": [record]})
    assert (status, reply["Results"][0]["Status"]) == (200, "Success")
    assert "CustomerIdentifier" not in reply["Results"][0]["UsageRecord"]
    assert saas.records()["batch_meter_usage"][0]["license_arn"] == license_arn


def test_an_empty_identifier_with_product_code_is_the_account(saas: Emulator) -> None:
    """Product level: `CustomerIdentifier: ""` next to an account id names the account's buyer."""
    record = usage(CustomerIdentifier="", CustomerAWSAccountId=ACCOUNT)
    status, reply = raw_call(
        saas, "BatchMeterUsage", {"ProductCode": PAID, "UsageRecords": [record]}
    )
    assert (status, reply["Results"][0]["Status"]) == (200, "Success")


def test_an_empty_identifier_alone_names_nobody(saas: Emulator) -> None:
    """Only `CustomerIdentifier: ""` (the default) is a record without a buyer."""
    status, reply = raw_call(
        saas,
        "BatchMeterUsage",
        {"ProductCode": PAID, "UsageRecords": [usage(CustomerIdentifier="")]},
    )
    assert (status, reply["__type"]) == (400, "InvalidCustomerIdentifierException")


@pytest.mark.parametrize(
    ("second", "status"),
    [(1, "Success"), (2, "DuplicateRecord")],
    ids=["same-quantity-is-idempotent", "other-quantity-is-a-duplicate"],
)
def test_identifier_and_account_id_are_one_customer(
    saas: Emulator, second: int, status: str
) -> None:
    """The same buyer by CustomerIdentifier, then by account id, in one hour: one record."""
    first = batch(saas, [usage(1, CustomerIdentifier="cust-abc")])["Results"][0]
    again = batch(saas, [usage(second, CustomerAWSAccountId=ACCOUNT)])["Results"][0]
    assert again["Status"] == status
    if status == "Success":
        assert again["MeteringRecordId"] == first["MeteringRecordId"]
    stored = saas.records()["batch_meter_usage"]
    assert [(r["customer_aws_account_id"], r["customer_identifier"]) for r in stored] == [
        (ACCOUNT, "cust-abc")
    ]


def test_product_and_license_level_are_billed_twice_and_marked(saas: Emulator) -> None:
    """Product level and license level for one buyer and hour are two bills (the model says so):
    the emulator keeps both and the second names the first in `also_billed_as`."""
    license_arn = saas.client().resolve_customer(RegistrationToken="token-abc")["LicenseArn"]
    by_product = batch(saas, [usage(CustomerAWSAccountId=ACCOUNT)])["Results"][0]
    by_license = batch(
        saas, [usage(CustomerAWSAccountId=ACCOUNT, LicenseArn=license_arn)], product=None
    )["Results"][0]
    assert by_license["Status"] == "Success"
    assert by_license["MeteringRecordId"] != by_product["MeteringRecordId"]
    stored = saas.records()["batch_meter_usage"]
    assert [r["also_billed_as"] for r in stored] == [None, by_product["MeteringRecordId"]]


def test_resolve_customer_carries_the_agreement_id(saas: Emulator) -> None:
    """Every answer has Metadata.AgreementId matching the model's pattern; legacy products also
    get a CustomerIdentifier."""
    reply = saas.client().resolve_customer(RegistrationToken="token-abc")
    assert re.fullmatch(rules.AGREEMENT_ID, reply["Metadata"]["AgreementId"])
    assert reply["CustomerIdentifier"] == "cust-abc"


def test_concurrent_agreements_products_get_no_customer_identifier(saas: Emulator) -> None:
    """A new integration's buyer resolves to account id, LicenseArn and agreement only."""
    reply = saas.client().resolve_customer(RegistrationToken="token-new")
    assert "CustomerIdentifier" not in reply
    assert reply["Metadata"] == {"AgreementId": "agmt-0123456789abcdef"}
    assert (reply["CustomerAWSAccountId"], reply["ProductCode"]) == ("210987654321", "prod-new")


def test_concurrent_agreements_products_refuse_customer_identifier(saas: Emulator) -> None:
    """BatchMeterUsage for a new integration names buyers by account id, never by identifier."""
    with aws_error("InvalidCustomerIdentifierException"):
        batch(saas, [usage(CustomerIdentifier="cust-anything")], product="prod-new")
    ok = batch(saas, [usage(CustomerAWSAccountId="210987654321")], product="prod-new")
    assert ok["Results"][0]["Status"] == "Success"

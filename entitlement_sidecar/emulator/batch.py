"""BatchMeterUsage (SaaS): up to 25 records per call, each for one buyer, dimension and hour.

Buyers are the scenario's `customers`. A record names its buyer by CustomerIdentifier (legacy) or
CustomerAWSAccountId, under the request's ProductCode (product level) or a LicenseArn (license
level). Both spellings of the same buyer are one customer, decided from the scenario's mapping
(token -> account id, identifier, license): sending the same hour once by identifier and once by
account id is an idempotent repeat or a DuplicateRecord, never a second bill. The two levels are
billed separately, as the model's documentation warns, and the emulator marks such overlaps.
Every stateless check runs first; one bad record rejects the whole batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from entitlement_sidecar.emulator.entitlement import product_error
from entitlement_sidecar.emulator.metering import check_dimension
from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.scenario import Scenario
from entitlement_sidecar.emulator.state import Allocations, BatchRecord, Call, State, World
from entitlement_sidecar.emulator.usage import (
    allocations,
    check_batch_window,
    hour_of,
    moment,
    quantity,
)
from entitlement_sidecar.emulator.validation import validate_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Resolved:
    """A batch record after every stateless check: which buyer, at which level, billable or not.

    `buyer` is the scenario customer's account id whichever way the record named them
    (CustomerIdentifier or CustomerAWSAccountId), so both spellings are one customer. `level` is
    "product" for records under the request's ProductCode and "license" for records naming a
    LicenseArn: AWS bills those separately (see `_record`).
    """

    raw: dict[str, Any]
    code: str
    level: str
    license_arn: str | None
    buyer: str | None
    identifier: str | None
    subscribed: bool
    when: datetime
    amount: Decimal
    allocated: Allocations

    def key(self, hour: datetime) -> tuple[str, str, str, str, datetime]:
        """One record per level, product or license, buyer, dimension and hour."""
        return (
            self.level,
            self.license_arn or self.code,
            self.buyer or "",
            self.raw["Dimension"],
            hour,
        )


def _resolve(scenario: Scenario, product_code: str | None, raw: dict[str, Any]) -> _Resolved:
    identifier, account = raw.get("CustomerIdentifier"), raw.get("CustomerAWSAccountId")
    if (identifier is None) == (account is None):
        raise ApiError(
            "InvalidCustomerIdentifierException",
            "Each record needs exactly one of CustomerIdentifier or CustomerAWSAccountId",
        )
    license_arn: str | None = raw.get("LicenseArn")
    customers = scenario.customers
    if license_arn is not None:
        candidates = [t for t in customers if scenario.license_of(t) == license_arn]
        if not candidates or product_code not in {None, customers[candidates[0]].product}:
            raise ApiError("InvalidLicenseException", f"Unknown license {license_arn!r}")
        code = customers[candidates[0]].product
    elif product_code is None:
        raise ApiError("InvalidLicenseException", "LicenseArn is required without ProductCode")
    else:
        code = product_code
        candidates = [t for t in customers if customers[t].product == code]
    product = scenario.products[code]
    product_error(product, code)
    if identifier is not None and product.saas_integration != "legacy":
        raise ApiError(
            "InvalidCustomerIdentifierException",
            f"Product {code!r} is integrated for concurrent agreements: name the buyer by "
            "CustomerAWSAccountId (CustomerIdentifier is not supported for new integrations)",
        )
    check_dimension(product, code, raw["Dimension"])
    amount, decimal = quantity(raw, "Quantity", "QuantityAsDecimal")
    matches = [
        t
        for t in candidates
        if identifier in {None, scenario.identifier_of(t)}
        and account in {None, customers[t].customer_aws_account_id}
    ]
    buyer = customers[matches[0]].customer_aws_account_id if matches else None
    return _Resolved(
        raw=raw,
        code=code,
        level="license" if license_arn is not None else "product",
        license_arn=license_arn,
        buyer=buyer,
        identifier=scenario.identifier_of(matches[0]) if matches else None,
        subscribed=bool(matches) and product.entitled,
        when=moment(raw["Timestamp"]),
        amount=amount,
        allocated=allocations(raw.get("UsageAllocations"), decimal, amount),
    )


def batch_meter_usage(world: World, call: Call) -> dict[str, Any]:
    """Record up to 25 SaaS usage records; one bad record rejects the whole batch."""
    body = validate_input("BatchMeterUsage", call.body)
    scenario = world.scenario
    product_code: str | None = body.get("ProductCode")
    if product_code is not None and product_code not in scenario.products:
        raise ApiError("InvalidProductCodeException", f"Unknown product code {product_code!r}")
    resolved = [_resolve(scenario, product_code, raw) for raw in body["UsageRecords"]]
    for item in resolved:
        check_batch_window(item.when, call.now)
    if "unprocessed" in call.faults:
        return {"Results": [], "UnprocessedRecords": body["UsageRecords"]}
    results: list[dict[str, Any]] = []
    state = world.state
    with state.lock:
        for item in resolved:
            results.append(_record(state, call, item))
    return {"Results": results, "UnprocessedRecords": []}


def _record(state: State, call: Call, item: _Resolved) -> dict[str, Any]:
    """Success (new or identical repeat), DuplicateRecord or CustomerNotSubscribed; lock held.

    A buyer metered at the product level (ProductCode + CustomerIdentifier or account id) and at
    the license level (LicenseArn) for the same dimension and hour is billed twice, as the
    model's documentation of `BatchMeterUsageRequest.ProductCode` warns: both records are kept
    and the later one names the earlier in `also_billed_as`, so a test can catch it.
    """
    if not item.subscribed or item.buyer is None:
        return {"UsageRecord": item.raw, "Status": "CustomerNotSubscribed"}
    hour = hour_of(item.when)
    key = item.key(hour)
    existing: BatchRecord | None = state.batch.get(key)
    if existing is None:
        other = state.batch_levels.get((item.code, item.buyer, key[3], hour, _OTHER[item.level]))
        existing = BatchRecord(
            caller=call.caller.access_key_id,
            product_code=item.code,
            customer=f"{item.level}:{key[1]}/{item.buyer}",
            customer_aws_account_id=item.buyer,
            customer_identifier=item.identifier,
            license_arn=item.license_arn,
            dimension=key[3],
            hour=hour,
            timestamp=item.when,
            quantity=item.amount,
            allocations=item.allocated,
            also_billed_as=other,
        )
        state.batch[key] = existing
        state.batch_log.append(existing)
        state.batch_levels.setdefault(
            (item.code, item.buyer, key[3], hour, item.level), existing.metering_record_id
        )
        if other is not None:
            log.warning(
                "BatchMeterUsage: %s metered at both the product and the license level for %s in "
                "hour %s: AWS bills both records",
                item.buyer,
                key[3],
                hour.isoformat(),
            )
    elif (existing.quantity, existing.allocations) != (item.amount, item.allocated):
        return {"UsageRecord": item.raw, "Status": "DuplicateRecord"}
    return {
        "UsageRecord": item.raw,
        "MeteringRecordId": existing.metering_record_id,
        "Status": "Success",
    }


_OTHER = {"product": "license", "license": "product"}

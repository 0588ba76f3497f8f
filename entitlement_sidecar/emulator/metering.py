"""MeterUsage (one record per caller, product, dimension and hour) and BatchMeterUsage (SaaS).

Every check that does not need the shared state runs first, outside the lock; the lock is then
held only for the idempotency decision (ClientToken, hourly duplicate) and the write, so
concurrent pods each get exactly one record per hour.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from entitlement_sidecar.emulator.entitlement import product_for
from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.scenario import Product, Scenario
from entitlement_sidecar.emulator.state import (
    Allocations,
    BatchRecord,
    Call,
    MeterRecord,
    State,
    World,
)
from entitlement_sidecar.emulator.usage import (
    allocations,
    check_batch_window,
    check_meter_window,
    hour_of,
    moment,
    quantity,
)
from entitlement_sidecar.emulator.validation import validate_input

DRY_RUN_MESSAGE = "Request would have succeeded, but DryRun flag is set."


def _usable(product: Product, code: str, dimension: str) -> None:
    if product.error is not None:
        raise ApiError(product.error, f"Product {code!r} answers {product.error} (scenario)")
    if dimension not in product.dimensions:
        raise ApiError(
            "InvalidUsageDimensionException",
            f"Dimension {dimension!r} is not a dimension of product {code!r}",
        )


def meter_usage(world: World, call: Call) -> dict[str, Any]:
    """Record one hourly usage value for the calling pod, idempotently."""
    body = call.body
    validate_input("MeterUsage", body)
    amount, decimal = quantity(body, "UsageQuantity", "UsageQuantityAsDecimal")
    code: str = body["ProductCode"]
    dimension: str = body["UsageDimension"]
    product = product_for(world, call, code, "InvalidEndpointRegionException")
    if product.error is None and not product.entitled:
        raise ApiError("CustomerNotEntitledException", f"Not entitled to product {code!r}")
    _usable(product, code, dimension)
    when = moment(body["Timestamp"])
    check_meter_window(when, call.now)
    allocated = allocations(body.get("UsageAllocations"), decimal, amount)
    token: str | None = body.get("ClientToken")
    caller = call.caller.access_key_id
    per_account = world.scenario.client_token_scope == "account"  # noqa: S105
    scope = call.account if per_account else caller
    fingerprint = (code, when.timestamp(), dimension, amount, allocated)
    hour = hour_of(when)
    state = world.state
    with state.lock:
        if token is not None and (scope, token) in state.tokens:
            seen, record_id = state.tokens[(scope, token)]
            if seen != fingerprint:
                raise ApiError(
                    "IdempotencyConflictException",
                    f"ClientToken {token!r} was already used with other parameters",
                )
            return (
                _dry_run(world.scenario) if body.get("DryRun") else {"MeteringRecordId": record_id}
            )
        existing = state.meter.get((caller, code, dimension, hour))
        if existing is not None and (existing.quantity, existing.allocations) != (
            amount,
            allocated,
        ):
            raise ApiError(
                "DuplicateRequestException",
                f"Usage for {dimension!r} in hour {hour.isoformat()} was already recorded "
                f"with quantity {existing.quantity} and other allocations or quantity",
            )
        if body.get("DryRun"):
            return _dry_run(world.scenario)
        if existing is None:
            existing = MeterRecord(
                caller,
                call.account,
                code,
                dimension,
                hour,
                when,
                amount,
                allocated,
                token,
                str(uuid.uuid4()),
            )
            state.meter[(caller, code, dimension, hour)] = existing
            state.meter_log.append(existing)
        if token is not None:
            state.tokens[(scope, token)] = (fingerprint, existing.metering_record_id)
        return {"MeteringRecordId": existing.metering_record_id}


def _dry_run(scenario: Scenario) -> dict[str, Any]:
    if scenario.dry_run_reply == "error":
        raise ApiError("DryRunOperation", DRY_RUN_MESSAGE)
    return {}


@dataclass(frozen=True)
class _Resolved:
    """A batch record after every stateless check: where it goes and whether it is billable."""

    raw: dict[str, Any]
    code: str
    customer: str
    account: str | None
    license_arn: str | None
    subscribed: bool
    when: datetime
    amount: Decimal
    allocated: Allocations


def _resolve(scenario: Scenario, product_code: str | None, raw: dict[str, Any]) -> _Resolved:
    identifier, account = raw.get("CustomerIdentifier"), raw.get("CustomerAWSAccountId")
    if (identifier is None) == (account is None):
        raise ApiError(
            "InvalidCustomerIdentifierException",
            "Each record needs exactly one of CustomerIdentifier or CustomerAWSAccountId",
        )
    license_arn: str | None = raw.get("LicenseArn")
    tokens = list(scenario.customers)
    if license_arn is not None:
        owners = [t for t in tokens if scenario.license_of(t) == license_arn]
        if not owners or product_code not in {None, scenario.customers[owners[0]].product}:
            raise ApiError("InvalidLicenseException", f"Unknown license {license_arn!r}")
        code = scenario.customers[owners[0]].product
        matches = [
            t for t in owners if account in {None, scenario.customers[t].customer_aws_account_id}
        ]
        matches = [t for t in matches if identifier in {None, scenario.identifier_of(t)}]
    elif product_code is None:
        raise ApiError("InvalidLicenseException", "LicenseArn is required without ProductCode")
    else:
        code = product_code
        matches = [
            t
            for t in tokens
            if scenario.customers[t].product == code
            and (identifier is None or scenario.identifier_of(t) == identifier)
            and (account is None or scenario.customers[t].customer_aws_account_id == account)
        ]
    product = scenario.products[code]
    _usable(product, code, raw["Dimension"])
    amount, decimal = quantity(raw, "Quantity", "QuantityAsDecimal")
    customer = f"{license_arn or code}/{identifier or account}"
    return _Resolved(
        raw,
        code,
        customer,
        account,
        license_arn,
        bool(matches) and product.entitled,
        moment(raw["Timestamp"]),
        amount,
        allocations(raw.get("UsageAllocations"), decimal, amount),
    )


def batch_meter_usage(world: World, call: Call, unprocessed: bool = False) -> dict[str, Any]:
    """Record up to 25 SaaS usage records; one bad record rejects the whole batch."""
    body = call.body
    validate_input("BatchMeterUsage", body)
    scenario = world.scenario
    product_code: str | None = body.get("ProductCode")
    if product_code is not None and product_code not in scenario.products:
        raise ApiError("InvalidProductCodeException", f"Unknown product code {product_code!r}")
    resolved = [_resolve(scenario, product_code, raw) for raw in body["UsageRecords"]]
    for item in resolved:
        check_batch_window(item.when, call.now)
    if unprocessed:
        return {"Results": [], "UnprocessedRecords": body["UsageRecords"]}
    results: list[dict[str, Any]] = []
    state = world.state
    with state.lock:
        for item in resolved:
            results.append(_record(state, call, item))
    return {"Results": results, "UnprocessedRecords": []}


def _record(state: State, call: Call, item: _Resolved) -> dict[str, Any]:
    if not item.subscribed:
        return {"UsageRecord": item.raw, "Status": "CustomerNotSubscribed"}
    dimension: str = item.raw["Dimension"]
    key = (item.code, item.customer, dimension, hour_of(item.when))
    existing: BatchRecord | None = state.batch.get(key)
    if existing is None:
        existing = BatchRecord(
            call.caller.access_key_id,
            item.code,
            item.customer,
            item.account,
            item.license_arn,
            dimension,
            key[3],
            item.when,
            item.amount,
            item.allocated,
            str(uuid.uuid4()),
        )
        state.batch[key] = existing
        state.batch_log.append(existing)
    elif (existing.quantity, existing.allocations) != (item.amount, item.allocated):
        return {"UsageRecord": item.raw, "Status": "DuplicateRecord"}
    return {
        "UsageRecord": item.raw,
        "MeteringRecordId": existing.metering_record_id,
        "Status": "Success",
    }

"""MeterUsage (one record per caller, product, dimension and hour) and BatchMeterUsage (SaaS).

Every check that does not need the shared state runs first, outside the lock; the lock is then
held only for the idempotency decision (ClientToken, hourly duplicate) and the write, so
concurrent pods each get exactly one record per hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from entitlement_sidecar.emulator.entitlement import product_error, product_for
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


def _dimension(product: Product, code: str, dimension: str) -> None:
    if dimension not in product.dimensions:
        raise ApiError(
            "InvalidUsageDimensionException",
            f"Dimension {dimension!r} is not a dimension of product {code!r}",
        )


@dataclass(frozen=True)
class _Usage:
    """A MeterUsage request after every stateless check."""

    code: str
    dimension: str
    when: datetime
    amount: Decimal
    allocated: Allocations
    token: str | None

    def fingerprint(self) -> tuple[Any, ...]:
        """What a ClientToken replay must repeat (quantities by value, allocations sorted)."""
        return (self.code, self.when.timestamp(), self.dimension, self.amount, self.allocated)


def meter_usage(world: World, call: Call) -> dict[str, Any]:
    """Record one hourly usage value for the calling pod, idempotently."""
    body = call.body
    validate_input("MeterUsage", body)
    amount, decimal = quantity(body, "UsageQuantity", "UsageQuantityAsDecimal")
    code: str = body["ProductCode"]
    product = product_for(world, call, code, "InvalidEndpointRegionException")
    product_error(product, code)
    if not product.entitled:
        raise ApiError("CustomerNotEntitledException", f"Not entitled to product {code!r}")
    _dimension(product, code, body["UsageDimension"])
    when = moment(body["Timestamp"])
    check_meter_window(when, call.now)
    usage = _Usage(
        code=code,
        dimension=body["UsageDimension"],
        when=when,
        amount=amount,
        allocated=allocations(body.get("UsageAllocations"), decimal, amount),
        token=body.get("ClientToken"),
    )
    dry_run = bool(body.get("DryRun"))
    with world.state.lock:
        record_id = _commit(world, call, usage, dry_run)
    if dry_run:
        if world.scenario.dry_run_reply == "error":
            raise ApiError("DryRunOperation", DRY_RUN_MESSAGE)
        return {}
    return {"MeteringRecordId": record_id}


def _commit(world: World, call: Call, usage: _Usage, dry_run: bool) -> str:
    """The record id for `usage` (new or idempotent), or the conflict error; lock held."""
    state = world.state
    caller = call.caller.access_key_id
    per_account = world.scenario.client_token_scope == "account"  # noqa: S105
    token_key = (call.account if per_account else caller, usage.token or "")
    if usage.token is not None and token_key in state.tokens:
        seen, record_id = state.tokens[token_key]
        if seen != usage.fingerprint():
            raise ApiError(
                "IdempotencyConflictException",
                f"ClientToken {usage.token!r} was already used with other parameters",
            )
        return record_id
    key = (caller, usage.code, usage.dimension, hour_of(usage.when))
    existing = state.meter.get(key)
    if existing is not None and (existing.quantity, existing.allocations) != (
        usage.amount,
        usage.allocated,
    ):
        raise ApiError(
            "DuplicateRequestException",
            f"Usage for {usage.dimension!r} in hour {key[3].isoformat()} is already recorded "
            f"(quantity {existing.quantity}); recorded values cannot change",
        )
    if dry_run:
        return ""
    if existing is None:
        existing = MeterRecord(
            caller=caller,
            account=call.account,
            product_code=usage.code,
            dimension=usage.dimension,
            hour=key[3],
            timestamp=usage.when,
            quantity=usage.amount,
            allocations=usage.allocated,
            client_token=usage.token,
        )
        state.meter[key] = existing
        state.meter_log.append(existing)
    if usage.token is not None:
        state.tokens[token_key] = (usage.fingerprint(), existing.metering_record_id)
    return existing.metering_record_id


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
    product_error(product, code)
    _dimension(product, code, raw["Dimension"])
    amount, decimal = quantity(raw, "Quantity", "QuantityAsDecimal")
    return _Resolved(
        raw=raw,
        code=code,
        customer=f"{license_arn or code}/{identifier or account}",
        account=account,
        license_arn=license_arn,
        subscribed=bool(matches) and product.entitled,
        when=moment(raw["Timestamp"]),
        amount=amount,
        allocated=allocations(raw.get("UsageAllocations"), decimal, amount),
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
            caller=call.caller.access_key_id,
            product_code=item.code,
            customer=item.customer,
            customer_aws_account_id=item.account,
            license_arn=item.license_arn,
            dimension=dimension,
            hour=key[3],
            timestamp=item.when,
            quantity=item.amount,
            allocations=item.allocated,
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

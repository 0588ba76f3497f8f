"""MeterUsage: one record per caller (pod or task), product, dimension and hour.

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
from entitlement_sidecar.emulator.scenario import Product
from entitlement_sidecar.emulator.state import (
    Allocations,
    Call,
    MeterRecord,
    World,
)
from entitlement_sidecar.emulator.usage import (
    allocations,
    check_meter_window,
    hour_of,
    moment,
    quantity,
)
from entitlement_sidecar.emulator.validation import validate_input

DRY_RUN_MESSAGE = "Request would have succeeded, but DryRun flag is set."


def check_dimension(product: Product, code: str, dimension: str) -> None:
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
    body = validate_input("MeterUsage", call.body)
    amount, decimal = quantity(body, "UsageQuantity", "UsageQuantityAsDecimal")
    code: str = body["ProductCode"]
    product = product_for(world, call, code, "InvalidEndpointRegionException")
    product_error(product, code)
    if not product.entitled:
        raise ApiError("CustomerNotEntitledException", f"Not entitled to product {code!r}")
    check_dimension(product, code, body["UsageDimension"])
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

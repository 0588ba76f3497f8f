"""Pure rules for usage records: quantities by value, allocations, hours and timestamp windows.

Shared by MeterUsage and BatchMeterUsage. Nothing here touches state or sockets; every function
either returns canonical values or raises the `ApiError` the service documents.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator.protocol import ApiError, validation_error
from entitlement_sidecar.emulator.state import Allocations, Tags

METER_WINDOW = timedelta(seconds=rules.METER_WINDOW_SECONDS)  # "up to six hours in the past"
BATCH_WINDOW = timedelta(seconds=rules.BATCH_WINDOW_SECONDS)  # UsageRecord: 24 h (the model)
BILLING_GRACE = timedelta(hours=6)  # previous month's records accepted until 06:00 UTC on the 1st
MAX_TAG_KEYS = rules.TAG_KEYS_PER_REQUEST


def quantity(record: dict[str, Any], int_name: str, decimal_name: str) -> tuple[Decimal, bool]:
    """The record's quantity by value and whether it was sent as a decimal string."""
    whole, text = record.get(int_name), record.get(decimal_name)
    if whole is not None and text is not None:
        raise validation_error(f"You can't specify both {int_name} and {decimal_name}.")
    if text is not None:
        return Decimal(text), True
    return Decimal(whole or 0), False


def allocations(raw: list[dict[str, Any]] | None, decimal: bool, total: Decimal) -> Allocations:
    """Canonical allocations (sorted), or InvalidUsageAllocations/InvalidTag per the docs."""
    if raw is None:
        return ()
    seen: set[Tags] = set()
    keys: set[str] = set()
    result: list[tuple[Tags, Decimal]] = []
    for index, item in enumerate(raw, start=1):
        amount = _allocated(item, decimal, index)
        pairs = [(tag["Key"], tag["Value"]) for tag in item.get("Tags") or []]
        names = [key for key, _ in pairs]
        if len(set(names)) != len(names):
            raise ApiError("InvalidTagException", f"Allocation {index} repeats a tag key")
        keys.update(names)
        tags: Tags = tuple(sorted(pairs))
        if tags in seen:
            raise ApiError(
                "InvalidUsageAllocationsException",
                f"Allocation {index} repeats the tag set of an earlier allocation",
            )
        seen.add(tags)
        result.append((tags, amount))
    if len(keys) > MAX_TAG_KEYS:
        raise ApiError(
            "InvalidTagException",
            f"At most {MAX_TAG_KEYS} distinct tag keys per request, got {len(keys)}",
        )
    allocated = sum((amount for _, amount in result), Decimal(0))
    if allocated != total:
        raise ApiError(
            "InvalidUsageAllocationsException",
            f"Allocated quantities sum to {allocated}, the usage quantity is {total}",
        )
    return tuple(sorted(result))


def _allocated(item: dict[str, Any], decimal: bool, index: int) -> Decimal:
    whole: Any = item.get("AllocatedUsageQuantity")
    text = item.get("AllocatedUsageQuantityAsDecimal")
    if (whole is None) == (text is None):
        raise ApiError(
            "InvalidUsageAllocationsException",
            f"Allocation {index} must set exactly one of AllocatedUsageQuantity "
            "or AllocatedUsageQuantityAsDecimal",
        )
    if decimal != (text is not None):
        wanted = "AllocatedUsageQuantityAsDecimal" if decimal else "AllocatedUsageQuantity"
        raise ApiError(
            "InvalidUsageAllocationsException",
            f"Allocation {index} must use {wanted}, the same quantity type as the usage",
        )
    return Decimal(text) if text is not None else Decimal(whole)


def moment(epoch_seconds: float) -> datetime:
    """An aware UTC datetime from wire epoch seconds."""
    try:
        return datetime.fromtimestamp(epoch_seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise validation_error(f"Timestamp {epoch_seconds} is out of range") from None


def hour_of(when: datetime) -> datetime:
    """The UTC hour a timestamp falls in (the service rounds down to the hour)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def check_meter_window(when: datetime, now: datetime) -> None:
    """MeterUsage accepts timestamps from six hours ago up to now."""
    if when > now:
        raise ApiError(
            "TimestampOutOfBoundsException", f"Timestamp {when.isoformat()} is in the future"
        )
    if when < now - METER_WINDOW:
        raise ApiError(
            "TimestampOutOfBoundsException",
            f"Timestamp {when.isoformat()} is more than 6 hours in the past",
        )


def check_batch_window(when: datetime, now: datetime) -> None:
    """Batch records: up to 24 hours back; the previous month only until 06:00 UTC on the 1st."""
    if when > now or when <= now - BATCH_WINDOW:
        raise ApiError(
            "TimestampOutOfBoundsException",
            f"Timestamp {when.isoformat()} is outside the 24-hour window",
        )
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if when < month_start <= now - BILLING_GRACE:
        raise ApiError(
            "TimestampOutOfBoundsException",
            f"Timestamp {when.isoformat()} is in a closed billing month",
        )

"""The ledger model: deterministic names, the write-ahead status, decoding, time formats."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.accounting import WorkloadUsage, usage_of
from entitlement_sidecar.operator.allocation import client_token, split
from entitlement_sidecar.operator.ledger import Phase
from entitlement_sidecar.operator.shards import allocation_documents, chunks
from entitlement_sidecar.operator.store import micro_time

HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize(
    ("dimension", "prefix"),
    [
        ("users", "users-2026112810-"),
        ("API.Calls_v2", "api-calls-v2-2026112810-"),
        ("@@", "dim-2026112810-"),
    ],
    ids=["plain", "slugged", "no-letters"],
)
def test_object_names_are_deterministic_valid_names(dimension: str, prefix: str) -> None:
    """Names are `<slug>-<yyyymmddhh>-<hash>`: valid, and fixed by product, dimension and hour."""
    name = ledger.object_name("prod-paid", dimension, HOUR)
    assert name.startswith(prefix)
    assert NAME.match(name)
    assert len(name) <= 63
    assert name == ledger.object_name("prod-paid", dimension, HOUR)
    assert name != ledger.object_name("prod-other", dimension, HOUR)


def test_write_ahead_status_decodes_to_the_same_request() -> None:
    """The Pending status carries the whole request; decoding it gives the identical request."""
    usage = {
        "shop/Deployment/web": WorkloadUsage(usage_of(Decimal("2.5")), (("team", "a"),)),
        "shop/StatefulSet/db": WorkloadUsage(usage_of(Decimal("1.25"))),
    }
    result = split(usage)
    token = client_token("prod-paid", "users", HOUR, result)
    obj = ledger.new_object("prod-paid", "users", HOUR, "billing")
    parts = chunks(allocation_documents(result.allocations))
    obj["status"] = ledger.pending_status(
        result, token, dry_run=False, send_after=HOUR, hour=HOUR, parts=parts
    )
    record = ledger.decode(obj)
    assert record.phase is Phase.PENDING
    request = record.request()
    assert (request.quantity, request.client_token) == (Decimal("3.75"), token)
    assert request.timestamp == datetime(2026, 11, 28, 10, 59, 59, tzinfo=UTC)
    assert request.allocations == result.allocations
    assert record.deadline == datetime(2026, 11, 28, 16, 59, 59, tzinfo=UTC)
    assert obj["metadata"]["labels"] == {ledger.OPEN_LABEL: "true"}


def test_accumulating_object_has_no_request() -> None:
    """An hour without its write-ahead values cannot be sent."""
    record = ledger.decode(ledger.new_object("prod-paid", "users", HOUR, "billing"))
    assert record.phase is Phase.ACCUMULATING
    with pytest.raises(ValueError, match="no write-ahead request"):
        record.request()


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (HOUR, "2026-11-28T10:00:00.000000Z"),
        (datetime(2026, 11, 28, 10, 0, 0, 5, tzinfo=UTC), "2026-11-28T10:00:00.000005Z"),
    ],
    ids=["whole-second", "microseconds"],
)
def test_lease_times_always_carry_microseconds(moment: datetime, text: str) -> None:
    """Lease times are MicroTime: six fractional digits even on a whole second."""
    assert micro_time(moment) == text

"""When the `run` parent starts its License Manager children, and when the pod is ready."""

from __future__ import annotations

from typing import Any

import pytest

from entitlement_sidecar.sidecar.license.readiness import epoch
from entitlement_sidecar.sidecar.license.schedule import (
    CHECKIN,
    EXTEND_MARGIN,
    GATE,
    HEARTBEAT,
    LicenseLoop,
)

NOW = epoch("2026-12-01T12:00:00.000Z") or 0.0


def iso(seconds_from_now: float) -> str:
    from entitlement_sidecar.sidecar.status import utc_now_iso

    return utc_now_iso(NOW + seconds_from_now)


def loop() -> LicenseLoop:
    return LicenseLoop(heartbeat=900, wait=30, checkin=10, spawn=lambda args: 0)


def entitled(**license: Any) -> dict[str, Any]:
    return {"state": "entitled", "entitled": True, "license": {"checked_at": iso(0), **license}}


def test_a_refused_gate_waits_for_a_seat_and_anything_else_for_a_heartbeat() -> None:
    """SeatsInUse: the gate again after the (jittered) wait; other refusals after a period."""
    waiting = loop()
    waiting.exited(GATE, 1, {"state": "denied", "reason": "SeatsInUse"}, NOW)
    assert waiting.next_args == GATE
    assert NOW + 15 <= (waiting.next_at or 0) < NOW + 45
    refused = loop()
    refused.exited(GATE, 1, {"state": "denied", "reason": "LicenseNotFound"}, NOW)
    assert (refused.next_args, refused.next_at) == (GATE, NOW + 900)
    assert not refused.ready({"state": "denied"}, NOW)


@pytest.mark.parametrize(
    ("license", "after"),
    [
        ({}, 900),
        ({"seat_held": True, "expiration": iso(3600)}, 900),
        ({"seat_held": True, "expiration": iso(600)}, 600 - EXTEND_MARGIN),
        ({"seat_held": False, "expiration": iso(600)}, 900),
        ({"lock_at": iso(120)}, 120),
        ({"lock_at": iso(-5)}, 900),
        ({"seat_held": True, "expiration": iso(10)}, 1),
    ],
    ids=[
        "period",
        "seat-far-from-expiry",
        "seat-expiring",
        "no-seat-held",
        "lock-time",
        "lock-passed",
        "never-sooner-than-a-second",
    ],
)
def test_the_heartbeat_comes_a_period_later_or_before_the_seat_or_lock_time(
    license: dict[str, Any], after: float
) -> None:
    """The earliest of: last check + period, seat expiry - margin, lock time; at least 1 s."""
    entitled_loop = loop()
    entitled_loop.exited(GATE, 0, entitled(**license), NOW)
    assert entitled_loop.next_args == HEARTBEAT
    assert entitled_loop.next_at == pytest.approx(NOW + after)


def test_a_due_child_is_handed_out_once() -> None:
    """`due` returns the planned child when its time comes, then nothing until re-planned."""
    planned = loop()
    planned.plan(HEARTBEAT, NOW + 5)
    assert planned.due(NOW + 4) is None
    assert planned.until_due(NOW + 4) == pytest.approx(1)
    assert planned.due(NOW + 5) == HEARTBEAT
    assert planned.due(NOW + 6) is None
    assert planned.until_due(NOW) is None


def test_readiness_needs_this_containers_gate_and_follows_the_license() -> None:
    """Not ready before the gate entitled this container; afterwards, whatever the status says."""
    fresh = loop()
    assert not fresh.ready(entitled(), NOW)
    fresh.exited(GATE, 0, entitled(), NOW)
    assert fresh.ready(entitled(), NOW)
    lost = {"state": "denied", "license": {"lost_at": iso(-60), "lock_at": iso(-1)}}
    assert not fresh.ready(lost, NOW)
    assert CHECKIN == ("license", "checkin", "--child")

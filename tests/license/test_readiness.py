"""Whether a pod may serve: entitled, or after a loss as the seller's policy says."""

from __future__ import annotations

from typing import Any

import pytest

from entitlement_sidecar.sidecar.license.readiness import epoch, serving

T0 = epoch("2026-12-01T12:00:00.000Z") or 0.0


def doc(state: str, **license: Any) -> dict[str, Any]:
    return {
        "state": state,
        "entitled": state == "entitled",
        "reason": "LicenseExpired",
        "license": license,
    }


@pytest.mark.parametrize(
    ("document", "now", "serves"),
    [
        (doc("entitled"), T0, True),
        (doc("pending"), T0, False),
        (doc("denied"), T0, False),
        (doc("denied", lost_at="2026-12-01T11:00:00.000Z", lock_at=None), T0 + 10**6, True),
        (
            doc("denied", lost_at="2026-12-01T11:00:00.000Z", lock_at="2026-12-01T12:00:00.001Z"),
            T0,
            True,
        ),
        (
            doc("denied", lost_at="2026-12-01T11:00:00.000Z", lock_at="2026-12-01T12:00:00.000Z"),
            T0,
            False,
        ),
        (doc("unavailable", lost_at="2026-12-01T11:00:00.000Z", lock_at=None), T0, False),
        (None, T0, False),
    ],
    ids=[
        "entitled",
        "pending",
        "refused-at-start",
        "lost-report-policy",
        "lost-within-grace",
        "lost-at-lock-time",
        "not-a-loss",
        "no-document",
    ],
)
def test_the_policy_decides_after_a_loss(
    document: dict[str, Any] | None, now: float, serves: bool
) -> None:
    """`report` keeps serving, `lock` until lock_at (exclusive); nothing else serves unentitled."""
    assert serving(document, now)[0] is serves


def test_timestamps_parse_to_epoch_seconds() -> None:
    """RFC 3339 with Z; garbage is None, never an exception."""
    assert epoch("1970-01-01T00:00:01.000Z") == 1.0
    assert epoch("not a time") is None
    assert epoch(None) is None

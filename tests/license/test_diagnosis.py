"""The most likely cause of a NoEntitlementsAllowedException, from the buyer's licenses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.license_manager import License, LicenseEntitlement
from entitlement_sidecar.sidecar.license.diagnosis import diagnose, shortfall
from entitlement_sidecar.sidecar.license.wants import Wants

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
SKU = "prod-contract"
SEATS = Wants((), (("seats", 1),))
TIERS = Wants(("basic", "pro"))


def lic(
    *entitlements: LicenseEntitlement,
    fingerprint: str = rules.MARKETPLACE_ISSUER_FINGERPRINT,
    status: str = "AVAILABLE",
    begin: datetime = NOW - timedelta(days=30),
    end: datetime | None = NOW + timedelta(days=30),
) -> License:
    return License(
        arn="arn:aws:license-manager::123456789012:license:l-1",
        sku=SKU,
        fingerprint=fingerprint,
        issuer_name="AWS/Marketplace",
        home_region="us-east-1",
        status=status,
        begin=begin,
        end=end,
        entitlements=entitlements,
        provisional_ttl_minutes=60,
    )


SEAT_POOL = LicenseEntitlement("seats", "Count", max_count=2)
PRO = LicenseEntitlement("pro", "None")


@pytest.mark.parametrize(
    ("wants", "licenses", "reason", "words"),
    [
        (SEATS, None, "NoEntitlementsAllowedException", "could not be read"),
        (SEATS, [], "LicenseNotFound", "no license"),
        (SEATS, [lic(SEAT_POOL, fingerprint="aws:111:me:fp")], "UntrustedIssuer", "not issued"),
        (SEATS, [lic(SEAT_POOL, status="EXPIRED")], "LicenseExpired", "expired"),
        (SEATS, [lic(SEAT_POOL, end=NOW - timedelta(seconds=1))], "LicenseExpired", "expired"),
        (SEATS, [lic(SEAT_POOL, status="SUSPENDED")], "LicenseNotActive", "SUSPENDED"),
        (SEATS, [lic(SEAT_POOL, begin=NOW + timedelta(days=1))], "LicenseNotActive", "starts"),
        (SEATS, [lic(PRO)], "EntitlementNotInLicense", "no counted"),
        (Wants((), (("seats", 3),)), [lic(SEAT_POOL)], "EntitlementNotInLicense", "2 seats"),
        (
            TIERS,
            [lic(LicenseEntitlement("enterprise", "None"))],
            "EntitlementNotInLicense",
            "none of",
        ),
        (SEATS, [lic(SEAT_POOL)], "SeatsInUse", "most likely"),
        (TIERS, [lic(PRO)], "NoEntitlementsAllowedException", "looks active"),
    ],
    ids=[
        "unreadable",
        "no-license",
        "self-issued",
        "expired-status",
        "past-validity",
        "suspended",
        "not-started",
        "no-counted-entitlement",
        "too-few-units",
        "tier-not-bought",
        "pool-empty",
        "unexplained",
    ],
)
def test_each_cause_has_its_reason(
    wants: Wants, licenses: list[License] | None, reason: str, words: str
) -> None:
    """No license, someone else's, expired, inactive, missing, or (most likely) seats taken."""
    got, message = diagnose(SKU, wants, licenses, NOW, lookup_error="AccessDeniedException")
    assert (got, words in message) == (reason, True), message


def test_the_most_recent_active_marketplace_license_decides() -> None:
    """An old expired license beside an active one does not hide the active one's seats."""
    old = lic(SEAT_POOL, status="EXPIRED", begin=NOW - timedelta(days=400))
    assert diagnose(SKU, SEATS, [old, lic(SEAT_POOL)], NOW)[0] == "SeatsInUse"


def test_overage_means_no_shortfall() -> None:
    """A pool that allows overage never lacks units."""
    pool = LicenseEntitlement("seats", "Count", max_count=0, overage=True)
    assert shortfall(lic(pool), Wants((), (("seats", 5),))) is None

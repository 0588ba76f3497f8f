"""Why CheckoutLicense said `NoEntitlementsAllowedException`: the most likely cause, in one line.

AWS answers the same error when the buyer has no license and when every seat is in use (a seller
once locked a paying 1-seat buyer out for an hour by mistaking one for the other). After the
retry, the sidecar looks at the buyer's licenses for the SKU (ListReceivedLicenses, then
GetLicense where permitted) and this pure function names the cause: no license at all, one the
buyer issued themselves (another issuer fingerprint), expired or inactive, lacking the configured
entitlement (or too few units), or, when the license is fine and counted, most likely all seats
taken. When the licenses cannot be read it says so and keeps AWS's code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.license_manager import UNIT_COUNT, License
from entitlement_sidecar.sidecar.license.schedule import SEATS_IN_USE
from entitlement_sidecar.sidecar.license.wants import Wants

NO_ENTITLEMENTS = "NoEntitlementsAllowedException"
LICENSE_NOT_FOUND = "LicenseNotFound"
UNTRUSTED_ISSUER = "UntrustedIssuer"
LICENSE_EXPIRED = "LicenseExpired"
LICENSE_NOT_ACTIVE = "LicenseNotActive"
ENTITLEMENT_NOT_IN_LICENSE = "EntitlementNotInLicense"

# Reasons that describe the license itself: a heartbeat that meets one has lost the license.
DEFINITIVE = frozenset(
    {
        LICENSE_NOT_FOUND,
        UNTRUSTED_ISSUER,
        LICENSE_EXPIRED,
        LICENSE_NOT_ACTIVE,
        ENTITLEMENT_NOT_IN_LICENSE,
    }
)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "an unknown date"


def _active(lic: License, now: datetime) -> bool:
    started = lic.begin is None or lic.begin <= now
    return lic.status == "AVAILABLE" and started and (lic.end is None or now < lic.end)


def diagnose(
    sku: str,
    wants: Wants,
    licenses: Sequence[License] | None,
    now: datetime,
    lookup_error: str | None = None,
) -> tuple[str, str]:
    """(reason, message) for a refused checkout; `licenses` None when they could not be read."""
    if licenses is None:
        return NO_ENTITLEMENTS, (
            f"no license for {sku}, or every unit in use: AWS answers both alike, and the "
            f"buyer's licenses could not be read to tell them apart ({lookup_error or 'unknown'})"
        )
    found = current_license(sku, licenses, now)
    if isinstance(found, tuple):
        return found
    return _entitlements(found, wants)


def current_license(
    sku: str, licenses: Sequence[License], now: datetime
) -> License | tuple[str, str]:
    """The license AWS would use (the most recent active Marketplace one), or why there is none."""
    if not licenses:
        return LICENSE_NOT_FOUND, (
            f"the buyer has no license for product {sku} in this Region: no active AWS "
            "Marketplace agreement (or it lives in another Region)"
        )
    marketplace = [lic for lic in licenses if lic.from_marketplace]
    if not marketplace:
        issuers = sorted({lic.fingerprint or "?" for lic in licenses})
        return UNTRUSTED_ISSUER, (
            f"the license for {sku} was not issued by AWS Marketplace (issuer fingerprint "
            f"{', '.join(issuers)[:200]}; only {rules.MARKETPLACE_ISSUER_FINGERPRINT} is accepted)"
        )
    active = [lic for lic in marketplace if _active(lic, now)]
    if active:
        return max(active, key=lambda lic: lic.begin or now)
    latest = max(marketplace, key=lambda lic: lic.begin or now)
    if latest.status == "EXPIRED" or (latest.end is not None and latest.end <= now):
        return LICENSE_EXPIRED, f"the license for {sku} expired on {_when(latest.end)}"
    if latest.begin is not None and latest.begin > now:
        return LICENSE_NOT_ACTIVE, f"the license for {sku} starts on {_when(latest.begin)}"
    return LICENSE_NOT_ACTIVE, f"the license for {sku} is {latest.status or 'not available'}"


def shortfall(license_: License, wants: Wants) -> tuple[str, str] | None:
    """Why `license_` cannot grant what we want (a definitive reason), or None when it can."""
    have = {item.name: item for item in license_.entitlements}
    if wants.tiers and not any(tier in have for tier in wants.tiers):
        held = ", ".join(sorted(have))[:200] or "nothing"
        return ENTITLEMENT_NOT_IN_LICENSE, (
            f"the license grants none of {', '.join(wants.tiers)} (it holds {held})"
        )
    for name, units in wants.counted:
        item = have.get(name)
        if item is None or item.unit != UNIT_COUNT:
            return ENTITLEMENT_NOT_IN_LICENSE, f"the license has no counted entitlement {name!r}"
        if item.max_count is not None and item.max_count < units and not item.overage:
            return ENTITLEMENT_NOT_IN_LICENSE, (
                f"the license has {item.max_count} {name}, {units} needed per pod"
            )
    return None


def _entitlements(license_: License, wants: Wants) -> tuple[str, str]:
    missing = shortfall(license_, wants)
    if missing is not None:
        return missing
    if wants.counted:
        have = {item.name: item for item in license_.entitlements}
        pools = ", ".join(f"{have[name].max_count} {name}" for name, _ in wants.counted)
        return SEATS_IN_USE, (
            f"the license is active ({pools}): every unit is most likely held by other pods; "
            "waiting for one to be returned (checked in, or after its time-to-live)"
        )
    return NO_ENTITLEMENTS, "the license looks active and complete, yet the checkout was refused"

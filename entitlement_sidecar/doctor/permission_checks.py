"""Doctor checks of IAM permissions, by the calls each mode makes, without changing any state.

MeterUsage has a dry run: `DryRun=true` answers `DryRunOperation` when the caller holds
`aws-marketplace:MeterUsage` (AWS's own sample also treats a plain success as allowed) and
`UnauthorizedException` / `AccessDenied*` when it does not; nothing is recorded. RegisterUsage has
no dry run, and a probe call would register the pod: only a real call proves that permission, so
the doctor reads what the last real call in `status.json` answered.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal

from entitlement_sidecar.doctor.context import OPERATOR, Context
from entitlement_sidecar.doctor.findings import Finding, fail, ok, warn
from entitlement_sidecar.errors import MarketplaceError, TransientError

DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
REGISTER_FIX = (
    "grant aws-marketplace:RegisterUsage to the pod's IAM role (managed policy "
    "AWSMarketplaceMeteringRegisterUsage; AWSMarketplaceMeteringFullAccess does not grant it)"
)
METER_FIX = (
    "grant aws-marketplace:MeterUsage to the {who}'s IAM role (managed policy "
    "AWSMarketplaceMeteringFullAccess, which grants MeterUsage only)"
)


def register_usage(ctx: Context) -> Finding:
    """RegisterUsage permission: only the last real call (in status.json) can tell."""
    from entitlement_sidecar.sidecar import status

    doc = status.read(str(ctx.settings.status_dir))
    prefix = "RegisterUsage has no dry run, only a real call proves the permission"
    if doc is None or doc.get("state") == "pending":
        return warn(
            "permission",
            f"{prefix}; status.json records no call yet",
            f"start the sidecar once, then run the doctor again; meanwhile: {REGISTER_FIX}",
        )
    when = doc.get("checked_at") or "an unknown time"
    if doc.get("state") == "entitled":
        return ok("permission", f"{prefix}: the last real call succeeded ({when})")
    reason = str(doc.get("reason") or "")
    if reason in DENIED_CODES:
        return fail(
            "permission", f"{prefix}: the last real call was refused: {reason}", REGISTER_FIX
        )
    return ok(
        "permission",
        f"{prefix}: the last real call was answered ({reason or doc.get('state')}, {when}), "
        "so the identity was accepted",
    )


def meter_usage(ctx: Context) -> Finding:
    """MeterUsage permission by a dry run for the first configured dimension."""
    from entitlement_sidecar.aws.metering import MeterRequest, meter_usage

    who = "operator" if ctx.component == OPERATOR else "pod"
    if ctx.region is None:
        return fail("permission", "MeterUsage not checked: no Region", "fix the region check")
    dimension = _dimensions(ctx)[0]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    request = MeterRequest(
        product_code=ctx.settings.product_code,
        timestamp=now,
        dimension=dimension,
        quantity=Decimal(0),
        client_token="doctor-" + secrets.token_hex(8),
        dry_run=True,
    )
    try:
        meter_usage(ctx.metering_client(ctx.region), request)
    except TransientError as error:
        return warn("permission", f"MeterUsage dry run not answered: {error}", "run again later")
    except MarketplaceError as error:
        if error.code in DENIED_CODES:
            return fail(
                "permission",
                f"MeterUsage dry run refused: {error.code}",
                METER_FIX.format(who=who),
            )
        return fail(
            "permission",
            f"MeterUsage dry run for dimension {dimension!r}: {error.code}: {error.message}",
            "check the product code and dimension names against the product's listing",
        )
    return ok(
        "permission",
        f"MeterUsage dry run for dimension {dimension!r} answered DryRunOperation: this identity "
        "holds aws-marketplace:MeterUsage (nothing was recorded; it does not prove the buyer's "
        "subscription)",
    )


def _dimensions(ctx: Context) -> tuple[str, ...]:
    """The operator's dimensions, or the sidecar's usage dimensions."""
    names = getattr(ctx.settings, "dimensions", None) or getattr(
        ctx.settings, "usage_dimensions", ()
    )
    dimensions: tuple[str, ...] = tuple(names or ())
    return dimensions or ("doctor",)

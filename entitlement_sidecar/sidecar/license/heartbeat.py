"""The heartbeat: `license heartbeat --child`, started by `run` every heartbeat period.

It never takes another seat. It extends the seat this pod holds (the parent runs it before the
seat would expire, and each extension proves the seat still exists), re-checks the
license without consuming (the configured tiers, or `AWS::Marketplace::Usage`, checked in at
once) and, for counted units, reads the license (GetLicense) to see a downgrade below what a pod
needs. Only a pod that holds nothing (its seat was lost) checks out a seat, as the gate does.
A definitive loss (expired, cancelled, downgraded, the seat gone with the pool full) sets the
status to `denied` with `license.lost_at`, and under the `lock` policy `license.lock_at` (the
loss plus the grace period); `entitlements.json` is emptied. A transient failure changes nothing
but `license.result` (`unverified`), and is reported as `stale` once it lasts the grace period.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from entitlement_sidecar.aws import license_manager as lm
from entitlement_sidecar.errors import EXIT_OK, BudgetExhausted, MarketplaceError, PermanentError
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.sidecar.defaults import DENIED, EXIT_DENIED, MODE_LICENSE_MANAGER
from entitlement_sidecar.sidecar.license import diagnosis
from entitlement_sidecar.sidecar.license import seat as seats
from entitlement_sidecar.sidecar.license.calls import Calls, Refused
from entitlement_sidecar.sidecar.license.context import Context, prepare
from entitlement_sidecar.sidecar.license.gate import acquire
from entitlement_sidecar.sidecar.license.readiness import epoch, license_of
from entitlement_sidecar.sidecar.license.report import Granted, LicenseStatus
from entitlement_sidecar.sidecar.license.schedule import SEATS_IN_USE
from entitlement_sidecar.sidecar.license.signed import check_signed_token
from entitlement_sidecar.sidecar.outcome import REAL_CLOCK, Clock
from entitlement_sidecar.sidecar.settings import SidecarSettings
from entitlement_sidecar.sidecar.signature import TokenRejected

log = logging.getLogger("entitlement_sidecar.sidecar.license")

MAX_BUDGET = 120.0  # transient retries inside one heartbeat run


def heartbeat(
    settings: SidecarSettings, environ: Mapping[str, str], *, clock: Clock = REAL_CLOCK
) -> int:
    """One heartbeat run; the exit code (0 serving, 1 lost)."""
    status_dir = str(settings.status_dir)
    doc = status.read(status_dir)
    if doc is None or doc.get("mode") != MODE_LICENSE_MANAGER:
        log.warning("heartbeat: no License Manager status to check yet")
        return EXIT_OK
    block = {"sku": settings.product_sku, "policy": settings.policy}
    report = LicenseStatus(status_dir, {"product_code": settings.product_code}, block, clock, doc)
    ctx = prepare(settings, environ, clock, region=license_of(doc).get("region"))
    report.identify(ctx.me.id, ctx.me.kind)
    budget = max(5.0, min(MAX_BUDGET, settings.heartbeat_seconds / 2))
    calls = Calls(ctx, report, clock.monotonic() + budget)
    own = seats.read(status_dir)
    own = own if own is not None and own.owned_by(ctx.me.id, ctx.sku) else None
    try:
        expiration = license_of(doc).get("expiration")
        if own is not None and own.held and own.checkout_type == lm.PROVISIONAL:
            expiration = _extend(ctx, calls, own)
        if ctx.wants.consuming and (own is None or not own.held):
            log.info("this pod holds no units: checking out, as the start gate does")
            return acquire(ctx, calls, report, own)
        return _check(ctx, calls, report, doc, own, expiration=expiration)
    except PermanentError as error:
        return _lost(ctx, report, doc, error.code, error.message or error.code)
    except BudgetExhausted as exhausted:
        return _unverified(ctx, report, doc, exhausted.last)


def _check(
    ctx: Context,
    calls: Calls,
    report: LicenseStatus,
    doc: Mapping[str, Any],
    own: seats.Seat | None,
    *,
    expiration: str | None,
) -> int:
    now = calls.now()
    block = license_of(doc)
    held: dict[str, int | bool] = dict(own.entitlements) if own is not None else {}
    try:
        answer = calls.checkout_twice(
            ctx.wants.heartbeat_items(),
            lm.PROVISIONAL,
            seats.new_client_token(),
            seats.new_client_token,
        )
    except Refused as refused:
        if refused.code != SEATS_IN_USE:
            raise
        # Nothing is consumed by this check: contention cannot explain a refusal.
        raise Refused(
            diagnosis.NO_ENTITLEMENTS, "the license refuses even a check that takes no seat"
        ) from None
    calls.check_in(answer.consumption_token, budget=5.0)  # a probe holds nothing: return it now
    granted = ctx.wants.still_granted([(e.name, e.unit, e.value) for e in answer.allowed], held)
    if granted is None:
        raise Refused(
            diagnosis.ENTITLEMENT_NOT_IN_LICENSE, "the license no longer grants any of it"
        )
    verified = False
    if ctx.token_key is not None:
        tiers = [name for name in ctx.wants.tiers if granted.get(name) is True]
        try:
            check_signed_token(answer, ctx.token_key, tiers, now)
        except TokenRejected as rejected:
            raise Refused(rejected.code, f"SignedToken rejected: {rejected.message}") from None
        verified = True
    arn = answer.license_arn or block.get("arn")
    details = calls.license(arn) if isinstance(arn, str) and arn else None
    if details is not None and ctx.wants.counted:
        short = diagnosis.shortfall(details, ctx.wants)
        if short is not None:
            raise Refused(*short)
    report.count("ok")
    previous_tier = block.get("tier")
    tier = ctx.wants.tier(granted)
    if tier != previous_tier and previous_tier is not None:
        log.warning("the tier changed from %s to %s", previous_tier, tier, extra={"tier": tier})
    return report.entitled(
        granted,
        _granted_message(granted),
        token=answer.signed_token,
        signed_token_verified=verified,
        arn=arn,
        tier=tier,
        expiration=expiration,
        valid_until=_iso(details.end) if details and details.end else block.get("valid_until"),
        checked_at=report.now_iso(),
        result="ok",
        failing_since=None,
        stale=False,
    )


def _extend(ctx: Context, calls: Calls, own: seats.Seat) -> str | None:
    """Extend the held seat (every heartbeat: it also proves the seat still exists at AWS).

    A seat AWS no longer knows (expired during an outage, or its license gone) is marked
    returned: the heartbeat then checks a seat out afresh, which is not taking another one.
    """
    token = own.consumption_token or ""
    try:
        moved = calls.retry("ExtendLicenseConsumption", lambda: lm.extend(ctx.client(), token))
    except PermanentError as error:
        log.warning("this pod's seat is gone at AWS (%s)", error.code, extra={"reason": error.code})
        own.state = seats.RETURNED
        seats.write(ctx.status_dir, own)
        return None
    own.expiration = _iso(moved) if moved else own.expiration
    seats.write(ctx.status_dir, own)
    log.info("seat extended until %s", own.expiration, extra={"expiration": own.expiration})
    return own.expiration


def _lost(
    ctx: Context, report: LicenseStatus, doc: Mapping[str, Any], reason: str, message: str
) -> int:
    """A definitive loss: denied, entitlements emptied, lock time set under `lock`."""
    block = license_of(doc)
    now = ctx.clock.wall()
    lost_at = block.get("lost_at") or status.utc_now_iso(now)
    lock_at = None
    if ctx.settings.policy == "lock":
        lock_at = status.utc_now_iso((epoch(lost_at) or now) + ctx.settings.license_grace_seconds)
    own = seats.read(ctx.status_dir)
    held = own is not None and own.held and own.checkout_type == lm.PROVISIONAL
    if doc.get("state") != DENIED or block.get("reason") != reason:
        log.error(
            "license lost (%s): %s; policy %s",
            reason,
            message,
            ctx.settings.policy,
            extra={"reason": reason, "lock_at": lock_at},
        )
    report.count(reason)
    report.denied(
        reason,
        message,
        result="lost",
        lost_at=lost_at,
        lock_at=lock_at,
        tier=None,
        seat_held=held,
        checked_at=report.now_iso(),
        failing_since=None,
        stale=False,
    )
    return EXIT_DENIED


def _unverified(
    ctx: Context, report: LicenseStatus, doc: Mapping[str, Any], error: MarketplaceError
) -> int:
    """A transient failure: readiness and entitlements unchanged, reported once it is stale."""
    block = license_of(doc)
    since = block.get("failing_since") or report.now_iso()
    stale = (
        ctx.clock.wall() - (epoch(since) or ctx.clock.wall()) >= ctx.settings.license_grace_seconds
    )
    if stale and not block.get("stale"):
        log.error(
            "license checks have failed since %s (%s): still serving the last good license",
            since,
            error.code,
            extra={"reason": error.code, "failing_since": since},
        )
    else:
        log.warning("license check failed (%s); keeping the last good license", error.code)
    report.count(error.code)
    report.unchanged(
        doc,
        result="unverified",
        reason=error.code,
        message=error.message or str(error),
        failing_since=since,
        stale=stale,
        checked_at=report.now_iso(),
    )
    return EXIT_OK


def _iso(moment: datetime) -> str:
    return status.utc_now_iso(moment.timestamp())


def _granted_message(granted: Granted) -> str:
    return "entitled: " + ", ".join(f"{k}={v}" for k, v in sorted(granted.items()))

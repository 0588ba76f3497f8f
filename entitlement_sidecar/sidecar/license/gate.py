"""The License Manager start gate: `register` (and `run`'s first child) for contract products.

Reads top to bottom: prepare (identity, Region, credentials) -> refusal (untrusted SKU)? ->
this pod's own seat from an earlier container (re-used, never a second one) -> CheckoutLicense
with the pinned AWS Marketplace fingerprint under a ClientToken written ahead to `seat.json` ->
what was granted (every counted unit, at least one tier) and, when the image carries a key, the
SignedToken -> `seat.json`, `entitlements.json`, `status.json`. Transient failures are retried
until `STARTUP_TIMEOUT`; on Containers Anywhere the last good license (same pod, still valid) is
then served from the status volume. Returns the exit code (0 entitled, 1 denied, 3 unavailable).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from entitlement_sidecar.aws import license_manager as lm
from entitlement_sidecar.errors import BudgetExhausted, PermanentError
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.sidecar.defaults import ENTITLED
from entitlement_sidecar.sidecar.license import seat as seats
from entitlement_sidecar.sidecar.license.calls import Calls, Refused
from entitlement_sidecar.sidecar.license.context import Context, prepare
from entitlement_sidecar.sidecar.license.diagnosis import ENTITLEMENT_NOT_IN_LICENSE
from entitlement_sidecar.sidecar.license.readiness import epoch
from entitlement_sidecar.sidecar.license.report import LicenseStatus
from entitlement_sidecar.sidecar.license.signed import check_signed_token
from entitlement_sidecar.sidecar.outcome import REAL_CLOCK, Clock, settle
from entitlement_sidecar.sidecar.settings import SidecarSettings, env_name
from entitlement_sidecar.sidecar.signature import TokenRejected

log = logging.getLogger("entitlement_sidecar.sidecar.license")

UNTRUSTED_SKU = "UntrustedProductSku"


def gate(
    settings: SidecarSettings, environ: Mapping[str, str], *, clock: Clock = REAL_CLOCK
) -> int:
    """Check a license out for this instance and write the hand-off; return the exit code."""
    status_dir = str(settings.status_dir)
    previous = status.read(status_dir)
    kept = seats.read(status_dir)
    block = {"sku": settings.product_sku, "policy": settings.policy, "result": "pending"}
    report = LicenseStatus(
        status_dir, {"product_code": settings.product_code}, block, clock, previous
    )
    report.publish_pending()

    def flow() -> int:
        ctx = prepare(settings, environ, clock, region=kept.region if kept else None)
        return _gate(settings, ctx, report, previous, kept)

    return settle(report, flow)


def _gate(
    settings: SidecarSettings,
    ctx: Context,
    report: LicenseStatus,
    previous: Mapping[str, Any] | None,
    kept: seats.Seat | None,
) -> int:
    report.identify(ctx.me.id, ctx.me.kind)
    report.block.update(credentials=ctx.credentials, region=ctx.region)
    trusted = settings.trusted_product_skus
    if trusted and ctx.sku not in trusted:
        why = f"{ctx.sku!r} is not in {env_name('trusted_product_skus')} (baked into the image)"
        return report.denied(UNTRUSTED_SKU, why, result="denied")
    calls = Calls(ctx, report, ctx.clock.monotonic() + settings.startup_timeout)
    try:
        own = kept if kept is not None and kept.owned_by(ctx.me.id, ctx.sku) else None
        code = _reuse(ctx, calls, report, own)
        return code if code is not None else acquire(ctx, calls, report, own)
    except BudgetExhausted as exhausted:
        if settings.anywhere and _cached(ctx, report, previous):
            return 0
        return report.unavailable(
            exhausted.last.code, exhausted.last.message or str(exhausted.last)
        )
    except PermanentError as error:
        report.count(error.code)
        return report.denied(error.code, error.message or error.code, result="denied")


def _reuse(ctx: Context, calls: Calls, report: LicenseStatus, own: seats.Seat | None) -> int | None:
    """Keep this pod's seat from an earlier container (its exit code); None: nothing to re-use."""
    if own is None or not own.held or own.consumption_token is None:
        return None
    token = own.consumption_token
    if own.checkout_type == lm.PERPETUAL:
        # This pod already drew its units down: confirm the agreement without consuming again.
        answer = calls.checkout_twice(
            ctx.wants.heartbeat_items(),
            lm.PROVISIONAL,
            seats.new_client_token(),
            seats.new_client_token,
        )
        calls.check_in(answer.consumption_token, budget=5.0)
        granted = ctx.wants.still_granted(_items(answer), own.entitlements)
        if granted is None:
            raise Refused(ENTITLEMENT_NOT_IN_LICENSE, "the license no longer grants what was drawn")
        expiration = own.expiration
    else:
        try:
            new_expiration = calls.retry(
                "ExtendLicenseConsumption", lambda: lm.extend(ctx.client(), token)
            )
        except PermanentError as error:
            log.info("this pod's earlier seat is gone (%s): checking out a new one", error.code)
            own.state = seats.RETURNED
            seats.write(ctx.status_dir, own)
            return None
        granted = dict(own.entitlements)
        expiration = status.utc_now_iso(new_expiration.timestamp()) if new_expiration else None
        own.expiration = expiration
        seats.write(ctx.status_dir, own)
    report.count("ok")
    message = "entitled: re-used this pod's own seat from before the container restarted"
    return report.entitled(
        granted,
        message,
        arn=own.license_arn,
        checkout_type=own.checkout_type,
        tier=ctx.wants.tier(granted),
        expiration=expiration,
        checked_at=report.now_iso(),
        result="reused",
        seat_held=own.checkout_type == lm.PROVISIONAL,
        failing_since=None,
        stale=False,
    )


def acquire(ctx: Context, calls: Calls, report: LicenseStatus, own: seats.Seat | None) -> int:
    """A fresh checkout (or the replay of one left pending), then what it grants."""
    wants, settings = ctx.wants, ctx.settings
    checkout_type = lm.PERPETUAL if settings.license_checkout == "perpetual" else lm.PROVISIONAL
    used: list[str] = []

    def ahead() -> str:
        used.append(_write_ahead(ctx, checkout_type))
        return used[-1]

    if own is not None and own.state == seats.PENDING:
        # A checkout under this token may have landed before the last container died: the
        # replay returns it (idempotent) instead of taking a second seat.
        used.append(own.client_token)
        try:
            answer = calls.checkout_twice(wants.checkout_items(), checkout_type, used[-1], ahead)
        except PermanentError as error:
            if error.code != "ValidationException":  # the request changed since: start afresh
                raise
            answer = calls.checkout_twice(wants.checkout_items(), checkout_type, ahead(), ahead)
    else:
        answer = calls.checkout_twice(wants.checkout_items(), checkout_type, ahead(), ahead)
    granted = wants.granted(_items(answer))
    if granted is None:
        calls.check_in(answer.consumption_token, budget=5.0)
        _forget(ctx)
        raise Refused(ENTITLEMENT_NOT_IN_LICENSE, f"AWS granted less than {wants.describe()}")
    verified = False
    if ctx.token_key is not None:
        try:
            check_signed_token(answer, ctx.token_key, granted, calls.now())
        except TokenRejected as rejected:
            calls.check_in(answer.consumption_token, budget=5.0)
            _forget(ctx)
            raise Refused(rejected.code, f"SignedToken rejected: {rejected.message}") from None
        verified = True
    held = wants.consuming and answer.checkout_type == lm.PROVISIONAL
    expiration = status.utc_now_iso(answer.expiration.timestamp()) if answer.expiration else None
    if wants.consuming:
        seats.write(
            ctx.status_dir,
            seats.Seat(
                ctx.me.id,
                ctx.sku,
                ctx.region,
                used[-1],
                answer.checkout_type,
                seats.HELD,
                answer.consumption_token,
                answer.license_arn,
                expiration,
                dict(granted),
            ),
        )
    else:  # tiers only: nothing is held, so nothing is kept out of the pool
        calls.check_in(answer.consumption_token, budget=5.0)
        seats.remove(ctx.status_dir)
    details = calls.license(answer.license_arn) if answer.license_arn else None
    valid_until = details.end if details else None
    report.count("ok")
    message = f"entitled: {', '.join(f'{k}={v}' for k, v in sorted(granted.items()))}"
    return report.entitled(
        granted,
        message,
        token=answer.signed_token,
        arn=answer.license_arn,
        checkout_type=answer.checkout_type,
        tier=wants.tier(granted),
        expiration=expiration if held or answer.checkout_type == lm.PERPETUAL else None,
        valid_until=status.utc_now_iso(valid_until.timestamp()) if valid_until else None,
        checked_at=report.now_iso(),
        result="ok",
        seat_held=held,
        signed_token_verified=verified,
        failing_since=None,
        stale=False,
    )


def _write_ahead(ctx: Context, checkout_type: str) -> str:
    """A new ClientToken, recorded in `seat.json` before a consuming checkout is sent."""
    token = seats.new_client_token()
    if ctx.wants.consuming:
        seats.write(
            ctx.status_dir, seats.Seat(ctx.me.id, ctx.sku, ctx.region, token, checkout_type)
        )
    return token


def _forget(ctx: Context) -> None:
    if ctx.wants.consuming:
        seats.remove(ctx.status_dir)


def _items(answer: lm.Checkout) -> list[tuple[str, str, str | None]]:
    return [(e.name, e.unit, e.value) for e in answer.allowed]


def _cached(ctx: Context, report: LicenseStatus, previous: Mapping[str, Any] | None) -> bool:
    """Containers Anywhere: serve this pod's last good license while AWS is unreachable."""
    block = previous.get("license") if previous else None
    if not previous or not isinstance(block, dict) or previous.get("instance") != ctx.me.id:
        return False
    granted = block.get("entitlements")
    if block.get("sku") != ctx.sku or not isinstance(granted, dict) or not granted:
        return False
    if previous.get("state") != ENTITLED:
        return False
    until = epoch(block.get("valid_until"))
    if until is not None and until <= ctx.clock.wall():
        return False
    message = "AWS unreachable: serving this pod's last good license (Containers Anywhere cache)"
    log.warning(message, extra={"checked_at": block.get("checked_at")})
    report.entitled(granted, message, result="cached", stale=True)
    return True

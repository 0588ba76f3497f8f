"""Returning the seat: `license checkin --child`, started by `run` when it is told to stop.

Rolling updates and scale-downs must not lock buyers out of their own seats for an hour, so a
held floating seat goes back to the pool at SIGTERM (CheckInLicense), within
`ENTITLEMENT_LICENSE_CHECKIN_SECONDS` (keep it under the pod's termination grace period). A
checkout that was in flight when the sidecar stopped (`seat.json` still `pending`) is first
replayed under its ClientToken: if it had landed, that returns its consumption (no second seat),
which is then checked in. Drawdown (perpetual) units are never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from entitlement_sidecar.aws import license_manager as lm
from entitlement_sidecar.errors import EXIT_OK, BudgetExhausted, MarketplaceError
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.sidecar.defaults import EXIT_UNAVAILABLE
from entitlement_sidecar.sidecar.license import seat as seats
from entitlement_sidecar.sidecar.license.calls import Calls
from entitlement_sidecar.sidecar.license.context import prepare
from entitlement_sidecar.sidecar.license.report import LicenseStatus
from entitlement_sidecar.sidecar.outcome import REAL_CLOCK, Clock
from entitlement_sidecar.sidecar.settings import SidecarSettings

log = logging.getLogger("entitlement_sidecar.sidecar.license")


def checkin(
    settings: SidecarSettings, environ: Mapping[str, str], *, clock: Clock = REAL_CLOCK
) -> int:
    """Return this pod's seat; 0 when nothing is held any more, 3 when AWS could not be told."""
    status_dir = str(settings.status_dir)
    own = seats.read(status_dir)
    if own is None or own.state == seats.RETURNED or own.checkout_type == lm.PERPETUAL:
        return EXIT_OK
    doc = status.read(status_dir)
    block = {"sku": settings.product_sku, "policy": settings.policy}
    report = LicenseStatus(status_dir, {"product_code": settings.product_code}, block, clock, doc)
    ctx = prepare(settings, environ, clock, region=own.region)
    if not own.owned_by(ctx.me.id, ctx.sku):
        return EXIT_OK
    report.identify(ctx.me.id, ctx.me.kind)
    calls = Calls(ctx, report, clock.monotonic() + settings.license_checkin_seconds)
    token = own.consumption_token if own.held else _replayed(ctx.wants.checkout_items(), calls, own)
    returned = token is None or calls.check_in(token)
    if not returned:
        log.error("the seat could not be returned: it comes back after its time-to-live")
        return EXIT_UNAVAILABLE
    own.state = seats.RETURNED
    seats.write(status_dir, own)
    log.info("seat returned (CheckInLicense)", extra={"license_arn": own.license_arn})
    if doc is not None:
        report.unchanged(doc, result="returned", seat_held=False, checked_at=report.now_iso())
    return EXIT_OK


def _replayed(
    items: list[tuple[str, str, str | None]], calls: Calls, own: seats.Seat
) -> str | None:
    """The consumption a pending checkout got, if it landed (None: nothing is held)."""
    try:
        return calls.checkout(items, own.checkout_type, own.client_token).consumption_token
    except (MarketplaceError, BudgetExhausted) as failure:
        log.info("no checkout in flight to return (%s)", failure)
        return None

"""License Manager calls as one child makes them: retried, counted, redirected, explained.

Transient failures (rate limits, server faults, network) are retried with jittered backoff until
the child's deadline; each CheckoutLicense attempt is counted in the status. A `RedirectException`
is followed once to the Region it names (and that Region is kept for later children). A
`NoEntitlementsAllowedException` is retried once after a short pause, because a seat in use and no
license look the same; if it comes back, the buyer's licenses are read (ListReceivedLicenses,
then GetLicense where permitted) and the most likely cause becomes the refusal's reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from entitlement_sidecar.aws import license_manager as lm
from entitlement_sidecar.errors import BudgetExhausted, MarketplaceError, PermanentError
from entitlement_sidecar.retry import Backoff, call_with_retry
from entitlement_sidecar.sidecar.license import diagnosis
from entitlement_sidecar.sidecar.license.context import Context
from entitlement_sidecar.sidecar.license.report import LicenseStatus
from entitlement_sidecar.sidecar.license.wants import Item

log = logging.getLogger("entitlement_sidecar.sidecar.license")
T = TypeVar("T")
NO_ENTITLEMENTS_PAUSE = 2.0  # seconds before the one retry (capped by the wait period)
LOOKUP_BUDGET = 20.0  # seconds the diagnosis may spend reading licenses


class Refused(PermanentError):
    """License Manager said no, and `code` says why (an AWS code or a diagnosis reason)."""


class Calls:
    """The License Manager calls of one child, inside one deadline."""

    def __init__(self, ctx: Context, report: LicenseStatus, deadline: float) -> None:
        self.ctx = ctx
        self.report = report
        self.deadline = deadline
        settings = ctx.settings
        self.backoff = Backoff(settings.backoff_initial, 2.0, settings.backoff_max)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ctx.clock.wall(), UTC)

    def retry(self, what: str, call: Callable[[], T], *, budget: float | None = None) -> T:
        """`call()`, transient failures retried until the deadline (or `budget` seconds)."""
        remaining = max(0.0, self.deadline - self.ctx.clock.monotonic())
        clock = self.ctx.clock

        def on_retry(number: int, error: MarketplaceError, delay: float) -> None:
            log.warning(
                "%s failed (%s), retry %d in %.2f s",
                what,
                error.code,
                number,
                delay,
                extra={
                    "reason": error.code,
                    "attempt": number,
                    "retry_in_seconds": round(delay, 3),
                },
            )

        return call_with_retry(
            call,
            budget=remaining if budget is None else min(budget, remaining),
            backoff=self.backoff,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
            on_retry=on_retry,
        )

    def checkout(self, items: Sequence[Item], checkout_type: str, client_token: str) -> lm.Checkout:
        """CheckoutLicense under `client_token`, retried and redirected once; counted."""
        entitlements = [lm.Entitlement(name, unit, value) for name, unit, value in items]

        def attempt() -> lm.Checkout:
            begun = self.ctx.clock.monotonic()
            try:
                answer = lm.checkout(
                    self.ctx.client(),
                    sku=self.ctx.sku,
                    checkout_type=checkout_type,
                    entitlements=entitlements,
                    client_token=client_token,
                )
            except MarketplaceError as error:
                self.report.attempts.record(error.code, self.ctx.clock.monotonic() - begun)
                raise
            self.report.attempts.record("Success", self.ctx.clock.monotonic() - begun)
            return answer

        try:
            return self.retry("CheckoutLicense", attempt)
        except lm.Redirect as redirect:
            if not redirect.region or redirect.region == self.ctx.region:
                raise
            log.warning(
                "the license lives in %s (RedirectException); following once",
                redirect.region,
                extra={"region": redirect.region, "location": redirect.location},
            )
            self.ctx.region = redirect.region
            self.report.block["region"] = redirect.region
        try:
            return self.retry("CheckoutLicense", attempt)
        except lm.Redirect as again:
            raise Refused(
                lm.REDIRECT, f"redirected twice ({again.location}); not following"
            ) from None

    def checkout_twice(
        self,
        items: Sequence[Item],
        checkout_type: str,
        first_token: str,
        next_token: Callable[[], str],
    ) -> lm.Checkout:
        """A checkout; NoEntitlementsAllowed retried once after a pause, then explained."""
        try:
            return self.checkout(items, checkout_type, first_token)
        except PermanentError as error:
            if error.code != lm.NO_ENTITLEMENTS:
                raise
        pause = min(NO_ENTITLEMENTS_PAUSE, float(self.ctx.settings.license_wait_seconds))
        log.info("NoEntitlementsAllowedException: a seat in use or no license; one more try")
        self.ctx.clock.sleep(pause)
        try:
            return self.checkout(items, checkout_type, next_token())
        except PermanentError as error:
            if error.code != lm.NO_ENTITLEMENTS:
                raise
        reason, message = self.diagnose()
        raise Refused(reason, message)

    def licenses(self) -> list[lm.License]:
        """The buyer's licenses for the SKU, the current one refreshed with GetLicense."""
        client = self.ctx.client()
        found = self.retry(
            "ListReceivedLicenses",
            lambda: lm.received_licenses(client, self.ctx.sku),
            budget=LOOKUP_BUDGET,
        )
        current = diagnosis.current_license(self.ctx.sku, found, self.now())
        if isinstance(current, lm.License) and current.arn:
            fresh = self.license(current.arn)
            if fresh is not None:
                found = [fresh if item.arn == current.arn else item for item in found]
        return found

    def diagnose(self) -> tuple[str, str]:
        """The most likely reason the checkout was refused."""
        try:
            found: list[lm.License] | None = self.licenses()
            error = None
        except (MarketplaceError, BudgetExhausted) as failure:
            found, error = None, str(failure)
        return diagnosis.diagnose(self.ctx.sku, self.ctx.wants, found, self.now(), error)

    def license(self, arn: str) -> lm.License | None:
        """GetLicense where permitted (None when it fails: it is only ever extra detail)."""
        try:
            return self.retry(
                "GetLicense", lambda: lm.get_license(self.ctx.client(), arn), budget=LOOKUP_BUDGET
            )
        except (MarketplaceError, BudgetExhausted, ValueError) as failure:
            log.info("GetLicense %s not available: %s", arn, failure)
            return None

    def check_in(self, token: str, *, budget: float | None = None) -> bool:
        """Return a consumption; True when done (or already gone)."""
        try:
            self.retry(
                "CheckInLicense", lambda: lm.check_in(self.ctx.client(), token), budget=budget
            )
        except PermanentError as error:
            if error.code == "ResourceNotFoundException":
                return True  # expired or already returned: nothing is held
            log.warning("CheckInLicense refused: %s", error)
            return False
        except BudgetExhausted as exhausted:
            log.warning("CheckInLicense kept failing: %s", exhausted.last)
            return False
        return True

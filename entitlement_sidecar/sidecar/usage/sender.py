"""The usage sender: one round of MeterUsage calls for the sealed hours, in a short-lived child.

`run` spawns `entitlement-sidecar usage send --child --now T --budget S` when sealed hours are
due; this module is that child. It reads the journal (a consistent snapshot: the parent replaces
it atomically and only appends), and for every sealed (hour, dimension) not settled yet, oldest
first, sends one MeterUsage with this pod's or task's own identity (`caller.identify`): the
quantity and allocations fixed in the seal, the seal's timestamp, and a ClientToken derived from
(product, instance, dimension, hour) alone, so a resend after any crash is the identical request
and AWS answers it with the same record. Each result is one JSON line on stdout for the parent
to journal: `Sent` (with the MeteringRecordId), `Transient` (one per failed attempt), `Failed`
(a permanent answer: never retried) or `Expired` (AWS's 6-hour window is over). Throttling is
retried inside the round after a short jittered wait (a fleet at the top of the hour); any other
transient failure (5xx, network) ends that request's round and the parent backs off.

The clock is the parent's: `--now` is its wall time at spawn, advanced here by a monotonic clock,
so one clock decides every hour; nothing is retried past `--budget` seconds. Refusals that come
from our own identity or permissions rather than from the record (an IAM policy without
`aws-marketplace:MeterUsage`, missing credentials) are reported as transient: they can be fixed
within the window, and the hour is then still billed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.metering import Allocation, MeterRequest, format_quantity
from entitlement_sidecar.errors import (
    BudgetExhausted,
    MarketplaceError,
    PermanentError,
    TransientError,
)
from entitlement_sidecar.retry import Backoff, call_with_retry
from entitlement_sidecar.sidecar.caller import identify
from entitlement_sidecar.sidecar.outcome import REAL_CLOCK, Clock
from entitlement_sidecar.sidecar.settings import SidecarSettings
from entitlement_sidecar.sidecar.usage import plan
from entitlement_sidecar.sidecar.usage.state import EXPIRED, FAILED, SENT, TRANSIENT, State
from entitlement_sidecar.sidecar.usage.units import iso

log = logging.getLogger(__name__)

# Permanent answers about our identity or permissions, not about the record: retried until the
# window closes, because fixing the role in time still bills the hour.
HEALABLE = frozenset(
    {
        "AccessDeniedException",
        "UnauthorizedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialsUnreadable",
    }
)
# Throttling (a fleet at the top of the hour, or many dimensions at once) is retried inside the
# round after a short wait; any other transient failure waits for the parent's next round.
THROTTLED = frozenset({"ThrottlingException", "Throttling", "ThrottledException"})
IN_ROUND_BACKOFF = Backoff(0.5, 2.0, 5.0)


class _NotNow(Exception):
    """A transient failure that is not throttling: this request waits for the next round."""

    def __init__(self, error: TransientError) -> None:
        super().__init__(str(error))
        self.error = error


def client_token(product_code: str, instance: str, dimension: str, hour: int) -> str:
    """The ClientToken of (instance, dimension, hour): the same for every send of that record."""
    canonical = json.dumps(["usage/v1", product_code, instance, dimension, hour])
    return hashlib.sha256(canonical.encode()).hexdigest()


def allocations(raw: object) -> tuple[Allocation, ...]:
    """The seal's `[[tags, micro-units], ...]` as UsageAllocations (at most AWS's 2,500).

    Beyond 2,500 tag sets the largest 2,499 keep their tags and the rest are billed untagged,
    so the sum stays exact; the choice is deterministic (quantity, then tags), so a resend is
    identical.
    """
    if not isinstance(raw, list):
        return ()
    shares: dict[tuple[tuple[str, str], ...], int] = {}
    for entry in raw:
        tags = tuple(sorted((str(k), str(v)) for k, v in entry[0]))
        shares[tags] = shares.get(tags, 0) + int(entry[1])
    if len(shares) > rules.ALLOCATIONS_PER_REQUEST:
        ranked = sorted(shares.items(), key=lambda item: (-item[1], item[0]))
        shares = dict(ranked[: rules.ALLOCATIONS_PER_REQUEST - 1])
        rest = sum(units for _tags, units in ranked[rules.ALLOCATIONS_PER_REQUEST - 1 :])
        shares[()] = shares.get((), 0) + rest
    return tuple(Allocation(_decimal(units), tags) for tags, units in sorted(shares.items()))


def _decimal(units: int) -> Decimal:
    return Decimal(units).scaleb(-rules.QUANTITY_DECIMALS)


class Round:
    """One round: the hours to send, the clock, and where the results go."""

    def __init__(
        self,
        settings: SidecarSettings,
        now: float,
        budget: float,
        out: IO[str],
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.settings = settings
        self.out = out
        self.clock = clock
        self.began = clock.monotonic()
        self.parent_now = now
        self.budget = budget

    def now(self) -> float:
        """The parent's clock, advanced by the time this round has run."""
        return self.parent_now + (self.clock.monotonic() - self.began)

    def left(self) -> float:
        return self.budget - (self.clock.monotonic() - self.began)

    def report(self, hour: int, dimension: str, result: str, **fields: str) -> None:
        line = {"h": hour, "d": dimension, "r": result, **fields}
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def run(self, client: Any, instance_id: str) -> int:
        """Send every unsettled (hour, dimension); the number of requests that were sent."""
        state = State(self.settings.status_dir, self.parent_now, keep_bodies=True)
        state.replay()
        sent = 0
        for hour in sorted(state.sealed):
            sealed = state.sealed[hour]
            for dimension in sealed.pending():
                if plan.expired(sealed.timestamp, self.now()):
                    log.error(
                        "usage of %s in hour %s was never sent and AWS's 6-hour window is over",
                        dimension,
                        iso(hour),
                        extra={"hour": iso(hour), "dimension": dimension},
                    )
                    self.report(hour, dimension, EXPIRED)
                    continue
                if self.left() <= 0:
                    return sent  # the next round takes it from here
                body = state.bodies[hour][dimension]
                request = MeterRequest(
                    product_code=self.settings.metering_product_code,
                    timestamp=datetime.fromtimestamp(sealed.timestamp, UTC),
                    dimension=dimension,
                    quantity=_decimal(sealed.dims[dimension].units),
                    client_token=client_token(
                        self.settings.metering_product_code, instance_id, dimension, hour
                    ),
                    allocations=allocations(body.get("a")),
                )
                if self._send(client, hour, request, sealed.timestamp):
                    sent += 1
        return sent

    def _send(self, client: Any, hour: int, request: MeterRequest, timestamp: int) -> bool:
        """One request: throttling retried inside the round, any other failure reported."""
        from entitlement_sidecar.aws.metering import meter_usage

        dimension = request.dimension
        budget = min(self.left(), plan.deadline(timestamp) - plan.WINDOW_MARGIN - self.now())

        def attempt() -> str:
            try:
                return meter_usage(client, request)
            except TransientError as error:
                if error.code in THROTTLED:
                    raise
                raise _NotNow(error) from error

        def on_retry(_attempt: int, error: MarketplaceError, _delay: float) -> None:
            self.report(hour, dimension, TRANSIENT, c=error.code, m=error.message[:200])

        try:
            record_id = call_with_retry(
                attempt,
                budget=max(0.0, budget),
                backoff=IN_ROUND_BACKOFF,
                sleep=self.clock.sleep,
                monotonic=self.clock.monotonic,
                on_retry=on_retry,
            )
        except BudgetExhausted as exhausted:
            self._transient(hour, dimension, exhausted.last)
            return False
        except _NotNow as not_now:
            self._transient(hour, dimension, not_now.error)
            return False
        except PermanentError as error:
            if error.code in HEALABLE:
                self._transient(hour, dimension, error)
                return False
            log.error(
                "MeterUsage refused for %s in hour %s (%s): %s; this hour is not billed",
                dimension,
                iso(hour),
                error.code,
                error.message,
                extra={"hour": iso(hour), "dimension": dimension, "reason": error.code},
            )
            self.report(hour, dimension, FAILED, c=error.code, m=error.message[:200])
            return True
        log.info(
            "sent %s %s for hour %s: %s",
            format_quantity(request.quantity),
            dimension,
            iso(hour),
            record_id,
            extra={"hour": iso(hour), "dimension": dimension, "metering_record_id": record_id},
        )
        self.report(hour, dimension, SENT, id=record_id)
        return True

    def _transient(self, hour: int, dimension: str, error: MarketplaceError) -> None:
        log.warning(
            "MeterUsage for %s in hour %s failed (%s); retried in a later round",
            dimension,
            iso(hour),
            error.code,
            extra={"hour": iso(hour), "dimension": dimension, "reason": error.code},
        )
        self.report(hour, dimension, TRANSIENT, c=error.code, m=error.message[:200])


def _make_client(region: str) -> Any:
    from entitlement_sidecar.aws.metering import make_client

    return make_client(region)


def send_round(
    settings: SidecarSettings,
    environ: Mapping[str, str],
    *,
    now: float,
    budget: float,
    out: IO[str],
    make_client: Callable[[str], Any] = _make_client,
    clock: Clock = REAL_CLOCK,
) -> int:
    """The composition root of one round: identity, client, then the sends. Exit code 0."""
    me, region = identify(settings, environ, clock)
    began = time.monotonic()
    sent = Round(settings, now, budget, out, clock).run(make_client(region), me.id)
    log.debug("usage round done: %d requests in %.2f s", sent, time.monotonic() - began)
    return 0

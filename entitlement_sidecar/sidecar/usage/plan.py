"""What to do with the hours, decided from the journal's state and the clock: pure functions.

An hour is sealed (its record fixed before any call) once it has ended and `SEAL_DELAY` more
seconds have passed, so a small clock skew cannot put its timestamp in the future and an app's
retry across the hour's end is still deduplicated; at shutdown every hour that has begun is sealed
at once. Sealed hours are sent in rounds by a short-lived child: the first round after a seal
waits a random share of `ENTITLEMENT_USAGE_SEND_JITTER` (a fleet does not call AWS in the same
second), a round with a transient failure is followed by another after a jittered exponential
backoff (15 s doubling to 10 min). AWS accepts a record for 6 hours after its timestamp: no call
starts later than `WINDOW_MARGIN` seconds before that, and an hour still unsent then has expired.
"""

from __future__ import annotations

from entitlement_sidecar.aws import rules
from entitlement_sidecar.sidecar.usage.units import HOUR, hour_of, record_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

SEAL_DELAY = 60
WINDOW_MARGIN = 30
BACKOFF_FIRST = 15.0
BACKOFF_MAX = 600.0
ROUND_BUDGET = 60.0  # seconds of transient retries inside one round of the child


def due_seals(open_hours: Iterable[int], now: float, delay: float = SEAL_DELAY) -> dict[int, int]:
    """Open hours whose end is `delay` seconds past, with the timestamp each is sealed with."""
    return {h: record_timestamp(h, now) for h in sorted(open_hours) if h + HOUR + delay <= now}


def shutdown_seals(open_hours: Iterable[int], now: float) -> dict[int, int]:
    """At shutdown: every open hour that has begun, the current one stamped with `now`.

    An hour that has not begun (usage carried past an hour that was already sent) cannot be
    stamped yet: it stays in the journal for a later start of this pod's sidecar.
    """
    current = hour_of(now)
    return {h: record_timestamp(h, now) for h in sorted(open_hours) if h <= current}


def deadline(timestamp: int) -> int:
    """The last moment AWS accepts a record stamped `timestamp` (6 hours later)."""
    return timestamp + rules.METER_WINDOW_SECONDS


def expired(timestamp: int, now: float) -> bool:
    """True when a call for a record stamped `timestamp` may no longer start."""
    return now >= deadline(timestamp) - WINDOW_MARGIN


def backoff(failures: int, rng: float) -> float:
    """Seconds before the next round after `failures` failed rounds in a row (equal jitter)."""
    cap: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, failures - 1))
    return cap * (0.5 + rng / 2)


def first_round(now: float, jitter: float, rng: float) -> float:
    """When the first round after a seal starts: a random point within the jitter."""
    return now + jitter * rng

"""Retrying transient failures with jittered exponential backoff under an overall budget.

AWS asks container products to retry transient RegisterUsage failures for up to 30 minutes with
exponential backoff, and fleets that start at once must spread out: hence "full jitter" (a random
delay between 0 and the exponential cap). A herd that shares one quota (RegisterUsage: 5 calls per
second per buyer account) spreads out best when each throttled caller aims its retry anywhere in
the time the quota needs for the whole herd (`HerdBackoff`), instead of discovering the crowd by
doubling. Permanent errors propagate at once. The clock, the sleep and the random source are
parameters so tests run instantly and deterministically.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from entitlement_sidecar.errors import THROTTLING_CODES, BudgetExhausted, TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential caps: `initial`, then times `factor` per attempt, never above `maximum`."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0

    def cap(self, attempt: int) -> float:
        """The upper bound of the delay after failed attempt number `attempt` (1-based)."""
        return float(min(self.maximum, self.initial * self.factor ** max(0, attempt - 1)))

    def window(self, attempt: int, error: TransientError, elapsed: float) -> float:
        """The delay bound after failed attempt `attempt`, `elapsed` seconds into the retries."""
        return self.cap(attempt)


@dataclass(frozen=True)
class HerdBackoff(Backoff):
    """Exponential caps, except that a throttled call waits within the herd's quota window.

    `herd` callers starting together share a quota of `rate` calls per second, so the last of
    them can be served `herd / rate` seconds after they started. A throttled caller draws its
    retry uniformly from what is left of that window (at least `initial`): the herd's retries
    arrive spread at about the quota's rate, so most succeed on their second call and nobody
    sits in a long back-off while the quota goes unused. The window is counted from the caller's
    own start (`head_start`: seconds it had already run when the retries began), not from its
    first call: a pod whose start was slow must not wait a whole window. Once the window is
    spent, the bound grows with the time past it (from `initial`, never above the exponential
    cap): the few callers still throttled at the window's end retry within about a second
    instead of the 4-8 s their attempt count would give, and a quota that stays exhausted is
    still met with waits that grow to the cap.
    """

    herd: int = 1
    rate: float = 5.0
    head_start: float = 0.0

    def window(self, attempt: int, error: TransientError, elapsed: float) -> float:
        cap = self.cap(attempt)
        if error.code not in THROTTLING_CODES or self.herd <= 1:
            return cap
        left = self.herd / self.rate - self.head_start - elapsed
        if left > 0:
            return max(self.initial, left)
        return min(cap, max(self.initial, -left))


def call_with_retry(
    call: Callable[[], T],
    *,
    budget: float,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
) -> T:
    """Return `call()`, retrying `TransientError` until `budget` seconds have passed.

    Waits are cut short at the budget's end, where one last attempt is made; if that fails too,
    `BudgetExhausted` (carrying the last error) is raised. Any other exception, `PermanentError`
    included, propagates on its first occurrence.
    `on_retry(attempt, error, delay)` is told about each retry before the wait.
    """
    started = monotonic()
    deadline = started + budget
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except TransientError as error:
            now = monotonic()
            remaining = deadline - now
            delay = backoff.window(attempt, error, now - started) * rng()
            if remaining <= 0:
                raise BudgetExhausted(error, attempt) from error
            delay = min(delay, remaining)
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)

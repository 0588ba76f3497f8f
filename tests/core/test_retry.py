"""Retrying transient failures: backoff shape, budget, and what is never retried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from entitlement_sidecar.errors import BudgetExhausted, PermanentError, TransientError
from entitlement_sidecar.retry import Backoff, HerdBackoff, call_with_retry


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def retry(self, call: Callable[[], str], draw: float = 1.0, **options: Any) -> str:
        """`call_with_retry` on this clock, with every random draw equal to `draw`."""
        options.setdefault("budget", 100)
        return call_with_retry(
            call, sleep=self.sleep, monotonic=self.monotonic, rng=lambda: draw, **options
        )


def failing(times: int, then: str = "ok") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise TransientError("ThrottlingException", "slow down")
        return then

    return calls, call


def test_transient_failures_are_retried_until_success() -> None:
    """Two throttles then an answer: the answer is returned after two waits."""
    clock = FakeClock()
    calls, call = failing(2)
    result = clock.retry(call)
    assert result == "ok"
    assert len(calls) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_backoff_caps_grow_exponentially_up_to_the_maximum() -> None:
    """The delay cap doubles per attempt and stops at the maximum."""
    backoff = Backoff(initial=1, factor=2, maximum=10)
    assert [backoff.cap(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_full_jitter_scales_the_cap_by_the_random_draw() -> None:
    """With a draw of 0.25 each wait is a quarter of its cap."""
    clock = FakeClock()
    _, call = failing(3)
    clock.retry(call, draw=0.25)
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_budget_exhaustion_raises_with_the_last_error_and_attempts() -> None:
    """When the budget is spent the last transient error is reported, not swallowed."""
    clock = FakeClock()
    calls, call = failing(10_000)
    with pytest.raises(BudgetExhausted) as info:
        clock.retry(call, budget=30)
    assert info.value.last.code == "ThrottlingException"
    assert info.value.attempts == len(calls)
    assert clock.now == pytest.approx(30)


def test_waits_never_run_past_the_budget() -> None:
    """The final wait is cut short so one last attempt happens exactly at the deadline."""
    clock = FakeClock()
    _, call = failing(10_000)
    with pytest.raises(BudgetExhausted):
        clock.retry(call, budget=5, backoff=Backoff(initial=4, factor=2, maximum=60))
    assert clock.sleeps == [4.0, 1.0]


def test_permanent_errors_are_never_retried() -> None:
    """A permanent answer propagates on the first attempt."""
    clock = FakeClock()
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        raise PermanentError("CustomerNotEntitledException")

    with pytest.raises(PermanentError):
        clock.retry(call)
    assert calls == [1]
    assert clock.sleeps == []


def test_on_retry_is_told_about_each_retry() -> None:
    """The observer sees attempt numbers, the error and the chosen delay."""
    clock = FakeClock()
    seen: list[tuple[int, str, float]] = []
    _, call = failing(2)
    clock.retry(call, draw=0.5, on_retry=lambda n, e, d: seen.append((n, e.code, d)))
    assert seen == [(1, "ThrottlingException", 0.5), (2, "ThrottlingException", 1.0)]


THROTTLED = TransientError("ThrottlingException")


@pytest.mark.parametrize(
    ("backoff", "error", "attempt", "elapsed", "window"),
    [
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), THROTTLED, 1, 0.0, 8.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), THROTTLED, 1, 3.0, 5.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40, head_start=6.0), THROTTLED, 1, 1.5, 1.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), THROTTLED, 3, 7.5, 1.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), THROTTLED, 4, 12.0, 4.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), THROTTLED, 3, 40.0, 4.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), THROTTLED, 6, 40.0, 10.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=40), TransientError("InternalServiceErrorException"), 1,
         0.0, 1.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=1), THROTTLED, 1, 0.0, 1.0),
        (HerdBackoff(1.0, 2.0, 10.0, herd=500), THROTTLED, 1, 0.0, 100.0),
    ],
    ids=[
        "first-throttle-whole-window",
        "later-throttle-rest-of-window",
        "slow-start-counts",
        "window-ending-stays-in-it",
        "past-the-window-grows-with-the-time-past",
        "past-the-window-never-above-the-cap",
        "a-quota-that-stays-exhausted-reaches-the-maximum",
        "5xx-exponential",
        "no-herd-exponential",
        "window-beyond-the-cap",
    ],
)  # fmt: skip
def test_a_throttled_herd_waits_within_the_quota_window(
    backoff: HerdBackoff, error: TransientError, attempt: int, elapsed: float, window: float
) -> None:
    """After a throttle the delay bound is what is left of herd / rate seconds since the caller
    started (at least `initial`); past that window it grows with the time past it, from
    `initial` up to the exponential cap; other errors keep the exponential cap."""
    assert backoff.window(attempt, error, elapsed) == window

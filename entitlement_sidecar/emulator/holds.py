"""Requests parked by `hold` faults until a test lets them go: waiting on an event, not on time.

A test that needs "a request in flight" (a sidecar still pending, a slow call next to a fast one)
injects a `hold` fault, waits until the emulator reports the request held, checks what it wants,
then releases it. Nothing sleeps for a guessed number of seconds, so such tests are exact on a
busy machine and instant on an idle one. `release()`, a reset, a scenario swap and stopping the
emulator all let every held request go on.
"""

from __future__ import annotations

import threading


class Holds:
    """A counter of held requests and a release generation behind one condition variable."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held = 0
        self._generation = 0

    @property
    def held(self) -> int:
        """How many requests are held right now."""
        with self._changed:
            return self._held

    def hold(self, limit: float | None) -> bool:
        """Park the calling request until released (True) or `limit` seconds pass (False)."""
        with self._changed:
            generation = self._generation
            self._held += 1
            self._changed.notify_all()
            try:
                return self._changed.wait_for(lambda: self._generation != generation, limit)
            finally:
                self._held -= 1
                self._changed.notify_all()

    def release(self) -> int:
        """Let every held request go on; returns how many were held."""
        with self._changed:
            count = self._held
            self._generation += 1
            self._changed.notify_all()
            return count

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> int:
        """Block until at least `count` requests are held; TimeoutError after `timeout` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held >= count, timeout):
                raise TimeoutError(
                    f"{self._held} request(s) held after {timeout} s, expected {count}"
                )
            return self._held

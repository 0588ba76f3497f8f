"""`MeteringEmulator`: the emulator the pytest fixture yields to a seller's test.

It is an `Emulator` on a free loopback port whose clock the test can move: real time plus an
offset that `advance()` and `set_time()` change (it keeps running), so MeterUsage's 6-hour window
and BatchMeterUsage's 24 hours can be crossed without waiting. Everything else is the
`Emulator` API: `url`, `public_key_dir`, `records()`, `set_scenario()`, `reset()`, `env()`,
`client()`, `wait_held()`, `release()`. It changes nothing global: no environment variable, no
default boto3 session; `env()` returns the variables for a subprocess and leaves `os.environ`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from entitlement_sidecar.emulator.server import Emulator
from entitlement_sidecar.emulator.service import ScenarioSource


class MovableClock:
    """Real time plus an offset a test moves; thread-safe, always aware UTC."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (or back, with a negative delta)."""
        with self._lock:
            self._offset += delta

    def set(self, moment: datetime) -> None:
        """Make the clock read `moment` now (it keeps running from there)."""
        if moment.tzinfo is None:
            raise ValueError("set_time needs an aware datetime (UTC)")
        with self._lock:
            self._offset = moment - datetime.now(UTC)


class MeteringEmulator(Emulator):
    """An emulator on a free loopback port with a clock the test moves."""

    def __init__(self, scenario: ScenarioSource = None, *, host: str = "127.0.0.1") -> None:
        self.clock = MovableClock()
        super().__init__(scenario, host, 0, now=self.clock)

    @property
    def region(self) -> str:
        """The region the scenario's endpoint serves."""
        return self.service.scenario.region

    def now(self) -> datetime:
        """The emulator's clock (what MeterUsage's 6-hour window is measured against)."""
        return self.service.now()

    def advance(self, delta: timedelta | None = None, **units: float) -> None:
        """Move the emulator clock: `advance(timedelta(hours=7))` or `advance(hours=7)`."""
        self.clock.advance((delta or timedelta(0)) + timedelta(**units))

    def set_time(self, moment: datetime) -> None:
        """Make the emulator clock read `moment` (aware UTC) from now on, still running."""
        self.clock.set(moment)

"""The `run` parent's usage half: the journal, the intake listeners and the sender's rounds.

Wired into the supervisor's loop (`supervisor.serve`): `tick()` on every turn seals the hours
that are due (`plan`), starts a round of the sender child (`rounds`: one at a time, never while
the registration child is still running) and journals each result the child reports as it
arrives. A round with a transient failure is followed by another after a backoff; hours whose
window closed are recorded as expired; settled hours are dropped by the next compaction.

Shutdown (SIGTERM): the intake stops accepting (the app gets "connection refused", never a 202
for usage that would not be sent), every hour that has begun is sealed, a running round is
stopped, and one last round sends everything with whatever remains of
`ENTITLEMENT_USAGE_SHUTDOWN_TIMEOUT`; what could not be sent stays in the journal (sent if this
pod's or task's sidecar starts again) and is logged, hour by hour, as not sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.usage import plan, report
from entitlement_sidecar.sidecar.usage.events import Rules
from entitlement_sidecar.sidecar.usage.intake import MAX_BODY, Intake
from entitlement_sidecar.sidecar.usage.journal import Journal
from entitlement_sidecar.sidecar.usage.listeners import bind_tcp, bind_unix
from entitlement_sidecar.sidecar.usage.rounds import Rounds
from entitlement_sidecar.sidecar.usage.state import EXPIRED
from entitlement_sidecar.sidecar.usage.units import HOUR, format_quantity, iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from entitlement_sidecar.sidecar.probes import ProbeServer
    from entitlement_sidecar.sidecar.usage.config import UsageConfig

SEAL_RETRY = 30.0


def _random() -> float:
    """A uniform number in [0, 1) without importing `random` into the long-lived process."""
    return int.from_bytes(os.urandom(4), "big") / 2**32


class UsageService:
    """Owns the journal, the intake listeners and the sender rounds of one `run` process."""

    def __init__(
        self,
        config: UsageConfig,
        status_dir: str,
        log: Callable[..., None],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Replay the journal and bind the listeners; `ConfigurationError` naming the variable."""
        self.config = config
        self.log = log
        self.clock = clock
        self.monotonic = monotonic
        self.server: ProbeServer | None = None
        self.next_round: float | None = None
        self.failures = 0
        self.seal_retry_at = 0.0
        self.closing = False
        self.final_round = False
        self.shutdown_deadline = 0.0
        now = clock()
        try:
            self.journal = Journal(status_dir, config.journal_bytes, now)
        except OSError as exc:
            raise ConfigurationError(
                f"ENTITLEMENT_STATUS_DIR={status_dir}: cannot keep the usage journal "
                f"there ({exc.strerror or exc}); one status volume per sidecar",
                variable="ENTITLEMENT_STATUS_DIR",
            ) from None
        journal = self.journal
        self.intake = Intake(
            journal,
            Rules(frozenset(config.dimensions), frozenset(config.tag_keys)),
            clock=clock,
            view=lambda moment: report.view(journal, config.dimensions, moment),
            retry_after=self._retry_after,
            log=log,
        )
        self.rounds = Rounds(self._record, self._round_ended, log)
        self.listeners = [bind_tcp(config.port)]
        if config.socket:
            try:
                self.listeners.append(bind_unix(config.socket))
            except ConfigurationError:
                self.listeners[0].close()
                raise
        if self._pending():
            self.next_round = plan.first_round(now, config.send_jitter, _random())
        log(
            "INFO",
            "usage intake open",
            port=config.port,
            socket=config.socket,
            dimensions=",".join(config.dimensions),
            journal_bytes=journal.size,
            open_hours=len(journal.open),
            unsent_hours=sum(1 for s in journal.sealed.values() if s.pending()),
        )
        if journal.unreadable:
            log("ERROR", "usage journal had unreadable lines", lines=journal.unreadable)

    def attach(self, server: ProbeServer) -> None:
        """Serve the intake listeners (and watch the sender's output) from the supervisor loop."""
        self.server = server
        self.rounds.server = server
        for listener in self.listeners:
            server.add_listener(listener, self.intake.handle, MAX_BODY)

    # -- every turn of the loop -------------------------------------------------------------

    def tick(self, *, registering: bool) -> float:
        """Do what is due; the seconds until something else will be (for the poll timeout)."""
        now = self.clock()
        self.rounds.stalled(now)
        self.rounds.reap()
        if self.closing:
            return self._drain(now)
        seals = plan.due_seals(self.journal.open, now)
        if seals and now >= self.seal_retry_at and self._seal(seals, now):
            first = plan.first_round(now, self.config.send_jitter, _random())
            self.next_round = first if self.next_round is None else min(self.next_round, first)
        if self.rounds.current is None:
            self._expire(now)
            due = self.next_round is not None and now >= self.next_round
            if due and not registering and self._pending():
                self.rounds.start(now, plan.ROUND_BUDGET)
            if self.next_round is not None:
                return min(1.0, max(0.0, self.next_round - now))
        return 1.0

    def _seal(self, seals: dict[int, int], now: float) -> bool:
        try:
            self.journal.compact(seals)
        except OSError as exc:
            self.seal_retry_at = now + SEAL_RETRY
            self.log("ERROR", "cannot seal usage hours", detail=exc.strerror or str(exc))
            return False
        self.intake.full = False
        for hour in sorted(seals):
            sealed = self.journal.sealed.get(hour)
            dims = sealed.dims if sealed else {}
            quantities = {d: format_quantity(send.units) for d, send in dims.items()}
            self.log("INFO", "usage hour sealed", hour=iso(hour), quantities=quantities)
        return True

    def _pending(self) -> bool:
        return any(sealed.pending() for sealed in self.journal.sealed.values())

    def _expire(self, now: float) -> None:
        """Record as expired what no round may send any more (a child would do the same)."""
        for hour, sealed in sorted(self.journal.sealed.items()):
            if plan.expired(sealed.timestamp, now):
                for dimension in sealed.pending():
                    self.log(
                        "ERROR", "usage hour expired unsent", hour=iso(hour), dimension=dimension
                    )
                    self._record({"h": hour, "d": dimension, "r": EXPIRED})

    def _retry_after(self, now: float) -> int:
        """Seconds until the next seal frees journal space (at least 1, at most an hour)."""
        ends = [h + HOUR + plan.SEAL_DELAY for h in self.journal.open]
        wait = min(float(HOUR), *(end - now for end in ends)) if ends else 60.0
        return max(1, -int(-wait // 1))  # rounded up

    def _record(self, outcome: dict[str, Any]) -> None:
        try:
            self.journal.record(outcome)
        except OSError as exc:
            self.log("ERROR", "cannot record a usage send result", detail=str(exc), **outcome)

    def _round_ended(self, failed: bool) -> None:
        """Schedule the next round: backoff after a failure, at once if work is left."""
        now = self.clock()
        if failed:
            self.failures += 1
            self.next_round = now + plan.backoff(self.failures, _random())
        else:
            self.failures = 0
            self.next_round = now if self._pending() else None
        if not self.closing and any(not s.pending() for s in self.journal.sealed.values()):
            with contextlib.suppress(OSError):
                self.journal.compact({})  # drop settled hours; a failure keeps them a while

    # -- shutdown ---------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Stop the intake, seal every hour that has begun, stop a running round (once)."""
        if self.closing:
            return
        self.closing = True
        self.shutdown_deadline = self.monotonic() + self.config.shutdown_timeout
        self.intake.closed = True
        self._close_listeners()
        now = self.clock()
        seals = plan.shutdown_seals(self.journal.open, now)
        if seals:
            self._seal(seals, now)
        self.rounds.signal(signal.SIGTERM)
        self.log("INFO", "usage: sending the hours that have begun before stopping")

    def _drain(self, now: float) -> float:
        if self.rounds.current is None and not self.final_round and self._pending():
            self.final_round = True
            self.rounds.start(now, max(0.0, self.shutdown_deadline - self.monotonic() - 1.0))
        if self.monotonic() >= self.shutdown_deadline:
            self.rounds.signal(signal.SIGKILL)
        return 0.2

    def drained(self) -> bool:
        """True once the last round ended (or the shutdown budget is spent)."""
        if not self.closing:
            return False
        if self.rounds.current is None and (self.final_round or not self._pending()):
            return True
        return self.monotonic() >= self.shutdown_deadline + 2.0

    def close(self) -> None:
        """Log what was not sent, then release the journal, the listeners and any child."""
        self._close_listeners()
        self.rounds.close()
        for waiting in report.unsent(self.journal, self.clock(), everything=True):
            for dimension, detail in waiting.dims.items():
                self.log(
                    "ERROR",
                    "usage not sent before stopping (kept in the journal)",
                    hour=iso(waiting.hour),
                    dimension=dimension,
                    quantity=detail["quantity"],
                    deadline=iso(plan.deadline(waiting.timestamp)),
                )
        self.journal.close()

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            if self.server is not None:
                self.server.remove_listener(listener)
            else:
                listener.close()
        self.listeners = []
        if self.config.socket:
            with contextlib.suppress(OSError):
                os.unlink(self.config.socket)

    # -- views ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `usage` section of /status."""
        return report.status(
            self.journal,
            self.config.dimensions,
            self.clock(),
            intake=self._intake_state(),
            full=self.intake.full,
            next_send_at=self.next_round,
        )

    def metrics(self) -> list[str]:
        """The usage families of /metrics."""
        return report.metrics(
            self.journal,
            self.config.dimensions,
            self.intake.counters,
            self.clock(),
            up=self._intake_state() == "open",
            full=self.intake.full,
        )

    def _intake_state(self) -> str:
        if self.closing:
            return "closed"
        return "unavailable" if self.intake.broken else "open"

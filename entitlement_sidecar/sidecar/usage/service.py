"""The `run` parent's usage half: the journal, the intake listeners and the sender child's rounds.

Wired into the supervisor's loop (`supervisor.serve`): `tick()` on every turn seals the hours
that are due (`plan`), starts a round of the sender child (`usage send --child`, one at a time,
never while the registration child is still running) and records what the child reports on its
stdout, one JSON line per result, in the journal as it arrives. A round with a transient failure
is followed by another after a backoff; hours whose window closed are recorded as expired.

Shutdown (SIGTERM): the intake stops accepting (the app gets "connection refused", never a 202
for usage that would not be sent), every hour that has begun is sealed, a running round is
stopped, and one last round sends everything with whatever remains of
`ENTITLEMENT_USAGE_SHUTDOWN_TIMEOUT`; what could not be sent stays in the journal (sent if this
pod's or task's sidecar starts again) and is logged, hour by hour, as not sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import sys
import time

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.usage import plan, report
from entitlement_sidecar.sidecar.usage.events import Rules
from entitlement_sidecar.sidecar.usage.intake import MAX_BODY, Intake
from entitlement_sidecar.sidecar.usage.journal import EXPIRED, TRANSIENT, Journal
from entitlement_sidecar.sidecar.usage.units import HOUR, format_quantity, iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from entitlement_sidecar.sidecar.probes import ProbeServer
    from entitlement_sidecar.sidecar.usage.config import UsageConfig

CHILD_ARGS = ("-m", "entitlement_sidecar", "usage", "send", "--child")
SEAL_RETRY = 30.0
MAX_OUTPUT = 1 << 20


def _random() -> float:
    """A uniform number in [0, 1) without importing `random` into the long-lived process."""
    return int.from_bytes(os.urandom(4), "big") / 2**32


class SenderRound:
    """A running `usage send --child`: its pid, the read end of its stdout, what it said."""

    __slots__ = ("buffer", "code", "eof", "fd", "pid", "transient")

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.buffer = b""
        self.code: int | None = None
        self.eof = False
        self.transient = False


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
        self.round: SenderRound | None = None
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
                f"there ({exc.strerror or exc})",
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
        self.listeners = [_bind_tcp(config.port)]
        if config.socket:
            try:
                self.listeners.append(_bind_unix(config.socket))
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
        """Serve the intake listeners from the supervisor's own loop."""
        self.server = server
        for listener in self.listeners:
            server.add_listener(listener, self.intake.handle, MAX_BODY)

    # -- every turn of the loop -------------------------------------------------------------

    def tick(self, *, registering: bool) -> float:
        """Do what is due; the seconds until something else will be (for the poll timeout)."""
        journal = self.journal
        now = self.clock()
        self._reap()
        if self.closing:
            return self._drain(now)
        seals = plan.due_seals(journal.open, now)
        if seals and now >= self.seal_retry_at and self._seal(seals, now):
            first = plan.first_round(now, self.config.send_jitter, _random())
            self.next_round = first if self.next_round is None else min(self.next_round, first)
        if self.round is None:
            self._expire(now)
            due = self.next_round is not None and now >= self.next_round
            if due and not registering and self._pending():
                self._start_round(now, plan.ROUND_BUDGET)
        waits = [1.0]
        if self.next_round is not None and self.round is None:
            waits.append(max(0.0, self.next_round - now))
        return min(waits)

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

    # -- the sender child ---------------------------------------------------------------------

    def _start_round(self, now: float, budget: float) -> None:
        read_end, write_end = os.pipe()
        args = [*CHILD_ARGS, "--now", repr(now), "--budget", f"{budget:.3f}"]
        try:
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, *args],
                os.environ,
                file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)],
            )
        except OSError as exc:
            os.close(read_end)
            self.log("ERROR", "cannot start the usage sender", detail=str(exc))
            self._round_failed(now)
            return
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        self.round = SenderRound(pid, read_end)
        if self.server is not None:
            self.server.watch(read_end, self._read_output)

    def _read_output(self) -> None:
        """Record every complete line the child wrote; at the end of its output, close it."""
        current = self.round
        if current is None or current.eof:
            return
        try:
            while chunk := os.read(current.fd, 65536):
                current.buffer += chunk
            current.eof = True
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            current.eof = True
        *lines, current.buffer = current.buffer.split(b"\n")
        if len(current.buffer) > MAX_OUTPUT:
            current.buffer = b""
        for line in lines:
            self._outcome(current, line)
        if current.eof:
            if self.server is not None:
                self.server.unwatch(current.fd)
            os.close(current.fd)
            if current.code is not None:
                self._end(current)

    def _outcome(self, current: SenderRound, line: bytes) -> None:
        try:
            outcome = json.loads(line)
        except (ValueError, RecursionError):
            return
        if isinstance(outcome, dict):
            current.transient |= outcome.get("r") == TRANSIENT
            self._record(outcome)

    def _record(self, outcome: dict[str, Any]) -> None:
        try:
            self.journal.record(outcome)
        except OSError as exc:
            self.log("ERROR", "cannot record a usage send result", detail=str(exc), **outcome)

    def _reap(self) -> None:
        current = self.round
        if current is None or current.code is not None:
            return
        try:
            pid, wait_status = os.waitpid(current.pid, os.WNOHANG)
        except ChildProcessError:
            pid, wait_status = current.pid, 1 << 8
        if not pid:
            return
        current.code = os.waitstatus_to_exitcode(wait_status)
        if current.eof:
            self._end(current)
        else:
            self._read_output()  # the child is gone: its output ends here
            if not current.eof:  # something else holds the pipe open: stop listening
                current.eof = True
                if self.server is not None:
                    self.server.unwatch(current.fd)
                os.close(current.fd)
                self._end(current)

    def _end(self, current: SenderRound) -> None:
        """The round is over (exited, output read): schedule the next one."""
        if self.round is not current:
            return
        self.round = None
        now = self.clock()
        if current.code != 0:
            self.log("ERROR", "usage sender exited", exit_code=current.code)
        if current.transient or current.code != 0:
            self._round_failed(now)
        else:
            self.failures = 0
            self.next_round = now if self._pending() else None
        if not self.closing and any(not s.pending() for s in self.journal.sealed.values()):
            with contextlib.suppress(OSError):
                self.journal.compact({})  # drop settled hours; a failure keeps them a while

    def _round_failed(self, now: float) -> None:
        self.failures += 1
        self.next_round = now + plan.backoff(self.failures, _random())

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
        if self.round is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.round.pid, signal.SIGTERM)
        self.log("INFO", "usage: sending the hours that have begun before stopping")

    def _drain(self, now: float) -> float:
        if self.round is None and not self.final_round and self._pending():
            self.final_round = True
            left = self.shutdown_deadline - self.monotonic() - 1.0
            self._start_round(now, max(0.0, left))
        if self.round is not None and self.monotonic() >= self.shutdown_deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.round.pid, signal.SIGKILL)
        return 0.2

    def drained(self) -> bool:
        """True once the last round ended (or the shutdown budget is spent)."""
        if not self.closing:
            return False
        if self.round is None and (self.final_round or not self._pending()):
            return True
        return self.monotonic() >= self.shutdown_deadline + 2.0

    def close(self) -> None:
        """Log what was not sent, then release the journal and the listeners."""
        self._close_listeners()
        if self.round is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.round.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.round.pid, 0)
            with contextlib.suppress(OSError):
                os.close(self.round.fd)
            self.round = None
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
        return report.status(
            self.journal,
            self.config.dimensions,
            self.clock(),
            intake=self._intake_state(),
            full=self._full(),
            next_send_at=self.next_round,
        )

    def metrics(self) -> list[str]:
        return report.metrics(
            self.journal,
            self.config.dimensions,
            self.intake.counters,
            self.clock(),
            up=self._intake_state() == "open",
            full=self._full(),
        )

    def _intake_state(self) -> str:
        if self.closing:
            return "closed"
        return "unavailable" if self.intake.broken else "open"

    def _full(self) -> bool:
        return self.intake.full


def _bind_tcp(port: int) -> socket.socket:
    try:
        return socket.create_server(("127.0.0.1", port), backlog=1024)
    except OSError as exc:
        raise ConfigurationError(
            f"ENTITLEMENT_USAGE_PORT={port}: {exc.strerror or exc}",
            variable="ENTITLEMENT_USAGE_PORT",
        ) from None


def _bind_unix(path: str) -> socket.socket:
    """A Unix socket at `path`, replacing a stale socket of an earlier run (nothing else)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigurationError(
            f"ENTITLEMENT_USAGE_SOCKET={path}: {exc.strerror or exc}",
            variable="ENTITLEMENT_USAGE_SOCKET",
        ) from None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o666)  # noqa: S103 - the app may run as another user: the volume guards it
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise ConfigurationError(
            f"ENTITLEMENT_USAGE_SOCKET={path}: {exc.strerror or exc}",
            variable="ENTITLEMENT_USAGE_SOCKET",
        ) from None
    return listener

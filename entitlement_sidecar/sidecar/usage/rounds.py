"""The sender child's rounds, seen from the parent: start one, read its results, reap it.

At most one `usage send --child` runs at a time. Its stdout is a pipe the parent's loop watches:
every complete JSON line is one send result, handed to `on_result` (which journals it) as soon
as it arrives, so a crash of the parent loses at most the result of the call in flight. The
round ends when the child has exited and its output is read; `on_end` learns whether any
attempt failed transiently or the child itself failed (it exited non-zero, or could not start).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

from entitlement_sidecar.sidecar.spawn import spawn
from entitlement_sidecar.sidecar.usage.state import TRANSIENT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from entitlement_sidecar.sidecar.probes import ProbeServer

MAX_OUTPUT = 1 << 20  # a line longer than this is not one of ours: dropped
STALL_GRACE = 30.0  # seconds past its budget after which a child is taken for stalled and killed


class SenderRound:
    """A running child: its pid, the read end of its stdout, what it said so far, its deadline."""

    __slots__ = ("buffer", "code", "deadline", "eof", "fd", "pid", "transient")

    def __init__(self, pid: int, fd: int, deadline: float) -> None:
        self.pid = pid
        self.fd = fd
        self.deadline = deadline
        self.buffer = b""
        self.code: int | None = None
        self.eof = False
        self.transient = False


class Rounds:
    """One sender child at a time, driven from the supervisor's loop."""

    def __init__(
        self,
        on_result: Callable[[dict[str, Any]], None],
        on_end: Callable[[bool], None],
        log: Callable[..., None],
    ) -> None:
        self.on_result = on_result
        self.on_end = on_end  # called with True when the round failed (transient or crashed)
        self.log = log
        self.current: SenderRound | None = None
        self.server: ProbeServer | None = None

    def start(self, now: float, budget: float) -> None:
        """Spawn `usage send --child` for one round with the parent's clock and a budget."""
        read_end, write_end = os.pipe()
        try:
            pid = spawn(
                "usage", "send", "--child", "--now", repr(now), "--budget", f"{budget:.3f}",
                stdout=write_end,
            )  # fmt: skip
        except OSError as exc:
            os.close(read_end)
            self.log("ERROR", "cannot start the usage sender", detail=str(exc))
            self.on_end(True)
            return
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        self.current = SenderRound(pid, read_end, now + budget + STALL_GRACE)
        if self.server is not None:
            self.server.watch(read_end, self.read)

    def read(self) -> None:
        """Hand on every complete line the child wrote; at the end of its output, close it."""
        current = self.current
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
            self._result(current, line)
        if current.eof:
            self._close_pipe(current)
            if current.code is not None:
                self._end(current)

    def reap(self) -> None:
        """Collect the child's exit if it has finished (its output is read to the end first)."""
        current = self.current
        if current is None or current.code is not None:
            return
        try:
            pid, wait_status = os.waitpid(current.pid, os.WNOHANG)
        except ChildProcessError:
            pid, wait_status = current.pid, 1 << 8
        if not pid:
            return
        current.code = os.waitstatus_to_exitcode(wait_status)
        if not current.eof:
            self.read()  # the child is gone: its output ends here
        if not current.eof:  # something else holds the pipe open: stop listening anyway
            current.eof = True
            self._close_pipe(current)
        self._end(current)

    def stalled(self, now: float) -> bool:
        """Kill a child past its budget and grace (stopped, hung in DNS...); True if it was."""
        current = self.current
        if current is None or current.code is not None or now < current.deadline:
            return False
        self.log("ERROR", "usage sender stalled past its budget: killed", pid=current.pid)
        self.signal(signal.SIGKILL)
        current.transient = True  # the round failed: back off, then send again (same requests)
        return True

    def signal(self, signum: int) -> None:
        if self.current is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.current.pid, signum)

    def close(self) -> None:
        """Kill a child still running and release its pipe."""
        current = self.current
        if current is None:
            return
        self.signal(signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(current.pid, 0)
        if not current.eof:
            self._close_pipe(current)
        self.current = None

    def _result(self, current: SenderRound, line: bytes) -> None:
        try:
            outcome = json.loads(line)
        except (ValueError, RecursionError):
            return
        if isinstance(outcome, dict):
            current.transient |= outcome.get("r") == TRANSIENT
            self.on_result(outcome)

    def _close_pipe(self, current: SenderRound) -> None:
        if self.server is not None:
            self.server.unwatch(current.fd)
        with contextlib.suppress(OSError):
            os.close(current.fd)

    def _end(self, current: SenderRound) -> None:
        if self.current is not current:
            return
        self.current = None
        if current.code != 0:
            self.log("ERROR", "usage sender exited", exit_code=current.code)
        self.on_end(current.transient or current.code != 0)

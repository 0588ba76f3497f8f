"""The long-lived half of `run`: the probe endpoints, the readiness latch, the children's fate.

Imported by `commands/run.py` only after the registration child has been spawned, so the child's
start is not delayed by these imports. Standard library only (sockets, selectors, json, signal):
this process stays alive in every pod. Readiness: the child exited 0 AND status.json says
entitled; latched, never back to 503. Child exit 2: stop with 2. Any other failure: keep serving
the reason, not ready. SIGTERM/SIGINT: stop serving, stop the child, exit 0. In License Manager
mode a `LicenseLoop` (`license/schedule.py`) also starts the heartbeat and gate children on time,
readiness follows the license (`license/readiness.py`: not latched), and at SIGTERM a held seat is
returned by a check-in child before the process exits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from entitlement_sidecar import logline
from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK
from entitlement_sidecar.sidecar import metrics, status
from entitlement_sidecar.sidecar.defaults import (
    ENTITLED,
    MODE_LICENSE_MANAGER,
    MODE_REGISTER_USAGE,
    PENDING,
    SEAT_FILE,
    UNAVAILABLE,
)
from entitlement_sidecar.sidecar.probes import TEXT, ProbeServer, Response

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Mapping

    from entitlement_sidecar.sidecar.license.schedule import LicenseLoop
    from entitlement_sidecar.sidecar.usage.service import UsageService

GATE = ("register", "--child")

STOP_GRACE = 3.0


class Log:
    """Log lines of the parent, shaped by `logline` exactly like the child's (no `logging`)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.format = logline.chosen_format(environ.get(logline.FORMAT_VARIABLE))
        level = environ.get("ENTITLEMENT_LOG_LEVEL", "").strip().upper()
        self.level = logline.LEVELS.get(level, logline.LEVELS["INFO"])

    def __call__(self, level: str, message: str, **fields: object) -> None:
        if logline.LEVELS[level] < self.level:
            return
        text = logline.line(self.format, level, "entitlement_sidecar.run", message, fields)
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class Supervisor:
    """The parent's state: the child, the readiness latch, and the probe routes."""

    def __init__(
        self, status_dir: str, child: int | None, log: Log, license: LicenseLoop | None = None
    ) -> None:
        self.status_dir = status_dir
        self.child = child
        self.child_args: tuple[str, ...] = GATE
        self.child_code: int | None = None
        self.license = license
        self.ready = False
        self.stopping = False
        self.log = log
        self.usage: UsageService | None = None  # the usage intake, when it is on
        self._cache: tuple[tuple[int, int, int], dict[str, object] | None] | None = None

    def document(self) -> dict[str, object] | None:
        """status.json, re-read only when it changed (inode, size, mtime)."""
        try:
            info = os.stat(status.status_path(self.status_dir))
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            return None
        if self._cache is None or self._cache[0] != stamp:
            self._cache = (stamp, status.read(self.status_dir))
        return self._cache[1]

    @property
    def registering(self) -> bool:
        """The start gate (`register --child`) is running."""
        return self.child is not None and self.child_args == GATE

    @property
    def mode(self) -> str:
        return MODE_REGISTER_USAGE if self.license is None else MODE_LICENSE_MANAGER

    def reap(self) -> None:
        """Collect the child's exit status if it has finished; latch readiness."""
        if self.child is not None:
            try:
                pid, wait_status = os.waitpid(self.child, os.WNOHANG)
            except ChildProcessError:
                pid, wait_status = self.child, 1 << 8
            if pid:
                self.child = None
                code = os.waitstatus_to_exitcode(wait_status)
                if self.child_args == GATE:
                    self._child_exited(code)
                if self.license is not None:
                    self.license.exited(self.child_args, code, self.document(), time.time())
        if self.license is not None:
            was, self.ready = self.ready, self.license.ready(self.document(), time.time())
            if was != self.ready:
                self.log("INFO" if self.ready else "WARNING", "ready" if self.ready else "unready")
        elif not self.ready and self.child_code == 0 and status.is_entitled(self.document()):
            self.ready = True
            self.log("INFO", "ready: entitled")

    def tick(self) -> float:
        """Start a License Manager child whose time has come; seconds until the next one."""
        if self.license is None or self.stopping:
            return 1.0
        now = time.time()
        args = self.license.due(now) if self.child is None else None
        if args is not None:
            self.start_child(args)
        wait = self.license.until_due(now)
        return 1.0 if wait is None else min(1.0, wait)

    def start_child(self, args: tuple[str, ...]) -> None:
        assert self.license is not None
        self.child_args = args
        try:
            self.child = self.license.spawn(args)
        except OSError as exc:
            self.log("ERROR", "cannot start a child", args=" ".join(args), detail=str(exc))
            self.license.exited(args, 1, self.document(), time.time())

    def return_seat(self, grace: float) -> None:
        """At stop: start `license checkin` when a floating seat may be held; wait for it."""
        if self.license is None or not _seat_to_return(self.status_dir):
            return
        self.start_child(self.license.CHECKIN)
        deadline = time.monotonic() + grace
        while self.child is not None and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        if self.child is not None:
            self.log("ERROR", "seat check-in did not finish in time")
            self.stop_child()

    def _child_exited(self, code: int) -> None:
        self.child_code = code
        doc = self.document()
        state = doc.get("state") if doc else None
        if code == EXIT_CONFIG:  # it said why in one line: nothing to add but the stop
            self.log("DEBUG", "stopping: the registration process rejected the settings")
            self.stopping = True
        elif code not in (0, 1, 3) or state in (None, PENDING):
            self.log("ERROR", "registration process failed", exit_code=code)
            doc = status.document(
                UNAVAILABLE,
                reason="RegistrationFailed",
                message=f"registration process exited with {code}",
                mode=self.mode,
            )
            try:
                status.write(self.status_dir, doc)
            except OSError as exc:
                self.log("ERROR", "cannot write status", detail=str(exc))
        elif state != ENTITLED:
            reason = doc.get("reason") if doc else None
            self.log(
                "WARNING", "not entitled; serving status, not ready", state=state, reason=reason
            )

    def route(self, path: str) -> Response:  # noqa: PLR0911 - one answer per endpoint
        self.reap()
        if path == "/livez":
            return 200, TEXT, b"ok\n"
        if path == "/readyz":
            if self.ready:
                return 200, TEXT, b"ready\n"
            doc = self.document()
            state = doc.get("state") if doc else PENDING
            reason = (doc.get("reason") if doc else None) or ""
            return 503, TEXT, f"not ready: {state} {reason}".rstrip().encode() + b"\n"
        if path == "/status":
            doc = self.document()
            if doc is None:
                return 503, "application/json", b'{"error": "status.json unreadable"}\n'
            if self.usage is not None:
                doc = {**doc, "usage": self.usage.status()}
            return 200, "application/json", json.dumps(doc, indent=2).encode() + b"\n"
        if path == "/metrics":
            body = metrics.render(self.document(), ready=self.ready)
            if self.usage is not None:
                body += "\n".join(self.usage.metrics()) + "\n"
            return 200, metrics.CONTENT_TYPE, body.encode()
        return 404, TEXT, b"not found\n"

    def stop_child(self) -> None:
        if self.child is None:
            return
        try:
            os.kill(self.child, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE
        while self.child is not None and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.02)
        if self.child is not None:
            os.kill(self.child, signal.SIGKILL)
            os.waitpid(self.child, 0)


def _seat_to_return(status_dir: str) -> bool:
    """Whether `seat.json` records a provisional checkout held or in flight (json only)."""
    try:
        with open(os.path.join(status_dir, SEAT_FILE), "rb") as handle:
            seat = json.loads(handle.read(65536))
    except (OSError, ValueError, RecursionError):
        return False
    return (
        isinstance(seat, dict)
        and seat.get("state") in {"held", "pending"}
        and seat.get("checkout_type") == "PROVISIONAL"
    )


def serve(supervisor: Supervisor, listener: socket.socket, port: int) -> int:
    """Publish pending, then serve until SIGTERM/SIGINT or an invalid-configuration child."""
    log = supervisor.log
    try:
        pending = status.document(PENDING, mode=supervisor.mode)
        status.create_if_absent(supervisor.status_dir, pending)
    except OSError as exc:
        log("WARNING", "cannot write pending status", detail=str(exc))
    server = ProbeServer(listener, supervisor.route)
    usage = supervisor.usage
    if usage is not None:
        usage.attach(server)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def on_stop(signum: int, _frame: object) -> None:
        supervisor.stopping = True

    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    server.watch(wake_r, lambda: _drain(wake_r))
    log("INFO", "serving probes", port=port, status_dir=supervisor.status_dir)
    try:
        while True:
            supervisor.reap()
            timeout = supervisor.tick()  # License Manager children due now; 1.0 without them
            if supervisor.stopping:
                if usage is None or supervisor.child_code == EXIT_CONFIG:
                    break
                usage.begin_shutdown()  # send the hours that have begun, then stop
                if usage.drained():
                    break
            if usage is not None:
                timeout = min(timeout, usage.tick(registering=supervisor.registering))
            server.poll(timeout)
    finally:
        server.close()
        supervisor.stop_child()
        if usage is not None:
            usage.close()
        if supervisor.license is not None:
            supervisor.return_seat(supervisor.license.checkin + STOP_GRACE)
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    if supervisor.child_code == EXIT_CONFIG:
        return EXIT_CONFIG
    log("INFO", "stopped")
    return EXIT_OK


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except (BlockingIOError, InterruptedError):
        pass

"""How one registration ends: the status documents it writes and the exit code it returns.

`registration.register` decides; this module records. A `Report` collects what the attempts did
(count, results, latency, the last nonce) and turns each way a registration can end (entitled,
denied, unavailable; interrupted or failed by a bug: unavailable too, so a restart tries again)
into one atomic status write, one log line and the documented exit code, so the flow reads top to
bottom without inner closures.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from entitlement_sidecar.errors import EXIT_OK, BudgetExhausted, ConfigurationError
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.sidecar.defaults import (
    DENIED,
    ENTITLED,
    EXIT_DENIED,
    EXIT_UNAVAILABLE,
    PENDING,
    UNAVAILABLE,
)

log = logging.getLogger("entitlement_sidecar.sidecar.registration")

INTERRUPTED = "Interrupted"
REGISTRATION_FAILED = "RegistrationFailed"
INVALID_CONFIGURATION = "InvalidConfiguration"


def unexpected(logger: logging.Logger, what: str, error: Exception) -> str:
    """Log an unexpected error (a bug) of `what` with its traceback; the status message for it."""
    logger.error(
        "%s failed unexpectedly: %s: %s",
        what,
        type(error).__name__,
        error,
        exc_info=error,
        extra={"reason": REGISTRATION_FAILED},
    )
    return f"{type(error).__name__}: {error}"


class Ending(Protocol):
    """What a start gate's report records when its flow ends without an answer of its own."""

    def interrupted(self) -> None: ...

    def invalid_configuration(self, reason: str, message: str) -> None: ...

    def failed(self, error: Exception) -> int: ...


def settle(report: Ending, flow: Callable[[], int]) -> int:
    """`flow()`'s exit code, with every other ending recorded by `report` first: SIGTERM/Ctrl-C
    (unavailable, re-raised for the command's one line), a configuration error (re-raised: exit
    2), an unwritable status directory (re-raised: the command reports it), a bug (exit 3)."""
    try:
        return flow()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the command turns it into one)
        report.interrupted()
        raise
    except ConfigurationError as error:
        report.invalid_configuration(INVALID_CONFIGURATION, str(error))
        raise
    except OSError:  # the status directory: the command reports it as a configuration error
        raise
    except Exception as error:  # a bug must still end with a status and a documented code
        return report.failed(error)


@dataclass(frozen=True)
class Clock:
    """Time sources, injected so tests can run the retry loop instantly."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


REAL_CLOCK = Clock()


@dataclass
class Attempts:
    """What the RegisterUsage attempts did (for status.json and, through it, /metrics)."""

    count: int = 0
    results: dict[str, int] = field(default_factory=dict)
    latency_sum: float = 0.0
    nonce: str | None = None

    def record(self, result: str, seconds: float) -> None:
        self.count += 1
        self.results[result] = self.results.get(result, 0) + 1
        self.latency_sum += seconds

    def carry(self, previous: dict[str, Any]) -> None:
        """Take over an earlier run's counts, so a rewritten denial still shows AWS was called."""
        self.count = int(previous["attempts"])
        results = previous.get("attempt_results")
        if isinstance(results, dict):
            self.results = {str(k): v for k, v in results.items() if isinstance(v, int)}


def attempt_fields(attempts: Attempts, clock: Clock, started: float) -> dict[str, Any]:
    """The status fields every start gate writes: its attempts, how long it took, when."""
    return {
        "attempts": attempts.count,
        "attempt_results": attempts.results,
        "latency_seconds_sum": round(attempts.latency_sum, 6),
        "duration_seconds": round(clock.monotonic() - started, 6),
        "checked_at": status.utc_now_iso(clock.wall()),
    }


class Report:
    """The status hand-off of one registration in `status_dir`, from pending to its end."""

    def __init__(
        self, status_dir: str, fields: dict[str, Any], clock: Clock, started: float | None = None
    ) -> None:
        self.status_dir = status_dir
        self.fields = dict(fields)  # product_code, public_key_version; then instance, kind
        self.clock = clock
        self.started = clock.monotonic() if started is None else started
        self.attempts = Attempts()
        self.ended = False  # a final document was written

    def publish_pending(self) -> None:
        """Publish `pending` unless a document is there (proves STATUS_DIR writable).

        Never replaces a document: a restarted sidecar container must not flip the status the
        running app reads, and an earlier denial must still be found by the refusal check.
        """
        status.create_if_absent(self.status_dir, status.document(PENDING, **self.fields))

    def identify(self, instance_id: str, kind: str) -> None:
        self.fields.update(instance=instance_id, instance_kind=kind)

    def entitled(self, token: str, *, verified: bool, rotation: str | None) -> int:
        digest = hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
        self._write(
            ENTITLED,
            None,
            "entitled",
            token,
            public_key_rotation_at=rotation,
            signature_verified=verified,
            token_sha256=digest,
        )
        instance = self.fields.get("instance")
        log.info(
            "entitled (instance %s, %d attempts, token sha256:%s)",
            instance,
            self.attempts.count,
            digest[:12],
            extra={"instance": instance, "attempts": self.attempts.count},
        )
        return EXIT_OK

    def denied(self, what: str, reason: str, message: str, **extra: Any) -> int:
        log.error("%s: %s: %s", what, reason, message, extra={"reason": reason})
        self._write(DENIED, reason, message, **extra)
        return EXIT_DENIED

    def unavailable(self, exhausted: BudgetExhausted) -> int:
        last = exhausted.last
        log.error(
            "RegisterUsage still failing (%s) after %d attempts: startup budget spent",
            last.code,
            self.attempts.count,
            extra={"reason": last.code, "attempts": self.attempts.count},
        )
        self._write(UNAVAILABLE, last.code, last.message or str(last))
        return EXIT_UNAVAILABLE

    def interrupted(self) -> None:
        """Ctrl-C or SIGTERM before an outcome: `unavailable` (a restart tries again), no log line
        (the command prints the one line)."""
        self._write_non_answer(
            UNAVAILABLE, INTERRUPTED, "registration interrupted before an answer"
        )

    def failed(self, error: Exception) -> int:
        """An unexpected error (a bug): `unavailable` with the error's type, exit 3."""
        message = unexpected(log, "registration", error)
        self._write_non_answer(UNAVAILABLE, REGISTRATION_FAILED, message)
        return EXIT_UNAVAILABLE

    def invalid_configuration(self, reason: str, message: str) -> None:
        """Record a configuration error (the caller exits 2)."""
        self._write_non_answer(DENIED, reason, message)

    def _write_non_answer(self, state: str, reason: str, message: str) -> None:
        """Write an ending that is not AWS's answer, unless the document there must stay.

        Nothing replaces this run's own outcome, an entitled document (the app may be running on
        it) or a denial that followed an AWS call (final for the pod: overwriting it would let
        the next restart ask AWS again, and a pod's second call is never refused). A failed write
        is only logged: the exit code still tells.
        """
        current = status.read(self.status_dir)
        if self.ended or (
            current is not None
            and (
                current.get("state") == ENTITLED
                or (current.get("state") == DENIED and current.get("attempts", 0) != 0)
            )
        ):
            return
        try:
            self._write(state, reason, message)
        except OSError as exc:
            log.warning("could not write status: %s", exc)

    def _write(
        self, state: str, reason: str | None, message: str, token: str | None = None, **extra: Any
    ) -> None:
        doc = status.document(
            state,
            reason=reason,
            message=message,
            nonce=self.attempts.nonce,
            **attempt_fields(self.attempts, self.clock, self.started),
            **self.fields,
            **extra,
        )
        status.write(self.status_dir, doc, token)
        self.ended = True

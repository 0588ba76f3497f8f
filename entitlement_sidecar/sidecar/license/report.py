"""The License Manager status hand-off: `status.json`, `entitlements.json` and `token.jwt`.

The start gate, the heartbeat and the check-in each end by writing one document through a
`LicenseStatus`: the common fields (state, reason, instance, attempts...) plus the `license`
object (ARN, checkout type, what is granted, expiry, last check and its result, the policy's lost
and lock times). `entitlements.json` is written first (exactly `{name: value}` of what the license
grants now: emptied when it is lost, kept through transient failures), then the status; the
SignedToken, when AWS sent one, is `token.jwt`. Each child carries the previous document's
license history forward so counts and the time a loss began survive across children.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from entitlement_sidecar.errors import EXIT_OK
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.sidecar.defaults import (
    DENIED,
    ENTITLED,
    EXIT_DENIED,
    EXIT_UNAVAILABLE,
    MODE_LICENSE_MANAGER,
    PENDING,
    UNAVAILABLE,
)
from entitlement_sidecar.sidecar.outcome import (
    INTERRUPTED,
    REGISTRATION_FAILED,
    Attempts,
    Clock,
    attempt_fields,
    unexpected,
)

log = logging.getLogger("entitlement_sidecar.sidecar.license")

Granted = Mapping[str, int | bool]


class LicenseStatus:
    """One child's view of the pod's License Manager status, written atomically at its end."""

    def __init__(
        self,
        status_dir: str,
        fields: Mapping[str, Any],
        block: Mapping[str, Any],
        clock: Clock,
        previous: Mapping[str, Any] | None = None,
    ) -> None:
        self.status_dir = status_dir
        self.fields = dict(fields)  # product_code; then instance, instance_kind
        self.clock = clock
        self.started = clock.monotonic()
        self.attempts = Attempts()
        self.block: dict[str, Any] = dict.fromkeys(status.LICENSE_FIELDS)
        self.block.update(checks={}, stale=False, seat_held=False, signed_token_verified=False)
        self.token_sha256 = None  # of the token.jwt an earlier child wrote, while it stays
        if previous and _same_pod(previous, fields, block):
            self.block.update(_license(previous))
            if previous.get("entitled") is True:
                self.token_sha256 = previous.get("token_sha256")
            if previous.get("attempts"):
                self.attempts.carry(dict(previous))
        self.block.update(block)

    def identify(self, instance_id: str, kind: str) -> None:
        self.fields.update(instance=instance_id, instance_kind=kind)

    def now_iso(self) -> str:
        return status.utc_now_iso(self.clock.wall())

    def count(self, result: str) -> None:
        """One more license check ended with `result` (`ok` or an error code)."""
        checks = dict(self.block.get("checks") or {})
        checks[result] = int(checks.get(result, 0)) + 1
        self.block["checks"] = checks

    def publish_pending(self) -> None:
        """Publish `pending` unless a document is there (proves STATUS_DIR writable)."""
        status.create_if_absent(self.status_dir, self._document(PENDING, None, "checking out"))

    def entitled(
        self, granted: Granted, message: str, token: str | None = None, **block: Any
    ) -> int:
        self.block.update(
            entitlements=dict(granted), lost_at=None, lock_at=None, reason=None, message=message
        )
        self.block.update(block)
        verified = bool(self.block.get("signed_token_verified"))
        extra: dict[str, Any] = {"signature_verified": verified, "token_sha256": self.token_sha256}
        if token is not None:
            extra["token_sha256"] = hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
        self._write(ENTITLED, None, message, granted=granted, token=token, **extra)
        log.info(
            "entitled: %s (%s)",
            ", ".join(f"{k}={v}" for k, v in sorted(granted.items())) or "nothing",
            self.block.get("result"),
            extra={"license_arn": self.block.get("arn"), "result": self.block.get("result")},
        )
        return EXIT_OK

    def denied(self, reason: str, message: str, **block: Any) -> int:
        log.error("license: %s: %s", reason, message, extra={"reason": reason})
        self.block.update(entitlements={}, reason=reason, message=message, **block)
        self._write(DENIED, reason, message, granted={})
        return EXIT_DENIED

    def unavailable(self, reason: str, message: str) -> int:
        log.error(
            "license check still failing (%s): budget spent", reason, extra={"reason": reason}
        )
        self.block.update(entitlements={}, result="unavailable", reason=reason, message=message)
        self._write(UNAVAILABLE, reason, message, granted={})
        return EXIT_UNAVAILABLE

    def interrupted(self) -> None:
        """SIGTERM or Ctrl-C before the gate's answer: `unavailable` (a restart tries again)."""
        message = "license check interrupted before an answer"
        self.block.update(
            entitlements={}, result="unavailable", reason=INTERRUPTED, message=message
        )
        self._write(UNAVAILABLE, INTERRUPTED, message, granted={})

    def failed(self, error: Exception) -> int:
        """An unexpected error (a bug): `unavailable` with the error's type, exit 3."""
        message = unexpected(log, "license check", error)
        self.block.update(
            entitlements={}, result="unavailable", reason=REGISTRATION_FAILED, message=message
        )
        self._write(UNAVAILABLE, REGISTRATION_FAILED, message, granted={})
        return EXIT_UNAVAILABLE

    def unchanged(self, doc: Mapping[str, Any], **block: Any) -> None:
        """Rewrite `doc`'s state with an updated license block (entitlements.json untouched)."""
        self.block.update(block)
        keep = {k: doc.get(k) for k in ("signature_verified", "token_sha256")}
        self._write(str(doc.get("state")), doc.get("reason"), str(doc.get("message")), **keep)

    def invalid_configuration(self, reason: str, message: str) -> None:
        try:
            self.block.update(result="denied", reason=reason, message=message)
            self._write(DENIED, reason, message, granted={})
        except OSError as exc:
            log.warning("could not write status: %s", exc)

    def _document(
        self, state: str, reason: str | None, message: str, **extra: Any
    ) -> dict[str, Any]:
        return status.document(
            state,
            reason=reason,
            message=message,
            **attempt_fields(self.attempts, self.clock, self.started),
            mode=MODE_LICENSE_MANAGER,
            license=dict(self.block),
            **self.fields,
            **extra,
        )

    def _write(
        self,
        state: str,
        reason: str | None,
        message: str,
        *,
        granted: Granted | None = None,
        token: str | None = None,
        **extra: Any,
    ) -> None:
        if granted is not None:
            status.write_entitlements(self.status_dir, dict(granted))
        status.write(self.status_dir, self._document(state, reason, message, **extra), token)


def _license(doc: Mapping[str, Any]) -> dict[str, Any]:
    block = doc.get("license")
    return (
        {k: v for k, v in block.items() if k in status.LICENSE_FIELDS}
        if isinstance(block, dict)
        else {}
    )


def _same_pod(
    previous: Mapping[str, Any], fields: Mapping[str, Any], block: Mapping[str, Any]
) -> bool:
    """Whether `previous` was written for this instance (when known) and product SKU."""
    if previous.get("mode") != MODE_LICENSE_MANAGER:
        return False
    if "instance" in fields and previous.get("instance") != fields["instance"]:
        return False
    return _license(previous).get("sku") == block.get("sku")

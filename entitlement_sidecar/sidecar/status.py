"""The status hand-off: `status.json` (+ `token.jwt` when entitled) in `ENTITLEMENT_STATUS_DIR`.

In License Manager mode `entitlements.json` (`{name: value}` of what the license grants) sits
beside them. Other containers read these files (the app, its probes, `check`), so every write is
atomic (old or new document, never a torn one), the document is versioned, and reading is
tolerant: a missing, unreadable or malformed file is "not entitled", never an exception. Lean on
purpose (json + os): the long-lived `run` process and the `check` probe import it; the writer
imports `atomic` lazily.
"""

from __future__ import annotations

import json
import os

from entitlement_sidecar import logline
from entitlement_sidecar.sidecar.defaults import (
    ENTITLED,
    ENTITLEMENTS_FILE,
    MODE_REGISTER_USAGE,
    STATES,
    STATUS_FILE,
    STATUS_VERSION,
    TOKEN_FILE,
)
from entitlement_sidecar.sidecar.safefile import NotReadable, read_regular

TYPE_CHECKING = False  # keep `typing` out of the exec probe; mypy still reads this block
if TYPE_CHECKING:
    from typing import Any

MAX_STATUS_BYTES = 65536
MAX_TOKEN_BYTES = 65536  # RegisterUsage tokens are small; License Manager SignedTokens are not

# Every field of a version-1 document, in README order (README "Status file").
FIELDS = (
    "version",
    "state",
    "entitled",
    "reason",
    "message",
    "product_code",
    "public_key_version",
    "instance",
    "instance_kind",
    "nonce",
    "checked_at",
    "attempts",
    "attempt_results",
    "latency_seconds_sum",
    "duration_seconds",
    "public_key_rotation_at",
    "signature_verified",
    "token_sha256",
    "mode",
    "license",
)
# The `license` object of a License Manager document (README "Status file").
LICENSE_FIELDS = (
    "sku",
    "arn",
    "region",
    "checkout_type",
    "entitlements",
    "tier",
    "expiration",
    "valid_until",
    "checked_at",
    "result",
    "reason",
    "message",
    "policy",
    "lost_at",
    "lock_at",
    "failing_since",
    "stale",
    "seat_held",
    "credentials",
    "signed_token_verified",
    "checks",
)


utc_now_iso = logline.timestamp  # `checked_at`: the same RFC 3339 UTC form as every log line


def document(state: str, **fields: Any) -> dict[str, Any]:
    """A complete version-1 status document; fields not given are null (or their zero value)."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    doc: dict[str, Any] = dict.fromkeys(FIELDS)
    doc.update(attempts=0, attempt_results={}, latency_seconds_sum=0.0, mode=MODE_REGISTER_USAGE)
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown status fields {sorted(unknown)}")
    doc.update(fields)
    doc.update(version=STATUS_VERSION, state=state, entitled=state == ENTITLED)
    if doc["checked_at"] is None:
        doc["checked_at"] = utc_now_iso()
    return doc


def status_path(status_dir: str) -> str:
    return os.path.join(status_dir, STATUS_FILE)


def token_path(status_dir: str) -> str:
    return os.path.join(status_dir, TOKEN_FILE)


def write(status_dir: str, doc: dict[str, Any], token: str | None = None) -> None:
    """Write `token.jwt` (when given) then `status.json`, each atomically.

    The token goes first so a reader that sees an entitled status always finds its token; a status
    that is not entitled removes any stale token so nobody mistakes it for a live one.
    """
    from pathlib import Path

    from entitlement_sidecar.atomic import write_atomic

    directory = Path(status_dir)
    if token is not None:
        write_atomic(directory / TOKEN_FILE, token.encode("utf-8", "replace") + b"\n")
    elif not doc.get("entitled"):
        try:  # noqa: SIM105 - contextlib would cost the exec probe an import
            os.unlink(directory / TOKEN_FILE)
        except FileNotFoundError:
            pass
    body = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    write_atomic(directory / STATUS_FILE, body.encode("utf-8"))


def create_if_absent(status_dir: str, doc: dict[str, Any]) -> bool:
    """Publish `doc` as status.json only if there is none yet; True when it was written.

    `run` writes its `pending` document this way while its registration child already runs: a
    hard link is an atomic create-if-absent, so whichever write lands first, the child's final
    document (an atomic replace) is never overwritten by the parent's pending one.
    """
    target = status_path(status_dir)
    tmp = os.path.join(status_dir, f".{STATUS_FILE}.{os.getpid()}.pending")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write((json.dumps(doc, indent=2) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def _read_capped(path: str, cap: int) -> bytes | None:
    """At most `cap` bytes of the regular file `path` (never blocking on a FIFO); None otherwise."""
    try:
        return read_regular(path, cap)
    except NotReadable:
        return None


def _read_object(path: str) -> dict[str, Any] | None:
    """The JSON object at `path` (capped), or None when missing, unreadable or not an object."""
    data = _read_capped(path, MAX_STATUS_BYTES)
    if data is None:
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def read(status_dir: str) -> dict[str, Any] | None:
    """The status document, or None when missing, unreadable, malformed or of another version."""
    doc = _read_object(status_path(status_dir))
    if doc is None or doc.get("version") != STATUS_VERSION:
        return None
    if doc.get("state") not in STATES:
        return None
    return doc


def read_token(status_dir: str) -> str | None:
    """The raw token from `token.jwt` (whitespace stripped), or None when missing/unreadable."""
    data = _read_capped(token_path(status_dir), MAX_TOKEN_BYTES)
    if data is None:
        return None
    try:
        return data.decode("ascii").strip() or None
    except UnicodeDecodeError:
        return None


def entitlements_path(status_dir: str) -> str:
    return os.path.join(status_dir, ENTITLEMENTS_FILE)


def write_entitlements(status_dir: str, granted: dict[str, Any]) -> None:
    """`entitlements.json`: exactly `{name: value}` of what the license grants now (atomic)."""
    from pathlib import Path

    from entitlement_sidecar.atomic import write_atomic

    body = json.dumps(granted, indent=2, sort_keys=True) + "\n"
    write_atomic(Path(entitlements_path(status_dir)), body.encode("utf-8"))


def read_entitlements(status_dir: str) -> dict[str, Any] | None:
    """`entitlements.json`, or None when missing, unreadable or not a JSON object."""
    return _read_object(entitlements_path(status_dir))


def is_entitled(doc: dict[str, Any] | None) -> bool:
    """True only for a well-formed entitled document (`state` and `entitled` agree)."""
    return doc is not None and doc.get("state") == ENTITLED and doc.get("entitled") is True

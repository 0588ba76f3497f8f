"""May this pod serve? The License Manager readiness rule, shared by `/readyz` and `check`.

A pod serves while its status says `entitled`. When the license is lost (expired, cancelled,
downgraded), the status says `denied` with `license.lost_at`, and the seller's policy decides:
under `report` the pod keeps serving (status and metrics say why); under `lock` it keeps serving
until `license.lock_at` (the loss plus the grace period), then not. A pod that was never entitled,
or that is waiting for a seat, does not serve. Lean (json documents in, no imports at load): the
`run` parent and the `check` exec probe both call it.
"""

from __future__ import annotations

from entitlement_sidecar.sidecar.defaults import DENIED, ENTITLED

TYPE_CHECKING = False  # keep `typing` out of the exec probe; mypy still reads this block
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def epoch(text: object) -> float | None:
    """An RFC 3339 UTC timestamp (`...Z`) as epoch seconds, or None."""
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def license_of(doc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    block = doc.get("license") if doc else None
    return block if isinstance(block, dict) else {}


def serving(doc: Mapping[str, Any] | None, now: float) -> tuple[bool, str]:
    """(whether the pod may serve now, one line why)."""
    if doc is None:
        return False, "status.json is missing, unreadable or not a version-1 document"
    state, reason = doc.get("state"), doc.get("reason")
    if state == ENTITLED and doc.get("entitled") is True:
        return True, "entitled"
    block = license_of(doc)
    lost_at = epoch(block.get("lost_at"))
    if state == DENIED and lost_at is not None:
        lock_at = epoch(block.get("lock_at"))
        if block.get("lock_at") is None:
            return True, f"license lost ({reason}); serving under the report policy"
        if lock_at is not None and now < lock_at:
            return True, f"license lost ({reason}); serving until {block.get('lock_at')} (grace)"
        return False, f"license lost ({reason}); locked since {block.get('lock_at')}"
    return False, f"state is {state}" + (f" ({reason})" if reason else "")

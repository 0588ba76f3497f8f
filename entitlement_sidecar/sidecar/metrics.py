"""Prometheus text exposition (format 0.0.4) of the sidecar's state, rendered from status.json.

The registration child records what happened (state, reason, attempts by result, latency, key
rotation) in the status document; the long-lived `run` process renders it here on each scrape.
Pure and dependency-free (no prometheus_client: it would cost memory in every pod).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entitlement_sidecar.sidecar.defaults import STATES

PREFIX = "entitlement_sidecar_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range (JSON allows it)
        return float("inf")


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


class Writer:
    """Prometheus families and samples, in order (also used for the usage section)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines.append(f"# HELP {PREFIX}{name} {help_}")
        self.lines.append(f"# TYPE {PREFIX}{name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, object] | None = None) -> None:
        rendered = ""
        if labels:
            rendered = "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"
        self.lines.append(f"{PREFIX}{name}{rendered} {_format(float(value))}")


def _rotation_epoch(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def render(doc: Mapping[str, Any] | None, *, ready: bool) -> str:
    """The /metrics body for status document `doc` (None: unreadable) and the readiness latch."""
    doc = doc or {}
    state = doc.get("state") if doc.get("state") in STATES else "unknown"
    out = Writer()
    out.family("ready", "gauge", "1 once this instance was entitled; never returns to 0.")
    out.sample("ready", 1.0 if ready else 0.0)
    out.family("entitled", "gauge", "1 when status.json says entitled.")
    out.sample("entitled", 1.0 if doc.get("entitled") is True and state == "entitled" else 0.0)
    out.family("state", "gauge", "Entitlement state: 1 for the current state, 0 for the others.")
    for name in STATES:
        out.sample("state", 1.0 if name == state else 0.0, {"state": name})
    out.family("reason_info", "gauge", "Reason of the current state (AWS error code or ours).")
    out.sample("reason_info", 1.0, {"state": state, "reason": doc.get("reason") or ""})
    out.family("register_attempts_total", "counter", "RegisterUsage calls by result.")
    results = doc.get("attempt_results")
    for result, count in sorted(results.items() if isinstance(results, dict) else []):
        out.sample("register_attempts_total", _number(count), {"result": result})
    out.family("register_latency_seconds", "summary", "Latency of RegisterUsage calls.")
    out.sample("register_latency_seconds_sum", _number(doc.get("latency_seconds_sum")))
    out.sample("register_latency_seconds_count", _number(doc.get("attempts")))
    out.family("register_duration_seconds", "gauge", "Seconds from start to the outcome.")
    out.sample("register_duration_seconds", _number(doc.get("duration_seconds")))
    rotation = _rotation_epoch(doc.get("public_key_rotation_at"))
    out.family("public_key_rotation_seen", "gauge", "1 when AWS reported the key version expired.")
    out.sample("public_key_rotation_seen", 0.0 if rotation is None else 1.0)
    out.family(
        "public_key_rotation_timestamp_seconds",
        "gauge",
        "PublicKeyRotationTimestamp reported by RegisterUsage (0: none).",
    )
    out.sample("public_key_rotation_timestamp_seconds", rotation or 0.0)
    out.family("info", "gauge", "Configuration of this sidecar.")
    out.sample(
        "info",
        1.0,
        {
            "product_code": doc.get("product_code") or "",
            "public_key_version": doc.get("public_key_version") or "",
            "instance_kind": doc.get("instance_kind") or "",
        },
    )
    return "\n".join(out.lines) + "\n"

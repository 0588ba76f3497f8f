"""Prometheus text exposition (format 0.0.4) of the sidecar's state, rendered from status.json.

The registration child records what happened (state, reason, attempts by result, latency, key
rotation) in the status document; the long-lived `run` process renders it here on each scrape.
Pure and dependency-free (no prometheus_client: it would cost memory in every pod).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entitlement_sidecar.sidecar.defaults import MODE_LICENSE_MANAGER, MODE_REGISTER_USAGE, STATES
from entitlement_sidecar.sidecar.license.readiness import epoch, license_of

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


def _license(out: Writer, doc: Mapping[str, Any]) -> None:
    """The License Manager families (only in that mode)."""
    block = license_of(doc)
    out.family("license_entitlement", "gauge", "What the license grants: units, or 1 per tier.")
    granted = block.get("entitlements")
    for name, value in sorted(granted.items() if isinstance(granted, dict) else []):
        out.sample(
            "license_entitlement",
            _number(int(value)) if isinstance(value, bool | int) else 0.0,
            {"name": name},
        )
    out.family("license_result_info", "gauge", "Result of the last license check, and why.")
    labels = {"result": block.get("result") or "", "reason": block.get("reason") or ""}
    out.sample("license_result_info", 1.0, labels)
    out.family("license_checks_total", "counter", "License checks (gate, heartbeat) by result.")
    checks = block.get("checks")
    for result, count in sorted(checks.items() if isinstance(checks, dict) else []):
        out.sample("license_checks_total", _number(count), {"result": result})
    for name, key, help_ in (
        ("license_checked_timestamp_seconds", "checked_at", "Time of the last license check."),
        ("license_expiration_timestamp_seconds", "expiration", "When the held checkout expires."),
        ("license_valid_until_timestamp_seconds", "valid_until", "When the license ends."),
        ("license_lock_timestamp_seconds", "lock_at", "When a lost license locks the pod."),
    ):
        out.family(name, "gauge", help_ + " 0: none.")
        out.sample(name, epoch(block.get(key)) or 0.0)
    for name, value, help_ in (
        ("license_lost", block.get("lost_at") is not None, "1 while the license is lost."),
        ("license_stale", block.get("stale") is True, "1 when checks failed for the grace period."),
        ("license_seat_held", block.get("seat_held") is True, "1 while a floating seat is held."),
    ):
        out.family(name, "gauge", help_)
        out.sample(name, 1.0 if value else 0.0)


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
    rotation = epoch(doc.get("public_key_rotation_at"))
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
    mode = doc.get("mode") or MODE_REGISTER_USAGE
    out.family("mode", "gauge", "Which AWS API enforces this product.")
    out.sample("mode", 1.0, {"mode": mode})
    if mode == MODE_LICENSE_MANAGER:
        _license(out, doc)
    return "\n".join(out.lines) + "\n"

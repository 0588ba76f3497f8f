"""What is not sent is visible: the usage views of GET /v1/usage, /status and /metrics.

All three are rendered from the journal's state and the intake's counters at the moment of the
request: this hour's totals per dimension, every earlier hour with usage not yet sent (still
open in its seal delay, or sealed and waiting for a send), the oldest of them and the deadline
AWS gives it (its timestamp plus 6 hours), sends by dimension and result, and the journal's
fill. Quantities are AWS's decimal strings in JSON and plain numbers in Prometheus samples.
"""

from __future__ import annotations

from entitlement_sidecar.sidecar.metrics import Writer
from entitlement_sidecar.sidecar.usage import plan
from entitlement_sidecar.sidecar.usage.state import RESULTS
from entitlement_sidecar.sidecar.usage.units import HOUR, MICRO, format_quantity, hour_of, iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from entitlement_sidecar.sidecar.usage.intake import Counters
    from entitlement_sidecar.sidecar.usage.journal import Journal


class Unsent:
    """One hour before the current one whose usage is not (all) sent yet."""

    __slots__ = ("dims", "hour", "sealed", "timestamp")

    def __init__(self, hour: int, timestamp: int, sealed: bool, dims: dict[str, Any]) -> None:
        self.hour = hour
        self.timestamp = timestamp
        self.sealed = sealed
        self.dims = dims

    def document(self) -> dict[str, Any]:
        return {
            "hour": iso(self.hour),
            "state": "sealed" if self.sealed else "open",
            "timestamp": iso(self.timestamp),
            "deadline": iso(plan.deadline(self.timestamp)),
            "dimensions": self.dims,
        }


def unsent(journal: Journal, now: float, *, everything: bool = False) -> list[Unsent]:
    """Hours other than the current one with unsent usage, oldest first (open ones stamped as
    they will be; a later one holds usage carried past an hour sent early); with `everything`,
    the current hour too."""
    current = None if everything else hour_of(now)
    found: list[Unsent] = []
    for hour, sealed in journal.sealed.items():
        dims = {
            d: {
                "quantity": format_quantity(send.units),
                "attempts": send.attempts,
                "last_error": send.code,
            }
            for d, send in sorted(sealed.dims.items())
            if send.result is None
        }
        if dims:
            found.append(Unsent(hour, sealed.timestamp, True, dims))
    for hour, slot in journal.open.items():
        if hour != current:
            dims = {d: {"quantity": format_quantity(u)} for d, u in sorted(slot.totals.items())}
            found.append(Unsent(hour, hour + HOUR - 1, False, dims))
    return sorted(found, key=lambda u: u.hour)


def totals(journal: Journal, dimensions: tuple[str, ...], now: float) -> dict[str, str]:
    """This hour's accepted usage per configured dimension (0 when none)."""
    slot = journal.open.get(hour_of(now))
    have = slot.totals if slot else {}
    return {d: format_quantity(have.get(d, 0)) for d in dimensions}


def view(journal: Journal, dimensions: tuple[str, ...], now: float) -> dict[str, Any]:
    """The body of GET /v1/usage."""
    return {
        "hour": iso(hour_of(now)),
        "totals": totals(journal, dimensions, now),
        "unsent": [u.document() for u in unsent(journal, now)],
    }


def status(
    journal: Journal,
    dimensions: tuple[str, ...],
    now: float,
    *,
    intake: str,
    full: bool,
    next_send_at: float | None,
) -> dict[str, Any]:
    """The `usage` section of /status."""
    waiting = unsent(journal, now)
    ended = [u for u in waiting if u.hour < hour_of(now)]
    oldest = ended[0] if ended else None
    return {
        "intake": intake,
        "dimensions": list(dimensions),
        "hour": iso(hour_of(now)),
        "totals": totals(journal, dimensions, now),
        "hours_pending": len(ended),
        "oldest_unsent_hour": iso(oldest.hour) if oldest else None,
        "oldest_unsent_deadline": iso(plan.deadline(oldest.timestamp)) if oldest else None,
        "next_send_at": iso(next_send_at) if next_send_at is not None else None,
        "unsent": [u.document() for u in waiting],
        "sends": journal.sends,
        "recent": [_recent(r) for r in journal.recent[-10:]],
        "journal": {"bytes": journal.size, "max_bytes": journal.max_bytes, "full": full},
    }


def _recent(record: dict[str, Any]) -> dict[str, Any]:
    units = record.get("q")
    return {
        "hour": iso(record["h"]) if isinstance(record.get("h"), int) else None,
        "dimension": record.get("d"),
        "quantity": format_quantity(units) if isinstance(units, int) else None,
        "result": record.get("r"),
        "metering_record_id": record.get("id"),
        "error": record.get("c"),
    }


def metrics(
    journal: Journal,
    dimensions: tuple[str, ...],
    counters: Counters,
    now: float,
    *,
    up: bool,
    full: bool,
) -> list[str]:
    """The usage families of /metrics (`entitlement_sidecar_usage_*`)."""
    out = Writer()
    out.family("usage_intake_up", "gauge", "1 while the usage intake accepts events.")
    out.sample("usage_intake_up", 1.0 if up else 0.0)
    out.family("usage_events_total", "counter", "Usage events accepted (durable), by dimension.")
    for dimension in dimensions:
        out.sample(
            "usage_events_total", counters.accepted.get(dimension, 0), {"dimension": dimension}
        )
    out.family("usage_duplicates_total", "counter", "Events acknowledged again (id seen).")
    out.sample("usage_duplicates_total", counters.duplicates)
    out.family("usage_refused_total", "counter", "Requests refused, by reason.")
    for reason, count in sorted(counters.refused.items()):
        out.sample("usage_refused_total", count, {"reason": reason})
    out.family("usage_hour_quantity", "gauge", "Usage accepted in the current hour.")
    slot = journal.open.get(hour_of(now))
    for dimension in dimensions:
        units = slot.totals.get(dimension, 0) if slot else 0
        out.sample("usage_hour_quantity", units / MICRO, {"dimension": dimension})
    waiting = [u for u in unsent(journal, now) if u.hour < hour_of(now)]
    out.family("usage_hours_pending", "gauge", "Ended hours whose usage is not all sent.")
    out.sample("usage_hours_pending", len(waiting))
    out.family(
        "usage_oldest_unsent_hour_age_seconds", "gauge", "Age of the oldest unsent hour (0: none)."
    )
    out.sample("usage_oldest_unsent_hour_age_seconds", now - waiting[0].hour if waiting else 0)
    if waiting:
        out.family(
            "usage_oldest_unsent_hour_deadline_seconds",
            "gauge",
            "Seconds left before AWS's 6-hour window closes for the oldest unsent hour.",
        )
        left = plan.deadline(waiting[0].timestamp) - now
        out.sample("usage_oldest_unsent_hour_deadline_seconds", round(left, 3))
    out.family("usage_sends_total", "counter", "MeterUsage results, by dimension and result.")
    for dimension in sorted(set(dimensions) | set(journal.sends)):
        for result in RESULTS:
            count = journal.sends.get(dimension, {}).get(result, 0)
            out.sample("usage_sends_total", count, {"dimension": dimension, "result": result})
    out.family("usage_journal_bytes", "gauge", "Size of the usage journal.")
    out.sample("usage_journal_bytes", journal.size)
    out.family("usage_journal_max_bytes", "gauge", "Size bound of the usage journal.")
    out.sample("usage_journal_max_bytes", journal.max_bytes)
    out.family("usage_journal_full", "gauge", "1 while events are refused: the journal is full.")
    out.sample("usage_journal_full", 1.0 if full else 0.0)
    return out.lines

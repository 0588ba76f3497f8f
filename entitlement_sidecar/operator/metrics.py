"""The operator's Prometheus metrics and the stdlib HTTP server that exposes them.

A handful of labelled counters and gauges rendered in the Prometheus text format on
`/metrics` (plus `/livez`), served by `http.server` in a daemon thread: no client library, and
nothing to configure. The names describe billing, not plumbing: hours by phase, how close the
oldest unsent hour is to its 6-hour deadline, sends by result, ambiguous resends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "entitlement_operator_"
Labels = tuple[tuple[str, str], ...]


class Family:
    """One metric family: a name, a type, a help line and its labelled values."""

    def __init__(self, name: str, kind: str, help_: str) -> None:
        self.name = PREFIX + name
        self.kind = kind
        self.help = help_
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value

    def replace(self, values: Iterable[tuple[dict[str, str], float]]) -> None:
        """Set the whole family at once (gauges recomputed from the ledger each tick)."""
        fresh = {tuple(sorted(labels.items())): value for labels, value in values}
        with self._lock:
            self._values = fresh

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            items = sorted(self._values.items())
        for labels, value in items:
            text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
            number = _number(value)
            lines.append(f"{self.name}{{{text}}} {number}" if text else f"{self.name} {number}")
        return lines


class Metrics:
    """Every metric the operator exposes."""

    def __init__(self) -> None:
        self.hours = Family("hours", "gauge", "Ledger hours by phase.")
        self.oldest_unsent_age = Family(
            "oldest_unsent_hour_age_seconds",
            "gauge",
            "Age of the oldest Pending/Sending hour since its start (0 when none).",
        )
        self.oldest_unsent_deadline = Family(
            "oldest_unsent_hour_deadline_seconds",
            "gauge",
            "Seconds left before the oldest unsent hour leaves the 6-hour window (absent: none).",
        )
        self.sends = Family(
            "sends_total", "counter", "MeterUsage outcomes by dimension and result."
        )
        self.workloads = Family("workloads", "gauge", "Workloads currently metered, by dimension.")
        self.invalid_annotations = Family(
            "invalid_annotations_total", "counter", "Problems found in workload annotations."
        )
        self.ambiguous_resends = Family(
            "ambiguous_resends_total",
            "counter",
            "Hours resent after a crash between the call and its recorded outcome.",
        )
        self.unobserved = Family(
            "unobserved_seconds_total",
            "counter",
            "Time no operator observed workloads (last checkpoint to resume): unbilled usage.",
        )
        self.leader = Family("leader", "gauge", "1 while this instance holds the Lease.")
        self.fenced = Family(
            "fenced_steps_total",
            "counter",
            "Ledger writes and AWS calls not made because another writer changed the hour since it"
            " was read (409) or this instance's Lease lapsed (a stalled ex-leader), by step.",
        )
        self.checkpoints = Family(
            "checkpoints_total", "counter", "Accumulating hours written to the ledger."
        )
        self.tick_errors = Family(
            "tick_errors_total", "counter", "Close/send loop runs that failed (retried next tick)."
        )
        self.last_tick = Family(
            "last_tick_timestamp_seconds",
            "gauge",
            "Wall-clock time (Unix seconds) the close/send loop last completed a run.",
        )
        self.sent_quantity = Family(
            "sent_quantity_total",
            "counter",
            "Usage quantity of the hours MeterUsage accepted, by dimension and result (Sent, "
            "DryRun): `increase(...[1h])` is the quantity billed per hour.",
        )

    def families(self) -> list[Family]:
        return [value for value in vars(self).values() if isinstance(value, Family)]

    def render(self) -> str:
        return "\n".join(line for family in self.families() for line in family.render()) + "\n"


class MetricsServer:
    """`/metrics` and `/livez` on `port` (0 = any free port; see `.port`), in a daemon thread."""

    def __init__(self, metrics: Metrics, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104
        handler = _handler(metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind = metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8"
                status = 200
            elif self.path == "/livez":
                body, kind, status = b"ok\n", "text/plain", 200
            else:
                body, kind, status = b"not found\n", "text/plain", 404
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def _number(value: float) -> str:
    """A sample value in full precision (`:g` would round a Unix timestamp to the hour)."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

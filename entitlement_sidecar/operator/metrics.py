"""The operator's Prometheus metrics, and the HTTP server of `/metrics` and `/livez`.

A handful of labelled counters and gauges whose names describe billing, not plumbing: hours by
phase, how close the oldest unsent hour is to its 6-hour deadline, sends by result, ambiguous
resends. `prometheus_client` renders them (one custom collector over our values, so a gauge can
be absent) next to its standard `process_*` and `python_*` metrics; `http.server` serves them in
a daemon thread. `/livez` is tied to the close/send loop: it fails once no tick has completed for
`LIVENESS_TICKS` tick intervals (plus a minute), so a wedged loop gets the pod restarted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX = "entitlement_operator_"
Labels = tuple[tuple[str, str], ...]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest() writes
LIVENESS_TICKS = 4  # /livez fails after this many tick intervals (+ a minute) without a tick


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

    def collect(self) -> Metric:
        """The family for prometheus_client (a counter's name without its `_total`)."""
        with self._lock:
            items = sorted(self._values.items())
        family: CounterMetricFamily | GaugeMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(
                self.name.removesuffix("_total"), self.help, labels=_names(items)
            )
        else:
            family = GaugeMetricFamily(self.name, self.help, labels=_names(items))
        for labels, value in items:
            family.add_metric([value for _, value in labels], value)
        return family


def _names(items: list[tuple[Labels, float]]) -> list[str]:
    return [key for key, _ in items[0][0]] if items else []


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
        self.checkpoint_bytes = Family(
            "checkpoint_bytes_total",
            "counter",
            "Bytes of checkpoint lines written, by kind (log: checkpoints; base: compactions).",
        )
        self.compactions = Family(
            "checkpoint_compactions_total",
            "counter",
            "Checkpoint compactions completed (the log folded into new base shards).",
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
        self._last_tick = time.monotonic()  # start: the first tick gets the same allowance

    def families(self) -> list[Family]:
        return [value for value in vars(self).values() if isinstance(value, Family)]

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield family.collect()

    def registry(self) -> CollectorRegistry:
        """A registry of these metrics plus the standard process, platform and GC ones."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        return registry

    def render(self) -> str:
        return generate_latest(self.registry()).decode()

    def tick_completed(self) -> None:
        """The close/send loop went round, whatever the tick's outcome (see `/livez`; the
        engine stamps `last_tick` when a tick succeeds)."""
        self._last_tick = time.monotonic()

    def alive(self, tick_seconds: float) -> bool:
        """Whether a tick completed within LIVENESS_TICKS intervals (+ a minute) of now."""
        return time.monotonic() - self._last_tick < LIVENESS_TICKS * tick_seconds + 60


class MetricsServer:
    """`/metrics` and `/livez` on `port` (0 = any free port; see `.port`), in a daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104
        *,
        tick_seconds: float = 15.0,
    ) -> None:
        handler = _handler(metrics, metrics.registry(), tick_seconds)
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


def _handler(
    metrics: Metrics, registry: CollectorRegistry, tick_seconds: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind, status = generate_latest(registry), CONTENT_TYPE, 200
            elif self.path == "/livez":
                alive = metrics.alive(tick_seconds)
                body = b"ok\n" if alive else b"close/send loop stalled: no tick completed\n"
                kind, status = "text/plain", 200 if alive else 503
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

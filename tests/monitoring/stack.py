"""A real Prometheus server scraping the demo's sidecars and a real metering operator.

What the dashboards are proven against (tests/monitoring/test_dashboards.py) and drawn from
(scripts/dashboard_picture.py). The sidecars are `make demo`'s pods (`demo.Pod`, real `run`
processes): one entitled, one throttled twice before it is entitled, one whose key version AWS
reports as rotated, one lapsed and one forged (both denied). The operator is its real engine,
sender, ledger store and metrics server over kmock and the same emulator, driven by a fast fake
clock through several billed hours, a throttled send, a crash right after a MeterUsage call, and
a second instance that takes over after a 15-minute gap (an observation gap and an ambiguous
resend), ending with an hour written ahead but not yet sent. Prometheus (Debian's package)
scrapes every one of them each second; queries go to its HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from entitlement_sidecar.demo import Pod
from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, PER_REPLICA_KEY, WorkloadRef
from entitlement_sidecar.operator.metrics import MetricsServer
from entitlement_sidecar.operator.wiring import Runtime
from entitlement_sidecar.testing import free_port, http_get
from tests.operator.harness import Crash, FakeClock, Kube, runtime

INSTALL_HINT = (
    "prometheus not found: install Debian's prometheus package "
    "(`apt-get update && apt-get install -y prometheus`, as .ci/run does)"
)
SCENARIO: dict[str, Any] = {
    "region": "us-east-1",
    "key_versions": [1, 2],
    "expired_key_versions": [1],
    "products": {
        "prod-paid": {"entitled": True, "dimensions": ["users", "gb"]},
        "prod-lapsed": {"entitled": False},
        "prod-forged": {"entitled": True, "sign_with_unlisted_key": True},
    },
    "faults": [
        {"op": "RegisterUsage", "kind": "throttle", "count": 2},
        {"op": "MeterUsage", "kind": "throttle", "count": 1},
    ],
}
# (pod, product, key version), started in this order: the first meets the two RegisterUsage
# throttles (and is pending meanwhile).
PODS = [
    ("shop-throttled", "prod-paid", "2"),
    ("shop-entitled", "prod-paid", "2"),
    ("shop-rotated", "prod-paid", "1"),
    ("shop-lapsed", "prod-lapsed", "2"),
    ("shop-forged", "prod-forged", "2"),
]
WORKLOADS = [
    (WorkloadRef("shop", "Deployment", "web"), {DIMENSIONS_KEY: '{"users": 5, "gb": "2.5"}'}, {}),
    (
        WorkloadRef("shop", "StatefulSet", "db"),
        {DIMENSIONS_KEY: '{"users": 2}', PER_REPLICA_KEY: "true"},
        {"readyReplicas": 3},
    ),
    (
        WorkloadRef("ops", "DaemonSet", "agent"),
        {DIMENSIONS_KEY: '{"gb": 1}', PER_REPLICA_KEY: "true"},
        {"numberReady": 4},
    ),
]
STEP_MINUTES = 15  # fake minutes per operator tick: an hour every 4 ticks
MAX_TICKS = 60  # a bound on each phase of the story, so a broken operator fails, not hangs


def prometheus_binary() -> str | None:
    """The Prometheus server binary, if installed."""
    return shutil.which("prometheus")


@dataclass
class Stack:
    """Where everything listens, and the Prometheus query API."""

    prometheus_url: str
    started: float
    ended: float = 0.0
    notes: list[str] = field(default_factory=list)

    def query_range(self, expr: str, step: float = 1.0) -> list[dict[str, Any]]:
        """The series `expr` returns over the whole run (Prometheus's query_range)."""
        params = {"query": expr, "start": self.started, "end": self.ended, "step": step}
        url = f"{self.prometheus_url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        code, body = http_get(url, timeout=10)
        answer = json.loads(body)
        assert code == 200, f"{expr}: {answer.get('error', body)}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        """The values of `label` on the series `match` selects (Grafana's label_values)."""
        params = {"match[]": match, "start": self.started, "end": self.ended}
        url = f"{self.prometheus_url}/api/v1/label/{label}/values?{urllib.parse.urlencode(params)}"
        code, body = http_get(url, timeout=10)
        assert code == 200, body
        values: list[str] = json.loads(body)["data"]
        return values


def scrape_config(sidecars: dict[str, int], operators: dict[str, int]) -> dict[str, Any]:
    """Prometheus configuration: every target each second, labelled like Kubernetes pods."""

    def targets(ports: dict[str, int], namespace: str) -> list[dict[str, Any]]:
        return [
            {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": namespace, "pod": pod}}
            for pod, port in ports.items()
        ]

    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [
            {"job_name": "sidecars", "static_configs": targets(sidecars, "shop")},
            {"job_name": "operator", "static_configs": targets(operators, "billing")},
        ],
    }


@contextmanager
def prometheus(workdir: Path, config: dict[str, Any]) -> Iterator[str]:
    """A Prometheus server on loopback with `config`; yields its URL once it is ready."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while http_get(f"{url}/-/ready", timeout=1, quiet=True)[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: see {workdir / 'prometheus.log'}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


class PodStarter(threading.Thread):
    """Starts the demo's pods one by one, `gap` seconds apart, while the operator story runs, so
    Prometheus sees each sidecar go from pending to its answer."""

    def __init__(
        self, emu: Emulator, workdir: Path, ports: dict[str, int], pods: list[Pod], gap: float
    ) -> None:
        super().__init__(daemon=True)
        self.args = (emu, workdir, ports, pods, gap)
        self.error: BaseException | None = None

    def run(self) -> None:
        emu, workdir, ports, pods, gap = self.args
        try:
            for name, product, version in PODS:
                time.sleep(gap)
                pod = Pod(
                    emu,
                    workdir,
                    name,
                    product,
                    port=ports[name],
                    ENTITLEMENT_PUBLIC_KEY_VERSION=version,
                )
                pods.append(pod)
                pod.wait_state("entitled", "denied", timeout=30)
        except BaseException as error:  # re-raised by join(): a pod that misbehaves fails the run
            self.error = error

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def observe_workloads(rt: Runtime) -> None:
    """What kopf would hand a starting operator: every annotated workload."""
    for ref, notes, status in WORKLOADS:
        rt.engine.observe(ref, notes, status, gone=False)


class Operator:
    """One operator instance (its own AWS caller and metrics port) and a crash switch."""

    def __init__(self, kube: Kube, emu: Emulator, clock: FakeClock, name: str, port: int) -> None:
        self.crash_after_call = False

        def hook(reached: str, hour: str) -> None:
            if self.crash_after_call and reached == "after_call":
                raise Crash(f"{name} crashed after the MeterUsage call for {hour}")

        caller = "AKID" + name.upper().replace("-", "")  # an access key id: letters and digits
        self.runtime = runtime(kube, emu, clock, caller, hook=hook)
        self.server = MetricsServer(self.runtime.metrics, port, host="127.0.0.1").start()
        observe_workloads(self.runtime)

    def tick(self) -> bool:
        """One loop run; False when the instance crashed (it then serves no more metrics)."""
        try:
            self.runtime.engine.tick()
        except Crash:
            self.server.stop()
            return False
        return True


def drive_operators(
    kube: Kube, emu: Emulator, clock: FakeClock, ports: dict[str, int], pace: float
) -> list[str]:
    """The operator story (see the module docstring); returns what happened, line by line."""
    story = []
    first = Operator(kube, emu, clock, "operator-a", ports["operator-a"])
    for _ in range(4 * 60 // STEP_MINUTES):  # four billed hours, one send throttled
        first.tick()
        clock.advance(minutes=STEP_MINUTES)
        time.sleep(pace)
    first.crash_after_call = True
    for _ in range(MAX_TICKS):
        if not first.tick():
            break
        clock.advance(minutes=STEP_MINUTES)
        time.sleep(pace)
    else:
        raise RuntimeError("operator-a never sent an hour to crash after")
    story.append("operator-a crashed right after a MeterUsage call (outcome not recorded)")
    clock.advance(minutes=15)  # nobody observes: the Lease expires, usage goes unobserved
    second = Operator(kube, emu, clock, "operator-b", ports["operator-b"])
    for _ in range(2 * 60 // STEP_MINUTES):  # two more billed hours
        second.tick()
        clock.advance(minutes=STEP_MINUTES)
        time.sleep(pace)
    # Close the next hour 30 s after its end: written ahead, its send waits for the jitter.
    clock.set(clock().replace(minute=0, second=30, microsecond=0) + timedelta(hours=1))
    second.tick()
    if second.runtime.metrics.hours.value(phase="Pending") == 0:
        raise RuntimeError("operator-b did not leave an hour written ahead")
    story.append(
        "operator-b resumed after a 15-minute gap, resent the ambiguous hour, and stopped with "
        "an hour written ahead but not sent"
    )
    return story


@contextmanager
def running_stack(pace: float = 0.0, pod_gap: float = 1.5, linger: float = 4.0) -> Iterator[Stack]:
    """Start everything, play the story (pods start `pod_gap` seconds apart while the operator
    runs), keep serving `linger` seconds for the last scrapes, and yield the finished Stack
    (Prometheus still up for queries)."""
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="monitoring-")))
        clock = FakeClock()
        emu = stack.enter_context(Emulator(SCENARIO, now=clock))
        shutil.copytree(emu.public_key_dir, workdir / "keys")
        kube = Kube()
        stack.callback(kube.close)
        pods: list[Pod] = []
        stack.callback(lambda: [pod.stop() for pod in pods])
        sidecar_ports = {name: free_port() for name, _, _ in PODS}
        operator_ports = {"operator-a": free_port(), "operator-b": free_port()}
        config = scrape_config(sidecar_ports, operator_ports)
        url = stack.enter_context(prometheus(workdir, config))
        result = Stack(prometheus_url=url, started=time.time())
        starter = PodStarter(emu, workdir, sidecar_ports, pods, pod_gap)
        starter.start()
        result.notes += drive_operators(kube, emu, clock, operator_ports, pace)
        starter.join()
        time.sleep(linger)
        result.ended = time.time()
        yield result


def dashboard_queries(path: Path) -> list[tuple[str, str, str]]:
    """(panel title, legend, PromQL) of every target of a Grafana dashboard JSON file."""
    dashboard = json.loads(path.read_text())
    return [
        (panel["title"], target.get("legendFormat", ""), target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def concrete(expr: str, rate_interval: str = "5s") -> str:
    """A panel's query as Grafana sends it: every namespace, `$__rate_interval` filled in."""
    return expr.replace('=~"$namespace"', '=~".*"').replace("$__rate_interval", rate_interval)

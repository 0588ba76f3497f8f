"""Metering operator benchmarks, printed against baselines measured in the same run.

10,000 annotated workloads across 3 dimensions:

1. Build time: from the ledger state (checkpointed HourlyUsage status, decoded) to the hour's
   three validated MeterUsage requests (exact split, ClientToken, parameters). Target <= 1 s.
   Baseline: a plain `sum()` of the same per-workload usages.
2. AWS calls per hour: the engine over kmock and the Metering emulator with a fake clock meters a
   whole hour of the 10,000 workloads; the emulator counts MeterUsage calls. Target: 3 (one per
   dimension with usage), however many workloads.
3. Memory: RSS of a real operator process (kopf + our handlers) once it watches the 10,000
   workloads through kmock. Target <= 200 MiB. Baseline: a process that only does `import kopf`.

Usage: `python benchmarks/bench_operator.py [--workloads N]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DIMENSIONS = ("api_calls", "gb", "users")
MIB = 1024 * 1024

OPERATOR = """
import sys, kopf
from entitlement_sidecar.aws.metering import make_client
from entitlement_sidecar.operator import handlers
from entitlement_sidecar.operator.metrics import MetricsServer
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.wiring import build
from kubernetes import client as k8s

url = sys.argv[1]
settings = OperatorSettings.model_validate({
    "product_code": "prod-paid", "dimensions": ("api_calls", "gb", "users"),
    "ledger_namespace": "metering", "tick_seconds": 1,
})
runtime = build(settings, k8s.ApiClient(k8s.Configuration(host=url)), make_client("us-east-1"))
server = MetricsServer(runtime.metrics, 0, host="127.0.0.1").start()
print(server.port, flush=True)
kopf.run(standalone=True, clusterwide=True, memo=kopf.Memo(
    runtime=runtime, connection=kopf.ConnectionInfo(server=url)))
"""
BASELINE = "import kopf, sys; print(0, flush=True); sys.stdin.read()"


def workload_notes(i: int) -> dict[str, str]:
    """The annotations of workload `i` (the same rates as `_rates`)."""
    return {"metering.entitlement-sidecar.io/dimensions": json.dumps(_rates(i))}


def bench_build(count: int) -> None:
    from entitlement_sidecar.aws.metering import MeterRequest
    from entitlement_sidecar.operator import ledger
    from entitlement_sidecar.operator.accounting import Accumulator
    from entitlement_sidecar.operator.allocation import client_token, split
    from tests.operator.harness import START

    acc = Accumulator(START)
    for i in range(count):
        rates = {d: Decimal(v) for d, v in _rates(i).items()}
        acc.observe(
            f"ns-{i % 50}/Deployment/app-{i:05d}", rates, (), START + timedelta(seconds=i % 3600)
        )
    acc.advance(START + timedelta(hours=1))
    (hour, usage), *_ = acc.hours()
    objects = []
    for dimension, workloads in usage.items():
        obj = ledger.new_object("prod-paid", dimension, hour, "metering")
        obj["status"] = ledger.checkpoint_status(workloads, hour + timedelta(hours=1))
        objects.append(obj)

    def build() -> list[dict[str, Any]]:
        requests = []
        for obj in objects:
            record = ledger.decode(obj, workloads=True)
            result = split(record.workloads)
            token = client_token(record.product_code, record.dimension, record.hour, result)
            request = MeterRequest(
                record.product_code,
                record.hour,
                record.dimension,
                result.quantity,
                token,
                result.allocations,
            )
            requests.append(request.to_params())
        return requests

    def baseline() -> Decimal:
        return sum(
            (Decimal(w["usage"]) for obj in objects for w in obj["status"]["workloads"].values()),
            Decimal(0),
        )

    build_s = _best(build)
    base_s = _best(baseline)
    print(
        f"build 3 requests from the ledger: {build_s:.3f} s (target <= 1 s); "
        f"baseline sum: {base_s:.3f} s; ratio {build_s / base_s:.1f}x"
    )


def bench_calls(count: int) -> None:
    from entitlement_sidecar.emulator import Emulator
    from entitlement_sidecar.operator.annotations import WorkloadRef
    from tests.operator.harness import FakeClock, kube_server, runtime

    clock = FakeClock()
    scenario = {"products": {"prod-paid": {"dimensions": list(DIMENSIONS)}}, "throttle": None}
    with kube_server() as kube, Emulator(now=clock, scenario=scenario) as emu:
        rt = runtime(kube, emu, clock, "AKIDBENCH", dimensions=DIMENSIONS, tag_keys=())
        for i in range(count):
            rt.engine.observe(
                WorkloadRef(f"ns-{i % 50}", "Deployment", f"app-{i:05d}"),
                workload_notes(i),
                {},
                gone=False,
            )
        rt.engine.tick()
        clock.advance(hours=1, seconds=1)
        started = time.perf_counter()
        rt.engine.tick()  # checkpoint + close (write-ahead) of 3 x 10,000 workloads
        close_s = time.perf_counter() - started
        clock.advance(minutes=6)
        rt.engine.tick()
        calls = emu.records()["requests"].get("MeterUsage", 0)
        allocations = sum(len(r["allocations"]) for r in emu.records()["meter_usage"])
    print(
        f"AWS calls for one hour of {count} workloads: {calls} (target 3 = dimensions with usage); "
        f"{allocations} allocations; close tick over kmock {close_s:.2f} s"
    )


def bench_memory(count: int) -> None:
    import kmock

    from entitlement_sidecar.emulator import Emulator
    from tests.operator.harness import kube_server

    base_mib = _rss_of([sys.executable, "-c", BASELINE], env=None, ready=lambda _: True)
    with kube_server() as kube, Emulator() as emu:
        deployments = kmock.resource("apps/v1/deployments")
        for i in range(count):
            name, namespace = f"app-{i:05d}", f"ns-{i % 50}"
            kube.mock.objects[deployments, namespace, name] = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": workload_notes(i),
                },
                "status": {"readyReplicas": 1},
            }
        env = {
            **psutil.Process().environ(),
            **emu.env(access_key_id="AKIDBENCH"),
            "PYTHONPATH": str(REPO),
        }
        op_mib = _rss_of(
            [sys.executable, "-c", OPERATOR, kube.url],
            env=env,
            ready=lambda port: _watching(port, count),
        )
    print(
        f"operator RSS watching {count} workloads: {op_mib:.0f} MiB (target <= 200 MiB); "
        f"bare `import kopf`: {base_mib:.0f} MiB; ratio {op_mib / base_mib:.1f}x"
    )


def _rss_of(command: list[str], env: dict[str, str] | None, ready: Any) -> float:
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        deadline = time.monotonic() + 180
        while not ready(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the process never got ready")
            time.sleep(0.5)
        rss: int = psutil.Process(process.pid).memory_info().rss
        return rss / MIB
    finally:
        process.kill()
        process.wait()


def _watching(port: int, count: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return False
    return f'entitlement_operator_workloads{{dimension="users"}} {count}' in text


def _rates(i: int) -> dict[str, str]:
    return {"users": str(i % 7 + 1), "gb": f"{i % 5}.25", "api_calls": str(i)}


def _best(function: Any, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000)
    count = parser.parse_args().workloads
    sys.path.insert(0, str(REPO))
    bench_build(count)
    bench_calls(count)
    bench_memory(count)


if __name__ == "__main__":
    main()

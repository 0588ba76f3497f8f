"""Metering operator benchmarks, printed against baselines measured in the same run.

N annotated workloads (default: 10,000 and 100,000) across 3 dimensions:

1. Build time: from the ledger state (the hour's checkpoint shards as read from the API server)
   to the hour's three validated MeterUsage requests (decode, exact split, ClientToken,
   parameters). Target <= 1 s. Baseline: a plain `sum()` of the same usages.
2. Ticks over kmock: the first checkpoint (every shard written), a checkpoint after 1% of the
   workloads changed (only their shards), and the close tick (write-ahead of 3 hours' requests,
   shards deleted). Target <= 5 s each. Baseline: the same plain sum. Also: the largest object
   ever written to the ledger (target < 256 KiB) and the AWS calls for the hour (target 3: one
   per dimension with usage, however many workloads).
3. Memory: RSS of a real operator process (kopf + our handlers) once it watches the N workloads
   through kmock. Target <= 200 MiB. Baseline: a process that only does `import kopf`.

Usage: `python benchmarks/bench_operator.py [--workloads N ...]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
DIMENSIONS = ("api_calls", "gb", "users")
MIB = 1024 * 1024

OPERATOR = """
import sys, kopf
from datetime import UTC, datetime, timedelta
from entitlement_sidecar.aws.metering import make_client
from entitlement_sidecar.operator import handlers
from entitlement_sidecar.operator.metrics import MetricsServer
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.wiring import build
from kubernetes import client as k8s

from entitlement_sidecar import logs
logs.setup("WARNING", "json")
url, offset = sys.argv[1], timedelta(seconds=float(sys.argv[2]))
settings = OperatorSettings.model_validate({
    "product_code": "prod-paid", "dimensions": ("api_calls", "gb", "users"),
    "ledger_namespace": "metering", "tick_seconds": 5, "send_jitter_seconds": 0,
})
runtime = build(
    settings, k8s.ApiClient(k8s.Configuration(host=url)), make_client("us-east-1"),
    now=lambda: datetime.now(UTC) + offset,
)
server = MetricsServer(runtime.metrics, 0, host="127.0.0.1").start()
print(server.port, flush=True)
kopf.run(standalone=True, clusterwide=True, memo=kopf.Memo(
    runtime=runtime, connection=kopf.ConnectionInfo(server=url)))
"""
BASELINE = "import kopf, sys; print(0, flush=True); sys.stdin.read()"


def workload_notes(i: int) -> dict[str, str]:
    """The annotations of workload `i` (the same rates as `_rates`)."""
    return {"metering.entitlement-sidecar.io/dimensions": json.dumps(_rates(i))}


def bench_build(count: int) -> float:
    """Build the hour's requests at its close, and from the ledger after a restart; return the
    baseline's seconds."""
    from entitlement_sidecar.operator import ledger, shards
    from entitlement_sidecar.operator.accounting import HOUR, Accumulator
    from tests.operator.harness import START

    def metered() -> Accumulator:
        acc = Accumulator(START)
        for i in range(count):
            rates = {d: Decimal(v) for d, v in _rates(i).items()}
            acc.observe(_key(i), rates, (), START + timedelta(seconds=i % 3600))
        return acc

    placed = shards.ShardMap()
    encoded = {}
    for key, entry in metered().entries().items():
        encoded[key] = shards.encode_entry(key, entry)
        placed.put(key, shards.entry_size(encoded[key]))
    objects = []
    for index in range(1, len(placed.shards) + 1):
        obj = ledger.shard_object("prod-paid", index, "metering")
        obj["status"] = {
            "observedUntil": ledger.to_time(START + HOUR),
            "entries": [encoded[k] for k in placed.keys(index)],
        }
        objects.append(json.loads(json.dumps(obj)))  # as read back from the API server

    def at_close(acc: Accumulator) -> list[dict[str, Any]]:
        ((_, usage),) = acc.close(START + HOUR)
        return _requests(usage)

    def from_ledger() -> list[dict[str, Any]]:
        entries, _ = shards.restore(objects)
        acc = Accumulator(START + HOUR)
        acc.restore(entries, {START: START + HOUR}, START + HOUR)
        ((_, usage),) = acc.close(START + HOUR)
        return _requests(usage)

    def baseline() -> int:
        return sum(
            int(rate.replace(".", ""))
            for obj in objects
            for entry in obj["status"]["entries"]
            for rate in entry.get("r", {}).values()
        )

    close_s = min(_timed(partial(at_close, acc)) for acc in [metered() for _ in range(2)])
    ledger_s = _best(from_ledger)
    base_s = _best(baseline)
    print(
        f"[{count}] build the hour's 3 requests at its close: {close_s:.3f} s (target <= 1 s); "
        f"after a restart, from {len(objects)} checkpoint shards: {ledger_s:.3f} s; "
        f"baseline sum over the same data: {base_s:.3f} s; ratios {close_s / base_s:.1f}x, "
        f"{ledger_s / base_s:.1f}x"
    )
    return base_s


def _requests(usage: Mapping[str, Any]) -> list[dict[str, Any]]:
    from entitlement_sidecar.aws.metering import MeterRequest
    from entitlement_sidecar.operator.allocation import client_token, split
    from tests.operator.harness import START

    requests = []
    for dimension, workloads in sorted(usage.items()):
        result = split(workloads)
        token = client_token("prod-paid", dimension, START, result)
        request = MeterRequest(
            "prod-paid", START, dimension, result.quantity, token, result.allocations
        )
        requests.append(request.to_params())
    return requests


def bench_ticks(count: int, base_s: float) -> None:
    from entitlement_sidecar.emulator import Emulator
    from entitlement_sidecar.operator.annotations import WorkloadRef
    from tests.operator.harness import FakeClock, kube_server, runtime

    clock = FakeClock()
    scenario = {"products": {"prod-paid": {"dimensions": list(DIMENSIONS)}}, "throttle": None}
    with kube_server() as kube, Emulator(now=clock, scenario=scenario) as emu:
        rt = runtime(kube, emu, clock, "AKIDBENCH", dimensions=DIMENSIONS, tag_keys=())
        refs = [WorkloadRef(f"ns-{i % 50}", "Deployment", f"app-{i:05d}") for i in range(count)]
        for i, ref in enumerate(refs):
            rt.engine.observe(ref, workload_notes(i), {}, gone=False)
        rt.engine.tick()  # takes the Lease (nothing to checkpoint yet)
        clock.advance(minutes=2)
        writes = _writes(kube)
        first_s = _timed(rt.engine.tick)  # the first checkpoint: every shard
        first = _writes(kube) - writes
        clock.advance(minutes=28)
        for i in range(0, count, 100):  # 1% of the workloads change
            rt.engine.observe(refs[i], workload_notes(i + 1), {}, gone=False)
        writes = _writes(kube)
        changed_s = _timed(rt.engine.tick)
        changed = _writes(kube) - writes
        clock.advance(minutes=30, seconds=1)
        close_s = _timed(rt.engine.tick)  # checkpoint heads + close (write-ahead) + shards gone
        clock.advance(minutes=6)
        rt.engine.tick()
        calls = emu.records()["requests"].get("MeterUsage", 0)
        allocations = sum(len(r["allocations"]) for r in emu.records()["meter_usage"])
        largest, objects = _largest(kube)
    print(
        f"[{count}] ticks over kmock: first checkpoint {first_s:.2f} s ({first} writes), "
        f"after 1% changed "
        f"{changed_s:.2f} s ({changed} writes), close {close_s:.2f} s (target <= 5 s each); "
        f"baseline sum {base_s:.3f} s"
    )
    print(
        f"[{count}] largest ledger object written: {largest / 1024:.1f} KiB of {objects} objects "
        f"(target < 256 KiB); AWS calls for the hour: {calls} (target 3 = dimensions with "
        f"usage); {allocations} allocations"
    )


def _writes(kube: Any) -> int:
    return sum(1 for r in kube.mock if r.method in {"PATCH", "POST", "PUT"})


def _largest(kube: Any) -> tuple[int, int]:
    """The largest object (compact JSON) any write left in the ledger, over every version."""
    import kmock

    from entitlement_sidecar.operator.ledger import GROUP, PLURAL, VERSION

    hours = kmock.resource(f"{GROUP}/{VERSION}/{PLURAL}")
    sizes = [
        len(json.dumps(version.raw, separators=(",", ":")).encode())
        for (resource, _, _), obj in kube.mock.objects.items()
        if resource == hours
        for version in obj.history
        if version is not None
    ]
    return max(sizes), len({name for (res, _, name) in kube.mock.objects if res == hours})


def _timed(function: Any) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def bench_memory(count: int) -> None:
    """RSS of a real operator process: once it watches `count` workloads, and its peak through
    the first checkpoint, the close of an hour and its send (its clock starts at xx:58:30)."""
    import kmock

    from entitlement_sidecar.emulator import Emulator
    from tests.operator.harness import kube_server

    now = datetime.now(UTC)
    offset = (now.replace(minute=58, second=30, microsecond=0) - now).total_seconds()
    base = _rss_of([sys.executable, "-c", BASELINE], env=None, stages=[lambda _: True])
    scenario = {"products": {"prod-paid": {"dimensions": list(DIMENSIONS)}}, "throttle": None}
    with kube_server() as kube, Emulator(scenario, clock_offset_seconds=offset) as emu:
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
        watching, sent = _rss_of(
            [sys.executable, "-c", OPERATOR, kube.url, str(offset)],
            env=env,
            stages=[
                lambda port: _watching(port, count),
                lambda _: emu.records()["requests"].get("MeterUsage", 0) >= len(DIMENSIONS),
            ],
        )
    print(
        f"[{count}] operator RSS watching the workloads: {watching[0]:.0f} MiB; peak through "
        f"checkpoint, close and send: {sent[1]:.0f} MiB (target <= 200 MiB); bare `import "
        f"kopf`: {base[0][0]:.0f} MiB; ratio {sent[1] / base[0][0]:.1f}x"
    )


def _rss_of(
    command: list[str], env: dict[str, str] | None, stages: list[Any]
) -> list[tuple[float, float]]:
    """(RSS, peak RSS) in MiB of a process as each stage becomes true (3 minutes each)."""
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        found = []
        for ready in stages:
            deadline = time.monotonic() + 420
            while not ready(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the process never got there")
                time.sleep(0.5)
            rss = psutil.Process(process.pid).memory_info().rss / MIB
            found.append((rss, _peak_mib(process.pid)))
            print(f"  stage {len(found)}: RSS {rss:.0f} MiB, peak {found[-1][1]:.0f} MiB")
        return found
    finally:
        process.kill()
        process.wait()


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _watching(port: int, count: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return False
    return f'entitlement_operator_workloads{{dimension="users"}} {float(count)}' in text


def _key(i: int) -> str:
    return f"ns-{i % 50}/Deployment/app-{i:05d}"


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
    parser.add_argument("--workloads", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    for count in args.workloads:
        base_s = bench_build(count)
        bench_ticks(count, base_s)
        if not args.skip_memory:
            bench_memory(count)


if __name__ == "__main__":
    main()

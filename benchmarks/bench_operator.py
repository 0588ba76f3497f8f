"""Metering operator benchmarks, printed against baselines measured in the same run.

N annotated workloads (default: 10,000 and 100,000) across 3 dimensions:

1. Build time: the hour's three validated MeterUsage requests at its close (exact split,
   ClientToken, parameters), and after a restart from the checkpoint's lines (decode, restore,
   close, build). Target <= 1 s. Baseline: a plain `sum()` of the same usages.
2. Ticks over kmock: the first checkpoint (every line, as base shards), a checkpoint after 1% of
   the workloads changed (a log piece), the compaction that follows once 1%-changes have filled
   the log, the close tick (write-ahead of 3 hours' requests), a resume after a clean restart
   and after a crash (a new instance reads the checkpoint) and its first checkpoint. Target
   <= 5 s each. Each tick also says how much of its CPU time was kmock's (the fake API server
   runs in the benchmark's own interpreter: a real API server's work is not the operator's),
   and how many objects it wrote. Baseline: the same plain sum. Also: the largest object ever
   written to the ledger (target < 256 KiB) and the AWS calls for the hour (target 3: one per
   dimension with usage, however many workloads).
3. Memory: RSS of a real operator process (kopf + our handlers) once it watches the N workloads
   through kmock, its peak through checkpoint, close and send, and the peak of a second
   process that resumes from the ledger the first one wrote. Target <= 200 MiB. Baseline: a
   process that only does `import kopf`.

The machine's load average is printed with each figure (the development machine is shared).
Usage: `python benchmarks/bench_operator.py [--workloads N ...] [--skip-memory]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
import sys, threading, kopf
from datetime import UTC, datetime, timedelta
from entitlement_sidecar.aws.metering import make_client
from entitlement_sidecar.operator import handlers
from entitlement_sidecar.operator.metrics import MetricsServer
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.wiring import build
from kubernetes import client as k8s

from entitlement_sidecar import logs
logs.setup("WARNING", "json")
url, offset = sys.argv[1], [timedelta(seconds=float(sys.argv[2]))]


def set_clock() -> None:  # each line on stdin: the moment (ISO 8601) the clock reads from now
    for line in sys.stdin:
        offset[0] = datetime.fromisoformat(line.strip()) - datetime.now(UTC)


threading.Thread(target=set_clock, daemon=True).start()
settings = OperatorSettings.model_validate({
    "product_code": "prod-paid", "dimensions": ("api_calls", "gb", "users"),
    "ledger_namespace": "metering", "tick_seconds": 5, "send_jitter_seconds": 0,
    "lease_name": sys.argv[3],
})
runtime = build(
    settings, k8s.ApiClient(k8s.Configuration(host=url)), make_client("us-east-1"),
    now=lambda: datetime.now(UTC) + offset[0],
)
server = MetricsServer(runtime.metrics, 0, host="127.0.0.1").start()
print(server.port, flush=True)
kopf.run(standalone=True, clusterwide=True, memo=kopf.Memo(
    runtime=runtime, connection=kopf.ConnectionInfo(server=url)))
"""
BASELINE = "import kopf, sys; print(0, flush=True); sys.stdin.read()"
CHECKPOINTED = 'entitlement_operator_checkpoints_total{dimension="users"}'


def workload_notes(i: int) -> dict[str, str]:
    """The annotations of workload `i` (the same rates as `_rates`)."""
    return {"metering.entitlement-sidecar.io/dimensions": json.dumps(_rates(i))}


def bench_build(count: int) -> float:
    """Build the hour's requests at its close, and from the checkpoint's lines after a restart;
    return the baseline's seconds."""
    from entitlement_sidecar.operator.accounting import HOUR, Accumulator
    from entitlement_sidecar.operator.shards import chunks, decode_lines, encode_line
    from tests.operator.harness import START

    def metered() -> Accumulator:
        acc = Accumulator(START)
        for i in range(count):
            rates = {d: Decimal(v) for d, v in _rates(i).items()}
            acc.observe(_key(i), rates, (), START + timedelta(seconds=i % 3600))
        return acc

    lines = [encode_line(key, entry) for key, entry in sorted(metered().entries().items())]
    pieces = chunks(json.loads(json.dumps(lines)))  # as read back from the API server
    documents = [json.loads(line) for line in lines]

    def at_close(acc: Accumulator) -> list[dict[str, Any]]:
        ((_, usage),) = acc.close(START + HOUR)
        return _requests(usage)

    def watching() -> Accumulator:  # a new instance's watch has seen what runs now
        acc = Accumulator(START + HOUR)
        for i in range(count):
            rates = {d: Decimal(v) for d, v in _rates(i).items()}
            acc.observe(_key(i), rates, (), START + HOUR)
        return acc

    def from_ledger(acc: Accumulator) -> list[dict[str, Any]]:
        rows = (row for piece in pieces for row in decode_lines(piece))
        acc.restore(rows, {START: START + HOUR}, START + HOUR)
        ((_, usage),) = acc.close(START + HOUR)
        return _requests(usage)

    def baseline() -> int:
        return sum(
            int(rate.replace(".", "")) for entry in documents for rate in entry["r"].values()
        )

    closes = [_timed(partial(at_close, acc)) for acc in [metered() for _ in range(2)]]
    ledger_s = min(_timed(partial(from_ledger, acc)) for acc in [watching() for _ in range(2)])
    base_s = _best(baseline)
    print(
        f"[{count}] build the hour's 3 requests at its close: {min(closes):.3f}-{max(closes):.3f}"
        f" s (target <= 1 s); after a restart, from {len(pieces)} checkpoint pieces: "
        f"{ledger_s:.3f} s; baseline sum over the same data: {base_s:.3f} s; ratios "
        f"{min(closes) / base_s:.1f}x, {ledger_s / base_s:.1f}x; load {_load()}"
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


@dataclass
class Tick:
    """One measured tick: wall seconds, CPU seconds of the operator's thread and of kmock's,
    objects written (created or patched) and deleted."""

    seconds: float
    operator_cpu: float
    kmock_cpu: float
    writes: int
    deletes: int

    def text(self) -> str:
        share = self.kmock_cpu / max(self.operator_cpu + self.kmock_cpu, 1e-9)
        return (
            f"{self.seconds:.2f} s ({self.writes:.0f} writes, {self.deletes:.0f} deletes; CPU "
            f"operator {self.operator_cpu:.2f} s, kmock {self.kmock_cpu:.2f} s = {share:.0%})"
        )


def bench_ticks(count: int, base_s: float) -> None:
    """The ticks of an hour of N workloads over kmock, a restart and a crash after it."""
    from entitlement_sidecar.emulator import Emulator
    from tests.operator.harness import FakeClock, kube_server

    clock = FakeClock()
    scenario = {"products": {"prod-paid": {"dimensions": list(DIMENSIONS)}}, "throttle": None}
    with kube_server() as kube, Emulator(now=clock, scenario=scenario) as emu:
        ticks = _an_hour(kube, emu, clock, count)
        calls = emu.records()["requests"].get("MeterUsage", 0)
        allocations = sum(len(r["allocations"]) for r in emu.records()["meter_usage"])
        largest, objects = _largest(kube)
    print(f"[{count}] ticks over kmock (baseline sum {base_s:.3f} s; target <= 5 s each):")
    for label, measured in ticks.items():
        if len(measured) == 1:
            print(f"  {label}: {measured[0].text()}")
        elif measured:
            median = Tick(*(statistics.median(getattr(t, f) for t in measured) for f in FIELDS))
            slowest = max(measured, key=lambda t: t.seconds)
            print(f"  {label}, {len(measured)} ticks: median {median.text()}")
            print(f"    the slowest: {slowest.text()}")
    print(
        f"[{count}] largest ledger object written: {largest / 1024:.1f} KiB of {objects} objects "
        f"(target < 256 KiB); AWS calls for the hour: {calls} (target 3 = dimensions with "
        f"usage); {allocations} allocations; load {_load()}"
    )


def _an_hour(kube: Any, emu: Any, clock: Any, count: int) -> dict[str, list[Tick]]:
    """10:00 to 11:06 with N workloads, 1% of them changing every checkpoint (5 s) until the
    log has been compacted once, then a clean restart and a crash; every tick measured."""
    from entitlement_sidecar.operator.annotations import WorkloadRef
    from tests.operator.harness import START, runtime

    clock.set(START)
    refs = [WorkloadRef(f"ns-{i % 50}", "Deployment", f"app-{i:05d}") for i in range(count)]
    options: dict[str, Any] = {"dimensions": DIMENSIONS, "tag_keys": (), "checkpoint_seconds": 5}
    rt = runtime(kube, emu, clock, "AKIDBENCH", **options)
    for i, ref in enumerate(refs):
        rt.engine.observe(ref, workload_notes(i), {}, gone=False)
    rt.engine.tick()  # takes the Lease, writes the root (nothing to checkpoint yet)
    clock.advance(minutes=2)
    ticks: dict[str, list[Tick]] = {"first checkpoint (every line, as base shards)": []}
    ticks["first checkpoint (every line, as base shards)"].append(_tick(kube, rt.engine.tick))
    logged = ticks["checkpoint after 1% changed (a log piece)"] = []
    sliced = ticks["checkpoint after 1% changed, with a slice of the compaction"] = []
    step, compactions = 0, rt.metrics.compactions.value()
    while rt.metrics.compactions.value() == compactions:  # until the log has been compacted
        clock.advance(seconds=5)
        for i in _changing(step, count):
            rt.engine.observe(refs[i], workload_notes(i + 1 + step), {}, gone=False)
        step += 1
        base = rt.metrics.checkpoint_bytes.value(kind="base")
        tick = _tick(kube, rt.engine.tick)
        (sliced if rt.metrics.checkpoint_bytes.value(kind="base") > base else logged).append(tick)
    clock.set(START + timedelta(hours=1, seconds=30))
    ticks["close (the hour's 3 write-ahead requests)"] = [_tick(kube, rt.engine.tick)]
    clock.advance(minutes=6)
    rt.engine.tick()  # sends
    for restart in ("clean", "crash"):
        if restart == "clean":
            rt.engine.shutdown()
        clock.advance(seconds=5 if restart == "clean" else 120)
        rt = runtime(kube, emu, clock, f"AKID{restart.upper()}", **options)
        for i, ref in enumerate(refs):  # the new pod's watch: what runs now
            rt.engine.observe(ref, _latest(i, step), {}, gone=False)
        ticks[f"resume after a {restart} restart (reads every piece)"] = [
            _tick(kube, rt.engine.tick)
        ]
        clock.advance(seconds=5)
        ticks[f"its first checkpoint ({restart})"] = [_tick(kube, rt.engine.tick)]
    return ticks


FIELDS = ("seconds", "operator_cpu", "kmock_cpu", "writes", "deletes")


def _changing(step: int, count: int) -> list[int]:
    """The 1% of the workloads that change at `step`: a few in every namespace and in every
    stretch of keys, so every base shard holds some (the worst case for a compaction)."""
    return [i for i in range(count) if (i // 50) % 100 == step % 100]


def _latest(i: int, steps: int) -> dict[str, str]:
    """The annotations of workload `i` after `steps` rounds of 1% changes."""
    changes = [step for step in range(steps) if (i // 50) % 100 == step % 100]
    return workload_notes(i + 1 + changes[-1]) if changes else workload_notes(i)


def _tick(kube: Any, tick: Callable[[], None]) -> Tick:
    """Run one tick; its wall time, this thread's and kmock's CPU time, and its writes.

    kmock keeps every request it served and looks through them all for each new one (to find
    the reaction that applies), so its cost per request grows with the benchmark's length: its
    log is emptied before each measured tick, as a real API server keeps no such log."""
    kube.forget_requests()
    writes, deletes = _requests_made(kube)
    kmock_before = _thread_cpu(kube)
    cpu_before = time.thread_time()
    started = time.perf_counter()
    tick()
    seconds = time.perf_counter() - started
    operator_cpu = time.thread_time() - cpu_before
    kmock_cpu = _thread_cpu(kube) - kmock_before
    writes_after, deletes_after = _requests_made(kube)
    return Tick(seconds, operator_cpu, kmock_cpu, writes_after - writes, deletes_after - deletes)


def _thread_cpu(kube: Any) -> float:
    """CPU seconds of kmock's event-loop thread (asked in that thread)."""
    import asyncio

    async def cpu() -> float:
        return time.thread_time()

    return float(asyncio.run_coroutine_threadsafe(cpu(), kube.loop).result(10))


def _requests_made(kube: Any) -> tuple[int, int]:
    methods = [r.method for r in kube.mock]
    return sum(1 for m in methods if m in {"PATCH", "POST", "PUT"}), methods.count("DELETE")


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


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
    the first checkpoint, the close of an hour and its send (once it watches every workload, its
    clock and the emulator's are set to xx:58:30); then of a second pod resuming from that
    checkpoint."""
    import kmock

    from entitlement_sidecar.emulator.harness import MeteringEmulator
    from tests.operator.harness import kube_server

    base = _rss_of([sys.executable, "-c", BASELINE], env=None, stages=[lambda *_: True])
    scenario = {"products": {"prod-paid": {"dimensions": list(DIMENSIONS)}}, "throttle": None}
    with kube_server() as kube, MeteringEmulator(scenario) as emu:
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
        moment = datetime.now(UTC).replace(minute=58, second=30, microsecond=0)
        offsets: list[float] = []  # the clocks' offset once set

        def close_soon(port: int, process: subprocess.Popen[str]) -> bool:
            """Once every workload is watched, both clocks read xx:58:30: the hour closes."""
            if not _watching(port, count):
                return False
            emu.set_time(moment)
            offsets.append((moment - datetime.now(UTC)).total_seconds())
            assert process.stdin is not None
            process.stdin.write(moment.isoformat() + "\n")
            process.stdin.flush()
            return True

        watching, sent = _rss_of(
            [sys.executable, "-c", OPERATOR, kube.url, "0", "first"],
            env=env,
            stages=[
                close_soon,
                lambda *_: emu.records()["requests"].get("MeterUsage", 0) >= len(DIMENSIONS),
            ],
        )
        resumed, checkpointed = _rss_of(  # a new pod (its own Lease: the first one is gone)
            [sys.executable, "-c", OPERATOR, kube.url, str(offsets[0]), "second"],
            env=env,
            stages=[
                lambda port, _: _metric(port, "entitlement_operator_leader", 1.0),
                lambda port, _: _metric(port, CHECKPOINTED, 1.0),
            ],
        )
    print(
        f"[{count}] operator RSS watching the workloads: {watching[0]:.0f} MiB; peak through "
        f"checkpoint, close and send: {sent[1]:.0f} MiB; a new pod's after its resume "
        f"{resumed[0]:.0f} MiB, peak through its first checkpoint {checkpointed[1]:.0f} MiB "
        f"(target <= 200 MiB); bare `import "
        f"kopf`: {base[0][0]:.0f} MiB; ratio {sent[1] / base[0][0]:.1f}x; load {_load()}"
    )


def _rss_of(
    command: list[str], env: dict[str, str] | None, stages: list[Any]
) -> list[tuple[float, float]]:
    """(RSS, peak RSS) in MiB of a process as each stage becomes true (7 minutes each)."""
    process = subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        found = []
        for ready in stages:
            deadline = time.monotonic() + 420
            while not ready(port, process):
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
    return _metric(port, 'entitlement_operator_workloads{dimension="users"}', float(count))


def _metric(port: int, series: str, at_least: float) -> bool:
    """Whether the process at `port` exports `series` with a value of at least `at_least`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return False
    values = [line.rsplit(" ", 1) for line in text.splitlines() if line.startswith(series + " ")]
    return any(float(value) >= at_least for _, value in values)


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

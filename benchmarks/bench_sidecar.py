"""Sidecar benchmarks, printed as ratios against baselines measured in the same run.

1. Start to ready: exec of `entitlement-sidecar run` to the first `/readyz` 200 against the local
   emulator, over the strict floor `python -c "import boto3, pydantic_settings;
   boto3.client(...); os._exit(0)"` (the cost of the dependencies, without the interpreter
   teardown that our registration child skips too). Target <= 0.90. The old floor (with the
   teardown) is printed alongside. Medians, runs interleaved.
2. Steady-state memory: RSS of the `run` process tree once ready (and after serving some probes),
   in MiB. Target <= 16 MiB. Baseline: a bare interpreter.
3. `check` as an exec probe on its success path (entitled, same instance): `check` over
   `python -c pass`, target <= 3; `check --verify`, target <= 4.

Usage: `python benchmarks/bench_sidecar.py [--runs N]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import MEMORY_TMPDIR, free_port, probe_status, wait_ready

BIN = Path(sys.executable).parent
SIDECAR = str(BIN / "entitlement-sidecar")
DEPENDENCIES = (
    "import boto3, pydantic_settings; boto3.client('meteringmarketplace', region_name='us-east-1')"
)
STRICT_DEPENDENCIES = "import os; " + DEPENDENCIES + "; os._exit(0)"
MIB = 1024 * 1024


def _env(emu: Emulator, status_dir: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTITLEMENT_"))}
    env.update(emu.env(access_key_id="AKIDBENCH"))
    env.update(
        ENTITLEMENT_PRODUCT_CODE="prod-paid",
        ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
        ENTITLEMENT_STATUS_DIR=status_dir,
        ENTITLEMENT_PORT=str(port),
        ENTITLEMENT_INSTANCE_ID="bench-pod",
        ENTITLEMENT_LOG_LEVEL="WARNING",
    )
    return env


# Status directories live in memory when the machine has /dev/shm, like the chart's emptyDir
# (medium: Memory); all of them in one directory removed at the end.
SCRATCH = tempfile.TemporaryDirectory(prefix="bench-sidecar-", dir=MEMORY_TMPDIR)


def start_to_ready(emu: Emulator) -> tuple[float, subprocess.Popen[bytes], str]:
    """One `run`: (seconds from exec to first /readyz 200, the process, its port URL)."""
    port = free_port()
    status_dir = tempfile.mkdtemp(prefix="pod-", dir=SCRATCH.name)
    env = _env(emu, status_dir, port)
    begun = time.perf_counter()
    process = subprocess.Popen([SIDECAR, "run"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + "/readyz", process)
    return time.perf_counter() - begun, process, base


def _timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    begun = time.perf_counter()
    subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - begun


def tree_rss(process: subprocess.Popen[bytes]) -> int:
    """RSS of the process and all its descendants, in bytes."""
    parent = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)


def _interleaved(runs: int, *measures: Callable[[], float]) -> list[float]:
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(runs):
        for index, measure in enumerate(measures):
            samples[index].append(measure())
    return [statistics.median(s) for s in samples]


def main() -> int:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 7
    python = sys.executable
    with Emulator({"products": {"prod-paid": {}}, "throttle": None}) as emu:
        processes: list[subprocess.Popen[bytes]] = []

        def ready_once() -> float:
            seconds, process, _base = start_to_ready(emu)
            processes.append(process)
            return seconds

        def baseline_once() -> float:
            return _timed([python, "-c", DEPENDENCIES])

        def strict_once() -> float:
            return _timed([python, "-c", STRICT_DEPENDENCIES])

        ready, deps, strict = _interleaved(runs, ready_once, baseline_once, strict_once)
        for process in processes:
            _stop(process)

        _seconds, process, base = start_to_ready(emu)
        for path in ("/livez", "/readyz", "/status", "/metrics") * 25:
            probe_status(base + path)
        time.sleep(0.5)
        rss = tree_rss(process)
        children = len(psutil.Process(process.pid).children(recursive=True))
        _stop(process)
        bare = subprocess.Popen([python, "-c", "import time; time.sleep(3)"])
        time.sleep(0.5)
        bare_rss = psutil.Process(bare.pid).memory_info().rss
        bare.kill()
        bare.wait()

        status_dir = tempfile.mkdtemp(prefix="check-", dir=SCRATCH.name)
        env = _env(emu, status_dir, free_port())
        subprocess.run([SIDECAR, "register"], env=env, check=True, stderr=subprocess.DEVNULL)
        check, verify, bare_start = _interleaved(
            runs * 4,
            lambda: _timed([SIDECAR, "check"], env),
            lambda: _timed([SIDECAR, "check", "--verify"], env),
            lambda: _timed([python, "-c", "pass"], env),
        )

    print(
        f"start to ready : {ready * 1000:7.1f} ms, strict floor (os._exit) {strict * 1000:7.1f} ms"
        f" -> ratio {ready / strict:.2f} (target <= 0.90); floor with teardown "
        f"{deps * 1000:.1f} ms -> {ready / deps:.2f}"
    )
    print(
        f"steady RSS     : {rss / MIB:7.1f} MiB ({children} child processes alive), bare "
        f"interpreter {bare_rss / MIB:.1f} MiB -> ratio {rss / bare_rss:.2f} "
        f"(target <= 16 MiB)"
    )
    print(
        f"check probe    : {check * 1000:7.1f} ms, `python -c pass` {bare_start * 1000:7.1f} ms"
        f" -> ratio {check / bare_start:.2f} (target <= 3)"
    )
    print(
        f"check --verify : {verify * 1000:7.1f} ms, `python -c pass` {bare_start * 1000:7.1f} ms"
        f" -> ratio {verify / bare_start:.2f} (target <= 4)"
    )
    print(f"load average   : {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    with SCRATCH:
        sys.exit(main())

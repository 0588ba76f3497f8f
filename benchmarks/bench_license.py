"""License Manager mode benchmarks, against RegisterUsage mode measured in the same run.

1. Steady memory of `run`: RSS of the long-lived parent once ready and after several heartbeats
   (its License Manager children come and go; samples are taken while none is alive), in License
   Manager mode (a 2-seat floating license, heartbeat every 2 s) and in RegisterUsage mode, runs
   interleaved. Target: License Manager within 1 MiB of RegisterUsage (medians).
2. The short-lived children's peak RSS (VmHWM, read by the process itself at exit): the gate
   (`register`: CheckoutLicense), a heartbeat (`license heartbeat`: ExtendLicenseConsumption, the
   non-consuming re-check, GetLicense) and the check-in (`license checkin`), beside the
   RegisterUsage registration child.
3. Start to ready of `run` in both modes, and SIGTERM to exit in License Manager mode (the seat
   returned: CheckInLicense), with the seats in use afterwards (target 0).

Usage: `python benchmarks/bench_license.py [--runs N]`.
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
from typing import Any

import psutil

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import MEMORY_TMPDIR, free_port, probe_status, wait_ready

BIN = Path(sys.executable).parent
SIDECAR = str(BIN / "entitlement-sidecar")
MIB = 1024 * 1024
SKU = "prod-bench-seats"
HEARTBEAT_SECONDS = 2
STEADY_SECONDS = 8.0  # about four heartbeats
SCENARIO: dict[str, Any] = {
    "products": {"prod-paid": {}},
    "throttle": None,
    "licenses": [
        {"sku": SKU, "entitlements": [{"name": "seats", "unit": "Count", "max_count": 2}]}
    ],
}
SCRATCH = tempfile.TemporaryDirectory(prefix="bench-license-", dir=MEMORY_TMPDIR)


def _env(emu: Emulator, contract: bool, port: int, pod: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTITLEMENT_"))}
    env.update(emu.env(access_key_id="AKID" + pod.upper().replace("-", "")))
    env.update(
        ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
        ENTITLEMENT_STATUS_DIR=tempfile.mkdtemp(prefix=f"{pod}-", dir=SCRATCH.name),
        ENTITLEMENT_PORT=str(port),
        ENTITLEMENT_INSTANCE_ID=pod,
        ENTITLEMENT_LOG_LEVEL="WARNING",
    )
    if contract:
        env.update(
            ENTITLEMENT_PRODUCT_SKU=SKU,
            ENTITLEMENT_LICENSE_ENTITLEMENTS="seats=1",
            ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        )
    else:
        env["ENTITLEMENT_PRODUCT_CODE"] = "prod-paid"
    return env


class Run:
    """One `run` pod: its start-to-ready time, steady parent RSS, children seen."""

    def __init__(self, emu: Emulator, contract: bool, pod: str) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        begun = time.perf_counter()
        self.process = subprocess.Popen(
            [SIDECAR, "run"], env=_env(emu, contract, port, pod), stderr=subprocess.DEVNULL
        )
        wait_ready(self.base + "/readyz", self.process, timeout=60)
        self.ready = time.perf_counter() - begun
        self.children_seen = 0

    def steady_rss(self) -> int:
        """The parent's RSS at the end of STEADY_SECONDS of probes, sampled with no child alive."""
        parent = psutil.Process(self.process.pid)
        seen: set[int] = set()
        last = 0
        deadline = time.monotonic() + STEADY_SECONDS
        while time.monotonic() < deadline:
            for path in ("/livez", "/readyz", "/status", "/metrics"):
                probe_status(self.base + path)
            children = parent.children(recursive=True)
            seen.update(child.pid for child in children)
            if not children:
                last = parent.memory_info().rss
            time.sleep(0.05)
        self.children_seen = len(seen)
        return last

    def stop(self) -> float:
        begun = time.perf_counter()
        self.process.terminate()
        self.process.wait(30)
        return time.perf_counter() - begun


# The measured command reports its own high-water mark at exit: VmHWM counts only the memory of
# the program it runs. (`wait4`'s ru_maxrss would not do: Linux records the pre-exec image's peak
# there, and a child forked from this process starts as a copy of the emulator's ~50 MiB.)
PEAK_WRAPPER = (
    "import atexit, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('peak', int(line.split()[1]), file=sys.stderr)\n"
    "atexit.register(hwm)\n"
    "from entitlement_sidecar.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def peak_rss(args: list[str], env: dict[str, str]) -> int:
    """The peak RSS (bytes) of `entitlement-sidecar *args` run to its end (python -IB, as the
    image runs it)."""
    done = subprocess.run(
        [sys.executable, "-I", "-B", "-c", PEAK_WRAPPER, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited with {done.returncode}: {done.stderr[-500:]}")
    line = next(x for x in done.stderr.splitlines() if x.startswith("peak "))
    return int(line.split()[1]) * 1024


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    samples: dict[str, list[float]] = {
        key: [] for key in ("rss_lm", "rss_ru", "ready_lm", "ready_ru", "stop_lm", "children")
    }
    seats_after: list[int] = []
    with Emulator(SCENARIO) as emu:

        def seats() -> int:
            return sum(int(lic["seats_in_use"]) for lic in emu.licenses())

        for index in range(runs):
            for contract in (index % 2 == 0, index % 2 == 1):  # alternate which mode goes first
                pod = Run(emu, contract, f"{'lm' if contract else 'ru'}-{index}")
                rss = pod.steady_rss()
                mode = "lm" if contract else "ru"
                samples[f"rss_{mode}"].append(rss)
                samples[f"ready_{mode}"].append(pod.ready)
                if contract:
                    samples["children"].append(pod.children_seen)
                    samples["stop_lm"].append(pod.stop())
                    seats_after.append(seats())
                else:
                    pod.stop()

        peaks: dict[str, list[float]] = {"gate": [], "heartbeat": [], "checkin": [], "ru": []}
        for index in range(runs):
            env = _env(emu, True, free_port(), f"child-{index}")
            peaks["gate"].append(peak_rss(["register"], env))
            peaks["heartbeat"].append(peak_rss(["license", "heartbeat"], env))
            peaks["checkin"].append(peak_rss(["license", "checkin"], env))
            peaks["ru"].append(peak_rss(["register"], _env(emu, False, 1, f"ru-{index}")))

    lm, ru = _median(samples["rss_lm"]), _median(samples["rss_ru"])
    print(
        f"steady RSS of run : License Manager {lm / MIB:6.2f} MiB, RegisterUsage {ru / MIB:6.2f} "
        f"MiB -> difference {(lm - ru) / MIB:+.2f} MiB (target within 1 MiB); medians of {runs}, "
        f"{_median(samples['children']):.0f} License Manager children came and went per run"
    )
    print(
        "  per run (MiB)   : LM "
        + " ".join(f"{v / MIB:.2f}" for v in samples["rss_lm"])
        + " | RU "
        + " ".join(f"{v / MIB:.2f}" for v in samples["rss_ru"])
    )
    describe: dict[str, Callable[[str], str]] = {
        "gate": lambda v: f"gate (register, CheckoutLicense)      {v}",
        "heartbeat": lambda v: f"heartbeat (license heartbeat)         {v}",
        "checkin": lambda v: f"check-in (license checkin)            {v}",
        "ru": lambda v: f"RegisterUsage registration (baseline) {v}",
    }
    for key, values in peaks.items():
        print("child peak RSS    : " + describe[key](f"{_median(values) / MIB:6.2f} MiB"))
    print(
        f"start to ready    : License Manager {_median(samples['ready_lm']) * 1000:6.0f} ms, "
        f"RegisterUsage {_median(samples['ready_ru']) * 1000:6.0f} ms"
    )
    print(
        f"SIGTERM to exit   : {_median(samples['stop_lm']) * 1000:6.0f} ms (seat returned), "
        f"seats in use after each stop: {seats_after} (target all 0)"
    )
    print(f"load average      : {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    with SCRATCH:
        sys.exit(main())

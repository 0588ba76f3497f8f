"""The herd start: N sidecars of one buyer account registering at once against a 5/s quota.

Each pod is a real `entitlement-sidecar register` process (the registration `run` delegates to
its child) with its own status directory, instance id and AWS caller; they all wait on a gate (a
FIFO) and are released together, so the herd starts as a Deployment scaled from 0 does. The
emulator plays AWS: RegisterUsage 5 calls/s per account, burst 5, and a throttled call takes no
token (the token-bucket semantics AWS documents for its APIs; Marketplace publishes only the
rate).

Floors, measured in the same run:
- quota floor: N / 5 s.
- CPU floor: the same herd with throttling off (on 2 cores the imports alone take seconds).
- combined floor: that unthrottled herd's first-call times pushed through a perfect 5/s bucket,
  plus each pod's own time from its call to its exit: on 2 cores imports and quota add up.
Targets: all ready within 1.3x the combined floor, at most 2 RegisterUsage calls per pod (mean),
no pod gives up, and a lone pod is not slowed by the quota. The herd-size hint
(`ENTITLEMENT_HERD_SIZE`, the chart's `sidecar.herdSize`) is set to N; `--without-hint` also
runs each herd without it, for comparison.

`--warm` opens the gate only once every pod has imported its modules (pods on nodes of their
own: the quota, not this machine's 2 cores, is what they share).

Usage: `python benchmarks/bench_herd.py [--sizes 20,50,100] [--without-hint] [--warm]
[--lone-runs 5]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.testing import MEMORY_TMPDIR, clean_env

RATE = 5.0
PRODUCT = "prod-paid"
# Cold: the gate opens before the interpreter starts (imports included, as the issue measures).
GATE = 'read _ < "$1"; exec "$2" -m entitlement_sidecar register'
# Warm: every pod has imported its modules before the gate opens, as pods on their own nodes
# would be by the time they call: the quota, not this machine's 2 cores, is what they share.
# (The light `register` command module is imported after the gate: its import is the pod's start.)
WARM = (
    "import os, sys; import entitlement_sidecar.aws.metering; "
    "import entitlement_sidecar.sidecar.registration; "
    "os.read(os.open(sys.argv[1], os.O_RDONLY), 1); "
    "from entitlement_sidecar.sidecar.commands import register; register.main(['--child'])"
)


def _option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


class Herd:
    """One herd run: per pod, seconds from the gate to its first call, to its exit; its calls."""

    def __init__(self) -> None:
        self.first_call: dict[str, float] = {}  # caller -> when its (only) call arrived
        self.ready: dict[str, float] = {}  # caller -> when it exited entitled
        self.calls: list[int] = []
        self.failed = 0

    @property
    def all_ready(self) -> float:
        return max(self.ready.values())


def start_herd(size: int, *, throttled: bool, hint: bool, warm: bool = False) -> Herd:
    """Start `size` register processes together; wait for all of them."""
    scenario: dict[str, Any] = {"products": {PRODUCT: {}}}
    scenario["throttle"] = {"RegisterUsage": RATE} if throttled else None
    herd = Herd()
    with (
        Emulator(scenario) as emu,
        tempfile.TemporaryDirectory(prefix="bench-herd-", dir=MEMORY_TMPDIR) as tmp,
    ):
        gate = Path(tmp) / "gate"
        os.mkfifo(gate)
        processes: dict[int, tuple[subprocess.Popen[bytes], Path, str]] = {}
        for index in range(size):
            caller = f"AKIDHERD{index:05d}"
            status_dir = Path(tmp) / f"pod-{index}"
            status_dir.mkdir()
            env = clean_env(
                **emu.env(access_key_id=caller),
                ENTITLEMENT_PRODUCT_CODE=PRODUCT,
                ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
                ENTITLEMENT_STATUS_DIR=str(status_dir),
                ENTITLEMENT_INSTANCE_ID=f"herd-pod-{index}",
                ENTITLEMENT_LOG_LEVEL="ERROR",
                **({"ENTITLEMENT_HERD_SIZE": str(size)} if hint else {}),
            )
            command = (
                [sys.executable, "-c", WARM, str(gate)]
                if warm
                else ["sh", "-c", GATE, "sh", str(gate), sys.executable]
            )
            process = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes[process.pid] = (process, status_dir, caller)
        time.sleep(0.5 + size / (8 if warm else 200))  # every pod is blocked on the gate by now
        began_wall = time.time()
        began = time.monotonic()
        with open(gate, "wb") as opened:  # one line per pod: each `read` takes one
            opened.write(b"\n" * size)
            opened.flush()
            while processes and len(herd.ready) + herd.failed < size:
                pid, wait_status = os.wait()
                elapsed = time.monotonic() - began
                process, status_dir, caller = processes.pop(pid)
                process.returncode = os.waitstatus_to_exitcode(wait_status)
                doc = status.read(str(status_dir)) or {}
                herd.calls.append(int(doc.get("attempts", 0)))
                if process.returncode == 0:
                    herd.ready[caller] = elapsed
                else:
                    herd.failed += 1
        registrations = emu.records()["registrations"]
    if all(calls == 1 for calls in herd.calls):
        herd.first_call = {
            r["caller"]: datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
            - began_wall
            for r in registrations
        }
    return herd


def combined_floor(unthrottled: Herd) -> float:
    """The unthrottled herd's first calls through a perfect 5/s bucket (burst 5), to the exit."""
    arrivals = sorted((call, caller) for caller, call in unthrottled.first_call.items())
    tokens, last, floor = RATE, 0.0, 0.0
    for arrival, caller in arrivals:
        moment = max(arrival, last)
        tokens = min(RATE, tokens + (moment - last) * RATE)
        if tokens < 1.0:
            moment += (1.0 - tokens) / RATE
            tokens = 1.0
        tokens -= 1.0
        last = moment
        floor = max(floor, moment + unthrottled.ready[caller] - arrival)  # + its call-to-exit
    return floor


def lone_pod(runs: int) -> tuple[float, float]:
    """Median seconds to ready of a single pod: (quota on, quota off)."""
    on, off = [], []
    for _ in range(runs):
        on.append(start_herd(1, throttled=True, hint=True).all_ready)
        off.append(start_herd(1, throttled=False, hint=True).all_ready)
    return statistics.median(on), statistics.median(off)


def main() -> int:
    sizes = [int(s) for s in _option("--sizes", "20,50,100").split(",") if s]
    compare = "--without-hint" in sys.argv
    warm = "--warm" in sys.argv
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("warm herd: imports done before the gate" if warm else "cold herd: gate before exec")
    header = (
        f"{'N':>4} {'hint':>5} {'all ready s':>11} {'quota floor':>11} {'CPU floor':>9} "
        f"{'combined':>8} {'ratio':>6} {'calls/pod':>9} {'max':>4} {'gave up':>7}"
    )
    rows = []
    for size in sizes:
        unthrottled = start_herd(size, throttled=False, hint=True, warm=warm)
        floor = combined_floor(unthrottled)
        for hint in (True, False) if compare else (True,):
            herd = start_herd(size, throttled=True, hint=hint, warm=warm)
            rows.append(
                f"{size:>4} {('yes' if hint else 'no'):>5} {herd.all_ready:>11.1f} "
                f"{size / RATE:>11.1f} {unthrottled.all_ready:>9.1f} {floor:>8.1f} "
                f"{herd.all_ready / floor:>6.2f} {statistics.mean(herd.calls):>9.2f} "
                f"{max(herd.calls):>4} {herd.failed:>7}"
            )
            print(rows[-1], flush=True)
    on, off = lone_pod(int(_option("--lone-runs", "5")))
    print()
    print(header)
    print("\n".join(rows))
    print(
        f"lone pod: {on * 1000:.0f} ms to ready with the 5/s quota, {off * 1000:.0f} ms without"
        f" -> ratio {on / off:.2f} (target: not slowed, ~1.00)"
    )
    print("targets: ratio <= 1.30, calls/pod <= 2, gave up 0")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

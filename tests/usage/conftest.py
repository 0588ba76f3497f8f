"""Fixtures for the usage tests: a shifted clock shared by a real `run` process and the emulator."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar.usage.client import Reply, request
from entitlement_sidecar.testing import ShiftedClock, clean_env, free_port, http_get

PRODUCT = "prod-paid"
DIMENSIONS = ("gb", "jobs")
SCENARIO: dict[str, Any] = {"products": {PRODUCT: {"dimensions": list(DIMENSIONS)}}}
# 2026-03-02T10:00:00Z: the hour most tests start in.
H10 = int(datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp())
HOUR = 3600


def wait_for(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll until `condition()` is truthy; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout} s")


def new_clock(directory: Path) -> ShiftedClock:
    """A shifted clock standing at 10:30:00 on 2026-03-02."""
    shifted = ShiftedClock(directory / "clock.offset")
    shifted.jump_to(H10 + 1800)
    return shifted


@pytest.fixture
def clock(tmp_path: Path) -> ShiftedClock:
    """The sidecar's and the emulator's clock, standing at 10:30:00 on 2026-03-02."""
    return new_clock(tmp_path)


@pytest.fixture
def emulator(clock: ShiftedClock) -> Iterator[Emulator]:
    """The Metering emulator on the same shifted clock, product `prod-paid` with gb and jobs."""
    with Emulator(SCENARIO, now=clock.now) as emu:
        yield emu


class UsageSidecar:
    """`entitlement-sidecar run` with the intake on: a real process group on the shifted clock."""

    def __init__(self, clock: ShiftedClock, env: Mapping[str, str], workdir: Path) -> None:
        self.clock = clock
        self.env = dict(env)
        self.port = int(env["ENTITLEMENT_PORT"])
        self.usage_port = int(env["ENTITLEMENT_USAGE_PORT"])
        self.status_dir = Path(env["ENTITLEMENT_STATUS_DIR"])
        self.workdir = workdir
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(
        self, *, wrapper: list[str] | None = None, wait: bool = True, intake_only: bool = False
    ) -> UsageSidecar:
        assert not self.alive(), "already running: stop or kill it first (it would be leaked)"
        self.starts += 1
        log = self.workdir / f"run-{self.starts}.log"
        self.logs.append(log)
        command = wrapper or self.clock.command("run")
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=sink, stderr=sink, start_new_session=True
            )
        if intake_only:
            wait_for(self._intake_up, 30, "intake open")
        elif wait:
            self.wait_ready()
        return self

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"run exited {self.process.returncode}:\n{self.log()}")
            return http_get(f"http://127.0.0.1:{self.port}/readyz", 2, quiet=True)[0] == 200

        wait_for(ready, timeout, "ready")
        wait_for(self._intake_up, timeout, "intake open")

    def _intake_up(self) -> bool:
        try:
            return self.get().status == 200
        except OSError:
            return False

    def post(self, body: object, raw: bytes | None = None) -> Reply:
        return request("POST", "/v1/usage", raw or json.dumps(body).encode(), port=self.usage_port)

    def add(
        self, dimension: str, quantity: str, event_id: str | None = None, **extra: Any
    ) -> Reply:
        event: dict[str, Any] = {"dimension": dimension, "quantity": quantity, **extra}
        if event_id is not None:
            event["id"] = event_id
        return self.post(event)

    def get(self) -> Reply:
        return request("GET", "/v1/usage", port=self.usage_port)

    def view(self) -> dict[str, Any]:
        reply = self.get()
        assert reply.status == 200, reply.body
        return dict(json.loads(reply.body))

    def status(self) -> dict[str, Any]:
        code, body = http_get(f"http://127.0.0.1:{self.port}/status", 5)
        assert code == 200, body
        return dict(json.loads(body)["usage"])

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.port}/metrics", 5)[1]

    def kill(self) -> None:
        """SIGKILL the whole process group, as a container runtime does (children included)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def new_env(emulator: Emulator, directory: Path) -> dict[str, str]:
    """The env of a sidecar with intake on (gb, jobs; tag key team), no send jitter."""
    status_dir = directory / "status"
    status_dir.mkdir()
    return clean_env(
        **emulator.env(access_key_id="AKIDPOD1"),
        ENTITLEMENT_PRODUCT_CODE=PRODUCT,
        ENTITLEMENT_PUBLIC_KEYS=str(emulator.public_key_dir),
        ENTITLEMENT_STATUS_DIR=str(status_dir),
        ENTITLEMENT_PORT=str(free_port()),
        ENTITLEMENT_USAGE_PORT=str(free_port()),
        ENTITLEMENT_USAGE_DIMENSIONS=",".join(DIMENSIONS),
        ENTITLEMENT_USAGE_TAG_KEYS="team",
        ENTITLEMENT_USAGE_SEND_JITTER="0",
        ENTITLEMENT_LOG_FORMAT="text",
        ENTITLEMENT_BACKOFF_INITIAL="0.05",
        ENTITLEMENT_BACKOFF_MAX="0.2",
        POD_UID="pod-usage-1",
    )


@pytest.fixture
def sidecar_env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    """The env of a sidecar with intake on (gb, jobs; tag key team), no send jitter."""
    return new_env(emulator, tmp_path)


@pytest.fixture(scope="module")
def shared_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsageSidecar]:
    """One running sidecar for the tests of a module that only read it or are refused."""
    directory = tmp_path_factory.mktemp("shared")
    shifted = new_clock(directory)
    with Emulator(SCENARIO, now=shifted.now) as emu:
        sidecar = UsageSidecar(shifted, new_env(emu, directory), directory)
        sidecar.start(intake_only=True)
        yield sidecar
        if sidecar.alive():
            sidecar.kill()


@pytest.fixture
def usage_sidecar(
    clock: ShiftedClock, sidecar_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., UsageSidecar]]:
    """Make (not start) sidecars; every one still running is killed at the end."""
    made: list[UsageSidecar] = []

    def make(**extra: str) -> UsageSidecar:
        sidecar = UsageSidecar(clock, {**sidecar_env, **extra}, tmp_path)
        made.append(sidecar)
        return sidecar

    yield make
    for sidecar in made:
        if sidecar.alive():
            sidecar.kill()


def with_fault(emu: Emulator, **fault: Any) -> None:
    """Make every MeterUsage call (or `count` of them) meet `fault` (kind, seconds, ...)."""
    emu.set_scenario({**SCENARIO, "faults": [{"op": "MeterUsage", **fault}]})


def billed(emu: Emulator) -> dict[tuple[str, str], Decimal]:
    """What the emulator recorded: (hour, dimension) -> quantity; fails on a repeated record."""
    records = emu.records()["meter_usage"]
    keys = [(r["hour"], r["dimension"]) for r in records]
    assert len(keys) == len(set(keys)), f"two records for one hour and dimension: {records}"
    return {(r["hour"], r["dimension"]): Decimal(r["quantity"]) for r in records}


def iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Fixtures for License Manager mode: an emulator with licenses, pods as real `run` processes."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env
from tests.sidecar.conftest import RunningSidecar, cli

SKU = "prod-contract"
SEATS = "prod-seats"
TIERS = "prod-tiers"
DRAW = "prod-draw"


def seat_license(sku: str = SEATS, seats: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "entitlements": [{"name": "seats", "unit": "Count", "max_count": seats}],
        **extra,
    }


def tier_license(*tiers: str, sku: str = TIERS, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "entitlements": [{"name": tier} for tier in tiers], **extra}


class Pods:
    """Starts `run` pods (each its own status dir, pod UID and access key) and stops them all."""

    def __init__(self, emu: Emulator, root: Path) -> None:
        self.emu = emu
        self.root = root
        self.started: list[RunningSidecar] = []

    def env(self, name: str, sku: str, entitlements: str, **extra: str) -> dict[str, str]:
        status_dir = self.root / name
        status_dir.mkdir(exist_ok=True)
        return clean_env(
            **self.emu.env(access_key_id="AKID" + name.upper().replace("-", "")),
            ENTITLEMENT_PRODUCT_SKU=sku,
            ENTITLEMENT_LICENSE_ENTITLEMENTS=entitlements,
            ENTITLEMENT_STATUS_DIR=str(status_dir),
            ENTITLEMENT_BACKOFF_INITIAL="0.05",
            ENTITLEMENT_BACKOFF_MAX="0.2",
            ENTITLEMENT_STARTUP_TIMEOUT="20",
            ENTITLEMENT_LICENSE_WAIT_SECONDS="1",
            ENTITLEMENT_LOG_FORMAT="text",
            POD_UID=f"uid-{name}",
            **extra,
        )

    def start(
        self, name: str, sku: str = SEATS, entitlements: str = "seats=1", **extra: str
    ) -> RunningSidecar:
        return self.run(self.env(name, sku, entitlements, **extra))

    def run(self, env: Mapping[str, str]) -> RunningSidecar:
        pod = RunningSidecar(env)
        self.started.append(pod)
        return pod

    def stop_all(self) -> None:
        for pod in self.started:
            pod.stop(timeout=30)


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Callable[[Emulator], Pods]]:
    """`pods(emu)`: a pod factory bound to `emu`; every pod is stopped at the end."""
    made: list[Pods] = []

    def make(emu: Emulator) -> Pods:
        made.append(Pods(emu, tmp_path))
        return made[-1]

    yield make
    for group in made:
        group.stop_all()


def seats_in_use(emu: Emulator, sku: str = SEATS) -> int:
    return sum(int(lic["seats_in_use"]) for lic in emu.licenses() if lic["sku"] == sku)


def status_of(pod: RunningSidecar) -> dict[str, Any]:
    code, body = pod.get("/status")
    assert code == 200, body
    doc: dict[str, Any] = json.loads(body)
    return doc


def wait_for(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.05)


def kill_tree(pod: RunningSidecar) -> None:
    """SIGKILL the pod's `run` (a crash: no check-in happens) and any child it has."""
    import psutil

    parent = psutil.Process(pod.process.pid)
    for child in parent.children(recursive=True):
        child.kill()
    pod.process.send_signal(signal.SIGKILL)
    pod.process.wait(10)


def check(pod: RunningSidecar, *args: str) -> int:
    return cli("check", *args, env=pod.env).returncode
